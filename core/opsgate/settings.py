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
    workers: int = 1
    auth_cache_seconds: float = 3.0
    auth_cache_size: int = 10000
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
    runner_recovery: str = "fail"
    runner_heartbeat_seconds: float = 5.0
    runner_lease_seconds: float = 30.0
    runner_poll_seconds: float = 5.0
    runner_stall_seconds: float = 900.0
    runner_stop_grace_seconds: float = 10.0
    runner_max_local: int = 0
    runner_output_tail_bytes: int = 65536
    plugin_call_timeout: float = 30.0
    change_default_expiry_seconds: int = 3600
    change_max_expiry_seconds: int = 604800
    change_approved_ttl_seconds: int = 86400
    change_sweep_interval_seconds: float = 30.0
    demo_auto_approve: bool = False
    lease_default_ttl_seconds: int = 3600
    lease_max_ttl_seconds: int = 86400
    idempotency_ttl_hours: float = 24.0
    plugin_modules: tuple[str, ...] = ()
    agent_llm_base_url: str = ""
    agent_llm_api_key: str = ""
    codex_auth_mode: str = "api_key"
    codex_oauth_model: str = "gpt-5-codex"
    intake_auto_assign_cap: int = 10
    intake_auto_assign_window_seconds: int = 3600
    intake_min_score: float = 1.0
    intake_clarify_confidence: float = 0.6
    provider_sync_enabled: bool = True
    provider_dispatch_interval_seconds: float = 2.0
    provider_retry_max_attempts: int = 10
    provider_retry_base_seconds: float = 5.0
    provider_retry_max_seconds: float = 300.0
    provider_claim_seconds: float = 120.0
    provider_batch_size: int = 50
    provider_pull_interval_seconds: float = 60.0
    provider_pull_max_pages: int = 100
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
            "workers": "OPSGATE_WORKERS",
            "auth_cache_seconds": "OPSGATE_AUTH_CACHE_SECONDS",
            "auth_cache_size": "OPSGATE_AUTH_CACHE_SIZE",
            "auth_mode": "OPSGATE_AUTH_MODE",
            "proxy_secret": "OPSGATE_PROXY_SECRET",
            "secret_key": "OPSGATE_SECRET_KEY",
            "session_ttl_seconds": "OPSGATE_SESSION_TTL_SECONDS",
            "login_max_failures": "OPSGATE_LOGIN_MAX_FAILURES",
            "login_lockout_seconds": "OPSGATE_LOGIN_LOCKOUT_SECONDS",
            "ticket_provider": "OPSGATE_TICKET_PROVIDER",
            "plugin_call_timeout": "OPSGATE_PLUGIN_CALL_TIMEOUT",
            "change_default_expiry_seconds": "OPSGATE_CHANGE_DEFAULT_EXPIRY_SECONDS",
            "change_max_expiry_seconds": "OPSGATE_CHANGE_MAX_EXPIRY_SECONDS",
            "change_approved_ttl_seconds": "OPSGATE_CHANGE_APPROVED_TTL_SECONDS",
            "change_sweep_interval_seconds": "OPSGATE_CHANGE_SWEEP_INTERVAL_SECONDS",
            "lease_default_ttl_seconds": "OPSGATE_LEASE_DEFAULT_TTL_SECONDS",
            "lease_max_ttl_seconds": "OPSGATE_LEASE_MAX_TTL_SECONDS",
            "idempotency_ttl_hours": "OPSGATE_IDEMPOTENCY_TTL_HOURS",
            "runner_recovery": "OPSGATE_RUNNER_RECOVERY",
            "runner_heartbeat_seconds": "OPSGATE_RUNNER_HEARTBEAT_SECONDS",
            "runner_lease_seconds": "OPSGATE_RUNNER_LEASE_SECONDS",
            "runner_poll_seconds": "OPSGATE_RUNNER_POLL_SECONDS",
            "runner_stall_seconds": "OPSGATE_RUNNER_STALL_SECONDS",
            "runner_stop_grace_seconds": "OPSGATE_RUNNER_STOP_GRACE_SECONDS",
            "runner_max_local": "OPSGATE_RUNNER_MAX_LOCAL",
            "runner_output_tail_bytes": "OPSGATE_RUNNER_OUTPUT_TAIL_BYTES",
            "agent_llm_base_url": "AGENT_LLM_BASE_URL",
            "agent_llm_api_key": "AGENT_LLM_API_KEY",
            "codex_auth_mode": "CODEX_AUTH_MODE",
            "codex_oauth_model": "CODEX_OAUTH_MODEL",
            "intake_auto_assign_cap": "OPSGATE_INTAKE_AUTO_ASSIGN_CAP",
            "intake_auto_assign_window_seconds": "OPSGATE_INTAKE_AUTO_ASSIGN_WINDOW_SECONDS",
            "intake_min_score": "OPSGATE_INTAKE_MIN_SCORE",
            "intake_clarify_confidence": "OPSGATE_INTAKE_CLARIFY_CONFIDENCE",
            "provider_dispatch_interval_seconds": "OPSGATE_PROVIDER_DISPATCH_INTERVAL_SECONDS",
            "provider_retry_max_attempts": "OPSGATE_PROVIDER_RETRY_MAX_ATTEMPTS",
            "provider_retry_base_seconds": "OPSGATE_PROVIDER_RETRY_BASE_SECONDS",
            "provider_retry_max_seconds": "OPSGATE_PROVIDER_RETRY_MAX_SECONDS",
            "provider_claim_seconds": "OPSGATE_PROVIDER_CLAIM_SECONDS",
            "provider_batch_size": "OPSGATE_PROVIDER_BATCH_SIZE",
            "provider_pull_interval_seconds": "OPSGATE_PROVIDER_PULL_INTERVAL_SECONDS",
            "provider_pull_max_pages": "OPSGATE_PROVIDER_PULL_MAX_PAGES",
        }
        for field, var in simple.items():
            if env.get(var, "") != "":
                raw[field] = env[var]
        flags = {
            "trace_plugins": "OPSGATE_TRACE_PLUGINS",
            "migrate": "OPSGATE_MIGRATE",
            "cookie_secure": "OPSGATE_COOKIE_SECURE",
            "runner_enabled": "OPSGATE_RUNNER",
            "demo_auto_approve": "OPSGATE_DEMO_AUTO_APPROVE",
            "provider_sync_enabled": "OPSGATE_PROVIDER_SYNC",
        }
        for field, var in flags.items():
            if var in env:
                raw[field] = _flag(var, env[var])
        if "OPSGATE_PLUGINS" in env:
            raw["plugins"] = _csv(env["OPSGATE_PLUGINS"])
        if "OPSGATE_DISABLE_PLUGINS" in env:
            raw["disable_plugins"] = _csv(env["OPSGATE_DISABLE_PLUGINS"])
        if "OPSGATE_PLUGIN_MODULES" in env:
            raw["plugin_modules"] = _csv(env["OPSGATE_PLUGIN_MODULES"])
        if "OPSGATE_CORS_ORIGINS" in env:
            raw["cors_origins"] = _csv(env["OPSGATE_CORS_ORIGINS"])
        raw.update(overrides)
        settings = _convert(raw, cls, env_names={**simple, **flags})
        if settings.auth_mode not in ("enabled", "disabled"):
            raise Invalid("OPSGATE_AUTH_MODE", "must be 'enabled' or 'disabled'")
        if settings.log_format not in ("json", "text"):
            raise Invalid("OPSGATE_LOG_FORMAT", "must be 'json' or 'text'")
        if settings.workers < 1:
            raise Invalid("OPSGATE_WORKERS", "must be at least 1")
        if settings.auth_cache_seconds < 0 or settings.auth_cache_seconds > 60:
            raise Invalid("OPSGATE_AUTH_CACHE_SECONDS", "must be between 0 and 60")
        if settings.auth_cache_size < 1:
            raise Invalid("OPSGATE_AUTH_CACHE_SIZE", "must be at least 1")
        _check_time_limits(settings)
        _check_intake(settings)
        _check_provider_sync(settings)
        if settings.runner_recovery not in ("fail", "requeue"):
            raise Invalid("OPSGATE_RUNNER_RECOVERY", "must be 'fail' or 'requeue'")
        if settings.codex_auth_mode not in ("api_key", "oauth"):
            raise Invalid("CODEX_AUTH_MODE", "must be 'api_key' or 'oauth'")
        for field, var in (("runner_heartbeat_seconds", "OPSGATE_RUNNER_HEARTBEAT_SECONDS"),
                           ("runner_lease_seconds", "OPSGATE_RUNNER_LEASE_SECONDS"),
                           ("runner_poll_seconds", "OPSGATE_RUNNER_POLL_SECONDS")):
            if getattr(settings, field) <= 0:
                raise Invalid(var, "must be greater than 0")
        if settings.runner_lease_seconds < settings.runner_heartbeat_seconds * 2:
            raise Invalid("OPSGATE_RUNNER_LEASE_SECONDS", "must be at least twice OPSGATE_RUNNER_HEARTBEAT_SECONDS")
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


def _check_time_limits(settings: Settings) -> None:
    """Approval-gate and lease time limits: positive, and each default within its maximum."""
    pairs = (
        ("OPSGATE_CHANGE_DEFAULT_EXPIRY_SECONDS", settings.change_default_expiry_seconds,
         "OPSGATE_CHANGE_MAX_EXPIRY_SECONDS", settings.change_max_expiry_seconds),
        ("OPSGATE_LEASE_DEFAULT_TTL_SECONDS", settings.lease_default_ttl_seconds,
         "OPSGATE_LEASE_MAX_TTL_SECONDS", settings.lease_max_ttl_seconds),
    )
    for default_var, default, max_var, maximum in pairs:
        if maximum < 1:
            raise Invalid(max_var, "must be at least 1 second")
        if not 1 <= default <= maximum:
            raise Invalid(default_var, f"must be between 1 and {max_var} ({maximum})")
    if settings.change_approved_ttl_seconds < 1:
        raise Invalid("OPSGATE_CHANGE_APPROVED_TTL_SECONDS", "must be at least 1 second")
    if settings.change_sweep_interval_seconds < 0:
        raise Invalid("OPSGATE_CHANGE_SWEEP_INTERVAL_SECONDS", "must be 0 (off) or more")
    if settings.idempotency_ttl_hours <= 0:
        raise Invalid("OPSGATE_IDEMPOTENCY_TTL_HOURS", "must be greater than 0")


def _check_intake(settings: Settings) -> None:
    """Intake routing and auto-assignment limits."""
    if settings.intake_auto_assign_cap < 0:
        raise Invalid("OPSGATE_INTAKE_AUTO_ASSIGN_CAP", "must be 0 (auto-assignment off) or more")
    if settings.intake_auto_assign_window_seconds < 1:
        raise Invalid("OPSGATE_INTAKE_AUTO_ASSIGN_WINDOW_SECONDS", "must be at least 1 second")
    if settings.intake_min_score <= 0:
        raise Invalid("OPSGATE_INTAKE_MIN_SCORE", "must be greater than 0")
    if not 0 <= settings.intake_clarify_confidence <= 1:
        raise Invalid("OPSGATE_INTAKE_CLARIFY_CONFIDENCE", "must be between 0 and 1")


def _check_provider_sync(settings: Settings) -> None:
    """Provider outbox and pull-sync limits."""
    positive = (
        ("OPSGATE_PROVIDER_DISPATCH_INTERVAL_SECONDS", settings.provider_dispatch_interval_seconds),
        ("OPSGATE_PROVIDER_CLAIM_SECONDS", settings.provider_claim_seconds),
        ("OPSGATE_PROVIDER_PULL_INTERVAL_SECONDS", settings.provider_pull_interval_seconds),
        ("OPSGATE_PROVIDER_RETRY_MAX_ATTEMPTS", settings.provider_retry_max_attempts),
        ("OPSGATE_PROVIDER_BATCH_SIZE", settings.provider_batch_size),
        ("OPSGATE_PROVIDER_PULL_MAX_PAGES", settings.provider_pull_max_pages),
    )
    for var, value in positive:
        if value <= 0:
            raise Invalid(var, "must be greater than 0")
    if settings.provider_retry_base_seconds < 0:
        raise Invalid("OPSGATE_PROVIDER_RETRY_BASE_SECONDS", "must be 0 or more")
    if settings.provider_retry_max_seconds < settings.provider_retry_base_seconds:
        raise Invalid("OPSGATE_PROVIDER_RETRY_MAX_SECONDS", "must be at least OPSGATE_PROVIDER_RETRY_BASE_SECONDS")


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
