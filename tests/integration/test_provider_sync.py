"""Provider sync against the in-process fake iTop: outbox, dispatcher, pull sync, reconcile, endpoints."""

from __future__ import annotations

import asyncio
import json
import types

import httpx
import pytest

from opsgate import hookimpl
from opsgate.db.pool import connect
from opsgate.providers import inbound
from opsgate.providers.outbox import Dispatcher
from opsgate_provider_itop.fake import FakeItop
from opsgate_provider_itop.provider import ItopProvider


class Switch(httpx.AsyncBaseTransport):
    """The fake iTop behind a switch: `down = True` refuses every connection."""

    def __init__(self, fake: FakeItop) -> None:
        self.inner = fake.transport()
        self.down = False
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            self.refused += 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


@pytest.fixture
def fake() -> FakeItop:
    return FakeItop()


@pytest.fixture
def switch(fake) -> Switch:
    return Switch(fake)


@pytest.fixture
def itop(fake, switch):
    """`itop(**settings_overrides)` -> (plugin module, provider) on the fake behind the switch."""

    def build(**overrides):
        provider = ItopProvider(fake.settings(**overrides), transport=switch)
        mod = types.ModuleType("itop_under_test")
        mod.opsgate_ticket_providers = hookimpl(lambda: [provider])
        return mod, provider

    return build


@pytest.fixture
def env():
    # No background loops: tests drive the dispatcher and the pull passes themselves.
    return {"OPSGATE_PROVIDER_SYNC": "0", "OPSGATE_PROVIDER_RETRY_BASE_SECONDS": "0",
            "OPSGATE_PROVIDER_RETRY_MAX_SECONDS": "0"}


@pytest.fixture
def app(make_app, itop, env):
    mod, _ = itop()
    return make_app(plugins=[("itop", mod)], env=env, ticket_provider="itop")


@pytest.fixture
async def db(db_url):
    conn = await connect(db_url)
    yield conn
    await conn.close()


def host_of(app):
    return app.state.plugins


def dispatcher(app, pool, name="test") -> Dispatcher:
    return Dispatcher(pool, app.state.settings, host_of(app), f"{name}-owner")


async def drain(app, pool, rounds: int = 50) -> None:
    d = dispatcher(app, pool)
    for _ in range(rounds):
        if (await d.dispatch_once()).claimed == 0:
            return
    raise AssertionError("outbox did not drain")


async def pull(app, pool):
    return await inbound.pull_once(pool, app.state.settings, host_of(app), "itop", "test-puller")


async def create(c, **fields):
    r = await c.post("/api/tickets", json={"title": "VPN drops every 10 minutes", "description": "Client says so.",
                                           **fields})
    assert r.status_code == 201, r.text
    return r.json()


async def ticket(c, ticket_id):
    r = await c.get(f"/api/tickets/{ticket_id}")
    assert r.status_code == 200, r.text
    return r.json()


def remote(fake, t):
    obj = fake.get_object("Ticket", int(t["provider_ref"]))
    assert obj is not None
    return obj


def log_texts(obj, log):
    return [e["message"] for e in obj[log]]


# --- registry -----------------------------------------------------------------------------


async def test_providers_are_listed_with_classes_configuration_and_capabilities(app, make_client, admin_token):
    async with make_client(app, token=admin_token) as c:
        r = await c.get("/api/providers")
    assert r.status_code == 200, r.text
    by_name = {p["name"]: p for p in r.json()["providers"]}
    assert set(by_name) == {"itop", "local"}
    assert by_name["itop"] == {"name": "itop", "ticket_classes": ["UserRequest", "Incident"], "configured": True,
                               "capabilities": {"case_log": True, "attachments": False, "pull_sync": True,
                                                "close": True}}
    assert by_name["local"]["configured"] is True and "Incident" in by_name["local"]["ticket_classes"]


async def test_unknown_provider_is_404_or_400_naming_it(app, make_client, admin_token):
    async with make_client(app, token=admin_token) as c:
        r = await c.post("/api/providers/nope/sync-all")
        assert r.status_code == 404 and "'nope'" in r.json()["detail"]
        r = await c.post("/api/providers/nope/sync-ticket", json={"ticket_class": "Incident", "ticket_ref": "1"})
        assert r.status_code == 404 and "'nope'" in r.json()["detail"]
        r = await c.post("/api/tickets/sync-all", json={"provider": "nope"})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "provider"
        assert "'nope'" in r.json()["errors"][0]["message"]
        t = await create(c, sync_provider=False)
        r = await c.post(f"/api/tickets/{t['id']}/push-provider", json={"provider": "nope"})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "provider"
        r = await c.post("/api/tickets/sync-all", json={"provider": "itop", "extra": 1})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "extra"
        r = await c.post("/api/tickets/sync-all", json=[1])
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "body"
        r = await c.post("/api/providers/itop/sync-ticket", json={"ticket_class": "Problem", "ticket_ref": "1"})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "ticket_class"
        r = await c.post("/api/providers/itop/sync-ticket", json={"ticket_ref": "1"})
        assert r.status_code == 400 and "ticket_class" in r.text
        r = await c.post("/api/providers/itop/sync-ticket", json={"ticket_class": "Incident", "ticket_ref": "999"})
        assert r.status_code == 404 and "999" in r.json()["detail"]
        assert (await c.post("/api/tickets/999999/sync")).status_code == 404
        assert (await c.post("/api/tickets/999999/push-provider", json={"provider": "itop"})).status_code == 404


@pytest.mark.parametrize("body", [None, b"itop", b'"itop"', b'{"provider": "itop"}', b'{"provider": null}', b"{}"])
async def test_sync_all_accepts_omitted_raw_or_object_bodies(app, make_client, admin_token, fake, body):
    fake.add_object("UserRequest", title="Printer jam", description="<p>Paper</p>", org_id=1, caller_id=1)
    async with make_client(app, token=admin_token) as c:
        r = await c.post("/api/tickets/sync-all", content=body or b"",
                         headers={"Content-Type": "text/plain" if body == b"itop" else "application/json"})
        assert r.status_code == 200, r.text
        result = r.json()
        assert result["provider"] == "itop"
        assert result["sync"]["imported"] == 1 and result["sync"]["catch_up"] is True
        r = await c.post("/api/providers/itop/sync-all")
        assert r.status_code == 200 and r.json()["sync"]["imported"] == 0


# --- outbound -------------------------------------------------------------------------------


async def test_create_queues_in_the_same_transaction_and_delivers_once(app, make_client, admin_token, fake, db,
                                                                       pool):
    async with make_client(app, token=admin_token) as c:
        t = await create(c, priority="P1", ticket_class="UserRequest", title="  A " + "x" * 300)
        assert (t["provider"], t["provider_sync_status"], t["provider_ref"]) == ("itop", "pending_create", None)
        rows = await db.fetch("SELECT op, status, payload FROM provider_outbox WHERE ticket_id = $1", t["id"])
        assert [(r["op"], r["status"]) for r in rows] == [("create", "pending")]
        marker = rows[0]["payload"]["marker"]
        assert marker.startswith(f"opsgate-{t['id']}-")
        await drain(app, pool)
        t = await ticket(c, t["id"])
    assert t["provider_sync_status"] == "synced" and t["provider_last_error"] is None
    assert t["provider_class"] == "UserRequest" and t["provider_ref"].isdigit()
    assert t["external_url"] == f"http://itop.test/pages/UI.php?operation=details&class=UserRequest&id={t['provider_ref']}"
    assert t["provider_payload"]["marker"] == marker and t["provider_payload"]["remote_status"] == "new"
    obj = remote(fake, t)
    assert (obj["impact"], obj["urgency"]) == ("1", "1") and len(obj["title"]) == 255
    assert fake.creates == 1
    audit = await db.fetch("SELECT action FROM audit_log WHERE ticket_id = $1 AND action LIKE 'provider%'", t["id"])
    assert [a["action"] for a in audit] == ["provider_ticket_created"]
    await drain(app, pool)
    assert fake.creates == 1


async def test_notes_status_and_assignment_reach_the_right_place_in_order(app, make_client, admin_token, fake,
                                                                          db, pool):
    async with make_client(app, token=admin_token) as c:
        t = await create(c)
        for body, visibility in (("First, for the requester.", "user"), ("Analyst detail.", "internal"),
                                 ("Public as well.", "public")):
            r = await c.post(f"/api/tickets/{t['id']}/notes", json={"body": body, "visibility": visibility})
            assert r.status_code == 201, r.text
        r = await c.post(f"/api/tickets/{t['id']}/assignment", json={"assignee": "alice", "assignee_team": "SOC"})
        assert r.status_code == 200, r.text
        r = await c.post(f"/api/tickets/{t['id']}/assignment", json={"assignee": "alice"})  # nothing changes
        assert r.status_code == 200, r.text
        r = await c.post(f"/api/tickets/{t['id']}/status", json={"status": "in_progress", "close_provider": False})
        assert r.status_code == 200, r.text
        r = await c.post(f"/api/tickets/{t['id']}/status", json={"status": "resolved", "reason": "Patched the client."})
        assert r.status_code == 200, r.text
        ops = [r["op"] for r in await db.fetch("SELECT op FROM provider_outbox WHERE ticket_id = $1 ORDER BY id",
                                               t["id"])]
        assert ops == ["create", "note", "note", "note", "assignment", "status"]
        await drain(app, pool)
        t = await ticket(c, t["id"])
    obj = remote(fake, t)
    assert log_texts(obj, "public_log") == ["First, for the requester.", "Public as well."]
    private = log_texts(obj, "private_log")
    assert private[0] == "Analyst detail." and private[1].startswith("Assignment updated by") and len(private) == 2
    assert obj["status"] == "resolved" and "Patched the client." in obj["solution"]
    assert t["provider_sync_status"] == "synced" and t["provider_payload"]["remote_status"] == "resolved"
    assert await db.fetchval("SELECT count(*) FROM provider_outbox WHERE status <> 'delivered'") == 0

    # Pulling back: opsgate's own entries are recognised, not mirrored; the status is not "changed".
    summary = await pull(app, pool)
    assert summary.echoes == 4 and summary.notes_added == 0 and summary.status_changes == 0
    assert summary.conflicts == 0
    notes = await db.fetch("SELECT source FROM ticket_notes WHERE ticket_id = $1 AND source = 'itop'", t["id"])
    assert notes == []


async def test_closed_with_close_provider_resolves_and_closes_in_itop(app, make_client, admin_token, fake, pool):
    async with make_client(app, token=admin_token) as c:
        t = await create(c)
        r = await c.post(f"/api/tickets/{t['id']}/status", json={"status": "closed", "reason": "Done."})
        assert r.status_code == 200
        await drain(app, pool)
        t = await ticket(c, t["id"])
    assert remote(fake, t)["status"] == "closed"


async def test_itop_down_keeps_every_write_and_delivers_each_once_in_order(app, make_client, admin_token, fake,
                                                                          switch, db, pool):
    switch.down = True
    async with make_client(app, token=admin_token) as c:
        t = await create(c)
        for i in range(3):
            r = await c.post(f"/api/tickets/{t['id']}/notes", json={"body": f"note {i}", "visibility": "user"})
            assert r.status_code == 201
        for _ in range(3):
            await dispatcher(app, pool).dispatch_once()
        t = await ticket(c, t["id"])
        assert t["provider_sync_status"] == "pending_create"
        assert "ConnectError" in t["provider_last_error"] or "connection refused" in t["provider_last_error"]
        r = await c.post(f"/api/tickets/{t['id']}/notes", json={"body": "note 3", "visibility": "internal"})
        assert r.status_code == 201
        assert switch.refused >= 3 and fake.creates == 0
        switch.down = False
        await drain(app, pool)
        t = await ticket(c, t["id"])
    assert t["provider_sync_status"] == "synced" and t["provider_last_error"] is None
    obj = remote(fake, t)
    assert log_texts(obj, "public_log") == ["note 0", "note 1", "note 2"]
    assert log_texts(obj, "private_log") == ["note 3"]
    assert fake.creates == 1 and fake.calls["core/update"] == 4


async def test_lost_create_reply_never_makes_a_second_itop_ticket(app, make_client, admin_token, fake, db, pool):
    async with make_client(app, token=admin_token) as c:
        t = await create(c)
        fake.drop_next_reply("core/create")  # iTop commits, the reply is lost
        fake.fail_next_http(502, "<h1>Bad gateway</h1>", operation="core/get")  # and the provider's own lookup fails
        summary = await dispatcher(app, pool).dispatch_once()
        assert summary.retried == 1
        t = await ticket(c, t["id"])
        assert t["provider_sync_status"] == "pending_create" and t["provider_ref"] is None
        await drain(app, pool)
        t = await ticket(c, t["id"])
    assert t["provider_sync_status"] == "synced"
    assert fake.creates == 1 and len(fake.objects_of("Ticket")) == 1
    assert t["provider_ref"] == str(fake.objects_of("Ticket")[0]["id"])


async def test_lost_create_reply_seen_by_the_pull_first_links_instead_of_importing(make_app, itop, make_client,
                                                                                   admin_token, fake, db, pool):
    mod, _ = itop()
    app = make_app(plugins=[("itop", mod)], env={"OPSGATE_PROVIDER_SYNC": "0",
                                                 "OPSGATE_PROVIDER_RETRY_BASE_SECONDS": "3600",
                                                 "OPSGATE_PROVIDER_RETRY_MAX_SECONDS": "3600"},
                   ticket_provider="itop")
    async with make_client(app, token=admin_token) as c:
        t = await create(c)
        await c.post(f"/api/tickets/{t['id']}/notes", json={"body": "queued behind the create", "visibility": "user"})
        fake.drop_next_reply("core/create")
        fake.fail_next_http(502, "<h1>Bad gateway</h1>", operation="core/get")
        assert (await dispatcher(app, pool).dispatch_once()).retried == 1
        summary = await pull(app, pool)  # sees the new iTop ticket and its marker before the retry
        assert (summary.imported, summary.linked) == (0, 1)
        t = await ticket(c, t["id"])
        assert t["provider_sync_status"] == "synced" and t["provider_ref"] is not None
        assert await db.fetchval("SELECT count(*) FROM tickets") == 1
        await drain(app, pool)  # the note follows; the create is already settled
    assert fake.creates == 1
    assert log_texts(remote(fake, t), "public_log") == ["queued behind the create"]
    link = await db.fetch("SELECT action FROM audit_log WHERE action = 'provider_ticket_linked'")
    assert len(link) == 1


async def test_missing_configuration_is_create_failed_never_synced(make_app, itop, make_client, admin_token, db,
                                                                   pool, env):
    mod, _ = itop(default_org_id=None)
    app = make_app(plugins=[("itop", mod)], env=env, ticket_provider="itop")
    async with make_client(app, token=admin_token) as c:
        t = await create(c)
        summary = await dispatcher(app, pool).dispatch_once()
        assert summary.failed == 1
        t = await ticket(c, t["id"])
    assert t["provider_sync_status"] == "create_failed"
    assert "ITOP_DEFAULT_ORG_ID" in t["provider_last_error"] and t["provider_ref"] is None
    failed = await db.fetchrow("SELECT details FROM audit_log WHERE action = 'provider_sync_failed'")
    assert failed["details"]["provider_sync_status"] == "create_failed"


async def test_unconfigured_or_missing_provider_fails_the_create_at_once(make_app, make_client, admin_token, pool,
                                                                         env):
    from opsgate_provider_itop.settings import ItopSettings

    mod = types.ModuleType("itop_unconfigured")
    mod.opsgate_ticket_providers = hookimpl(lambda: [ItopProvider(ItopSettings())])
    for plugins, needle in (([("itop", mod)], "not configured"), ([], "not installed")):
        app = make_app(plugins=plugins, env=env, ticket_provider="itop")
        async with make_client(app, token=admin_token) as c:
            t = await create(c)
            await dispatcher(app, pool).dispatch_once()
            t = await ticket(c, t["id"])
        assert t["provider_sync_status"] == "create_failed", t
        assert needle in t["provider_last_error"]


async def test_retries_exhausted_then_push_provider_requeues(make_app, itop, make_client, admin_token, fake, switch,
                                                             pool, db):
    mod, _ = itop()
    app = make_app(plugins=[("itop", mod)], env={"OPSGATE_PROVIDER_SYNC": "0",
                                                 "OPSGATE_PROVIDER_RETRY_MAX_ATTEMPTS": "3",
                                                 "OPSGATE_PROVIDER_RETRY_BASE_SECONDS": "0",
                                                 "OPSGATE_PROVIDER_RETRY_MAX_SECONDS": "0"},
                   ticket_provider="itop")
    switch.down = True
    async with make_client(app, token=admin_token) as c:
        t = await create(c)
        await c.post(f"/api/tickets/{t['id']}/notes", json={"body": "waits for the create", "visibility": "user"})
        outcomes = [await dispatcher(app, pool).dispatch_once() for _ in range(4)]
        assert [o.retried for o in outcomes] == [1, 1, 0, 0] and outcomes[2].failed == 1
        assert outcomes[3].claimed == 0  # the failed create blocks the ticket's queue
        t = await ticket(c, t["id"])
        assert t["provider_sync_status"] == "create_failed" and "connection refused" in t["provider_last_error"]
        switch.down = False
        r = await c.post(f"/api/tickets/{t['id']}/push-provider", json={"provider": "itop"})
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["queued"] is True and body["ticket"]["provider_sync_status"] == "synced"
    assert [o["status"] for o in body["outbox"]] == ["delivered", "delivered"]
    assert fake.creates == 1 and log_texts(remote(fake, body["ticket"]), "public_log") == ["waits for the create"]


async def test_push_provider_moves_a_local_ticket_to_itop(app, make_client, admin_token, fake):
    async with make_client(app, token=admin_token) as c:
        t = await create(c, sync_provider=False)
        assert t["provider"] == "local"
        r = await c.post(f"/api/tickets/{t['id']}/sync")
        assert r.status_code == 409 and "local" in r.json()["detail"]
        r = await c.post(f"/api/tickets/{t['id']}/push-provider", json={"provider": "ITOP"})
        assert r.status_code == 200, r.text
        pushed = r.json()
        assert pushed["ticket"]["provider"] == "itop" and pushed["ticket"]["provider_sync_status"] == "synced"
        r = await c.post(f"/api/tickets/{t['id']}/push-provider", json={"provider": "itop"})
        assert r.status_code == 200 and r.json()["queued"] is False
        r = await c.post(f"/api/tickets/{t['id']}/push-provider", json={"provider": "local"})
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "provider"
    assert fake.creates == 1


async def test_two_dispatchers_deliver_each_row_once(app, make_client, admin_token, fake, pool):
    async with make_client(app, token=admin_token) as c:
        tickets = [await create(c, title=f"t{i}") for i in range(4)]
        for t in tickets:
            for j in range(3):
                await c.post(f"/api/tickets/{t['id']}/notes", json={"body": f"{t['id']}-{j}", "visibility": "user"})
        a, b = dispatcher(app, pool, "a"), dispatcher(app, pool, "b")
        for _ in range(10):
            await asyncio.gather(a.dispatch_once(), b.dispatch_once())
        tickets = [await ticket(c, t["id"]) for t in tickets]
    assert fake.creates == 4
    for t in tickets:
        assert log_texts(remote(fake, t), "public_log") == [f"{t['id']}-{j}" for j in range(3)]


# --- inbound --------------------------------------------------------------------------------


async def test_catch_up_imports_each_itop_ticket_once_with_notes_and_never_auto_assigns(app, pool, fake, db):
    entries = [{"date": "2024-05-02 09:47:48", "user_login": "Claude Monet", "user_id": "7", "format": "html",
                "message": "Still broken", "message_html": "<p>Still <b>broken</b> &amp; slow</p>"}]
    a = fake.add_object("UserRequest", title="Printer jam", description="<p>Paper <i>everywhere</i></p>", org_id=1,
                        caller_id=1, status="assigned", public_log=entries, last_update="2024-05-02 09:48:00")
    # Would match the seeded phishing rule (auto_assign_agent) if imports consulted RACI auto-assignment.
    fake.add_object("Incident", title="Phishing email reported", description="<p>suspicious link phishing</p>",
                    org_id=1, caller_id=1, status="new", last_update="2024-05-01 10:00:00")
    summary = await pull(app, pool)
    assert summary.catch_up is True and summary.imported == 2 and summary.notes_added == 1
    rows = await db.fetch("SELECT * FROM tickets ORDER BY provider_class DESC")
    assert [(r["provider_class"], r["status"], r["provider_sync_status"]) for r in rows] == [
        ("UserRequest", "assigned", "synced"), ("Incident", "new", "synced")]
    ur = rows[0]
    assert ur["provider_ref"] == str(a) and ur["description"] == "Paper everywhere"
    assert ur["created_by"] == "itop-sync"
    note = await db.fetchrow("SELECT * FROM ticket_notes WHERE ticket_id = $1 AND kind = 'note'", ur["id"])
    assert (note["body"], note["source"], note["visibility"], note["author"]) == (
        "Still broken & slow", "itop", "user", "Claude Monet")
    steer = await db.fetchrow("SELECT payload FROM event_log WHERE kind = 'ticket_note_added' "
                              "AND (payload->>'note_id')::bigint = $1", note["id"])
    assert steer["payload"]["steer"] is True
    created = await db.fetch("SELECT payload FROM event_log WHERE kind = 'ticket_created'")
    assert all(e["payload"]["auto_assign"] is False and e["payload"]["catch_up"] is True for e in created)
    assert await db.fetchval("SELECT count(*) FROM agents") == 0

    again = await pull(app, pool)
    assert (again.imported, again.notes_added, again.catch_up) == (0, 0, False)
    assert await db.fetchval("SELECT count(*) FROM tickets") == 2

    # A new entry in iTop comes in once; the old one is not repeated.
    fake.advance(3600)
    provider = host_of(app).ticket_providers()["itop"]
    await provider.add_note("UserRequest", str(a), "Any news?", "user")
    third = await pull(app, pool)
    assert third.notes_added == 1 and third.updated == 1
    bodies = [r["body"] for r in await db.fetch("SELECT body FROM ticket_notes WHERE ticket_id = $1 AND "
                                                "source = 'itop' AND kind = 'note' ORDER BY id", ur["id"])]
    assert bodies == ["Still broken & slow", "Any news?"]


async def test_reconcile_never_moves_backwards_or_out_of_waits_and_records_conflicts(app, make_client, admin_token,
                                                                                    fake, db, pool):
    async with make_client(app, token=admin_token) as c:
        waiting, plain, done = [await create(c, title=n) for n in ("waiting", "plain", "done")]
        await drain(app, pool)
        r = await c.post(f"/api/tickets/{waiting['id']}/request-info", json={"question": "Which laptop?"})
        assert r.status_code == 200
        r = await c.post(f"/api/tickets/{done['id']}/status", json={"status": "cancelled", "close_provider": False})
        assert r.status_code == 200
        await drain(app, pool)
        await pull(app, pool)
        provider = host_of(app).ticket_providers()["itop"]
        for t in (waiting, plain, done):
            t = await ticket(c, t["id"])
            fake.advance(60)
            await provider.set_status(t["provider_class"], t["provider_ref"], "resolved", "Fixed in iTop", close=False)
        summary = await pull(app, pool)
        assert summary.status_changes == 1 and summary.conflicts == 2
        assert (await ticket(c, waiting["id"]))["status"] == "awaiting_user_response"
        assert (await ticket(c, done["id"]))["status"] == "cancelled"
        assert (await ticket(c, plain["id"]))["status"] == "resolved"
        conflicts = await db.fetch("SELECT ticket_id, body, details FROM ticket_notes WHERE details ? "
                                   "'provider_conflict' ORDER BY ticket_id")
        assert [r["ticket_id"] for r in conflicts] == [waiting["id"], done["id"]]
        assert "kept awaiting_user_response" in conflicts[0]["body"]
        again = await pull(app, pool)
        assert again.conflicts == 0  # recorded once per remote change


async def test_active_agent_keeps_the_ticket_and_sync_endpoints_fold_remote_changes(app, make_client, admin_token,
                                                                                   fake, db, pool):
    async with make_client(app, token=admin_token) as c:
        t = await create(c)
        await drain(app, pool)
        t = await ticket(c, t["id"])
        await db.execute("INSERT INTO agents (ticket_id, name, status, harness, model, task_type, created_by) "
                         "VALUES ($1, 'a', 'running', 'hermes', 'm', 'ticket_resolution', 'test')", t["id"])
        provider = host_of(app).ticket_providers()["itop"]
        fake.advance(60)
        await provider.set_status("Incident", t["provider_ref"], "assigned", "", close=False)
        await provider.add_note("Incident", t["provider_ref"], "<p>Requester called</p>", "user")
        r = await c.post(f"/api/tickets/{t['id']}/sync")
        assert r.status_code == 200, r.text
        result = r.json()
        assert result["sync"]["conflicts"] == 1 and result["sync"]["notes_added"] == 1
        assert result["ticket"]["status"] == "new"
        r = await c.post("/api/providers/itop/sync-ticket", json={"ticket_class": "incident",
                                                                   "ticket_ref": t["provider_ref"]})
        assert r.status_code == 200 and r.json()["created"] is False
        assert r.json()["ticket"]["id"] == t["id"]
        other = fake.add_object("Incident", title="Made in iTop", description="x", org_id=1, caller_id=1)
        ref = fake.get_object("Incident", other)["ref"]
        r = await c.post("/api/providers/itop/sync-ticket", json={"ticket_class": "Incident", "ticket_ref": ref})
        assert r.status_code == 200, r.text
        assert r.json()["created"] is True and r.json()["ticket"]["provider_ref"] == str(other)
        r = await c.post("/api/providers/itop/sync-ticket", json={"ticket_class": "Incident", "ticket_ref": ref})
        assert r.json()["created"] is False
    assert await db.fetchval("SELECT count(*) FROM tickets") == 2


async def test_sync_permission_is_required(app, make_client, make_token):
    auditor = await make_token("auditor")
    async with make_client(app, token=auditor) as c:
        assert (await c.get("/api/providers")).status_code == 200
        r = await c.post("/api/tickets/sync-all")
        assert r.status_code == 403 and r.json()["required_permission"] == "tickets:sync"


async def test_a_pending_create_without_a_queued_create_is_repaired(app, make_client, admin_token, fake, db, pool):
    # Writers that mark a ticket pending_create without queueing its create (e.g. an access request's
    # child ticket, written by its own statement) are picked up by the dispatcher.
    ticket_id = await db.fetchval(
        "INSERT INTO tickets (title, created_by, provider, provider_sync_status) "
        "VALUES ('child access ticket', 'test', 'itop', 'pending_create') RETURNING id")
    await drain(app, pool)
    async with make_client(app, token=admin_token) as c:
        t = await ticket(c, ticket_id)
    assert t["provider_sync_status"] == "synced" and fake.creates == 1
    assert [r["op"] for r in await db.fetch("SELECT op FROM provider_outbox WHERE ticket_id = $1", ticket_id)] == [
        "create"]


async def test_the_repair_scan_reads_only_pending_tickets_through_their_index(db):
    # It runs once a minute in every process: never a scan of every ticket.
    from opsgate.providers import repo

    await db.execute("INSERT INTO tickets (title, created_by, provider, provider_sync_status) "
                     "SELECT 'local ' || i, 'test', 'local', 'local_only' FROM generate_series(1, 2000) AS i")
    await db.execute("ANALYZE tickets")
    plan = await db.fetchval("EXPLAIN (FORMAT JSON) " + repo.OUTBOX_ENQUEUE_MISSING_CREATES, 100)
    plan = json.loads(plan) if isinstance(plan, str) else plan

    def nodes(node):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    on_tickets = [n for n in nodes(plan[0]["Plan"]) if n.get("Relation Name") == "tickets"]
    assert [n["Node Type"] for n in on_tickets] == ["Index Scan"]
    assert on_tickets[0]["Index Name"] == "tickets_pending_create_idx"
