"""POST /api/tickets/{id}/notes: validation, steering events, agent rules, idempotency."""

import asyncio
import json

import asyncpg
import pytest

from opsgate.tickets.vocab import HUMAN_SOURCES


@pytest.fixture
async def db(db_url):
    conn = await asyncpg.connect(db_url)
    yield conn
    await conn.close()


@pytest.fixture
async def ticket(admin_client):
    return (await admin_client.post("/api/tickets", json={"title": "Phishing"})).json()


async def note_events(db, note_id):
    rows = await db.fetch("SELECT actor, ticket_id, payload::text AS p FROM event_log "
                          "WHERE kind = 'ticket_note_added' AND payload->>'note_id' = $1", str(note_id))
    return [(r["actor"], r["ticket_id"], json.loads(r["p"])) for r in rows]


async def test_note_is_stored_and_returned(admin_client, db, ticket):
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/notes", json={
        "body": "Scoped recipients and found no additional delivery.", "author": "agent_26", "source": "agent",
        "visibility": "internal", "details": {"step": 3}})
    assert r.status_code == 201, r.text
    n = r.json()
    assert (n["ticket_id"], n["kind"], n["author"], n["source"], n["visibility"]) == (
        ticket["id"], "note", "agent_26", "agent", "internal")
    assert n["details"] == {"step": 3} and n["steer"] is False
    row = await db.fetchrow("SELECT body, author, source FROM ticket_notes WHERE id = $1", n["id"])
    assert tuple(row) == ("Scoped recipients and found no additional delivery.", "agent_26", "agent")


@pytest.mark.parametrize("source", sorted(HUMAN_SOURCES))
async def test_human_and_provider_notes_publish_a_steering_event(admin_client, db, ticket, source):
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/notes", json={"body": "please also check VPN",
                                                                          "source": source})
    assert r.status_code == 201 and r.json()["steer"] is True
    [(actor, ticket_id, payload)] = await note_events(db, r.json()["id"])
    assert ticket_id == ticket["id"] and payload["steer"] is True and payload["source"] == source
    assert actor.startswith("test-platform-admin")


@pytest.mark.parametrize("source", ["agent", "control-plane", "runner", "system"])
async def test_agent_and_control_plane_notes_do_not_steer(admin_client, db, ticket, source):
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/notes", json={"body": "progress", "source": source})
    assert r.status_code == 201 and r.json()["steer"] is False
    [(_, _, payload)] = await note_events(db, r.json()["id"])
    assert payload["steer"] is False


async def test_default_source_is_dashboard_for_people(admin_client, ticket):
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/notes", json={"body": "hi"})
    assert r.json()["source"] == "dashboard" and r.json()["steer"] is True
    assert r.json()["author"].startswith("test-platform-admin")


async def test_note_event_is_notified(admin_client, db, ticket):
    got: list[str] = []
    await db.add_listener("opsgate_events", lambda *args: got.append(args[3]))
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/notes", json={"body": "hi"})
    event_id = await db.fetchval("SELECT id FROM event_log WHERE payload->>'note_id' = $1", str(r.json()["id"]))
    for _ in range(100):
        if str(event_id) in got:
            break
        await asyncio.sleep(0.02)
    # The wake-ups go out after the commit (opsgate.events.notifier): the ticket fixture's may arrive too.
    assert str(event_id) in got and got.count(str(event_id)) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({}, "body"), ({"body": ""}, "body"), ({"body": "   "}, "body"),
    ({"body": "é" * 33000}, "body"),
    ({"body": "b", "visibility": "secret"}, "visibility"), ({"body": "b", "source": "Bad Source!"}, "source"),
    ({"body": "b", "author": "x" * 201}, "author"), ({"body": "b", "details": "text"}, "details"),
    ({"body": "b", "unknown": True}, "unknown"),
])
async def test_bad_note_input_is_400_and_writes_nothing(admin_client, db, ticket, body, field):
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/notes", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == field
    assert await db.fetchval("SELECT count(*) FROM ticket_notes WHERE kind = 'note'") == 0
    assert await db.fetchval("SELECT count(*) FROM event_log WHERE payload->>'kind' = 'note'") == 0


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"body": 7}, "body", "Expected `str`, got `int`"),
    ({"body": "x" * 65537}, "body", "length <= 65536"),
    ({}, "body", "missing required field `body`"),
    ({"body": "b", "zz": 1}, "zz", "unknown field `zz`"),
    ({"body": "b", "author": 5}, "author", "got `int`"),
    ([{"body": "b"}], "body", "Expected `object`, got `array`"),
])
async def test_body_rejected_by_the_schema_is_400_naming_the_field(admin_client, db, ticket, body, field, message):
    # A field literally named "body" is named as such, and so is the request body as a whole.
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/notes", json=body)
    assert r.status_code == 400
    error = r.json()["errors"][0]
    assert (error["field"], message in error["message"]) == (field, True), r.text
    assert await db.fetchval("SELECT count(*) FROM ticket_notes WHERE kind = 'note'") == 0


async def test_note_of_exactly_64_kib_is_accepted(admin_client, ticket):
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/notes", json={"body": "x" * 65536})
    assert r.status_code == 201


async def test_note_on_unknown_ticket_is_404(admin_client, db):
    r = await admin_client.post("/api/tickets/123456/notes", json={"body": "hello"})
    assert r.status_code == 404
    assert await db.fetchval("SELECT count(*) FROM ticket_notes") == 0


async def test_visibility_values(admin_client, ticket):
    for v in ("internal", "user", "public", "USER"):
        r = await admin_client.post(f"/api/tickets/{ticket['id']}/notes", json={"body": "b", "visibility": v})
        assert r.status_code == 201 and r.json()["visibility"] == v.lower()


async def test_agent_notes_are_attributed_and_cannot_claim_a_human_source(make_client, db_url, db, ticket):
    from opsgate.auth.service import mint_agent_token
    from opsgate.db.pool import connect

    conn = await connect(db_url)
    try:
        token = await mint_agent_token(conn, agent_id=26, ticket_id=ticket["id"], task_id=None)
    finally:
        await conn.close()
    async with make_client(token=token) as c:
        r = await c.post(f"/api/tickets/{ticket['id']}/notes", json={"body": "progress 50%", "author": "Ann"})
        assert r.status_code == 201
        assert (r.json()["author"], r.json()["source"], r.json()["agent_id"], r.json()["steer"]) == (
            "agent_26", "agent", 26, False)
        r = await c.post(f"/api/tickets/{ticket['id']}/notes", json={"body": "steer myself", "source": "dashboard"})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "source"
    assert await db.fetchval("SELECT count(*) FROM ticket_notes WHERE source = 'dashboard'") == 0


async def test_idempotent_note_retry_returns_the_first_note(admin_client, db, ticket):
    tid = ticket["id"]
    body = {"body": "only once", "source": "dashboard"}
    first = await admin_client.post(f"/api/tickets/{tid}/notes", json=body, headers={"Idempotency-Key": "n-1"})
    again = await admin_client.post(f"/api/tickets/{tid}/notes", json=body, headers={"Idempotency-Key": "n-1"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"] and again.json()["idempotent_replay"] is True
    assert await db.fetchval("SELECT count(*) FROM ticket_notes WHERE kind = 'note'") == 1
    assert len(await note_events(db, first.json()["id"])) == 1
    changed = await admin_client.post(f"/api/tickets/{tid}/notes", json={"body": "other"},
                                      headers={"Idempotency-Key": "n-1"})
    assert changed.status_code == 409
    other = (await admin_client.post("/api/tickets", json={"title": "t2"})).json()
    elsewhere = await admin_client.post(f"/api/tickets/{other['id']}/notes", json=body,
                                        headers={"Idempotency-Key": "n-1"})
    assert elsewhere.status_code == 409  # same key, different ticket: a different request
    assert await db.fetchval("SELECT count(*) FROM ticket_notes WHERE kind = 'note'") == 1


async def test_concurrent_idempotent_note_retries(admin_client, db, ticket):
    responses = await asyncio.gather(*(
        admin_client.post(f"/api/tickets/{ticket['id']}/notes", json={"body": "racing"},
                          headers={"Idempotency-Key": "race-n"}) for _ in range(8)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await db.fetchval("SELECT count(*) FROM ticket_notes WHERE kind = 'note'") == 1
    assert await db.fetchval("SELECT count(*) FROM event_log WHERE payload->>'kind' = 'note'") == 1


async def test_notes_on_closed_tickets_are_allowed(admin_client, ticket):
    await admin_client.post(f"/api/tickets/{ticket['id']}/status", json={"status": "closed"})
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/notes", json={"body": "post-mortem pointer"})
    assert r.status_code == 201


async def test_auditor_cannot_add_notes(make_client, make_token, ticket):
    async with make_client(token=await make_token("auditor")) as c:
        r = await c.post(f"/api/tickets/{ticket['id']}/notes", json={"body": "x"})
        assert r.status_code == 403 and r.json()["required_permission"] == "tickets:note"
