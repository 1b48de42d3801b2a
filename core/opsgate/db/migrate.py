"""Forward-only migrations from numbered `.sql` files.

The whole run holds `pg_advisory_lock(LOCK_KEY)` on a dedicated connection,
so concurrent runs serialize and each file is applied once. Each file runs in
one transaction together with its `schema_migrations` row, unless its first
line is `-- migrate: no-transaction` (then it must be re-runnable).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

LOCK_KEY = 7_305_886_234_122_051  # fixed: "opsgate migrate"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_NO_TX = "-- migrate: no-transaction"

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL
)
"""


class MigrationError(Exception):
    """The migration files or the recorded history are inconsistent."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def transactional(self) -> bool:
        return not self.sql.lstrip().startswith(_NO_TX)


def discover(package: str = "opsgate.db.migrations") -> list[Migration]:
    """All migration files, checked for names and contiguous numbering."""
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if not match:
            raise MigrationError(f"bad migration file name {entry.name!r} (want NNNN_snake_name.sql)")
        found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for index, migration in enumerate(found, start=1):
        if migration.version != index:
            raise MigrationError(f"migration numbers are not contiguous: expected {index:04d}, found {migration.version:04d}")
    return found


async def _applied(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
    return {row["version"]: row for row in rows}


def _verify(migrations: list[Migration], applied: dict[int, asyncpg.Record]) -> None:
    by_version = {m.version: m for m in migrations}
    for version, row in applied.items():
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(f"database has migration {version:04d} ({row['name']}) that this code does not know")
        if row["checksum"] != migration.checksum:
            raise MigrationError(f"migration {version:04d}_{migration.name} changed after it was applied (checksum mismatch)")


async def pending(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[Migration]:
    """Migrations not yet applied (after verifying the applied ones)."""
    migrations = discover() if migrations is None else migrations
    applied = await _applied(conn)
    _verify(migrations, applied)
    return [m for m in migrations if m.version not in applied]


async def migrate(dsn: str, *, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply every pending migration; returns what was applied."""
    migrations = discover() if migrations is None else migrations
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "opsgate-migrate"})
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            await conn.execute(_BOOKKEEPING)
            todo = await pending(conn, migrations)
            for migration in todo:
                started = time.monotonic()
                insert = ("INSERT INTO schema_migrations (version, name, checksum, duration_ms) "
                          "VALUES ($1, $2, $3, $4)")
                if migration.transactional:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(insert, migration.version, migration.name, migration.checksum,
                                           int((time.monotonic() - started) * 1000))
                else:
                    await conn.execute(migration.sql)
                    await conn.execute(insert, migration.version, migration.name, migration.checksum,
                                       int((time.monotonic() - started) * 1000))
                log.info("migration applied", extra={"migration": f"{migration.version:04d}_{migration.name}"})
            return todo
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    finally:
        await conn.close()


async def check(dsn: str) -> list[Migration]:
    """Pending migrations, without applying anything."""
    conn = await asyncpg.connect(dsn)
    try:
        return await pending(conn)
    finally:
        await conn.close()
