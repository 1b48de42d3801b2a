"""What the core's provider sync relies on: same-second changes, ChangePage.more, retry hints, fake state."""

from opsgate.protocols import ProviderTicket

from opsgate_provider_itop.errors import ItopConfigError, ItopLifecycleError, ItopTransportError
from opsgate_provider_itop.fake import FakeItop
from opsgate_provider_itop.provider import ItopProvider


async def test_a_change_within_the_second_it_was_read_is_reported_again(fake, provider):
    record = await provider.create(ProviderTicket(id=1, title="Same second", marker="m-1"))
    first = await provider.list_all_changed_since(None)
    assert [r.provider_ref for r in first.records] == [record.provider_ref]
    # The fake's clock is frozen: the note keeps last_update in the same second.
    await provider.add_note(record.provider_class, record.provider_ref, "later, same second", "user")
    second = await provider.list_all_changed_since(first.cursor)
    assert [r.provider_ref for r in second.records] == [record.provider_ref]
    assert [n.body for n in second.records[0].notes] == ["later, same second"]
    third = await provider.list_all_changed_since(second.cursor)
    assert third.records == []


async def test_pages_say_when_more_are_ready(fake, make_provider):
    provider = make_provider(page_size=1)
    for i in range(3):
        await provider.create(ProviderTicket(id=i + 1, title=f"t{i}", ticket_class="UserRequest"))
    pages = []
    cursor = None
    while True:
        page = await provider.list_changed_since(cursor)
        pages.append(page)
        cursor = page.cursor
        if not page.more:
            break
    assert sum(len(p.records) for p in pages) == 3
    assert all(p.more for p in pages[:-1]) and not pages[-1].more


def test_errors_say_whether_a_retry_can_help():
    assert ItopTransportError("down").retryable is True
    assert ItopConfigError("ITOP_DEFAULT_ORG_ID", "missing").retryable is False
    assert ItopLifecycleError("closed").retryable is False


async def test_fake_state_survives_a_restart(tmp_path):
    path = str(tmp_path / "state.json")
    first = FakeItop(state_path=path)
    provider = ItopProvider(first.settings(), transport=first.transport())
    record = await provider.create(ProviderTicket(id=1, title="Kept", marker="m-kept"))
    await provider.add_note(record.provider_class, record.provider_ref, "kept note", "internal")
    second = FakeItop(state_path=path)
    again = ItopProvider(second.settings(), transport=second.transport())
    fetched = await again.fetch(record.provider_class, record.provider_ref)
    assert fetched is not None and [n.body for n in fetched.notes] == ["kept note"]
    assert second.creates == 1
    other = await again.create(ProviderTicket(id=2, title="Next", marker="m-next"))
    assert int(other.provider_ref) > int(record.provider_ref)
    assert other.payload["ref"] != record.payload["ref"]
