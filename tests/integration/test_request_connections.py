"""Pool admission of HTTP requests: first come, first served, with a deadline."""

import asyncio

import pytest

from opsgate.web.deps import RequestConnections


async def test_waiting_requests_get_connections_in_arrival_order(pool):
    connections = RequestConnections(pool, slots=1)
    first = await connections.acquire()
    order: list[int] = []

    async def request(i: int) -> None:
        conn = await connections.acquire()
        order.append(i)
        await asyncio.sleep(0)  # while it holds the connection, newcomers keep arriving
        await connections.release(conn)

    waiting = []
    for i in range(6):
        waiting.append(asyncio.create_task(request(i)))
        await asyncio.sleep(0)
    await connections.release(first)
    # Newcomers arriving right as connections are released must not overtake the waiting ones.
    late = [asyncio.create_task(request(10 + i)) for i in range(3)]
    await asyncio.gather(*waiting, *late)
    assert order == [0, 1, 2, 3, 4, 5, 10, 11, 12]


async def test_a_request_that_waits_too_long_gets_timeout_and_frees_its_place(pool):
    connections = RequestConnections(pool, slots=1)
    held = await connections.acquire()
    with pytest.raises(TimeoutError):
        await connections.acquire(timeout=0.05)
    await connections.release(held)
    conn = await asyncio.wait_for(connections.acquire(timeout=1), timeout=2)
    assert await conn.fetchval("SELECT 1") == 1
    await connections.release(conn)


async def test_background_work_keeps_its_reserved_connections(pool):
    # pool fixture: max 5 connections; requests may hold 3 of them.
    connections = RequestConnections.for_pool(pool, 5)
    held = [await connections.acquire() for _ in range(3)]
    with pytest.raises(TimeoutError):
        await connections.acquire(timeout=0.05)
    async with pool.acquire() as background:  # the listener, sweepers and loops still get one at once
        assert await asyncio.wait_for(background.fetchval("SELECT 1"), timeout=1) == 1
    for conn in held:
        await connections.release(conn)
