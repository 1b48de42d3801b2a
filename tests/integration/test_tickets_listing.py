"""The composed statements (ticket list, related tickets, feed, stats): shape, parameters, and that each prepares."""

import itertools

import asyncpg
import pytest

from opsgate.auth.principal import LOCAL_ADMIN, Principal
from opsgate.dashboard import feed, stats
from opsgate.tickets import listing

ANALYST = Principal(kind="service", name="a", permissions=frozenset({"tickets:read"}),
                    max_classification="confidential", groups=("SOC", "Network"))
AGENT = Principal(kind="agent", name="agent_3", agent_id=3, ticket_id=42)
PRINCIPALS = [LOCAL_ADMIN, ANALYST, AGENT]

FILTER_SETS = [
    listing.TicketFilters(),
    listing.TicketFilters(statuses=("new",)),
    listing.TicketFilters(statuses=("new", "blocked"), priorities=("P1",)),
    listing.TicketFilters(priorities=("P1", "P2"), assignee="bob", agent_only=True, provider="itop", q="vpn"),
]


def test_no_filters_no_where():
    q = listing.build(listing.TicketFilters(), LOCAL_ADMIN, 100, 0)
    assert "WHERE" not in q.rows_sql
    assert q.rows_params == [100, 0] and q.count_params == [listing.COUNT_CAP + 1] and q.estimate_params == []


def test_only_given_filters_appear_and_values_are_parameters():
    f = listing.TicketFilters(statuses=("new",), assignee="x'; DROP TABLE tickets; --", q="50%_off")
    q = listing.build(f, LOCAL_ADMIN, 10, 5)
    assert "t.status = $1::text" in q.rows_sql and "t.assignee = $2::text" in q.rows_sql
    assert "ILIKE $3::text" in q.rows_sql
    assert "priority" not in q.rows_sql.split("FROM")[2] and "agent_id IS NOT NULL" not in q.rows_sql
    assert "DROP" not in q.rows_sql and "50%" not in q.rows_sql
    assert q.rows_params == ["new", "x'; DROP TABLE tickets; --", "%50\\%\\_off%", 10, 5]
    assert "IS NULL OR" not in q.rows_sql


def test_several_statuses_use_any():
    q = listing.build(listing.TicketFilters(statuses=("new", "blocked")), LOCAL_ADMIN, 10, 0)
    assert "t.status = ANY($1::text[])" in q.rows_sql and q.rows_params[0] == ["new", "blocked"]


def test_scope_fragments_follow_the_filters():
    q = listing.build(listing.TicketFilters(statuses=("new",)), ANALYST, 10, 0)
    assert "security_classification = ANY($2::text[])" in q.rows_sql
    assert "owning_group = ANY($3::text[])" in q.rows_sql
    assert q.rows_params[1:3] == [["public", "internal", "confidential"], ["SOC", "Network"]]
    q = listing.build(listing.TicketFilters(), AGENT, 10, 0)
    assert "t.id = $1::bigint" in q.rows_sql and q.rows_params[0] == 42


def test_like_pattern_escapes_wildcards():
    assert listing.like_pattern("a%b_c\\d") == "%a\\%b\\_c\\\\d%"


@pytest.fixture
async def conn(db_url):
    c = await asyncpg.connect(db_url)
    yield c
    await c.close()


async def test_every_list_variant_prepares_and_runs(conn):
    for f, p in itertools.product(FILTER_SETS, PRINCIPALS):
        q = listing.build(f, p, 10, 0)
        await conn.fetch(q.rows_sql, *q.rows_params)
        assert await conn.fetchval(q.count_sql, *q.count_params) == 0
        plan = await conn.fetchval(q.estimate_sql, *q.estimate_params)
        assert plan is not None
    for p in PRINCIPALS:
        statement, params = listing.related(p, 1, "a@example.com")
        await conn.fetch(statement, *params)


FEED_FILTERS = [
    feed.FeedFilters(),
    feed.FeedFilters(sources=("note",)),
    feed.FeedFilters(sources=("audit",), actor="a", action="b", category="c", level="info"),
    feed.FeedFilters(target_type="ticket", target_id="7", q="x", ticket_id=7, agent_id=3),
    feed.FeedFilters(target_type="service_token", target_id="abc"),
]


def test_feed_branches_are_ordered_and_limited_each():
    statement, params = feed.build(feed.FeedFilters(), LOCAL_ADMIN, 100)
    assert statement.count("ORDER BY x.created_at DESC, x.id DESC LIMIT $1::integer") == 3
    assert params == [100]


def test_feed_excludes_sources_that_cannot_match():
    statement, _ = feed.build(feed.FeedFilters(action="ticket_created"), LOCAL_ADMIN, 10)
    assert "ticket_notes" not in statement
    statement, _ = feed.build(feed.FeedFilters(target_type="service_token"), LOCAL_ADMIN, 10)
    assert "event_log" not in statement and "ticket_notes" not in statement
    assert feed.build(feed.FeedFilters(sources=("note",), level="error"), LOCAL_ADMIN, 10) is None


def test_feed_reuses_parameters_across_branches():
    statement, params = feed.build(feed.FeedFilters(actor="ann", ticket_id=5), ANALYST, 10)
    assert params.count("ann") == 1 and params.count(5) == 1
    assert params[:3] == [10, ["public", "internal", "confidential"], ["SOC", "Network"]]


async def test_every_feed_and_stats_variant_prepares_and_runs(conn):
    for f, p in itertools.product(FEED_FILTERS, PRINCIPALS):
        built = feed.build(f, p, 10)
        if built is not None:
            await conn.fetch(*[built[0], *built[1]])
    for p in PRINCIPALS:
        statement, params = stats.status_counts(p)
        await conn.fetch(statement, ["new", "closed"], 10, *params[2:])
        statement, params = stats.status_estimate(p)
        await conn.fetch(statement, "new", *params[1:])
        statement, params = stats.trend(p)
        await conn.fetch(statement, *params)
    rows = await conn.fetch(*[stats.trend(LOCAL_ADMIN)[0], *stats.trend(LOCAL_ADMIN)[1]])
    assert len(rows) == stats.TREND_DAYS
