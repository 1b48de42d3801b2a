"""The opaque pull-sync cursor of the iTop provider.

A sweep reads every ticket class page by page with `last_update >= since -
overlap`. The cursor says where the sweep is (`cls` index, `page`), the
watermark it started from (`since`, UTC), the newest `last_update` seen so far
(`high`), and the records already returned at the end of the previous sweep
(`seen`: `Class::id@last_update`, bounded), so records inside the overlap
window are not reported twice unless they changed again. Paging by offset is
safe here: the matched set only grows while we read (last_update only moves
forward), which can repeat a record but never skip one.

Encoded as `itop1.` + base64url(JSON).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

import msgspec

from opsgate_provider_itop.errors import ItopUsageError

PREFIX = "itop1."
SEEN_MAX = 500


class SyncCursor(msgspec.Struct, frozen=True, kw_only=True):
    """Where a changed-since sweep stands."""

    since: datetime | None = None  # watermark (UTC) this sweep reads from; None = everything
    high: datetime | None = None  # newest last_update (UTC) seen in this sweep
    cls: int = 0  # index into the provider's ticket classes
    page: int = 1  # next core/get page of that class
    seen: tuple[str, ...] = ()  # Class::id@last_update already returned near the watermark
    fresh: tuple[str, ...] = ()  # same, collected during this sweep

    @property
    def in_sweep(self) -> bool:
        """True when a sweep is under way (more pages or classes to read)."""
        return self.cls > 0 or self.page > 1


def encode(cursor: SyncCursor) -> str:
    """The opaque string handed to the core."""
    raw = msgspec.json.encode(cursor)
    return PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(text: str | None) -> SyncCursor:
    """Parse a cursor string (None: start from nothing); a foreign or damaged one raises."""
    if not text:
        return SyncCursor()
    if not text.startswith(PREFIX):
        raise ItopUsageError(f"not an iTop sync cursor: {text[:20]!r}", operation="list_changed_since")
    body = text[len(PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return msgspec.json.decode(raw, type=SyncCursor)
    except (binascii.Error, ValueError, msgspec.DecodeError, json.JSONDecodeError) as exc:
        raise ItopUsageError("damaged iTop sync cursor", operation="list_changed_since") from exc
