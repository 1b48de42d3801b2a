"""Pure conversions between opsgate's ticket vocabulary and iTop's fields.

Statuses, priorities (impact x urgency), titles, the opsgate marker written
into the description, case-log entries as `ProviderNote`s and iTop's naive
server-local dates.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from opsgate.protocols import ProviderNote

from opsgate_provider_itop.markup import html_to_text, text_to_html

TITLE_MAX = 255  # iTop `title` is a 255-character string attribute
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

#: iTop status (standard ITIL model) -> opsgate status. Unknown statuses map to None (kept raw).
STATUS_FROM_ITOP: dict[str, str] = {
    "new": "new",
    "escalated_tto": "new",  # still unassigned, past its time-to-own
    "approved": "new",  # approved, waiting to be assigned
    "assigned": "assigned",
    "escalated_ttr": "in_progress",  # assigned and being worked, past its time-to-resolve
    "pending": "awaiting_user_response",
    "waiting_for_approval": "pending_approval",
    "rejected": "rejected",
    "resolved": "resolved",
    "closed": "closed",
}

#: opsgate priority -> (impact, urgency); iTop computes its priority from the pair (contract 8.1).
PRIORITY_TO_ITOP: dict[str, tuple[str, str]] = {
    "P1": ("1", "1"),  # department, critical -> priority 1
    "P2": ("2", "2"),  # service, high -> priority 2
    "P3": ("2", "3"),  # service, medium -> priority 3
    "P4": ("3", "4"),  # person, low -> priority 4
}

_CLASS_ALIASES = {
    "userrequest": "UserRequest", "user_request": "UserRequest", "request": "UserRequest",
    "service_request": "UserRequest", "incident": "Incident",
}
_MARKER = re.compile(r"\s*(?:<p>)?\[opsgate-marker:[^\]<]*\](?:</p>)?\s*$")
_MARKER_VALUE = re.compile(r"\[opsgate-marker:([^\]<]*)\]")


def itop_class(name: str | None) -> str | None:
    """`UserRequest`/`Incident` for the names opsgate or iTop use, else None."""
    if not name:
        return None
    if name in ("UserRequest", "Incident"):
        return name
    return _CLASS_ALIASES.get(name.strip().lower().replace("-", "_").replace(" ", "_"))


def status_from_itop(status: str | None) -> str | None:
    """The opsgate status for an iTop status, or None for one the standard model does not have."""
    return STATUS_FROM_ITOP.get(status or "")


def priority_to_itop(priority: str | None) -> tuple[str, str]:
    """(impact, urgency) for an opsgate priority; unknown values are treated as P3."""
    return PRIORITY_TO_ITOP.get((priority or "P3").upper(), PRIORITY_TO_ITOP["P3"])


def priority_from_itop(priority: Any) -> str | None:
    """P1..P4 for iTop's computed priority 1..4, else None."""
    text = str(priority or "")
    return f"P{text}" if text in ("1", "2", "3", "4") else None


def trim_title(title: str) -> str:
    """One line, at most `TITLE_MAX` characters (an ellipsis marks a cut)."""
    text = " ".join(title.split())
    return text if len(text) <= TITLE_MAX else text[: TITLE_MAX - 1].rstrip() + "…"


def marker_token(marker: str) -> str:
    """The text written into the description so the ticket can be found again."""
    return f"[opsgate-marker:{marker}]"


def description_html(description: str, marker: str) -> str:
    """The iTop description: the text as HTML, plus the marker paragraph."""
    body = text_to_html(description) if description.strip() else ""
    if marker:
        body += f"<p>{html.escape(marker_token(marker), quote=False)}</p>"
    return body or "<p>-</p>"


def marker_in(description: str) -> str | None:
    """The opsgate marker found in an iTop description, or None."""
    found = _MARKER_VALUE.search(html.unescape(description or ""))
    return found.group(1) if found else None


def description_text(description: str) -> str:
    """The description as plain text, without the marker paragraph."""
    return html_to_text(_MARKER.sub("", description or ""))


def parse_date(value: Any, zone: ZoneInfo) -> datetime | None:
    """An iTop date ("YYYY-MM-DD HH:MM:SS", server-local) as an aware UTC datetime; "" -> None.

    An ambiguous local time (the repeated hour of a DST change) is read as its
    earlier instant, which keeps sync watermarks conservative.
    """
    if not value:
        return None
    try:
        naive = datetime.strptime(str(value), DATE_FORMAT)
    except ValueError:
        return None
    return naive.replace(tzinfo=zone, fold=0).astimezone(UTC)


def format_date(when: datetime, zone: ZoneInfo) -> str:
    """An aware datetime as iTop's server-local string (for OQL)."""
    return when.astimezone(zone).strftime(DATE_FORMAT)


def notes_from(fields: Mapping[str, Any], zone: ZoneInfo) -> list[ProviderNote]:
    """Both case logs as notes, oldest first, each with a stable de-duplication key.

    iTop has no entry id, so the key is `<log>:<digest of date, author id and
    text>:<n>`, where n counts earlier entries of the same log with the same
    digest: stable as the log grows, distinct for repeated identical entries.
    """
    notes: list[tuple[datetime | None, int, ProviderNote]] = []
    for order, (log_code, visibility) in enumerate((("public_log", "user"), ("private_log", "internal"))):
        log_value = fields.get(log_code)
        entries = log_value.get("entries") if isinstance(log_value, dict) else None
        seen: Counter[str] = Counter()
        for entry in entries or []:
            if not isinstance(entry, dict):
                continue
            raw_html = str(entry.get("message_html") or "")
            body = html_to_text(raw_html) if raw_html else str(entry.get("message") or "").strip()
            basis = "\x00".join((str(entry.get("date", "")), str(entry.get("user_id", "")),
                                 str(entry.get("message") or raw_html)))
            digest = hashlib.sha256(basis.encode("utf-8")).hexdigest()[:20]
            n = seen[digest]
            seen[digest] += 1
            created = parse_date(entry.get("date"), zone)
            note = ProviderNote(key=f"{log_code}:{digest}:{n}", body=body,
                                author=str(entry.get("user_login") or "") or None,
                                visibility=visibility, created_at=created)
            notes.append((created, order, note))
    notes.sort(key=lambda item: (item[0] or datetime.min.replace(tzinfo=UTC), item[1]))
    return [note for _, _, note in notes]
