"""Local provider behaviour, its hook, and the core using it for local-only tickets."""

import asyncpg
import pytest

import opsgate_provider_local
from opsgate import plugins
from opsgate.protocols import ProviderTicket, TicketProvider
from opsgate_provider_local import LocalProvider, ref_for
from opsgate_provider_local.provider import is_local_ref


def test_ref_is_stable_and_checked():
    assert ref_for(42) == "LOCAL-42" == ref_for(42)
    assert is_local_ref("LOCAL-42") and not is_local_ref("LOCAL-0") and not is_local_ref("R-42")
    with pytest.raises(ValueError):
        ref_for(0)


async def test_create_hands_out_the_core_reference():
    p = LocalProvider()
    record = await p.create(ProviderTicket(id=7, title="t", ticket_class="UserRequest", marker="m-1"))
    assert (record.provider_ref, record.provider_class, record.status) == ("LOCAL-7", "UserRequest", "new")
    assert record.payload == {"marker": "m-1"}
    again = await p.create(ProviderTicket(id=7, title="t", provider_ref="LOCAL-7"))
    assert again.provider_ref == "LOCAL-7"


async def test_everything_else_is_a_no_op_that_succeeds():
    p = LocalProvider()
    assert p.configured() is True and p.external_url("Incident", "LOCAL-1") is None
    fetched = await p.fetch("Incident", "LOCAL-3")
    assert fetched is not None and fetched.status is None and fetched.notes == ()
    assert await p.fetch("Incident", "INC-3") is None
    assert await p.find_by_marker("Incident", "m") is None
    page = await p.list_changed_since("c-1")
    assert page.records == () and page.cursor == "c-1" and page.more is False
    assert await p.add_note("Incident", "LOCAL-3", "b", "user") is None
    closed = await p.set_status("Incident", "LOCAL-3", "closed", "done", close=False)
    assert closed.status == "closed" and closed.payload == {"close": False}
    assert (await p.health())["ok"] is True


def test_hook_registers_the_provider(test_settings):
    host = plugins.load(test_settings(), extra=[("local", opsgate_provider_local)], discover=False)
    provider = host.ticket_providers()["local"]
    assert isinstance(provider, TicketProvider) and provider.name == "local"
    [info] = host.list()
    assert (info.name, info.kinds, info.enabled) == ("local", ["provider"], True)


async def test_core_creates_local_only_tickets_with_the_plugin_loaded(make_app, make_client, admin_token, db_url):
    app = make_app(plugins=[("local", opsgate_provider_local)])
    async with make_client(app, token=admin_token) as c:
        r = await c.post("/api/tickets", json={"title": "Lives only here", "provider": "local"})
        assert r.status_code == 201, r.text
        t = r.json()
        assert (t["provider"], t["provider_sync_status"], t["provider_ref"]) == (
            "local", "local_only", ref_for(t["id"]))
        assert t["external_url"] is None
        listed = (await c.get("/api/tickets?provider=local")).json()
        assert [x["id"] for x in listed["tickets"]] == [t["id"]]
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow("SELECT provider, provider_ref, provider_sync_status FROM tickets WHERE id = $1",
                                  t["id"])
    finally:
        await conn.close()
    assert tuple(row) == ("local", f"LOCAL-{t['id']}", "local_only")
