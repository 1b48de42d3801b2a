"""The `opsgate` command: serve, worker, migrate, plugins, doctor, token."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import signal
import sys
from contextlib import ExitStack

import click

from opsgate import __version__
from opsgate.errors import OpsgateError
from opsgate.settings import Settings

log = logging.getLogger("opsgate.cli")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except OpsgateError as exc:
        raise click.ClickException(f"configuration error: {exc.detail}") from exc


def _configure_logging(settings: Settings) -> None:
    from opsgate.logging import configure

    configure(settings)


def _require_db(settings: Settings) -> str:
    if not settings.database_url:
        raise click.ClickException("no database: set OPSGATE_DATABASE_URL (or DATABASE_URL)")
    return settings.database_url


def _is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.group()
@click.version_option(__version__, prog_name="opsgate")
def main() -> None:
    """opsgate: control plane for governed AI agents."""


@main.command()
@click.option("--host", default=None, help="Address to listen on (OPSGATE_HOST, default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port to listen on (OPSGATE_PORT, default 8000).")
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="Server processes on the same port (OPSGATE_WORKERS, default 1).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Run the API server (and an embedded PostgreSQL when no database URL is set)."""
    import os

    import uvicorn

    from opsgate.app import create_app
    from opsgate.db.embedded import EmbeddedPostgres
    from opsgate.db.migrate import migrate as run_migrations

    settings = _settings()
    overrides = {k: v for k, v in (("host", host), ("port", port), ("workers", workers)) if v is not None}
    settings = settings.with_(**overrides) if overrides else settings
    _configure_logging(settings)
    if settings.auth_mode == "disabled":
        if not _is_loopback(settings.host):
            raise click.ClickException("OPSGATE_AUTH_MODE=disabled refuses to listen on a non-loopback address")
        log.warning("authentication is DISABLED: every request acts as a local admin (development only)")
    with ExitStack() as stack:
        if not settings.database_url:
            embedded = EmbeddedPostgres(settings.data_dir)
            url = embedded.start()
            stack.callback(embedded.stop)
            settings = settings.with_(database_url=url)
            click.echo(f"embedded PostgreSQL running with data in {embedded.pgdata}", err=True)
        if settings.migrate:
            applied = asyncio.run(run_migrations(settings.database_url))
            for migration in applied:
                click.echo(f"applied migration {migration.version:04d}_{migration.name}", err=True)
        token = asyncio.run(_bootstrap(settings))
        if token:
            click.echo("created the first admin token (shown once, store it now):", err=True)
            click.echo(token, err=True)
        common = dict(host=settings.host, port=settings.port, loop="uvloop", http="httptools", log_config=None,
                      access_log=False, lifespan="on", timeout_graceful_shutdown=10)
        if settings.workers > 1:
            from uvicorn.supervisors import Multiprocess

            _load_plugins(settings)  # fail here, once, on a bad OPSGATE_PLUGIN_MODULES
            settings.effective_secret_key()  # every worker signs sessions with the same (generated) key
            # Each worker process builds its own app from the environment (`worker_app`); hand it what
            # this process decided: the embedded database's URL and the command-line overrides. The
            # database is already migrated and bootstrapped, once, here.
            os.environ.update({"OPSGATE_DATABASE_URL": settings.database_url or "", "OPSGATE_HOST": settings.host,
                               "OPSGATE_PORT": str(settings.port), "OPSGATE_MIGRATE": "off", "OPSGATE_WORKERS": "1"})
            click.echo(f"opsgate {__version__} listening on http://{settings.host}:{settings.port} "
                       f"with {settings.workers} worker processes", err=True)
            config = uvicorn.Config("opsgate.cli:worker_app", factory=True, workers=settings.workers, **common)
            Multiprocess(config, sockets=[config.bind_socket()]).run()
            return
        app = create_app(settings, _load_plugins(settings))
        click.echo(f"opsgate {__version__} listening on http://{settings.host}:{settings.port}", err=True)
        config = uvicorn.Config(app, **common)
        _GracefulServer(config).run()


def worker_app():
    """The app of one `serve --workers N` process (a uvicorn factory; settings from the environment)."""
    from opsgate.app import create_app

    settings = _settings()
    _configure_logging(settings)
    return create_app(settings, _load_plugins(settings))


def _graceful_server_class():
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises SIGINT/SIGTERM after shutdown, which would skip our cleanup
        (stopping the embedded PostgreSQL); handle them as a plain graceful exit instead."""

        @contextlib.contextmanager
        def capture_signals(self):
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return GracefulServer


def _GracefulServer(config):  # noqa: N802 - reads like the class it builds
    return _graceful_server_class()(config)


def _load_plugins(settings: Settings):
    """Installed plugins (entry points) plus any `OPSGATE_PLUGIN_MODULES` (`name=module`) imported by path."""
    import importlib

    from opsgate import plugins

    extra = []
    for spec in settings.plugin_modules:
        name, sep, module = spec.partition("=")
        if not sep or not name.strip() or not module.strip():
            raise click.ClickException(f"OPSGATE_PLUGIN_MODULES: {spec!r} is not name=module")
        try:
            extra.append((name.strip(), importlib.import_module(module.strip())))
        except ImportError as exc:
            raise click.ClickException(f"OPSGATE_PLUGIN_MODULES: cannot import {module.strip()!r}: {exc}") from exc
    return plugins.load(settings, extra=extra)


@main.command()
def worker() -> None:
    """Run an agent runner without the API (any number, on any host sharing the database)."""
    settings = _settings()
    _configure_logging(settings)
    _require_db(settings)
    host = _load_plugins(settings)
    if not host.harnesses():
        raise click.ClickException("no harness plugin is enabled; this worker could never run a task")
    click.echo(f"opsgate {__version__} worker with harnesses {', '.join(sorted(host.harnesses()))}", err=True)
    # The standard loop: its subprocesses use vfork, cheaper than uvloop's fork for a large parent.
    asyncio.run(_run_worker(settings, host))


async def _run_worker(settings: Settings, host) -> None:
    from opsgate.db.pool import create_pool
    from opsgate.events.listener import EventListener
    from opsgate.runner.runner import Runner

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pool = await create_pool(settings.database_url or "", settings, min_size=1,
                             max_size=max(4, min(settings.db_pool_max, 10)))
    try:
        listener = EventListener(settings, pool, host=host, fan_out_plugins=False)
        await listener.start()
        try:
            runner = Runner(settings, host, pool, listener=listener, kind="worker")
            await runner.start()
            click.echo(f"runner {runner.id} started", err=True)
            try:
                await stop.wait()
            finally:
                await runner.stop()
        finally:
            await listener.stop()
    finally:
        await pool.close()
    click.echo("worker stopped", err=True)


async def _bootstrap(settings: Settings) -> str | None:
    from opsgate.auth.service import bootstrap_admin_token
    from opsgate.db.pool import connect

    conn = await connect(settings.database_url)
    try:
        return await bootstrap_admin_token(conn)
    finally:
        await conn.close()


@main.command()
@click.option("--check", is_flag=True, help="Exit non-zero if any migration is pending; apply nothing.")
def migrate(check: bool) -> None:
    """Apply pending database migrations."""
    from opsgate.db import migrate as migrations

    settings = _settings()
    _configure_logging(settings)
    url = _require_db(settings)
    try:
        if check:
            todo = asyncio.run(migrations.check(url))
            for migration in todo:
                click.echo(f"pending {migration.version:04d}_{migration.name}")
            if todo:
                sys.exit(1)
            click.echo("migrations are current")
            return
        applied = asyncio.run(migrations.migrate(url))
    except migrations.MigrationError as exc:
        raise click.ClickException(str(exc)) from exc
    for migration in applied:
        click.echo(f"applied {migration.version:04d}_{migration.name}")
    click.echo(f"{len(applied)} migration(s) applied")


@main.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def plugins_cmd(as_json: bool) -> None:
    """List discovered plugins and whether they are enabled."""
    import msgspec

    from opsgate import plugins

    settings = _settings()
    logging.basicConfig(level=logging.ERROR)
    host = plugins.load(settings)
    infos = host.list()
    if as_json:
        click.echo(msgspec.json.encode(infos).decode())
        return
    rows = [("NAME", "DISTRIBUTION", "VERSION", "KINDS", "STATE", "REASON")]
    for info in infos:
        rows.append((info.name, info.distribution or "-", info.version or "-", ",".join(info.kinds) or "-",
                     info.state, info.reason or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


@main.command()
def doctor() -> None:
    """Check the database, migrations and every enabled plugin; non-zero exit on failure."""
    from opsgate import plugins

    settings = _settings()
    logging.basicConfig(level=logging.ERROR)
    results = asyncio.run(_doctor(settings, plugins.load(settings)))
    failed = False
    for name, ok, detail in results:
        failed |= not ok
        click.echo(f"{'ok  ' if ok else 'FAIL'}  {name}: {detail}")
    sys.exit(1 if failed else 0)


async def _doctor(settings: Settings, host) -> list[tuple[str, bool, str]]:
    from opsgate.db import migrate as migrations
    from opsgate.plugins import call_plugin

    results: list[tuple[str, bool, str]] = []
    if not settings.database_url:
        results.append(("database", False, "no database URL configured (serve would start an embedded one)"))
    else:
        try:
            pending = await asyncio.wait_for(migrations.check(settings.database_url), timeout=10)
            results.append(("database", True, "reachable"))
            results.append(("migrations", not pending,
                            "current" if not pending else f"{len(pending)} pending"))
        except Exception as exc:  # report, don't crash: this is the doctor
            results.append(("database", False, f"{type(exc).__name__}: {exc}"))
    allow = set(settings.plugins or ())
    for info in host.list():
        if info.enabled:
            results.append((f"plugin {info.name}", True, "enabled"))
        elif info.name in allow:
            results.append((f"plugin {info.name}", False, f"{info.state}: {info.reason}"))
        elif info.state == "failed":
            results.append((f"plugin {info.name}", False, f"failed: {info.reason}"))
    objects = [*host.ticket_providers().items(), *host.harnesses().items(), *host.tool_adapters().items(),
               *host.deploy_targets().items()]
    for name, obj in objects:
        try:
            report = await call_plugin(name, "health", obj.health(), timeout=10)
            ok = bool(report.get("ok", True))
            results.append((f"{name} health", ok, json.dumps(report, default=str)[:300]))
        except OpsgateError as exc:
            results.append((f"{name} health", False, exc.detail))
    return results


@main.group()
def token() -> None:
    """Service tokens."""


@token.command("create")
@click.option("--name", required=True, help="A name for the token (unique among active tokens).")
@click.option("--role", required=True, help="Role granted to the token, e.g. platform-admin.")
def token_create(name: str, role: str) -> None:
    """Create a service token; the token is printed once, alone on the last line."""
    settings = _settings()
    url = _require_db(settings)

    async def run() -> str:
        from opsgate.auth.service import create_service_token
        from opsgate.db.pool import connect

        conn = await connect(url)
        try:
            _, secret = await create_service_token(conn, name=name, role=role, actor=None)
            return secret
        finally:
            await conn.close()

    try:
        secret = asyncio.run(run())
    except OpsgateError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"created token {name!r} with role {role!r}; it is shown only now:")
    click.echo(secret)


if __name__ == "__main__":
    main()
