"""ItopProvider against the fake iTop."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from opsgate.errors import ProviderError
from opsgate.protocols import ProviderTicket, TicketProvider

from opsgate_provider_itop.errors import (
    ItopConfigError,
    ItopInvalidStimulus,
    ItopLifecycleError,
    ItopLoginError,
    ItopMissingAttributes,
    ItopTransportError,
    ItopUsageError,
)
from opsgate_provider_itop.fake import FakeItop


def ticket(n: int = 1, **kw) -> ProviderTicket:
    values = {"id": n, "title": f"VPN drops {n}", "description": "Client disconnects\nevery 10 minutes",
              "ticket_class": "UserRequest", "priority": "P2", "marker": f"opsgate-ticket-{n}"}
    values.update(kw)
    return ProviderTicket(**values)


def stimuli(fake: FakeItop) -> list[str]:
    return [r.data["stimulus"] for r in fake.requests if r.operation == "core/apply_stimulus"]


def test_satisfies_the_protocol(provider):
    assert isinstance(provider, TicketProvider)
    assert provider.configured() is True


@pytest.mark.parametrize("cls,prefix", [("UserRequest", "R-"), ("Incident", "I-")])
async def test_create_both_classes(provider, fake, cls, prefix):
    record = await provider.create(ticket(7, ticket_class=cls, priority="P1"))
    assert record.provider_class == cls and record.provider_ref == "1"
    assert record.payload["ref"].startswith(prefix)
    assert record.title == "VPN drops 7"
    assert record.description == "Client disconnects\nevery 10 minutes"  # marker stripped
    assert record.status == "new" and record.remote_status == "new" and record.priority == "P1"
    assert record.payload["marker"] == "opsgate-ticket-7"
    assert record.updated_at == datetime(2024, 5, 2, 8, 0, tzinfo=UTC)  # Paris summer time -> UTC
    assert record.url == f"http://itop.test/pages/UI.php?operation=details&class={cls}&id=1"
    stored = fake.get_object(cls, 1)
    assert (stored["org_id"], stored["caller_id"], stored["service_id"]) == (1, 1, 1)
    assert (stored["impact"], stored["urgency"], stored["priority"]) == ("1", "1", "1")
    assert "[opsgate-marker:opsgate-ticket-7]" in stored["description"]
    assert "status" not in fake.requests[-1].data["fields"]  # never written directly
    assert fake.requests[-1].data["comment"] == "opsgate: create ticket 7"


@pytest.mark.parametrize("priority,impact,urgency,itop_priority", [
    ("P1", "1", "1", "1"), ("P2", "2", "2", "2"), ("P3", "2", "3", "3"), ("P4", "3", "4", "4")])
async def test_priority_maps_to_impact_and_urgency(provider, fake, priority, impact, urgency, itop_priority):
    record = await provider.create(ticket(priority=priority))
    stored = fake.get_object("UserRequest", int(record.provider_ref))
    assert (stored["impact"], stored["urgency"], stored["priority"]) == (impact, urgency, itop_priority)
    assert record.priority == priority


async def test_create_accepts_provider_class_and_aliases(provider):
    assert (await provider.create(ticket(ticket_class="incident"))).provider_class == "Incident"
    assert (await provider.create(ticket(provider_class="UserRequest", ticket_class="Incident"))).provider_class \
        == "UserRequest"
    with pytest.raises(ItopUsageError):
        await provider.create(ticket(ticket_class="Change"))


async def test_long_title_is_trimmed_to_255(provider, fake):
    record = await provider.create(ticket(title="x" * 300 + "\nsecond line"))
    assert len(record.title) == 255 and record.title.endswith("…")
    assert fake.get_object("UserRequest", 1)["title"] == record.title


@pytest.mark.parametrize("missing,variable", [("default_org_id", "ITOP_DEFAULT_ORG_ID"),
                                              ("default_caller_id", "ITOP_DEFAULT_CALLER_ID")])
async def test_create_without_org_or_caller_names_the_variable(make_provider, fake, missing, variable):
    provider = make_provider(**{missing: None})
    with pytest.raises(ItopConfigError) as err:
        await provider.create(ticket())
    assert err.value.variable == variable and variable in str(err.value)
    assert isinstance(err.value, ProviderError)
    assert fake.requests == [] and fake.creates == 0


async def test_unconfigured_provider_refuses_every_call(make_provider, fake):
    provider = make_provider(url="", password="")
    assert provider.configured() is False
    with pytest.raises(ItopConfigError) as err:
        await provider.fetch("UserRequest", "1")
    assert err.value.variable == "ITOP_URL"
    health = await provider.health()
    assert health["ok"] is False and health["configured"] is False
    assert health["missing"] == ["ITOP_URL", "ITOP_PASSWORD"]
    assert fake.requests == []


async def test_lost_create_reply_is_recovered_by_marker(provider, fake):
    fake.drop_next_reply("core/create")
    record = await provider.create(ticket(3))
    assert fake.creates == 1  # committed once, not created again
    assert record.provider_ref == "1" and record.payload["marker"] == "opsgate-ticket-3"


async def test_find_by_marker_after_lost_reply_and_failed_lookup(provider, fake):
    await provider.create(ticket(1))
    fake.drop_next_reply("core/create")
    fake.fail_next_http(502, "Bad gateway", operation="core/get")  # the immediate lookup fails too
    with pytest.raises(ItopTransportError):
        await provider.create(ticket(2, ticket_class="UserRequest"))
    assert fake.creates == 2
    found = await provider.find_by_marker("UserRequest", "opsgate-ticket-2")
    assert found is not None and found.provider_ref == "2" and found.title == "VPN drops 2"
    assert await provider.find_by_marker("UserRequest", "opsgate-ticket-9") is None
    assert await provider.find_by_marker("Incident", "opsgate-ticket-2") is None
    # a marker that is a prefix of another does not match it
    assert (await provider.find_by_marker("UserRequest", "opsgate-ticket-1")).provider_ref == "1"
    assert await provider.find_by_marker("UserRequest", "opsgate-ticket") is None
    assert await provider.find_by_marker("UserRequest", "") is None


async def test_find_by_marker_with_unknown_class_searches_both(provider):
    await provider.create(ticket(4, ticket_class="Incident"))
    found = await provider.find_by_marker("ticket", "opsgate-ticket-4")
    assert found is not None and found.provider_class == "Incident"


async def test_find_by_marker_prefers_the_oldest_duplicate(provider):
    await provider.create(ticket(5))
    await provider.create(ticket(5))
    assert (await provider.find_by_marker("UserRequest", "opsgate-ticket-5")).provider_ref == "1"


async def test_notes_go_to_the_right_log_and_come_back(provider, fake):
    record = await provider.create(ticket())
    await provider.add_note("UserRequest", record.provider_ref, "We are on it.\nETA 1h", "user")
    fake.advance(60)
    await provider.add_note("UserRequest", record.provider_ref, "Root cause: <DNS>", "internal")
    fake.advance(60)
    await provider.add_note("UserRequest", record.provider_ref, "We are on it.\nETA 1h", "public")
    stored = fake.get_object("UserRequest", 1)
    assert [e["message"] for e in stored["public_log"]] == ["We are on it.\nETA 1h"] * 2
    assert [e["message"] for e in stored["private_log"]] == ["Root cause: <DNS>"]
    assert fake.requests[-1].data["fields"] == {
        "public_log": {"add_item": {"message": "We are on it.\nETA 1h", "format": "text"}}}
    fetched = await provider.fetch("UserRequest", record.provider_ref)
    assert [(n.visibility, n.body) for n in fetched.notes] == [
        ("user", "We are on it.\nETA 1h"), ("internal", "Root cause: <DNS>"), ("user", "We are on it.\nETA 1h")]
    assert all(n.author == "AgentOps Bot" for n in fetched.notes)
    assert fetched.notes[0].created_at == datetime(2024, 5, 2, 8, 0, tzinfo=UTC)
    keys = [n.key for n in fetched.notes]
    assert len(set(keys)) == 3
    again = await provider.fetch("UserRequest", record.provider_ref)
    assert [n.key for n in again.notes] == keys  # stable across reads


async def test_note_keys_are_stable_when_the_log_grows(provider, fake):
    record = await provider.create(ticket())
    await provider.add_note("UserRequest", record.provider_ref, "same", "user")
    first = (await provider.fetch("UserRequest", record.provider_ref)).notes
    await provider.add_note("UserRequest", record.provider_ref, "same", "user")  # same second, same text
    second = (await provider.fetch("UserRequest", record.provider_ref)).notes
    assert second[0].key == first[0].key and second[1].key != first[0].key


async def test_html_entries_are_stripped(provider, fake):
    record = await provider.create(ticket())
    client = provider.client
    await client.update("UserRequest", int(record.provider_ref),
                        {"public_log": {"add_item": {"message": "<p>Hello <b>there</b> &amp; bye</p>"}}}, "c")
    (note,) = (await provider.fetch("UserRequest", record.provider_ref)).notes
    assert note.body == "Hello there & bye"


async def test_add_note_refuses_unknown_visibility_and_empty_body(provider, fake):
    record = await provider.create(ticket())
    with pytest.raises(ItopUsageError):
        await provider.add_note("UserRequest", record.provider_ref, "x", "everyone")
    with pytest.raises(ItopUsageError):
        await provider.add_note("UserRequest", record.provider_ref, "  ", "user")
    assert fake.get_object("UserRequest", 1)["public_log"] == []


async def test_fetch_missing_ticket_is_none_and_ref_works(provider):
    assert await provider.fetch("UserRequest", "42") is None
    record = await provider.create(ticket())
    by_ref = await provider.fetch("UserRequest", record.payload["ref"])
    assert by_ref is not None and by_ref.provider_ref == record.provider_ref


async def test_resolve_assigns_first_then_resolves(provider, fake):
    record = await provider.create(ticket())
    result = await provider.set_status("UserRequest", record.provider_ref, "resolved", "Upgraded the client",
                                       close=False)
    assert stimuli(fake) == ["ev_assign", "ev_resolve"]
    assign, resolve = [r.data for r in fake.requests if r.operation == "core/apply_stimulus"]
    assert assign["fields"] == {"team_id": "1", "agent_id": "3"}
    assert resolve["fields"] == {"solution": "Upgraded the client", "resolution_code": "assistance",
                                 "service_id": "1"}
    assert resolve["comment"] == "opsgate: set status resolved: Upgraded the client"
    assert result.status == "resolved" and result.remote_status == "resolved"
    stored = fake.get_object("UserRequest", 1)
    assert stored["solution"] == "<p>Upgraded the client</p>" and stored["resolution_date"]


async def test_close_resolves_then_closes(provider, fake):
    record = await provider.create(ticket(ticket_class="Incident"))
    result = await provider.set_status("Incident", record.provider_ref, "closed", "done", close=False)
    assert stimuli(fake) == ["ev_assign", "ev_resolve", "ev_close"]
    assert result.status == "closed" and result.payload["close_date"]
    again = await provider.set_status("Incident", record.provider_ref, "closed", "done", close=True)
    assert again.status == "closed" and stimuli(fake) == ["ev_assign", "ev_resolve", "ev_close"]


async def test_resolved_leaves_the_itop_ticket_resolved_not_closed(provider, fake):
    record = await provider.create(ticket())
    result = await provider.set_status("UserRequest", record.provider_ref, "resolved", "ok", close=True)
    assert result.status == "resolved" and result.remote_status == "resolved"


async def test_resolve_from_pending_goes_back_to_assigned_first(provider, fake):
    record = await provider.create(ticket())
    waiting = await provider.set_status("UserRequest", record.provider_ref, "awaiting_user_response",
                                        "Which VPN client version?", close=False)
    assert waiting.status == "awaiting_user_response" and waiting.remote_status == "pending"
    assert fake.get_object("UserRequest", 1)["pending_reason"] == "<p>Which VPN client version?</p>"
    # the fake refuses ev_resolve from pending exactly as iTop does
    with pytest.raises(ItopInvalidStimulus) as err:
        await provider.client.apply_stimulus("UserRequest", 1, "ev_resolve", {"solution": "x"}, "c")
    assert "in state 'pending'" in err.value.message
    resolved = await provider.set_status("UserRequest", record.provider_ref, "resolved", "fixed", close=False)
    assert stimuli(fake)[-3:] == ["ev_resolve", "ev_assign", "ev_resolve"]
    assert resolved.status == "resolved"


async def test_resolve_without_team_or_agent_uses_autoresolve(make_provider, fake):
    provider = make_provider(default_team_id=None, default_agent_id=None)
    record = await provider.create(ticket())
    result = await provider.set_status("UserRequest", record.provider_ref, "resolved", "", close=False)
    assert stimuli(fake) == ["ev_autoresolve"]
    assert result.status == "resolved"
    assert fake.get_object("UserRequest", 1)["solution"] == "<p>Resolved by opsgate.</p>"


async def test_assign_without_team_names_the_variable(make_provider, fake):
    provider = make_provider(default_team_id=None)
    record = await provider.create(ticket())
    with pytest.raises(ItopConfigError) as err:
        await provider.set_status("UserRequest", record.provider_ref, "in_progress", "", close=False)
    assert err.value.variable == "ITOP_DEFAULT_TEAM_ID"


async def test_strict_server_reports_missing_service(fake):
    strict = FakeItop(strict_mandatory=True)
    from opsgate_provider_itop.provider import ItopProvider

    provider = ItopProvider(strict.settings(default_service_id=None), transport=strict.transport())
    record = await provider.create(ticket())
    with pytest.raises(ItopMissingAttributes) as err:
        await provider.set_status("UserRequest", record.provider_ref, "resolved", "done", close=False)
    assert err.value.attributes == ["service_id"]
    assert strict.get_object("UserRequest", 1)["status"] == "assigned"  # the assign step was kept
    await provider.aclose()


async def test_closed_ticket_cannot_reopen(provider, fake):
    record = await provider.create(ticket())
    await provider.set_status("UserRequest", record.provider_ref, "closed", "done", close=True)
    with pytest.raises(ItopLifecycleError):
        await provider.set_status("UserRequest", record.provider_ref, "in_progress", "again", close=False)


async def test_reopen_from_resolved(provider, fake):
    record = await provider.create(ticket())
    await provider.set_status("UserRequest", record.provider_ref, "resolved", "done", close=False)
    result = await provider.set_status("UserRequest", record.provider_ref, "in_progress", "not fixed", close=False)
    assert stimuli(fake)[-1] == "ev_reopen" and result.status == "assigned"


async def test_approval_states(provider, fake):
    record = await provider.create(ticket())
    waiting = await provider.set_status("UserRequest", record.provider_ref, "pending_approval", "", close=False)
    assert waiting.status == "pending_approval" and waiting.remote_status == "waiting_for_approval"
    with pytest.raises(ItopLifecycleError):  # opsgate never approves on someone's behalf
        await provider.set_status("UserRequest", record.provider_ref, "resolved", "", close=False)
    rejected = await provider.set_status("UserRequest", record.provider_ref, "rejected", "out of scope", close=False)
    assert rejected.status == "rejected" and stimuli(fake)[-1] == "ev_reject"
    renewed = await provider.set_status("UserRequest", record.provider_ref, "new", "", close=False)
    assert renewed.status == "new" and stimuli(fake)[-1] == "ev_reopen"


async def test_incident_has_no_approval(provider):
    record = await provider.create(ticket(ticket_class="Incident"))
    with pytest.raises(ItopLifecycleError):
        await provider.set_status("Incident", record.provider_ref, "pending_approval", "", close=False)


async def test_cancelled_resolves_with_code_other(provider, fake):
    record = await provider.create(ticket())
    result = await provider.set_status("UserRequest", record.provider_ref, "cancelled", "duplicate", close=True)
    assert result.status == "closed"
    assert fake.get_object("UserRequest", 1)["resolution_code"] == "other"


async def test_set_status_unknown_status_and_missing_ticket(provider):
    record = await provider.create(ticket())
    with pytest.raises(ItopUsageError):
        await provider.set_status("UserRequest", record.provider_ref, "frozen", "", close=False)
    with pytest.raises(ProviderError):
        await provider.set_status("UserRequest", "999", "resolved", "", close=False)


async def test_unknown_remote_status_is_kept_raw(provider, fake):
    record = await provider.create(ticket())
    # REST lets a customised model (or anyone) write status directly
    await provider.client.update("UserRequest", int(record.provider_ref), {"status": "escalated_ttr"}, "c")
    fetched = await provider.fetch("UserRequest", record.provider_ref)
    assert fetched.status == "in_progress" and fetched.remote_status == "escalated_ttr"
    fake.db[("Ticket", 1)][1]["status"] = "quarantined"
    odd = await provider.fetch("UserRequest", record.provider_ref)
    assert odd.status is None and odd.remote_status == "quarantined"


async def test_external_url(provider, make_provider):
    assert provider.external_url("Incident", "12") == "http://itop.test/pages/UI.php?operation=details&class=Incident&id=12"
    assert provider.external_url("Incident", "I-000012") is None
    nested = make_provider(url="https://itop.example/itop")
    assert nested.external_url("UserRequest", "5") == \
        "https://itop.example/itop/pages/UI.php?operation=details&class=UserRequest&id=5"
    assert make_provider(url="").external_url("UserRequest", "5") is None


async def test_external_url_opens_the_object_in_the_fake(provider, fake):
    import httpx

    record = await provider.create(ticket(title="Printer jam"))
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        page = await http.get(record.url)
        missing = await http.get(provider.external_url("UserRequest", "99"))
    assert page.status_code == 200 and "Printer jam" in page.text
    assert missing.status_code == 404


async def test_health(provider, make_provider):
    report = await provider.health()
    assert report["ok"] is True and report["operations"] == 7 and report["can_create"] is True
    bad = await make_provider(password="wrong-password").health()
    assert bad["ok"] is False and bad["code"] == 1 and bad["kind"] == "ItopLoginError"
    assert "wrong-password" not in repr(bad) and "opsgate-secret" not in repr(report)


async def test_login_failure_surfaces_as_provider_error(make_provider):
    provider = make_provider(password="nope")
    with pytest.raises(ItopLoginError) as err:
        await provider.create(ticket())
    assert isinstance(err.value, ProviderError) and err.value.provider == "itop"


# --- changed-since ----------------------------------------------------------


async def test_changed_since_pages_through_both_classes(make_provider, fake):
    provider = make_provider(page_size=2)
    for n in range(3):
        await provider.create(ticket(n, ticket_class="UserRequest"))
    for n in range(3, 5):
        await provider.create(ticket(n, ticket_class="Incident"))
    seen: list[tuple[str, str]] = []
    cursor = None
    pages = 0
    while True:
        page = await provider.list_changed_since(cursor)
        pages += 1
        seen += [(r.provider_class, r.provider_ref) for r in page.records]
        cursor = page.cursor
        if not provider.sweep_in_progress(cursor):
            break
    assert sorted(seen) == [("Incident", "4"), ("Incident", "5"), ("UserRequest", "1"), ("UserRequest", "2"),
                            ("UserRequest", "3")]
    assert pages == 3
    limits = [(r.data["limit"], r.data["page"]) for r in fake.requests if r.operation == "core/get"]
    assert limits == [(2, 1), (2, 2), (2, 1)]
    # nothing changed: the next sweep reports nothing although the overlap window re-reads the same rows
    quiet = await provider.list_changed_since(cursor)
    assert quiet.records == [] and not provider.sweep_in_progress(quiet.cursor)
    assert "last_update >= '2024-05-02 09:58:00'" in fake.requests[-1].data["key"]  # 120 s overlap


async def test_changed_since_reports_later_changes_once(provider, fake):
    first = await provider.create(ticket(1))
    await provider.create(ticket(2))
    page = await provider.list_all_changed_since(None)
    assert len(page.records) == 2
    fake.advance(600)
    await provider.add_note("UserRequest", first.provider_ref, "update", "user")
    changed = await provider.list_all_changed_since(page.cursor)
    assert [(r.provider_ref, [n.body for n in r.notes]) for r in changed.records] == [("1", ["update"])]
    assert "last_update >= '2024-05-02 09:58:00'" in [
        r.data["key"] for r in fake.requests if r.operation == "core/get"][-1]
    fake.advance(600)
    again = await provider.list_all_changed_since(changed.cursor)
    assert again.records == []
    assert "last_update >= '2024-05-02 10:08:00'" in fake.requests[-1].data["key"]


async def test_changed_since_on_empty_itop(provider):
    page = await provider.list_changed_since(None)
    assert page.records == [] and page.cursor is not None
    assert (await provider.list_changed_since(page.cursor)).records == []


async def test_foreign_cursor_is_refused(provider):
    with pytest.raises(ItopUsageError):
        await provider.list_changed_since("local:42")
    with pytest.raises(ItopUsageError):
        await provider.list_changed_since("itop1.!!!")
