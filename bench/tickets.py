"""Ticket benchmark: seed N tickets by COPY, then measure the API of a running server.

    OPSGATE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/opsgate_bench \\
        .venv/bin/opsgate serve --port 8812 &
    .venv/bin/python bench/tickets.py 1000000 \\
        --database-url postgresql://postgres@127.0.0.1:5432/opsgate_bench --url http://127.0.0.1:8812

Seeding (skipped when the database already holds >= N tickets) writes N
tickets, 3 notes, 1 audit row and 1 event per ticket with COPY, then VACUUM
ANALYZEs. The measurements:

* POST /api/tickets at `--concurrency` (64) clients for `--duration` seconds:
  throughput and p50/p99 latency;
* GET /api/tickets?limit=100 without and with filters, GET
  /api/dashboard/audit?limit=100 (plain and per ticket), GET
  /api/dashboard/stats: sequential p50/p99;
* what authentication costs: GET /api/access/me (guard only) sequentially and
  at the same concurrency; run the bench once more against a server started
  with OPSGATE_AUTH_MODE=disabled (`--token none`) to compare.

The tickets the create run adds (with their notes, audit rows and events) are
deleted afterwards and the tables vacuumed, so every run measures the same
seeded dataset (`--keep-created` keeps them). `--create-only` skips the read
scenarios.

The HTTP client is a minimal keep-alive HTTP/1.1 client on asyncio streams,
so the load generator spends as little of the shared CPU as possible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg

STATUSES = [("closed", 40), ("resolved", 20), ("in_progress", 15), ("new", 10), ("assigned", 5), ("blocked", 3),
            ("awaiting_user_response", 3), ("pending_approval", 2), ("awaiting_access", 1), ("cancelled", 1)]
PRIORITIES = [("P1", 10), ("P2", 25), ("P3", 45), ("P4", 20)]
CLASSES = ["Incident", "UserRequest", "RoutineChange", "NormalChange", "EmergencyChange"]
GROUPS = [f"group-{i:02d}" for i in range(20)]
ASSIGNEES = [f"analyst.{i}" for i in range(200)]
WORDS = ["phishing", "malware", "password", "vpn", "mailbox", "firewall", "endpoint", "printer", "access",
         "certificate", "outage", "latency", "backup", "patch", "alert", "account", "license", "laptop"]
CHUNK = 50_000


def _weighted(pairs: list[tuple[str, int]]) -> list[str]:
    return [value for value, weight in pairs for _ in range(weight)]


# --- seeding ---------------------------------------------------------------------


def _ticket_rows(start: int, count: int, rnd: random.Random, t0: datetime, span: float) -> Iterator[tuple]:
    statuses, priorities = _weighted(STATUSES), _weighted(PRIORITIES)
    for i in range(start, start + count):
        created = t0 + timedelta(seconds=span * (i - start) / max(count, 1))
        status = rnd.choice(statuses)
        words = " ".join(rnd.sample(WORDS, 3))
        yield (
            i, f"Ticket {i}: {words}", f"Seeded ticket about {words}.", rnd.choice(CLASSES), status,
            rnd.choice(priorities), rnd.choice(ASSIGNEES) if rnd.random() < 0.8 else None,
            "Tier 1", rnd.choice(GROUPS), "internal", f"user{i % 50_000}@example.com", "bench",
            rnd.randint(1, 50_000) if rnd.random() < 0.05 else None, "local", f"LOCAL-{i}", "Incident",
            "local_only", created, created,
            created if status in ("resolved", "closed") else None,
            created if status in ("closed", "cancelled") else None,
        )


TICKET_COLUMNS = ["id", "title", "description", "ticket_class", "status", "priority", "assignee", "assignee_team",
                  "owning_group", "security_classification", "requester_email", "created_by", "agent_id",
                  "provider", "provider_ref", "provider_class", "provider_sync_status", "created_at", "updated_at",
                  "resolved_at", "closed_at"]


async def seed(database_url: str, n: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        have = await conn.fetchval("SELECT count(*) FROM tickets")
        if have >= n:
            print(f"seed: database already holds {have:,} tickets; not seeding")
            return
        todo = n - have
        start = (await conn.fetchval("SELECT COALESCE(max(id), 0) FROM tickets")) + 1
        print(f"seed: writing {todo:,} tickets, {3 * todo:,} notes, {todo:,} audit rows and {todo:,} events by COPY")
        rnd = random.Random(42)
        t0 = datetime.now(UTC) - timedelta(days=365)
        span = 364 * 86400.0
        began = time.perf_counter()
        for offset in range(0, todo, CHUNK):
            count = min(CHUNK, todo - offset)
            first = start + offset
            rows = list(_ticket_rows(first, count, rnd, t0 + timedelta(seconds=span * offset / todo),
                                     span * count / todo))
            await conn.copy_records_to_table("tickets", records=rows, columns=TICKET_COLUMNS)
            notes = []
            audits = []
            events = []
            for r in rows:
                tid, created, agent = r[0], r[17], r[12]
                notes.append((tid, created, "created", f"Ticket created by bench: {r[1]}", "bench",
                              "control-plane", "internal", None))
                notes.append((tid, created + timedelta(minutes=5), "note", "Scoped recipients; no other delivery.",
                              f"agent_{agent}" if agent else "analyst.1", "agent" if agent else "dashboard",
                              "internal", agent))
                notes.append((tid, created + timedelta(minutes=30), "status", f"Status changed to {r[4]}.",
                              "bench", "control-plane", "internal", None))
                audits.append(("bench", "service", "ticket_created", "ticket", "info", "ticket", str(tid), tid,
                               created))
                events.append(("ticket_created", "ticket", "info", "bench", tid, agent, created))
            await conn.copy_records_to_table(
                "ticket_notes", records=notes,
                columns=["ticket_id", "created_at", "kind", "body", "author", "source", "visibility", "agent_id"])
            await conn.copy_records_to_table(
                "audit_log", records=audits,
                columns=["actor", "actor_kind", "action", "category", "level", "target_type", "target_id",
                         "ticket_id", "created_at"])
            await conn.copy_records_to_table(
                "event_log", records=events,
                columns=["kind", "category", "level", "actor", "ticket_id", "agent_id", "created_at"])
            done = offset + count
            rate = done / (time.perf_counter() - began)
            print(f"seed: {done:,}/{todo:,} tickets ({rate:,.0f}/s)", flush=True)
        await conn.execute("SELECT setval('tickets_id_seq', (SELECT max(id) FROM tickets))")
        await conn.execute("SELECT setval('ticket_notes_id_seq', (SELECT max(id) FROM ticket_notes))")
        print("seed: VACUUM ANALYZE ...", flush=True)
        for table in ("tickets", "ticket_notes", "audit_log", "event_log"):
            await conn.execute(f"VACUUM (ANALYZE) {table}")
        print(f"seed: done in {time.perf_counter() - began:,.0f} s")
    finally:
        await conn.close()


RUN_TABLES = ("tickets", "ticket_notes", "audit_log", "event_log")


async def high_water(database_url: str) -> dict[str, int]:
    """The highest id of each table the create run writes to."""
    conn = await asyncpg.connect(database_url)
    try:
        return {t: await conn.fetchval(f"SELECT COALESCE(max(id), 0) FROM {t}") for t in RUN_TABLES}
    finally:
        await conn.close()


async def remove_created(database_url: str, marks: dict[str, int]) -> int:
    """Delete what the create run added (rows above the marks; notes, attachments and outbox rows go with
    their tickets), then VACUUM ANALYZE, so the next run measures the same dataset."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("DELETE FROM idempotency_keys WHERE ticket_id > $1", marks["tickets"])
            for table in ("audit_log", "event_log", "ticket_notes"):
                await conn.execute(f"DELETE FROM {table} WHERE id > $1", marks[table])
            status = await conn.execute("DELETE FROM tickets WHERE id > $1", marks["tickets"])
        for table in RUN_TABLES:
            await conn.execute(f"VACUUM (ANALYZE) {table}")
        return int(status.split()[-1])
    finally:
        await conn.close()


async def mint_token(database_url: str) -> str:
    from opsgate.auth.service import create_service_token
    from opsgate.db.pool import connect

    conn = await connect(database_url)
    try:
        _, token = await create_service_token(conn, name=f"bench-{uuid.uuid4().hex[:8]}", role="platform-admin",
                                              actor=None)
        return token
    finally:
        await conn.close()


# --- a minimal keep-alive HTTP/1.1 client ---------------------------------------------


class Http:
    def __init__(self, host: str, port: int, token: str | None) -> None:
        self.host, self.port = host, port
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self._head = f"Host: {host}:{port}\r\n{auth}Accept: application/json\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        extra = (f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body is not None
                 else "")
        self.writer.write(f"{method} {path} HTTP/1.1\r\n{self._head}{extra}\r\n".encode() + (body or b""))
        status = int((await self.reader.readline()).split()[1])
        length, chunked = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await self.reader.readexactly(length)
        parts = []
        while True:
            size = int((await self.reader.readline()).strip(), 16)
            if size == 0:
                await self.reader.readline()
                return status, b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readline()


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), or None."""
    if not pid:
        return None
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def _fmt(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"p50 {_pct(ms, 50):7.2f} ms  p99 {_pct(ms, 99):7.2f} ms  mean {statistics.fmean(ms):7.2f} ms"


async def load(host: str, port: int, token: str | None, concurrency: int, duration: float, warmup: float,
               method: str, make_path, make_body) -> tuple[int, float, list[float], dict[int, int], int]:
    """Closed-loop load: `concurrency` clients for warmup + duration seconds; measures the last `duration`."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    completed = 0
    counter = iter(range(10**12))
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + duration

    async def client() -> None:
        nonlocal completed
        http = Http(host, port, token)
        await http.open()
        try:
            while True:
                now = time.perf_counter()
                if now >= stop:
                    return
                i = next(counter)
                body = make_body(i)
                t = time.perf_counter()
                status, _ = await http.request(method, make_path(i), body)
                done = time.perf_counter()
                completed += 1
                if t >= measure_from and done <= stop:
                    latencies.append(done - t)
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            await http.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return len(latencies), duration, latencies, statuses, completed


async def sequential(http: Http, paths: list[str], warm: int = 10) -> tuple[list[float], dict[int, int]]:
    statuses: dict[int, int] = {}
    for p in paths[:warm]:
        await http.request("GET", p)
    latencies = []
    for p in paths:
        t = time.perf_counter()
        status, _ = await http.request("GET", p)
        latencies.append(time.perf_counter() - t)
        statuses[status] = statuses.get(status, 0) + 1
    return latencies, statuses


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("seed", nargs="?", type=int, default=1_000_000, help="tickets to seed (default 1,000,000)")
    ap.add_argument("--database-url", required=True, help="the database the server uses (for COPY and a token)")
    ap.add_argument("--url", default="http://127.0.0.1:8812", help="base URL of the running server")
    ap.add_argument("--token", default=None,
                    help="bearer token (default: mint a platform-admin token); 'none' for an auth-disabled server")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of measured create load")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--requests", type=int, default=200, help="sequential requests per read scenario")
    ap.add_argument("--skip-create", action="store_true")
    ap.add_argument("--create-only", action="store_true", help="measure POST /api/tickets only")
    ap.add_argument("--keep-created", action="store_true",
                    help="keep the tickets the create run adds (default: delete them and vacuum)")
    ap.add_argument("--seed-only", action="store_true", help="seed, then exit without measuring")
    ap.add_argument("--server-pid", type=int, default=None,
                    help="pid of the server process: also print its CPU time per created ticket")
    args = ap.parse_args()

    await seed(args.database_url, args.seed)
    if args.seed_only:
        return 0
    token = None if args.token == "none" else (args.token or await mint_token(args.database_url))
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    conn = await asyncpg.connect(args.database_url)
    try:
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM tickets) AS tickets, (SELECT count(*) FROM ticket_notes) AS notes, "
            "(SELECT count(*) FROM audit_log) AS audit, (SELECT count(*) FROM event_log) AS events, "
            "(SELECT max(id) FROM tickets) AS max_id")
    finally:
        await conn.close()
    print(f"\ndataset: {counts['tickets']:,} tickets, {counts['notes']:,} notes, {counts['audit']:,} audit rows, "
          f"{counts['events']:,} events; server {args.url}; auth {'on' if token else 'off'}")

    results: list[tuple[str, str]] = []
    if not args.skip_create:
        run = uuid.uuid4().hex[:6]

        def body(i: int) -> bytes:
            return json.dumps({
                "title": f"bench {run} {i}: {WORDS[i % len(WORDS)]} report", "description": "Load test ticket.",
                "ticket_class": "Incident", "priority": "P3", "owning_group": GROUPS[i % len(GROUPS)],
                "created_by": "bench",
            }).encode()

        marks = await high_water(args.database_url)
        cpu0 = _cpu_seconds(args.server_pid)
        n, secs, lat, statuses, sent = await load(host, port, token, args.concurrency, args.duration, args.warmup,
                                                  "POST", lambda i: "/api/tickets", body)
        cpu1 = _cpu_seconds(args.server_pid)
        if not args.keep_created:
            await asyncio.sleep(1.0)  # the server's event listener reads the last events back
            removed = await remove_created(args.database_url, marks)
            print(f"(removed the {removed:,} tickets the create run added, and vacuumed)", flush=True)
        line = f"{n / secs:8.0f} req/s  {_fmt(lat)}  statuses {statuses}"
        if cpu0 is not None and cpu1 is not None and n:
            line += f"  server CPU {1000 * (cpu1 - cpu0) / sent:.2f} ms/req"
        results.append((f"POST /api/tickets x{args.concurrency} clients", line))
        print(results[-1][0], "->", line, flush=True)

    if args.create_only:
        for name, line in results:
            print(f"  {name:42s} {line}")
        return 0
    http = Http(host, port, token)
    await http.open()
    rnd = random.Random(7)
    max_id = counts["max_id"] or 1
    k = args.requests
    scenarios: list[tuple[str, list[str]]] = [
        ("GET /api/tickets?limit=100", ["/api/tickets?limit=100"] * k),
        ("GET /api/tickets?limit=100&offset=1000", ["/api/tickets?limit=100&offset=1000"] * k),
        ("  &status=in_progress", ["/api/tickets?limit=100&status=in_progress"] * k),
        ("  &status=awaiting_access (1%)", ["/api/tickets?limit=100&status=awaiting_access"] * k),
        ("  &priority=P1", ["/api/tickets?limit=100&priority=P1"] * k),
        ("  &status=new&priority=P1", ["/api/tickets?limit=100&status=new&priority=P1"] * k),
        ("  &assignee=<one of 200>", [f"/api/tickets?limit=100&assignee={rnd.choice(ASSIGNEES)}" for _ in range(k)]),
        ("  &agent_only=true", ["/api/tickets?limit=100&agent_only=true"] * k),
        ("  &provider=local", ["/api/tickets?limit=100&provider=local"] * k),
        ("  &q=<word>", [f"/api/tickets?limit=100&q={rnd.choice(WORDS)}" for _ in range(k)]),
        ("GET /api/tickets/{id}", [f"/api/tickets/{rnd.randint(1, max_id)}" for _ in range(k)]),
        ("GET /api/dashboard/audit?limit=100", ["/api/dashboard/audit?limit=100"] * k),
        ("  &ticket_id=<random>", [f"/api/dashboard/audit?limit=100&ticket_id={rnd.randint(1, max_id)}"
                                   for _ in range(k)]),
        ("  &source=note", ["/api/dashboard/audit?limit=100&source=note"] * k),
        ("  &actor=bench&action=ticket_created", ["/api/dashboard/audit?limit=100&actor=bench&action=ticket_created"]
         * k),
        ("GET /api/dashboard/stats", ["/api/dashboard/stats"] * max(5, k // 10)),
        ("GET /api/access/me (auth guard only)", ["/api/access/me"] * k),
        ("GET /health (no auth, SELECT 1)", ["/health"] * k),
    ]
    for name, paths in scenarios:
        lat, statuses = await sequential(http, paths)
        line = f"{_fmt(lat)}  statuses {statuses}"
        results.append((name, line))
        print(f"{name:42s} {line}", flush=True)
    await http.close()

    for path in ("/api/access/me", "/health"):
        n, secs, lat, statuses, _ = await load(host, port, token, args.concurrency, 5.0, 1.0, "GET",
                                               lambda i, p=path: p, lambda i: None)
        line = f"{n / secs:8.0f} req/s  {_fmt(lat)}  statuses {statuses}"
        results.append((f"GET {path} x{args.concurrency} clients", line))
        print(f"GET {path} x{args.concurrency} clients -> {line}", flush=True)

    print("\nsummary")
    for name, line in results:
        print(f"  {name:42s} {line}")
    return 0


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    sys.exit(asyncio.run(main()))
