"""The ticket providers the plugins contribute, looked up by name, and helpers shared by sync code.

The active provider is `settings.ticket_provider` (`OPSGATE_TICKET_PROVIDER`,
default `local`), never the plugin order. `local` is always listed: when the
`local` plugin is not loaded the core describes it itself (tickets that live
only in opsgate need no provider object).
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

from opsgate.errors import Invalid, NotFound, OpsgateError, ProviderError
from opsgate.plugins import PluginHost
from opsgate.protocols import TicketProvider
from opsgate.providers.schemas import ProviderInfo
from opsgate.settings import Settings

log = logging.getLogger(__name__)

LOCAL = "local"
LOCAL_CLASSES = ("Incident", "UserRequest", "RoutineChange", "NormalChange", "EmergencyChange")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def providers(host: PluginHost) -> dict[str, TicketProvider]:
    """Every provider object the plugins contribute, by name."""
    return host.ticket_providers()


def known_names(host: PluginHost, settings: Settings) -> list[str]:
    """Names a request may use: the contributed providers plus `local`."""
    return sorted({LOCAL, *providers(host)})


def _capabilities(provider: TicketProvider) -> dict[str, bool]:
    try:
        return {str(k): bool(v) for k, v in dict(provider.capabilities or {}).items()}
    except Exception:  # a plugin bug must not break the listing
        log.exception("provider capabilities failed", extra={"plugin": getattr(provider, "name", "?")})
        return {}


def capability(provider: TicketProvider, name: str, default: bool = True) -> bool:
    """A declared capability; providers that do not mention it are assumed to have it."""
    caps = _capabilities(provider)
    return caps.get(name, default)


def configured(provider: TicketProvider) -> bool:
    try:
        return bool(provider.configured())
    except Exception:
        log.exception("provider configured() failed", extra={"plugin": getattr(provider, "name", "?")})
        return False


def describe(host: PluginHost) -> list[ProviderInfo]:
    """`GET /api/providers`: name, ticket classes, configured, capabilities; sorted by name."""
    found = providers(host)
    infos = []
    for name in sorted({LOCAL, *found}):
        provider = found.get(name)
        if provider is None:  # the local plugin is not loaded: describe the core's own local tickets
            infos.append(ProviderInfo(name=LOCAL, ticket_classes=list(LOCAL_CLASSES), configured=True,
                                      capabilities={"remote_records": False, "case_log": False, "close": False,
                                                    "pull_sync": False}))
            continue
        infos.append(ProviderInfo(name=name, ticket_classes=[str(c) for c in provider.ticket_classes],
                                  configured=configured(provider), capabilities=_capabilities(provider)))
    return infos


def normalise_name(value: Any, field: str) -> str:
    """A provider name as requests give it (stripped, lower case), checked for shape."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(field, "must be a provider name, e.g. itop")
    name = value.strip().lower()
    if not _NAME.match(name):
        raise Invalid(field, f"{value!r} is not a provider name (lowercase letters, digits, '_' or '-')")
    return name


def require(host: PluginHost, name: str, *, field: str | None = None) -> TicketProvider | None:
    """The provider object named `name` (None for `local` without its plugin).

    Unknown names raise `NotFound` (a path parameter) or `Invalid(field)` (a
    body field), naming the provider and the known ones.
    """
    found = providers(host)
    if name in found:
        return found[name]
    if name == LOCAL:
        return None
    known = ", ".join(sorted({LOCAL, *found}))
    if field is not None:
        raise Invalid(field, f"unknown provider {name!r}; known providers: {known}")
    raise NotFound(f"provider {name!r} not found; known providers: {known}")


def is_retryable(exc: BaseException) -> bool:
    """Whether trying the same provider call later may succeed.

    A provider error may say so itself (`retryable = False` for missing
    settings, unsupported requests, impossible lifecycles); otherwise provider
    and unexpected errors are retried and opsgate's own domain errors are not.
    """
    flag = getattr(exc, "retryable", None)
    if isinstance(flag, bool):
        return flag
    return isinstance(exc, ProviderError) or not isinstance(exc, OpsgateError)


def error_text(exc: BaseException, limit: int = 2000) -> str:
    """A one-line description of a failure for `provider_last_error` (never a traceback)."""
    text = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- case-log text --------------------------------------------------------------------

_TAG = re.compile(r"<[A-Za-z!/][^>]*>")
_BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "ul", "ol",
          "table"}


class _Stripper(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def plain_text(value: str) -> str:
    """Case-log text without HTML: tags stripped, entities decoded, blank-line runs collapsed."""
    if not value:
        return ""
    if not _TAG.search(value):
        return html.unescape(value).strip()
    parser = _Stripper()
    parser.feed(value)
    parser.close()
    lines = [line.rstrip() for line in "".join(parser.parts).replace("\xa0", " ").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def text_hash(value: str) -> str:
    """Identity of a note's text across a provider round trip (HTML and whitespace ignored)."""
    return hashlib.sha256(" ".join(plain_text(value).split()).encode("utf-8")).hexdigest()


def log_of(visibility: str | None) -> str:
    """Which provider log a visibility goes to: `public` (user/public) or `private` (internal)."""
    return "public" if (visibility or "").lower() in ("user", "public") else "private"


def provider_payload(record_payload: Mapping[str, Any], remote_status: str | None) -> dict[str, Any]:
    """What opsgate keeps of a remote record in `provider_payload` (JSON-able values only)."""
    kept: dict[str, Any] = {}
    for key, value in dict(record_payload or {}).items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            kept[str(key)] = value
    kept["remote_status"] = remote_status
    return kept
