"""GET /api/dashboard/stats and GET /api/dashboard/audit: merge, filters, normalisation, scoping."""

import asyncpg
import pytest


@pytest.fixture
async def db(db_url):
    conn = await asyncpg.connect(db_url)
    yield conn
    await conn.close()


async def create(client, **fields):
    r = await client.post("/api/tickets", json={"title": "t", **fields})
    assert r.status_code == 201, r.text
    return r.json()


async def feed(client, query=""):
    r = await client.get("/api/dashboard/audit" + query)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["audit"])
    return body["audit"]


async def test_feed_merges_audit_event_and_note_rows_newest_first(admin_client):
    t = await create(admin_client, title="Phishing")
    await admin_client.post(f"/api/tickets/{t['id']}/notes", json={"body": "Found the sender.", "author": "ann"})
    rows = await feed(admin_client, f"?ticket_id={t['id']}")
    assert {r["source"] for r in rows} == {"audit", "event", "note"}
    stamps = [r["created_at"] for r in rows]
    assert stamps == sorted(stamps, reverse=True)
    note = next(r for r in rows if r["source"] == "note" and r["details"]["note_kind"] == "note")
    assert (note["actor"], note["action"], note["message"], note["ticket_id"]) == (
        "ann", "ticket_note", "Found the sender.", t["id"])
    assert note["details"]["source"] == "dashboard" and note["details"]["visibility"] == "internal"
    audit = next(r for r in rows if r["source"] == "audit")
    assert audit["action"] == "ticket_created" and audit["target_type"] == "ticket"
    assert audit["target_id"] == str(t["id"])
    assert {r["action"] for r in rows if r["source"] == "event"} == {"ticket_created", "ticket_note_added"}
    assert rows[0]["details"]  # every row carries its details object


async def test_feed_filters(admin_client, db):
    a = await create(admin_client, title="A")
    b = await create(admin_client, title="B")
    await admin_client.post(f"/api/tickets/{b['id']}/status", json={"status": "in_progress"})
    await admin_client.post(f"/api/tickets/{a['id']}/notes", json={"body": "needle in a haystack", "author": "zed"})
    await db.execute("INSERT INTO audit_log (actor, action, category, level, details) "
                     "VALUES ('sys', 'login_failed', 'access', 'warning', '{}')")

    assert {r["ticket_id"] for r in await feed(admin_client, f"?ticket_id={b['id']}")} == {b["id"]}
    assert {r["source"] for r in await feed(admin_client, "?source=note")} == {"note"}
    assert {r["source"] for r in await feed(admin_client, "?source=audit,event")} == {"audit", "event"}
    rows = await feed(admin_client, "?action=ticket_status_changed")
    assert {(r["source"], r["ticket_id"]) for r in rows} == {("audit", b["id"]), ("event", b["id"])}
    assert [r["action"] for r in await feed(admin_client, "?level=warning")] == ["login_failed"]
    # the admin token's own creation is an access audit row too
    assert [r["action"] for r in await feed(admin_client, "?category=access")] == [
        "login_failed", "service_token_created"]
    assert {r["actor"] for r in await feed(admin_client, "?actor=zed")} == {"zed"}
    assert [r["message"] for r in await feed(admin_client, "?q=haystack")] == ["needle in a haystack"]
    rows = await feed(admin_client, f"?target=ticket:{a['id']}")
    assert rows and {r["ticket_id"] for r in rows} == {a["id"]}
    assert {r["source"] for r in await feed(admin_client, "?action=ticket_note")} == {"note"}
    assert len(await feed(admin_client, "?limit=2")) == 2
    assert await feed(admin_client, "?action=nothing_like_this") == []


async def test_feed_normalises_ids_from_json_details(admin_client, db):
    t = await create(admin_client)
    await db.execute("INSERT INTO audit_log (actor, action, details) VALUES ('gate', 'change_approved', $1::jsonb)",
                     f'{{"ticket_id": "{t["id"]}", "agent_id": 26}}')
    await db.execute("INSERT INTO event_log (kind, payload) VALUES ('agent_progress', $1::jsonb)",
                     f'{{"ticket_id": {t["id"]}, "agent_id": "26"}}')
    await db.execute("INSERT INTO audit_log (actor, action, details) VALUES ('x', 'odd', '{\"ticket_id\": \"abc\"}')")
    rows = await feed(admin_client, f"?ticket_id={t['id']}")
    normalised = {r["action"]: (r["ticket_id"], r["agent_id"]) for r in rows if r["actor"] in ("gate", None)}
    assert normalised["change_approved"] == (t["id"], 26)
    assert normalised["agent_progress"] == (t["id"], 26)
    by_agent = await feed(admin_client, "?agent_id=26")
    assert {r["action"] for r in by_agent} == {"change_approved", "agent_progress"}
    odd = [r for r in await feed(admin_client, "?action=odd")]
    assert odd[0]["ticket_id"] is None  # a non-numeric id is not a cast error


@pytest.mark.parametrize(("query", "field"), [
    ("?limit=0", "limit"), ("?limit=501", "limit"), ("?source=logs", "source"), ("?ticket_id=x", "ticket_id"),
    ("?agent_id=0", "agent_id"), ("?actor=" + "a" * 201, "actor"),
])
async def test_feed_bad_query_is_400(admin_client, query, field):
    r = await admin_client.get("/api/dashboard/audit" + query)
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == field


async def test_feed_permissions(make_client, make_token, client):
    assert (await client.get("/api/dashboard/audit")).status_code == 401
    async with make_client(token=await make_token("analyst")) as c:
        r = await c.get("/api/dashboard/audit")
        assert r.status_code == 403 and r.json()["required_permission"] == "audit:read"
        assert (await c.get("/api/dashboard/stats")).status_code == 200


async def test_feed_and_stats_respect_group_scope(make_client, make_token, admin_client, db):
    soc = await create(admin_client, title="soc", owning_group="SOC")
    net = await create(admin_client, title="net", owning_group="Network")
    await admin_client.post(f"/api/tickets/{net['id']}/notes", json={"body": "network secret detail"})
    await admin_client.post(f"/api/tickets/{net['id']}/status", json={"status": "in_progress"})
    await db.execute("INSERT INTO audit_log (actor, action, details) VALUES ('gate', 'x', $1::jsonb)",
                     f'{{"ticket_id": {net["id"]}}}')
    await db.execute("INSERT INTO audit_log (actor, action) VALUES ('sys', 'no_ticket')")
    auditor = await make_token("auditor", groups=["SOC"])
    async with make_client(token=auditor) as c:
        rows = await feed(c)
        assert net["id"] not in {r["ticket_id"] for r in rows}
        assert soc["id"] in {r["ticket_id"] for r in rows}
        assert "no_ticket" in {r["action"] for r in rows}  # rows about no ticket stay visible
        assert await feed(c, f"?ticket_id={net['id']}") == []
        assert await feed(c, "?q=network secret") == []
        stats = (await c.get("/api/dashboard/stats")).json()
        assert stats["tickets"]["total"] == 1 and stats["tickets"]["by_status"]["new"] == 1
        assert net["id"] not in {r["ticket_id"] for r in stats["recent_activity"]}


async def test_stats_counts_trend_and_recent_activity(admin_client, db):
    a = await create(admin_client)
    b = await create(admin_client)
    await create(admin_client)
    await admin_client.post(f"/api/tickets/{a['id']}/status", json={"status": "resolved"})
    await admin_client.post(f"/api/tickets/{b['id']}/status", json={"status": "closed"})
    await db.execute("INSERT INTO tickets (title, created_by, created_at) VALUES ('old', 'x', now() - interval '30 days')")
    r = await admin_client.get("/api/dashboard/stats")
    assert r.status_code == 200
    s = r.json()
    counts = s["tickets"]
    assert counts["total"] == 4 and counts["open"] == 2 and counts["exact"] is True
    assert counts["by_status"]["new"] == 2 and counts["by_status"]["resolved"] == 1
    assert counts["by_status"]["closed"] == 1
    assert set(counts["by_status"]) >= {"awaiting_user_response", "pending_approval", "rejected"}
    assert len(s["trend"]) == 7
    assert s["trend"][-1]["created"] == 3 and s["trend"][-1]["resolved"] == 1
    assert sum(d["created"] for d in s["trend"]) == 3  # the 30-day-old ticket is outside the window
    assert s["pending_changes"] == 0
    activity = s["recent_activity"]
    assert 0 < len(activity) <= 20 and {r["source"] for r in activity} == {"audit", "event", "note"}


async def test_stats_counts_above_the_cap_are_estimates(admin_client, db):
    from opsgate.dashboard.stats import COUNT_CAP

    await db.execute("INSERT INTO tickets (title, created_by, status) "
                     "SELECT 'c' || g, 'x', 'closed' FROM generate_series(1, $1) g", COUNT_CAP + 2000)
    await db.execute("INSERT INTO tickets (title, created_by) VALUES ('open one', 'x')")
    await db.execute("ANALYZE tickets")
    counts = (await admin_client.get("/api/dashboard/stats")).json()["tickets"]
    assert counts["exact"] is False
    assert counts["by_status"]["new"] == 1 and counts["open"] == 1
    assert abs(counts["by_status"]["closed"] - (COUNT_CAP + 2000)) < 1500
