"""`LocalProvider`: the ticket provider for tickets that live only in opsgate.

The canonical record in PostgreSQL is the only record, so every operation
succeeds without I/O and reports "nothing changed remotely". The core gives a
ticket created without an active external provider `provider="local"`,
`provider_sync_status="local_only"` and `provider_ref = "LOCAL-<id>"`; this
provider hands out the same reference.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opsgate.protocols import ChangePage, ProviderRecord, ProviderTicket

NAME = "local"
REF_PREFIX = "LOCAL-"
_REF = re.compile(r"^LOCAL-[1-9][0-9]{0,18}$")
TICKET_CLASSES = ("Incident", "UserRequest", "RoutineChange", "NormalChange", "EmergencyChange")


def ref_for(ticket_id: int) -> str:
    """The stable provider reference of a local ticket."""
    if ticket_id < 1:
        raise ValueError("ticket ids start at 1")
    return f"{REF_PREFIX}{ticket_id}"


def is_local_ref(provider_ref: str) -> bool:
    return bool(_REF.match(provider_ref))


class LocalProvider:
    """Satisfies `opsgate.protocols.TicketProvider` with no remote system behind it."""

    name = NAME
    ticket_classes = TICKET_CLASSES
    # Names as in opsgate.testing.TicketProviderContract.
    capabilities: Mapping[str, bool] = {
        "remote_records": False,  # no remote system: fetch/find_by_marker have nothing to find
        "case_log": False,        # notes live only in ticket_notes
        "close": True,            # set_status accepts every opsgate status
        "pull_sync": False,       # nothing changes remotely
        "attachments": False,
        "external_url": False,    # no system to link to
    }

    def configured(self) -> bool:
        return True

    def external_url(self, provider_class: str, provider_ref: str) -> str | None:
        return None

    async def create(self, ticket: ProviderTicket) -> ProviderRecord:
        ref = ticket.provider_ref if ticket.provider_ref and is_local_ref(ticket.provider_ref) else ref_for(ticket.id)
        return ProviderRecord(provider_class=ticket.provider_class or ticket.ticket_class, provider_ref=ref,
                              title=ticket.title, description=ticket.description, status=ticket.status,
                              remote_status=ticket.status, priority=ticket.priority,
                              payload={"marker": ticket.marker} if ticket.marker else {})

    async def find_by_marker(self, ticket_class: str, marker: str) -> ProviderRecord | None:
        # A local create cannot lose its reply, so there is never an orphan to find.
        return None

    async def fetch(self, provider_class: str, provider_ref: str) -> ProviderRecord | None:
        if not is_local_ref(provider_ref):
            return None
        # status None: the canonical record is the truth; nothing to pull.
        return ProviderRecord(provider_class=provider_class, provider_ref=provider_ref)

    async def list_changed_since(self, cursor: str | None) -> ChangePage:
        return ChangePage(records=(), cursor=cursor)

    async def add_note(self, provider_class: str, provider_ref: str, body: str, visibility: str) -> None:
        return None

    async def set_status(self, provider_class: str, provider_ref: str, status: str, reason: str, *,
                         close: bool) -> ProviderRecord:
        return ProviderRecord(provider_class=provider_class, provider_ref=provider_ref, status=status,
                              remote_status=status, payload={"close": close})

    async def health(self) -> Mapping[str, Any]:
        return {"ok": True, "provider": NAME, "configured": True, "remote": None}
