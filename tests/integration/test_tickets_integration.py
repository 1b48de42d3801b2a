"""Tickets joined to the other domains: agent and gates on the detail, the context sections,
user responses resuming or steering the agent, leases revoked on close, create replays."""


import pytest

from opsgate.auth import service as auth
from opsgate.leases import service as leases
from opsgate.testing import audit_rows

LEASE = {"system": "wazuh", "resource_type": "api", "resource_id": "wazuh.manager", "action": "read",
         "ttl_seconds": 1800}


async def _ticket(client, **extra):
    r = await client.post("/api/tickets", json={"title": "Brute force alert on vpn-gw", "sync_provider": False,
                                                "owning_group": "SOC", **extra})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _agent(conn, ticket_id, *, status="running", task_status="running", output=""):
    """An agent on the ticket (the ticket's current one) with one task."""
    agent_id = await conn.fetchval(
        "INSERT INTO agents (ticket_id, name, status, harness, model, task_type, created_by) "
        "VALUES ($1, 'a', $2, 'fake', 'm', 'ticket_resolution', 'alice') RETURNING id", ticket_id, status)
    task_id = await conn.fetchval(
        "INSERT INTO agent_tasks (agent_id, ticket_id, type, status, prompt, harness, model, timeout_minutes, "
        "created_by, output_tail, output_bytes) VALUES ($1, $2, 'ticket_resolution', $3, 'Work the ticket.', "
        "'fake', 'm', 60, 'alice', $4, $5) RETURNING id", agent_id, ticket_id, task_status, output,
        len(output.encode()))
    await conn.execute("UPDATE tickets SET agent_id = $2 WHERE id = $1", ticket_id, agent_id)
    return agent_id, task_id


async def _agent_headers(conn, agent_id, ticket_id):
    token = await auth.mint_agent_token(conn, agent_id=agent_id, ticket_id=ticket_id, task_id=None)
    return {"Authorization": f"Bearer {token}"}


def _access_body():
    return {"resource": "Wazuh manager API", "permission": "read manager status", "account_ref": "agent-42",
            "assignment_group": "SecEng", "risk_level": "medium", "sync_provider": False,
            "reason": "Wazuh route returned 403 missing_lease.", "lease": LEASE}


# --- detail and context -----------------------------------------------------------


async def test_detail_and_context_show_agent_gates_tasks_and_access(admin_client, make_token, open_db):
    tid = await _ticket(admin_client, requester_email="kim@example.com")
    other = await _ticket(admin_client, requester_email="kim@example.com", title="Earlier VPN issue")
    async with open_db() as conn:
        agent_id, task_id = await _agent(conn, tid, output="x" * 10_000 + "THE END")
        agent = await _agent_headers(conn, agent_id, tid)
    r = await admin_client.post(f"/api/tickets/{tid}/access-request", json=_access_body(), headers=agent)
    assert r.status_code == 201, r.text
    gate_id, access_id = r.json()["change"]["id"], r.json()["access_request"]["id"]

    detail = (await admin_client.get(f"/api/tickets/{tid}")).json()
    assert detail["agent"]["id"] == agent_id and detail["agent"]["status"] == "running"
    assert detail["agent"]["latest_task"]["id"] == task_id
    assert [c["id"] for c in detail["change_requests"]] == [gate_id]
    assert detail["change_requests"][0]["status"] == "pending"

    ctx = (await admin_client.get(f"/api/tickets/{tid}/context")).json()
    assert ctx["ticket"]["agent"]["id"] == agent_id
    assert [c["id"] for c in ctx["change_requests"]] == [gate_id]
    assert [a["id"] for a in ctx["access_requests"]] == [access_id]
    assert [t["id"] for t in ctx["tasks"]] == [task_id]
    task = ctx["tasks"][0]
    assert task["log_tail"].endswith("THE END") and len(task["log_tail"]) == 4000 and task["log_truncated"]
    assert "prompt" not in task or task["prompt"] is None
    assert [t["id"] for t in ctx["related_tickets"]] == [other]
    assert ctx["postmortems"] == ctx["knowledge_articles"] == ctx["workflows"] == ctx["skills"] == []

    # The agent sees its own ticket with the same sections, and no other ticket.
    mine = await admin_client.get(f"/api/tickets/{tid}/context", headers=agent)
    assert mine.status_code == 200
    assert [t["id"] for t in mine.json()["tasks"]] == [task_id]
    assert mine.json()["ticket"]["agent"]["id"] == agent_id
    assert (await admin_client.get(f"/api/tickets/{other}", headers=agent)).status_code == 404
    assert (await admin_client.get(f"/api/tickets/{other}/context", headers=agent)).status_code == 404

    # A group-scoped analyst outside SOC: 404, nothing leaks.
    net = {"Authorization": f"Bearer {await make_token('analyst', groups=['Network'])}"}
    r = await admin_client.get(f"/api/tickets/{tid}/context", headers=net)
    assert r.status_code == 404 and "Wazuh" not in r.text

    stats = (await admin_client.get("/api/dashboard/stats")).json()
    assert stats["pending_changes"] == 1
    assert (await admin_client.get("/api/dashboard/stats", headers=net)).json()["pending_changes"] == 0


async def test_detail_of_a_ticket_without_agent_or_gates(admin_client):
    tid = await _ticket(admin_client)
    detail = (await admin_client.get(f"/api/tickets/{tid}")).json()
    assert detail["agent"] is None and detail["change_requests"] == []
    ctx = (await admin_client.get(f"/api/tickets/{tid}/context")).json()
    assert ctx["tasks"] == ctx["access_requests"] == ctx["change_requests"] == []
    assert (await admin_client.get("/api/tickets/999999/context")).status_code == 404


# --- user response -----------------------------------------------------------------


async def _ask(client, tid):
    r = await client.post(f"/api/tickets/{tid}/request-info", json={"question": "Which VPN profile?"})
    assert r.status_code == 200, r.text


async def test_user_response_resumes_a_waiting_agent_once(admin_client, open_db):
    tid = await _ticket(admin_client)
    async with open_db() as conn:
        agent_id, task_id = await _agent(conn, tid, status="awaiting_user_response",
                                         task_status="awaiting_user_response")
    await _ask(admin_client, tid)
    r = await admin_client.post(f"/api/tickets/{tid}/user-response",
                                json={"response": "The contractor profile.", "responder_name": "Kim"})
    assert r.status_code == 200, r.text
    body = r.json()
    resume = body["agent_resume"]
    note_id = body["note"]["id"]
    assert resume["action"] == "resumed" and resume["agent_id"] == agent_id and resume["task_id"] > task_id
    assert "leases_revoked" not in body
    async with open_db() as conn:
        task = await conn.fetchrow("SELECT * FROM agent_tasks WHERE id = $1", resume["task_id"])
        assert task["status"] == "queued" and task["agent_id"] == agent_id
        # The prompt points at the answer; the answer itself arrives once, as the steering event.
        assert f"#{note_id}" in task["prompt"] and "contractor profile" not in task["prompt"]
        assert await conn.fetchval("SELECT status FROM agents WHERE id = $1", agent_id) == "queued"
        steering = await conn.fetch("SELECT * FROM agent_steering_events WHERE note_id = $1", note_id)
        assert [s["id"] for s in steering] == resume["steering_event_ids"] and len(steering) == 1
        assert await audit_rows(conn, "agent_task_queued")
        status = await conn.fetchval("SELECT status FROM tickets WHERE id = $1", tid)
    assert status == body["ticket"]["status"] == "new"


async def test_user_response_steers_a_running_task_instead(admin_client, open_db):
    tid = await _ticket(admin_client)
    async with open_db() as conn:
        agent_id, task_id = await _agent(conn, tid, status="running", task_status="running")
    await _ask(admin_client, tid)
    r = await admin_client.post(f"/api/tickets/{tid}/user-response", json={"response": "Contractor profile."})
    assert r.status_code == 200, r.text
    resume = r.json()["agent_resume"]
    assert resume["action"] == "steered" and resume["task_id"] is None and len(resume["steering_event_ids"]) == 1
    async with open_db() as conn:
        assert await conn.fetchval("SELECT count(*) FROM agent_tasks WHERE agent_id = $1", agent_id) == 1
        assert await conn.fetchval("SELECT count(*) FROM agent_steering_events WHERE agent_id = $1", agent_id) == 1


async def test_user_response_without_resume_or_with_a_terminated_agent(admin_client, open_db):
    tid = await _ticket(admin_client)
    async with open_db() as conn:
        agent_id, _ = await _agent(conn, tid, status="awaiting_user_response", task_status="awaiting_user_response")
    await _ask(admin_client, tid)
    r = await admin_client.post(f"/api/tickets/{tid}/user-response", json={"response": "x", "resume_agent": False})
    assert r.json()["agent_resume"]["action"] == "none"
    async with open_db() as conn:
        assert await conn.fetchval("SELECT count(*) FROM agent_tasks WHERE agent_id = $1", agent_id) == 1
        await conn.execute("UPDATE agents SET status = 'terminated' WHERE id = $1", agent_id)
        await conn.execute("UPDATE agent_tasks SET status = 'terminated' WHERE agent_id = $1", agent_id)
    await _ask(admin_client, tid)
    r = await admin_client.post(f"/api/tickets/{tid}/user-response", json={"response": "y"})
    assert r.status_code == 200, r.text
    resume = r.json()["agent_resume"]
    assert resume["action"] == "not_resumed" and "terminated" in resume["reason"]
    assert r.json()["ticket"]["status"] == "new"  # the answer itself is recorded


# --- closing revokes leases ----------------------------------------------------------


@pytest.mark.parametrize("final", ["resolved", "closed", "cancelled", "rejected"])
async def test_ending_status_revokes_the_tickets_leases_not_the_agent(admin_client, open_db, test_settings, final):
    tid = await _ticket(admin_client)
    async with open_db() as conn:
        agent_id, _ = await _agent(conn, tid)
        lease = await leases.grant_from_workflow(conn, workflow_id=1, approved_by="operator:j", agent_id=agent_id,
                                                 ticket_id=tid, scope="wazuh/api/wazuh.manager/read",
                                                 settings=test_settings())
        agent = await _agent_headers(conn, agent_id, tid)
    r = await admin_client.post(f"/api/tickets/{tid}/status", json={"status": "in_progress"}, headers=agent)
    assert r.status_code == 200 and "leases_revoked" not in r.json()
    r = await admin_client.post(f"/api/tickets/{tid}/status", json={"status": final, "reason": "done"},
                                headers=agent)
    assert r.status_code == 200, r.text
    assert r.json()["leases_revoked"] == 1
    async with open_db() as conn:
        row = await conn.fetchrow("SELECT status, revoke_reason, revoked_by FROM leases WHERE lease_id = $1",
                                  lease.lease_id)
        assert (row["status"], row["revoke_reason"]) == ("revoked", f"ticket_{final}")
        assert row["revoked_by"].startswith("agent")
        assert [a["details"]["lease_id"] for a in await audit_rows(conn, "lease.revoked")] == [lease.lease_id]
        assert await conn.fetchval("SELECT count(*) FROM event_log WHERE kind = 'lease_revoked'") == 1
        assert await conn.fetchval("SELECT status FROM agents WHERE id = $1", agent_id) == "running"


# --- idempotent create replay with auto_assign -----------------------------------------


async def test_create_replay_returns_the_recorded_auto_assignment(admin_client, open_db):
    body = {"title": "Printer on floor 3 is jammed", "sync_provider": False, "auto_assign": True}
    headers = {"Idempotency-Key": "create-aa-1"}
    first = await admin_client.post("/api/tickets", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await admin_client.post("/api/tickets", json=body, headers=headers)
    assert again.status_code == 201 and again.json()["idempotent_replay"] is True
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["auto_assignment"] == first.json()["auto_assignment"]
    assert "after creation" not in again.json()["auto_assignment"]["reason"]
    async with open_db() as conn:
        recorded = await conn.fetchrow("SELECT * FROM intake_auto_assignments WHERE ticket_id = $1",
                                       first.json()["id"])
        assert again.json()["auto_assignment"]["reason"] == recorded["reason"]
        await conn.execute("DELETE FROM intake_auto_assignments WHERE ticket_id = $1", first.json()["id"])
    third = (await admin_client.post("/api/tickets", json=body, headers=headers)).json()
    assert third["idempotent_replay"] is True and "idempotent replay" in third["auto_assignment"]["reason"]


# --- idempotency key expiry ----------------------------------------------------------------


async def test_expired_idempotency_keys_are_new_again_and_swept(admin_client, open_db):
    from opsgate.changes.sweeper import sweep_once

    body = {"title": "Disk full on db-2", "sync_provider": False}
    key = {"Idempotency-Key": "expiring-1"}
    first = (await admin_client.post("/api/tickets", json=body, headers=key)).json()
    tid = first["id"]
    note = (await admin_client.post(f"/api/tickets/{tid}/notes", json={"body": "n"}, headers=key)).json()
    replay = (await admin_client.post("/api/tickets", json=body, headers=key)).json()
    assert replay["id"] == tid and replay["idempotent_replay"] is True
    async with open_db() as conn:
        await conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    # Past OPSGATE_IDEMPOTENCY_TTL_HOURS (24) the key is new: a new ticket and note, a different body is fine.
    second = await admin_client.post("/api/tickets", json={**body, "title": "Other"}, headers=key)
    assert second.status_code == 201 and second.json()["idempotent_replay"] is False and second.json()["id"] != tid
    again = await admin_client.post(f"/api/tickets/{tid}/notes", json={"body": "n"}, headers=key)
    assert again.json()["idempotent_replay"] is False and again.json()["id"] != note["id"]
    async with open_db() as conn:
        assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 2
        await conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours' "
                           "WHERE scope = 'ticket_note'")
        counts = await sweep_once(conn, admin_client.app.state.plugins, idempotency_ttl_hours=24)
        assert counts["idempotency_keys_expired"] == 1
        assert await conn.fetchval("SELECT scope FROM idempotency_keys") == "ticket_create"
        assert "idempotency_keys_expired" not in await sweep_once(conn, admin_client.app.state.plugins)
    # The live create key still replays.
    live = (await admin_client.post("/api/tickets", json={**body, "title": "Other"}, headers=key)).json()
    assert live["idempotent_replay"] is True and live["id"] == second.json()["id"]
