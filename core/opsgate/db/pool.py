"""The asyncpg pool: JSON codecs, timeouts, a cheap release reset."""

from __future__ import annotations

import asyncpg
import msgspec

from opsgate.settings import Settings

_encode = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()


def _encode_json(value: object) -> str:
    return _encode.encode(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    """Register msgspec JSON codecs for json and jsonb."""
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(typename, schema="pg_catalog", encoder=_encode_json,
                                  decoder=_decode.decode, format="text")


async def _reset(conn: asyncpg.Connection) -> None:
    # Pooled connections never LISTEN or hold session advisory locks (those use
    # dedicated connections), so the full reset per release is not needed;
    # only an abandoned transaction is rolled back.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(dsn: str, settings: Settings, *, min_size: int | None = None,
                      max_size: int | None = None) -> asyncpg.Pool:
    """Open a pool with the codecs and command timeout from settings."""
    return await asyncpg.create_pool(
        dsn,
        min_size=settings.db_pool_min if min_size is None else min_size,
        max_size=settings.db_pool_max if max_size is None else max_size,
        command_timeout=settings.db_command_timeout,
        init=init_connection,
        reset=_reset,
        server_settings={"application_name": "opsgate"},
    )


async def connect(dsn: str, settings: Settings | None = None) -> asyncpg.Connection:
    """A dedicated connection (LISTEN, advisory locks, migrations) with the same codecs."""
    conn = await asyncpg.connect(
        dsn,
        command_timeout=settings.db_command_timeout if settings else None,
        server_settings={"application_name": "opsgate"},
    )
    await init_connection(conn)
    return conn
