"""Request and response shapes of the auth and access endpoints."""

from __future__ import annotations

from datetime import datetime

import msgspec


class LoginRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: str = msgspec.field()
    password: str


class LoginResult(msgspec.Struct, frozen=True, kw_only=True):
    username: str
    roles: list[str]
    expires_at: datetime


class LogoutResult(msgspec.Struct, frozen=True, kw_only=True):
    logged_out: bool


class Me(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    name: str
    actor: str
    roles: list[str]
    permissions: list[str]
    max_classification: str
    groups: list[str] | None
    agent_id: int | None
    ticket_id: int | None
    auth_method: str


class Role(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str
    permissions: list[str]
    default_max_classification: str
    builtin: bool


class RoleList(msgspec.Struct, frozen=True, kw_only=True):
    roles: list[Role]


class User(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    username: str
    display_name: str | None
    email: str | None
    source: str
    max_classification: str | None
    disabled: bool
    last_login_at: datetime | None
    created_at: datetime
    roles: list[str]
    groups: list[str]


class UserList(msgspec.Struct, frozen=True, kw_only=True):
    users: list[User]
    limit: int
    offset: int


class UserCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: str
    password: str | None = None
    display_name: str | None = None
    email: str | None = None
    roles: list[str] = []
    groups: list[str] = []
    max_classification: str | None = None


class RolesUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    roles: list[str]


class ScopesUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    groups: list[str]
    max_classification: str | None = None


class Scopes(msgspec.Struct, frozen=True, kw_only=True):
    user_id: int
    groups: list[str]
    max_classification: str | None


class TokenCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    role: str
    max_classification: str | None = None
    groups: list[str] | None = None


class TokenCreated(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    role: str
    token: str
    created_at: datetime


class Token(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    role: str
    token_prefix: str
    max_classification: str | None
    groups: list[str] | None
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None


class TokenList(msgspec.Struct, frozen=True, kw_only=True):
    tokens: list[Token]


class TokenRevoked(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    revoked: bool


class Policies(msgspec.Struct, frozen=True, kw_only=True):
    auth_mode: str
    proxy_auth: bool
    roles: dict[str, list[str]]
    agent_permissions: list[str]
    routes: dict[str, str]
