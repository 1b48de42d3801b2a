"""Status, compatibility paths, assignment, request-info/user-response, attachments and context."""

import asyncio
import json

import asyncpg
import pytest

from opsgate.testing import audit_rows


@pytest.fixture
async def db(db_url):
    conn = await asyncpg.connect(db_url)
    yield conn
    await conn.close()


@pytest.fixture
async def ticket(admin_client):
    r = await admin_client.post("/api/tickets", json={"title": "Contain host", "requester_email": "ann@example.com"})
    assert r.status_code == 201
    return r.json()


async def agent_token(db_url, ticket_id, agent_id=26):
    from opsgate.auth.service import mint_agent_token
    from opsgate.db.pool import connect

    conn = await connect(db_url)
    try:
        return await mint_agent_token(conn, agent_id=agent_id, ticket_id=ticket_id, task_id=None)
    finally:
        await conn.close()


async def counts(db, ticket_id):
    return (await db.fetchval("SELECT count(*) FROM ticket_notes WHERE ticket_id = $1", ticket_id),
            await db.fetchval("SELECT count(*) FROM audit_log WHERE ticket_id = $1", ticket_id),
            await db.fetchval("SELECT count(*) FROM event_log WHERE ticket_id = $1", ticket_id))


# --- status -------------------------------------------------------------------------


async def test_status_change_writes_note_audit_and_events(admin_client, db, ticket):
    tid = ticket["id"]
    r = await admin_client.post(f"/api/tickets/{tid}/status", json={
        "status": "resolved", "actor": "agent-159", "reason": "All steps verified.", "close_provider": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ticket"]["status"] == "resolved" and body["ticket"]["previous_status"] == "new"
    assert body["ticket"]["resolved_at"] is not None and body["previous_status"] == "new"
    assert body["changed"] == {"status": {"from": "new", "to": "resolved"}}
    note = body["note"]
    assert note["kind"] == "status" and note["author"] == "agent-159" and note["source"] == "control-plane"
    assert "All steps verified." in note["body"] and note["steer"] is False
    assert note["details"]["close_provider"] is True
    row = await db.fetchrow("SELECT status, previous_status FROM tickets WHERE id = $1", tid)
    assert tuple(row) == ("resolved", "new")
    [audit] = await audit_rows(db, "ticket_status_changed")
    details = json.loads(audit["details"])
    assert (details["from_status"], details["to_status"], details["close_provider"]) == ("new", "resolved", True)
    assert details["note_id"] == note["id"] and details["reason"] == "All steps verified."
    kinds = [r["kind"] for r in await db.fetch(
        "SELECT kind FROM event_log WHERE ticket_id = $1 ORDER BY id", tid)]
    assert kinds.count("ticket_status_changed") == 1


async def test_status_change_events_are_notified_after_commit(admin_client, db, ticket):
    got: list[str] = []
    await db.add_listener("opsgate_events", lambda *args: got.append(args[3]))
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/status", json={"status": "blocked"})
    assert r.status_code == 200
    rows = await db.fetch("SELECT id FROM event_log WHERE ticket_id = $1 AND payload->>'note_id' = $2",
                          ticket["id"], str(r.json()["note"]["id"]))
    expected = {str(row["id"]) for row in rows}
    for _ in range(100):
        if expected <= set(got):
            break
        await asyncio.sleep(0.02)
    # Each event of the change is notified once (the ticket fixture's own wake-ups may arrive too).
    assert len(rows) == 2 and expected <= set(got) and all(got.count(i) == 1 for i in expected)


async def test_close_provider_false_is_recorded(admin_client, db, ticket):
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/status",
                                json={"status": "closed", "close_provider": False})
    assert r.status_code == 200 and r.json()["ticket"]["closed_at"] is not None
    [audit] = await audit_rows(db, "ticket_status_changed")
    assert json.loads(audit["details"])["close_provider"] is False
    assert r.json()["note"]["details"]["close_provider"] is False


@pytest.mark.parametrize("method", ["post", "put", "patch"])
async def test_compatibility_paths_share_the_status_rules(admin_client, db, ticket, method):
    tid = ticket["id"]
    send = getattr(admin_client, method)
    r = await send(f"/api/tickets/{tid}", json={"status": "in_progress", "reason": "working"})
    assert r.status_code == 200, r.text
    assert r.json()["ticket"]["status"] == "in_progress"
    assert (await send(f"/api/tickets/{tid}", json={"status": "in_progress"})).status_code == 409
    r = await send(f"/api/tickets/{tid}", json={"status": "done"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "status"
    assert (await send("/api/tickets/99999", json={"status": "resolved"})).status_code == 404
    assert len(await audit_rows(db, "ticket_status_changed")) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({}, "status"), ({"status": "open"}, "status"), ({"status": 3}, "status"),
    ({"status": "resolved", "close_provider": "yes"}, "close_provider"),
    ({"status": "resolved", "reason": "x" * 9000}, "reason"),
    ({"status": "resolved", "expected_status": "later"}, "expected_status"),
    ({"status": "resolved", "extra": 1}, "extra"),
])
async def test_status_bad_input(admin_client, db, ticket, body, field):
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/status", json=body)
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == field
    assert await counts(db, ticket["id"]) == (1, 1, 2)  # only the creation's rows


async def test_final_statuses_refuse_changes_and_same_status_is_409(admin_client, ticket):
    tid = ticket["id"]
    assert (await admin_client.post(f"/api/tickets/{tid}/status", json={"status": "new"})).status_code == 409
    assert (await admin_client.post(f"/api/tickets/{tid}/status", json={"status": "cancelled"})).status_code == 200
    r = await admin_client.post(f"/api/tickets/{tid}/status", json={"status": "in_progress"})
    assert r.status_code == 409 and "cancelled" in r.json()["detail"]


async def test_resolved_can_reopen(admin_client, ticket):
    tid = ticket["id"]
    assert (await admin_client.post(f"/api/tickets/{tid}/status", json={"status": "resolved"})).status_code == 200
    r = await admin_client.post(f"/api/tickets/{tid}/status", json={"status": "in_progress"})
    assert r.status_code == 200 and r.json()["ticket"]["previous_status"] == "resolved"


async def test_expected_status_mismatch_is_409(admin_client, ticket):
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/status",
                                json={"status": "resolved", "expected_status": "in_progress"})
    assert r.status_code == 409


async def test_concurrent_identical_status_changes_one_wins(make_client, admin_token, db, ticket):
    tid = ticket["id"]
    clients = [make_client(token=admin_token) for _ in range(2)]
    async with clients[0] as c1, clients[1] as c2:
        responses = await asyncio.gather(*(
            (c1 if i % 2 else c2).post(f"/api/tickets/{tid}/status", json={"status": "resolved"})
            for i in range(10)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 9
    assert len(await audit_rows(db, "ticket_status_changed")) == 1
    assert await db.fetchval("SELECT count(*) FROM ticket_notes WHERE ticket_id = $1 AND kind = 'status'", tid) == 1


async def test_concurrent_different_status_changes_never_lose_a_transition(admin_client, db, ticket):
    tid = ticket["id"]
    targets = ["in_progress", "blocked", "assigned", "pending_approval", "awaiting_access", "resolved"]
    responses = await asyncio.gather(*(
        admin_client.post(f"/api/tickets/{tid}/status", json={"status": s}) for s in targets))
    ok = [r.json() for r in responses if r.status_code == 200]
    assert {r.status_code for r in responses} <= {200, 409} and ok
    # the winners form one chain from "new": each starts where the previous ended
    chain = sorted(ok, key=lambda b: b["note"]["id"])
    assert chain[0]["previous_status"] == "new"
    for before, after in zip(chain, chain[1:], strict=False):
        assert after["previous_status"] == before["ticket"]["status"]
    final = await db.fetchval("SELECT status FROM tickets WHERE id = $1", tid)
    assert final == chain[-1]["ticket"]["status"]
    assert len(await audit_rows(db, "ticket_status_changed")) == len(ok)


async def test_analyst_without_status_permission_is_403(make_client, make_token, ticket):
    async with make_client(token=await make_token("analyst")) as c:
        r = await c.post(f"/api/tickets/{ticket['id']}/status", json={"status": "resolved"})
        assert r.status_code == 403 and r.json()["required_permission"] == "tickets:status"


async def test_agent_changes_status_of_its_own_ticket_only(make_client, admin_client, db_url, db, ticket):
    other = (await admin_client.post("/api/tickets", json={"title": "other"})).json()
    token = await agent_token(db_url, ticket["id"])
    async with make_client(token=token) as c:
        r = await c.post(f"/api/tickets/{ticket['id']}/status", json={"status": "in_progress", "actor": "spoof"})
        assert r.status_code == 200
        assert r.json()["note"]["author"] == "agent_26" and r.json()["note"]["source"] == "agent"
        assert r.json()["note"]["agent_id"] == 26
        assert (await c.post(f"/api/tickets/{other['id']}/status", json={"status": "resolved"})).status_code == 404
    [audit] = await audit_rows(db, "ticket_status_changed")
    assert audit["actor"] == "agent_26" and audit["actor_kind"] == "agent" and audit["agent_id"] == 26


# --- assignment -------------------------------------------------------------------------


async def test_assignment_updates_fields_and_writes_note(admin_client, db, ticket):
    tid = ticket["id"]
    r = await admin_client.post(f"/api/tickets/{tid}/assignment", json={
        "assignee_team": "Tier 2 Endpoint Support", "owning_group": "Endpoint Support",
        "assignee": "endpoint.tier2.demo", "escalation_tier": "Tier 2", "priority": "P2",
        "actor": "ops-chat-reassignment-smoke", "reason": "Requester clarified that endpoint packaging is required."})
    assert r.status_code == 200, r.text
    t = r.json()["ticket"]
    assert (t["assignee"], t["assignee_team"], t["owning_group"], t["priority"]) == (
        "endpoint.tier2.demo", "Tier 2 Endpoint Support", "Endpoint Support", "P2")
    note = r.json()["note"]
    assert note["kind"] == "assignment" and note["author"] == "ops-chat-reassignment-smoke"
    assert "Escalation tier: Tier 2" in note["body"] and "endpoint packaging" in note["body"]
    assert r.json()["changed"]["priority"] == {"from": "P3", "to": "P2"}
    [audit] = await audit_rows(db, "ticket_assignment_changed")
    details = json.loads(audit["details"])
    assert details["escalation_tier"] == "Tier 2" and details["changed"]["assignee"]["to"] == "endpoint.tier2.demo"
    assert await db.fetchval("SELECT count(*) FROM event_log WHERE kind = 'ticket_assignment_changed'") == 1


async def test_assignment_numeric_priority_and_clearing(admin_client, ticket):
    tid = ticket["id"]
    r = await admin_client.post(f"/api/tickets/{tid}/assignment", json={"priority": 1, "assignee": "a"})
    assert r.json()["ticket"]["priority"] == "P1"
    r = await admin_client.post(f"/api/tickets/{tid}/assignment", json={"assignee": None})
    assert r.status_code == 200 and r.json()["ticket"]["assignee"] is None
    assert r.json()["ticket"]["priority"] == "P1"  # untouched


@pytest.mark.parametrize(("body", "field"), [
    ({}, "body"), ({"reason": "only a reason"}, "body"), ({"priority": "P7"}, "priority"),
    ({"priority": None}, "priority"), ({"assignee": 5}, "assignee"), ({"owner": "x"}, "owner"),
])
async def test_assignment_bad_input(admin_client, db, ticket, body, field):
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/assignment", json=body)
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == field
    assert len(await audit_rows(db, "ticket_assignment_changed")) == 0


async def test_assignment_404_409_403(admin_client, make_client, make_token, ticket):
    assert (await admin_client.post("/api/tickets/99999/assignment", json={"assignee": "a"})).status_code == 404
    await admin_client.post(f"/api/tickets/{ticket['id']}/status", json={"status": "closed"})
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/assignment", json={"assignee": "a"})
    assert r.status_code == 409
    async with make_client(token=await make_token("analyst")) as c:
        r = await c.post(f"/api/tickets/{ticket['id']}/assignment", json={"assignee": "a"})
        assert r.status_code == 403


async def test_group_scoped_manager_cannot_move_a_ticket_out_of_scope(make_client, make_token, admin_client):
    t = (await admin_client.post("/api/tickets", json={"title": "x", "owning_group": "SOC"})).json()
    async with make_client(token=await make_token("soc-manager", groups=["SOC"])) as c:
        r = await c.post(f"/api/tickets/{t['id']}/assignment", json={"owning_group": "Network"})
        assert r.status_code == 403
        assert (await c.post(f"/api/tickets/{t['id']}/assignment", json={"assignee": "me"})).status_code == 200


async def test_concurrent_assignments_serialize_with_consistent_from_values(admin_client, db, ticket):
    tid = ticket["id"]
    names = [f"user{i}" for i in range(6)]
    responses = await asyncio.gather(*(
        admin_client.post(f"/api/tickets/{tid}/assignment", json={"assignee": n}) for n in names))
    assert {r.status_code for r in responses} == {200}
    chain = sorted((r.json() for r in responses), key=lambda b: b["note"]["id"])
    previous = None
    for body in chain:
        assert body["changed"]["assignee"]["from"] == previous
        previous = body["changed"]["assignee"]["to"]
    assert await db.fetchval("SELECT assignee FROM tickets WHERE id = $1", tid) == previous


# --- request-info / user-response ------------------------------------------------------


async def test_request_info_then_user_response_restores_status(admin_client, db, ticket):
    tid = ticket["id"]
    await admin_client.post(f"/api/tickets/{tid}/status", json={"status": "in_progress"})
    r = await admin_client.post(f"/api/tickets/{tid}/request-info", json={
        "question": "Which mailbox received it?", "requested_by": "agent_26", "contact_method": "email",
        "recipient": "ann@example.com", "context": "Need the recipient list."})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ticket"]["status"] == "awaiting_user_response"
    assert body["ticket"]["previous_status"] == "in_progress"
    assert body["note"]["visibility"] == "user" and body["note"]["kind"] == "request_info"
    assert body["note"]["body"] == "Which mailbox received it?"
    assert body["note"]["details"]["contact_method"] == "email"
    # a second question while waiting keeps the remembered status
    r = await admin_client.post(f"/api/tickets/{tid}/request-info", json={"question": "And when?"})
    assert r.status_code == 200 and r.json()["ticket"]["previous_status"] == "in_progress"

    r = await admin_client.post(f"/api/tickets/{tid}/user-response", json={
        "response": "The finance mailbox.", "responder_name": "Ann", "responder_email": "ann@example.com",
        "resume_agent": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ticket"]["status"] == "in_progress"
    note = body["note"]
    assert (note["kind"], note["source"], note["visibility"], note["author"]) == (
        "user_response", "user-response", "user", "Ann")
    assert note["steer"] is True and note["details"]["resume_agent"] is True
    assert len(await audit_rows(db, "ticket_info_requested")) == 2
    assert len(await audit_rows(db, "ticket_user_response")) == 1
    steer = await db.fetch("SELECT payload::text AS p FROM event_log WHERE kind = 'ticket_note_added' "
                           "AND (payload->>'note_id')::bigint = $1", note["id"])
    assert len(steer) == 1 and json.loads(steer[0]["p"])["steer"] is True


async def test_user_response_when_not_waiting_is_409_and_writes_nothing(admin_client, db, ticket):
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/user-response", json={"response": "hi"})
    assert r.status_code == 409
    assert await counts(db, ticket["id"]) == (1, 1, 2)


async def test_request_info_on_final_or_resolved_is_409(admin_client, ticket):
    await admin_client.post(f"/api/tickets/{ticket['id']}/status", json={"status": "resolved"})
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/request-info", json={"question": "?"})
    assert r.status_code == 409


@pytest.mark.parametrize(("path", "body", "field"), [
    ("request-info", {}, "question"), ("request-info", {"question": " "}, "question"),
    ("request-info", {"question": "é" * 40000}, "question"), ("request-info", {"question": "q", "x": 1}, "x"),
    ("user-response", {}, "response"), ("user-response", {"response": ""}, "response"),
    ("user-response", {"response": "r", "resume_agent": "sure"}, "resume_agent"),
])
async def test_request_info_user_response_bad_input(admin_client, ticket, path, body, field):
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/{path}", json=body)
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == field


async def test_agent_may_ask_but_not_answer(make_client, db_url, admin_client, ticket):
    token = await agent_token(db_url, ticket["id"])
    async with make_client(token=token) as c:
        r = await c.post(f"/api/tickets/{ticket['id']}/request-info", json={"question": "Which host?"})
        assert r.status_code == 200 and r.json()["note"]["source"] == "agent"
        assert r.json()["note"]["steer"] is False
        r = await c.post(f"/api/tickets/{ticket['id']}/user-response", json={"response": "host-1"})
        assert r.status_code == 403
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/user-response", json={"response": "host-1"})
    assert r.status_code == 200 and r.json()["ticket"]["status"] == "new"


async def test_user_response_404(admin_client):
    assert (await admin_client.post("/api/tickets/424242/user-response", json={"response": "x"})).status_code == 404


# --- attachments and context ------------------------------------------------------------


async def test_attachment_metadata(admin_client, db, ticket):
    tid = ticket["id"]
    note = (await admin_client.post(f"/api/tickets/{tid}/notes", json={"body": "evidence attached"})).json()
    r = await admin_client.post(f"/api/tickets/{tid}/attachments", json={
        "filename": "headers.eml", "content_type": "message/rfc822", "size_bytes": 2048,
        "storage_ref": "s3://bucket/headers.eml", "sha256": "A" * 64, "note_id": note["id"],
        "metadata": {"uploaded_via": "matrix"}})
    assert r.status_code == 201, r.text
    a = r.json()
    assert (a["filename"], a["size_bytes"], a["sha256"], a["note_id"]) == ("headers.eml", 2048, "a" * 64,
                                                                           note["id"])
    assert a["metadata"] == {"uploaded_via": "matrix"} and a["uploaded_by"].startswith("test-platform")
    [audit] = await audit_rows(db, "ticket_attachment_added")
    assert audit["ticket_id"] == tid and audit["target_id"] == str(a["id"])
    assert await db.fetchval("SELECT count(*) FROM event_log WHERE kind = 'ticket_attachment_added'") == 1


@pytest.mark.parametrize(("body", "field"), [
    ({}, "filename"), ({"filename": ""}, "filename"), ({"filename": "x" * 256}, "filename"),
    ({"filename": "a", "size_bytes": -1}, "size_bytes"), ({"filename": "a", "sha256": "xyz"}, "sha256"),
    ({"filename": "a", "note_id": "n"}, "note_id"), ({"filename": "a", "metadata": []}, "metadata"),
])
async def test_attachment_bad_input(admin_client, db, ticket, body, field):
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/attachments", json=body)
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == field
    assert await db.fetchval("SELECT count(*) FROM ticket_attachments") == 0


async def test_attachment_note_of_another_ticket_is_400(admin_client, db, ticket):
    other = (await admin_client.post("/api/tickets", json={"title": "other"})).json()
    note = (await admin_client.post(f"/api/tickets/{other['id']}/notes", json={"body": "n"})).json()
    r = await admin_client.post(f"/api/tickets/{ticket['id']}/attachments",
                                json={"filename": "a", "note_id": note["id"]})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "note_id"
    assert (await admin_client.post("/api/tickets/9999/attachments", json={"filename": "a"})).status_code == 404
    assert len(await audit_rows(db, "ticket_attachment_added")) == 0


CONTEXT_KEYS = {"ticket", "notes", "attachments", "change_requests", "tasks", "postmortems", "related_tickets",
                "knowledge_articles", "workflows", "skills", "access_requests"}


async def test_context_bundle(admin_client, ticket):
    tid = ticket["id"]
    await admin_client.post(f"/api/tickets/{tid}/notes", json={"body": "first finding"})
    await admin_client.post(f"/api/tickets/{tid}/attachments", json={"filename": "log.txt"})
    related = (await admin_client.post("/api/tickets", json={"title": "earlier", "requester_email": "ANN@example.com"}
                                       )).json()
    await admin_client.post("/api/tickets", json={"title": "unrelated", "requester_email": "zed@example.com"})
    r = await admin_client.get(f"/api/tickets/{tid}/context")
    assert r.status_code == 200
    ctx = r.json()
    assert set(ctx) == CONTEXT_KEYS
    assert ctx["ticket"]["id"] == tid
    assert [n["kind"] for n in ctx["notes"]] == ["created", "note"]  # oldest first
    assert [a["filename"] for a in ctx["attachments"]] == ["log.txt"]
    assert [t["id"] for t in ctx["related_tickets"]] == [related["id"]]
    for key in ("change_requests", "tasks", "postmortems", "knowledge_articles", "workflows", "skills",
                "access_requests"):
        assert ctx[key] == []
    assert (await admin_client.get("/api/tickets/99999/context")).status_code == 404


async def test_context_related_tickets_respect_scope(admin_client, make_client, make_token):
    mine = (await admin_client.post("/api/tickets", json={"title": "a", "owning_group": "SOC",
                                                          "requester_email": "x@example.com"})).json()
    await admin_client.post("/api/tickets", json={"title": "b", "owning_group": "Network",
                                                  "requester_email": "x@example.com"})
    async with make_client(token=await make_token("analyst", groups=["SOC"])) as c:
        ctx = (await c.get(f"/api/tickets/{mine['id']}/context")).json()
        assert ctx["related_tickets"] == []
