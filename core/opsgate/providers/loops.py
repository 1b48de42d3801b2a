"""Background provider sync inside `serve`: one outbox dispatcher and one pull loop per provider.

Started from the app lifespan when `OPSGATE_PROVIDER_SYNC` is on. Every step
coordinates through PostgreSQL (leased claims), so any number of processes
may run these loops at once. A failing pass is logged and retried at the next
interval; the loops never die on an error and stop cleanly on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from typing import Any

import asyncpg

from opsgate.plugins import PluginHost
from opsgate.providers import inbound, registry
from opsgate.providers.outbox import Dispatcher
from opsgate.settings import Settings

log = logging.getLogger(__name__)


def owner_id(kind: str = "serve") -> str:
    """A name for this process's claims: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{kind}:{secrets.token_hex(3)}"


def pull_interval(provider: Any, settings: Settings) -> float:
    """The provider's own interval (e.g. `ITOP_SYNC_INTERVAL_SECONDS`), else `OPSGATE_PROVIDER_PULL_INTERVAL_SECONDS`."""
    value = getattr(provider, "sync_interval_seconds", None)
    try:
        seconds = float(value) if value is not None else settings.provider_pull_interval_seconds
    except (TypeError, ValueError):
        seconds = settings.provider_pull_interval_seconds
    return max(0.2, seconds)


class ProviderSync:
    """The dispatcher and pull loops of one process."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, host: PluginHost) -> None:
        self.pool = pool
        self.settings = settings
        self.host = host
        self.owner = owner_id()
        self.dispatcher = Dispatcher(pool, settings, host, self.owner)
        self._tasks: list[asyncio.Task[Any]] = []
        self._wake = asyncio.Event()

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def pull_providers(self) -> dict[str, Any]:
        """Providers that get a pull loop: configured, able to pull, not `local`."""
        return {name: p for name, p in sorted(registry.providers(self.host).items())
                if name != registry.LOCAL and registry.capability(p, "pull_sync") and registry.configured(p)}

    def start(self) -> None:
        if self._tasks or not self.settings.provider_sync_enabled:
            return
        self._tasks.append(asyncio.create_task(self._dispatch_loop(), name="opsgate-provider-dispatcher"))
        for name, provider in self.pull_providers().items():
            interval = pull_interval(provider, self.settings)
            self._tasks.append(asyncio.create_task(self._pull_loop(name, interval), name=f"opsgate-pull-{name}"))
            log.info("provider pull loop started", extra={"plugin": name, "interval": interval})

    def wake(self) -> None:
        """Run the dispatcher now instead of at its next interval."""
        self._wake.set()

    async def _dispatch_loop(self) -> None:
        interval = self.settings.provider_dispatch_interval_seconds
        while True:
            busy = False
            try:
                summary = await self.dispatcher.dispatch_once()
                busy = summary.claimed >= self.settings.provider_batch_size
            except asyncio.CancelledError:
                raise
            except Exception:  # logged; the next pass tries again
                log.exception("provider dispatch pass failed")
            if busy:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)

    async def _pull_loop(self, name: str, interval: float) -> None:
        while True:
            try:
                await inbound.pull_once(self.pool, self.settings, self.host, name, self.owner)
            except asyncio.CancelledError:
                raise
            except Exception:  # logged; the next pass tries again
                log.exception("provider pull pass failed", extra={"plugin": name})
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for name, provider in registry.providers(self.host).items():
            close = getattr(provider, "aclose", None)
            if callable(close):
                try:
                    await asyncio.wait_for(close(), timeout=5)
                except Exception:  # closing is best effort
                    log.warning("closing provider %s failed", name, extra={"plugin": name})
