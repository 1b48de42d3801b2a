"""SQL of the intake domain: run statements, return rows. No rules here."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg import Connection

from opsgate.db import sql
from opsgate.errors import Conflict, Invalid
from opsgate.events.repo import CHANNEL

_Q = sql.load(__package__)
LIST_GROUPS = _Q["list_groups"]
GET_GROUP = _Q["get_group"]
LOCK_GROUP = _Q["lock_group"]
GROUP_BY_NAME = _Q["group_by_name"]
INSERT_GROUP = _Q["insert_group"]
UPDATE_GROUP = _Q["update_group"]
ENABLED_RULES_OF_GROUP = _Q["enabled_rules_of_group"]
LIST_RULES = _Q["list_rules"]
ENABLED_RULES = _Q["enabled_rules"]
GET_RULE = _Q["get_rule"]
LOCK_RULE = _Q["lock_rule"]
INSERT_RULE = _Q["insert_rule"]
UPDATE_RULE = _Q["update_rule"]
INSERT_SESSION = _Q["insert_session"]
SESSION_OF_TICKET = _Q["session_of_ticket"]
SET_SESSION_AUTO_ASSIGNMENT = _Q["set_session_auto_assignment"]
LIST_SESSIONS = _Q["list_sessions"]
RELATED_TICKETS = _Q["related_tickets"]
COUNT_RULE_ASSIGNMENTS = _Q["count_rule_assignments"]
INSERT_AUTO_ASSIGNMENT = _Q["insert_auto_assignment"]
AUTO_ASSIGNMENTS_OF_TICKET = _Q["auto_assignments_of_ticket"]
ADD_INTAKE_NOTE = _Q["add_intake_note"]

Row = dict[str, Any]

_UNIQUE_FIELDS = {
    "raci_groups_name_key": "name", "raci_groups_lower_name_idx": "name",
    "raci_rules_name_key": "name", "raci_rules_lower_name_idx": "name",
}


def _one(row: asyncpg.Record | None) -> Row | None:
    return None if row is None else dict(row)


async def _write(conn: Connection, statement: str, *args: Any) -> Row | None:
    """Run a write; map a duplicate name to Conflict and a bad reference or value to Invalid."""
    try:
        return _one(await conn.fetchrow(statement, *args))
    except asyncpg.UniqueViolationError as exc:
        field = _UNIQUE_FIELDS.get(exc.constraint_name or "", "name")
        raise Conflict(f"{field} is already used by another row") from exc
    except asyncpg.ForeignKeyViolationError as exc:
        raise Invalid("assignment_group", "names no RACI group") from exc
    except asyncpg.CheckViolationError as exc:
        raise Invalid(_check_field(exc.constraint_name), "violates the allowed values") from exc


def _check_field(constraint: str | None) -> str:
    for prefix in ("raci_groups_", "raci_rules_"):
        if constraint and constraint.startswith(prefix):
            return constraint[len(prefix):].removesuffix("_check")
    return "body"


# --- groups ---------------------------------------------------------------------------


async def list_groups(conn: Connection) -> list[Row]:
    """Every group, by name."""
    return [dict(r) for r in await conn.fetch(LIST_GROUPS)]


async def get_group(conn: Connection, group_id: int, *, lock: bool = False) -> Row | None:
    """One group (locked FOR UPDATE when asked), or None."""
    return _one(await conn.fetchrow(LOCK_GROUP if lock else GET_GROUP, group_id))


async def group_by_name(conn: Connection, name: str) -> Row | None:
    """The group of that name, compared case-insensitively."""
    return _one(await conn.fetchrow(GROUP_BY_NAME, name))


async def insert_group(conn: Connection, name: str, description: str, default_assignee: str | None,
                       risk_level: str, enabled: bool, actor: str) -> Row:
    """Insert a group; Conflict on a duplicate name."""
    row = await _write(conn, INSERT_GROUP, name, description, default_assignee, risk_level, enabled, actor)
    assert row is not None
    return row


async def update_group(conn: Connection, group_id: int, name: str, description: str, default_assignee: str | None,
                       risk_level: str, enabled: bool, actor: str) -> Row | None:
    """Write every column of a group; None when it does not exist."""
    return await _write(conn, UPDATE_GROUP, group_id, name, description, default_assignee, risk_level, enabled,
                        actor)


async def enabled_rules_of_group(conn: Connection, name: str) -> list[str]:
    """Names of the enabled rules routing to a group."""
    return [r["name"] for r in await conn.fetch(ENABLED_RULES_OF_GROUP, name)]


# --- rules ----------------------------------------------------------------------------


async def list_rules(conn: Connection, *, enabled_only: bool = False) -> list[Row]:
    """Every rule (or only the enabled ones), by name."""
    return [dict(r) for r in await conn.fetch(ENABLED_RULES if enabled_only else LIST_RULES)]


async def get_rule(conn: Connection, rule_id: int, *, lock: bool = False) -> Row | None:
    """One rule (locked FOR UPDATE when asked), or None."""
    return _one(await conn.fetchrow(LOCK_RULE if lock else GET_RULE, rule_id))


_RULE_COLUMNS = ("name", "intent", "description", "keywords", "ticket_class", "priority", "assignment_group",
                 "responsible", "accountable", "consulted", "informed", "approval_required", "approval_action",
                 "risk_level", "knowledge_tags", "auto_assign_agent", "auto_agent_model", "auto_agent_prompt",
                 "security_classification", "enabled")


async def insert_rule(conn: Connection, values: Row, actor: str) -> Row:
    """Insert a rule from validated column values; Conflict on a duplicate name."""
    row = await _write(conn, INSERT_RULE, *(values[c] for c in _RULE_COLUMNS), actor)
    assert row is not None
    return row


async def update_rule(conn: Connection, rule_id: int, values: Row, actor: str) -> Row | None:
    """Write every column of a rule; None when it does not exist."""
    return await _write(conn, UPDATE_RULE, rule_id, *(values[c] for c in _RULE_COLUMNS), actor)


# --- sessions -------------------------------------------------------------------------


async def insert_session(conn: Connection, *args: Any) -> Row:
    """Record an intake session."""
    row = await conn.fetchrow(INSERT_SESSION, *args)
    return dict(row)


async def session_of_ticket(conn: Connection, ticket_id: int) -> Row | None:
    """The intake session that created a ticket, or None."""
    return _one(await conn.fetchrow(SESSION_OF_TICKET, ticket_id))


async def set_session_auto_assignment(conn: Connection, session_id: int, decision: dict[str, Any]) -> Row | None:
    """Store the auto-assignment decision on a session."""
    return _one(await conn.fetchrow(SET_SESSION_AUTO_ASSIGNMENT, session_id, decision))


async def list_sessions(conn: Connection, classifications: list[str], groups: list[str] | None,
                        ticket_id: int | None, limit: int, offset: int) -> list[Row]:
    """Sessions whose ticket is in the given row scope, newest first."""
    rows = await conn.fetch(LIST_SESSIONS, classifications, groups, ticket_id, limit, offset)
    return [dict(r) for r in rows]


async def related_tickets(conn: Connection, group: str, classifications: list[str], groups: list[str] | None,
                          exclude_ticket_id: int | None, limit: int) -> list[Row]:
    """Recent tickets of one owning group in the given row scope."""
    rows = await conn.fetch(RELATED_TICKETS, group, classifications, groups, exclude_ticket_id, limit)
    return [dict(r) for r in rows]


# --- auto-assignment ---------------------------------------------------------------------


async def count_rule_assignments(conn: Connection, rule_id: int, window_seconds: float) -> int:
    """Agents auto-assigned by a rule within the last `window_seconds`."""
    return await conn.fetchval(COUNT_RULE_ASSIGNMENTS, rule_id, float(window_seconds))


async def insert_auto_assignment(conn: Connection, ticket_id: int, rule_id: int | None, decision: str,
                                 reason_code: str, reason: str, agent_id: int | None, task_id: int | None,
                                 note_id: int | None, catch_up_sync: bool, actor: str) -> int:
    """Record one auto-assignment decision; returns its id."""
    return await conn.fetchval(INSERT_AUTO_ASSIGNMENT, ticket_id, rule_id, decision, reason_code, reason, agent_id,
                               task_id, note_id, catch_up_sync, actor)


async def auto_assignments_of_ticket(conn: Connection, ticket_id: int) -> list[Row]:
    """Every auto-assignment decision of a ticket, oldest first."""
    return [dict(r) for r in await conn.fetch(AUTO_ASSIGNMENTS_OF_TICKET, ticket_id)]


async def add_intake_note(conn: Connection, ticket_id: int, kind: str, body: str, author: str,
                          details: dict[str, Any]) -> int:
    """Write an intake note with its event (and NOTIFY) inside the caller's transaction; returns its id."""
    return (await conn.fetchrow(ADD_INTAKE_NOTE, ticket_id, kind, body, author, details, CHANNEL))["id"]
