"""`create_app(settings)`: the only way to build the HTTP application."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from opsgate import __version__
from opsgate import plugins as plugin_host
from opsgate.auth import cache as principal_cache
from opsgate.auth.guard import declared_permission, require_permission
from opsgate.db.pool import create_pool
from opsgate.plugins import PluginHost
from opsgate.settings import Settings
from opsgate.web import dependencies, errors
from opsgate.web.deps import DEPENDENCIES, RequestConnections
from opsgate.web.middleware import add_response_headers, request_context

log = logging.getLogger(__name__)


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


def core_route_handlers() -> list[Any]:
    """Every controller and handler of the core domains."""
    from opsgate.access.routes import ROUTES as access_routes
    from opsgate.agents.routes import ROUTES as agent_routes
    from opsgate.auth.routes import ROUTES as auth_routes
    from opsgate.changes.routes import ROUTES as change_routes
    from opsgate.dashboard.routes import ROUTES as dashboard_routes
    from opsgate.intake.routes import ROUTES as intake_routes
    from opsgate.leases.routes import ROUTES as lease_routes
    from opsgate.providers.routes import ROUTES as provider_routes
    from opsgate.system.routes import PluginController, health
    from opsgate.tickets.routes import ROUTES as ticket_routes

    return [health, PluginController, *auth_routes, *ticket_routes, *dashboard_routes, *agent_routes,
            *intake_routes,
            *change_routes, *access_routes, *lease_routes, *provider_routes]


def undeclared_routes(app: Litestar) -> list[str]:
    """`METHOD path` of every route handler that declares neither a permission nor public."""
    missing = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if route.path.startswith("/schema"):
                continue
            if declared_permission(handler) is None:
                methods = ",".join(sorted(getattr(handler, "http_methods", None) or ["WS"]))
                missing.append(f"{methods} {route.path}")
    return missing


def create_app(settings: Settings, host: PluginHost | None = None, *,
               extra_route_handlers: Sequence[Any] = ()) -> Litestar:
    """Build the Litestar app; the pool opens and plugins start in its lifespan."""
    host = host if host is not None else plugin_host.load(settings)
    if not settings.database_url:
        raise ValueError("settings.database_url is required (the CLI starts an embedded server when unset)")

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        from opsgate.events.listener import EventListener
        from opsgate.events.notifier import EventNotifier
        from opsgate.changes.sweeper import Sweeper
        from opsgate.providers.loops import ProviderSync
        from opsgate.runner.runner import Runner

        app.state.pool = await create_pool(settings.database_url, settings)
        app.state.connections = RequestConnections.for_pool(app.state.pool, settings.db_pool_max)
        # NOTIFY of committed events, off the request path (one connection per process).
        app.state.notifier = EventNotifier(settings)
        await app.state.notifier.start()
        app.state.runner = None
        app.state.sweeper = Sweeper(app.state.pool, settings, host)  # gate/lease expiry, cascades
        # Provider outbox dispatcher and pull loops (OPSGATE_PROVIDER_SYNC); endpoints use its dispatcher too.
        app.state.provider_sync = ProviderSync(app.state.pool, settings, host)
        try:
            app.state.sweeper.start()
            app.state.provider_sync.start()
            # One LISTEN connection per process: the WebSocket, the opsgate_event fan-out and the runner.
            app.state.events = EventListener(settings, app.state.pool, host=host, fan_out_plugins=True)
            # Token revocations in any process forget this process's cached principals.
            app.state.events.listen(principal_cache.CHANNEL, principal_cache.on_notify)
            await app.state.events.start()
            try:
                await host.startup(app)
                try:
                    if settings.runner_enabled:
                        app.state.runner = Runner(settings, host, app.state.pool, listener=app.state.events,
                                                  kind="serve")
                        await app.state.runner.start()
                    try:
                        yield
                    finally:
                        if app.state.runner is not None:
                            await app.state.runner.stop()
                finally:
                    await host.shutdown(app)
            finally:
                await app.state.events.stop()
        finally:
            await app.state.provider_sync.stop()
            await app.state.sweeper.stop()
            await app.state.notifier.stop()
            await app.state.pool.close()

    dependencies.install()  # sequential dependency resolution (see opsgate.web.dependencies)
    cors = CORSConfig(allow_origins=list(settings.cors_origins), allow_credentials=True) \
        if settings.cors_origins else None
    app = Litestar(
        route_handlers=[*core_route_handlers(), *host.routes(), *extra_route_handlers],
        dependencies={name: Provide(fn, sync_to_thread=False) if not _is_async(fn) else Provide(fn)
                      for name, fn in DEPENDENCIES.items()},
        guards=[require_permission],
        middleware=[request_context],
        before_send=[add_response_headers],
        exception_handlers=errors.HANDLERS,
        lifespan=[lifespan],
        cors_config=cors,
        openapi_config=OpenAPIConfig(title="opsgate", version=__version__, path="/schema",
                                     render_plugins=[JsonRenderPlugin()]),
        state=None,
        debug=False,
        logging_config=None,
    )
    app.state.settings = settings
    app.state.plugins = host
    app.state.principal_cache = principal_cache.PrincipalCache(settings.auth_cache_seconds, settings.auth_cache_size)
    missing = undeclared_routes(app)
    if missing:
        raise RuntimeError(f"routes without a declared permission: {', '.join(missing)}")
    return app
