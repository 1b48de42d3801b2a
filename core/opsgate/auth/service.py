"""Authentication and access administration rules.

Credentials are checked in this order: an `Authorization: Bearer` token (or
the legacy `X-Dashboard-Service-Token`), reverse-proxy identity headers (only
with the shared proxy secret), then the session cookie.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec
from asyncpg import Connection
from itsdangerous import BadSignature, TimestampSigner

from opsgate.audit import repo as audit
from opsgate.auth import cache as principal_cache
from opsgate.auth import credentials, repo
from opsgate.auth.cache import PrincipalCache
from opsgate.auth.principal import AGENT_PERMISSIONS, CLASSIFICATIONS, LOCAL_ADMIN, Principal
from opsgate.errors import Conflict, Invalid, NotFound, Unauthorized
from opsgate.settings import Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "opsgate_session"
PROXY_SECRET_HEADER = "x-opsgate-proxy-secret"
PROXY_USER_HEADERS = ("x-auth-request-user", "x-forwarded-user")
PROXY_EMAIL_HEADER = "x-auth-request-email"
DEFAULT_AGENT_TOKEN_TTL = 24 * 3600.0


def _highest(classifications: list[str]) -> str:
    ranks = [CLASSIFICATIONS.index(c) for c in classifications if c in CLASSIFICATIONS]
    return CLASSIFICATIONS[max(ranks)] if ranks else CLASSIFICATIONS[0]


async def load_user(conn: Connection, user_id: int, auth_method: str) -> Principal | None:
    row = await repo.user_principal(conn, user_id)
    if row is None or row["disabled"]:
        return None
    return Principal(
        kind="user", name=row["username"], id=row["id"], roles=tuple(row["roles"]),
        permissions=frozenset(row["permissions"]),
        max_classification=row["max_classification"] or _highest(list(row["role_classifications"])),
        groups=tuple(row["groups"]) if row["groups"] else None, auth_method=auth_method,
    )


def _signer(settings: Settings) -> TimestampSigner:
    return TimestampSigner(settings.effective_secret_key(), salt="opsgate-session")


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The bearer token (or legacy service-token header) the request carries."""
    auth_header = headers.get("authorization", "")
    if auth_header[:7].lower() == "bearer ":
        return auth_header[7:].strip() or None
    legacy = headers.get("x-dashboard-service-token")
    return legacy.strip() or None if legacy else None


def _acting(principal: Principal, acting_as: str | None) -> Principal:
    if principal.kind != "service":
        return principal
    acting = acting_as.strip()[:200] if acting_as and acting_as.strip() else None
    return msgspec.structs.replace(principal, acting_as=acting) if acting != principal.acting_as else principal


def cached_principal(cache: PrincipalCache | None, headers: Mapping[str, str], settings: Settings) -> Principal | None:
    """The principal when it is known without the database (auth disabled, or a cached bearer token); else None."""
    if settings.auth_mode == "disabled":
        return LOCAL_ADMIN
    if cache is None:
        return None
    token = bearer_token(headers)
    if not token:
        return None
    principal = cache.get(credentials.digest(token))
    return None if principal is None else _acting(principal, headers.get("x-dashboard-service-user"))


async def authenticate(conn: Connection, headers: Mapping[str, str], cookies: Mapping[str, str],
                       settings: Settings, cache: PrincipalCache | None = None) -> Principal | None:
    """The principal the request's credentials name; None when it carries none.

    Raises `Unauthorized` for credentials that are present but not valid.
    With `cache`, bearer-token principals are read from and remembered there.
    """
    if settings.auth_mode == "disabled":
        return LOCAL_ADMIN
    token = bearer_token(headers)
    if token:
        return _acting(await _token_principal(conn, token, cache), headers.get("x-dashboard-service-user"))

    proxy_user = next((headers[h] for h in PROXY_USER_HEADERS if headers.get(h)), None)
    if proxy_user and settings.proxy_secret:
        presented = headers.get(PROXY_SECRET_HEADER, "")
        if not hmac.compare_digest(presented.encode(), settings.proxy_secret.encode()):
            raise Unauthorized("invalid proxy credentials")
        return await _proxy_principal(conn, proxy_user.strip(), headers.get(PROXY_EMAIL_HEADER))

    cookie = cookies.get(SESSION_COOKIE)
    if cookie:
        try:
            raw = _signer(settings).unsign(cookie, max_age=settings.session_ttl_seconds).decode()
        except BadSignature as exc:
            raise Unauthorized("invalid or expired session") from exc
        user_id = await repo.session_user(conn, credentials.digest(raw))
        principal = await load_user(conn, user_id, "session") if user_id else None
        if principal is None:
            raise Unauthorized("invalid or expired session")
        return principal
    return None


async def _token_principal(conn: Connection, token: str, cache: PrincipalCache | None) -> Principal:
    """The token's principal without `acting_as` (the caller applies the header)."""
    hashed = credentials.digest(token)
    if cache is not None:
        hit = cache.get(hashed)
        if hit is not None:
            return hit
    filled = principal_cache.generation()
    if token.startswith(credentials.AGENT_PREFIX):
        row = await repo.agent_principal(conn, hashed)
        if row is None:
            raise Unauthorized("invalid, expired or revoked token")
        principal = Principal(kind="agent", name=f"agent_{row['agent_id']}", id=row["id"],
                              permissions=AGENT_PERMISSIONS, agent_id=row["agent_id"], ticket_id=row["ticket_id"],
                              auth_method="agent_token")
        if cache is not None:
            cache.put(hashed, principal, filled, row["expires_in"])
        return principal
    row = await repo.service_principal(conn, hashed)
    if row is None:
        raise Unauthorized("invalid, expired or revoked token")
    await repo.touch_service_token(conn, row["id"])
    principal = Principal(kind="service", name=row["name"], id=row["id"], roles=(row["role"],),
                          permissions=frozenset(row["permissions"]), max_classification=row["max_classification"],
                          groups=tuple(row["groups"]) if row["groups"] is not None else None,
                          auth_method="token")
    if cache is not None:
        cache.put(hashed, principal, filled, None)
    return principal


async def _proxy_principal(conn: Connection, username: str, email: str | None) -> Principal:
    if not username or len(username) > 200:
        raise Unauthorized("invalid proxy user")
    row = await repo.upsert_proxy_user(conn, username, email)
    if row["inserted"]:
        await audit.record(conn, actor=username, actor_kind="user", action="user_created", category="access",
                           target_type="user", target_id=row["id"], details={"source": "proxy"})
    principal = await load_user(conn, row["id"], "proxy")
    if principal is None:
        raise Unauthorized("user disabled")
    return principal


# --- login sessions ---------------------------------------------------------


async def login(conn: Connection, settings: Settings, username: str, password: str, *, ip: str | None,
                user_agent: str | None) -> tuple[str, datetime, Principal]:
    """Verify a password and open a session; returns (signed cookie value, expiry, principal)."""
    row = await repo.user_for_login(conn, username)
    ok, new_hash = credentials.verify_password(row["password_hash"] if row else None, password)
    if row is None or row["disabled"] or row["password_hash"] is None:
        await _login_denied(conn, username, "unknown user or no password")
        raise Unauthorized("invalid username or password")
    if row["locked"]:
        await _login_denied(conn, username, "locked out")
        raise Unauthorized("invalid username or password")
    if not ok:
        async with conn.transaction():
            state = await repo.login_failed(conn, row["id"], settings.login_max_failures,
                                            settings.login_lockout_seconds)
            await _login_denied(conn, username, f"bad password ({state['failed_logins']} in a row)")
        raise Unauthorized("invalid username or password")
    raw = credentials.mint(credentials.SESSION_PREFIX)
    async with conn.transaction():
        await repo.login_succeeded(conn, row["id"], new_hash)
        session = await repo.insert_session(conn, row["id"], credentials.digest(raw),
                                            float(settings.session_ttl_seconds), ip, (user_agent or "")[:300])
        await audit.record(conn, actor=username, actor_kind="user", action="login", category="access",
                           target_type="user", target_id=row["id"], details={"ip": ip})
    principal = await load_user(conn, row["id"], "session")
    assert principal is not None
    return _signer(settings).sign(raw).decode(), session["expires_at"], principal


async def _login_denied(conn: Connection, username: str, reason: str) -> None:
    await repo.insert_decision(conn, principal_kind="user", principal=username[:200], method="POST",
                               route="/api/auth/login", permission=None, allowed=False, reason=reason)
    log.info("login refused", extra={"username": username[:200], "reason": reason})


async def logout(conn: Connection, settings: Settings, cookie: str | None) -> bool:
    if not cookie:
        return False
    try:
        raw = _signer(settings).unsign(cookie).decode()
    except BadSignature:
        return False
    user_id = await repo.revoke_session(conn, credentials.digest(raw))
    if user_id is not None:
        await audit.record(conn, actor=str(user_id), actor_kind="user", action="logout", category="access",
                           target_type="user", target_id=user_id)
    return user_id is not None


# --- tokens -------------------------------------------------------------------


def _check_classification(field: str, value: str | None) -> None:
    if value is not None and value not in CLASSIFICATIONS:
        raise Invalid(field, f"must be one of {', '.join(CLASSIFICATIONS)}")


async def create_service_token(conn: Connection, *, name: str, role: str, actor: Principal | None,
                               max_classification: str | None = None,
                               groups: list[str] | None = None) -> tuple[dict[str, Any], str]:
    """Mint a service token; returns (row, the token itself — shown once)."""
    name = name.strip()
    if not name:
        raise Invalid("name", "must not be empty")
    _check_classification("max_classification", max_classification)
    if not await repo.role_exists(conn, role):
        raise Invalid("role", f"unknown role {role!r}")
    token = credentials.mint(credentials.SERVICE_PREFIX)
    actor_name = actor.actor if actor else "cli"
    async with conn.transaction():
        row = await repo.insert_service_token(
            conn, name=name, role=role, token_hash=credentials.digest(token),
            prefix=credentials.display_prefix(token), max_classification=max_classification, groups=groups,
            created_by=actor_name)
        await audit.record(conn, actor=actor_name, actor_kind=actor.actor_kind if actor else "system",
                           action="service_token_created", category="access", target_type="service_token",
                           target_id=row["id"], details={"name": name, "role": role})
    return dict(row), token


async def revoke_service_token(conn: Connection, token_id: int, actor: Principal) -> dict[str, Any]:
    principal_cache.invalidate()
    async with conn.transaction():
        row = await repo.revoke_service_token(conn, token_id, actor.actor)
        if row is None:
            exists, _ = await repo.service_token_state(conn, token_id)
            if not exists:
                raise NotFound(f"token {token_id} not found")
            raise Conflict(f"token {token_id} is already revoked")
        await audit.record(conn, actor=actor.actor, actor_kind=actor.actor_kind, action="service_token_revoked",
                           category="access", target_type="service_token", target_id=token_id,
                           details={"name": row["name"]})
        await repo.notify_auth_change(conn, "service_token")
    principal_cache.invalidate()  # after commit: nothing cached meanwhile survives
    return {"id": token_id, "revoked": True}


async def mint_agent_token(conn: Connection, *, agent_id: int, ticket_id: int | None, task_id: int | None,
                           ttl_seconds: float = DEFAULT_AGENT_TOKEN_TTL) -> str:
    """A token bound to one agent and its ticket; call inside the spawning transaction."""
    token = credentials.mint(credentials.AGENT_PREFIX)
    await repo.insert_agent_token(conn, agent_id, ticket_id, task_id, credentials.digest(token), ttl_seconds)
    return token


async def revoke_agent_tokens(conn: Connection, agent_id: int, reason: str) -> int:
    """Every live token of the agent stops working (task ended, agent stopped).

    Cached principals are forgotten in this process now, and in every process
    when the `opsgate_auth` notification (sent at commit) arrives.
    """
    principal_cache.invalidate()
    revoked = await repo.revoke_agent_tokens(conn, agent_id, reason)
    if revoked:
        await repo.notify_auth_change(conn, "agent_token")
    principal_cache.invalidate()
    return revoked


async def bootstrap_admin_token(conn: Connection) -> str | None:
    """On an empty database, create the first admin token; None when principals exist."""
    async with conn.transaction():
        await conn.execute("LOCK TABLE service_tokens IN SHARE ROW EXCLUSIVE MODE")
        if await repo.count_principals(conn) > 0:
            return None
        _, token = await create_service_token(conn, name="bootstrap-admin", role="platform-admin", actor=None)
        return token


# --- users --------------------------------------------------------------------


async def create_user(conn: Connection, actor: Principal, *, username: str, password: str | None,
                      display_name: str | None, email: str | None, roles: list[str],
                      max_classification: str | None, groups: list[str]) -> dict[str, Any]:
    username = username.strip()
    if not username:
        raise Invalid("username", "must not be empty")
    if password is not None and len(password) < 12:
        raise Invalid("password", "must be at least 12 characters")
    _check_classification("max_classification", max_classification)
    async with conn.transaction():
        for role in roles:
            if not await repo.role_exists(conn, role):
                raise Invalid("roles", f"unknown role {role!r}")
        user_id = await repo.insert_user(
            conn, username=username, display_name=display_name, email=email,
            password_hash=credentials.hash_password(password) if password else None, source="local",
            max_classification=max_classification)
        await repo.set_roles(conn, user_id, roles, actor.actor)
        await repo.set_scopes(conn, user_id, groups, actor.actor)
        await audit.record(conn, actor=actor.actor, actor_kind=actor.actor_kind, action="user_created",
                           category="access", target_type="user", target_id=user_id,
                           details={"username": username, "roles": roles, "groups": groups})
        return dict(await repo.get_user(conn, user_id))


async def set_user_roles(conn: Connection, actor: Principal, user_id: int, roles: list[str]) -> dict[str, Any]:
    async with conn.transaction():
        await repo.get_user(conn, user_id)
        for role in roles:
            if not await repo.role_exists(conn, role):
                raise Invalid("roles", f"unknown role {role!r}")
        await repo.set_roles(conn, user_id, roles, actor.actor)
        await audit.record(conn, actor=actor.actor, actor_kind=actor.actor_kind, action="user_roles_set",
                           category="access", target_type="user", target_id=user_id, details={"roles": roles})
        return dict(await repo.get_user(conn, user_id))


async def set_user_scopes(conn: Connection, actor: Principal, user_id: int, groups: list[str],
                          max_classification: str | None) -> dict[str, Any]:
    _check_classification("max_classification", max_classification)
    async with conn.transaction():
        await repo.get_user(conn, user_id)
        await repo.set_scopes(conn, user_id, groups, actor.actor)
        if max_classification is not None:
            await repo.set_user_classification(conn, user_id, max_classification)
        await audit.record(conn, actor=actor.actor, actor_kind=actor.actor_kind, action="user_scopes_set",
                           category="access", target_type="user", target_id=user_id,
                           details={"groups": groups, "max_classification": max_classification})
        return dict(await repo.get_user(conn, user_id))
