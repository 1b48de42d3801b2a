"""Health of the process and its database."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from opsgate import __version__
from opsgate.system.schemas import Health

log = logging.getLogger(__name__)


async def health(pool: asyncpg.Pool) -> Health:
    """`ok` when a pooled connection answers `SELECT 1` within 2 s (one retry for a stale connection)."""
    for attempt in range(2):
        try:
            async with asyncio.timeout(2):
                async with pool.acquire() as conn:
                    await conn.fetchval("SELECT 1")
            return Health(status="ok", version=__version__, database="ok")
        except Exception as exc:  # any failure of the probe means the database is unavailable
            if attempt == 1:
                log.warning("database health check failed: %s: %s", type(exc).__name__, exc)
    return Health(status="degraded", version=__version__, database="unavailable")
