"""SQL of steering events (the service holds the rules)."""

from __future__ import annotations

from opsgate.db import sql

_Q = sql.load(__package__)
STEER_FOR_NOTE = _Q["steer_for_note"]
BACKFILL_AGENT = _Q["backfill_agent"]
LIST_FOR_AGENT = _Q["list_for_agent"]
COUNT_PENDING = _Q["count_pending"]
MARK_DELIVERED = _Q["mark_delivered"]
ACK = _Q["ack"]
GET_EVENT = _Q["get_event"]
