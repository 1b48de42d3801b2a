"""Approval gates: state machine, races, separation of duties, expiry, digest binding, timeline, resume."""

import asyncio

import pytest

from opsgate.auth import service as auth
from opsgate.changes import service as changes
from opsgate.changes.sweeper import sweep_once
from opsgate.testing import audit_rows


@pytest.fixture
def ticket(admin_client):
    async def create(**extra):
        r = await admin_client.post("/api/tickets", json={"title": "Phishing URL", "sync_provider": False, **extra})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    return create


@pytest.fixture
def agent_client(make_client, open_db):
    """`async with agent_client(agent_id, ticket_id) as c`: a client holding a per-agent token."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def open_(agent_id, ticket_id):
        async with open_db() as conn:
            token = await auth.mint_agent_token(conn, agent_id=agent_id, ticket_id=ticket_id, task_id=None)
        async with make_client(token=token) as c:
            yield c

    return open_


def _gate(ticket_id, **extra):
    return {"ticket_id": ticket_id, "action": "block_url", "target": "https://example.invalid/phish",
            "reason": "Confirmed phishing URL.", "command": "no-op in lab", "risk_level": "medium",
            "approval_policy": {"requires_human": True}, **extra}


async def _insert_agent(conn, ticket_id, *, status="pending_approval", created_by="alice"):
    return await conn.fetchval(
        "INSERT INTO agents (ticket_id, name, status, harness, model, task_type, created_by) "
        "VALUES ($1, 'test agent', $2, 'fake', 'fake-model', 'ticket_resolution', $3) RETURNING id",
        ticket_id, status, created_by)


async def test_request_approve_complete_writes_audit_event_and_timeline(ticket, agent_client, admin_client, open_db):
    tid = await ticket()
    async with agent_client(26, tid) as agent:
        r = await agent.post("/api/changes/request", json=_gate(tid))
        assert r.status_code == 201, r.text
        gate = r.json()
        assert gate["status"] == "pending" and gate["agent_id"] == 26 and gate["requested_by"] == "agent_26"
        assert gate["digest"] == changes.gate_digest("block_url", "https://example.invalid/phish", "no-op in lab", tid)
        assert gate["approval_gate"] is True and gate["seconds_until_expiry"] > 3000

        poll = await agent.get(f"/api/changes/{gate['id']}/status")
        assert poll.status_code == 200 and poll.json()["status"] == "pending" and not poll.json()["can_execute"]

        r = await admin_client.post(f"/api/changes/{gate['id']}/approve",
                                    json={"approved_by": "operator", "reason": "Reviewed evidence."})
        assert r.status_code == 200, r.text
        decision = r.json()
        assert decision["change"]["status"] == "approved" and decision["change"]["approval_mode"] == "manual_approval"
        assert decision["change"]["auto_approved"] is False and decision["change"]["decided_for"] == "operator"
        assert decision["resume"]["action"] == "none"

        assert (await agent.get(f"/api/changes/{gate['id']}/status")).json()["can_execute"] is True
        r = await agent.post(f"/api/changes/{gate['id']}/complete",
                             json={"completed_by": "agent_26", "result": "URL block applied with evidence."})
        assert r.status_code == 200, r.text
        assert r.json()["change"]["status"] == "completed" and r.json()["change"]["completed_by"] == "agent_26"

    async with open_db() as conn:
        notes = await conn.fetch("SELECT kind, body, details FROM ticket_notes WHERE ticket_id = $1 AND kind = 'change'"
                                 " ORDER BY id", tid)
        approved = await audit_rows(conn, "change_approved")
        kinds = [r["kind"] for r in await conn.fetch(
            "SELECT kind FROM event_log WHERE category = 'change' AND ticket_id = $1 ORDER BY id", tid)]
        trail = [r["action"] for r in await conn.fetch(
            "SELECT action FROM audit_log WHERE category = 'change' AND ticket_id = $1 ORDER BY id", tid)]
    assert [n["body"].split(" ")[0:3] for n in notes][0][:2] == ["Approval", "requested"]
    assert "approved by operator" in notes[1]["body"] and "completed by agent_26" in notes[2]["body"]
    assert [n["details"]["status"] for n in notes] == ["pending", "approved", "completed"]
    assert trail == ["change_requested", "change_approved", "change_completed"]
    assert kinds == ["change_requested", "change_approved", "change_completed"]
    details = approved[0]["details"]
    assert details["approval_gate"] is True and details["approval_mode"] == "manual_approval"
    assert details["auto_approved"] is False and approved[0]["actor"].startswith("test-platform-admin")


async def test_twenty_concurrent_approvals_exactly_one_wins(ticket, admin_client, make_token, make_client, open_db):
    tid = await ticket()
    gate = (await admin_client.post("/api/changes/request", json=_gate(tid))).json()
    tokens = [await make_token("soc-manager") for _ in range(20)]

    async def approve(token):
        async with make_client(token=token) as c:
            return await c.post(f"/api/changes/{gate['id']}/approve", json={"reason": "race"})

    results = await asyncio.gather(*(approve(t) for t in tokens))
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [409] * 19, [r.text for r in results if r.status_code not in (200, 409)]
    async with open_db() as conn:
        assert len(await audit_rows(conn, "change_approved")) == 1
        assert await conn.fetchval("SELECT count(*) FROM ticket_notes WHERE ticket_id = $1 AND body LIKE "
                                   "'%approved by%'", tid) == 1


async def test_repeat_approve_by_same_approver_is_idempotent(ticket, admin_client, make_token, make_client, open_db):
    tid = await ticket()
    gate = (await admin_client.post("/api/changes/request", json=_gate(tid))).json()
    async with make_client(token=await make_token("soc-manager")) as approver:
        first = await approver.post(f"/api/changes/{gate['id']}/approve", json={})
        again = await approver.post(f"/api/changes/{gate['id']}/approve", json={})
        assert first.status_code == 200 and again.status_code == 200
        assert again.json()["idempotent_replay"] is True and again.json()["note_id"] is None
        assert again.json()["change"]["decided_at"] == first.json()["change"]["decided_at"]
    async with make_client(token=await make_token("soc-manager")) as other:
        assert (await other.post(f"/api/changes/{gate['id']}/approve", json={})).status_code == 409
        assert (await other.post(f"/api/changes/{gate['id']}/reject", json={})).status_code == 409
    async with open_db() as conn:
        assert len(await audit_rows(conn, "change_approved")) == 1


async def test_requester_and_spawner_cannot_approve(ticket, make_token, make_client, agent_client, admin_client,
                                                     open_db):
    tid = await ticket()
    alice_token = await make_token("soc-manager")
    async with make_client(token=alice_token) as alice:
        me = (await alice.get("/api/access/me")).json()["actor"]
        own = (await alice.post("/api/changes/request", json=_gate(tid))).json()
        r = await alice.post(f"/api/changes/{own['id']}/approve", json={})
        assert r.status_code == 403 and "cannot approve" in r.json()["detail"]
        async with open_db() as conn:
            agent_id = await _insert_agent(conn, tid, created_by=me)
        async with agent_client(agent_id, tid) as agent:
            spawned = (await agent.post("/api/changes/request", json=_gate(tid))).json()
            assert spawned["spawned_by"] == me
            # the agent itself lacks changes:approve; the guard refuses it
            assert (await agent.post(f"/api/changes/{spawned['id']}/approve", json={})).status_code == 403
        r = await alice.post(f"/api/changes/{spawned['id']}/approve", json={})
        assert r.status_code == 403
    # a service principal may not name the requester as the human it acts for either
    r = await admin_client.post(f"/api/changes/{spawned['id']}/approve", json={"approved_by": me})
    assert r.status_code == 403
    r = await admin_client.post(f"/api/changes/{spawned['id']}/approve", json={"approved_by": "bob"})
    assert r.status_code == 200 and r.json()["change"]["decided_for"] == "bob"
    async with open_db() as conn:
        assert await conn.fetchval("SELECT status FROM change_requests WHERE id = $1", own["id"]) == "pending"


async def test_high_risk_needs_approve_high(ticket, admin_client, make_token, make_client, open_db):
    tid = await ticket()
    async with open_db() as conn:  # a deployment's own role: approves, but not high risk
        await conn.execute("INSERT INTO roles (name, permissions) VALUES "
                           "('change-approver', ARRAY['tickets:read', 'changes:read', 'changes:approve'])")
    medium = (await admin_client.post("/api/changes/request", json=_gate(tid))).json()
    high = (await admin_client.post("/api/changes/request", json=_gate(tid, risk_level="HIGH"))).json()
    assert high["risk_level"] == "high"
    async with make_client(token=await make_token("change-approver")) as approver:
        r = await approver.post(f"/api/changes/{high['id']}/approve", json={})
        assert r.status_code == 403 and r.json()["required_permission"] == "changes:approve_high"
        assert (await approver.post(f"/api/changes/{medium['id']}/approve", json={})).status_code == 200
        # rejecting is always allowed to an approver
        assert (await approver.post(f"/api/changes/{high['id']}/reject", json={"reason": "no"})).status_code == 200
    high2 = (await admin_client.post("/api/changes/request", json=_gate(tid, risk_level="critical"))).json()
    async with make_client(token=await make_token("soc-manager")) as manager:
        assert (await manager.post(f"/api/changes/{high2['id']}/approve", json={})).status_code == 200


async def test_complete_needs_approved_gate_and_evidence(ticket, admin_client, make_token, make_client):
    tid = await ticket()
    pending = (await admin_client.post("/api/changes/request", json=_gate(tid))).json()
    r = await admin_client.post(f"/api/changes/{pending['id']}/complete", json={"result": "done"})
    assert r.status_code == 409 and "pending" in r.json()["detail"]
    async with make_client(token=await make_token("soc-manager")) as approver:
        assert (await approver.post(f"/api/changes/{pending['id']}/reject", json={"reason": "x"})).status_code == 200
        r = await admin_client.post(f"/api/changes/{pending['id']}/complete", json={"result": "done"})
        assert r.status_code == 409 and "rejected" in r.json()["detail"]
        gate = (await admin_client.post("/api/changes/request", json=_gate(tid))).json()
        assert (await approver.post(f"/api/changes/{gate['id']}/approve", json={})).status_code == 200
    r = await admin_client.post(f"/api/changes/{gate['id']}/complete", json={"result": "   "})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "result"
    r = await admin_client.post(f"/api/changes/{gate['id']}/complete", json={})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "result"
    r = await admin_client.post(f"/api/changes/{gate['id']}/complete", json={"result": "ok", "outcome": "maybe"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "outcome"
    r = await admin_client.post(f"/api/changes/{gate['id']}/complete", json={"result": "broke", "outcome": "failed"})
    assert r.status_code == 200 and r.json()["change"]["status"] == "failed"
    assert (await admin_client.post(f"/api/changes/{gate['id']}/complete", json={"result": "x"})).status_code == 409


async def test_digest_is_rechecked_on_complete(ticket, admin_client, make_token, make_client, open_db):
    tid = await ticket()
    gate = (await admin_client.post("/api/changes/request", json=_gate(tid))).json()
    async with make_client(token=await make_token("soc-manager")) as approver:
        assert (await approver.post(f"/api/changes/{gate['id']}/approve", json={})).status_code == 200
    r = await admin_client.post(f"/api/changes/{gate['id']}/complete",
                                json={"result": "done", "target": "https://other.invalid/"})
    assert r.status_code == 409 and "target" in r.json()["detail"]
    async with open_db() as conn:
        await conn.execute("UPDATE change_requests SET command = 'rm -rf /' WHERE id = $1", gate["id"])
        with pytest.raises(Exception) as exc:
            await changes.require_approved_gate(conn, gate["id"], agent_id=None, ticket_id=tid)
        assert exc.value.__class__.__name__ == "Conflict"
    r = await admin_client.post(f"/api/changes/{gate['id']}/complete", json={"result": "done"})
    assert r.status_code == 409 and "digest" in r.json()["detail"]


async def test_expired_gate_cannot_be_approved_and_sweeper_expires_it(ticket, admin_client, make_token, make_client,
                                                                    open_db):
    tid = await ticket()
    gate = (await admin_client.post("/api/changes/request", json=_gate(tid, expires_in_seconds=1))).json()
    await asyncio.sleep(1.2)
    got = (await admin_client.get(f"/api/changes/{gate['id']}")).json()
    assert got["status"] == "expired" and got["stored_status"] == "pending" and got["expired"] is True
    assert (await admin_client.get("/api/changes/pending")).json()["count"] == 0
    async with make_client(token=await make_token("soc-manager")) as approver:
        r = await approver.post(f"/api/changes/{gate['id']}/approve", json={})
        assert r.status_code == 409 and "expired" in r.json()["detail"]
        async with open_db() as conn:
            assert await conn.fetchval("SELECT status FROM change_requests WHERE id = $1", gate["id"]) == "pending"
            counts = await sweep_once(conn, approver.app.state.plugins)
            assert counts["changes_expired"] == 1
            assert await conn.fetchval("SELECT status FROM change_requests WHERE id = $1", gate["id"]) == "expired"
            assert len(await audit_rows(conn, "change_expired")) == 1
            assert await conn.fetchval("SELECT count(*) FROM ticket_notes WHERE ticket_id = $1 AND body LIKE "
                                       "'%expired%'", tid) == 1
            assert (await sweep_once(conn, approver.app.state.plugins))["changes_expired"] == 0
        assert (await approver.post(f"/api/changes/{gate['id']}/approve", json={})).status_code == 409
    r = await admin_client.post(f"/api/changes/{gate['id']}/complete", json={"result": "x"})
    assert r.status_code == 409


async def test_demo_auto_approval_only_when_enabled(ticket, admin_client, make_app, make_client, make_token, open_db):
    tid = await ticket()
    gate = (await admin_client.post("/api/changes/request", json=_gate(tid))).json()
    r = await admin_client.post(f"/api/changes/{gate['id']}/approve", json={"approval_mode": "demo_auto_approval"})
    assert r.status_code == 403
    r = await admin_client.post(f"/api/changes/{gate['id']}/approve", json={"approval_mode": "yolo"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "approval_mode"
    app = make_app(env={"OPSGATE_DEMO_AUTO_APPROVE": "1"})
    async with make_client(app, token=await make_token("soc-manager")) as c:
        r = await c.post(f"/api/changes/{gate['id']}/approve", json={"approval_mode": "demo_auto_approval"})
        assert r.status_code == 200 and r.json()["change"]["auto_approved"] is True
    async with open_db() as conn:
        row = (await audit_rows(conn, "change_approved"))[0]
    assert row["details"]["approval_mode"] == "demo_auto_approval" and row["details"]["auto_approved"] is True


async def test_bad_input_missing_rows_and_scoping(ticket, admin_client, agent_client):
    tid = await ticket()
    other = await ticket()
    cases = [
        (_gate(tid, risk_level="extreme"), "risk_level"),
        (_gate(tid, expires_in_seconds=10**9), "expires_in_seconds"),
        (_gate(tid, expires_in_seconds=0), "expires_in_seconds"),
        (_gate(tid, action="  "), "action"),
        (_gate(tid, approval_policy={"auto_complete": "no"}), "approval_policy.auto_complete"),
        (_gate(tid, surprise=1), "surprise"),
        ({"ticket_id": tid}, "action"),
    ]
    for body, field in cases:
        r = await admin_client.post("/api/changes/request", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["errors"][0]["field"] == field, (field, r.json())
    assert (await admin_client.post("/api/changes/request", json=_gate(999999))).status_code == 404
    for path in ("/api/changes/999999", "/api/changes/999999/status"):
        assert (await admin_client.get(path)).status_code == 404
    for verb in ("approve", "reject", "cancel"):
        assert (await admin_client.post(f"/api/changes/999999/{verb}", json={})).status_code == 404
    assert (await admin_client.post("/api/changes/999999/complete", json={"result": "x"})).status_code == 404
    assert (await admin_client.get("/api/changes?status=weird")).status_code == 400
    hidden = (await admin_client.post("/api/changes/request", json=_gate(other))).json()
    async with agent_client(5, tid) as agent:
        assert (await agent.post("/api/changes/request", json=_gate(other))).status_code == 404
        assert (await agent.post("/api/changes/request", json=_gate(tid, agent_id=6))).status_code == 403
        mine = (await agent.post("/api/changes/request", json=_gate(tid))).json()
        assert (await agent.get(f"/api/changes/{hidden['id']}")).status_code == 404
        listed = (await agent.get("/api/changes")).json()
        assert [c["id"] for c in listed["changes"]] == [mine["id"]]
        assert (await agent.get(f"/api/changes?ticket_id={other}")).json()["total"] == 0
        r = await agent.post(f"/api/changes/{mine['id']}/cancel", json={"reason": "not needed"})
        assert r.status_code == 200 and r.json()["change"]["status"] == "cancelled"
        assert (await agent.post(f"/api/changes/{mine['id']}/cancel", json={})).status_code == 409


async def test_list_pending_stats_and_filters(ticket, admin_client, make_token, make_client):
    tid = await ticket()
    a = (await admin_client.post("/api/changes/request", json=_gate(tid, agent_id=7))).json()
    b = (await admin_client.post("/api/changes/request", json=_gate(tid, risk_level="low"))).json()
    async with make_client(token=await make_token("soc-manager")) as approver:
        assert (await approver.post(f"/api/changes/{b['id']}/approve", json={})).status_code == 200
    pending = (await admin_client.get("/api/changes/pending")).json()
    assert [c["id"] for c in pending["changes"]] == [a["id"]] and pending["changes"][0]["waiting_seconds"] >= 0
    assert (await admin_client.get("/api/changes?agent_id=7")).json()["total"] == 1
    assert (await admin_client.get(f"/api/changes?status=approved&ticket_id={tid}")).json()["changes"][0]["id"] == b["id"]
    stats = (await admin_client.get("/api/changes/stats")).json()
    assert stats["total"] == 2 and stats["pending"] == 1 and stats["approved_awaiting_completion"] == 1
    assert stats["by_risk_level"] == {"medium": 1, "low": 1} and stats["average_decision_seconds"] is not None


async def test_approval_resumes_a_waiting_agent_once_or_steers_a_running_one(ticket, admin_client, agent_client,
                                                                           make_token, make_client, open_db):
    tid = await ticket()
    async with open_db() as conn:
        waiting = await _insert_agent(conn, tid, status="pending_approval")
    gates = []
    async with agent_client(waiting, tid) as agent:
        for _ in range(10):
            gates.append((await agent.post("/api/changes/request", json=_gate(tid))).json()["id"])
    tokens = [await make_token("soc-manager") for _ in gates]

    async def approve(gate_id, token):
        async with make_client(token=token) as c:
            return await c.post(f"/api/changes/{gate_id}/approve", json={})

    results = await asyncio.gather(*(approve(g, t) for g, t in zip(gates, tokens)))
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    actions = sorted(r.json()["resume"]["action"] for r in results)
    assert actions == ["queued_task"] + ["steered"] * 9
    async with open_db() as conn:
        assert await conn.fetchval("SELECT count(*) FROM agent_tasks WHERE agent_id = $1", waiting) == 1
        assert await conn.fetchval("SELECT status FROM agents WHERE id = $1", waiting) == "queued"
        steered = await conn.fetch("SELECT * FROM agent_steering_events WHERE agent_id = $1", waiting)
        assert len(steered) == 9 and all(s["kind"] == "approval" for s in steered)


async def test_auto_completion_after_task_completes_respects_policy(ticket, admin_client, make_token, make_client,
                                                                  agent_client, open_db):
    tid = await ticket()
    async with open_db() as conn:
        agent_id = await _insert_agent(conn, tid, status="running")
    async with agent_client(agent_id, tid) as agent:
        auto = (await agent.post("/api/changes/request", json=_gate(tid))).json()
        manual = (await agent.post("/api/changes/request", json=_gate(
            tid, approval_policy={"manual_completion_required": True}))).json()
    async with make_client(token=await make_token("soc-manager")) as approver:
        for g in (auto, manual):
            r = await approver.post(f"/api/changes/{g['id']}/approve", json={})
            assert r.json()["resume"]["action"] == "steered"
        async with open_db() as conn:
            await conn.execute(
                "INSERT INTO agent_tasks (agent_id, ticket_id, type, status, prompt, harness, model, timeout_minutes,"
                " created_by, summary, finished_at) VALUES ($1, $2, 'ticket_resolution', 'completed', 'p', 'fake', "
                "'m', 5, 'test', 'Blocked the URL; verified with curl.', now() + interval '1 second')",
                agent_id, tid)
            await conn.execute("UPDATE agents SET status = 'completed' WHERE id = $1", agent_id)
            counts = await sweep_once(conn, approver.app.state.plugins)
            assert counts["changes_auto_completed"] == 1
            rows = {r["id"]: r for r in await conn.fetch("SELECT id, status, result, completed_by FROM "
                                                          "change_requests WHERE ticket_id = $1", tid)}
    assert rows[auto["id"]]["status"] == "completed" and "verified with curl" in rows[auto["id"]]["result"]
    assert rows[auto["id"]]["completed_by"] == "supervisor"
    assert rows[manual["id"]]["status"] == "approved"


async def test_closed_ticket_takes_no_new_gates(ticket, admin_client):
    tid = await ticket()
    r = await admin_client.post(f"/api/tickets/{tid}/status", json={"status": "closed"})
    assert r.status_code == 200, r.text
    assert (await admin_client.post("/api/changes/request", json=_gate(tid))).status_code == 409


async def test_permissions_of_roles(ticket, admin_client, make_token, make_client):
    tid = await ticket()
    gate = (await admin_client.post("/api/changes/request", json=_gate(tid))).json()
    async with make_client(token=await make_token("analyst")) as analyst:
        assert (await analyst.get(f"/api/changes/{gate['id']}")).status_code == 200
        r = await analyst.post(f"/api/changes/{gate['id']}/approve", json={})
        assert r.status_code == 403 and r.json()["required_permission"] == "changes:approve"
    async with make_client(token=await make_token("auditor")) as auditor:
        assert (await auditor.post("/api/changes/request", json=_gate(tid))).status_code == 403

