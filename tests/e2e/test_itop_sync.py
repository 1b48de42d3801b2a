"""`opsgate serve` against the fake iTop as a separate process: an outage, then every change exactly once.

The fake runs with `--state` so a restart on the same port keeps its tickets.
While it is stopped opsgate keeps accepting every write; once it is back the
outbox delivers each queued change once, in order, and the pull loop brings
iTop-side notes in.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

OPSGATE = str(Path(sys.executable).parent / "opsgate")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_fake(port: int, state: Path, log: Path) -> subprocess.Popen:
    out = open(log, "a")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen([sys.executable, "-m", "opsgate_provider_itop.fake", "--port", str(port),
                             "--state", str(state)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)


async def _wait_port(port: int, up: bool, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            if up:
                return
        except OSError:
            if not up:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"port {port} did not come {'up' if up else 'down'}")


async def _until(check, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def _itop_state(path: Path) -> dict:
    state = json.loads(path.read_text())
    tickets = {}
    for root, obj_id, leaf, obj in state["objects"]:
        if root == "Ticket":
            tickets[str(obj_id)] = {"class": leaf, **obj}
    return {"tickets": tickets, "calls": state["calls"]}


@pytest.mark.e2e
async def test_outage_then_every_change_arrives_once_in_order(tmp_path, db_url, make_token):
    token = await make_token("platform-admin")
    itop_port, api_port = _free_port(), _free_port()
    state = tmp_path / "itop-state.json"
    fake_log = tmp_path / "fake.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSGATE_", "ITOP_"))}
    env.update({
        "OPSGATE_DATABASE_URL": db_url, "OPSGATE_PORT": str(api_port), "OPSGATE_RUNNER": "0",
        "OPSGATE_DATA_DIR": str(tmp_path / "data"), "OPSGATE_LOG_FORMAT": "text", "OPSGATE_PLUGINS": "itop,local",
        "OPSGATE_TICKET_PROVIDER": "itop", "OPSGATE_PROVIDER_DISPATCH_INTERVAL_SECONDS": "0.2",
        "OPSGATE_PROVIDER_RETRY_BASE_SECONDS": "0.3", "OPSGATE_PROVIDER_RETRY_MAX_SECONDS": "1",
        "OPSGATE_PROVIDER_RETRY_MAX_ATTEMPTS": "10000",
        "ITOP_URL": f"http://127.0.0.1:{itop_port}/", "ITOP_USER": "opsgate", "ITOP_PASSWORD": "opsgate-secret",
        "ITOP_DEFAULT_ORG_ID": "1", "ITOP_DEFAULT_CALLER_ID": "1", "ITOP_DEFAULT_TEAM_ID": "1",
        "ITOP_DEFAULT_AGENT_ID": "3", "ITOP_DEFAULT_SERVICE_ID": "1", "ITOP_SYNC_INTERVAL_SECONDS": "1",
        "ITOP_TIMEOUT_SECONDS": "3",
    })
    fake = _start_fake(itop_port, state, fake_log)
    server = subprocess.Popen([OPSGATE, "serve"], env=env, stdout=open(tmp_path / "serve.log", "w"),  # noqa: SIM115
                              stderr=subprocess.STDOUT, start_new_session=True)
    db = await asyncpg.connect(db_url)
    try:
        await _wait_port(itop_port, up=True)
        base = f"http://127.0.0.1:{api_port}"
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                     timeout=30) as c:
            async def health():
                try:
                    return (await c.get("/health")).status_code == 200
                except httpx.HTTPError:
                    return False

            await _until(health, 90, "opsgate serve")

            async def create(**fields):
                r = await c.post("/api/tickets", json={"description": "from the e2e test", **fields})
                assert r.status_code == 201, r.text
                return r.json()["id"]

            async def note(ticket_id, body, visibility):
                r = await c.post(f"/api/tickets/{ticket_id}/notes", json={"body": body, "visibility": visibility})
                assert r.status_code == 201, r.text

            async def get(ticket_id):
                r = await c.get(f"/api/tickets/{ticket_id}")
                assert r.status_code == 200, r.text
                return r.json()

            # 1. iTop up: two tickets and notes go out.
            t1 = await create(title="VPN drops", ticket_class="UserRequest", priority="P2")
            t2 = await create(title="Phishing report", ticket_class="Incident", priority="P1")
            await note(t1, "t1 public 1", "user")
            await note(t1, "t1 private 1", "internal")
            await note(t2, "t2 public 1", "public")

            async def synced(*ids):
                rows = [await get(i) for i in ids]
                return all(r["provider_sync_status"] == "synced" for r in rows) and rows

            await _until(lambda: synced(t1, t2), 60, "t1, t2 synced")

            # 2. iTop down: every canonical write still succeeds.
            assert _stop(fake) is not None
            await _wait_port(itop_port, up=False)
            t3 = await create(title="Laptop stolen", ticket_class="Incident", priority="P1")
            await note(t1, "t1 public 2", "user")
            await note(t2, "t2 private 1", "internal")
            await note(t3, "t3 public 1", "user")
            r = await c.post(f"/api/tickets/{t2}/status", json={"status": "resolved", "reason": "Blocked the URL."})
            assert r.status_code == 200, r.text
            await note(t3, "t3 private 1", "internal")
            r = await c.post(f"/api/tickets/{t1}/assignment", json={"assignee": "alice"})
            assert r.status_code == 200, r.text

            async def failing():
                row = await get(t3)
                return row["provider_sync_status"] == "pending_create" and row["provider_last_error"] and row

            down = await _until(failing, 30, "t3 retrying while iTop is down")
            assert down["provider_ref"] is None

            async def retried():
                return await db.fetchval("SELECT max(attempts) FROM provider_outbox WHERE ticket_id = $1", t3) >= 2

            await _until(retried, 30, "retries of t3's create")

            # 3. iTop back on the same port with its data: everything arrives.
            fake = _start_fake(itop_port, state, fake_log)
            await _wait_port(itop_port, up=True)

            async def drained():
                open_rows = await db.fetchval("SELECT count(*) FROM provider_outbox WHERE status <> 'delivered'")
                return open_rows == 0 and await synced(t1, t2, t3)

            rows = await _until(drained, 90, "outbox drained")
            by_id = {r["id"]: r for r in rows}

            itop = _itop_state(state)
            assert len(itop["tickets"]) == 3 and itop["calls"]["core/create"] == 3
            remote = {i: itop["tickets"][by_id[i]["provider_ref"]] for i in (t1, t2, t3)}
            for i in (t1, t2, t3):
                assert by_id[i]["provider_payload"]["marker"] in remote[i]["description"]
            texts = {i: ([e["message"] for e in remote[i]["public_log"]],
                         [e["message"] for e in remote[i]["private_log"]]) for i in remote}
            assert texts[t1][0] == ["t1 public 1", "t1 public 2"]
            assert texts[t1][1][0] == "t1 private 1" and texts[t1][1][1].startswith("Assignment updated")
            assert len(texts[t1][1]) == 2
            assert texts[t2] == (["t2 public 1"], ["t2 private 1"])
            assert texts[t3] == (["t3 public 1"], ["t3 private 1"])
            assert remote[t2]["status"] == "resolved" and remote[t1]["status"] == "new"
            assert (remote[t3]["class"], remote[t3]["impact"], remote[t3]["urgency"]) == ("Incident", "1", "1")

            # 4. Inbound: a requester's note in iTop comes back once; opsgate's own entries never do.
            from opsgate_provider_itop.provider import ItopProvider
            from opsgate_provider_itop.settings import ItopSettings

            provider = ItopProvider(ItopSettings(url=f"http://127.0.0.1:{itop_port}/", user="opsgate",
                                                 password="opsgate-secret"))
            try:
                await provider.add_note("UserRequest", by_id[t1]["provider_ref"], "Requester: still broken", "user")
            finally:
                await provider.aclose()

            async def mirrored():
                return await db.fetch("SELECT body, visibility FROM ticket_notes WHERE ticket_id = $1 "
                                      "AND source = 'itop' AND kind = 'note'", t1)

            notes = await _until(mirrored, 30, "the iTop note in opsgate")
            await asyncio.sleep(2.5)  # a few more pull passes: nothing is repeated
            assert [tuple(n) for n in await mirrored()] == [("Requester: still broken", "user")] == [
                tuple(n) for n in notes]
            assert await db.fetchval("SELECT count(*) FROM ticket_notes WHERE source = 'itop' AND kind = 'note'") == 1
            assert await db.fetchval("SELECT count(*) FROM tickets") == 3
            itop = _itop_state(state)
            assert len(itop["tickets"]) == 3 and itop["calls"]["core/create"] == 3
    finally:
        await db.close()
        code = _stop(server, 60)
        _stop(fake)
    assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]
