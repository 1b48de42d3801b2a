"""The merged audit feed statement (audit_log + event_log + ticket_notes), from fixed fragments.

Each branch is ordered and limited on its own, so each one walks its
`created_at` index and stops after `limit` rows; the outer query merges at
most 3 x limit rows. Only the filters given are added (see tickets.listing
for why), and values are always parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsgate.auth.principal import Principal
from opsgate.auth.scope import ticket_scope
from opsgate.tickets.listing import like_pattern

SOURCES: tuple[str, ...] = ("audit", "event", "note")
NOTE_ACTION = "ticket_note"
NOTE_CATEGORY = "ticket"
NOTE_LEVEL = "info"


def _json_id(column: str, key: str) -> str:
    """A bigint from a JSON key when it holds a plain number, else NULL (never a cast error)."""
    return (f"CASE WHEN {column} ->> '{key}' ~ '^[0-9]{{1,18}}$' "
            f"THEN ({column} ->> '{key}')::bigint END")


# Per branch: the table, and SQL for each output column.
_BRANCHES: dict[str, dict[str, str]] = {
    "audit": {
        "from": "audit_log x",
        "actor": "x.actor",
        "action": "x.action",
        "category": "x.category",
        "level": "x.level",
        "target_type": "x.target_type",
        "target_id": "x.target_id",
        "ticket_id": f"COALESCE(x.ticket_id, {_json_id('x.details', 'ticket_id')})",
        "agent_id": f"COALESCE(x.agent_id, {_json_id('x.details', 'agent_id')})",
        "message": "x.action",
        "details": "x.details",
        "json": "x.details",
        "raw_ticket": "x.ticket_id",
        "raw_agent": "x.agent_id",
    },
    "event": {
        "from": "event_log x",
        "actor": "x.actor",
        "action": "x.kind",
        "category": "x.category",
        "level": "x.level",
        "target_type": "CASE WHEN x.ticket_id IS NOT NULL THEN 'ticket' END",
        "target_id": "x.ticket_id::text",
        "ticket_id": f"COALESCE(x.ticket_id, {_json_id('x.payload', 'ticket_id')})",
        "agent_id": f"COALESCE(x.agent_id, {_json_id('x.payload', 'agent_id')})",
        "message": "x.kind",
        "details": "x.payload",
        "json": "x.payload",
        "raw_ticket": "x.ticket_id",
        "raw_agent": "x.agent_id",
    },
    "note": {
        "from": "ticket_notes x",
        "actor": "x.author",
        "action": f"'{NOTE_ACTION}'::text",
        "category": f"'{NOTE_CATEGORY}'::text",
        "level": f"'{NOTE_LEVEL}'::text",
        "target_type": "'ticket'::text",
        "target_id": "x.ticket_id::text",
        "ticket_id": "x.ticket_id",
        "agent_id": "x.agent_id",
        "message": "left(x.body, 1000)",
        "details": ("jsonb_build_object('note_id', x.id, 'note_kind', x.kind, 'source', x.source, "
                    "'visibility', x.visibility) || x.details"),
        "json": "",
        "raw_ticket": "x.ticket_id",
        "raw_agent": "x.agent_id",
    },
}


@dataclass(frozen=True)
class FeedFilters:
    sources: tuple[str, ...] = SOURCES
    actor: str | None = None
    action: str | None = None
    category: str | None = None
    level: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    q: str | None = None
    ticket_id: int | None = None
    agent_id: int | None = None


class _Params:
    def __init__(self) -> None:
        self.values: list[Any] = []
        self._index: dict[tuple[str, Any], int] = {}

    def ref(self, name: str, value: Any) -> str:
        """`$n` for a named value; the same name and value reuse one parameter in every branch."""
        key = (name, value)
        if key not in self._index:
            self.values.append(value)
            self._index[key] = len(self.values)
        return f"${self._index[key]}"


def _branch(source: str, f: FeedFilters, p: _Params, scope_sql: str) -> str | None:
    """One branch's SELECT, or None when the filters exclude the whole source."""
    b = _BRANCHES[source]
    where: list[str] = []
    if f.actor is not None:
        where.append(f"{b['actor']} = {p.ref('actor', f.actor)}::text")
    for field in ("action", "category", "level"):
        value = getattr(f, field)
        if value is None:
            continue
        if source == "note":
            fixed = {"action": NOTE_ACTION, "category": NOTE_CATEGORY, "level": NOTE_LEVEL}[field]
            if value != fixed:
                return None
            continue
        where.append(f"{b[field]} = {p.ref(field, value)}::text")
    if f.target_type is not None:
        if source == "audit":
            where.append(f"x.target_type = {p.ref('target_type', f.target_type)}::text")
            if f.target_id is not None:
                where.append(f"x.target_id = {p.ref('target_id', f.target_id)}::text")
        else:
            if f.target_type != "ticket":
                return None
            where.append("x.ticket_id IS NOT NULL")
            if f.target_id is not None:
                if not f.target_id.isdigit() or len(f.target_id) > 18:
                    return None
                where.append(f"x.ticket_id = {p.ref('target_num', int(f.target_id))}::bigint")
    if f.q:
        pattern = p.ref("q", like_pattern(f.q))
        if source == "note":
            where.append(f"(x.body ILIKE {pattern}::text OR x.author ILIKE {pattern}::text)")
        else:
            where.append(f"({b['action']} ILIKE {pattern}::text OR x.actor ILIKE {pattern}::text "
                         f"OR {b['json']}::text ILIKE {pattern}::text)")
    for key, value in (("ticket_id", f.ticket_id), ("agent_id", f.agent_id)):
        if value is None:
            continue
        num = p.ref(key, value) + "::bigint"
        if source == "note":
            where.append(f"{b['raw_' + key.split('_')[0]]} = {num}")
        else:
            raw = b["raw_" + key.split("_")[0]]
            text = p.ref(key + "_text", str(value)) + "::text"
            # Matches the partial expression indexes of migration 0003.
            where.append(f"({raw} = {num} OR ({raw} IS NULL AND {b['json']} ? '{key}' "
                         f"AND {b['json']} ->> '{key}' = {text}))")
    if scope_sql:
        tid = b["ticket_id"]
        visible = f"EXISTS (SELECT 1 FROM tickets t WHERE t.id = {tid} AND {scope_sql})"
        where.append(visible if source == "note" else f"({tid} IS NULL OR {visible})")
    limit = p.ref("limit", None)
    columns = ", ".join(f"{b[c]} AS {c}" for c in ("actor", "action", "category", "level", "target_type",
                                                  "target_id", "ticket_id", "agent_id", "message", "details"))
    where_sql = " WHERE " + " AND ".join(where) if where else ""
    return (f"(SELECT '{source}'::text AS source, x.id, x.created_at, {columns} FROM {b['from']}{where_sql} "
            f"ORDER BY x.created_at DESC, x.id DESC LIMIT {limit}::integer)")


def build(filters: FeedFilters, principal: Principal, limit: int) -> tuple[str, list[Any]] | None:
    """(statement, params) of the merged feed, newest first; None when no source can match."""
    p = _Params()
    p.ref("limit", None)  # $1 is the limit
    p.values[0] = limit
    scope_sql = ""
    if principal.kind == "agent" or principal.groups is not None or principal.max_classification != "secret":
        # The scope fragment's own parameters come after $1; ticket_scope numbers them itself.
        scope_sql, scope_params = ticket_scope(principal, "t", 2)
        p.values.extend(scope_params)
        p._index.update({("scope", i): 2 + i for i in range(len(scope_params))})
    branches = [sql for sql in (_branch(s, filters, p, scope_sql) for s in SOURCES if s in filters.sources) if sql]
    if not branches:
        return None
    statement = ("SELECT * FROM (" + " UNION ALL ".join(branches)
                 + ") feed ORDER BY created_at DESC, source, id DESC LIMIT $1::integer")
    return statement, p.values
