"""Wazuh through leases end to end: a real `opsgate serve`, a spawned agent, the fake Wazuh as a server.

The fake Wazuh manager + indexer runs as its own process on 127.0.0.1; the
server reaches it over HTTP with canary passwords. A spawned agent (fake
harness) is refused without a lease (403, audited, nothing sent upstream),
files an access request with its own token, a human approves it, the three
routes answer with fake Wazuh data, a human revokes the lease and the very
next call is refused. The canary passwords appear in no response, in neither
server's log and nowhere in the agent's environment.
"""

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from opsgate.testing.processes import FAKE_HARNESS_MODULE, FAST_RUNNER_ENV, OpsgateProcess, base_env, free_port

pytestmark = pytest.mark.e2e

ROUTES = ("wazuh/manager/status", "wazuh/rules/5712", "wazuh/alerts/search?rule_id=5710&limit=3")


async def _wait_for_env(path: Path, timeout: float = 30.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and "OPSGATE_AGENT_TOKEN=" in path.read_text():
            return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} not written in {timeout}s")


async def _wait_for_fake(base: str, user: str, password: str, proc: subprocess.Popen) -> None:
    async with httpx.AsyncClient(base_url=base, trust_env=False) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if (await client.post("/security/user/authenticate", auth=(user, password))).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
    raise AssertionError("the fake Wazuh server did not start")


async def test_agent_uses_wazuh_only_while_it_holds_a_lease(db_url, tmp_path, make_token):
    tag = uuid.uuid4().hex
    api_pw, idx_pw = f"CANARY-API-{tag}", f"CANARY-IDX-{tag}"
    wazuh_port, port = free_port(), free_port()
    wazuh = f"http://127.0.0.1:{wazuh_port}"
    base = f"http://127.0.0.1:{port}"
    fake_log = open(tmp_path / "fake-wazuh.log", "wb")  # noqa: SIM115 - closed below
    fake = subprocess.Popen([sys.executable, "-m", "opsgate_tool_wazuh.fake", "--port", str(wazuh_port),
                             "--api-password", api_pw, "--indexer-password", idx_pw],
                            stdout=fake_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        await _wait_for_fake(wazuh, "wazuh-reader", api_pw, fake)
        env = base_env(OPSGATE_DATABASE_URL=db_url, OPSGATE_WORK_DIR=str(tmp_path / "work"),
                       OPSGATE_DATA_DIR=str(tmp_path / "data"), OPSGATE_PORT=str(port), OPSGATE_RUNNER="1",
                       OPSGATE_PLUGINS="fake-harness,wazuh", OPSGATE_PLUGIN_MODULES=FAKE_HARNESS_MODULE,
                       OPSGATE_LOG_LEVEL="DEBUG", WAZUH_API_URL=wazuh, WAZUH_API_USER="wazuh-reader",
                       WAZUH_API_PASSWORD=api_pw, WAZUH_INDEXER_URL=wazuh, WAZUH_INDEXER_USER="alerts-reader",
                       WAZUH_INDEXER_PASSWORD=idx_pw, **FAST_RUNNER_ENV)
        admin = {"Authorization": f"Bearer {await make_token('platform-admin')}"}
        approver = {"Authorization": f"Bearer {await make_token('soc-manager')}"}
        bodies: list[str] = []
        with OpsgateProcess("serve", env=env, log_path=tmp_path / "serve.log") as server:
            server.wait_http(f"{base}/health")
            async with httpx.AsyncClient(base_url=base, headers=admin, trust_env=False, timeout=30) as http:
                ticket = (await http.post("/api/tickets", json={"title": "SSH brute force from 203.0.113.45",
                                                                "sync_provider": False})).json()
                r = await http.post(f"/api/tickets/{ticket['id']}/assign-agent", json={
                    "harness": "fake", "model": "fake-model", "prompt": "fake: env agent-env.txt\nfake: sleep 120"})
                assert r.status_code == 201, r.text
                agent_id = r.json()["agent"]["id"]
                agent_env = await _wait_for_env(tmp_path / "work" / "agents" / str(agent_id) / "agent-env.txt")
                assert not any(k.startswith("WAZUH_") for k in agent_env)
                agent = {"Authorization": f"Bearer {agent_env['OPSGATE_AGENT_TOKEN']}"}

                async def call(path):
                    r = await http.get(f"/api/agents/{agent_id}/{path}", headers=agent)
                    bodies.append(r.text + repr(sorted(r.headers.items())))
                    return r

                for path in ROUTES:
                    r = await call(path)
                    assert r.status_code == 403 and r.json()["reason"] == "missing_lease", r.text
                    assert r.json()["scope"] == "wazuh/api/wazuh.manager/read"

                r = await http.post(f"/api/tickets/{ticket['id']}/access-request", headers=agent, json={
                    "resource": "Wazuh manager API", "permission": "read", "sync_provider": False,
                    "reason": "Need the rule and the alerts for 203.0.113.45.",
                    "lease": {"system": "wazuh", "resource_type": "api", "resource_id": "wazuh.manager",
                              "action": "read", "ttl_seconds": 900}})
                assert r.status_code == 201, r.text
                r = await http.post(f"/api/changes/{r.json()['change']['id']}/approve", headers=approver,
                                    json={"reason": "Read-only triage."})
                assert r.status_code == 200, r.text
                lease = r.json()["lease"]

                status, rule, search = [await call(path) for path in ROUTES]
                assert status.status_code == 200, f"{status.text}\n{server.describe()}"
                assert status.json()["data"]["data"]["affected_items"][0]["wazuh-analysisd"] == "running"
                assert rule.json()["data"]["data"]["affected_items"][0]["id"] == 5712
                assert search.status_code == 200 and search.json()["data"]["alerts"]
                for r in (status, rule, search):
                    assert r.json()["lease_id"] == lease["lease_id"] and r.json()["secret_values_returned"] is False

                r = await http.post(f"/api/leases/{lease['lease_id']}/revoke", headers=approver,
                                    json={"reason": "triage finished"})
                assert r.status_code == 200 and r.json()["status"] == "revoked"
                r = await call(ROUTES[0])
                assert r.status_code == 403 and r.json()["reason"] == "lease_revoked", r.text
                assert (await http.post(f"/api/agents/{agent_id}/stop", json={"reason": "done"})).status_code == 200
        conn = await asyncpg.connect(db_url)
        try:
            actions = [r["action"] for r in await conn.fetch(
                "SELECT action FROM audit_log WHERE action LIKE 'lease.%' ORDER BY id")]
        finally:
            await conn.close()
        assert actions[:3] == ["lease.denied"] * 3
        assert actions.count("lease.used") == 3 and actions[-1] == "lease.denied"
        assert actions.index("lease.granted") < actions.index("lease.used") < actions.index("lease.revoked")
    finally:
        fake.terminate()
        fake.wait(timeout=10)
        fake_log.close()
    blob = "\n".join(bodies) + server.output() + (tmp_path / "fake-wazuh.log").read_text(errors="replace")
    assert "GET /manager/status" in blob  # the fake's access log was captured
    for needle in (api_pw, idx_pw, tag):
        assert needle not in blob
