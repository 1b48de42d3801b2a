"""The intake classifier on its own: tokens, whole-word phrases, scoring, ties and fallbacks."""

import pytest

from opsgate.intake import classifier
from opsgate.intake.classifier import RuleView, classify, tokens


def rule(id, name, keywords, group="G", ticket_class="Incident", intent=None):
    return RuleView(id=id, name=name, intent=intent or name, keywords=keywords, ticket_class=ticket_class,
                    assignment_group=group)


GENERAL = rule(99, "general", [], group="Service Desk", ticket_class="UserRequest")
RULES = [
    rule(1, "security_alert", ["edr", "siem", "siem alert", "malware"], group="Security Operations"),
    rule(2, "account_lockout", ["locked out", "lockout", "account locked", "mfa"], group="Identity & Access"),
    rule(3, "network", ["vpn", "wi-fi", "ci/cd pipeline"], group="Network Operations"),
    rule(4, "bizapps", ["sap"], group="Business Applications"),
]


@pytest.mark.parametrize(("text", "expected"), [
    ("Cedric's CI/CD can't log-in", ("cedric", "ci", "cd", "cant", "log", "in")),
    ("SIEM alerts from Siemens", ("siem", "alert", "from", "siemen")),
    ("e-mail ASAP, Wi‑Fi down", ("e", "mail", "asap", "wi", "fi", "down")),
    ("access address boss", ("access", "address", "boss")),
    ("ÉDR Ａlert", ("édr", "alert")),
])
def test_tokens(text, expected):
    assert tokens(text) == expected


@pytest.mark.parametrize("text", [
    "Cedric needs a chair", "Siemens visit", "The clock is wrong", "Reply asap please", "Malwarebytes licence",
    "vpnclient", "blocked outbound", "summfa",
])
def test_keyword_hidden_inside_another_word_is_not_a_match(text):
    outcome = classify(RULES, GENERAL, text)
    assert not outcome.matched and outcome.rule_id == GENERAL.id
    assert outcome.candidates == [] and outcome.confidence == classifier.CONFIDENCE_NO_MATCH


def test_phrases_match_whole_and_contiguous_within_one_part():
    assert classify(RULES, GENERAL, "I am locked out").rule_id == 2
    assert not classify(RULES, GENERAL, "I am locked and out").matched
    # a phrase never spans the title and the message
    assert not classify(RULES, GENERAL, "I got locked", "out of the building").matched
    assert classify(RULES, GENERAL, "Our CI/CD pipeline is slow").rule_id == 3
    assert classify(RULES, GENERAL, "Wi-Fi drops").rule_id == 3 and classify(RULES, GENERAL, "wi fi drops").matched


def test_scores_weigh_phrases_and_count_each_keyword_once():
    outcome = classify(RULES, GENERAL, "SIEM alert", "siem alert again, SIEM alert")
    assert outcome.rule_id == 1 and outcome.score == 2.5  # "siem" 1 + "siem alert" 1.5
    assert outcome.matched_keywords == ["siem", "siem alert"]


def test_ties_fall_back_to_general_with_low_confidence():
    outcome = classify(RULES, GENERAL, "VPN and MFA both broken")
    assert not outcome.matched and outcome.rule_id == GENERAL.id
    assert outcome.confidence == classifier.CONFIDENCE_TIE and "tie" in outcome.reason
    assert {c.rule_name for c in outcome.candidates} == {"network", "account_lockout"}


def test_category_breaks_a_tie_but_is_never_a_match_alone():
    assert classify(RULES, GENERAL, "VPN and MFA both broken", category="network").rule_id == 3
    assert classify(RULES, GENERAL, "VPN and MFA both broken", category="Network Operations").rule_id == 3
    assert not classify(RULES, GENERAL, "Something broke", category="Incident").matched
    assert not classify(RULES, GENERAL, "Something broke", category="security_alert").matched


def test_low_scores_fall_back_to_general():
    outcome = classify(RULES, GENERAL, "EDR on my laptop", min_score=2.0)
    assert not outcome.matched and outcome.confidence == classifier.CONFIDENCE_LOW_SCORE
    assert classify(RULES, GENERAL, "EDR malware on my laptop", min_score=2.0).rule_id == 1


def test_confidence_grows_with_score_and_shrinks_with_a_close_runner_up():
    one = classify(RULES, GENERAL, "EDR").confidence
    two = classify(RULES, GENERAL, "EDR malware").confidence
    contested = classify(RULES, GENERAL, "EDR malware and a VPN").confidence
    assert 0.5 <= one < two <= 0.95 and contested < two


def test_answers_count_as_text():
    assert classify(RULES, GENERAL, "Help", answers={"goal": "my account locked"}).rule_id == 2


def test_missing_facts_and_questions():
    missing = classifier.missing_facts("phishing", "Phishing email", "Weird message", {})
    assert [f.key for f in missing] == ["sender", "interaction"]
    assert classifier.missing_facts("phishing", "Phishing from ceo@evil.example", "I did not click", {}) == []
    assert classifier.missing_facts("phishing", "Phishing", "", {"sender": "x@y.z", "interaction": "no"}) == []
    outcome = classify(RULES, GENERAL, "VPN and MFA both broken")
    asked = classifier.questions(outcome, "general", "VPN and MFA both broken", "", {}, True,
                                 {2: "Accounts", 3: "Network"})
    assert 1 <= len(asked) <= classifier.MAX_QUESTIONS
    assert asked[0].key == "category" and "Accounts" in asked[0].question and "Network" in asked[0].question
