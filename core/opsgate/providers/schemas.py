"""Request and response shapes of the provider endpoints."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from opsgate.tickets.schemas import TicketDetail

Name = Annotated[str, Meta(max_length=64)]


class ProviderInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    ticket_classes: list[str]
    configured: bool
    capabilities: dict[str, bool]


class ProviderList(msgspec.Struct, frozen=True, kw_only=True):
    providers: list[ProviderInfo]


class ProviderChoice(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`{"provider": "itop"}` (omitted: the active provider)."""

    provider: Name | None = None


class SyncTicketRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    ticket_class: Annotated[str, Meta(min_length=1, max_length=64)]
    ticket_ref: Annotated[str, Meta(min_length=1, max_length=200)]


class DispatchSummary(msgspec.Struct, kw_only=True):
    """What one dispatcher pass did."""

    claimed: int = 0
    delivered: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0
    lost: int = 0  # claims that lapsed before the result was recorded


class PullSummary(msgspec.Struct, kw_only=True):
    """What one pull pass (or one record's sync) did."""

    provider: str
    ran: bool = True
    reason: str | None = None  # why nothing ran (not configured, another process is pulling, ...)
    catch_up: bool = False
    pages: int = 0
    records: int = 0
    imported: int = 0
    linked: int = 0  # remote tickets matched to a canonical ticket by the marker of its create
    updated: int = 0
    status_changes: int = 0
    conflicts: int = 0
    notes_added: int = 0
    echoes: int = 0  # case-log entries recognised as notes opsgate pushed itself
    error: str | None = None


class TicketSyncResult(msgspec.Struct, frozen=True, kw_only=True):
    """Answer of the per-ticket sync endpoints."""

    ticket: TicketDetail
    provider: str
    created: bool
    sync: PullSummary
    dispatch: DispatchSummary


class SyncAllResult(msgspec.Struct, frozen=True, kw_only=True):
    provider: str
    sync: PullSummary
    dispatch: DispatchSummary


class PushResult(msgspec.Struct, frozen=True, kw_only=True):
    ticket: TicketDetail
    provider: str
    queued: bool  # a create was queued (or re-queued) by this call
    dispatch: DispatchSummary
    outbox: list[dict[str, Any]]
