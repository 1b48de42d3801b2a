"""Access requests: child ticket + gate + pending lease in one transaction; grant, rejection, expiry."""

import asyncio
from contextlib import asynccontextmanager

import pytest

from opsgate.auth import service as auth
from opsgate.auth.principal import AGENT_PERMISSIONS, Principal
from opsgate.changes.sweeper import sweep_once
from opsgate.errors import Forbidden
from opsgate.leases import service as leases
from opsgate.testing import audit_rows

SCOPE = "wazuh/api/wazuh.manager/read"
LEASE = {"system": "wazuh", "resource_type": "api", "resource_id": "wazuh.manager", "action": "read",
         "ttl_seconds": 1800}


@pytest.fixture
def ticket(admin_client):
    async def create(**extra):
        r = await admin_client.post("/api/tickets", json={"title": "Brute force alert", "sync_provider": False,
                                                          "owning_group": "SOC", **extra})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    return create


@pytest.fixture
def agent_client(make_client, open_db):
    @asynccontextmanager
    async def open_(agent_id, ticket_id):
        async with open_db() as conn:
            token = await auth.mint_agent_token(conn, agent_id=agent_id, ticket_id=ticket_id, task_id=None)
        async with make_client(token=token) as c:
            yield c

    return open_


def _body(**extra):
    return {"resource": "Wazuh manager API", "permission": "read manager status", "account_ref": "agent-42",
            "assignment_group": "SecEng", "risk_level": "medium", "sync_provider": False,
            "reason": "Wazuh route returned 403 missing_lease.", "lease": LEASE, **extra}


def _agent(agent_id, ticket_id):
    return Principal(kind="agent", name=f"agent_{agent_id}", permissions=AGENT_PERMISSIONS, agent_id=agent_id,
                     ticket_id=ticket_id, auth_method="agent_token")


async def test_request_creates_child_ticket_gate_and_pending_lease(ticket, agent_client, admin_client, open_db):
    tid = await ticket()
    async with open_db() as conn:
        agent_id = await conn.fetchval(
            "INSERT INTO agents (ticket_id, name, status, harness, model, task_type, created_by) "
            "VALUES ($1, 'a', 'awaiting_access', 'fake', 'm', 'ticket_resolution', 'alice') RETURNING id", tid)
    async with agent_client(agent_id, tid) as agent:
        r = await agent.post(f"/api/tickets/{tid}/access-request", json=_body())
        assert r.status_code == 201, r.text
        created = r.json()
        ar, gate, lease = created["access_request"], created["change"], created["lease"]
        assert ar["status"] == "pending_approval" and ar["scope"] == SCOPE and ar["agent_id"] == agent_id
        assert gate["kind"] == "access" and gate["ticket_id"] == tid and gate["agent_id"] == agent_id
        assert gate["spawned_by"] == "alice"
        assert lease["status"] == "pending" and lease["credential_ref"] is None
        with pytest.raises(Forbidden) as exc:
            async with open_db() as conn:
                await leases.check_lease(conn, _agent(agent_id, tid), agent_id, SCOPE)
        assert exc.value.body["reason"] == "lease_pending"
        # the agent can list its ticket's requests but not see the child ticket itself
        listed = (await agent.get(f"/api/tickets/{tid}/access-requests")).json()["access_requests"]
        assert [a["id"] for a in listed] == [ar["id"]]
        assert (await agent.get(f"/api/tickets/{ar['child_ticket_id']}")).status_code == 404

    child = (await admin_client.get(f"/api/tickets/{ar['child_ticket_id']}")).json()
    assert child["owning_group"] == "SecEng" and child["ticket_class"] == "UserRequest"
    assert child["title"].startswith("Access request: read manager status")
    from_child = (await admin_client.get(f"/api/tickets/{ar['child_ticket_id']}/access-requests")).json()
    assert [a["id"] for a in from_child["access_requests"]] == [ar["id"]]

    r = await admin_client.post(f"/api/changes/{gate['id']}/approve",
                                json={"approved_by": "j.alvarez", "credential_ref": "env:WAZUH_API"})
    assert r.status_code == 200, r.text
    decision = r.json()
    assert decision["lease"]["status"] == "active" and decision["lease"]["lease_duration"] == 1800
    assert decision["lease"]["source"]["kind"] == "approval_gate"
    assert decision["change"]["status"] == "completed" and decision["resume"]["action"] == "queued_task"
    async with open_db() as conn:
        use = await leases.check_lease(conn, _agent(agent_id, tid), agent_id, SCOPE)
        assert use.credential_ref == "env:WAZUH_API" and use.lease_id == lease["lease_id"]
        notes = [r["body"] for r in await conn.fetch(
            "SELECT body FROM ticket_notes WHERE ticket_id = $1 AND kind = 'access' ORDER BY id", tid)]
        assert [n.split(" ")[0] for n in notes] == ["Access", "Change", "Change"]
        assert "approved by j.alvarez" in notes[1] and "completed by control-plane" in notes[2]
        assert await conn.fetchval("SELECT status FROM tickets WHERE id = $1", ar["child_ticket_id"]) == "resolved"
        granted = await audit_rows(conn, "lease.granted")
        assert granted[0]["details"]["approved_by"].startswith("test-platform-admin")
        assert granted[0]["details"]["secret_values_returned"] is False
        assert len(await audit_rows(conn, "access_granted")) == 1
    listed = (await admin_client.get(f"/api/tickets/{tid}/access-requests")).json()["access_requests"]
    assert listed[0]["status"] == "granted" and listed[0]["lease"]["status"] == "active"


async def test_rejection_denies_the_lease_and_closes_the_child(ticket, agent_client, admin_client, open_db):
    tid = await ticket()
    async with agent_client(42, tid) as agent:
        created = (await agent.post(f"/api/tickets/{tid}/access-request", json=_body())).json()
    gate_id = created["change"]["id"]
    r = await admin_client.post(f"/api/changes/{gate_id}/reject", json={"reason": "Use the read-only dashboard."})
    assert r.status_code == 200 and r.json()["change"]["status"] == "rejected"
    listed = (await admin_client.get(f"/api/tickets/{tid}/access-requests")).json()["access_requests"]
    assert listed[0]["status"] == "rejected" and listed[0]["lease"]["status"] == "denied"
    assert listed[0]["child_ticket"]["status"] == "closed"
    async with open_db() as conn:
        with pytest.raises(Forbidden) as exc:
            await leases.check_lease(conn, _agent(42, tid), 42, SCOPE)
    assert exc.value.body["reason"] == "lease_denied"
    assert (await admin_client.post(f"/api/changes/{gate_id}/approve", json={})).status_code == 409


async def test_expiry_of_an_access_gate(ticket, agent_client, admin_client, open_db):
    tid = await ticket()
    async with agent_client(42, tid) as agent:
        created = (await agent.post(f"/api/tickets/{tid}/access-request",
                                    json=_body(expires_in_seconds=1))).json()
    await asyncio.sleep(1.2)
    listed = (await admin_client.get(f"/api/tickets/{tid}/access-requests")).json()["access_requests"]
    assert listed[0]["status"] == "expired" and listed[0]["change_status"] == "expired"
    async with open_db() as conn:
        assert (await sweep_once(conn, admin_client.app.state.plugins))["changes_expired"] == 1
        assert await conn.fetchval("SELECT status FROM access_requests WHERE id = $1",
                                   created["access_request"]["id"]) == "expired"
        assert await conn.fetchval("SELECT status FROM leases WHERE lease_id = $1",
                                   created["lease"]["lease_id"]) == "denied"


async def test_human_request_without_lease_is_approved_and_leaves_the_child_open(ticket, make_token, make_client,
                                                                               admin_client):
    tid = await ticket()
    async with make_client(token=await make_token("analyst")) as analyst:
        body = {k: v for k, v in _body().items() if k != "lease"}
        r = await analyst.post(f"/api/tickets/{tid}/access-request", json={**body, "resource": "GitLab demo/infra"})
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["lease"] is None and created["access_request"]["agent_id"] is None
    r = await admin_client.post(f"/api/changes/{created['change']['id']}/approve", json={})
    assert r.status_code == 200 and r.json()["change"]["status"] == "approved" and r.json()["lease"] is None
    listed = (await admin_client.get(f"/api/tickets/{tid}/access-requests")).json()["access_requests"]
    assert listed[0]["status"] == "approved" and listed[0]["child_ticket"]["status"] == "new"


async def test_bad_input_and_missing_rows(ticket, agent_client, admin_client):
    tid = await ticket()
    cases = [
        (_body(lease={**LEASE, "credential_ref": "vault:kv/ops/admin"}), "lease.credential_ref"),
        (_body(lease={**LEASE, "resource_id": "wazuh.*"}), "lease.resource_id"),
        (_body(lease={**LEASE, "ttl_seconds": 10**7}), "lease.ttl_seconds"),
        (_body(resource=" "), "resource"),
        (_body(risk_level="whatever"), "risk_level"),
        (_body(agent_id=None), "agent_id"),
        (_body(expires_in_seconds=10**9, agent_id=1), "expires_in_seconds"),
        (_body(extra=True), "extra"),
    ]
    for body, field in cases:
        if body.get("agent_id", 1) is None:
            body.pop("agent_id")
        r = await admin_client.post(f"/api/tickets/{tid}/access-request", json=body)
        assert r.status_code == 400, (field, r.text)
        assert r.json()["errors"][0]["field"] == field, (field, r.json())
    async with agent_client(42, tid) as agent:
        r = await agent.post(f"/api/tickets/{tid}/access-request", json=_body(agent_id=43))
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "agent_id"
        assert (await agent.post(f"/api/tickets/{tid}/access-request", json=_body())).status_code == 201
        # one pending lease per agent and scope
        assert (await agent.post(f"/api/tickets/{tid}/access-request", json=_body())).status_code == 409
    assert (await admin_client.post("/api/tickets/999999/access-request", json=_body(agent_id=1))).status_code == 404
    assert (await admin_client.get("/api/tickets/999999/access-requests")).status_code == 404
    closed = await ticket()
    assert (await admin_client.post(f"/api/tickets/{closed}/status", json={"status": "closed"})).status_code == 200
    r = await admin_client.post(f"/api/tickets/{closed}/access-request", json=_body(agent_id=1))
    assert r.status_code == 409
