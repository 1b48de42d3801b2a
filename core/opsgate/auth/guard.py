"""The one authorization gate every route passes.

Each route handler declares `opt={"permission": "area:verb"}` or
`opt={"public": True}`; `require_permission` (an app-level guard)
authenticates the caller, checks the permission, records every denial in the
access decision log, and leaves the principal in `scope["user"]`.
"""

from __future__ import annotations

import logging

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from opsgate.auth import repo, service
from opsgate.auth.principal import Principal
from opsgate.errors import Forbidden, Unauthorized, Unavailable
from opsgate.web.deps import DB_DOWN, stash_conn

log = logging.getLogger(__name__)

OPENAPI_PREFIX = "/schema"
AUTHENTICATED = "authenticated"  # any principal, no particular permission


def declared_permission(handler: BaseRouteHandler) -> str | None:
    """The handler's permission, `"public"`, or None when it declares neither."""
    opt = handler.opt or {}
    if getattr(handler, "http_methods", None) == {"OPTIONS"}:
        return "public"  # Litestar's automatic OPTIONS (CORS preflight) handlers
    if opt.get("public"):
        return "public"
    permission = opt.get("permission")
    return permission if isinstance(permission, str) and permission else None


def _takes_conn(handler: BaseRouteHandler) -> bool:
    """Whether the handler itself asks for the request's `conn` (then the guard's connection is handed on)."""
    signature = getattr(handler, "parsed_fn_signature", None)
    return signature is not None and "conn" in signature.parameters


async def require_permission(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    path = connection.scope.get("path", "")
    permission = declared_permission(handler)
    if permission == "public" or (permission is None and path.startswith(OPENAPI_PREFIX)):
        return
    state = connection.app.state
    settings = state.settings
    cache = getattr(state, "principal_cache", None)
    if permission is not None:
        # Fast path: a principal known without the database and allowed.
        known = service.cached_principal(cache, connection.headers, settings)
        if known is not None and (permission == AUTHENTICATED or known.has(permission)):
            connection.scope["user"] = known
            return
    method = connection.scope.get("method", "WS")
    route = connection.scope.get("path_template") or path
    try:
        conn = await state.connections.acquire()
    except DB_DOWN as exc:
        raise Unavailable("database unavailable") from exc
    handed_on = False
    try:
        try:
            principal = await service.authenticate(conn, connection.headers, connection.cookies, settings, cache)
        except Unauthorized as exc:
            await repo.insert_decision(conn, principal_kind=None, principal=None, method=method, route=route,
                                       permission=permission, allowed=False, reason=exc.detail)
            raise
        if principal is None:
            await repo.insert_decision(conn, principal_kind=None, principal=None, method=method, route=route,
                                       permission=permission, allowed=False, reason="no credentials")
            raise Unauthorized()
        if permission is None:
            reason = "route declares no permission"
        elif permission != AUTHENTICATED and not principal.has(permission):
            reason = "permission not granted"
        else:
            connection.scope["user"] = principal
            if connection.scope["type"] == "http" and _takes_conn(handler):
                # The handler's `conn` dependency takes this connection over (one checkout per request).
                handed_on = stash_conn(connection.scope, conn)
            return
        await repo.insert_decision(conn, principal_kind=principal.kind, principal=principal.actor,
                                   method=method, route=route, permission=permission, allowed=False,
                                   reason=reason)
    except DB_DOWN as exc:
        raise Unavailable("database unavailable") from exc
    finally:
        if not handed_on:
            await state.connections.release(conn)
    log.info("access denied", extra={"principal": principal.actor, "route": route, "permission": permission})
    raise Forbidden(f"{principal.actor} lacks {permission}", required_permission=permission)


def principal_of(connection: ASGIConnection) -> Principal | None:
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else None
