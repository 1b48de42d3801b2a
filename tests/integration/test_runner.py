"""The runner inside the app, with the fake harness: claims, supervision, limits, stop, steering, recovery."""

import asyncio
import json
import os
import time
from pathlib import Path

import asyncpg
import pytest

from opsgate.db.pool import create_pool
from opsgate.events.listener import EventListener
from opsgate.runner.runner import Runner
from opsgate.testing import fake_harness

RUNNER_ENV = {
    "OPSGATE_RUNNER": "1",
    "OPSGATE_RUNNER_HEARTBEAT_SECONDS": "0.5",
    # In-process runners share the GIL with the test and the test client's thread: a 2 s lease
    # lapsed now and then under a loaded CI machine, and another runner "recovered" a live task.
    "OPSGATE_RUNNER_LEASE_SECONDS": "6",
    "OPSGATE_RUNNER_POLL_SECONDS": "0.5",
    "OPSGATE_RUNNER_STOP_GRACE_SECONDS": "1",
}


@pytest.fixture
def work_dir(tmp_path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def runner_app(make_app, work_dir):
    def build(**env):
        return make_app(plugins=[("fake-harness", fake_harness)],
                        env={**RUNNER_ENV, "OPSGATE_WORK_DIR": str(work_dir), **env})
    return build


@pytest.fixture
async def db(db_url):
    conn = await asyncpg.connect(db_url)
    yield conn
    await conn.close()


async def _ticket(c, title="Check the mail gateway"):
    r = await c.post("/api/tickets", json={"title": title, "description": "Runner test ticket."})
    assert r.status_code == 201, r.text
    return r.json()


async def _assign(c, ticket_id, prompt, **extra):
    r = await c.post(f"/api/tickets/{ticket_id}/assign-agent", json={"model": "fake-model", "prompt": prompt, **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def _wait(predicate, timeout=15.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


async def _task(db, task_id):
    return dict(await db.fetchrow("SELECT * FROM agent_tasks WHERE id = $1", task_id))


async def _task_in(db, task_id, *statuses):
    async def check():
        row = await _task(db, task_id)
        return row if row["status"] in statuses else None
    return await _wait(check)


async def test_a_task_runs_to_completion_with_its_work_dir_logs_and_progress(runner_app, make_client, admin_token,
                                                                             db, work_dir):
    async with make_client(runner_app(), admin_token) as c:
        ticket = await _ticket(c, "Rotate the VPN certificate")
        spawned = await _assign(c, ticket["id"], "fake: print starting\nfake: event tool_call curl the API\n"
                                                 "fake: env agent-env.txt\nfake: checkpoint done 100 all good\n"
                                                 "fake: sleep 30")
        task = await _task_in(db, spawned["task"]["id"], "completed")
        agent_id = spawned["agent"]["id"]
        assert task["progress"] == 100 and task["status_reason"] == "all good" and task["attempts"] == 1
        assert task["pid"] and task["runner_id"] and task["started_at"] and task["finished_at"]
        root = work_dir.resolve() / "agents" / str(agent_id)
        assert Path(task["work_dir"]) == root
        agents_md = (root / "AGENTS.md").read_text()
        assert "Rotate the VPN certificate" in agents_md and "$OPSGATE_AGENT_TOKEN" in agents_md
        assert "checkpoint.json" in agents_md and "AGENT_STEERING.md" in agents_md
        assert (root / "TASK.md").read_text().startswith("fake: print starting")
        assert json.loads((root / "agent_steering_inbox.json").read_text())["events"] == []
        assert "starting" in (root / "output.log").read_text()
        assert os.path.realpath(root / "output.log") == task["log_path"]
        env = dict(line.split("=", 1) for line in (root / "agent-env.txt").read_text().splitlines() if "=" in line)
        assert env["OPSGATE_TASK_ID"] == str(task["id"]) and env["OPSGATE_TICKET_ID"] == str(ticket["id"])
        assert env["OPSGATE_AGENT_TOKEN"].startswith("agt") or env["OPSGATE_AGENT_TOKEN"]
        assert "OPSGATE_DATABASE_URL" not in env and "AGENT_LLM_API_KEY" not in env
        # the token stopped working when the task ended
        r = await c.get(f"/api/tickets/{ticket['id']}", headers={"Authorization": f"Bearer {env['OPSGATE_AGENT_TOKEN']}"})
        assert r.status_code == 401
        # completion never changes the ticket's status
        assert (await c.get(f"/api/tickets/{ticket['id']}")).json()["status"] == ticket["status"]
        agent = (await c.get(f"/api/agents/{agent_id}")).json()
        assert agent["agent"]["status"] == "completed"
        assert [p["kind"] for p in agent["progress"]] == ["tool_call"]
        logs = (await c.get(f"/api/agents/tasks/{task['id']}/logs")).json()
        assert logs["source"] == "file" and "starting" in logs["content"]
        kinds = [r["kind"] for r in await db.fetch("SELECT kind FROM event_log WHERE agent_id = $1 ORDER BY id",
                                                   agent_id)]
        assert kinds[0] == "agent_spawned" and kinds.index("agent_task_started") < kinds.index("agent_task_finished")
        # the process group is gone (the runner stopped the agent after its done checkpoint)
        with pytest.raises(ProcessLookupError):
            os.killpg(task["pid"], 0)


async def test_exit_codes_and_hidden_failures(runner_app, make_client, admin_token, db):
    async with make_client(runner_app(), admin_token) as c:
        ok = await _assign(c, (await _ticket(c))["id"], "fake: print fine")
        bad = await _assign(c, (await _ticket(c))["id"], "fake: exit 3")
        hidden = await _assign(c, (await _ticket(c))["id"], "fake: fail model said 401")
        assert (await _task_in(db, ok["task"]["id"], "completed"))["exit_code"] == 0
        failed = await _task_in(db, bad["task"]["id"], "failed")
        assert failed["exit_code"] == 3 and "exited 3" in failed["status_reason"]
        detected = await _task_in(db, hidden["task"]["id"], "failed")
        assert detected["exit_code"] == 0 and "model said 401" in detected["status_reason"]
        assert await db.fetchval("SELECT status FROM agents WHERE id = $1", bad["agent"]["id"]) == "failed"


async def test_twenty_tasks_never_more_than_three_running_across_two_runners(runner_app, make_client, admin_token,
                                                                             db, db_url, tmp_path):
    app = runner_app()
    record = tmp_path / "runs.jsonl"
    async with make_client(app, admin_token) as c:
        assert (await c.put("/api/agents/config", json={"max_concurrent_agents": 3})).status_code == 200
        # a second runner with its own pool and LISTEN connection, like another worker process
        pool = await create_pool(db_url, app.state.settings, min_size=1, max_size=4)
        listener = EventListener(app.state.settings, pool)
        await listener.start()
        second = Runner(app.state.settings, app.state.plugins, pool, listener=listener, kind="worker")
        await second.start()
        try:
            peak = 0
            stop = asyncio.Event()

            async def watch():
                nonlocal peak
                conn = await asyncpg.connect(db_url)
                try:
                    while not stop.is_set():
                        peak = max(peak, await conn.fetchval(
                            "SELECT count(*) FROM agent_tasks WHERE status = 'running'"))
                        await asyncio.sleep(0.01)
                finally:
                    await conn.close()

            watcher = asyncio.create_task(watch())
            ids = []
            for i in range(20):
                ticket = await _ticket(c, f"Load ticket {i}")
                ids.append((await _assign(c, ticket["id"], f"fake: record {record}\nfake: sleep 0.3"))["task"]["id"])

            async def all_done():
                return await db.fetchval("SELECT count(*) FROM agent_tasks WHERE status = 'completed'") == 20
            await _wait(all_done, timeout=60)
            stop.set()
            await watcher
        finally:
            await second.stop()
            await listener.stop()
            await pool.close()
    assert 1 <= peak <= 3, peak
    runners = {r["runner_id"] for r in await db.fetch("SELECT runner_id FROM agent_tasks")}
    assert len(runners) == 2, "both runners should have claimed work"
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    starts = [entry for entry in lines if entry["event"] == "start"]
    assert sorted(e["task_id"] for e in starts) == sorted(ids)  # each ran exactly once
    timeline = sorted((e["t"], 1 if e["event"] == "start" else -1) for e in lines)
    running = max_running = 0
    for _, delta in timeline:
        running += delta
        max_running = max(max_running, running)
    assert max_running <= 3


async def test_zero_max_concurrent_pauses_new_starts(runner_app, make_client, admin_token, db):
    async with make_client(runner_app(), admin_token) as c:
        await c.put("/api/agents/config", json={"max_concurrent_agents": 0})
        spawned = await _assign(c, (await _ticket(c))["id"], "fake: print hi")
        await asyncio.sleep(1.5)
        assert (await _task(db, spawned["task"]["id"]))["status"] == "queued"
        await c.put("/api/agents/config", json={"max_concurrent_agents": 1})
        await _task_in(db, spawned["task"]["id"], "completed")


async def test_stop_of_a_running_task_kills_the_group_and_stays_stopped(runner_app, make_client, admin_token, db):
    async with make_client(runner_app(), admin_token) as c:
        spawned = await _assign(c, (await _ticket(c))["id"],
                                "fake: ignore-term\nfake: spawn-child 60\nfake: print waiting\nfake: sleep 60")
        task_id = spawned["task"]["id"]

        async def started():
            row = await _task(db, task_id)
            return row if row["pid"] and row["output_bytes"] > 0 else None
        row = await _wait(started)
        pgid = row["pid"]
        os.killpg(pgid, 0)  # alive, with its background child
        began = time.monotonic()
        r = await c.post(f"/api/agents/{spawned['agent']['id']}/stop", json={"reason": "operator_stop"})
        assert r.status_code == 200, r.text

        async def group_gone():
            try:
                os.killpg(pgid, 0)
                return False
            except ProcessLookupError:
                return True
        await _wait(group_gone, timeout=10)
        assert time.monotonic() - began < 6  # SIGTERM ignored: SIGKILL after the 1 s grace
        await _wait(lambda: _exit_recorded(db, task_id))
        await asyncio.sleep(1.2)  # heartbeats and the exit handling have run; nothing overwrote `stopped`
        task = await _task(db, task_id)
        assert task["status"] == "stopped" and task["status_reason"] == "operator_stop"
        assert task["exit_code"] is not None
        assert await db.fetchval("SELECT status FROM agents WHERE id = $1", spawned["agent"]["id"]) == "stopped"


async def _exit_recorded(db, task_id):
    return await db.fetchval("SELECT exit_code IS NOT NULL FROM agent_tasks WHERE id = $1", task_id)


async def test_checkpoint_wait_state_stops_the_process_and_wake_continues(runner_app, make_client, admin_token, db):
    async with make_client(runner_app(), admin_token) as c:
        spawned = await _assign(c, (await _ticket(c))["id"],
                                "fake: checkpoint pending_approval 40 waiting for gate 12\nfake: sleep 60")
        task = await _task_in(db, spawned["task"]["id"], "pending_approval")
        assert task["progress"] == 40 and task["status_reason"] == "waiting for gate 12"
        agent_id = spawned["agent"]["id"]
        assert await db.fetchval("SELECT status FROM agents WHERE id = $1", agent_id) == "pending_approval"
        with pytest.raises(ProcessLookupError):
            await _wait(lambda: _exit_recorded(db, task["id"]))
            os.killpg(task["pid"], 0)
        woke = await c.post(f"/api/agents/{agent_id}/wake", json={"prompt": "fake: checkpoint done 100 resumed"})
        assert woke.status_code == 200, woke.text
        continuation = await _task_in(db, woke.json()["task"]["id"], "completed")
        assert continuation["status_reason"] == "resumed" and continuation["agent_id"] == agent_id
        assert await db.fetchval("SELECT status FROM agents WHERE id = $1", agent_id) == "completed"


async def test_no_output_stall_times_the_task_out(runner_app, make_client, admin_token, db):
    async with make_client(runner_app(OPSGATE_RUNNER_STALL_SECONDS="1"), admin_token) as c:
        spawned = await _assign(c, (await _ticket(c))["id"], "fake: print one line\nfake: sleep 60")
        task = await _task_in(db, spawned["task"]["id"], "timeout")
        assert "no output" in task["status_reason"]
        assert await db.fetchval("SELECT status FROM agents WHERE id = $1", spawned["agent"]["id"]) == "stopped"


async def test_a_steering_note_reaches_the_running_agents_inbox_within_two_seconds(runner_app, make_client,
                                                                                   admin_token, db, work_dir):
    async with make_client(runner_app(), admin_token) as c:
        ticket = await _ticket(c)
        spawned = await _assign(c, ticket["id"], "fake: env agent-env.txt\nfake: wait-steering 20\n"
                                                 "fake: checkpoint done 100 steered")
        agent_id = spawned["agent"]["id"]
        root = work_dir.resolve() / "agents" / str(agent_id)

        async def token():
            try:
                text = (root / "agent-env.txt").read_text()
            except OSError:
                return None
            found = [ln.split("=", 1)[1] for ln in text.splitlines() if ln.startswith("OPSGATE_AGENT_TOKEN=")]
            return found[0] if found else None
        agent_token = await _wait(token)
        # the agent's own note (source agent) never steers it
        own = await c.post(f"/api/tickets/{ticket['id']}/notes", json={"body": "agent progress: looking"},
                           headers={"Authorization": f"Bearer {agent_token}"})
        assert own.status_code == 201 and own.json()["source"] == "agent" and own.json()["steer"] is False
        await asyncio.sleep(0.5)
        assert json.loads((root / "agent_steering_inbox.json").read_text())["pending"] == 0
        sent = time.monotonic()
        r = await c.post(f"/api/tickets/{ticket['id']}/notes",
                         json={"body": "Please also check the DMARC report.", "author": "alice"})
        assert r.status_code == 201 and r.json()["steer"] is True

        async def inbox_has_it():
            try:
                inbox = json.loads((root / "agent_steering_inbox.json").read_text())
            except (OSError, ValueError):
                return None
            return inbox if inbox["pending"] else None
        inbox = await _wait(inbox_has_it, timeout=2.0, interval=0.02)
        elapsed = time.monotonic() - sent
        assert elapsed < 2.0, elapsed
        assert inbox["events"][0]["body"] == "Please also check the DMARC report."
        assert inbox["events"][0]["author"] == "alice" and inbox["events"][0]["source"] == "dashboard"
        assert "Please also check the DMARC report." in (root / "AGENT_STEERING.md").read_text()
        await _task_in(db, spawned["task"]["id"], "completed")
        assert (root / "steering_seen.json").exists()  # the agent read it while running
        events = (await c.get(f"/api/agents/{agent_id}/steering")).json()
        assert events["pending"] == 1 and len(events["events"]) == 1
        assert events["events"][0]["delivered_at"] is not None
        event_id = events["events"][0]["id"]
        ack = await c.post(f"/api/agents/{agent_id}/steering/{event_id}/ack")
        assert ack.status_code == 200 and ack.json()["acknowledged_by"]
        assert (await c.get(f"/api/agents/{agent_id}/steering")).json()["pending"] == 0
        assert (await c.post(f"/api/agents/{agent_id}/steering/999999/ack")).status_code == 404


@pytest.mark.parametrize("mode,expected", [("fail", "failed"), ("requeue", "completed")])
async def test_tasks_of_a_lapsed_runner_are_failed_or_requeued(runner_app, make_client, admin_token, db, mode,
                                                               expected):
    # a task left `running` by a runner that died long ago
    app = runner_app(OPSGATE_RUNNER="0")
    async with make_client(app, admin_token) as c:
        spawned = await _assign(c, (await _ticket(c))["id"], "fake: print recovered run")
    task_id = spawned["task"]["id"]
    await db.execute("INSERT INTO runners (id, hostname, pid, kind, heartbeat_at) "
                     "VALUES ('dead:1:x', 'elsewhere', 1, 'worker', now() - interval '1 hour')")
    await db.execute("UPDATE agent_tasks SET status = 'running', runner_id = 'dead:1:x', host = 'elsewhere', "
                     "lease_expires_at = now() - interval '1 minute', attempts = 1 WHERE id = $1", task_id)
    await db.execute("UPDATE agents SET status = 'running' WHERE id = $1", spawned["agent"]["id"])
    async with make_client(runner_app(OPSGATE_RUNNER_RECOVERY=mode), admin_token):
        task = await _task_in(db, task_id, expected)
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'agent_task_recovered'") == 1
    details = json.loads(await db.fetchval("SELECT details FROM audit_log WHERE action = 'agent_task_recovered'"))
    assert details["attempt"] == 1 and details["previous_runner_id"] == "dead:1:x"
    if mode == "fail":
        assert "lost" in task["status_reason"]
    else:
        assert task["attempts"] == 2


async def test_a_running_task_this_runner_does_not_supervise_is_released(runner_app, make_client, admin_token, db):
    app = runner_app()
    async with make_client(app, admin_token) as c:
        await c.put("/api/agents/config", json={"max_concurrent_agents": 0})
        spawned = await _assign(c, (await _ticket(c))["id"], "fake: print never started")
        task_id = spawned["task"]["id"]
        # as if its supervision had died on a database error after the claim
        await db.execute("UPDATE agent_tasks SET status = 'running', runner_id = $2, claimed_at = now() - interval "
                         "'1 minute', lease_expires_at = now() + interval '1 minute' WHERE id = $1",
                         task_id, app.state.runner.id)
        await db.execute("UPDATE agents SET status = 'running' WHERE id = $1", spawned["agent"]["id"])
        task = await _task_in(db, task_id, "failed")
        assert task["status_reason"] == "runner lost track of the task"


async def test_a_late_recovery_event_of_an_earlier_attempt_does_not_end_the_new_one(test_settings, pool, tmp_path):
    # A re-queued task claimed again before the event of its recovery arrived: only the
    # recovered attempt ends, never the attempt this runner now supervises.
    from datetime import UTC, datetime

    from opsgate import plugins as plugin_host
    from opsgate.protocols import DomainEvent
    from opsgate.runner.runner import TaskRun

    settings = test_settings({"OPSGATE_WORK_DIR": str(tmp_path / "work")})
    runner = Runner(settings, plugin_host.load(settings, discover=False), pool)
    run = TaskRun(runner, {"id": 7, "agent_id": 3, "ticket_id": 5, "attempts": 2}, "oga_unused")
    runner.tasks[7] = run

    def recovered(attempt):
        return DomainEvent(id=1, kind="agent_task_recovered", ticket_id=5, agent_id=3, actor="runner:x",
                           payload={"task_id": 7, "attempt": attempt, "reason": "runner lost"},
                           created_at=datetime.now(UTC))

    runner.on_event(recovered(1))
    assert not run.ended.is_set()
    runner.on_event(recovered(2))
    assert run.ended.is_set() and "runner lost" in run.end_reason
