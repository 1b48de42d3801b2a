"""`TicketProviderContract`: the behaviour every ticket provider plugin must show.

Subclass it in your plugin's tests and override the `provider` fixture (and
`capabilities` when your provider lacks an optional behaviour):

    class TestAcmeProvider(TicketProviderContract):
        capabilities = {"remote_records": True, "case_log": True, "close": True, "pull_sync": True}

        @pytest.fixture
        def provider(self, fake_acme):
            return AcmeProvider(fake_acme.settings)
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

import pytest

from opsgate.testing.capabilities import requires
from opsgate.protocols import ChangePage, ProviderRecord, ProviderTicket, TicketProvider

OPSGATE_STATUSES = {"new", "assigned", "in_progress", "awaiting_user_response", "pending_approval",
                    "awaiting_access", "blocked", "resolved", "closed", "cancelled", "rejected"}


class TicketProviderContract:
    """Abstract test class; pytest collects it only through subclasses named `Test*`."""

    capabilities: ClassVar[dict[str, bool]] = {
        "remote_records": True,  # create/fetch/find_by_marker reach a remote system
        "case_log": True,        # add_note appends entries that fetch returns
        "close": True,           # set_status resolves/closes the remote record
        "pull_sync": True,       # list_changed_since reports created records
    }

    @pytest.fixture
    def provider(self) -> TicketProvider:
        raise NotImplementedError("override the `provider` fixture")

    @pytest.fixture
    def ticket(self) -> ProviderTicket:
        marker = f"opsgate-contract-{secrets.token_hex(6)}"
        return ProviderTicket(id=int.from_bytes(secrets.token_bytes(3), "big"), title="Contract: phishing report",
                              description="A user reported a suspicious email.", ticket_class="Incident",
                              priority="P2", requester_email="user@example.test", marker=marker)

    def test_satisfies_the_protocol(self, provider: TicketProvider) -> None:
        assert isinstance(provider, TicketProvider)
        assert isinstance(provider.name, str) and provider.name
        assert provider.ticket_classes and all(isinstance(c, str) for c in provider.ticket_classes)
        assert all(isinstance(k, str) and isinstance(v, bool) for k, v in provider.capabilities.items())
        assert provider.configured() in (True, False)

    async def test_health_is_a_json_report_with_ok(self, provider: TicketProvider) -> None:
        import msgspec

        report = await provider.health()
        assert isinstance(report.get("ok"), bool)
        msgspec.json.encode(report)

    async def test_create_returns_a_record_with_a_ref(self, provider: TicketProvider, ticket: ProviderTicket) -> None:
        record = await provider.create(ticket)
        assert isinstance(record, ProviderRecord)
        assert record.provider_ref and record.provider_class
        url = provider.external_url(record.provider_class, record.provider_ref)
        assert url is None or isinstance(url, str)

    @requires("remote_records")
    async def test_fetch_returns_what_was_created(self, provider: TicketProvider, ticket: ProviderTicket) -> None:
        record = await provider.create(ticket)
        fetched = await provider.fetch(record.provider_class, record.provider_ref)
        assert fetched is not None
        assert fetched.provider_ref == record.provider_ref
        assert ticket.title[:40] in fetched.title
        assert fetched.status is None or fetched.status in OPSGATE_STATUSES

    @requires("remote_records")
    async def test_fetch_of_unknown_ref_is_none(self, provider: TicketProvider) -> None:
        assert await provider.fetch(provider.ticket_classes[0], "987654321") is None

    @requires("remote_records")
    async def test_marker_finds_a_created_ticket(self, provider: TicketProvider, ticket: ProviderTicket) -> None:
        record = await provider.create(ticket)
        found = await provider.find_by_marker(ticket.ticket_class, ticket.marker)
        assert found is not None and found.provider_ref == record.provider_ref
        assert await provider.find_by_marker(ticket.ticket_class, "opsgate-contract-never-written") is None

    @requires("case_log")
    async def test_notes_go_to_the_right_log_and_come_back(self, provider: TicketProvider,
                                                          ticket: ProviderTicket) -> None:
        record = await provider.create(ticket)
        await provider.add_note(record.provider_class, record.provider_ref, "Visible to the requester.", "user")
        await provider.add_note(record.provider_class, record.provider_ref, "Analyst-only detail.", "internal")
        fetched = await provider.fetch(record.provider_class, record.provider_ref)
        assert fetched is not None
        by_body: dict[str, Any] = {n.body.strip(): n for n in fetched.notes}
        assert by_body["Visible to the requester."].visibility == "user"
        assert by_body["Analyst-only detail."].visibility == "internal"
        assert len({n.key for n in fetched.notes}) == len(fetched.notes)

    @requires("close")
    async def test_resolve_then_close(self, provider: TicketProvider, ticket: ProviderTicket) -> None:
        record = await provider.create(ticket)
        resolved = await provider.set_status(record.provider_class, record.provider_ref, "resolved",
                                             "Contained and verified.", close=True)
        assert resolved.status == "resolved"
        closed = await provider.set_status(record.provider_class, record.provider_ref, "closed",
                                           "Requester confirmed.", close=True)
        assert closed.status == "closed"

    @requires("pull_sync")
    async def test_changed_since_reports_new_records(self, provider: TicketProvider, ticket: ProviderTicket) -> None:
        record = await provider.create(ticket)
        refs: set[str] = set()
        cursor: str | None = None
        for _ in range(50):
            page = await provider.list_changed_since(cursor)
            assert isinstance(page, ChangePage)
            refs |= {r.provider_ref for r in page.records}
            cursor = page.cursor
            if not page.more:
                break
        assert record.provider_ref in refs
