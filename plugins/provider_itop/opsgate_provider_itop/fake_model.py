"""The slice of iTop's standard ITIL data model (3.2.0) the fake serves.

Classes Organization, Person, Team, Service, the abstract Ticket and its leaf
classes UserRequest and Incident, with their attributes (contract section 8),
the priority matrix, the lifecycles (9.1, 9.2) and the attributes each target
state flags as mandatory (9.3).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attr:
    """One attribute: `kind` is string, text, enum, extkey, extfield, date, duration, stopwatch or caselog."""

    code: str
    kind: str
    label: str
    target: str = ""  # extkey: target class; extfield: the extkey it follows
    values: tuple[str, ...] = ()  # enum values
    default: object = ""
    computed: bool = False  # written values are ignored (ref, priority, dates, ...)
    ext_attr: str = ""  # extfield: attribute of the target object


def _s(code: str, label: str, **kw: object) -> Attr:
    return Attr(code, "string", label, **kw)  # type: ignore[arg-type]


def _key(code: str, label: str, target: str) -> Attr:
    return Attr(code, "extkey", label, target=target, default=0)


def _ext(code: str, key: str, attr: str = "name") -> Attr:
    return Attr(code, "extfield", code, target=key, ext_attr=attr, computed=True)


def _date(code: str, label: str, computed: bool = True) -> Attr:
    return Attr(code, "date", label, computed=computed)


def _enum(code: str, label: str, values: tuple[str, ...], default: str = "") -> Attr:
    return Attr(code, "enum", label, values=values, default=default)


_TICKET = (
    _s("ref", "Ref", computed=True),
    _key("org_id", "Organization", "Organization"), _ext("org_name", "org_id"),
    _key("caller_id", "Caller", "Person"), _ext("caller_name", "caller_id"),
    _key("team_id", "Team", "Team"), _ext("team_name", "team_id"),
    _key("agent_id", "Agent", "Person"), _ext("agent_name", "agent_id"),
    _s("title", "Title"),
    Attr("description", "text", "Description"),
    _date("start_date", "Start date"), _date("end_date", "End date", computed=False),
    _date("last_update", "Last update"), _date("close_date", "Close date"),
    Attr("private_log", "caselog", "Private log"),
    _enum("operational_status", "Operational status", ("ongoing", "resolved", "closed"), "ongoing"),
    _s("finalclass", "Type", computed=True),
)

_STATUSES_UR = ("new", "escalated_tto", "assigned", "escalated_ttr", "waiting_for_approval", "approved",
                "rejected", "pending", "resolved", "closed")
_STATUSES_INC = ("new", "escalated_tto", "assigned", "escalated_ttr", "pending", "resolved", "closed")
_RESOLUTION_CODES = ("assistance", "bug fixed", "hardware repair", "other", "software patch", "system update",
                     "training")


def _leaf(statuses: tuple[str, ...], origins: tuple[str, ...]) -> tuple[Attr, ...]:
    return (
        _enum("status", "Status", statuses, "new"),
        _enum("impact", "Impact", ("1", "2", "3"), "1"),
        _enum("priority", "Priority", ("1", "2", "3", "4"), "4"),
        _enum("urgency", "Urgency", ("1", "2", "3", "4"), "4"),
        _enum("origin", "Origin", origins, "phone"),
        _key("service_id", "Service", "Service"), _ext("service_name", "service_id"),
        _key("servicesubcategory_id", "Service subcategory", "ServiceSubcategory"),
        _date("assignment_date", "Assignment date"), _date("resolution_date", "Resolution date"),
        _date("last_pending_date", "Last pending date"),
        Attr("time_spent", "duration", "Time spent", computed=True),
        Attr("tto", "stopwatch", "TTO", computed=True, default=0),
        Attr("ttr", "stopwatch", "TTR", computed=True, default=0),
        _enum("resolution_code", "Resolution code", _RESOLUTION_CODES, "assistance"),
        Attr("solution", "text", "Solution"),
        Attr("pending_reason", "text", "Pending reason"),
        Attr("public_log", "caselog", "Public log"),
        _enum("user_satisfaction", "User satisfaction", ("1", "2", "3", "4"), "1"),
    )


CLASSES: dict[str, tuple[Attr, ...]] = {
    "Organization": (_s("name", "Name"), _s("code", "Code"),
                     _enum("status", "Status", ("active", "inactive"), "active"),
                     _key("parent_id", "Parent", "Organization")),
    "Person": (_s("name", "Last Name"), _s("first_name", "First Name"), _s("email", "Email"),
               _key("org_id", "Organization", "Organization"), _ext("org_name", "org_id"),
               _enum("status", "Status", ("active", "inactive"), "active")),
    "Team": (_s("name", "Name"), _s("email", "Email"),
             _key("org_id", "Organization", "Organization"), _ext("org_name", "org_id")),
    "Service": (_s("name", "Name"), Attr("description", "text", "Description"),
                _key("org_id", "Organization", "Organization"), _ext("org_name", "org_id")),
    "ServiceSubcategory": (_s("name", "Name"), _key("service_id", "Service", "Service")),
    "Ticket": _TICKET,
    "UserRequest": _TICKET + _leaf(_STATUSES_UR, ("mail", "phone", "portal", "chat", "in_person")) + (
        _enum("request_type", "Request type", ("service_request",), "service_request"),
        _key("approver_id", "Approver", "Person"),
        _key("parent_request_id", "Parent request", "UserRequest"),
    ),
    "Incident": _TICKET + _leaf(_STATUSES_INC, ("mail", "phone", "portal", "chat", "in_person", "monitoring")) + (
        _key("parent_incident_id", "Parent incident", "Incident"),
    ),
}
ATTRS: dict[str, dict[str, Attr]] = {cls: {a.code: a for a in attrs} for cls, attrs in CLASSES.items()}
ABSTRACT = {"Ticket"}
PARENT = {"UserRequest": "Ticket", "Incident": "Ticket"}
REF_PREFIX = {"UserRequest": "R", "Incident": "I"}
#: Every class whose objects share one id sequence (per root class, as iTop's tables do).
ROOT = {"UserRequest": "Ticket", "Incident": "Ticket", "Ticket": "Ticket"}


def is_a(leaf: str, cls: str) -> bool:
    """True when `leaf` is `cls` or one of its subclasses."""
    return leaf == cls or PARENT.get(leaf) == cls


#: Priority from impact (rows) and urgency (columns), section 8.1.
PRIORITY = {
    "1": {"1": "1", "2": "1", "3": "2", "4": "4"},
    "2": {"1": "1", "2": "2", "3": "3", "4": "4"},
    "3": {"1": "2", "2": "3", "3": "3", "4": "4"},
}

_UR_TRANSITIONS: dict[str, dict[str, str]] = {
    "new": {"ev_assign": "assigned", "ev_timeout": "escalated_tto", "ev_wait_for_approval": "waiting_for_approval",
            "ev_autoresolve": "resolved"},
    "escalated_tto": {"ev_assign": "assigned"},
    "assigned": {"ev_pending": "pending", "ev_resolve": "resolved", "ev_reassign": "assigned",
                 "ev_timeout": "escalated_ttr", "ev_autoresolve": "resolved"},
    "escalated_ttr": {"ev_pending": "pending", "ev_resolve": "resolved", "ev_reassign": "assigned",
                      "ev_autoresolve": "resolved"},
    "waiting_for_approval": {"ev_approve": "approved", "ev_reject": "rejected"},
    "approved": {"ev_assign": "assigned", "ev_timeout": "escalated_tto", "ev_autoresolve": "resolved"},
    "rejected": {"ev_reopen": "new"},
    "pending": {"ev_assign": "assigned", "ev_autoresolve": "resolved"},
    "resolved": {"ev_close": "closed", "ev_reopen": "assigned", "ev_autoresolve": "resolved"},
    "closed": {},
}
_INC_TRANSITIONS = {
    state: {ev: to for ev, to in moves.items() if ev != "ev_wait_for_approval"}
    for state, moves in _UR_TRANSITIONS.items()
    if state not in ("waiting_for_approval", "approved", "rejected")
}
TRANSITIONS = {"UserRequest": _UR_TRANSITIONS, "Incident": _INC_TRANSITIONS}

#: Attributes flagged mandatory in each target state (model); 9.3 says what REST really checks.
MANDATORY: dict[str, tuple[str, ...]] = {
    "new": ("org_id", "caller_id"),
    "escalated_tto": ("org_id", "caller_id"),
    "waiting_for_approval": ("org_id", "caller_id"),
    "approved": ("org_id", "caller_id"),
    "rejected": ("org_id", "caller_id"),
    "assigned": ("org_id", "team_id", "agent_id"),
    "escalated_ttr": ("org_id", "team_id", "agent_id"),
    "pending": ("org_id", "team_id", "agent_id", "pending_reason"),
    "resolved": ("resolution_code", "solution", "service_id"),
    "closed": (),
}

#: Dates a transition into a state sets.
TRANSITION_DATES = {"assigned": "assignment_date", "pending": "last_pending_date",
                    "resolved": "resolution_date", "closed": "close_date"}

OPERATIONS = (
    ("core/create", "Create an object"),
    ("core/update", "Update an object"),
    ("core/apply_stimulus", "Apply a stimulus to change the state of an object"),
    ("core/get", "Search for objects"),
    ("core/delete", "Delete objects"),
    ("core/get_related", "Get related objects through the specified relation"),
    ("core/check_credentials", "Check user credentials"),
)
VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4")


def friendlyname(cls: str, obj: dict) -> str:
    """The object's display name: ref for tickets, "first last" for people, else name."""
    if cls in REF_PREFIX:
        return str(obj.get("ref", ""))
    if cls == "Person":
        return f"{obj.get('first_name', '')} {obj.get('name', '')}".strip()
    return str(obj.get("name", ""))
