"""Routing a free-text request to a RACI rule: whole-word and phrase matching.

Why tokenised matching in Python (and not substring or `LIKE` matching): the
rule set is small (tens of rules, read per request), and the failure this
module exists to prevent is a keyword hiding inside another word ("Cedric"
is not EDR, "Siemens" is not SIEM, "clock" is not a lockout, "asap" is not
SAP). So both the request and every keyword go through the same tokeniser:

1. Unicode NFKC and case folding; apostrophes are dropped (``can't`` ->
   ``cant``), then the text is split into runs of letters and digits. Every
   other character separates tokens (``CI/CD`` -> ``ci cd``, ``e-mail`` ->
   ``e mail``).
2. A plain plural fold on both sides: a token longer than three characters
   that ends in a single ``s`` loses it (``alerts`` -> ``alert``); ``ss`` stays.
3. A keyword matches when its token sequence occurs contiguously in the title
   or in the message (a phrase never spans the two). Each keyword counts once.

Scoring is deliberately simple so a reviewer can predict it:

* a one-word keyword weighs 1.0; a phrase of n words weighs 1 + 0.5 (n-1),
  at most 2.5 (longer phrases are more specific);
* the request's optional ``category`` adds 0.5 when it names the rule's intent,
  name, group or ticket class, but only to a rule that already matched a
  keyword: a class or category alone is never a match;
* the highest score wins when it is at least ``min_score`` and strictly above
  the runner-up. Everything else (no hit, a tie, a low score) falls back to the
  rule named ``general`` with low confidence.

Confidence: ``min(0.95, 0.45 + 0.15 * score)``, reduced by up to 40 % as the
runner-up's score approaches the winner's. Fallbacks answer 0.1 (nothing
matched), 0.2 (score below the minimum) or 0.25 (tie).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

log = logging.getLogger(__name__)

FALLBACK_RULE = "general"
MAX_PHRASE_TOKENS = 8
CATEGORY_BONUS = 0.5
CONFIDENCE_NO_MATCH = 0.1
CONFIDENCE_LOW_SCORE = 0.2
CONFIDENCE_TIE = 0.25

_WORD = re.compile(r"[^\W_]+")
_APOSTROPHES = str.maketrans("", "", "'\u2019\u02bc`")


def _fold(token: str) -> str:
    if len(token) > 3 and token.endswith("s") and not token.endswith("ss"):
        return token[:-1]
    return token


def tokens(text: str) -> tuple[str, ...]:
    """The normalised word tokens of `text` (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
    return tuple(_fold(t) for t in _WORD.findall(text))


def phrase(keyword: str) -> tuple[str, ...]:
    """A keyword's token sequence; empty when it has no letters or digits."""
    return tokens(keyword)[:MAX_PHRASE_TOKENS]


def keyword_weight(keyword_tokens: Sequence[str]) -> float:
    """1.0 for one word, +0.5 per further word, at most 2.5."""
    return min(2.5, 1.0 + 0.5 * (len(keyword_tokens) - 1))


def _ngrams(toks: Sequence[str], longest: int) -> set[tuple[str, ...]]:
    grams: set[tuple[str, ...]] = set()
    for size in range(1, min(longest, len(toks)) + 1):
        for start in range(len(toks) - size + 1):
            grams.add(tuple(toks[start:start + size]))
    return grams


class Text:
    """A request's title and message, tokenised once for matching many rules."""

    def __init__(self, *parts: str) -> None:
        self.parts = [tokens(p) for p in parts if p]
        self._grams: set[tuple[str, ...]] = set()
        for toks in self.parts:
            self._grams |= _ngrams(toks, MAX_PHRASE_TOKENS)
        self.words = frozenset(t for toks in self.parts for t in toks)

    def has(self, keyword_tokens: tuple[str, ...]) -> bool:
        """True when the phrase occurs contiguously in one part."""
        return bool(keyword_tokens) and keyword_tokens in self._grams

    def has_any(self, words: Iterable[str]) -> bool:
        """True when any of these words or phrases (normalised here) occurs."""
        return any(tuple(tokens(w)) in self._grams for w in words)


class RuleView(msgspec.Struct, frozen=True, kw_only=True):
    """What the classifier needs of a rule."""

    id: int
    name: str
    intent: str
    keywords: list[str]
    ticket_class: str
    assignment_group: str


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """A rule with at least one keyword hit."""

    rule_id: int
    rule_name: str
    intent: str
    assignment_group: str
    score: float
    matched_keywords: list[str]


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """The routing decision: the chosen rule (the fallback when `matched` is false)."""

    rule_id: int
    matched: bool
    score: float
    confidence: float
    reason: str
    matched_keywords: list[str]
    candidates: list[Candidate]


def _category_names(rule: RuleView) -> set[tuple[str, ...]]:
    return {tokens(rule.intent.replace("_", " ")), tokens(rule.name.replace("_", " ")),
            tokens(rule.assignment_group), tokens(rule.ticket_class)}


def score_rule(rule: RuleView, text: Text, category: tuple[str, ...] | None) -> Candidate | None:
    """The rule's candidate entry, or None when no keyword of it occurs."""
    hits: list[str] = []
    score = 0.0
    seen: set[tuple[str, ...]] = set()
    for keyword in rule.keywords:
        kw = phrase(keyword)
        if not kw or kw in seen:
            continue
        seen.add(kw)
        if text.has(kw):
            hits.append(keyword)
            score += keyword_weight(kw)
    if not hits:
        return None
    if category and category in _category_names(rule):
        score += CATEGORY_BONUS
    return Candidate(rule_id=rule.id, rule_name=rule.name, intent=rule.intent,
                     assignment_group=rule.assignment_group, score=round(score, 3), matched_keywords=hits)


def confidence(best: float, runner_up: float) -> float:
    """Confidence of a real match from the winner's and the runner-up's scores."""
    strength = min(0.95, 0.45 + 0.15 * best)
    ratio = runner_up / best if best > 0 else 1.0
    return round(strength * (1.0 - 0.4 * ratio), 3)


def classify(rules: Sequence[RuleView], fallback: RuleView, title: str, message: str = "",
             category: str | None = None, *, min_score: float = 1.0,
             answers: Mapping[str, str] | None = None) -> Outcome:
    """Route a request to one of `rules` (enabled rules, fallback excluded) or to `fallback`."""
    text = Text(title, message, *((answers or {}).values()))
    cat = tokens(category) if category and category.strip() else None
    candidates = [c for c in (score_rule(r, text, cat) for r in rules if r.id != fallback.id) if c is not None]
    candidates.sort(key=lambda c: (-c.score, c.rule_name))
    if not candidates:
        return Outcome(rule_id=fallback.id, matched=False, score=0.0, confidence=CONFIDENCE_NO_MATCH,
                       reason="no rule keyword occurs in the request", matched_keywords=[], candidates=[])
    best = candidates[0]
    runner_up = candidates[1].score if len(candidates) > 1 else 0.0
    if runner_up == best.score:
        tied = [c.rule_name for c in candidates if c.score == best.score]
        return Outcome(rule_id=fallback.id, matched=False, score=best.score, confidence=CONFIDENCE_TIE,
                       reason=f"tie at score {best.score:g} between " + ", ".join(tied),
                       matched_keywords=[], candidates=candidates)
    if best.score < min_score:
        return Outcome(rule_id=fallback.id, matched=False, score=best.score, confidence=CONFIDENCE_LOW_SCORE,
                       reason=f"best score {best.score:g} ({best.rule_name}) is below the minimum {min_score:g}",
                       matched_keywords=[], candidates=candidates)
    return Outcome(rule_id=best.rule_id, matched=True, score=best.score,
                   confidence=confidence(best.score, runner_up),
                   reason=f"matched {', '.join(repr(k) for k in best.matched_keywords)}",
                   matched_keywords=best.matched_keywords, candidates=candidates)


# --- clarification ------------------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_IP = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_HOST = re.compile(r"\b(?:[a-z]+-?\d+[a-z0-9-]*|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:corp|local|lan|internal|com|net|org|io))\b",
                   re.IGNORECASE)
_TIME = re.compile(r"\b(?:\d{1,2}[:.]\d{2}|\d{1,2}\s?(?:am|pm)|\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}(?:/\d{2,4})?)\b",
                   re.IGNORECASE)
_CVE = re.compile(r"\bCVE-\d{4}-\d{3,}\b", re.IGNORECASE)

_TIME_WORDS = ("since", "today", "yesterday", "morning", "afternoon", "evening", "tonight", "overnight", "hour",
               "minute", "week", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
               "weekend", "ago", "now")
_SCOPE_WORDS = ("everyone", "everybody", "whole", "all", "team", "department", "floor", "building", "office",
                "only", "users", "colleagues", "nobody", "site")


@dataclass(frozen=True, kw_only=True)
class Fact:
    """A fact the owning team needs before it can work a request of one intent."""

    key: str
    question: str
    patterns: tuple[re.Pattern[str], ...] = ()
    words: tuple[str, ...] = ()

    def present(self, raw: str, text: Text, answers: Mapping[str, str]) -> bool:
        if (answers.get(self.key) or "").strip():
            return True
        return any(p.search(raw) for p in self.patterns) or text.has_any(self.words)


# Required facts per seeded intent. A rule whose intent is not listed needs none;
# clarification then only asks when the confidence is low.
REQUIRED_FACTS: dict[str, tuple[Fact, ...]] = {
    "phishing": (
        Fact(key="sender", question="Who sent the message (the sender's address) and what was its subject?",
             patterns=(_EMAIL,), words=("sender", "from")),
        Fact(key="interaction", question="Did you click a link, open an attachment, reply, or enter your password?",
             words=("click", "clicked", "opened", "open", "entered", "typed", "replied", "reply", "didnt",
                    "not")),
    ),
    "security_alert": (
        Fact(key="host", question="Which host, device or account does the alert concern (hostname or IP)?",
             patterns=(_IP, _HOST, _EMAIL), words=("hostname", "host", "server", "laptop", "workstation")),
        Fact(key="alert", question="What is the alert's name or ID, and which tool raised it?",
             patterns=(_URL,), words=("alert", "rule", "detection", "id", "edr", "siem", "wazuh", "crowdstrike")),
    ),
    "account_access": (
        Fact(key="account", question="Which account or username is affected?",
             patterns=(_EMAIL,), words=("username", "account", "user id", "login")),
        Fact(key="since", question="Since when does it happen, and what error message do you see?",
             patterns=(_TIME,), words=_TIME_WORDS),
    ),
    "access_request": (
        Fact(key="resource", question="Which system, application, share or group do you need access to?",
             patterns=(_URL,), words=("share", "drive", "folder", "group", "application", "system", "project",
                                      "repository", "repo", "site", "database", "mailbox")),
        Fact(key="level", question="What level of access do you need (read, write, admin) and for how long?",
             words=("read", "write", "admin", "administrator", "owner", "editor", "viewer", "contributor",
                    "modify", "full control")),
        Fact(key="justification",
             question="What is the business reason, and who approves it (your manager or the data owner)?",
             words=("because", "reason", "need it for", "project", "manager", "approved", "approver", "owner")),
    ),
    "network_outage": (
        Fact(key="location", question="Where are you (site, building, home) and how do you connect (VPN, Wi-Fi, cable)?",
             words=("home", "office", "site", "building", "floor", "remote", "branch", "vpn", "wifi", "cable",
                    "ethernet", "hotel")),
        Fact(key="scope", question="Is it only you or are others affected too, and since when?",
             patterns=(_TIME,), words=_SCOPE_WORDS + _TIME_WORDS),
    ),
    "email_delivery": (
        Fact(key="addresses", question="Which sender and recipient addresses are involved?", patterns=(_EMAIL,)),
        Fact(key="bounce", question="Did you get a bounce (NDR) message? Please paste its error text.",
             words=("ndr", "bounce", "bounced", "error", "550", "554", "undeliverable", "no bounce")),
    ),
    "software_install": (
        Fact(key="software", question="Which software (name and version) do you need?",
             words=("version", "visio", "acrobat", "photoshop", "studio", "zoom", "python", "office", "teams",
                    "chrome", "firefox", "slack")),
        Fact(key="device", question="On which device should it be installed (hostname or asset tag)?",
             patterns=(_HOST,), words=("laptop", "desktop", "hostname", "asset", "workstation")),
    ),
    "endpoint_hardware": (
        Fact(key="device", question="Which device is affected (asset tag or hostname)?",
             patterns=(_HOST,), words=("asset", "hostname", "serial")),
    ),
    "infrastructure_outage": (
        Fact(key="system", question="Which server or service is affected (hostname)?",
             patterns=(_HOST, _IP), words=("hostname", "server", "cluster", "database")),
        Fact(key="impact", question="What is the business impact, and since when?",
             patterns=(_TIME,), words=_SCOPE_WORDS + _TIME_WORDS + ("impact", "down", "blocked")),
    ),
    "cicd_security": (
        Fact(key="repository", question="Which repository and pipeline run (link or ID)?",
             patterns=(_URL,), words=("repository", "repo", "project", "pipeline", "job", "run", "branch")),
        Fact(key="finding", question="Which scanner and finding (rule ID or CVE)?",
             patterns=(_CVE,), words=("semgrep", "trivy", "zap", "nuclei", "rule", "finding", "cve")),
    ),
    "change_request": (
        Fact(key="window", question="When should the change happen (maintenance window)?",
             patterns=(_TIME,), words=_TIME_WORDS + ("window", "tonight", "date")),
        Fact(key="rollback", question="What is the rollback plan if the change fails?",
             words=("rollback", "roll back", "revert", "backout", "back out")),
    ),
}

_GENERIC = (
    Fact(key="goal", question="What are you trying to do, and what happens instead (any error message)?"),
    Fact(key="system", question="Which system, application or device is affected?"),
    Fact(key="urgency", question="How urgent is it: is your work blocked, and how many people are affected?"),
)
MAX_QUESTIONS = 4
# Answers to the generic questions describe the request and take part in routing;
# answers to fact questions (a sender address, a hostname) are for the team only.
ROUTING_ANSWER_KEYS = frozenset(f.key for f in _GENERIC)


def routing_answers(answers: Mapping[str, str]) -> dict[str, str]:
    """The answers that are classified together with the title and message."""
    return {k: v for k, v in answers.items() if k in ROUTING_ANSWER_KEYS}


class Question(msgspec.Struct, frozen=True, kw_only=True):
    """One clarification question; `key` names the answer field to send back."""

    key: str
    question: str
    reason: str


def missing_facts(intent: str, title: str, message: str, answers: Mapping[str, str]) -> list[Fact]:
    """The required facts of `intent` that neither the text nor the answers give."""
    raw = "\n".join([title, message, *answers.values()])
    text = Text(title, message, *answers.values())
    return [f for f in REQUIRED_FACTS.get(intent, ()) if not f.present(raw, text, answers)]


def questions(outcome: Outcome, intent: str, title: str, message: str, answers: Mapping[str, str],
              low_confidence: bool, describe: Mapping[int, str]) -> list[Question]:
    """Up to four questions: which rule when unsure, then the routed intent's missing facts."""
    found: list[Question] = []
    if low_confidence:
        options = [describe.get(c.rule_id, c.rule_name) for c in outcome.candidates[:3]]
        if len(options) >= 2 and "category" not in answers:
            found.append(Question(key="category", question="Which of these describes your request best: "
                                  + "; ".join(options) + "?", reason="several rules match equally well"))
        for fact in _GENERIC:
            if not (answers.get(fact.key) or "").strip():
                found.append(Question(key=fact.key, question=fact.question, reason="low confidence"))
    for fact in missing_facts(intent, title, message, answers):
        if all(q.key != fact.key for q in found):
            found.append(Question(key=fact.key, question=fact.question, reason=f"missing fact for {intent}"))
    if low_confidence and outcome.matched:
        # A real but weak match: its own facts are more useful than the generic questions.
        found.sort(key=lambda q: q.reason == "low confidence")
    return found[:MAX_QUESTIONS]
