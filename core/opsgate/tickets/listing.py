"""The ticket list statement, composed from fixed fragments.

Only the filters a request actually gives are added, so each combination is
its own prepared statement with a plan that fits it (a single statement with
`($1 IS NULL OR col = $1)` gets a generic plan that scans everything).
Values always go in as parameters; no input reaches the SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsgate.auth.principal import Principal
from opsgate.auth.scope import ticket_scope

# Every column but provider_payload (detail only).
LIST_COLUMNS = (
    "t.id, t.title, t.description, t.ticket_class, t.status, t.previous_status, t.priority, t.assignee, "
    "t.assignee_team, t.owning_group, t.security_classification, t.requester_name, t.requester_email, "
    "t.requester_phone, t.affected_user, t.affected_user_email, t.created_by, t.agent_id, t.provider, "
    "t.provider_ref, t.provider_class, t.provider_url, t.provider_sync_status, t.provider_last_error, "
    "t.created_at, t.updated_at, t.resolved_at, t.closed_at"
)
SEARCH_EXPR = "(t.title || ' ' || t.description)"  # matches the tickets_search_idx expression

# Up to this many matching rows `total` is exact; beyond it, the planner's estimate.
COUNT_CAP = 1_000


@dataclass(frozen=True)
class TicketFilters:
    statuses: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    assignee: str | None = None
    agent_only: bool = False
    provider: str | None = None
    q: str | None = None


@dataclass(frozen=True)
class ListQuery:
    rows_sql: str
    rows_params: list[Any]
    count_sql: str
    count_params: list[Any]
    estimate_sql: str
    estimate_params: list[Any]


def like_pattern(text: str) -> str:
    """`%text%` with LIKE wildcards in `text` escaped (backslash is the default escape)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def where_clause(filters: TicketFilters, principal: Principal, first_param: int = 1) -> tuple[str, list[Any]]:
    """(`WHERE ...` or "", params) for the filters given and the principal's scope."""
    parts: list[str] = []
    params: list[Any] = []

    def add(fragment: str, value: Any) -> None:
        params.append(value)
        parts.append(fragment.format(n=first_param + len(params) - 1))

    if len(filters.statuses) == 1:
        add("t.status = ${n}::text", filters.statuses[0])
    elif filters.statuses:
        add("t.status = ANY(${n}::text[])", list(filters.statuses))
    if len(filters.priorities) == 1:
        add("t.priority = ${n}::text", filters.priorities[0])
    elif filters.priorities:
        add("t.priority = ANY(${n}::text[])", list(filters.priorities))
    if filters.assignee is not None:
        add("t.assignee = ${n}::text", filters.assignee)
    if filters.agent_only:
        parts.append("t.agent_id IS NOT NULL")
    if filters.provider is not None:
        add("t.provider = ${n}::text", filters.provider)
    if filters.q:
        add(SEARCH_EXPR + " ILIKE ${n}::text", like_pattern(filters.q))
    scope_sql, scope_params = ticket_scope(principal, "t", first_param + len(params))
    if scope_sql:
        parts.append(scope_sql)
        params.extend(scope_params)
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


def build(filters: TicketFilters, principal: Principal, limit: int, offset: int) -> ListQuery:
    """The page, capped count and estimate statements for one list request."""
    where, params = where_clause(filters, principal)
    n = len(params)
    # Deferred join: page the ids first (an index-only walk of the filter's index,
    # which the planner prefers to gambling on a walk of the whole primary key),
    # then read just those rows.
    rows_sql = (f"SELECT {LIST_COLUMNS} FROM tickets t JOIN (SELECT t.id FROM tickets t{where} "
                f"ORDER BY t.id DESC LIMIT ${n + 1}::integer OFFSET ${n + 2}::integer) page ON page.id = t.id "
                "ORDER BY t.id DESC")
    count_sql = f"SELECT count(*) FROM (SELECT 1 FROM tickets t{where} LIMIT ${n + 1}::integer) s"
    estimate_sql = f"EXPLAIN (FORMAT JSON) SELECT 1 FROM tickets t{where}"
    return ListQuery(rows_sql=rows_sql, rows_params=[*params, limit, offset],
                     count_sql=count_sql, count_params=[*params, COUNT_CAP + 1],
                     estimate_sql=estimate_sql, estimate_params=list(params))


RELATED_LIMIT = 10


def related(principal: Principal, ticket_id: int, requester_email: str) -> tuple[str, list[Any]]:
    """Other tickets in scope from the same requester, newest first."""
    scope_sql, scope_params = ticket_scope(principal, "t", 3)
    where = "lower(t.requester_email) = lower($1::text) AND t.id <> $2::bigint"
    if scope_sql:
        where += " AND " + scope_sql
    n = 3 + len(scope_params)
    return (f"SELECT {LIST_COLUMNS} FROM tickets t WHERE {where} ORDER BY t.id DESC LIMIT ${n}::integer",
            [requester_email, ticket_id, *scope_params, RELATED_LIMIT])
