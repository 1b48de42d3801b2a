"""Runner benchmark: claim-to-running latency and runner CPU with N concurrent fake agents.

    .venv/bin/python bench/runner.py                 # 50 agents, a scratch database
    .venv/bin/python bench/runner.py --agents 100 --hold 15 --database-url postgresql://...

A scratch database (on the test PostgreSQL: OPSGATE_TEST_DATABASE_URL, else
127.0.0.1:5432, else an embedded server) is migrated; one real `opsgate
worker` process runs the fake harness with max_concurrent_agents = N. The
bench queues N tasks at once, each a fake agent that prints a line every
second for `--hold` seconds, and reports:

* claim-to-running: `started_at - claimed_at` per task (the runner's own work:
  work dir layout, AGENTS.md with the ticket context, harness command, spawn);
* queued-to-running: `started_at - created_at` (adds the NOTIFY wake-up and the claim);
* time until all N run;
* the worker's CPU (its own process, not the agents) while all N run, and the
  CPU it used to bring them up.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import psutil

from opsgate.db.migrate import migrate
from opsgate.testing.postgres import TestServer, unique_name
from opsgate.testing.processes import OpsgateProcess, fake_worker_env


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


async def _seed(url: str, agents: int, hold: float) -> None:
    prompt = "\n".join(["fake: print started"] + ["fake: sleep 1\nfake: print still working"] * int(hold))
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE agent_runtime_config SET config = jsonb_build_object("
                           "'max_concurrent_agents', $1::int) WHERE id = 1", agents)
        async with conn.transaction():
            for i in range(agents):
                ticket = await conn.fetchval("INSERT INTO tickets (title, created_by) VALUES ($1, 'bench') RETURNING id",
                                             f"bench ticket {i}")
                agent = await conn.fetchval(
                    "INSERT INTO agents (ticket_id, name, harness, model, task_type, created_by) "
                    "VALUES ($1, 'bench', 'fake', 'fake-model', 'ticket_resolution', 'bench') RETURNING id", ticket)
                await conn.execute(
                    "INSERT INTO agent_tasks (agent_id, ticket_id, type, prompt, harness, model, timeout_minutes, "
                    "created_by) VALUES ($1, $2, 'ticket_resolution', $3, 'fake', 'fake-model', 60, 'bench')",
                    agent, ticket, prompt)
            await conn.execute("SELECT pg_notify('opsgate_events', '0')")
    finally:
        await conn.close()


async def run(url: str, agents: int, hold: float, work: Path) -> int:
    env = fake_worker_env(url, work / "work", OPSGATE_LOG_LEVEL="WARNING", OPSGATE_RUNNER_POLL_SECONDS="0.2",
                          OPSGATE_RUNNER_HEARTBEAT_SECONDS="5", OPSGATE_RUNNER_LEASE_SECONDS="30")
    with OpsgateProcess("worker", env=env, log_path=work / "worker.log") as worker:
        worker.wait_for_output("started", timeout=60)
        proc = psutil.Process(worker.pid)
        cpu_before = proc.cpu_times()
        began = time.monotonic()
        await _seed(url, agents, hold)
        conn = await asyncpg.connect(url)
        try:
            while await conn.fetchval("SELECT count(*) FROM agent_tasks WHERE started_at IS NOT NULL") < agents:
                if time.monotonic() - began > 120:
                    print(worker.describe(), file=sys.stderr)
                    return 1
                await asyncio.sleep(0.02)
            all_running = time.monotonic() - began
            cpu_ramp = proc.cpu_times()
            window = min(5.0, max(1.0, hold - all_running - 1))
            await asyncio.sleep(window)
            cpu_after = proc.cpu_times()
            running = await conn.fetchval("SELECT count(*) FROM agent_tasks WHERE status = 'running'")
            rows = await conn.fetch("SELECT EXTRACT(EPOCH FROM started_at - claimed_at) AS claim, "
                                    "EXTRACT(EPOCH FROM started_at - created_at) AS queued FROM agent_tasks")
        finally:
            await conn.close()
    claim = [float(r["claim"]) for r in rows]
    queued = [float(r["queued"]) for r in rows]
    ramp_cpu = (cpu_ramp.user + cpu_ramp.system) - (cpu_before.user + cpu_before.system)
    steady_cpu = (cpu_after.user + cpu_after.system) - (cpu_ramp.user + cpu_ramp.system)
    print(f"runner benchmark: {agents} concurrent fake agents, one `opsgate worker`")
    print(f"  claim-to-running   p50 {_ms(statistics.median(claim))}  p95 {_ms(_pct(claim, 0.95))}  "
          f"max {_ms(max(claim))}")
    print(f"  queued-to-running  p50 {_ms(statistics.median(queued))}  p95 {_ms(_pct(queued, 0.95))}  "
          f"max {_ms(max(queued))}")
    print(f"  all {agents} running after {all_running:.2f} s; {running} still running during the CPU window")
    print(f"  worker CPU bringing them up: {ramp_cpu:.2f} s; while supervising {agents}: "
          f"{100 * steady_cpu / window:.1f} % of one core (over {window:.1f} s)")
    return 0


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--hold", type=float, default=12.0, help="seconds each fake agent runs")
    ap.add_argument("--database-url", default=None, help="an empty database to migrate and use")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsgate-bench-runner-") as tmp:
        if args.database_url:
            await migrate(args.database_url)
            return await run(args.database_url, args.agents, args.hold, Path(tmp))
        server = TestServer()
        await server.start()
        name = unique_name("bench")
        admin = await asyncpg.connect(server.admin_url)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        try:
            url = server.url_for(name)
            await migrate(url)
            return await run(url, args.agents, args.hold, Path(tmp))
        finally:
            admin = await asyncpg.connect(server.admin_url)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
            server.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
