"""Every hook a plugin may implement.

Contribution hooks are synchronous and run once when the plugin host loads;
they return objects typed by `opsgate.protocols`. `opsgate_event`,
`opsgate_startup` and `opsgate_shutdown` may be `async def`; the core awaits
each implementation under a timeout and logs a failing plugin by name without
stopping the others. An implementation may accept any subset of a hook's
arguments. No hook is `firstresult`: configuration, not hook order, picks the
provider or harness.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from litestar import Litestar

    from opsgate.protocols import DeployTarget, DomainEvent, Harness, TicketProvider, ToolAdapter
    from opsgate.settings import Settings

PROJECT = "opsgate"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def opsgate_ticket_providers(settings: Settings) -> Sequence[TicketProvider]:
    """Ticket providers this plugin offers.

    Args:
        settings: the core settings; read plugin variables from `settings.env`.

    Returns objects satisfying `opsgate.protocols.TicketProvider`, each with a
    unique `name` (`local`, `itop`, ...). No I/O here; connect on first use.

    Since 0.1.
    """


@hookspec
def opsgate_harnesses(settings: Settings) -> Sequence[Harness]:
    """Agent harness CLIs this plugin can start.

    Args:
        settings: the core settings.

    Returns objects satisfying `opsgate.protocols.Harness` with unique names
    (`hermes`, `claude-code`, `codex`). Building a command must not do I/O.

    Since 0.1.
    """


@hookspec
def opsgate_tool_adapters(settings: Settings) -> Sequence[ToolAdapter]:
    """External tools reached with server-held credentials behind leases.

    Args:
        settings: the core settings.

    Returns objects satisfying `opsgate.protocols.ToolAdapter`; each declares
    the lease scopes it checks. Its HTTP endpoints come from `opsgate_routes`.

    Since 0.1.
    """


@hookspec
def opsgate_deploy_targets(settings: Settings) -> Sequence[DeployTarget]:
    """Places approved artifacts can be published to.

    Args:
        settings: the core settings.

    Returns objects satisfying `opsgate.protocols.DeployTarget`.

    Since 0.1.
    """


@hookspec
def opsgate_routes(settings: Settings) -> Sequence[Any]:
    """HTTP endpoints this plugin adds.

    Args:
        settings: the core settings.

    Returns Litestar route handlers, controllers or routers. Each handler
    declares its permission with `opt={"permission": "area:verb"}` (or
    `"public": True`); the app refuses to start with an undeclared route.
    Contract paths are used as given (`/api/agents/{agent_id}/wazuh/...`);
    other paths belong under `/api/plugins/<name>/`.

    Since 0.1.
    """


@hookspec
def opsgate_event(event: DomainEvent) -> Awaitable[None] | None:
    """A domain event was committed.

    Args:
        event: the event as stored in the event log.

    May be `async def`. Called after commit, once per event per process that
    runs the event fan-out; failures are logged with the plugin name.

    Since 0.1.
    """


@hookspec
def opsgate_startup(app: Litestar, settings: Settings) -> Awaitable[None] | None:
    """The app started (pool open, migrations applied).

    Args:
        app: the Litestar application; `app.state.pool` is the asyncpg pool.
        settings: the core settings.

    Start background work the plugin owns here (e.g. a pull-sync loop). May be
    `async def`; awaited under the plugin call timeout.

    Since 0.1.
    """


@hookspec
def opsgate_shutdown(app: Litestar, settings: Settings) -> Awaitable[None] | None:
    """The app is stopping; stop what `opsgate_startup` started.

    Args:
        app: the Litestar application.
        settings: the core settings.

    Called in reverse plugin order before the pool closes. May be `async def`.

    Since 0.1.
    """


# Contribution hooks and the plugin "kind" each one makes a plugin.
CONTRIBUTION_KINDS: dict[str, str] = {
    "opsgate_ticket_providers": "provider",
    "opsgate_harnesses": "harness",
    "opsgate_tool_adapters": "tool",
    "opsgate_deploy_targets": "deploy",
    "opsgate_routes": "routes",
}
LIFECYCLE_KINDS: dict[str, str] = {
    "opsgate_event": "events",
    "opsgate_startup": "lifecycle",
    "opsgate_shutdown": "lifecycle",
}
