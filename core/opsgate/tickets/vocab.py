"""Ticket vocabularies and the normalisation of values clients send.

The same lists are enforced by CHECK constraints in migration 0003; a test
compares the two.
"""

from __future__ import annotations

from opsgate.errors import Invalid

STATUSES: tuple[str, ...] = (
    "new", "assigned", "in_progress", "awaiting_user_response", "pending_approval",
    "awaiting_access", "blocked", "resolved", "closed", "cancelled", "rejected",
)
# No status change, assignment or info request once a ticket is in one of these.
FINAL_STATUSES: frozenset[str] = frozenset({"closed", "cancelled", "rejected"})
OPEN_STATUSES: tuple[str, ...] = tuple(s for s in STATUSES if s not in FINAL_STATUSES and s != "resolved")

CLASSES: tuple[str, ...] = ("Incident", "UserRequest", "RoutineChange", "NormalChange", "EmergencyChange")
CLASS_ALIASES: dict[str, str] = {"change": "NormalChange"}

VISIBILITIES: tuple[str, ...] = ("internal", "user", "public")
PRIORITIES: tuple[str, ...] = ("P1", "P2", "P3", "P4")

# Note sources that are a human or an external ticketing system: their notes
# steer the ticket's running agents (the runner turns the event into steering).
HUMAN_SOURCES: frozenset[str] = frozenset({
    "dashboard", "itop", "servicenow", "jira", "provider", "requester", "user-response",
})
AGENT_SOURCE = "agent"
CONTROL_PLANE_SOURCE = "control-plane"

_CLASS_BY_LOWER = {c.lower(): c for c in CLASSES}


def _allowed(values: tuple[str, ...]) -> str:
    return "one of " + ", ".join(values)


def status(value: str, field: str = "status") -> str:
    v = value.strip().lower()
    if v not in STATUSES:
        raise Invalid(field, f"unknown status {value!r}; must be {_allowed(STATUSES)}")
    return v


def ticket_class(value: str, field: str = "ticket_class") -> str:
    key = value.strip().lower()
    found = _CLASS_BY_LOWER.get(key) or CLASS_ALIASES.get(key)
    if found is None:
        raise Invalid(field, f"unknown ticket class {value!r}; must be {_allowed(CLASSES)} (or Change)")
    return found


def visibility(value: str, field: str = "visibility") -> str:
    v = value.strip().lower()
    if v not in VISIBILITIES:
        raise Invalid(field, f"unknown visibility {value!r}; must be {_allowed(VISIBILITIES)}")
    return v


def priority(value: str | int, field: str = "priority") -> str:
    """`P1`-`P4` (any case) or `1`-`4` (string or number) -> `P1`-`P4`."""
    if isinstance(value, bool):
        raise Invalid(field, f"unknown priority {value!r}; must be P1-P4 or 1-4")
    text = str(value).strip().upper()
    if text in PRIORITIES:
        return text
    if text in ("1", "2", "3", "4"):
        return "P" + text
    raise Invalid(field, f"unknown priority {value!r}; must be P1-P4 or 1-4")


def steers(source: str) -> bool:
    """True when a note from `source` must reach the ticket's running agents."""
    return source in HUMAN_SOURCES
