"""The one settings object, built from the environment.

`Settings.from_env(environ)` is called by the CLI (and by tests with a dict)
and passed down; no other module reads `os.environ`. Plugins read their own
variables with `load(MySettings, prefix="ITOP_", environ=settings.env)`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from opsgate.errors import Invalid

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _default_data_dir(environ: Mapping[str, str]) -> str:
    # As root the embedded PostgreSQL opens up the parent folders of its data
    # dir to its service user, so keep root's data out of /root.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return "/var/lib/opsgate"
    base = environ.get("XDG_DATA_HOME") or str(Path(environ.get("HOME", "~")).expanduser() / ".local" / "share")
    return str(Path(base) / "opsgate")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Core configuration. Each field is documented in docs/operations.md."""

    database_url: str | None = None
    data_dir: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    public_api_url: str | None = None
    log_level: str = "INFO"
    log_format: str = "json"
    plugins: tuple[str, ...] | None = None
    disable_plugins: tuple[str, ...] = ()
    trace_plugins: bool = False
    migrate: bool = True
    db_pool_min: int = 2
    db_pool_max: int = 20
    db_command_timeout: float = 30.0
    auth_mode: str = "enabled"
    proxy_secret: str | None = None
    secret_key: str = ""
    session_ttl_seconds: int = 43200
    cookie_secure: bool = False
    cors_origins: tuple[str, ...] = ()
    login_max_failures: int = 5
    login_lockout_seconds: int = 300
    ticket_provider: str = "local"
    work_dir: str = ""
    runner_enabled: bool = True
    plugin_call_timeout: float = 30.0
    env: dict[str, str] = msgspec.field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Build settings from an environment mapping (default: the process's)."""
        env = dict(os.environ if environ is None else environ)
        data_dir = env.get("OPSGATE_DATA_DIR") or _default_data_dir(env)
        raw: dict[str, Any] = {
            "database_url": env.get("OPSGATE_DATABASE_URL") or env.get("DATABASE_URL") or None,
            "data_dir": data_dir,
            "work_dir": env.get("OPSGATE_WORK_DIR") or str(Path(data_dir) / "work"),
            "env": env,
        }
        simple = {
            "host": "OPSGATE_HOST",
            "port": "OPSGATE_PORT",
            "public_api_url": "OPSGATE_PUBLIC_API_URL",
            "log_level": "OPSGATE_LOG_LEVEL",
            "log_format": "OPSGATE_LOG_FORMAT",
            "db_pool_min": "OPSGATE_DB_POOL_MIN",
            "db_pool_max": "OPSGATE_DB_POOL_MAX",
            "db_command_timeout": "OPSGATE_DB_COMMAND_TIMEOUT",
            "auth_mode": "OPSGATE_AUTH_MODE",
            "proxy_secret": "OPSGATE_PROXY_SECRET",
            "secret_key": "OPSGATE_SECRET_KEY",
            "session_ttl_seconds": "OPSGATE_SESSION_TTL_SECONDS",
            "login_max_failures": "OPSGATE_LOGIN_MAX_FAILURES",
            "login_lockout_seconds": "OPSGATE_LOGIN_LOCKOUT_SECONDS",
            "ticket_provider": "OPSGATE_TICKET_PROVIDER",
            "plugin_call_timeout": "OPSGATE_PLUGIN_CALL_TIMEOUT",
        }
        for field, var in simple.items():
            if env.get(var, "") != "":
                raw[field] = env[var]
        flags = {
            "trace_plugins": "OPSGATE_TRACE_PLUGINS",
            "migrate": "OPSGATE_MIGRATE",
            "cookie_secure": "OPSGATE_COOKIE_SECURE",
            "runner_enabled": "OPSGATE_RUNNER",
        }
        for field, var in flags.items():
            if var in env:
                raw[field] = _flag(var, env[var])
        if "OPSGATE_PLUGINS" in env:
            raw["plugins"] = _csv(env["OPSGATE_PLUGINS"])
        if "OPSGATE_DISABLE_PLUGINS" in env:
            raw["disable_plugins"] = _csv(env["OPSGATE_DISABLE_PLUGINS"])
        if "OPSGATE_CORS_ORIGINS" in env:
            raw["cors_origins"] = _csv(env["OPSGATE_CORS_ORIGINS"])
        raw.update(overrides)
        settings = _convert(raw, cls, env_names={**simple, **flags})
        if settings.auth_mode not in ("enabled", "disabled"):
            raise Invalid("OPSGATE_AUTH_MODE", "must be 'enabled' or 'disabled'")
        if settings.log_format not in ("json", "text"):
            raise Invalid("OPSGATE_LOG_FORMAT", "must be 'json' or 'text'")
        return settings

    def with_(self, **changes: Any) -> "Settings":
        """A copy with some fields replaced."""
        return msgspec.structs.replace(self, **changes)

    @property
    def api_url(self) -> str:
        """The address agents use to reach this server."""
        if self.public_api_url:
            return self.public_api_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def effective_secret_key(self) -> str:
        """The signing key; a per-data-dir random key is created when none is configured."""
        if self.secret_key:
            return self.secret_key
        path = Path(self.data_dir) / "secret_key"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            key = secrets.token_urlsafe(48)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(key)
            return key


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _flag(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise Invalid(name, f"expected a boolean (1/0, true/false), got {value!r}")


def _convert(raw: dict[str, Any], cls: type[T], *, env_names: Mapping[str, str], prefix: str = "") -> T:
    try:
        return msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = message.rsplit("$.", 1)[-1].strip("`") if "$." in message else ""
        var = env_names.get(field) or (prefix + field.upper() if field else prefix.rstrip("_"))
        raise Invalid(var, message) from exc


def load(cls: type[T], prefix: str, environ: Mapping[str, str] | None = None) -> T:
    """Build a plugin's settings Struct from `PREFIX_FIELD` variables.

    Field `url` of `load(ItopSettings, prefix="ITOP_")` comes from `ITOP_URL`.
    Values are converted with `msgspec.convert(strict=False)`, so "1", "true"
    and "30" become booleans and numbers; a bad value raises `Invalid` naming
    the variable.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    names: dict[str, str] = {}
    for field in msgspec.structs.fields(cls):  # type: ignore[arg-type]
        var = prefix + field.name.upper()
        names[field.name] = var
        if var in env and env[var] != "":
            raw[field.name] = env[var]
    return _convert(raw, cls, env_names=names, prefix=prefix)
