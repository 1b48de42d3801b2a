"""`WazuhAdapter`: the `ToolAdapter` behind the three Wazuh routes (contracts/wazuh.md 4).

A route handler validates input, lets the core check the lease and hand over
its `credential_ref`, then awaits one of:

    await adapter.manager_status(credential_ref)
    await adapter.get_rule(credential_ref, rule_id)
    await adapter.search_alerts(credential_ref, rule_id=..., source_ip=..., limit=...)

and merges the returned dict into the lease envelope (`agent_id`,
`lease_id`, `credential_ref`, `secret_values_returned`, `broker_trace`).
Input is validated (`opsgate.errors.Invalid`) before the credential ref is
resolved and before any upstream call. The ref names a server-held
credential set (leases.md 3); the values never leave this module's clients.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from opsgate.errors import Invalid
from opsgate_tool_wazuh.client import CallTrace, WazuhApiClient, WazuhIndexerClient
from opsgate_tool_wazuh.errors import (
    CredentialUnavailable,
    RuleNotFound,
    WazuhError,
    WazuhNotConfigured,
    WazuhUnavailable,
)
from opsgate_tool_wazuh.settings import WazuhIndexerSettings, WazuhSettings, load_settings

log = logging.getLogger(__name__)

__all__ = ["SCOPE_ALERTS_READ", "SCOPE_MANAGER_READ", "WazuhAdapter", "validate_limit", "validate_rule_id",
           "validate_source_ip"]

SCOPE_MANAGER_READ = "wazuh/api/wazuh.manager/read"
SCOPE_ALERTS_READ = "wazuh/indexer/wazuh.alerts/read"
RULE_ID_MAX = 2**31 - 1  # fits Wazuh's int rule ids; larger ones are refused locally
LIMIT_DEFAULT, LIMIT_MIN, LIMIT_MAX = 10, 1, 50  # contract 4.3 proposal
_DIGITS = re.compile(r"^[0-9]{1,10}$")
_STATES = ("running", "stopped", "failed", "starting", "restarting")


def _int_field(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise Invalid(name, "must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.match(value):
        return int(value)
    raise Invalid(name, "must be a positive integer (digits only)")


def validate_rule_id(value: Any) -> str:
    """A Wazuh rule id as its canonical decimal string (`"05710"` → `"5710"`)."""
    number = _int_field("rule_id", value)
    if not 1 <= number <= RULE_ID_MAX:
        raise Invalid("rule_id", f"must be between 1 and {RULE_ID_MAX}")
    return str(number)


def validate_source_ip(value: Any) -> str:
    """An IPv4/IPv6 address in normalised text (`ipaddress`), the form `data.srcip` holds."""
    if not isinstance(value, str) or not value or len(value) > 45:
        raise Invalid("source_ip", "must be an IPv4 or IPv6 address")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise Invalid("source_ip", "must be an IPv4 or IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise Invalid("source_ip", "must not carry an IPv6 zone id")
    return str(address)


def validate_limit(value: Any) -> int:
    """The number of alerts to return: default 10, 1..50."""
    if value is None:
        return LIMIT_DEFAULT
    number = _int_field("limit", value)
    if not LIMIT_MIN <= number <= LIMIT_MAX:
        raise Invalid("limit", f"must be between {LIMIT_MIN} and {LIMIT_MAX}")
    return number


def alerts_query(rule_id: str | None, source_ip: str | None, limit: int) -> dict[str, Any]:
    """The contract 3.4 search body: filters for what was given, newest first."""
    filters: list[dict[str, Any]] = []
    if rule_id is not None:
        filters.append({"term": {"rule.id": rule_id}})
    if source_ip is not None:
        filters.append({"term": {"data.srcip": source_ip}})
    return {
        "size": limit,
        "sort": [{"timestamp": {"order": "desc", "unmapped_type": "date"}}],
        "track_total_hits": True,
        "query": {"bool": {"filter": filters}} if filters else {"match_all": {}},
    }


def normalise_hits(body: Mapping[str, Any]) -> dict[str, Any]:
    """The agent-facing `data` of contract 4.3 from an OpenSearch search response."""
    hits = body.get("hits") or {}
    total = hits.get("total")
    if isinstance(total, int):  # pre-7 shape
        total = {"value": total, "relation": "eq"}
    alerts = [{"index": h.get("_index"), "id": h.get("_id"), "source": h.get("_source")}
              for h in hits.get("hits") or [] if isinstance(h, dict)]
    data: dict[str, Any] = {"total": total, "alerts": alerts}
    shards = body.get("_shards") or {}
    if isinstance(shards, dict) and shards.get("failed"):
        data["warnings"] = [f"partial results: {shards['failed']} of {shards.get('total')} shards failed"]
    if body.get("timed_out"):
        data.setdefault("warnings", []).append("the search timed out; results may be partial")
    return data


def status_summary(body: Mapping[str, Any]) -> dict[str, int]:
    """Counts of daemon states in a `/manager/status` body (an open map)."""
    items = (body.get("data") or {}).get("affected_items") or []
    counts = dict.fromkeys(_STATES[:3], 0)
    for item in items[:1]:
        if isinstance(item, dict):
            for state in item.values():
                key = str(state)
                counts[key] = counts.get(key, 0) + 1
    return counts


class WazuhAdapter:
    """The Wazuh tool adapter. Construction does no I/O and works unconfigured.

    `transport` / `indexer_transport` / `clock` exist for tests (the fake's
    ASGI transports, a shared fake clock).
    """

    name = "wazuh"
    lease_scopes = (SCOPE_MANAGER_READ, SCOPE_ALERTS_READ)
    scope_by_operation = {"manager_status": SCOPE_MANAGER_READ, "get_rule": SCOPE_MANAGER_READ,
                          "search_alerts": SCOPE_ALERTS_READ}

    def __init__(self, settings: WazuhSettings | None = None, indexer: WazuhIndexerSettings | None = None, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 indexer_transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or WazuhSettings()
        self.indexer_settings = indexer or WazuhIndexerSettings()
        self._transport = transport
        self._indexer_transport = indexer_transport
        self._clock = clock
        self._api: WazuhApiClient | None = None
        self._indexer: WazuhIndexerClient | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None, **kwargs: Any) -> WazuhAdapter:
        """Build from `WAZUH_*` / `WAZUH_INDEXER_*` in an environment mapping."""
        api, indexer = load_settings(environ)
        return cls(api, indexer, **kwargs)

    def __repr__(self) -> str:
        return f"WazuhAdapter(configured={self.configured()})"

    # --- configuration and credential refs -------------------------------------

    def configured(self) -> dict[str, bool]:
        """Which halves have URL + user + password (names only, no values)."""
        return {"manager": not self.settings.missing(), "indexer": not self.indexer_settings.missing()}

    def credential_refs(self) -> dict[str, list[str]]:
        """The refs this adapter resolves, by credential set (for grants and docs)."""
        return {"manager": list(self.settings.api_refs), "indexer": list(self.indexer_settings.refs)}

    def _resolve(self, op: str, credential_ref: Any, target: str) -> None:
        """Check the lease's ref names the credential set `target` uses; refuse otherwise."""
        if not isinstance(credential_ref, str) or not credential_ref:
            raise CredentialUnavailable(op, str(credential_ref)[:200], "no credential_ref given")
        refs = self.credential_refs()
        if credential_ref in refs[target]:
            return
        other = "indexer" if target == "manager" else "manager"
        if credential_ref in refs[other]:
            raise CredentialUnavailable(op, credential_ref, f"names the {other} credential set, not the {target}'s")
        raise CredentialUnavailable(op, credential_ref, "unknown credential_ref")

    def _api_client(self, op: str) -> WazuhApiClient:
        missing = self.settings.missing()
        if missing:
            raise WazuhNotConfigured(op, missing, target="manager")
        if self._api is None:
            s = self.settings
            assert s.api_url and s.api_user and s.api_password
            self._api = WazuhApiClient(s.api_url, s.api_user, s.api_password, verify_tls=s.verify_tls,
                                       ca_bundle=s.ca_bundle, timeout=s.timeout_seconds,
                                       transport=self._transport, clock=self._clock)
        return self._api

    def _indexer_client(self, op: str) -> WazuhIndexerClient:
        missing = self.indexer_settings.missing()
        if missing:
            raise WazuhNotConfigured(op, missing, target="indexer")
        if self._indexer is None:
            s, shared = self.indexer_settings, self.settings
            assert s.url and s.user and s.password
            verify = shared.verify_tls if s.verify_tls is None else s.verify_tls
            ca_bundle = s.ca_bundle if s.ca_bundle is not None else shared.ca_bundle
            self._indexer = WazuhIndexerClient(s.url, s.user, s.password, verify_tls=verify, ca_bundle=ca_bundle,
                                               timeout=shared.timeout_seconds, transport=self._indexer_transport)
        return self._indexer

    # --- the three operations ---------------------------------------------------

    async def manager_status(self, credential_ref: str, *, trace: CallTrace | None = None) -> dict[str, Any]:
        """Manager daemon states.

        Returns `{"data": <Wazuh /manager/status body, unchanged>,
        "summary": {"running": n, "stopped": n, "failed": n, ...}}`.
        """
        op = "manager_status"
        self._resolve(op, credential_ref, "manager")
        body = await self._api_client(op).manager_status(trace=trace)
        log.debug("wazuh manager status read via %s", credential_ref)
        return {"data": body, "summary": status_summary(body)}

    async def get_rule(self, credential_ref: str, rule_id: Any, *, trace: CallTrace | None = None) -> dict[str, Any]:
        """One rule's metadata.

        Returns `{"rule_id": "<id>", "data": <Wazuh /rules body, unchanged>}`;
        raises `RuleNotFound` (404, carrying the Wazuh body) when absent.
        """
        op = "get_rule"
        rid = validate_rule_id(rule_id)
        self._resolve(op, credential_ref, "manager")
        body = await self._api_client(op).rules([int(rid)], trace=trace)
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        items = data.get("affected_items") or []
        if not any(isinstance(i, dict) and str(i.get("id")) == rid for i in items):
            codes = [f.get("error", {}).get("code") for f in data.get("failed_items") or [] if isinstance(f, dict)]
            other = sorted(c for c in codes if isinstance(c, int) and c != 1208)
            if other:
                raise WazuhUnavailable(op, "manager could not return the rule", code="wazuh_upstream_error",
                                       target="manager", upstream_status=200, wazuh_error=other[0])
            log.debug("wazuh rule %s not found", rid)
            raise RuleNotFound(rid, body)
        return {"rule_id": rid, "data": body}

    async def search_alerts(self, credential_ref: str, *, rule_id: Any = None, source_ip: Any = None,
                            limit: Any = None, trace: CallTrace | None = None) -> dict[str, Any]:
        """Newest alerts matching the given filters (none given: newest overall).

        Returns `{"query": {"rule_id", "source_ip", "limit"}, "data": {"total":
        {"value", "relation"}, "alerts": [{"index", "id", "source"}], "warnings"?: [...]}}`.
        """
        op = "search_alerts"
        rid = None if rule_id is None or rule_id == "" else validate_rule_id(rule_id)
        ip = None if source_ip is None or source_ip == "" else validate_source_ip(source_ip)
        size = validate_limit(None if limit == "" else limit)
        self._resolve(op, credential_ref, "indexer")
        client = self._indexer_client(op)
        body = await client.search(self.settings.alerts_index, alerts_query(rid, ip, size), trace=trace)
        data = normalise_hits(body)
        log.debug("wazuh alert search returned %d alert(s)", len(data["alerts"]))
        return {"query": {"rule_id": rid, "source_ip": ip, "limit": size}, "data": data}

    # --- health -----------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """`{"ok", "configured", "missing", "verify_tls", "ca_bundle", "manager", "indexer"}`; never raises.

        `ok` is True when at least one half is configured and every configured
        half answered. The manager check reads `/manager/info` (version);
        the indexer check is a `size: 0` alert search.
        """
        configured = self.configured()
        report: dict[str, Any] = {
            "ok": False, "name": self.name, "configured": configured,
            "missing": self.settings.missing() + self.indexer_settings.missing(),
            "verify_tls": self.settings.verify_tls, "ca_bundle": bool(self.settings.ca_bundle),
            "lease_scopes": list(self.lease_scopes), "credential_refs": self.credential_refs(),
        }
        results = []
        if configured["manager"]:
            report["manager"] = await self._manager_health()
            results.append(report["manager"]["ok"])
        if configured["indexer"]:
            report["indexer"] = await self._indexer_health()
            results.append(report["indexer"]["ok"])
        report["ok"] = bool(results) and all(results)
        return report

    async def _manager_health(self) -> dict[str, Any]:
        try:
            body = await self._api_client("health").manager_info()
        except WazuhError as exc:
            return {"ok": False, "error": exc.code, "reason": exc.reason}
        except Exception as exc:  # health never raises; the failure is logged by type only
            log.warning("wazuh health check failed unexpectedly: %s", type(exc).__name__)
            return {"ok": False, "error": "unexpected", "reason": type(exc).__name__}
        items = (body.get("data") or {}).get("affected_items") or [{}]
        version = str(items[0].get("version", "")) if isinstance(items[0], dict) else ""
        supported = version.lstrip("v").startswith("4.")
        out: dict[str, Any] = {"ok": supported, "version": version, "supported": supported}
        if not supported:
            out["reason"] = "only Wazuh 4.x is supported"
        return out

    async def _indexer_health(self) -> dict[str, Any]:
        body = {"size": 0, "track_total_hits": True, "query": {"match_all": {}}}
        try:
            result = await self._indexer_client("health").search(self.settings.alerts_index, body)
        except WazuhError as exc:
            return {"ok": False, "error": exc.code, "reason": exc.reason}
        except Exception as exc:  # health never raises; the failure is logged by type only
            log.warning("wazuh health check failed unexpectedly: %s", type(exc).__name__)
            return {"ok": False, "error": "unexpected", "reason": type(exc).__name__}
        total = (result.get("hits") or {}).get("total")
        return {"ok": True, "alerts": total.get("value") if isinstance(total, dict) else total}

    async def aclose(self) -> None:
        """Close both connection pools (never logs out of the manager)."""
        for client in (self._api, self._indexer):
            if client is not None:
                await client.aclose()
