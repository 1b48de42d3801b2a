"""Fixtures: PostgreSQL per test from a migrated template, the app, clients, tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from opsgate import plugins as plugin_host
from opsgate.app import create_app
from opsgate.db.migrate import migrate
from opsgate.db.pool import connect, create_pool
from opsgate.settings import Settings
from opsgate.testing.postgres import TestServer, unique_name

__all__ = [
    "admin_client",
    "admin_token",
    "audit_rows",
    "client",
    "db_url",
    "make_app",
    "make_client",
    "make_token",
    "open_db",
    "pg_server",
    "pg_template",
    "pool",
    "test_settings",
]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pg_server() -> AsyncIterator[TestServer]:
    server = TestServer()
    await server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pg_template(pg_server: TestServer) -> AsyncIterator[str]:
    """The name of a database with every migration applied, used as a template."""
    name = unique_name("tpl")
    admin = await asyncpg.connect(pg_server.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await migrate(pg_server.url_for(name))
    yield name
    admin = await asyncpg.connect(pg_server.admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def db_url(pg_server: TestServer, pg_template: str) -> AsyncIterator[str]:
    """A fresh database cloned from the template, dropped after the test."""
    name = unique_name("test")
    admin = await asyncpg.connect(pg_server.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    finally:
        await admin.close()
    yield pg_server.url_for(name)
    admin = await asyncpg.connect(pg_server.admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def test_settings(db_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """`test_settings(**overrides)`: settings for this test's database and a private data dir."""

    def build(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        # The runner stays off unless a test asks for it (OPSGATE_RUNNER=1 or runner_enabled=True).
        base_env = {"OPSGATE_DATA_DIR": str(tmp_path / "data"), "OPSGATE_LOG_FORMAT": "text",
                    "OPSGATE_SECRET_KEY": "test-secret-key-not-for-production", "HOME": str(tmp_path),
                    "OPSGATE_RUNNER": "0"}
        base_env.update(env or {})
        settings = Settings.from_env(base_env, database_url=db_url, **overrides)
        return settings

    return build


@pytest.fixture
def open_db(db_url: str) -> Callable[[], Any]:
    """`async with open_db() as conn`: a dedicated connection to this test's database, with the JSON codecs."""

    @asynccontextmanager
    async def open_() -> AsyncIterator[asyncpg.Connection]:
        conn = await connect(db_url)
        try:
            yield conn
        finally:
            await conn.close()

    return open_


@pytest_asyncio.fixture(loop_scope="session")
async def pool(db_url: str, test_settings: Callable[..., Settings]) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_url, test_settings(), min_size=1, max_size=5)
    yield p
    await p.close()


@pytest.fixture
def make_app(test_settings: Callable[..., Settings]) -> Callable[..., Litestar]:
    """`make_app(plugins=[(name, module), ...], env={...}, **settings)`: only the given plugins load."""

    def build(plugins: Sequence[tuple[str, object]] = (), env: dict[str, str] | None = None,
              **overrides: Any) -> Litestar:
        settings = test_settings(env, **overrides)
        host = plugin_host.load(settings, extra=plugins, discover=False)
        return create_app(settings, host)

    return build


async def _mint(db: str, role: str, name: str, **extra: Any) -> str:
    from opsgate.auth.service import create_service_token
    from opsgate.db.pool import connect

    conn = await connect(db)
    try:
        _, token = await create_service_token(conn, name=name, role=role, actor=None, **extra)
        return token
    finally:
        await conn.close()


@pytest.fixture
def make_token(db_url: str) -> Callable[..., Any]:
    """`await make_token(role, **kw)`: a new service token with that role."""
    counter = iter(range(1, 1_000_000))

    async def build(role: str = "platform-admin", **extra: Any) -> str:
        return await _mint(db_url, role, f"test-{role}-{next(counter)}", **extra)

    return build


@pytest_asyncio.fixture(loop_scope="session")
async def admin_token(make_token: Callable[..., Any]) -> str:
    return await make_token("platform-admin")


@pytest.fixture
def make_client(make_app: Callable[..., Litestar]) -> Callable[..., Any]:
    """`async with make_client(app=None, token=None) as c`: an AsyncTestClient, optionally authenticated."""

    @asynccontextmanager
    async def build(app: Litestar | None = None, token: str | None = None) -> AsyncIterator[AsyncTestClient]:
        async with AsyncTestClient(app=app or make_app()) as c:
            if token:
                c.headers["Authorization"] = f"Bearer {token}"
            yield c

    return build


@pytest_asyncio.fixture(loop_scope="session")
async def client(make_client: Callable[..., Any]) -> AsyncIterator[AsyncTestClient]:
    """An unauthenticated client of an app with no plugins."""
    async with make_client() as c:
        yield c


@pytest_asyncio.fixture(loop_scope="session")
async def admin_client(make_client: Callable[..., Any], admin_token: str) -> AsyncIterator[AsyncTestClient]:
    """A client of an app with no plugins, authenticated as a platform admin."""
    async with make_client(token=admin_token) as c:
        yield c


async def audit_rows(conn: asyncpg.Connection, action: str | None = None) -> list[dict[str, Any]]:
    """Audit rows, oldest first, optionally of one action."""
    if action is None:
        rows = await conn.fetch("SELECT * FROM audit_log ORDER BY id")
    else:
        rows = await conn.fetch("SELECT * FROM audit_log WHERE action = $1 ORDER BY id", action)
    return [dict(r) for r in rows]


