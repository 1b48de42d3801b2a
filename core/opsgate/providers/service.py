"""The rules of the provider endpoints: listing, manual sync and push.

Outbound delivery and inbound folding live in `outbox` and `inbound`; these
functions check the request, call them for one ticket or one provider, and
answer with the ticket as it is afterwards.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import msgspec
from asyncpg import Connection

from opsgate.audit.repo import record as audit
from opsgate.auth.principal import Principal
from opsgate.errors import Conflict, Invalid, NotFound
from opsgate.events.repo import emit
from opsgate.plugins import PluginHost
from opsgate.providers import inbound, registry, repo
from opsgate.providers.loops import owner_id
from opsgate.providers.outbox import Dispatcher
from opsgate.providers.schemas import (
    DispatchSummary,
    ProviderList,
    PullSummary,
    PushResult,
    SyncAllResult,
    SyncTicketRequest,
    TicketSyncResult,
)
from opsgate.settings import Settings
from opsgate.tickets import service as tickets

log = logging.getLogger(__name__)

_BODY_HELP = 'omit the body, send a provider name (e.g. "itop") or {"provider": "itop"}'


def list_providers(host: PluginHost) -> ProviderList:
    return ProviderList(providers=registry.describe(host))


def provider_from_body(raw: bytes) -> str | None:
    """The provider named by a sync-all body: omitted, a raw name (JSON string or text), or `{"provider": ...}`."""
    text = raw.decode("utf-8", errors="replace").strip() if raw else ""
    if not text:
        return None
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return registry.normalise_name(text, "provider")
    if value is None:
        return None
    if isinstance(value, str):
        return registry.normalise_name(value, "provider")
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"provider"})
        if unknown:
            raise Invalid(unknown[0], f"unknown field; {_BODY_HELP}")
        if value.get("provider") is None:
            return None
        return registry.normalise_name(value["provider"], "provider")
    raise Invalid("body", _BODY_HELP)


def _dispatcher(pool: asyncpg.Pool, settings: Settings, host: PluginHost, running: Any) -> Dispatcher:
    if running is not None:
        return running.dispatcher
    return Dispatcher(pool, settings, host, owner_id("api"))


async def _detail(conn: Connection, principal: Principal, host: PluginHost, ticket_id: int):
    return tickets.to_detail(host, await tickets.visible_ticket(conn, principal, ticket_id))


# --- per ticket -------------------------------------------------------------------------


async def sync_ticket(pool: asyncpg.Pool, conn: Connection, principal: Principal, settings: Settings,
                      host: PluginHost, ticket_id: int, running: Any = None) -> TicketSyncResult:
    """Send the ticket's queued changes, then pull its remote record into the canonical one."""
    row = await tickets.visible_ticket(conn, principal, ticket_id)
    name = row["provider"]
    if name == registry.LOCAL:
        raise Conflict(f"ticket {ticket_id} is local only (provider local); push it to a provider first")
    provider = registry.providers(host).get(name)
    if provider is None:
        raise Conflict(f"ticket {ticket_id} belongs to provider {name!r}, which is not installed or not enabled")
    dispatch = await _dispatcher(pool, settings, host, running).drain_ticket(ticket_id)
    row = await tickets.visible_ticket(conn, principal, ticket_id)
    if not row["provider_ref"]:
        detail = f": {row['provider_last_error']}" if row["provider_last_error"] else ""
        raise Conflict(f"ticket {ticket_id} has no {name} record yet (provider_sync_status "
                       f"{row['provider_sync_status']}{detail})")
    found, _, summary = await inbound.sync_record(pool, settings, name, provider, row["provider_class"],
                                                  row["provider_ref"])
    if found is None:
        raise NotFound(f"{name} {row['provider_class']} {row['provider_ref']} (of ticket {ticket_id}) "
                       "does not exist any more")
    return TicketSyncResult(ticket=await _detail(conn, principal, host, ticket_id), provider=name, created=False,
                            sync=summary, dispatch=dispatch)


async def push_ticket(pool: asyncpg.Pool, conn: Connection, principal: Principal, settings: Settings,
                      host: PluginHost, ticket_id: int, requested: str | None, running: Any = None) -> PushResult:
    """Push an existing canonical ticket to a provider (create it there), or retry a create that failed."""
    row = await tickets.visible_ticket(conn, principal, ticket_id)
    name = requested or (row["provider"] if row["provider"] != registry.LOCAL else settings.ticket_provider)
    name = registry.normalise_name(name or "", "provider")
    if name == registry.LOCAL:
        raise Invalid("provider", "name the external provider to push to (e.g. itop); local tickets stay here")
    registry.require(host, name, field="provider")
    queued = False
    if row["provider"] == registry.LOCAL:
        async with conn.transaction():
            moved = await repo.retarget(conn, ticket_id, name)
            if moved is None:
                raise Conflict(f"ticket {ticket_id} changed concurrently; reload and retry")
            await _record_push(conn, principal, ticket_id, name, "local")
        queued = True
    elif row["provider"] != name:
        raise Conflict(f"ticket {ticket_id} already belongs to provider {row['provider']!r}, not {name!r}")
    elif not row["provider_ref"]:
        async with conn.transaction():
            requeued = await repo.requeue_create(conn, ticket_id, name)
            await repo.mark_pending_create(conn, ticket_id, name)
            if requeued:
                await _record_push(conn, principal, ticket_id, name, row["provider_sync_status"])
        queued = bool(requeued)
    dispatch = await _dispatcher(pool, settings, host, running).drain_ticket(ticket_id)
    outbox = [_outbox_view(o) for o in await repo.outbox_for_ticket(conn, ticket_id)]
    return PushResult(ticket=await _detail(conn, principal, host, ticket_id), provider=name, queued=queued,
                      dispatch=dispatch, outbox=outbox)


async def _record_push(conn: Connection, principal: Principal, ticket_id: int, name: str, before: str) -> None:
    details = {"provider": name, "from": before, "ticket_id": ticket_id}
    await audit(conn, actor=principal.actor, actor_kind=principal.actor_kind, action="ticket_provider_push",
                category="ticket", target_type="ticket", target_id=ticket_id, ticket_id=ticket_id, details=details)
    await emit(conn, "ticket_provider_push", actor=principal.actor, ticket_id=ticket_id, category="ticket",
               payload=details)
    log.info("ticket pushed to provider", extra={"ticket_id": ticket_id, "plugin": name})


def _outbox_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "op": row["op"], "status": row["status"], "attempts": row["attempts"],
            "last_error": row["last_error"], "created_at": row["created_at"].isoformat(),
            "delivered_at": row["delivered_at"].isoformat() if row["delivered_at"] else None}


# --- per provider ------------------------------------------------------------------------


async def sync_all(pool: asyncpg.Pool, settings: Settings, host: PluginHost, requested: str | None, *,
                   path: bool = False, running: Any = None) -> SyncAllResult:
    """Send every due queued change, then run one pull pass of the provider (default: the active one)."""
    name = requested or settings.ticket_provider or registry.LOCAL
    name = registry.normalise_name(name, "provider")
    provider = registry.require(host, name, field=None if path else "provider")
    dispatch = await _dispatcher(pool, settings, host, running).dispatch_once()
    if provider is None or name == registry.LOCAL:
        return SyncAllResult(provider=name, dispatch=dispatch, sync=PullSummary(
            provider=name, ran=False, reason="local tickets live only in opsgate; there is nothing to pull"))
    # Its own lease owner: a pass of the background loop in this process is waited for, not joined.
    summary = await inbound.pull_once(pool, settings, host, name, owner_id("api"),
                                      wait_seconds=settings.plugin_call_timeout)
    return SyncAllResult(provider=name, sync=summary, dispatch=dispatch)


async def sync_remote_ticket(pool: asyncpg.Pool, conn: Connection, principal: Principal, settings: Settings,
                             host: PluginHost, name: str, data: SyncTicketRequest) -> TicketSyncResult:
    """Pull one remote ticket by class and ref: import it, or fold it into its canonical ticket."""
    name = registry.normalise_name(name, "provider")
    provider = registry.require(host, name)
    if provider is None or name == registry.LOCAL:
        raise Conflict("provider local has no remote tickets to pull")
    classes = {str(c).lower(): str(c) for c in provider.ticket_classes}
    ticket_class = classes.get(data.ticket_class.strip().lower())
    if ticket_class is None:
        raise Invalid("ticket_class", f"{name} handles {', '.join(provider.ticket_classes)}, "
                                      f"not {data.ticket_class!r}")
    ref = data.ticket_ref.strip()
    if not ref:
        raise Invalid("ticket_ref", "must not be empty")
    if not registry.configured(provider):
        raise Conflict(f"provider {name!r} is not configured")
    ticket_id, created, summary = await inbound.sync_record(pool, settings, name, provider, ticket_class, ref)
    if ticket_id is None:
        raise NotFound(f"{name} {ticket_class} {ref!r} not found")
    return TicketSyncResult(ticket=await _detail(conn, principal, host, ticket_id), provider=name, created=created,
                            sync=summary, dispatch=DispatchSummary())
