"""The dispatcher against iTop transport failures (respx): what is retried, what fails, what is recorded."""

from __future__ import annotations

import json
import types
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from opsgate import hookimpl
from opsgate.db.pool import connect
from opsgate.providers.outbox import Dispatcher
from opsgate_provider_itop.provider import ItopProvider
from opsgate_provider_itop.settings import ItopSettings

URL = "http://itop.respx/"
ENDPOINT = URL + "webservices/rest.php"


def _operation(request: httpx.Request) -> str:
    form = parse_qs(request.content.decode())
    return json.loads(form["json_data"][0])["operation"]


def _created(obj_id: int = 5) -> dict:
    return {"code": 0, "message": None, "objects": {f"Incident::{obj_id}": {
        "code": 0, "message": "created", "class": "Incident", "key": str(obj_id),
        "fields": {"id": str(obj_id), "ref": f"I-{obj_id:06d}", "title": "Phishing", "status": "new",
                   "description": "<p>x</p>", "priority": "2", "last_update": "2024-05-02 10:00:00",
                   "public_log": {"entries": []}, "private_log": {"entries": []}}}}}


@pytest.fixture
def app(make_app):
    provider = ItopProvider(ItopSettings(url=URL, user="opsgate", password="secret", default_org_id="1",
                                         default_caller_id="1", timeout_seconds=2))
    mod = types.ModuleType("itop_respx")
    mod.opsgate_ticket_providers = hookimpl(lambda: [provider])
    return make_app(plugins=[("itop", mod)], ticket_provider="itop",
                    env={"OPSGATE_PROVIDER_SYNC": "0", "OPSGATE_PROVIDER_RETRY_BASE_SECONDS": "0",
                         "OPSGATE_PROVIDER_RETRY_MAX_SECONDS": "0", "OPSGATE_PROVIDER_RETRY_MAX_ATTEMPTS": "3"})


async def _ticket(app, make_client, token) -> int:
    async with make_client(app, token=token) as c:
        r = await c.post("/api/tickets", json={"title": "Phishing"})
        assert r.status_code == 201, r.text
        return r.json()["id"]


async def _state(db_url, ticket_id):
    conn = await connect(db_url)
    try:
        t = await conn.fetchrow("SELECT provider_sync_status, provider_last_error, provider_ref FROM tickets "
                                "WHERE id = $1", ticket_id)
        o = await conn.fetchrow("SELECT status, attempts, last_error FROM provider_outbox WHERE ticket_id = $1 "
                                "AND op = 'create'", ticket_id)
        return dict(t), dict(o)
    finally:
        await conn.close()


FAILURES = {
    "timeout": (lambda request: (_ for _ in ()).throw(httpx.ReadTimeout("read timed out", request=request)),
                "timed out"),
    "http 500": (lambda request: httpx.Response(500, text="<b>Fatal error</b>"), "500"),
    "not json": (lambda request: httpx.Response(200, text="<html>proxy</html>",
                                                headers={"Content-Type": "text/html"}), "JSON"),
    "login": (lambda request: httpx.Response(200, json={"code": 1, "message": "Error: Invalid login"}),
              "Invalid login"),
    "internal": (lambda request: httpx.Response(200, json={"code": 100, "message": "Error: boom"}), "boom"),
}


@pytest.mark.parametrize("kind", sorted(FAILURES))
async def test_transport_failures_are_retried_then_the_create_lands_once(app, make_client, admin_token, db_url,
                                                                         pool, kind):
    fail, needle = FAILURES[kind]
    ticket_id = await _ticket(app, make_client, admin_token)
    dispatcher = Dispatcher(pool, app.state.settings, app.state.plugins, "respx-test")
    seen: list[str] = []
    with respx.mock(assert_all_called=False) as mock:
        state = {"down": True}

        def reply(request: httpx.Request) -> httpx.Response:
            op = _operation(request)
            seen.append(op)
            if state["down"]:
                return fail(request)
            if op == "core/get":
                return httpx.Response(200, json={"code": 0, "message": "Found: 0", "objects": None})
            return httpx.Response(200, json=_created())

        mock.post(ENDPOINT).mock(side_effect=reply)
        assert (await dispatcher.dispatch_once()).retried == 1
        ticket, row = await _state(db_url, ticket_id)
        assert ticket["provider_sync_status"] == "pending_create" and needle in ticket["provider_last_error"]
        assert (row["status"], row["attempts"]) == ("pending", 1)
        state["down"] = False
        seen.clear()
        assert (await dispatcher.dispatch_once()).delivered == 1
    ticket, row = await _state(db_url, ticket_id)
    assert (ticket["provider_sync_status"], ticket["provider_last_error"], ticket["provider_ref"]) == (
        "synced", None, "5")
    assert row["status"] == "delivered"
    # The retry looked for the marker (per class) before creating again, and created exactly once.
    assert seen[0] == "core/get" and seen.count("core/create") == 1


async def test_exhausted_retries_leave_create_failed_never_synced(app, make_client, admin_token, db_url, pool):
    ticket_id = await _ticket(app, make_client, admin_token)
    dispatcher = Dispatcher(pool, app.state.settings, app.state.plugins, "respx-test")
    with respx.mock() as mock:
        mock.post(ENDPOINT).mock(side_effect=httpx.ConnectError("refused"))
        outcomes = [await dispatcher.dispatch_once() for _ in range(4)]
    assert [o.retried for o in outcomes] == [1, 1, 0, 0] and outcomes[2].failed == 1
    ticket, row = await _state(db_url, ticket_id)
    assert ticket["provider_sync_status"] == "create_failed" and "refused" in ticket["provider_last_error"]
    assert (row["status"], row["attempts"]) == ("failed", 3)


async def test_a_refusal_that_cannot_change_fails_at_once(app, make_client, admin_token, db_url, pool):
    ticket_id = await _ticket(app, make_client, admin_token)
    dispatcher = Dispatcher(pool, app.state.settings, app.state.plugins, "respx-test")
    with respx.mock() as mock:
        mock.post(ENDPOINT).mock(return_value=httpx.Response(
            200, json={"code": 10, "message": "Error: Unknown version '1.3'"}))
        assert (await dispatcher.dispatch_once()).failed == 1
    ticket, row = await _state(db_url, ticket_id)
    assert ticket["provider_sync_status"] == "create_failed" and "Unknown version" in ticket["provider_last_error"]
    assert (row["status"], row["attempts"]) == ("failed", 1)
