"""Scoped credential leases: check on use, denial reasons, renew/revoke races, cascades, fail closed."""

import asyncio
import logging

import pytest

from opsgate.auth import service as auth
from opsgate.auth.principal import AGENT_PERMISSIONS, Principal
from opsgate.errors import Conflict, Forbidden, Invalid, Unavailable
from opsgate.leases import service as leases
from opsgate.leases.scope import new_lease_id, parse_concrete
from opsgate.testing import audit_rows

SCOPE = "wazuh/api/wazuh.manager/read"
CANARY = "canary-Secret-7f3a9c21-do-not-leak"


@pytest.fixture
def settings(test_settings):
    return test_settings(env={"OPSGATE_LEASE_MAX_TTL_SECONDS": "7200", "WAZUH_API_PASSWORD": CANARY})


def _agent(agent_id, ticket_id=None):
    return Principal(kind="agent", name=f"agent_{agent_id}", permissions=AGENT_PERMISSIONS, agent_id=agent_id,
                     ticket_id=ticket_id, auth_method="agent_token")


async def _ticket(conn, title="t"):
    return await conn.fetchval("INSERT INTO tickets (title, created_by) VALUES ($1, 'test') RETURNING id", title)


async def _grant(conn, settings, agent_id, ticket_id, scope=SCOPE, **kw):
    return await leases.grant_from_workflow(conn, workflow_id=1, approved_by="operator:j", agent_id=agent_id,
                                            ticket_id=ticket_id, scope=scope, settings=settings, **kw)


async def test_no_lease_is_403_with_the_denial_body_and_one_audit_row(open_db, settings):
    async with open_db() as conn:
        tid = await _ticket(conn)
        with pytest.raises(Forbidden) as exc:
            await leases.check_lease(conn, _agent(42, tid), 42, SCOPE, operation="wazuh.manager.status")
        body = exc.value.body
        assert body["error"] == "access_denied" and body["reason"] == "missing_lease"
        assert body["agent_id"] == 42 and body["scope"] == SCOPE and body["secret_values_returned"] is False
        assert body["next_step"].startswith("File an access request")
        rows = await audit_rows(conn, "lease.denied")
        assert len(rows) == 1 and rows[0]["details"]["operation"] == "wazuh.manager.status"
        assert rows[0]["details"]["active_lease_count"] == 0 and rows[0]["agent_id"] == 42


async def test_grant_check_use_and_envelope(open_db, settings):
    async with open_db() as conn:
        tid = await _ticket(conn)
        lease = await _grant(conn, settings, 42, tid)
        assert lease.status == "active" and lease.credential_ref == "env:WAZUH_API"
        assert lease.source["kind"] == "workflow_policy" and lease.ttl > 3500
        assert lease.max_expire_time is not None and lease.secret_values_returned is False
        async with leases.use_lease(conn, _agent(42, tid), 42, SCOPE, operation="wazuh.manager.status",
                                    params={"limit": 10}) as call:
            assert call.credential_ref == "env:WAZUH_API"
            call.upstream = {"target": "manager", "http_status": 200}
        assert call.envelope() == {"agent_id": 42, "lease_id": lease.lease_id, "scope": SCOPE,
                                   "credential_ref": "env:WAZUH_API", "secret_values_returned": False}
        used = await audit_rows(conn, "lease.used")
        assert len(used) == 1 and used[0]["details"]["outcome"] == "success"
        assert used[0]["details"]["params"] == {"limit": 10} and used[0]["details"]["lease_id"] == lease.lease_id


async def test_expired_revoked_pending_and_denied_reasons(open_db, settings):
    async with open_db() as conn:
        tid = await _ticket(conn)
        lease = await _grant(conn, settings, 42, tid)
        await conn.execute("UPDATE leases SET expire_time = now() - interval '1 second' WHERE lease_id = $1",
                           lease.lease_id)
        with pytest.raises(Forbidden) as exc:
            await leases.check_lease(conn, _agent(42, tid), 42, SCOPE)
        assert exc.value.body["reason"] == "lease_expired"
        assert (await leases.get_lease(conn, _agent(42), lease.lease_id)).status == "expired"

        fresh = await _grant(conn, settings, 43, tid)
        assert (await leases.check_lease(conn, _agent(43, tid), 43, SCOPE)).lease_id == fresh.lease_id
        await leases.revoke(conn, _agent(43, tid), fresh.lease_id, "work done")
        with pytest.raises(Forbidden) as exc:
            await leases.check_lease(conn, _agent(43, tid), 43, SCOPE)
        assert exc.value.body["reason"] == "lease_revoked"

        pending = await conn.fetchval(
            "INSERT INTO leases (lease_id, agent_id, ticket_id, scope, system, resource_type, resource_id, action, "
            "status, lease_duration) VALUES ($1, 44, $2, $3, 'wazuh', 'api', 'wazuh.manager', 'read', 'pending', 0) "
            "RETURNING lease_id", new_lease_id(), tid, SCOPE)
        with pytest.raises(Forbidden) as exc:
            await leases.check_lease(conn, _agent(44, tid), 44, SCOPE)
        assert exc.value.body["reason"] == "lease_pending"
        await leases.deny(conn, pending, actor="operator", actor_kind="user", reason="no")
        with pytest.raises(Forbidden) as exc:
            await leases.check_lease(conn, _agent(44, tid), 44, SCOPE)
        assert exc.value.body["reason"] == "lease_denied"
        assert len(await audit_rows(conn, "lease.denied")) == 5  # 4 refused calls + 1 refused request


async def test_leases_are_bound_to_the_agent_token(open_db, settings):
    async with open_db() as conn:
        tid = await _ticket(conn)
        await _grant(conn, settings, 42, tid)
        for caller in (_agent(7, tid), Principal(kind="service", name="admin", permissions=frozenset({"*"}))):
            with pytest.raises(Forbidden) as exc:
                await leases.check_lease(conn, caller, 42, SCOPE)
            assert exc.value.body["reason"] == "missing_lease"
        other = await _ticket(conn)
        with pytest.raises(Forbidden):  # the same agent id on a token for another ticket
            await leases.check_lease(conn, _agent(42, other), 42, SCOPE)


async def test_glob_grants_match_case_sensitively_and_checks_are_concrete(open_db, settings):
    async with open_db() as conn:
        tid = await _ticket(conn)
        glob = await _grant(conn, settings, 42, tid, scope="wazuh/api/wazuh.*/*")
        exact = await _grant(conn, settings, 42, tid, scope=SCOPE)
        assert (await leases.check_lease(conn, _agent(42, tid), 42, SCOPE)).lease_id == exact.lease_id
        use = await leases.check_lease(conn, _agent(42, tid), 42, "wazuh/api/wazuh.rules/list")
        assert use.lease_id == glob.lease_id and use.granted_scope == "wazuh/api/wazuh.*/*"
        with pytest.raises(Forbidden):
            await leases.check_lease(conn, _agent(42, tid), 42, "wazuh/api/WAZUH.rules/list")
        with pytest.raises(Invalid):
            await leases.check_lease(conn, _agent(42, tid), 42, "wazuh/api/wazuh.*/read")
        with pytest.raises(Invalid):
            parse_concrete("wazuh/api/read")


async def test_renew_is_capped_and_refused_when_not_live(open_db, settings):
    async with open_db() as conn:
        tid = await _ticket(conn)
        lease = await _grant(conn, settings, 42, tid, ttl_seconds=600)
        renewed = await leases.renew(conn, _agent(42, tid), settings, lease.lease_id, 1800)
        assert renewed.lease_duration == 1800 and renewed.last_renewal_time is not None
        capped = await leases.renew(conn, _agent(42, tid), settings, lease.lease_id, 10**6)
        assert capped.expire_time <= capped.max_expire_time and capped.lease_duration <= 7200
        await conn.execute("UPDATE leases SET max_expire_time = now() + interval '100 seconds' WHERE lease_id = $1",
                           lease.lease_id)
        short = await leases.renew(conn, _agent(42, tid), settings, lease.lease_id, 3600)
        assert short.expire_time == short.max_expire_time and short.lease_duration <= 100
        await leases.revoke(conn, _agent(42, tid), lease.lease_id, "")
        with pytest.raises(Conflict):
            await leases.renew(conn, _agent(42, tid), settings, lease.lease_id, 60)
        nonrenewable = await leases.grant(conn, agent_id=45, ticket_id=tid, scope=SCOPE, settings=settings,
                                          source={"kind": "workflow_policy"}, actor="workflow:1",
                                          actor_kind="system", renewable=False)
        with pytest.raises(Conflict):
            await leases.renew(conn, _agent(45, tid), settings, nonrenewable.lease_id, 60)
        assert len(await audit_rows(conn, "lease.renewed")) == 3


async def test_renew_racing_revoke_has_one_winner(open_db, settings):
    for _ in range(5):
        async with open_db() as setup:
            tid = await _ticket(setup)
            lease = await _grant(setup, settings, 42, tid)
        async with open_db() as a, open_db() as b:
            results = await asyncio.gather(
                leases.renew(a, _agent(42, tid), settings, lease.lease_id, 900),
                leases.revoke(b, _agent(42, tid), lease.lease_id, "race"), return_exceptions=True)
        async with open_db() as conn:
            final = await leases.get_lease(conn, _agent(42), lease.lease_id)
            renewed = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'lease.renewed' AND "
                                          "target_id = $1", lease.lease_id)
            revoked = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'lease.revoked' AND "
                                          "target_id = $1", lease.lease_id)
        assert final.status == "revoked" and revoked == 1
        if isinstance(results[0], Conflict):
            assert renewed == 0
        else:
            assert renewed == 1 and results[0].lease_duration == 900


async def test_revoke_is_idempotent_and_prefix_counts_only_live_leases(open_db, settings):
    async with open_db() as conn:
        tid = await _ticket(conn)
        a = await _grant(conn, settings, 42, tid)
        await _grant(conn, settings, 43, tid)
        await _grant(conn, settings, 43, tid, scope="wazuh/indexer/wazuh.alerts/read")
        await _grant(conn, settings, 44, tid, scope="gitlab/api/demo/read")
        first = await leases.revoke(conn, _agent(42, tid), a.lease_id, "done")
        again = await leases.revoke(conn, _agent(42, tid), a.lease_id, "again")
        assert first.status == again.status == "revoked" and again.revoke_reason == "done"
        admin = Principal(kind="user", name="ops", permissions=frozenset({"*"}))
        assert (await leases.revoke_prefix(conn, admin, "wazuh/api/", 43, "incident")).revoked == 1
        assert (await leases.revoke_prefix(conn, admin, "wazuh/", None, "incident")).revoked == 1
        assert (await leases.revoke_prefix(conn, admin, "wazuh/", None, "incident")).revoked == 0
        with pytest.raises(Invalid):
            await leases.revoke_prefix(conn, admin, "wazuh/*", None, "")
        assert await conn.fetchval("SELECT status FROM leases WHERE agent_id = 44") == "active"


async def test_cascades_agent_ended_task_finished_ticket_closed(open_db, settings):
    async with open_db() as conn:
        tid = await _ticket(conn)
        assert await leases.revoke_agent_leases(conn, 42) == 0
        await _grant(conn, settings, 42, tid)
        assert await leases.revoke_agent_leases(conn, 42, "agent_ended") == 1
        with pytest.raises(Forbidden) as exc:
            await leases.check_lease(conn, _agent(42, tid), 42, SCOPE)
        assert exc.value.body["reason"] == "lease_revoked"

        agent_id = await conn.fetchval(
            "INSERT INTO agents (ticket_id, name, status, harness, model, task_type, created_by) "
            "VALUES ($1, 'a', 'running', 'fake', 'm', 'ticket_resolution', 'alice') RETURNING id", tid)
        lease = await _grant(conn, settings, agent_id, tid)
        await conn.execute("UPDATE agents SET status = 'completed' WHERE id = $1", agent_id)
        with pytest.raises(Forbidden) as exc:  # refused at once, before the sweeper
            await leases.check_lease(conn, _agent(agent_id, tid), agent_id, SCOPE)
        assert exc.value.body["reason"] == "lease_revoked"
        counts = await leases.sweep(conn)
        assert counts["leases_revoked_agent_ended"] == 1
        assert (await leases.get_lease(conn, _agent(agent_id), lease.lease_id)).revoke_reason == "task_finished"

        other = await _ticket(conn)
        closing = await _grant(conn, settings, 50, other)
        await conn.execute("UPDATE tickets SET status = 'closed' WHERE id = $1", other)
        with pytest.raises(Forbidden):
            await leases.check_lease(conn, _agent(50, other), 50, SCOPE)
        assert (await leases.sweep(conn))["leases_revoked_ticket_closed"] == 1
        assert (await leases.get_lease(conn, _agent(50), closing.lease_id)).revoke_reason == "ticket_closed"

        due = await _grant(conn, settings, 51, other)
        await conn.execute("UPDATE leases SET expire_time = now() - interval '1 second' WHERE lease_id = $1",
                           due.lease_id)
        assert (await leases.sweep(conn))["leases_expired"] == 1
        assert await conn.fetchval("SELECT status FROM leases WHERE lease_id = $1", due.lease_id) == "expired"
        assert len(await audit_rows(conn, "lease.expired")) == 1


async def test_audit_failure_fails_the_call_closed(open_db, settings):
    async with open_db() as conn:
        tid = await _ticket(conn)
        await _grant(conn, settings, 42, tid)
        await conn.execute("""
            CREATE FUNCTION refuse_lease_audit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'audit storage down'; END $$;
            CREATE TRIGGER refuse BEFORE INSERT ON audit_log FOR EACH ROW
              WHEN (NEW.action IN ('lease.used', 'lease.denied')) EXECUTE FUNCTION refuse_lease_audit();
        """)
        returned = None
        with pytest.raises(Unavailable):
            async with leases.use_lease(conn, _agent(42, tid), 42, SCOPE, operation="wazuh.manager.status"):
                returned = {"provider": "data"}
        assert returned == {"provider": "data"}  # the call ran, but the exit refused to hand it out
        with pytest.raises(Unavailable):
            await leases.check_lease(conn, _agent(7, tid), 7, SCOPE)


async def test_spawner_scope_never_more_than_held(open_db, settings):
    async with open_db() as conn:
        tid = await _ticket(conn)
        narrow = Principal(kind="user", name="bob", permissions=frozenset({"leases:scope:wazuh/api/wazuh.*/read"}))
        lease = await leases.grant_from_spawner(conn, narrow, agent_id=42, ticket_id=tid, scope=SCOPE,
                                                settings=settings)
        assert lease.source == {"kind": "spawner_scope", "approved_by": "bob"}
        for wider in ("wazuh/api/*/read", "wazuh/api/wazuh.manager/write", "wazuh/indexer/wazuh.alerts/read"):
            with pytest.raises(Forbidden):
                await leases.grant_from_spawner(conn, narrow, agent_id=42, ticket_id=tid, scope=wider,
                                                settings=settings)
        analyst = Principal(kind="user", name="al", permissions=frozenset({"tickets:read"}))
        with pytest.raises(Forbidden):
            await leases.grant_from_spawner(conn, analyst, agent_id=42, ticket_id=tid, scope=SCOPE, settings=settings)
        manager = Principal(kind="user", name="mgr", permissions=frozenset({"leases:*"}))
        again = await leases.grant_from_spawner(conn, manager, agent_id=42, ticket_id=tid, scope=SCOPE,
                                                settings=settings, ttl_seconds=60)
        assert again.lease_duration == 60
        assert (await leases.get_lease(conn, _agent(42), lease.lease_id)).revoke_reason == "superseded"
        with pytest.raises(Invalid):
            await leases.grant_from_spawner(conn, manager, agent_id=42, ticket_id=tid, scope=SCOPE,
                                            settings=settings, ttl_seconds=10**6)


async def test_lease_endpoints(open_db, settings, make_client, make_token, admin_client, caplog):
    caplog.set_level(logging.DEBUG)
    async with open_db() as conn:
        tid = await _ticket(conn)
        lease = await _grant(conn, settings, 42, tid)
        own = await auth.mint_agent_token(conn, agent_id=42, ticket_id=tid, task_id=None)
        stranger = await auth.mint_agent_token(conn, agent_id=43, ticket_id=tid, task_id=None)
    seen = []
    async with make_client(token=own) as agent:
        r = await agent.get("/api/agents/42/leases")
        assert r.status_code == 200 and r.json()["leases"][0]["lease_id"] == lease.lease_id
        seen.append(r.text)
        r = await agent.get(f"/api/leases/{lease.lease_id}")
        assert r.status_code == 200 and r.json()["secret_values_returned"] is False
        r = await agent.post(f"/api/leases/{lease.lease_id}/renew", json={"increment": 1800})
        assert r.status_code == 200 and r.json()["lease_duration"] == 1800
        assert (await agent.post(f"/api/leases/{lease.lease_id}/renew", json={"increment": 0})).status_code == 400
        assert (await agent.post(f"/api/leases/{lease.lease_id}/renew", json={"x": 1})).status_code == 400
        assert (await agent.post("/api/leases/lse_missing/renew", json={})).status_code == 404
        r = await agent.post(f"/api/leases/{lease.lease_id}/revoke", json={"reason": "done"})
        assert r.status_code == 200 and r.json()["status"] == "revoked"
        assert (await agent.post(f"/api/leases/{lease.lease_id}/revoke", json={})).status_code == 200
        assert (await agent.post(f"/api/leases/{lease.lease_id}/renew", json={})).status_code == 409
        assert (await agent.post("/api/leases/revoke-prefix", json={"scope_prefix": "wazuh/"})).status_code == 403
        seen.append(r.text)
    async with make_client(token=stranger) as other:
        assert (await other.get("/api/agents/42/leases")).status_code == 403
        assert (await other.get(f"/api/leases/{lease.lease_id}")).status_code == 404
        assert (await other.post(f"/api/leases/{lease.lease_id}/revoke", json={})).status_code == 404
    async with make_client(token=await make_token("auditor")) as auditor:
        assert (await auditor.get("/api/agents/42/leases")).status_code == 200
        r = await auditor.post(f"/api/leases/{lease.lease_id}/revoke", json={})
        assert r.status_code == 403 and r.json()["required_permission"] == "leases:revoke"
    async with make_client(token=await make_token("analyst")) as analyst:
        assert (await analyst.get("/api/agents/42/leases")).status_code == 403
    r = await admin_client.post("/api/leases/revoke-prefix", json={"scope_prefix": ""})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "scope_prefix"
    r = await admin_client.post("/api/leases/revoke-prefix", json={"scope_prefix": "wazuh/", "reason": "incident"})
    assert r.status_code == 200 and r.json() == {"revoked": 0, "lease_ids": [], "secret_values_returned": False}
    async with open_db() as conn:
        audit_dump = await conn.fetchval("SELECT string_agg(a::text, ' ') FROM audit_log a")
        event_dump = await conn.fetchval("SELECT string_agg(e::text, ' ') FROM event_log e")
    for text in (*seen, audit_dump, event_dump):
        assert CANARY not in text and own not in text
    assert all(CANARY not in rec.getMessage() and own not in rec.getMessage() for rec in caplog.records)
