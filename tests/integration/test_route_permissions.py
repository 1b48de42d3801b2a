"""Every registered route, for every seed role and an agent token: allowed or denied exactly as declared."""

import re

import asyncpg
from litestar.routes import HTTPRoute

from opsgate import plugins
from opsgate.app import create_app
from opsgate.auth import service
from opsgate.auth.guard import AUTHENTICATED, declared_permission
from opsgate.auth.principal import AGENT_PERMISSIONS, grants
from opsgate.db.pool import connect

_PARAM = re.compile(r"\{([^}:]+)(?::([^}]+))?\}")


def _concrete(path: str) -> str:
    def fill(match: re.Match) -> str:
        kind = match.group(2) or "str"
        return "999999" if kind == "int" else ("zz/none" if kind == "path" else "zz-none")

    return _PARAM.sub(fill, path)


def _walk(app):
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith("/schema"):
            continue
        for handler in route.route_handlers:
            permission = declared_permission(handler)
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                yield method, route.path, permission


async def _call(client, method, path, token):
    kwargs = {"headers": {"Authorization": f"Bearer {token}"}}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
    return await client.request(method, _concrete(path), **kwargs)


def _guard_denied(response, permission) -> bool:
    if response.status_code != 403:
        return False
    body = response.json()
    return body.get("error") == "access_denied" and body.get("required_permission") == permission


async def test_route_permission_matrix(test_settings, make_client, make_token, db_url):
    settings = test_settings()
    app = create_app(settings, plugins.load(settings))
    routes = list(_walk(app))
    assert len(routes) > 10
    assert all(permission is not None for _, _, permission in routes)

    conn = await asyncpg.connect(db_url)
    try:
        role_perms = {r["name"]: frozenset(r["permissions"]) for r in await conn.fetch("SELECT * FROM roles")}
    finally:
        await conn.close()
    principals = {role: (await make_token(role), perms) for role, perms in role_perms.items()}
    conn = await connect(db_url)
    try:
        agent_token = await service.mint_agent_token(conn, agent_id=1, ticket_id=1, task_id=None)
    finally:
        await conn.close()
    principals["agent"] = (agent_token, AGENT_PERMISSIONS)

    mismatches = []
    async with make_client(app) as c:
        for name, (token, perms) in principals.items():
            for method, path, permission in routes:
                if permission in ("public", AUTHENTICATED):
                    expected_allowed = True
                else:
                    expected_allowed = grants(perms, permission)
                r = await _call(c, method, path, token)
                if r.status_code == 401 or r.status_code >= 500:
                    mismatches.append(f"{name} {method} {path}: unexpected {r.status_code} {r.text[:200]}")
                    continue
                denied = _guard_denied(r, permission)
                if denied == expected_allowed:
                    mismatches.append(f"{name} {method} {path} ({permission}): expected "
                                      f"{'allow' if expected_allowed else 'deny'}, got {r.status_code}")
    assert not mismatches, "\n".join(mismatches)


async def test_anonymous_gets_401_on_every_non_public_route(test_settings, make_client):
    settings = test_settings()
    app = create_app(settings, plugins.load(settings))
    async with make_client(app) as c:
        for method, path, permission in _walk(app):
            if permission == "public":
                continue
            kwargs = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
            r = await c.request(method, _concrete(path), **kwargs)
            assert r.status_code == 401, f"{method} {path}: {r.status_code}"
