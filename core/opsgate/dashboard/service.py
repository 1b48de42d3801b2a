"""Dashboard overview and the merged audit feed, both limited to the caller's ticket scope."""

from __future__ import annotations

from asyncpg import Connection

from opsgate.auth.principal import Principal
from opsgate.changes import service as changes
from opsgate.dashboard import feed, stats
from opsgate.dashboard.schemas import AuditFeed, DashboardStats, FeedEntry, TicketCounts, TrendDay
from opsgate.errors import Invalid
from opsgate.tickets import vocab

RECENT_ACTIVITY = 20


def _csv(value: str | None) -> list[str]:
    return [] if value is None else [p for p in (s.strip() for s in value.split(",")) if p]


def _text(value: str | None, field: str, max_length: int = 200) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > max_length:
        raise Invalid(field, f"must be at most {max_length} characters")
    return value or None


def feed_filters(*, actor: str | None = None, action: str | None = None, source: str | None = None,
                 category: str | None = None, level: str | None = None, target: str | None = None,
                 q: str | None = None, ticket_id: int | None = None,
                 agent_id: int | None = None) -> feed.FeedFilters:
    sources = tuple(dict.fromkeys(s.lower() for s in _csv(source))) or feed.SOURCES
    for s in sources:
        if s not in feed.SOURCES:
            raise Invalid("source", f"unknown source {s!r}; must be one of {', '.join(feed.SOURCES)}")
    target_type = target_id = None
    target = _text(target, "target")
    if target:
        target_type, _, rest = target.partition(":")
        target_id = rest or None
    return feed.FeedFilters(sources=sources, actor=_text(actor, "actor"), action=_text(action, "action"),
                            category=_text(category, "category"), level=_text(level, "level"),
                            target_type=target_type or None, target_id=target_id, q=_text(q, "q"),
                            ticket_id=ticket_id, agent_id=agent_id)


async def audit_feed(conn: Connection, principal: Principal, filters: feed.FeedFilters, limit: int) -> AuditFeed:
    built = feed.build(filters, principal, limit)
    if built is None:
        return AuditFeed(audit=[], count=0)
    statement, params = built
    rows = await conn.fetch(statement, *params)
    entries = [FeedEntry(**dict(r)) for r in rows]
    return AuditFeed(audit=entries, count=len(entries))


async def overview(conn: Connection, principal: Principal) -> DashboardStats:
    statement, params = stats.status_counts(principal)
    params[0:2] = [list(vocab.STATUSES), stats.COUNT_CAP + 1]
    counts = {row["status"]: row["n"] for row in await conn.fetch(statement, *params)}
    exact = True
    for status, n in counts.items():
        if n > stats.COUNT_CAP:
            exact = False
            statement, params = stats.status_estimate(principal)
            params[0] = status
            plan = await conn.fetchval(statement, *params)
            counts[status] = max(n, int(plan[0]["Plan"]["Plan Rows"]))
    statement, params = stats.trend(principal)
    trend = [TrendDay(date=r["day"], created=r["created"], resolved=r["resolved"])
             for r in await conn.fetch(statement, *params)]
    recent = await audit_feed(conn, principal, feed.FeedFilters(), RECENT_ACTIVITY)
    return DashboardStats(
        tickets=TicketCounts(total=sum(counts.values()), open=sum(counts[s] for s in vocab.OPEN_STATUSES),
                             by_status=counts, exact=exact),
        trend=trend,
        pending_changes=await changes.pending_count(conn, principal),
        recent_activity=recent.audit,
    )
