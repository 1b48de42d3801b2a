"""Login/logout and the access administration API."""

from __future__ import annotations

from typing import Annotated

import msgspec
from asyncpg import Connection
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import Cookie
from litestar.params import Parameter

from opsgate.auth import repo, service
from opsgate.auth.guard import AUTHENTICATED, declared_permission
from opsgate.auth.principal import AGENT_PERMISSIONS, Principal
from opsgate.auth.schemas import (
    LoginRequest,
    LoginResult,
    LogoutResult,
    Me,
    Policies,
    Role,
    RoleList,
    RolesUpdate,
    Scopes,
    ScopesUpdate,
    Token,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenRevoked,
    User,
    UserCreate,
    UserList,
)
from opsgate.settings import Settings


def _user(row: dict) -> User:
    return msgspec.convert(row, User)


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @post("/login", operation_id="login", opt={"public": True}, status_code=200)
    async def login(self, request: Request, data: LoginRequest, conn: Connection,
                    settings: Settings) -> Response[LoginResult]:
        client = request.client.host if request.client else None
        cookie, expires_at, principal = await service.login(
            conn, settings, data.username, data.password, ip=client, user_agent=request.headers.get("user-agent"))
        return Response(
            LoginResult(username=principal.name, roles=list(principal.roles), expires_at=expires_at),
            cookies=[Cookie(key=service.SESSION_COOKIE, value=cookie, httponly=True, samesite="lax",
                            secure=settings.cookie_secure, max_age=settings.session_ttl_seconds, path="/")],
        )

    @post("/logout", operation_id="logout", opt={"public": True}, status_code=200)
    async def logout(self, request: Request, conn: Connection, settings: Settings) -> Response[LogoutResult]:
        done = await service.logout(conn, settings, request.cookies.get(service.SESSION_COOKIE))
        response = Response(LogoutResult(logged_out=done))
        response.delete_cookie(service.SESSION_COOKIE, path="/")
        return response


class AccessController(Controller):
    path = "/api/access"
    tags = ["access"]

    @get("/me", operation_id="accessMe", opt={"permission": AUTHENTICATED})
    async def me(self, principal: Principal) -> Me:
        return Me(kind=principal.kind, name=principal.name, actor=principal.actor, roles=list(principal.roles),
                  permissions=sorted(principal.permissions), max_classification=principal.max_classification,
                  groups=list(principal.groups) if principal.groups is not None else None,
                  agent_id=principal.agent_id, ticket_id=principal.ticket_id, auth_method=principal.auth_method)

    @get("/roles", operation_id="listRoles", opt={"permission": "access:read"})
    async def roles(self, conn: Connection) -> RoleList:
        return RoleList(roles=[msgspec.convert(dict(r), Role) for r in await repo.list_roles(conn)])

    @get("/users", operation_id="listUsers", opt={"permission": "access:read"})
    async def users(self, conn: Connection,
                    limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
                    offset: Annotated[int, Parameter(ge=0)] = 0) -> UserList:
        rows = await repo.list_users(conn, limit, offset)
        return UserList(users=[_user(dict(r)) for r in rows], limit=limit, offset=offset)

    @post("/users", operation_id="createUser", opt={"permission": "access:admin"})
    async def create_user(self, data: UserCreate, conn: Connection, principal: Principal) -> User:
        row = await service.create_user(conn, principal, username=data.username, password=data.password,
                                        display_name=data.display_name, email=data.email, roles=data.roles,
                                        max_classification=data.max_classification, groups=data.groups)
        return _user(row)

    @post("/users/{user_id:int}/roles", operation_id="setUserRoles", opt={"permission": "access:admin"},
          status_code=200)
    async def set_roles(self, user_id: int, data: RolesUpdate, conn: Connection, principal: Principal) -> User:
        return _user(await service.set_user_roles(conn, principal, user_id, data.roles))

    @get("/users/{user_id:int}/scopes", operation_id="getUserScopes", opt={"permission": "access:read"})
    async def get_scopes(self, user_id: int, conn: Connection) -> Scopes:
        row = await repo.get_user(conn, user_id)
        return Scopes(user_id=user_id, groups=list(row["groups"]), max_classification=row["max_classification"])

    @post("/users/{user_id:int}/scopes", operation_id="setUserScopes", opt={"permission": "access:admin"},
          status_code=200)
    async def set_scopes(self, user_id: int, data: ScopesUpdate, conn: Connection, principal: Principal) -> Scopes:
        row = await service.set_user_scopes(conn, principal, user_id, data.groups, data.max_classification)
        return Scopes(user_id=user_id, groups=list(row["groups"]), max_classification=row["max_classification"])

    @get("/policies", operation_id="accessPolicies", opt={"permission": "access:read"})
    async def policies(self, request: Request, conn: Connection, settings: Settings) -> Policies:
        routes: dict[str, str] = {}
        for route in request.app.routes:
            for handler in getattr(route, "route_handlers", []):
                permission = declared_permission(handler)
                if permission is None:
                    continue
                methods = ",".join(sorted(getattr(handler, "http_methods", None) or ["WS"]))
                routes[f"{methods} {route.path}"] = permission
        return Policies(auth_mode=settings.auth_mode, proxy_auth=bool(settings.proxy_secret),
                        roles={r["name"]: list(r["permissions"]) for r in await repo.list_roles(conn)},
                        agent_permissions=sorted(AGENT_PERMISSIONS), routes=dict(sorted(routes.items())))

    @get("/tokens", operation_id="listTokens", opt={"permission": "access:read"})
    async def tokens(self, conn: Connection) -> TokenList:
        return TokenList(tokens=[msgspec.convert(dict(r), Token) for r in await repo.list_service_tokens(conn)])

    @post("/tokens", operation_id="createToken", opt={"permission": "access:admin"})
    async def create_token(self, data: TokenCreate, conn: Connection, principal: Principal) -> TokenCreated:
        row, token = await service.create_service_token(conn, name=data.name, role=data.role, actor=principal,
                                                        max_classification=data.max_classification,
                                                        groups=data.groups)
        return TokenCreated(id=row["id"], name=row["name"], role=row["role"], token=token,
                            created_at=row["created_at"])

    @delete("/tokens/{token_id:int}", operation_id="revokeToken", opt={"permission": "access:admin"},
            status_code=200)
    async def revoke_token(self, token_id: int, conn: Connection, principal: Principal) -> TokenRevoked:
        result = await service.revoke_service_token(conn, token_id, principal)
        return TokenRevoked(**result)


ROUTES = [AuthController, AccessController]
