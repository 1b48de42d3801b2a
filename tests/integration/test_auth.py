"""Authentication: tokens, sessions, proxy identity, lockout, denials."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from opsgate.auth import service
from opsgate.db.pool import connect

OPSGATE = str(Path(sys.executable).parent / "opsgate")


async def _decisions(db_url):
    conn = await asyncpg.connect(db_url)
    try:
        return [dict(r) for r in await conn.fetch("SELECT * FROM access_decisions ORDER BY id")]
    finally:
        await conn.close()


async def test_no_credentials_is_401_and_recorded(client, db_url):
    r = await client.get("/api/access/me")
    assert r.status_code == 401
    assert r.json()["detail"] == "authentication required"
    rows = await _decisions(db_url)
    assert rows[-1]["allowed"] is False and rows[-1]["route"] == "/api/access/me"
    assert rows[-1]["reason"] == "no credentials"


async def test_bearer_and_legacy_header_tokens(make_client, make_token):
    token = await make_token("analyst")
    async with make_client() as c:
        r = await c.get("/api/access/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        me = r.json()
        assert me["kind"] == "service" and me["roles"] == ["analyst"]
        assert me["max_classification"] == "confidential" and me["groups"] is None
        r = await c.get("/api/access/me", headers={"X-Dashboard-Service-Token": token,
                                                   "X-Dashboard-Service-User": "ops-bot"})
        assert r.status_code == 200
        assert r.json()["actor"].endswith(":ops-bot")


async def test_token_lifecycle_secret_shown_once_and_revocation(admin_client, make_client, db_url, caplog):
    caplog.set_level(logging.DEBUG)
    r = await admin_client.post("/api/access/tokens", json={"name": "siem-bridge", "role": "analyst"})
    assert r.status_code == 201
    created = r.json()
    secret = created["token"]
    assert secret.startswith("ogs_") and len(secret) > 40
    assert set(created) == {"id", "name", "role", "token", "created_at"}

    listing = await admin_client.get("/api/access/tokens")
    assert listing.status_code == 200
    assert secret not in listing.text
    row = next(t for t in listing.json()["tokens"] if t["id"] == created["id"])
    assert row["token_prefix"] == secret[:8] and row["revoked_at"] is None

    dup = await admin_client.post("/api/access/tokens", json={"name": "siem-bridge", "role": "analyst"})
    assert dup.status_code == 409
    bad_role = await admin_client.post("/api/access/tokens", json={"name": "x", "role": "wizard"})
    assert bad_role.status_code == 400 and bad_role.json()["errors"][0]["field"] == "role"

    async with make_client(token=secret) as c:
        assert (await c.get("/api/access/me")).status_code == 200
        r = await admin_client.delete(f"/api/access/tokens/{created['id']}")
        assert r.status_code == 200 and r.json() == {"id": created["id"], "revoked": True}
        assert (await c.get("/api/access/me")).status_code == 401
    assert (await admin_client.delete(f"/api/access/tokens/{created['id']}")).status_code == 409
    assert (await admin_client.delete("/api/access/tokens/999999")).status_code == 404

    conn = await asyncpg.connect(db_url)
    try:
        stored = await conn.fetchval("SELECT token_hash FROM service_tokens WHERE id = $1", created["id"])
        dump = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM service_tokens t")
        audit = await conn.fetchval("SELECT string_agg(a::text, ' ') FROM audit_log a")
    finally:
        await conn.close()
    assert stored != secret and secret not in dump and secret not in audit
    assert all(secret not in rec.getMessage() and secret not in str(rec.__dict__) for rec in caplog.records)


async def test_agent_token_expired_or_revoked_is_401(make_client, db_url):
    conn = await connect(db_url)
    try:
        live = await service.mint_agent_token(conn, agent_id=7, ticket_id=3, task_id=1)
        expired = await service.mint_agent_token(conn, agent_id=8, ticket_id=3, task_id=2, ttl_seconds=-1)
    finally:
        await conn.close()
    async with make_client() as c:
        r = await c.get("/api/access/me", headers={"Authorization": f"Bearer {live}"})
        assert r.status_code == 200
        assert r.json()["kind"] == "agent" and r.json()["agent_id"] == 7 and r.json()["ticket_id"] == 3
        assert (await c.get("/api/access/me", headers={"Authorization": f"Bearer {expired}"})).status_code == 401
        conn = await connect(db_url)
        try:
            assert await service.revoke_agent_tokens(conn, 7, "task finished") == 1
        finally:
            await conn.close()
        assert (await c.get("/api/access/me", headers={"Authorization": f"Bearer {live}"})).status_code == 401
        # an agent token is not a service token
        assert (await c.get("/api/access/roles", headers={"Authorization": "Bearer oga_nonsense"})).status_code == 401


async def _make_user(admin_client, username, password="correct horse battery", roles=("analyst",), **extra):
    r = await admin_client.post("/api/access/users", json={"username": username, "password": password,
                                                            "roles": list(roles), **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def test_login_session_cookie_and_logout(admin_client, make_client, db_url):
    user = await _make_user(admin_client, "alice")
    assert user["roles"] == ["analyst"]
    conn = await asyncpg.connect(db_url)
    try:
        stored = await conn.fetchval("SELECT password_hash FROM users WHERE username = 'alice'")
    finally:
        await conn.close()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored

    async with make_client() as c:
        r = await c.post("/api/auth/login", json={"username": "alice", "password": "correct horse battery"})
        assert r.status_code == 200
        assert r.json()["username"] == "alice" and r.json()["roles"] == ["analyst"]
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=" in cookie
        me = await c.get("/api/access/me")
        assert me.status_code == 200 and me.json()["auth_method"] == "session"
        assert (await c.post("/api/auth/logout")).json() == {"logged_out": True}
        saved = cookie.split(";", 1)[0].split("=", 1)[1]
        c.cookies.set("opsgate_session", saved)
        assert (await c.get("/api/access/me")).status_code == 401


async def test_failed_logins_give_no_hint_and_lock_out(admin_client, make_client, make_app, db_url):
    await _make_user(admin_client, "bob")
    app = make_app(env={"OPSGATE_LOGIN_MAX_FAILURES": "3", "OPSGATE_LOGIN_LOCKOUT_SECONDS": "600"})
    async with make_client(app) as c:
        unknown = await c.post("/api/auth/login", json={"username": "nobody", "password": "whatever-long"})
        wrong = await c.post("/api/auth/login", json={"username": "bob", "password": "not the password"})
        assert unknown.status_code == wrong.status_code == 401
        assert unknown.json()["detail"] == wrong.json()["detail"] == "invalid username or password"
        for _ in range(2):
            assert (await c.post("/api/auth/login", json={"username": "bob", "password": "nope"})).status_code == 401
        locked = await c.post("/api/auth/login", json={"username": "bob", "password": "correct horse battery"})
        assert locked.status_code == 401 and locked.json()["detail"] == "invalid username or password"
    reasons = [d["reason"] for d in await _decisions(db_url) if d["route"] == "/api/auth/login"]
    assert "locked out" in reasons and any(r.startswith("bad password (3") for r in reasons)


async def test_login_validation(client):
    r = await client.post("/api/auth/login", json={"username": "a"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "password"
    r = await client.post("/api/auth/login", json={"username": "a", "password": "b", "extra": 1})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "extra"


async def test_proxy_identity_needs_the_shared_secret(make_app, make_client, db_url):
    headers = {"X-Auth-Request-User": "carol", "X-Auth-Request-Email": "carol@example.test"}
    # without a configured secret the headers are ignored
    async with make_client() as c:
        assert (await c.get("/api/access/me", headers=headers)).status_code == 401
    app = make_app(env={"OPSGATE_PROXY_SECRET": "s3cret-proxy-value"})
    async with make_client(app) as c:
        wrong = await c.get("/api/access/me", headers={**headers, "X-Opsgate-Proxy-Secret": "guess"})
        assert wrong.status_code == 401
        missing = await c.get("/api/access/me", headers=headers)
        assert missing.status_code == 401
        ok = await c.get("/api/access/me", headers={**headers, "X-Opsgate-Proxy-Secret": "s3cret-proxy-value"})
        assert ok.status_code == 200
        assert ok.json()["name"] == "carol" and ok.json()["auth_method"] == "proxy"
        assert ok.json()["permissions"] == []  # a new proxy user has no roles until granted
        forwarded = await c.get("/api/access/me", headers={"X-Forwarded-User": "carol",
                                                          "X-Opsgate-Proxy-Secret": "s3cret-proxy-value"})
        assert forwarded.status_code == 200 and forwarded.json()["id"] if "id" in forwarded.json() else True
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow("SELECT source, email FROM users WHERE username = 'carol'")
    finally:
        await conn.close()
    assert row["source"] == "proxy" and row["email"] == "carol@example.test"


async def test_forbidden_body_and_decision_log(make_client, make_token, db_url):
    token = await make_token("auditor")
    async with make_client(token=token) as c:
        r = await c.post("/api/access/tokens", json={"name": "x", "role": "analyst"})
    assert r.status_code == 403
    assert r.json()["error"] == "access_denied" and r.json()["required_permission"] == "access:admin"
    last = (await _decisions(db_url))[-1]
    assert last["permission"] == "access:admin" and last["reason"] == "permission not granted"
    assert last["principal_kind"] == "service" and last["method"] == "POST"


async def test_user_admin_roles_and_scopes(admin_client):
    user = await _make_user(admin_client, "dave", groups=["Security Operations"], max_classification="internal")
    assert user["groups"] == ["Security Operations"] and user["max_classification"] == "internal"
    r = await admin_client.post(f"/api/access/users/{user['id']}/roles", json={"roles": ["auditor", "analyst"]})
    assert r.status_code == 200 and r.json()["roles"] == ["analyst", "auditor"]
    r = await admin_client.post(f"/api/access/users/{user['id']}/roles", json={"roles": ["nope"]})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "roles"
    r = await admin_client.post(f"/api/access/users/{user['id']}/scopes",
                                json={"groups": ["Identity & Access"], "max_classification": "secret"})
    assert r.json() == {"user_id": user["id"], "groups": ["Identity & Access"], "max_classification": "secret"}
    assert (await admin_client.get(f"/api/access/users/{user['id']}/scopes")).json()["groups"] == ["Identity & Access"]
    assert (await admin_client.get("/api/access/users/424242/scopes")).status_code == 404
    assert (await admin_client.post("/api/access/users/424242/roles", json={"roles": []})).status_code == 404
    r = await admin_client.post("/api/access/users", json={"username": "dave"})
    assert r.status_code == 409
    r = await admin_client.post("/api/access/users", json={"username": "eve", "password": "short"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "password"
    users = (await admin_client.get("/api/access/users")).json()["users"]
    assert [u["username"] for u in users] == ["dave"]
    assert all("password" not in key for u in users for key in u)


async def test_roles_and_policies(admin_client):
    roles = {r["name"]: r for r in (await admin_client.get("/api/access/roles")).json()["roles"]}
    assert set(roles) == {"platform-admin", "soc-manager", "analyst", "auditor", "agent-operator"}
    assert roles["platform-admin"]["permissions"] == ["*"]
    assert "changes:approve" not in roles["analyst"]["permissions"]
    policies = (await admin_client.get("/api/access/policies")).json()
    assert policies["auth_mode"] == "enabled"
    assert policies["routes"]["GET /api/plugins"] == "plugins:read"
    assert policies["routes"]["POST /api/auth/login"] == "public"
    assert "changes:approve" not in policies["agent_permissions"]


async def test_auth_disabled_mode_acts_as_local_admin(make_app, make_client):
    app = make_app(env={"OPSGATE_AUTH_MODE": "disabled"})
    async with make_client(app) as c:
        r = await c.get("/api/access/me")
        assert r.status_code == 200 and r.json()["kind"] == "local" and r.json()["permissions"] == ["*"]


def test_disabled_auth_refuses_non_loopback_listen(tmp_path):
    env = {**os.environ, "OPSGATE_AUTH_MODE": "disabled", "OPSGATE_DATA_DIR": str(tmp_path),
           "OPSGATE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"}
    r = subprocess.run([OPSGATE, "serve", "--host", "0.0.0.0", "--port", "0"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "non-loopback" in r.stderr


async def test_cors_only_for_configured_origins(make_app, make_client):
    app = make_app(env={"OPSGATE_CORS_ORIGINS": "https://ops.example.test"})
    async with make_client(app) as c:
        ok = await c.get("/health", headers={"Origin": "https://ops.example.test"})
        assert ok.headers.get("access-control-allow-origin") == "https://ops.example.test"
        other = await c.get("/health", headers={"Origin": "https://evil.example.test"})
        assert "access-control-allow-origin" not in other.headers
    async with make_client() as c:
        r = await c.get("/health", headers={"Origin": "https://ops.example.test"})
        assert "access-control-allow-origin" not in r.headers


async def test_bootstrap_token_only_on_empty_database(db_url):
    conn = await connect(db_url)
    try:
        first = await service.bootstrap_admin_token(conn)
        assert first is not None and first.startswith("ogs_")
        assert await service.bootstrap_admin_token(conn) is None
        role = await conn.fetchval("SELECT role FROM service_tokens WHERE name = 'bootstrap-admin'")
    finally:
        await conn.close()
    assert role == "platform-admin"


def test_cli_token_create_prints_token_last(db_url, tmp_path):
    env = {**os.environ, "OPSGATE_DATABASE_URL": db_url, "OPSGATE_DATA_DIR": str(tmp_path)}
    r = subprocess.run([OPSGATE, "token", "create", "--name", "ci", "--role", "auditor"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1].startswith("ogs_")
    bad = subprocess.run([OPSGATE, "token", "create", "--name", "ci2", "--role", "nope"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "nope" in bad.stderr
