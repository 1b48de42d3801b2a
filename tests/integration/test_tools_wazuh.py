"""The Wazuh routes through the app: validation, lease checks, audit, the adapter and its error mapping.

The app's adapter talks to the in-process fake Wazuh: a test plugin named
`wazuh` contributes a `WazuhAdapter` built on the fake's ASGI transports and
the plugin's own route handlers, so production code has no test hook.
"""

import asyncio
from contextlib import asynccontextmanager

import pytest

from opsgate import hookimpl
from opsgate.auth import service as auth
from opsgate.db.pool import connect
from opsgate.leases import service as leases
from opsgate.testing import audit_rows, fake_harness
from opsgate_tool_wazuh.adapter import SCOPE_ALERTS_READ, SCOPE_MANAGER_READ, WazuhAdapter
from opsgate_tool_wazuh.fake import FakeClock, FakeWazuh
from opsgate_tool_wazuh.routes import route_handlers

ENV = {
    "WAZUH_API_URL": "https://wazuh-manager.test:55000", "WAZUH_API_USER": "wazuh-reader",
    "WAZUH_API_PASSWORD": "fake-api-password", "WAZUH_INDEXER_URL": "https://wazuh-indexer.test:9200",
    "WAZUH_INDEXER_USER": "alerts-reader", "WAZUH_INDEXER_PASSWORD": "fake-indexer-password",
}
LEASE = {"system": "wazuh", "resource_type": "api", "resource_id": "wazuh.manager", "action": "read",
         "ttl_seconds": 1800}
STATUS, RULE, SEARCH = "wazuh/manager/status", "wazuh/rules/5712", "wazuh/alerts/search?rule_id=5710&limit=5"


class FakeWazuhPlugin:
    """`wazuh` for tests: the real routes, an adapter wired to the fake's transports."""

    def __init__(self, fake: FakeWazuh, env: dict[str, str], cls: type = WazuhAdapter) -> None:
        self.adapter = cls.from_env(env, transport=fake.manager_transport(),
                                    indexer_transport=fake.indexer_transport(), clock=fake.clock)

    @hookimpl
    def opsgate_tool_adapters(self):
        return [self.adapter]

    @hookimpl
    def opsgate_routes(self):
        return route_handlers()


@pytest.fixture
def fake():
    fake = FakeWazuh(clock=FakeClock())
    yield fake
    assert fake.logouts == 0


@pytest.fixture
def wazuh_app(make_app, fake):
    def build(env=None, cls=WazuhAdapter, core_env=None):
        plugin = FakeWazuhPlugin(fake, {**ENV, **(env or {})}, cls)
        return make_app(plugins=[("fake-harness", fake_harness), ("wazuh", plugin)], env={**ENV, **(core_env or {})})
    return build


@pytest.fixture
async def db(db_url):
    conn = await connect(db_url)
    yield conn
    await conn.close()


@pytest.fixture
def world(make_client, make_token, wazuh_app, db):
    """`async with world() as w`: one client, a ticket, a queued agent (runner off) and its token."""

    @asynccontextmanager
    async def open_(env=None, **app):
        spawner = await make_token("platform-admin")
        async with make_client(wazuh_app(env, **app), spawner) as c:
            r = await c.post("/api/tickets", json={"title": "SSH brute force on web-frontend-02",
                                                   "sync_provider": False, "owning_group": "SOC"})
            assert r.status_code == 201, r.text
            ticket_id = r.json()["id"]
            r = await c.post(f"/api/tickets/{ticket_id}/assign-agent", json={"harness": "fake", "model": "m"})
            assert r.status_code == 201, r.text
            agent_id = r.json()["agent"]["id"]
            token = await auth.mint_agent_token(db, agent_id=agent_id, ticket_id=ticket_id, task_id=None)
            yield World(c, ticket_id, agent_id, token, await make_token("soc-manager"), spawner)

    return open_


class World:
    def __init__(self, client, ticket_id, agent_id, token, approver, spawner):
        self.c, self.ticket_id, self.agent_id = client, ticket_id, agent_id
        self.agent = {"Authorization": f"Bearer {token}"}
        self.approver = {"Authorization": f"Bearer {approver}"}
        self.spawner = {"Authorization": f"Bearer {spawner}"}

    async def call(self, path, headers=None, agent_id=None):
        return await self.c.get(f"/api/agents/{agent_id or self.agent_id}/{path}",
                                headers=self.agent if headers is None else headers)

    async def grant_by_access_request(self, lease=LEASE, **approve):
        r = await self.c.post(f"/api/tickets/{self.ticket_id}/access-request", headers=self.agent, json={
            "resource": "Wazuh manager API", "permission": "read", "reason": "triage the alert",
            "sync_provider": False, "lease": lease})
        assert r.status_code == 201, r.text
        change_id = r.json()["change"]["id"]
        r = await self.c.post(f"/api/changes/{change_id}/approve", headers=self.approver,
                              json={"reason": "read-only triage", **approve})
        assert r.status_code == 200, r.text
        return r.json()["lease"]


def _denial(r, agent_id, scope, reason="missing_lease"):
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["error"] == "access_denied" and body["reason"] == reason, body
    assert body["agent_id"] == agent_id and body["scope"] == scope
    assert body["secret_values_returned"] is False and body["next_step"].startswith("File an access request")
    assert "required_permission" not in body and "data" not in body


async def test_no_lease_is_403_audited_and_never_reaches_wazuh(world, fake, db):
    async with world() as w:
        for path, scope in ((STATUS, SCOPE_MANAGER_READ), (RULE, SCOPE_MANAGER_READ), (SEARCH, SCOPE_MANAGER_READ)):
            _denial(await w.call(path), w.agent_id, scope)
        rows = await audit_rows(db, "lease.denied")
        assert [r["details"]["operation"] for r in rows] == ["wazuh.manager.status", "wazuh.rules.get",
                                                             "wazuh.alerts.search"]
        assert all(r["agent_id"] == w.agent_id and r["actor"] == f"agent_{w.agent_id}" for r in rows)
        assert fake.calls == []


@pytest.mark.parametrize("path, field", [
    ("wazuh/rules/abc", "rule_id"), ("wazuh/rules/0", "rule_id"), ("wazuh/rules/99999999999", "rule_id"),
    ("wazuh/rules/57%2010", "rule_id"), ("wazuh/alerts/search?rule_id=5710x", "rule_id"),
    ("wazuh/alerts/search?source_ip=999.1.1.1", "source_ip"), ("wazuh/alerts/search?source_ip=fe80::1%25eth0",
                                                                "source_ip"),
    ("wazuh/alerts/search?limit=0", "limit"), ("wazuh/alerts/search?limit=51", "limit"),
    ("wazuh/alerts/search?limit=ten", "limit"), ("wazuh/alerts/search?rule_id=" + "1" * 80, "rule_id"),
])
async def test_bad_input_is_400_naming_the_field_before_any_lease_check(world, fake, db, path, field):
    async with world() as w:
        r = await w.call(path)
        assert r.status_code == 400, r.text
        assert [e["field"] for e in r.json()["errors"]] == [field]
        assert await audit_rows(db, "lease.denied") == [] and await audit_rows(db, "lease.used") == []
        assert fake.calls == []


async def test_access_request_grant_then_three_routes_then_revoke(world, fake, db):
    async with world() as w:
        _denial(await w.call(STATUS), w.agent_id, SCOPE_MANAGER_READ)
        lease = await w.grant_by_access_request()
        assert lease["status"] == "active" and lease["credential_ref"] == "env:WAZUH_API"

        status = await w.call(STATUS)
        assert status.status_code == 200, status.text
        body = status.json()
        assert body["lease_id"] == lease["lease_id"] and body["credential_ref"] == "env:WAZUH_API"
        assert body["secret_values_returned"] is False and body["agent_id"] == w.agent_id
        assert body["broker_trace"]["decision"] == "allow" and body["broker_trace"]["audited"] is True
        assert body["data"]["data"]["affected_items"][0]["wazuh-apid"] == "running"
        assert body["summary"]["running"] >= 1

        rule = (await w.call("wazuh/rules/05712")).json()
        assert rule["rule_id"] == "5712" and rule["data"]["data"]["affected_items"][0]["id"] == 5712

        search = await w.call("wazuh/alerts/search?rule_id=5710&source_ip=203.0.113.45&limit=2")
        assert search.status_code == 200, search.text
        found = search.json()
        assert found["query"] == {"rule_id": "5710", "source_ip": "203.0.113.45", "limit": 2}
        assert found["scope"] == SCOPE_MANAGER_READ and found["lease_id"] == lease["lease_id"]
        # the spec's manager lease serves alert search with the indexer credential set, and says so
        assert found["credential_ref"] == "env:WAZUH_INDEXER" and found["lease_credential_ref"] == "env:WAZUH_API"
        assert 1 <= len(found["data"]["alerts"]) <= 2
        assert all(a["source"]["rule"]["id"] == "5710" for a in found["data"]["alerts"])

        used = await audit_rows(db, "lease.used")
        assert [u["details"]["operation"] for u in used] == ["wazuh.manager.status", "wazuh.rules.get",
                                                             "wazuh.alerts.search"]
        assert all(u["details"]["outcome"] == "success" and u["details"]["lease_id"] == lease["lease_id"]
                   for u in used)
        assert used[1]["details"]["params"] == {"rule_id": "5712"}
        assert used[2]["details"]["params"] == {"rule_id": "5710", "source_ip": "203.0.113.45", "limit": 2}
        assert used[2]["details"]["upstream"]["target"] == "indexer"
        assert used[2]["details"]["credential_ref"] == "env:WAZUH_INDEXER"
        assert used[2]["details"]["upstream"]["lease_credential_ref"] == "env:WAZUH_API"
        assert used[0]["details"]["upstream"]["http_status"] == 200

        # the agent revokes its own lease: the very next call is refused, nothing goes upstream
        upstream_before = len(fake.calls)
        r = await w.c.post(f"/api/leases/{lease['lease_id']}/revoke", headers=w.agent, json={"reason": "done"})
        assert r.status_code == 200, r.text
        for path in (STATUS, RULE, SEARCH):
            _denial(await w.call(path), w.agent_id, SCOPE_MANAGER_READ, "lease_revoked")
        assert len(fake.calls) == upstream_before
        assert fake.count(path="/security/user/authenticate") == 1  # one login, token cached across calls


async def test_indexer_scope_lease_covers_alert_search_only(world, fake, db):
    async with world() as w:
        lease = await w.grant_by_access_request(lease={**LEASE, "resource_type": "indexer",
                                                       "resource_id": "wazuh.alerts"})
        assert lease["credential_ref"] == "env:WAZUH_INDEXER"
        found = await w.call(SEARCH)
        assert found.status_code == 200, found.text
        assert found.json()["scope"] == SCOPE_ALERTS_READ and found.json()["credential_ref"] == "env:WAZUH_INDEXER"
        assert "lease_credential_ref" not in found.json()
        _denial(await w.call(STATUS), w.agent_id, SCOPE_MANAGER_READ)
        assert fake.count(target="manager") == 0
        # revoked indexer lease: the denial names the indexer scope with the informative reason
        await w.c.post(f"/api/leases/{lease['lease_id']}/revoke", headers=w.agent, json={"reason": "done"})
        _denial(await w.call(SEARCH), w.agent_id, SCOPE_ALERTS_READ, "lease_revoked")


async def test_spawner_grant_and_expiry(world, fake, db, test_settings):
    async with world() as w:
        settings = test_settings()
        spawner = await auth.authenticate(db, {"authorization": w.spawner["Authorization"]}, {}, settings)
        lease = await leases.grant_from_spawner(db, spawner, agent_id=w.agent_id, ticket_id=w.ticket_id,
                                                scope="wazuh/api/wazuh.*/read", settings=settings)
        r = await w.call(STATUS)
        assert r.status_code == 200 and r.json()["lease_id"] == lease.lease_id
        await db.execute("UPDATE leases SET expire_time = now() - interval '1 second' WHERE lease_id = $1",
                         lease.lease_id)
        _denial(await w.call(STATUS), w.agent_id, SCOPE_MANAGER_READ, "lease_expired")


async def test_humans_and_other_agents_are_refused(world, fake, db, make_token):
    async with world() as w:
        await w.grant_by_access_request()
        # platform-admin holds tools:use (through *): it reaches the lease check and is refused, audited
        _denial(await w.call(STATUS, headers=w.spawner), w.agent_id, SCOPE_MANAGER_READ)
        denied = (await audit_rows(db, "lease.denied"))[-1]
        assert denied["actor_kind"] == "service" and denied["details"]["reason"] == "missing_lease"
        # unknown agent: 404 for a human, before any lease decision
        r = await w.call(STATUS, headers=w.spawner, agent_id=987654)
        assert r.status_code == 404
        # another agent's token: refused by the lease check, never told whether the agent exists
        other = await auth.mint_agent_token(db, agent_id=w.agent_id + 1000, ticket_id=w.ticket_id, task_id=None)
        _denial(await w.call(STATUS, headers={"Authorization": f"Bearer {other}"}), w.agent_id, SCOPE_MANAGER_READ)
        # roles without tools:use are stopped by the guard
        analyst = {"Authorization": f"Bearer {await make_token('analyst')}"}
        r = await w.call(STATUS, headers=analyst)
        assert r.status_code == 403 and r.json()["required_permission"] == "tools:use"
        assert fake.calls == []


async def test_rule_not_found_is_404_with_the_wazuh_evidence(world, fake, db):
    async with world() as w:
        lease = await w.grant_by_access_request()
        r = await w.call("wazuh/rules/999999")
        assert r.status_code == 404, r.text
        body = r.json()
        assert body["error"] == "wazuh_rule_not_found" and body["rule_id"] == "999999"
        assert body["data"]["data"]["failed_items"][0]["error"]["code"] == 1208
        assert body["lease_id"] == lease["lease_id"] and body["secret_values_returned"] is False
        used = (await audit_rows(db, "lease.used"))[-1]
        assert used["details"]["outcome"] == "not_found" and used["details"]["upstream"]["error"] == \
            "wazuh_rule_not_found"


async def test_upstream_failures_map_to_502_503_and_are_audited(world, fake, db):
    async with world() as w:
        await w.grant_by_access_request()
        fake.down = True
        r = await w.call(STATUS)
        assert r.status_code == 502, r.text
        assert r.json()["error"].startswith("wazuh_") and r.json()["secret_values_returned"] is False
        assert "data" not in r.json()
        fake.down = False
        fake.daemons_not_ready = True
        r = await w.call(STATUS)
        assert r.status_code == 502 and r.json()["wazuh_error"] == 1017
        fake.daemons_not_ready = False
        fake.indexer_down = True
        r = await w.call(SEARCH)
        assert r.status_code == 502 and r.json()["target"] == "indexer"
        fake.indexer_down = False
        fake.rate_limit_per_minute = 0
        r = await w.call(RULE)
        assert r.status_code == 503 and r.json()["error"] == "wazuh_rate_limited"
        assert int(r.headers["retry-after"]) >= 1
        outcomes = [u["details"]["outcome"] for u in await audit_rows(db, "lease.used")]
        assert outcomes == ["error"] * 4


async def test_missing_indexer_settings_is_503_naming_the_variables(world, fake):
    async with world(env={"WAZUH_INDEXER_PASSWORD": ""}) as w:
        await w.grant_by_access_request()
        r = await w.call(SEARCH)
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "wazuh_not_configured" and r.json()["missing"] == ["WAZUH_INDEXER_PASSWORD"]
        assert (await w.call(STATUS)).status_code == 200  # the manager half needs none of them


async def test_an_unknown_credential_ref_is_503_and_nothing_is_sent(world, fake):
    async with world() as w:
        await w.grant_by_access_request(credential_ref="vault:kv/ops/wazuh/unknown")
        r = await w.call(STATUS)
        assert r.status_code == 503 and r.json()["error"] == "credential_unavailable"
        assert fake.calls == []


async def test_audit_failure_withholds_the_provider_data(world, fake, db):
    async with world() as w:
        await w.grant_by_access_request()
        await db.execute("""
            CREATE FUNCTION refuse_lease_used() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'audit store unavailable'; END $$;
            CREATE TRIGGER refuse_lease_used BEFORE INSERT ON audit_log
               FOR EACH ROW WHEN (NEW.action = 'lease.used') EXECUTE FUNCTION refuse_lease_used();
        """)
        r = await w.call(STATUS)
        assert r.status_code == 503, r.text
        assert "wazuh-apid" not in r.text and "data" not in r.json()
        assert fake.count(path="/manager/status") == 1  # the call happened; its answer was withheld


async def test_every_route_is_in_the_openapi_schema_with_its_permission(world):
    async with world() as w:
        schema = (await w.c.get("/schema/openapi.json")).json()
        for path in ("/api/agents/{agent_id}/wazuh/manager/status", "/api/agents/{agent_id}/wazuh/rules/{rule_id}",
                     "/api/agents/{agent_id}/wazuh/alerts/search"):
            assert "get" in schema["paths"][path], path


class BrokenAdapter(WazuhAdapter):
    """An adapter that fails in ways the route must contain: an unexpected error, a hang."""

    async def manager_status(self, credential_ref, *, trace=None):
        raise RuntimeError("unexpected failure carrying SECRET-DETAIL")

    async def get_rule(self, credential_ref, rule_id, *, trace=None):
        await asyncio.sleep(30)


async def test_unexpected_adapter_failures_and_timeouts_are_contained(world, caplog):
    async with world(cls=BrokenAdapter, core_env={"OPSGATE_PLUGIN_CALL_TIMEOUT": "0.5"}) as w:
        await w.grant_by_access_request()
        r = await w.call(STATUS)
        assert r.status_code == 502 and r.json()["error"] == "wazuh_adapter_error", r.text
        assert "SECRET-DETAIL" not in r.text and "RuntimeError" not in r.text
        r = await w.call(RULE)
        assert r.status_code == 504 and r.json()["error"] == "wazuh_timeout", r.text
        assert "SECRET-DETAIL" not in caplog.text
