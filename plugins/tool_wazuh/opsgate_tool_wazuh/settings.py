"""Settings of the Wazuh tool adapter (contracts/wazuh.md section 1).

Two Structs, loaded from the server's environment, never shown to agents:

- `WazuhSettings` (prefix `WAZUH_`): the server API (manager) credential set
  and the options shared by both servers (TLS, timeout, alerts index).
- `WazuhIndexerSettings` (prefix `WAZUH_INDEXER_`): the indexer credential set,
  with optional TLS overrides.

Passwords never appear in `repr`, rich output or error messages; URLs that
carry credentials (`https://user:pass@host`) are refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import msgspec

import opsgate.settings
from opsgate.errors import Invalid

__all__ = ["WazuhIndexerSettings", "WazuhSettings", "load_settings"]

DEFAULT_ALERTS_INDEX = "wazuh-alerts-4.x-*"
_INDEX_RE = re.compile(r"^[A-Za-z0-9._*,-]{1,255}$")
_REF_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9._~:/@+=,-]{1,200}$")


def _check_url(value: str | None) -> None:
    if not value:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("URL must be http(s)://host[:port]")
    if parts.username is not None or parts.password is not None:
        raise ValueError("URL must not contain credentials; use the USER and PASSWORD settings")
    if parts.query or parts.fragment:
        raise ValueError("URL must not have a query or fragment")


def _split_refs(value: str) -> tuple[str, ...]:
    refs = tuple(part.strip() for part in value.split(",") if part.strip())
    for ref in refs:
        if not _REF_RE.match(ref):
            raise ValueError("credential refs must look like <resolver>:<locator>")
    return refs


def _redacted_repr(obj: msgspec.Struct, secret_fields: tuple[str, ...]) -> str:
    parts = []
    for name in obj.__struct_fields__:
        value = getattr(obj, name)
        shown = ("<redacted>" if value else "<unset>") if name in secret_fields else repr(value)
        parts.append(f"{name}={shown}")
    return f"{type(obj).__name__}({', '.join(parts)})"


def _redacted_rich(obj: msgspec.Struct, secret_fields: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    for name in obj.__struct_fields__:
        value = getattr(obj, name)
        yield name, (("<redacted>" if value else "<unset>") if name in secret_fields else value)


class WazuhSettings(msgspec.Struct, frozen=True, kw_only=True):
    """`WAZUH_*`: the server API and the options both servers share.

    "Configured" for the server API means `api_url`, `api_user` and
    `api_password` are all set.
    """

    api_url: str | None = None  # WAZUH_API_URL, e.g. https://wazuh-manager:55000
    api_user: str | None = None  # WAZUH_API_USER (read-only API user)
    api_password: str | None = None  # WAZUH_API_PASSWORD (secret)
    verify_tls: bool = True  # WAZUH_VERIFY_TLS; turning it off is an explicit opt-out
    ca_bundle: str | None = None  # WAZUH_CA_BUNDLE: PEM file to trust instead of the system store
    timeout_seconds: float = 15.0  # WAZUH_TIMEOUT_SECONDS, per request
    alerts_index: str = DEFAULT_ALERTS_INDEX  # WAZUH_ALERTS_INDEX
    # WAZUH_API_CREDENTIAL_REFS: extra credential refs (comma list) that name the
    # WAZUH_API_* credential set, besides the built-in `env:WAZUH_API`.
    api_credential_refs: str = "vault://wazuh/api/manager-read"

    def __post_init__(self) -> None:
        _check_url(self.api_url)
        if not _INDEX_RE.match(self.alerts_index):
            raise ValueError("WAZUH_ALERTS_INDEX must be an index name or pattern ([A-Za-z0-9._*,-])")
        if not 0 < self.timeout_seconds <= 300:
            raise ValueError("WAZUH_TIMEOUT_SECONDS must be in (0, 300]")
        _split_refs(self.api_credential_refs)

    def __repr__(self) -> str:
        return _redacted_repr(self, ("api_password",))

    __str__ = __repr__

    def __rich_repr__(self) -> Iterator[tuple[str, Any]]:
        return _redacted_rich(self, ("api_password",))

    @property
    def api_refs(self) -> tuple[str, ...]:
        """Every credential ref naming the API credential set."""
        return ("env:WAZUH_API", *_split_refs(self.api_credential_refs))

    def missing(self) -> list[str]:
        """Names (never values) of the unset variables the server API needs."""
        pairs = (("WAZUH_API_URL", self.api_url), ("WAZUH_API_USER", self.api_user),
                 ("WAZUH_API_PASSWORD", self.api_password))
        return [name for name, value in pairs if not value]


class WazuhIndexerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """`WAZUH_INDEXER_*`: the indexer (OpenSearch) credential set.

    TLS options default to the shared `WAZUH_VERIFY_TLS` / `WAZUH_CA_BUNDLE`;
    `WAZUH_INDEXER_VERIFY_TLS` / `WAZUH_INDEXER_CA_BUNDLE` override them.
    """

    url: str | None = None  # WAZUH_INDEXER_URL, e.g. https://wazuh-indexer:9200
    user: str | None = None  # WAZUH_INDEXER_USER
    password: str | None = None  # WAZUH_INDEXER_PASSWORD (secret)
    verify_tls: bool | None = None  # WAZUH_INDEXER_VERIFY_TLS (None: use WAZUH_VERIFY_TLS)
    ca_bundle: str | None = None  # WAZUH_INDEXER_CA_BUNDLE (None: use WAZUH_CA_BUNDLE)
    # WAZUH_INDEXER_CREDENTIAL_REFS: extra refs naming this credential set,
    # besides the built-in `env:WAZUH_INDEXER`.
    credential_refs: str = "vault://wazuh/indexer/alerts-read"

    def __post_init__(self) -> None:
        _check_url(self.url)
        _split_refs(self.credential_refs)

    def __repr__(self) -> str:
        return _redacted_repr(self, ("password",))

    __str__ = __repr__

    def __rich_repr__(self) -> Iterator[tuple[str, Any]]:
        return _redacted_rich(self, ("password",))

    @property
    def refs(self) -> tuple[str, ...]:
        """Every credential ref naming the indexer credential set."""
        return ("env:WAZUH_INDEXER", *_split_refs(self.credential_refs))

    def missing(self) -> list[str]:
        """Names (never values) of the unset variables alert search needs."""
        pairs = (("WAZUH_INDEXER_URL", self.url), ("WAZUH_INDEXER_USER", self.user),
                 ("WAZUH_INDEXER_PASSWORD", self.password))
        return [name for name, value in pairs if not value]


def load_settings(environ: Mapping[str, str] | None) -> tuple[WazuhSettings, WazuhIndexerSettings]:
    """Both Structs from an environment mapping (the core's `settings.env`).

    Raises `opsgate.errors.Invalid` naming the bad variable (never its value).
    """
    env = {} if environ is None else environ
    api = opsgate.settings.load(WazuhSettings, prefix="WAZUH_", environ=env)
    indexer = opsgate.settings.load(WazuhIndexerSettings, prefix="WAZUH_INDEXER_", environ=env)
    clash = set(api.api_refs) & set(indexer.refs)
    if clash:
        raise Invalid(
            "WAZUH_INDEXER_CREDENTIAL_REFS", f"ref(s) also name the API credential set: {sorted(clash)}")
    return api, indexer
