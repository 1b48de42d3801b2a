"""Canary leak test through the app (issue 7 item 5; leases.md 5.11).

Both Wazuh passwords and the fake's session tokens are unique canaries. Every
Wazuh route runs through the app on its allowed, denied, invalid and failing
paths; the canaries (and the Basic header values derived from them) must not
appear in any response body or header, any log record, or any row of any
table of the database.
"""

import base64
import logging
import uuid

import pytest

from opsgate import hookimpl
from opsgate.auth import service as auth
from opsgate.db.pool import connect
from opsgate.testing import fake_harness
from opsgate_tool_wazuh.adapter import WazuhAdapter
from opsgate_tool_wazuh.fake import FakeClock, FakeWazuh
from opsgate_tool_wazuh.routes import route_handlers

API_USER, IDX_USER = "wazuh-reader", "alerts-reader"
LEASE = {"system": "wazuh", "resource_type": "api", "resource_id": "wazuh.manager", "action": "read"}
PATHS = ("wazuh/manager/status", "wazuh/rules/5712", "wazuh/rules/999999",
         "wazuh/alerts/search?rule_id=5710&source_ip=203.0.113.45&limit=3", "wazuh/alerts/search")


class Plugin:
    def __init__(self, fake: FakeWazuh, env: dict[str, str]) -> None:
        self.adapter = WazuhAdapter.from_env(env, transport=fake.manager_transport(),
                                             indexer_transport=fake.indexer_transport(), clock=fake.clock)

    @hookimpl
    def opsgate_tool_adapters(self):
        return [self.adapter]

    @hookimpl
    def opsgate_routes(self):
        return route_handlers()


async def _dump_database(db_url: str) -> list[str]:
    conn = await connect(db_url)
    try:
        tables = [r["t"] for r in await conn.fetch(
            "SELECT format('%I.%I', table_schema, table_name) AS t FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'")]
        assert len(tables) > 10
        lines = []
        for table in tables:
            lines += [r["row"] for r in await conn.fetch(f"SELECT t::text AS row FROM {table} t")]
        return lines
    finally:
        await conn.close()


async def test_no_canary_reaches_a_response_a_log_record_or_a_database_row(make_app, make_client, make_token,
                                                                           db_url, caplog):
    caplog.set_level(logging.DEBUG)
    tag = uuid.uuid4().hex
    api_pw, idx_pw, token_marker = f"CANARY-API-PW-{tag}", f"CANARY-IDX-PW-{tag}", f"CANARYTOKEN{tag}"
    env = {"WAZUH_API_URL": "https://wazuh-manager.test:55000", "WAZUH_API_USER": API_USER,
           "WAZUH_API_PASSWORD": api_pw, "WAZUH_INDEXER_URL": "https://wazuh-indexer.test:9200",
           "WAZUH_INDEXER_USER": IDX_USER, "WAZUH_INDEXER_PASSWORD": idx_pw}
    fake = FakeWazuh(api_user=API_USER, api_password=api_pw, indexer_user=IDX_USER, indexer_password=idx_pw,
                     token_marker=token_marker, clock=FakeClock())
    app = make_app(plugins=[("fake-harness", fake_harness), ("wazuh", Plugin(fake, env))], env=env)
    seen: list[str] = []
    statuses: list[int] = []

    spawner = await make_token("platform-admin")
    approver = {"Authorization": f"Bearer {await make_token('soc-manager')}"}
    async with make_client(app, spawner) as c:
        ticket_id = (await c.post("/api/tickets", json={"title": "Canary", "sync_provider": False})).json()["id"]
        agent_id = (await c.post(f"/api/tickets/{ticket_id}/assign-agent",
                                 json={"harness": "fake", "model": "m"})).json()["agent"]["id"]
        conn = await connect(db_url)
        try:
            token = await auth.mint_agent_token(conn, agent_id=agent_id, ticket_id=ticket_id, task_id=None)
        finally:
            await conn.close()
        agent = {"Authorization": f"Bearer {token}"}

        async def sweep(headers=agent, paths=PATHS):
            for path in paths:
                r = await c.get(f"/api/agents/{agent_id}/{path}", headers=headers)
                statuses.append(r.status_code)
                seen.append(r.text)
                seen.append(repr(sorted(r.headers.items())))

        await sweep()  # denied: no lease
        await sweep(paths=("wazuh/rules/x", "wazuh/alerts/search?source_ip=nope"))  # invalid
        await sweep(headers={"Authorization": f"Bearer {spawner}"})  # a human: denied
        leases = []
        for lease in (LEASE, {**LEASE, "resource_type": "indexer", "resource_id": "wazuh.alerts"}):
            r = await c.post(f"/api/tickets/{ticket_id}/access-request", headers=agent, json={
                "resource": "Wazuh", "permission": "read", "sync_provider": False, "lease": lease})
            change_id = r.json()["change"]["id"]
            r = await c.post(f"/api/changes/{change_id}/approve", headers=approver, json={"reason": "ok"})
            assert r.status_code == 200, r.text
            seen.append(r.text)
            leases.append(r.json()["lease"]["lease_id"])
        await sweep()  # allowed (and a rule that does not exist)
        fake.expire_tokens()
        await sweep()  # the cached token is refused once: re-login with the canary password, retry
        for switch in ("down", "indexer_down", "daemons_not_ready", "indexer_unavailable", "indexer_overloaded"):
            setattr(fake, switch, True)
            await sweep()
            setattr(fake, switch, False)
        fake.rate_limit_per_minute = 0
        await sweep()
        fake.rate_limit_per_minute = None
        fake.api_users = {API_USER: "not-the-configured-password"}
        fake.indexer_users = {IDX_USER: ("not-the-configured-password", True)}
        fake.expire_tokens()
        await sweep()  # the server and the indexer refuse the configured (canary) credentials
        for lease_id in leases:
            r = await c.post(f"/api/leases/{lease_id}/revoke", headers=agent, json={"reason": "done"})
            seen.append(r.text)
        await sweep()  # revoked
        seen.append((await c.get(f"/api/agents/{agent_id}", headers=approver)).text)
        seen.append((await c.get(f"/api/agents/{agent_id}/leases", headers=approver)).text)
        seen.append((await c.get("/api/dashboard/audit?limit=500", headers=approver)).text)
        seen.append((await c.get("/api/plugins", headers=approver)).text)

    # every kind of outcome was exercised
    assert {200, 400, 403, 404, 502, 503} <= set(statuses), sorted(set(statuses))
    assert fake.logins >= 2 and any(token_marker in t for t in fake.issued_tokens)
    rows = await _dump_database(db_url)
    assert any("lease.used" in r for r in rows) and any("lease.denied" in r for r in rows)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        seen += [formatter.format(record), repr(record.args), repr(record.__dict__)]
        if record.exc_info:
            seen.append(formatter.formatException(record.exc_info))
    assert caplog.records
    basic = [base64.b64encode(f"{u}:{p}".encode()).decode() for u, p in ((API_USER, api_pw), (IDX_USER, idx_pw))]
    for where, blob in (("responses and logs", "\n".join(seen)), ("database", "\n".join(rows))):
        for needle in (api_pw, idx_pw, token_marker, tag, "CANARY", *basic):
            assert needle not in blob, f"canary {needle[:16]}... leaked into the {where}"


@pytest.mark.parametrize("password", ["", "CANARY-but-short"])
def test_settings_never_print_the_password(password):
    adapter = WazuhAdapter.from_env({"WAZUH_API_URL": "https://m.test:55000", "WAZUH_API_USER": "u",
                                     "WAZUH_API_PASSWORD": password})
    assert "CANARY" not in repr(adapter) + repr(adapter.settings) + str(adapter.settings)
