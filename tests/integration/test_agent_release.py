"""When a task or agent ends: tokens and leases are revoked together, approved gates auto-complete."""

import asyncpg
import pytest

from opsgate.auth.service import mint_agent_token
from opsgate.db.pool import connect
from opsgate.leases import service as leases
from opsgate.testing import fake_harness

SCOPE = "wazuh/api/wazuh.manager/read"


@pytest.fixture
def app(make_app):
    return make_app(plugins=[("fake-harness", fake_harness)], env={"CODEX_AUTH_MODE": "api_key"})


async def _running_agent(admin, db_url, test_settings):
    """A ticket with an agent whose task a runner has claimed, its token, and an active lease."""
    ticket = (await admin.post("/api/tickets", json={"title": "Contain phishing URL"})).json()
    spawned = (await admin.post(f"/api/tickets/{ticket['id']}/assign-agent", json={"model": "m"})).json()
    agent_id, task_id = spawned["agent"]["id"], spawned["task"]["id"]
    conn = await connect(db_url)
    try:
        # what a runner's claim does to the rows (the runner itself is covered by the runner tests)
        await conn.execute("UPDATE agent_tasks SET status = 'running', started_at = now() WHERE id = $1", task_id)
        await conn.execute("UPDATE agents SET status = 'running' WHERE id = $1", agent_id)
        token = await mint_agent_token(conn, agent_id=agent_id, ticket_id=ticket["id"], task_id=task_id)
        lease = await leases.grant_from_workflow(conn, workflow_id=1, approved_by="operator:j", agent_id=agent_id,
                                                 ticket_id=ticket["id"], scope=SCOPE, settings=test_settings())
    finally:
        await conn.close()
    return ticket, agent_id, task_id, token, lease


async def _lease_status(db_url, lease_id):
    conn = await asyncpg.connect(db_url)
    try:
        return await conn.fetchval("SELECT status FROM leases WHERE lease_id = $1", lease_id)
    finally:
        await conn.close()


async def test_completed_task_revokes_tokens_and_leases_and_completes_approved_gates(
        app, make_client, admin_token, make_token, db_url, test_settings):
    approver = {"Authorization": f"Bearer {await make_token('soc-manager')}"}  # not the spawner
    async with make_client(app, admin_token) as admin:  # one client per app: its lifespan owns the pool
        ticket, agent_id, task_id, token, lease = await _running_agent(admin, db_url, test_settings)
        as_agent = {"Authorization": f"Bearer {token}"}
        gates = []
        for action, target, policy in [("block_url", "https://phish.example.invalid/login", {}),
                                       ("disable_account", "user:mallory", {"manual_completion_required": True})]:
            r = await admin.post("/api/changes/request", headers=as_agent, json={
                "ticket_id": ticket["id"], "agent_id": agent_id, "action": action, "target": target,
                "reason": "Confirmed phishing.", "risk_level": "medium", "approval_policy": policy})
            assert r.status_code == 201, r.text
            gates.append(r.json()["id"])
            ok = await admin.post(f"/api/changes/{gates[-1]}/approve", headers=approver,
                                  json={"approved_by": "operator", "reason": "Reviewed."})
            assert ok.status_code == 200, ok.text
        done = await admin.post(f"/api/agents/{agent_id}/update", headers=as_agent,
                                json={"status": "completed", "summary": "Blocked the URL; verified."})
        assert done.status_code == 200, done.text
        # the token stopped working with the task
        assert (await admin.get(f"/api/tickets/{ticket['id']}", headers=as_agent)).status_code == 401
        auto = (await admin.get(f"/api/changes/{gates[0]}")).json()
        assert auto["status"] == "completed" and "Blocked the URL" in (auto.get("result") or "")
        assert (await admin.get(f"/api/changes/{gates[1]}")).json()["status"] == "approved"
    assert await _lease_status(db_url, lease.lease_id) == "revoked"


async def test_stopping_an_agent_revokes_its_leases(app, make_client, admin_token, db_url, test_settings):
    async with make_client(app, admin_token) as admin:
        _, agent_id, _, token, lease = await _running_agent(admin, db_url, test_settings)
        r = await admin.post(f"/api/agents/{agent_id}/stop", json={"reason": "operator_stop"})
        assert r.status_code == 200, r.text
        assert (await admin.get("/api/access/me", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    assert await _lease_status(db_url, lease.lease_id) == "revoked"
