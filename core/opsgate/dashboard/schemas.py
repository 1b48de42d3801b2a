"""Response shapes of the dashboard endpoints."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import msgspec


class FeedEntry(msgspec.Struct, frozen=True, kw_only=True):
    source: str  # audit | event | note
    id: int
    created_at: datetime
    actor: str | None
    action: str
    category: str
    level: str
    target_type: str | None
    target_id: str | None
    ticket_id: int | None
    agent_id: int | None
    message: str
    details: dict[str, Any]


class AuditFeed(msgspec.Struct, frozen=True, kw_only=True):
    audit: list[FeedEntry]
    count: int


class TicketCounts(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    open: int
    by_status: dict[str, int]
    exact: bool  # False when a status count above the cap is the planner's estimate


class TrendDay(msgspec.Struct, frozen=True, kw_only=True):
    date: date
    created: int
    resolved: int


class DashboardStats(msgspec.Struct, frozen=True, kw_only=True):
    tickets: TicketCounts
    trend: list[TrendDay]
    pending_changes: int
    recent_activity: list[FeedEntry]
