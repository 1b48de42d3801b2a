"""Overview statements, composed with the caller's ticket scope."""

from __future__ import annotations

from typing import Any

from opsgate.auth.principal import Principal
from opsgate.auth.scope import ticket_scope

TREND_DAYS = 7
# Per status, counts are exact up to this many tickets; beyond it the planner's
# estimate (counting a million index entries costs hundreds of milliseconds).
COUNT_CAP = 10_000


def status_counts(principal: Principal) -> tuple[str, list[Any]]:
    """Capped count per status ($1: statuses, $2: cap): one index-only walk of tickets_status_idx each."""
    scope_sql, params = ticket_scope(principal, "t", 3)
    scope = f" AND {scope_sql}" if scope_sql else ""
    return ("SELECT s.status, (SELECT count(*) FROM (SELECT 1 FROM tickets t WHERE t.status = s.status"
            f"{scope} LIMIT $2::integer) capped) AS n FROM unnest($1::text[]) AS s(status)"), [None, None, *params]


def status_estimate(principal: Principal) -> tuple[str, list[Any]]:
    """EXPLAIN of one status's rows ($1), for the estimate of a status above the cap."""
    scope_sql, params = ticket_scope(principal, "t", 2)
    scope = f" AND {scope_sql}" if scope_sql else ""
    return f"EXPLAIN (FORMAT JSON) SELECT 1 FROM tickets t WHERE t.status = $1::text{scope}", [None, *params]


def trend(principal: Principal) -> tuple[str, list[Any]]:
    """Tickets created and resolved per UTC day over the last TREND_DAYS days (today included)."""
    scope_sql, params = ticket_scope(principal, "t", 2)
    scope = f" AND {scope_sql}" if scope_sql else ""
    since = ("(date_trunc('day', now() AT TIME ZONE 'UTC') - ($1::integer - 1) * interval '1 day') "
             "AT TIME ZONE 'UTC'")
    statement = (
        f"WITH days AS (SELECT generate_series(({since} AT TIME ZONE 'UTC')::date, "
        "(now() AT TIME ZONE 'UTC')::date, interval '1 day')::date AS day), "
        "created AS (SELECT (t.created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM tickets t "
        f"WHERE t.created_at >= {since}{scope} GROUP BY 1), "
        "resolved AS (SELECT (t.resolved_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM tickets t "
        f"WHERE t.resolved_at >= {since}{scope} GROUP BY 1) "
        "SELECT d.day, COALESCE(c.n, 0) AS created, COALESCE(r.n, 0) AS resolved FROM days d "
        "LEFT JOIN created c ON c.day = d.day LEFT JOIN resolved r ON r.day = d.day ORDER BY d.day"
    )
    return statement, [TREND_DAYS, *params]
