"""Where the test suite gets a PostgreSQL server.

`OPSGATE_TEST_DATABASE_URL` if set; else 127.0.0.1:5432 as user postgres when
something answers there; else a private embedded server in a temp dir.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from opsgate.db.embedded import EmbeddedPostgres

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


class TestServer:
    """An admin URL for a server tests may create and drop databases on."""

    def __init__(self) -> None:
        self.admin_url: str = ""
        self._embedded: EmbeddedPostgres | None = None

    async def start(self) -> str:
        explicit = os.environ.get("OPSGATE_TEST_DATABASE_URL")
        if explicit:
            self.admin_url = explicit
        elif await _answers(LOCAL_URL):
            self.admin_url = LOCAL_URL
        else:
            self._embedded = EmbeddedPostgres(tempfile.mkdtemp(prefix="opsgate-test-pg-"))
            self.admin_url = await asyncio.to_thread(self._embedded.start)
        return self.admin_url

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()

    def url_for(self, database: str) -> str:
        """The admin URL with another database name."""
        parts = urlsplit(self.admin_url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def unique_name(kind: str) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"opsgate_{kind}_{worker}_{secrets.token_hex(4)}"
