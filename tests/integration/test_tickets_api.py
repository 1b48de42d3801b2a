"""POST/GET /api/tickets and GET /api/tickets/{id}: fields, validation, providers, scoping, idempotency."""

import asyncio
import json
import types

import asyncpg
import pytest

from opsgate import hookimpl
from opsgate.testing import audit_rows


@pytest.fixture
async def db(db_url):
    conn = await asyncpg.connect(db_url)
    yield conn
    await conn.close()


async def create(client, **fields):
    body = {"title": "Investigate phishing report", **fields}
    r = await client.post("/api/tickets", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_returns_ticket_and_writes_note_audit_and_events(admin_client, db):
    r = await admin_client.post("/api/tickets", json={
        "title": "Investigate phishing report", "description": "User reported suspicious email.",
        "ticket_class": "Incident", "status": "new", "priority": "2", "created_by": "dashboard",
        "auto_assign": True, "owning_group": "SOC", "security_classification": "confidential",
        "requester_name": "Ann", "requester_email": "ann@example.com", "affected_user": "bob",
    })
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["id"] > 0
    assert (t["title"], t["status"], t["priority"], t["ticket_class"]) == (
        "Investigate phishing report", "new", "P2", "Incident")
    assert t["provider"] == "local" and t["provider_sync_status"] == "local_only"
    assert t["provider_ref"] == f"LOCAL-{t['id']}" and t["provider_class"] == "Incident"
    assert t["created_by"] == "dashboard" and t["owning_group"] == "SOC"
    assert t["requester_email"] == "ann@example.com" and t["affected_user"] == "bob"
    assert t["security_classification"] == "confidential"
    # RACI auto-assignment (issue 8) matches the seeded phishing rule; with no harness loaded the runner refuses.
    auto = t["auto_assignment"]
    assert (auto["requested"], auto["matched"], auto["agent_id"]) == (True, True, None) and auto["rule_id"]
    assert auto["reason"].startswith("the agent runner refused the spawn")
    assert t["external_url"] is None and t["change_requests"] == [] and t["agent"] is None

    row = await db.fetchrow("SELECT * FROM tickets WHERE id = $1", t["id"])
    assert row["title"] == "Investigate phishing report" and row["priority"] == "P2"
    notes = await db.fetch("SELECT * FROM ticket_notes WHERE ticket_id = $1", t["id"])
    assert [(n["kind"], n["source"]) for n in notes] == [("created", "control-plane"), ("agent", "intake")]
    assert notes[0]["author"] == "dashboard"
    audit = await audit_rows(db, "ticket_created")
    assert len(audit) == 1 and audit[0]["ticket_id"] == t["id"] and audit[0]["actor"].startswith("test-platform")
    events = await db.fetch("SELECT kind, payload::text AS payload FROM event_log WHERE ticket_id = $1 ORDER BY id",
                            t["id"])
    assert sorted(e["kind"] for e in events) == ["ticket_auto_assign_skipped", "ticket_created", "ticket_note_added",
                                                 "ticket_note_added"]
    assert all('"steer": false' in e["payload"] for e in events if e["kind"] == "ticket_note_added")


async def test_create_notifies_listeners(admin_client, db):
    got: list[str] = []
    await db.add_listener("opsgate_events", lambda *args: got.append(args[3]))
    t = await create(admin_client)
    for _ in range(50):
        if len(got) >= 2:
            break
        await asyncio.sleep(0.02)
    ids = {str(r["id"]) for r in await db.fetch("SELECT id FROM event_log WHERE ticket_id = $1", t["id"])}
    assert set(got) == ids and len(ids) == 2


async def test_defaults_and_normalisation(admin_client):
    t = await create(admin_client, ticket_class="change", priority="p1")
    assert (t["ticket_class"], t["priority"], t["status"]) == ("NormalChange", "P1", "new")
    t = await create(admin_client, priority=4, ticket_class="EmergencyChange")
    assert (t["priority"], t["ticket_class"]) == ("P4", "EmergencyChange")
    t = await create(admin_client)
    assert (t["priority"], t["ticket_class"], t["security_classification"]) == ("P3", "Incident", "internal")
    assert t["auto_assignment"]["requested"] is False
    assert t["created_by"].startswith("test-platform-admin")


@pytest.mark.parametrize(("body", "field"), [
    ({}, "title"),
    ({"title": ""}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "x" * 501}, "title"),
    ({"title": 5}, "title"),
    ({"title": "ok", "status": "open"}, "status"),
    ({"title": "ok", "ticket_class": "Problem"}, "ticket_class"),
    ({"title": "ok", "priority": "P5"}, "priority"),
    ({"title": "ok", "priority": 0}, "priority"),
    ({"title": "ok", "priority": True}, "priority"),
    ({"title": "ok", "security_classification": "top"}, "security_classification"),
    ({"title": "ok", "description": "é" * 40000}, "description"),
    ({"title": "ok", "sync_provider": "no"}, "sync_provider"),
    ({"title": "ok", "provider": "nosuch"}, "provider"),
    ({"title": "ok", "surprise": 1}, "surprise"),
    ({"title": "ok", "requester_email": "x" * 400}, "requester_email"),
])
async def test_bad_input_is_400_naming_the_field_and_writes_nothing(admin_client, db, body, field):
    r = await admin_client.post("/api/tickets", json=body)
    assert r.status_code == 400, r.text
    assert field in [e["field"] for e in r.json()["errors"]]
    assert await db.fetchval("SELECT count(*) FROM tickets") == 0
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'ticket_created'") == 0


async def test_unknown_vocabulary_lists_allowed_values(admin_client):
    r = await admin_client.post("/api/tickets", json={"title": "x", "status": "open"})
    assert "awaiting_user_response" in r.json()["errors"][0]["message"]
    r = await admin_client.post("/api/tickets", json={"title": "x", "ticket_class": "Problem"})
    assert "UserRequest" in r.json()["errors"][0]["message"]


async def test_malformed_json_is_400(admin_client):
    r = await admin_client.post("/api/tickets", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400


async def test_check_constraints_enforce_vocabularies(db):
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("INSERT INTO tickets (title, created_by, status) VALUES ('x', 'y', 'open')")
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("INSERT INTO tickets (title, created_by, ticket_class) VALUES ('x', 'y', 'Change')")
    tid = await db.fetchval("INSERT INTO tickets (title, created_by) VALUES ('x', 'y') RETURNING id")
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("INSERT INTO ticket_notes (ticket_id, body, author, source, visibility) "
                         "VALUES ($1, 'b', 'a', 'dashboard', 'secret')", tid)


def test_vocabularies_match_the_check_constraints():
    from importlib import resources

    from opsgate.tickets import vocab

    text = resources.files("opsgate.db.migrations").joinpath("0003_tickets.sql").read_text()
    status_check = "CHECK (status IN (" + ", ".join(f"'{s}'" for s in vocab.STATUSES[:3])
    assert status_check in text
    for value in (*vocab.STATUSES, *vocab.CLASSES, *vocab.VISIBILITIES, *vocab.PRIORITIES):
        assert f"'{value}'" in text


async def test_active_provider_marks_pending_create_unless_sync_provider_false(make_app, make_client, admin_token,
                                                                               db):
    app = make_app(ticket_provider="itop")
    async with make_client(app, token=admin_token) as c:
        synced = await create(c, title="goes to itop")
        local = await create(c, title="stays here", sync_provider=False)
        explicit_local = await create(c, title="explicit", provider="local")
    assert (synced["provider"], synced["provider_sync_status"], synced["provider_ref"]) == (
        "itop", "pending_create", None)
    assert (local["provider"], local["provider_sync_status"], local["provider_ref"]) == (
        "local", "local_only", f"LOCAL-{local['id']}")
    assert explicit_local["provider"] == "local"
    audit = {a["ticket_id"]: json.loads(a["details"]) for a in await audit_rows(db, "ticket_created")}
    assert audit[local["id"]]["sync_provider"] is False and audit[local["id"]]["provider"] == "local"
    assert audit[synced["id"]]["sync_provider"] is True and audit[synced["id"]]["provider"] == "itop"


async def test_external_url_comes_from_the_provider_plugin(make_app, make_client, admin_token, db):
    mod = types.ModuleType("fx_urlprov")

    class Prov:
        name = "fx"
        ticket_classes = ("Incident",)
        capabilities: dict = {}

        def external_url(self, provider_class, provider_ref):
            return f"https://itsm.example/{provider_class}/{provider_ref}"

    mod.opsgate_ticket_providers = hookimpl(lambda: [Prov()])
    app = make_app(plugins=[("fx", mod)], ticket_provider="fx")
    async with make_client(app, token=admin_token) as c:
        t = await create(c)
        assert t["provider"] == "fx" and t["external_url"] is None  # not delivered yet
        await db.execute("UPDATE tickets SET provider_ref = 'R-9', provider_class = 'Incident', "
                         "provider_sync_status = 'synced' WHERE id = $1", t["id"])
        r = await c.get(f"/api/tickets/{t['id']}")
        assert r.json()["external_url"] == "https://itsm.example/Incident/R-9"
        listed = (await c.get("/api/tickets")).json()["tickets"]
        assert listed[0]["external_url"] == "https://itsm.example/Incident/R-9"


async def test_get_ticket_and_404s(admin_client):
    t = await create(admin_client)
    r = await admin_client.get(f"/api/tickets/{t['id']}")
    assert r.status_code == 200
    assert r.json()["id"] == t["id"] and r.json()["provider_payload"] == {}
    r = await admin_client.get("/api/tickets/999999")
    assert r.status_code == 404 and r.json()["status"] == 404
    assert (await admin_client.get("/api/tickets/abc")).status_code in (400, 404)


async def test_requires_authentication_and_permission(client, make_client, make_token):
    assert (await client.get("/api/tickets")).status_code == 401
    assert (await client.post("/api/tickets", json={"title": "x"})).status_code == 401
    auditor = await make_token("auditor")
    async with make_client(token=auditor) as c:
        assert (await c.get("/api/tickets")).status_code == 200
        r = await c.post("/api/tickets", json={"title": "x"})
        assert r.status_code == 403 and r.json()["required_permission"] == "tickets:create"


# --- list ---------------------------------------------------------------------------


async def test_list_filters_paging_and_total(admin_client, db):
    a = await create(admin_client, title="VPN outage", priority="P1", assignee="alice")
    b = await create(admin_client, title="Printer jam", priority="P3", assignee="bob")
    c = await create(admin_client, title="Phishing 100% sure_thing", priority="P1", status="in_progress")
    await db.execute("UPDATE tickets SET agent_id = 7 WHERE id = $1", b["id"])
    await db.execute("UPDATE tickets SET provider = 'itop', provider_sync_status = 'pending_create' WHERE id = $1",
                     a["id"])

    async def ids(query):
        r = await admin_client.get("/api/tickets" + query)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["tickets"]]

    body = (await admin_client.get("/api/tickets")).json()
    assert [t["id"] for t in body["tickets"]] == [c["id"], b["id"], a["id"]]
    assert (body["total"], body["total_exact"], body["limit"], body["offset"]) == (3, True, 100, 0)
    assert await ids("?status=in_progress") == [c["id"]]
    assert await ids("?status=new,in_progress") == [c["id"], b["id"], a["id"]]
    assert await ids("?priority=1") == [c["id"], a["id"]]
    assert await ids("?priority=P1&status=new") == [a["id"]]
    assert await ids("?assignee=bob") == [b["id"]]
    assert await ids("?agent_only=true") == [b["id"]]
    assert await ids("?agent_only=false") == [c["id"], b["id"], a["id"]]
    assert await ids("?provider=itop") == [a["id"]]
    assert await ids("?q=vpn") == [a["id"]]
    assert await ids("?q=100%25") == [c["id"]]  # % is literal, not a wildcard
    assert await ids("?q=_") == [c["id"]]
    assert await ids("?limit=1&offset=1") == [b["id"]]
    r = await admin_client.get("/api/tickets?limit=1&offset=1")
    assert r.json()["total"] == 3 and r.json()["limit"] == 1 and r.json()["offset"] == 1


@pytest.mark.parametrize(("query", "field"), [
    ("?limit=0", "limit"), ("?limit=501", "limit"), ("?limit=x", "limit"), ("?offset=-1", "offset"),
    ("?status=open", "status"), ("?priority=P9", "priority"), ("?agent_only=maybe", "agent_only"),
])
async def test_list_bad_query_is_400_naming_the_parameter(admin_client, query, field):
    r = await admin_client.get("/api/tickets" + query)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == field


async def test_list_limit_bounds_accepted(admin_client):
    assert (await admin_client.get("/api/tickets?limit=1")).status_code == 200
    assert (await admin_client.get("/api/tickets?limit=500")).status_code == 200


async def test_total_beyond_the_cap_is_an_estimate(admin_client, db):
    from opsgate.tickets.listing import COUNT_CAP

    await db.execute("INSERT INTO tickets (title, created_by) SELECT 'seed ' || g, 'x' FROM generate_series(1, $1) g",
                     COUNT_CAP + 500)
    await db.execute("ANALYZE tickets")
    body = (await admin_client.get("/api/tickets?limit=2")).json()
    assert body["total_exact"] is False and body["total"] > COUNT_CAP and len(body["tickets"]) == 2
    assert abs(body["total"] - (COUNT_CAP + 500)) < 1000
    body = (await admin_client.get("/api/tickets?limit=2&q=seed 1234")).json()
    assert body["total_exact"] is True and body["total"] == 1


# --- scoping ------------------------------------------------------------------------


async def test_group_scoped_analyst_sees_only_own_group(make_client, make_token, admin_client):
    soc = await create(admin_client, title="SOC ticket", owning_group="SOC")
    net = await create(admin_client, title="Network ticket", owning_group="Network")
    shared = await create(admin_client, title="No group")
    analyst = await make_token("analyst", groups=["SOC"])
    async with make_client(token=analyst) as c:
        listed = (await c.get("/api/tickets")).json()
        assert {t["id"] for t in listed["tickets"]} == {soc["id"], shared["id"]}
        assert listed["total"] == 2
        assert (await c.get(f"/api/tickets/{soc['id']}")).status_code == 200
        r = await c.get(f"/api/tickets/{net['id']}")
        assert r.status_code == 404 and "Network" not in r.text
        assert (await c.get(f"/api/tickets/{net['id']}/context")).status_code == 404
        r = await c.post(f"/api/tickets/{net['id']}/notes", json={"body": "peek"})
        assert r.status_code == 404
        assert (await c.get("/api/tickets?q=Network")).json()["tickets"] == []
        # cannot create outside the scope either
        r = await c.post("/api/tickets", json={"title": "x", "owning_group": "Network"})
        assert r.status_code == 403
        assert (await c.post("/api/tickets", json={"title": "x", "owning_group": "SOC"})).status_code == 201


async def test_classification_scoping(make_client, make_token, admin_client):
    secret = await create(admin_client, title="secret", security_classification="secret")
    internal = await create(admin_client, title="internal")
    analyst = await make_token("analyst")  # confidential clearance by role default
    async with make_client(token=analyst) as c:
        assert [t["id"] for t in (await c.get("/api/tickets")).json()["tickets"]] == [internal["id"]]
        assert (await c.get(f"/api/tickets/{secret['id']}")).status_code == 404
        r = await c.post("/api/tickets", json={"title": "x", "security_classification": "restricted"})
        assert r.status_code == 403


async def test_agent_token_sees_only_its_ticket(make_client, admin_client, db_url):
    from opsgate.auth.service import mint_agent_token
    from opsgate.db.pool import connect

    mine = await create(admin_client, title="mine")
    other = await create(admin_client, title="other")
    conn = await connect(db_url)
    try:
        token = await mint_agent_token(conn, agent_id=26, ticket_id=mine["id"], task_id=None)
    finally:
        await conn.close()
    async with make_client(token=token) as c:
        assert [t["id"] for t in (await c.get("/api/tickets")).json()["tickets"]] == [mine["id"]]
        assert (await c.get(f"/api/tickets/{mine['id']}")).status_code == 200
        assert (await c.get(f"/api/tickets/{other['id']}")).status_code == 404
        assert (await c.post("/api/tickets", json={"title": "x"})).status_code == 403


# --- idempotency ------------------------------------------------------------------------


async def test_idempotent_create_same_key_same_body_returns_first(admin_client, db):
    body = {"title": "Once only", "priority": "P2"}
    r1 = await admin_client.post("/api/tickets", json=body, headers={"Idempotency-Key": "abc-1"})
    r2 = await admin_client.post("/api/tickets", json=body, headers={"Idempotency-Key": "abc-1"})
    assert r1.status_code == r2.status_code == 201
    assert r1.json()["id"] == r2.json()["id"]
    assert r1.json()["idempotent_replay"] is False and r2.json()["idempotent_replay"] is True
    assert await db.fetchval("SELECT count(*) FROM tickets") == 1
    assert await db.fetchval("SELECT count(*) FROM ticket_notes") == 1
    assert len(await audit_rows(db, "ticket_created")) == 1
    r3 = await admin_client.post("/api/tickets", json={"title": "Different"}, headers={"Idempotency-Key": "abc-1"})
    assert r3.status_code == 409
    assert await db.fetchval("SELECT count(*) FROM tickets") == 1
    r4 = await admin_client.post("/api/tickets", json=body, headers={"Idempotency-Key": "abc-2"})
    assert r4.status_code == 201 and r4.json()["id"] != r1.json()["id"]


async def test_idempotent_create_concurrent_retries_make_one_ticket(admin_client, db):
    body = {"title": "Racing retries"}
    responses = await asyncio.gather(*(
        admin_client.post("/api/tickets", json=body, headers={"Idempotency-Key": "race"}) for _ in range(8)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await db.fetchval("SELECT count(*) FROM tickets") == 1
    assert await db.fetchval("SELECT count(*) FROM event_log WHERE kind = 'ticket_created'") == 1


async def test_idempotency_keys_are_per_caller(make_client, make_token, db):
    body = {"title": "Same key, two callers"}
    ids = []
    for _ in range(2):
        async with make_client(token=await make_token("soc-manager")) as c:
            r = await c.post("/api/tickets", json=body, headers={"Idempotency-Key": "shared"})
            assert r.status_code == 201
            ids.append(r.json()["id"])
    assert ids[0] != ids[1]


async def test_bad_idempotency_key_is_400(admin_client):
    r = await admin_client.post("/api/tickets", json={"title": "x"}, headers={"Idempotency-Key": "k" * 300})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "Idempotency-Key"
