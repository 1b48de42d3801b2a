"""Real `opsgate worker` and `opsgate serve` processes with the fake harness: crash recovery, no double runs,
the runner inside serve, the agent WebSocket."""

import asyncio
import json
import os
import time

import asyncpg
import httpx
import pytest
import websockets

from opsgate.testing import fake_harness
from opsgate.testing.processes import OpsgateProcess, fake_worker_env, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(make_app, make_client, admin_token, tmp_path):
    """An in-process API (runner off) to create tickets and agents."""
    app = make_app(plugins=[("fake-harness", fake_harness)])

    async def assign(title: str, prompt: str) -> dict:
        async with make_client(app, admin_token) as c:
            r = await c.post("/api/tickets", json={"title": title})
            assert r.status_code == 201, r.text
            s = await c.post(f"/api/tickets/{r.json()['id']}/assign-agent", json={"model": "m", "prompt": prompt})
            assert s.status_code == 201, s.text
            return s.json()

    async def put_config(body: dict) -> None:
        async with make_client(app, admin_token) as c:
            assert (await c.put("/api/agents/config", json=body)).status_code == 200

    return assign, put_config


async def _wait(predicate, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


async def test_a_worker_killed_mid_task_leaves_nothing_running_after_restart(api, db_url, tmp_path):
    assign, _ = api
    env = fake_worker_env(db_url, tmp_path / "work")
    spawned = await assign("long task", "fake: spawn-child 120\nfake: print working\nfake: sleep 120")
    task_id = spawned["task"]["id"]
    db = await asyncpg.connect(db_url)
    first = OpsgateProcess("worker", env=env, log_path=tmp_path / "worker1.log").start()
    try:
        async def running():
            row = await db.fetchrow("SELECT status, pid, runner_id FROM agent_tasks WHERE id = $1", task_id)
            return row if row["status"] == "running" and row["pid"] else None
        row = await _wait(running)
        pgid = row["pid"]
        first.kill()  # SIGKILL: no cleanup at all
        assert _alive(pgid), "the agent's process group outlives its runner (own session)"
        assert await db.fetchval("SELECT status FROM agent_tasks WHERE id = $1", task_id) == "running"
        with OpsgateProcess("worker", env=env, log_path=tmp_path / "worker2.log") as second:
            async def recovered():
                return await db.fetchval("SELECT status FROM agent_tasks WHERE id = $1 AND status <> 'running'",
                                         task_id)
            status = await _wait(recovered, timeout=15)
            assert status == "failed", second.describe()
            task = await db.fetchrow("SELECT * FROM agent_tasks WHERE id = $1", task_id)
            assert row["runner_id"] in task["status_reason"] and "lost" in task["status_reason"]
            assert await db.fetchval("SELECT status FROM agents WHERE id = $1", spawned["agent"]["id"]) == "failed"
            assert await db.fetchval("SELECT count(*) FROM agent_tasks WHERE status = 'running'") == 0

            async def orphans_gone():
                return not _alive(pgid)
            await _wait(orphans_gone, timeout=5)
            # the restarted worker runs new work normally
            after = await assign("after the crash", "fake: print fine")

            async def done():
                return await db.fetchval("SELECT status FROM agent_tasks WHERE id = $1", after["task"]["id"]) \
                    == "completed"
            await _wait(done)
        assert second.proc.returncode == 0, second.describe()
    finally:
        first.stop()
        await db.close()


async def test_two_workers_never_run_the_same_task(api, db_url, tmp_path):
    assign, put_config = api
    await put_config({"max_concurrent_agents": 4})
    record = tmp_path / "runs.jsonl"
    env = fake_worker_env(db_url, tmp_path / "work")
    db = await asyncpg.connect(db_url)
    try:
        with OpsgateProcess("worker", env=env, log_path=tmp_path / "w1.log") as w1, \
                OpsgateProcess("worker", env=env, log_path=tmp_path / "w2.log") as w2:
            w1.wait_for_output("started")
            w2.wait_for_output("started")
            ids = [(await assign(f"parallel {i}", f"fake: record {record}\nfake: sleep 0.2"))["task"]["id"]
                   for i in range(12)]

            async def all_done():
                return await db.fetchval("SELECT count(*) FROM agent_tasks WHERE status = 'completed'") == 12
            await _wait(all_done, timeout=40)
        assert w1.proc.returncode == 0 and w2.proc.returncode == 0, w1.describe() + w2.describe()
        starts = [json.loads(line) for line in record.read_text().splitlines()]
        starts = [s["task_id"] for s in starts if s["event"] == "start"]
        assert sorted(starts) == sorted(ids), "every task ran exactly once"
        assert await db.fetchval("SELECT max(attempts) FROM agent_tasks") == 1
        runners = {r["runner_id"] for r in await db.fetch("SELECT runner_id FROM agent_tasks")}
        assert 1 <= len(runners) <= 2
        # both workers marked themselves stopped on SIGTERM
        assert await db.fetchval("SELECT count(*) FROM runners WHERE stopped_at IS NOT NULL") == 2
    finally:
        await db.close()


async def test_serve_runs_agents_and_streams_their_events_over_the_websocket(db_url, tmp_path, make_token):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = fake_worker_env(db_url, tmp_path / "work", OPSGATE_PORT=str(port), OPSGATE_RUNNER="1")
    token = await make_token("platform-admin")
    headers = {"Authorization": f"Bearer {token}"}
    with OpsgateProcess("serve", env=env, log_path=tmp_path / "serve.log") as server:
        server.wait_http(f"{base}/health")
        async with websockets.connect(f"ws://127.0.0.1:{port}/api/agents/ws",
                                      additional_headers=headers) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert hello["type"] == "hello"
            async with httpx.AsyncClient(base_url=base, headers=headers, trust_env=False) as http:
                ticket = (await http.post("/api/tickets", json={"title": "ws ticket"})).json()
                r = await http.post(f"/api/tickets/{ticket['id']}/assign-agent",
                                    json={"model": "m", "prompt": "fake: note hello from the agent\n"
                                                                  "fake: checkpoint done 100 noted"})
                assert r.status_code == 201, r.text
                agent_id = r.json()["agent"]["id"]
                seen = []
                while "agent_task_finished" not in seen:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 15))
                    assert message["type"] == "event"
                    assert message["event"]["kind"].startswith("agent")
                    if message["event"]["agent_id"] == agent_id:
                        seen.append(message["event"]["kind"])
                assert seen[0] == "agent_spawned" and "agent_task_started" in seen, seen
                assert message["event"]["payload"]["status"] == "completed"
                notes = (await http.get(f"/api/tickets/{ticket['id']}/context")).json()["notes"]
                mine = [n for n in notes if n["body"] == "hello from the agent"]
                assert mine and mine[0]["author"] == f"agent_{agent_id}" and mine[0]["source"] == "agent"
                procs = (await http.get("/api/agents/processes")).json()
                assert procs["runner_id"] and procs["tracked"] == []
                health = (await http.get("/api/agents/runner-health")).json()
                assert health["runner_in_this_process"] is True
                assert any(r["id"] == procs["runner_id"] for r in health["runners"])
        assert "Traceback" not in server.output(), server.describe()
    assert server.proc.returncode == 0, server.describe()
