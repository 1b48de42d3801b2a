"""Static-site deploy end to end: a real `opsgate serve`, a spawned agent, its work dir, the gate, the page.

ticket → assign an agent (fake harness; it dumps its environment and keeps
running) → a site is put in the agent's work dir → the agent asks for the gate
with its own token → a human approves → an operator deploys → the page is
served at `/published/<slug>/` and the ticket timeline reads request →
approve → deploy evidence → complete. Everything listens on 127.0.0.1.
"""

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from opsgate.testing.processes import FAKE_HARNESS_MODULE, FAST_RUNNER_ENV, OpsgateProcess, base_env, free_port

pytestmark = pytest.mark.e2e

SLUG = "incident-status"
PAGE = "<!doctype html><title>Incident status</title><h1>All mail gateways recovered</h1>"


async def _wait_for(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            text = path.read_text()
            if "OPSGATE_AGENT_TOKEN=" in text:
                return text
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} not written in {timeout}s")


async def test_spawned_agent_site_is_deployed_behind_an_approved_gate(db_url, tmp_path, make_token):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    work = tmp_path / "work"
    env = base_env(OPSGATE_DATABASE_URL=db_url, OPSGATE_WORK_DIR=str(work), OPSGATE_DATA_DIR=str(tmp_path / "data"),
                   OPSGATE_PORT=str(port), OPSGATE_RUNNER="1", OPSGATE_PLUGINS="fake-harness,static-site",
                   OPSGATE_PLUGIN_MODULES=FAKE_HARNESS_MODULE, OPSGATE_PUBLISHED_PUBLIC_BASE_URL=base,
                   **FAST_RUNNER_ENV)
    admin = {"Authorization": f"Bearer {await make_token('platform-admin')}"}
    approver = {"Authorization": f"Bearer {await make_token('soc-manager')}"}
    operator = {"Authorization": f"Bearer {await make_token('agent-operator')}"}
    with OpsgateProcess("serve", env=env, log_path=tmp_path / "serve.log") as server:
        server.wait_http(f"{base}/health")
        async with httpx.AsyncClient(base_url=base, headers=admin, trust_env=False, timeout=30) as http:
            ticket = (await http.post("/api/tickets", json={"title": "Publish the incident status page",
                                                            "sync_provider": False})).json()
            r = await http.post(f"/api/tickets/{ticket['id']}/assign-agent", json={
                "harness": "fake", "model": "fake-model", "prompt": "fake: env agent-env.txt\nfake: sleep 120"})
            assert r.status_code == 201, r.text
            agent_id = r.json()["agent"]["id"]
            root = work.resolve() / "agents" / str(agent_id)
            agent_env = dict(line.split("=", 1) for line in (await _wait_for(root / "agent-env.txt")).splitlines()
                             if "=" in line)
            agent = {"Authorization": f"Bearer {agent_env['OPSGATE_AGENT_TOKEN']}"}
            # the agent's work: a small site in its work dir
            (root / "site").mkdir()
            (root / "site" / "index.html").write_text(PAGE)

            r = await http.post("/api/changes/request", headers=agent, json={
                "ticket_id": ticket["id"], "action": "deploy_static_site", "target": SLUG, "risk_level": "low",
                "reason": "Publish the status page for the mail incident."})
            assert r.status_code == 201, r.text
            change = r.json()
            assert change["agent_id"] == agent_id and change["requested_by"] == f"agent_{agent_id}"
            # deploying before approval is refused and publishes nothing
            early = await http.post(f"/api/agents/{agent_id}/deploy/static-site", headers=operator,
                                    json={"change_id": change["id"], "source_dir": "site", "slug": SLUG})
            assert early.status_code == 409, early.text
            r = await http.post(f"/api/changes/{change['id']}/approve", headers=approver,
                                json={"reason": "Static page only."})
            assert r.status_code == 200, r.text

            r = await http.post(f"/api/agents/{agent_id}/deploy/static-site", headers=operator,
                                json={"change_id": change["id"], "source_dir": "site", "slug": SLUG})
            assert r.status_code == 200, f"{r.text}\n{server.describe()}"
            assert r.json()["status"] == "deployed" and r.json()["change_id"] == change["id"]
            assert r.json()["deployment"] == {**r.json()["deployment"], "relative_url": f"/published/{SLUG}/",
                                              "public_url": f"{base}/published/{SLUG}/"}

            async with httpx.AsyncClient(trust_env=False) as anonymous:
                page = await anonymous.get(f"{base}/published/{SLUG}/")
            assert page.status_code == 200 and "All mail gateways recovered" in page.text
            assert page.headers["content-security-policy"].startswith("sandbox")

            notes = (await http.get(f"/api/tickets/{ticket['id']}/context")).json()["notes"]
            timeline = [n["body"].split("\n")[0] for n in notes if n["kind"] == "change"]
            assert len(timeline) == 4, timeline
            assert timeline[0].startswith(f"Approval requested by agent_{agent_id} (change #{change['id']}")
            assert timeline[1].startswith(f"Change #{change['id']} approved by test-soc-manager")
            assert timeline[2] == f"Static site deployed: /published/{SLUG}/ (change #{change['id']})."
            assert timeline[3].startswith(f"Change #{change['id']} completed by test-agent-operator")
            assert (await http.get(f"/api/changes/{change['id']}")).json()["status"] == "completed"
            assert (await http.post(f"/api/agents/{agent_id}/stop", json={"reason": "done"})).status_code == 200
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow("SELECT * FROM audit_log WHERE action = 'static_site_deployed'")
        assert row["agent_id"] == agent_id and row["target_id"] == str(change["id"])
    finally:
        await conn.close()
