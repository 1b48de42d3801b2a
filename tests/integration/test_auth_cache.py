"""The per-process principal cache and the guard's connection hand-on."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from opsgate.auth import service
from opsgate.auth.credentials import digest
from opsgate.db.pool import connect

OPSGATE = str(Path(sys.executable).parent / "opsgate")


async def _mint_agent(db_url, agent_id):
    conn = await connect(db_url)
    try:
        return await service.mint_agent_token(conn, agent_id=agent_id, ticket_id=None, task_id=None)
    finally:
        await conn.close()


async def _revoke_elsewhere(db_url, agent_id, *, notify):
    """Revoke as another process would: SQL on its own connection, this process's cache untouched."""
    conn = await asyncpg.connect(db_url)
    try:
        async with conn.transaction():
            await conn.execute("UPDATE agent_tokens SET revoked_at = now(), revoke_reason = 'test' "
                               "WHERE agent_id = $1 AND revoked_at IS NULL", agent_id)
            if notify:
                await conn.execute("SELECT pg_notify('opsgate_auth', 'agent_token')")
    finally:
        await conn.close()


async def test_cached_agent_token_stops_on_the_other_process_notification(make_app, make_client, db_url):
    app = make_app(auth_cache_seconds=30)
    quiet, loud = await _mint_agent(db_url, 41), await _mint_agent(db_url, 42)
    async with make_client(app) as c:
        for token in (quiet, loud):
            assert (await c.get("/api/access/me", headers={"Authorization": f"Bearer {token}"})).status_code == 200
        # Revoked without a notification: this process still trusts its cached principal (within the TTL) ...
        await _revoke_elsewhere(db_url, 41, notify=False)
        assert (await c.get("/api/access/me", headers={"Authorization": f"Bearer {quiet}"})).status_code == 200
        # ... revoked with one (what auth.service.revoke_agent_tokens sends): refused as soon as it arrives.
        await _revoke_elsewhere(db_url, 42, notify=True)
        deadline = time.monotonic() + 5
        while True:
            r = await c.get("/api/access/me", headers={"Authorization": f"Bearer {loud}"})
            if r.status_code == 401 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        assert r.status_code == 401
        # the notification forgot every cached principal, so the quietly revoked token is refused too
        assert (await c.get("/api/access/me", headers={"Authorization": f"Bearer {quiet}"})).status_code == 401


async def test_revocation_in_this_process_is_immediate_even_when_cached(make_app, make_client, make_token, db_url):
    app = make_app(auth_cache_seconds=30)
    admin = await make_token("platform-admin")
    victim = await make_token("platform-admin")
    async with make_client(app, token=admin) as c:
        assert (await c.get("/api/access/me", headers={"Authorization": f"Bearer {victim}"})).status_code == 200
        conn = await asyncpg.connect(db_url)
        try:
            victim_id = await conn.fetchval("SELECT id FROM service_tokens WHERE token_hash = $1", digest(victim))
        finally:
            await conn.close()
        r = await c.delete(f"/api/access/tokens/{victim_id}")
        assert r.status_code in (200, 204), r.text
        assert (await c.get("/api/access/me", headers={"Authorization": f"Bearer {victim}"})).status_code == 401
        assert (await c.get("/api/access/me")).status_code == 200


async def test_guard_connection_is_handed_on_and_always_released(make_app, make_client, make_token):
    # One pooled connection and no cache: a guard holding its connection while the handler checked out a
    # second one would wait 10 s and answer 503; a connection leaked by any path would block the next request.
    app = make_app(db_pool_min=1, db_pool_max=1, auth_cache_seconds=0)
    reader = await make_token("auditor")
    async with make_client(app, token=await make_token("platform-admin")) as c:
        for _ in range(3):
            assert (await c.get("/api/tickets?limit=5")).status_code == 200  # guard + conn dependency
            assert (await c.get("/api/access/me")).status_code == 200  # guard, handler without conn
            assert (await c.post("/api/tickets", json={"title": ""})).status_code == 400  # handed on, rejected
            assert (await c.post("/api/tickets", json={"nonsense": 1})).status_code == 400  # body refused early
            assert (await c.get("/health")).status_code == 200  # public route with a connection
            r = await c.post("/api/tickets", json={"title": "x", "description": "y", "ticket_class": "Incident"},
                             headers={"Authorization": f"Bearer {reader}"})
            assert r.status_code == 403  # denied: decision recorded, connection released
            assert (await c.get("/api/tickets", headers={"Authorization": "Bearer ogs_wrong"})).status_code == 401
        assert app.state.pool.get_idle_size() == app.state.pool.get_size() == 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_with_workers_starts_n_processes_on_one_port(db_url, tmp_path):
    port = _free_port()
    env = {**os.environ, "OPSGATE_DATABASE_URL": db_url, "OPSGATE_DATA_DIR": str(tmp_path), "OPSGATE_RUNNER": "0",
           "OPSGATE_PROVIDER_SYNC": "0", "OPSGATE_PLUGINS": "", "HOME": str(tmp_path)}
    proc = subprocess.Popen([OPSGATE, "serve", "--port", str(port), "--workers", "2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        ok = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ok = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                break
            time.sleep(0.5)
        assert ok, "server did not answer"
        children = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "spawn_main"], capture_output=True,
                                  text=True).stdout.split()
        assert len(children) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    assert "with 2 worker processes" in out
    assert out.count("Application startup complete") == 2
    assert "applied migration" not in out  # the test database is migrated already; children never migrate
