"""Event wake-ups after commit: `notify_committed` and the per-process `EventNotifier`."""

import asyncio

import asyncpg

from opsgate.db.pool import connect
from opsgate.events.notifier import EventNotifier, notify_committed

CHANNEL = "opsgate_events"


async def _listen(db_url: str) -> tuple[asyncpg.Connection, list[int]]:
    conn = await asyncpg.connect(db_url)
    got: list[int] = []
    await conn.add_listener(CHANNEL, lambda *args: got.append(int(args[3])))
    return conn, got


async def _until(predicate, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    assert predicate(), "condition not reached in time"


async def test_notify_committed_without_notifier_keeps_the_write_synchronous(db_url):
    listener, got = await _listen(db_url)
    c = await connect(db_url)
    try:
        await notify_committed(c, [1, 2])
        assert await c.fetchval("SHOW synchronous_commit") == "on"
        async with c.transaction():  # composed into a caller's transaction: sent on its commit
            await notify_committed(c, [3])
            assert await c.fetchval("SHOW synchronous_commit") == "on"
            await asyncio.sleep(0.1)
            assert 3 not in got
        await _until(lambda: len(got) >= 3)
        assert got == [1, 2, 3]
    finally:
        await c.close()
        await listener.close()


async def test_a_burst_goes_out_in_few_statements_in_order(db_url, test_settings):
    listener, got = await _listen(db_url)
    notifier = EventNotifier(test_settings())
    await notifier.start()
    try:
        ids = list(range(1, 2501))
        for i in ids:  # queued faster than one NOTIFY round trip
            notifier.notify([i])
        await _until(lambda: len(got) >= len(ids))
        assert got == ids
        assert notifier.sent == len(ids)
        assert notifier.statements == 3  # batches of 1000
    finally:
        await notifier.stop()
        await listener.close()


async def test_a_lost_connection_is_replaced_and_nothing_is_lost(db_url, test_settings):
    listener, got = await _listen(db_url)
    notifier = EventNotifier(test_settings())
    await notifier.start()
    admin = await asyncpg.connect(db_url)
    try:
        notifier.notify([1])
        await _until(lambda: got == [1])
        pid = notifier._conn.get_server_pid()
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        await _until(lambda: notifier._conn.is_closed() if notifier._conn else True)
        notifier.notify([2, 3])
        await _until(lambda: len(got) >= 3)
        assert got == [1, 2, 3]
        assert notifier._conn.get_server_pid() != pid
    finally:
        await admin.close()
        await notifier.stop()
        await listener.close()


async def test_stop_sends_what_is_still_queued(db_url, test_settings):
    listener, got = await _listen(db_url)
    notifier = EventNotifier(test_settings())
    await notifier.start()
    try:
        notifier.notify([7, 8, 9])
        await notifier.stop()  # before the loop had a chance to run
        assert not notifier.running
        await _until(lambda: len(got) >= 3)
        assert got == [7, 8, 9]
    finally:
        await listener.close()


async def test_a_created_ticket_wakes_listeners_through_the_apps_notifier(db_url, make_app, make_client,
                                                                           admin_token):
    listener, got = await _listen(db_url)
    app = make_app()
    try:
        async with make_client(app=app, token=admin_token) as c:
            r = await c.post("/api/tickets", json={"title": "VPN down", "ticket_class": "Incident"})
            assert r.status_code == 201, r.text
            ticket_id = r.json()["id"]
            event_ids = [row["id"] for row in await listener.fetch(
                "SELECT id FROM event_log WHERE ticket_id = $1 ORDER BY id", ticket_id)]
            assert len(event_ids) == 2  # ticket_created and its creation note
            await _until(lambda: set(event_ids) <= set(got))
            assert app.state.notifier.sent >= 2  # sent by the notifier, not on the request's connection
    finally:
        await listener.close()
