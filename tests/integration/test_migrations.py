import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from opsgate.db import migrate as migrations
from opsgate.db import sql
from opsgate.testing.postgres import unique_name

OPSGATE = str(Path(sys.executable).parent / "opsgate")


@pytest.fixture
async def empty_db(pg_server):
    name = unique_name("empty")
    admin = await asyncpg.connect(pg_server.admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield pg_server.url_for(name)
    admin = await asyncpg.connect(pg_server.admin_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def test_migration_names_are_contiguous():
    found = migrations.discover()
    assert [m.version for m in found] == list(range(1, len(found) + 1))


async def test_second_migrate_is_a_no_op(empty_db):
    first = await migrations.migrate(empty_db)
    assert len(first) == len(migrations.discover())
    assert await migrations.migrate(empty_db) == []
    assert await migrations.check(empty_db) == []


async def test_concurrent_cli_migrations_both_succeed_and_apply_once(empty_db):
    env = {**os.environ, "OPSGATE_DATABASE_URL": empty_db, "OPSGATE_LOG_FORMAT": "text"}
    procs = [await asyncio.create_subprocess_exec(OPSGATE, "migrate", env=env, stdout=asyncio.subprocess.PIPE,
                                                  stderr=asyncio.subprocess.PIPE) for _ in range(2)]
    results = await asyncio.gather(*(p.communicate() for p in procs))
    assert [p.returncode for p in procs] == [0, 0], results
    conn = await asyncpg.connect(empty_db)
    try:
        rows = await conn.fetch("SELECT version, count(*) AS n FROM schema_migrations GROUP BY version")
    finally:
        await conn.close()
    assert len(rows) == len(migrations.discover())
    assert all(r["n"] == 1 for r in rows)
    outputs = [out.decode() for out, _ in results]
    applied_counts = sorted(int(o.strip().splitlines()[-1].split()[0]) for o in outputs)
    assert applied_counts == [0, len(migrations.discover())]


def test_check_exit_codes(empty_db):
    env = {**os.environ, "OPSGATE_DATABASE_URL": empty_db}
    pending = subprocess.run([OPSGATE, "migrate", "--check"], env=env, capture_output=True, text=True)
    assert pending.returncode == 1 and "pending 0001_core" in pending.stdout
    assert subprocess.run([OPSGATE, "migrate"], env=env, capture_output=True).returncode == 0
    current = subprocess.run([OPSGATE, "migrate", "--check"], env=env, capture_output=True, text=True)
    assert current.returncode == 0 and "current" in current.stdout


async def test_changed_applied_file_is_refused(empty_db):
    found = migrations.discover()
    await migrations.migrate(empty_db, migrations=found[:1])
    tampered = [migrations.Migration(found[0].version, found[0].name, found[0].sql + "\n-- edited"), *found[1:]]
    with pytest.raises(migrations.MigrationError, match="checksum"):
        await migrations.migrate(empty_db, migrations=tampered)


async def test_failed_file_rolls_back_with_its_row(empty_db):
    found = migrations.discover()
    broken = [*found, migrations.Migration(len(found) + 1, "broken", "CREATE TABLE t_ok (id int); SELECT 1/0;")]
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrations.migrate(empty_db, migrations=broken)
    conn = await asyncpg.connect(empty_db)
    try:
        assert await conn.fetchval("SELECT to_regclass('t_ok')") is None
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == len(found)
    finally:
        await conn.close()


async def test_every_named_query_prepares(db_url):
    # import every domain's repo so its queries.sql is registered
    import importlib
    import pkgutil

    import opsgate

    for module in pkgutil.walk_packages(opsgate.__path__, "opsgate."):
        if module.name.endswith((".repo", ".queries")):
            importlib.import_module(module.name)
    assert sql.REGISTRY
    conn = await asyncpg.connect(db_url)
    try:
        for name, statement in sql.REGISTRY.items():
            try:
                await conn.prepare(statement)
            except asyncpg.PostgresError as exc:
                pytest.fail(f"{name} does not prepare: {exc}")
    finally:
        await conn.close()
