"""The three Wazuh routes (contracts/wazuh.md 4), each behind a scoped credential lease.

Order of every call (documented in the README and docs/api.md):

1. The guard: `tools:use` (agent tokens hold it; of the seed roles only
   platform-admin, through `*`).
2. Input validation: `rule_id`, `source_ip`, `limit` → 400 naming the field.
   Nothing is checked, consumed, audited as a lease event or sent upstream.
3. The agent: a human caller gets 404 for an agent that does not exist or is
   outside their ticket scope. An agent token asking for another agent id goes
   straight to the lease check (it never learns whether that agent exists).
4. The lease (`opsgate.leases.service.check_lease`, fresh on every call): no
   usable lease → 403 with the leases.md denial body and one `lease.denied`
   audit row; nothing is sent to Wazuh. Leases are bound to the agent's own
   token, so a human or another agent is always refused.
5. The adapter call with the lease's `credential_ref`, under the core's plugin
   call timeout; then one `lease.used` audit row (outcome `success`,
   `not_found` or `error`, with the non-secret `CallTrace`). If that row
   cannot be written the call is answered 503 without provider data.

Alert search accepts either `wazuh/indexer/wazuh.alerts/read` (preferred when
the agent holds it) or the spec's `wazuh/api/wazuh.manager/read`. A manager
lease whose ref names the API credential set is served with the indexer
credential set's built-in ref `env:WAZUH_INDEXER`; the response, the audit
row and `lease_credential_ref` say so.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from asyncpg import Connection
from litestar import Response, get
from litestar.params import Parameter

from opsgate.agents.service import visible_agent
from opsgate.auth.principal import Principal
from opsgate.errors import OpsgateError, ProviderError, Unavailable
from opsgate.leases import repo as leases_repo
from opsgate.leases.scope import Scope, matches, parse_concrete
from opsgate.leases.service import check_lease, record_use
from opsgate.leases.schemas import LeaseUse
from opsgate.plugins import PluginHost, call_plugin
from opsgate.settings import Settings
from opsgate_tool_wazuh.adapter import (
    SCOPE_ALERTS_READ,
    SCOPE_MANAGER_READ,
    validate_limit,
    validate_rule_id,
    validate_source_ip,
)
from opsgate_tool_wazuh.client import CallTrace
from opsgate_tool_wazuh.errors import RuleNotFound, WazuhError, WazuhRateLimited

log = logging.getLogger(__name__)

__all__ = ["ADAPTER_NAME", "INDEXER_REF", "PERMISSION", "route_handlers"]

ADAPTER_NAME = "wazuh"
PERMISSION = "tools:use"
INDEXER_REF = "env:WAZUH_INDEXER"
AgentId = Annotated[int, Parameter(ge=1)]
Query = Annotated[str | None, Parameter(max_length=64)]
BROKER_TRACE = {"decision": "allow", "reason": "active_lease_match", "audited": True, "broker_mode": "tool_adapter"}


def _adapter(host: PluginHost) -> Any:
    adapter = host.tool_adapters().get(ADAPTER_NAME)
    if adapter is None:
        raise Unavailable("the wazuh tool adapter is not loaded")
    return adapter


async def _check_agent(conn: Connection, principal: Principal, agent_id: int) -> None:
    """404 for a human asking about an unknown or out-of-scope agent; agents go to the lease check."""
    if principal.kind != "agent":
        await visible_agent(conn, principal, agent_id)


async def _usable(conn: Connection, principal: Principal, agent_id: int, scope: str) -> bool:
    """Whether check_lease would find a candidate for `scope` (a probe: no audit row, no decision)."""
    wanted = parse_concrete(scope)
    for row in await leases_repo.usable_leases(conn, agent_id, wanted.system, wanted.resource_type, wanted.action):
        granted = Scope(row["system"], row["resource_type"], row["resource_id"], row["action"])
        if not matches(granted, wanted):
            continue
        if row["ticket_id"] is not None and principal.ticket_id is not None and row["ticket_id"] != principal.ticket_id:
            continue
        return True
    return False


async def _search_scope(conn: Connection, principal: Principal, agent_id: int) -> str:
    """The scope alert search is checked against: the indexer scope when the agent holds it, else the spec's."""
    if principal.kind != "agent" or principal.agent_id != agent_id:
        return SCOPE_MANAGER_READ  # refused either way; name the spec's scope
    for scope in (SCOPE_ALERTS_READ, SCOPE_MANAGER_READ):
        if await _usable(conn, principal, agent_id, scope):
            return scope
    # Refused: name the scope the agent has a history with, so the reason (revoked, expired) is informative.
    idx = parse_concrete(SCOPE_ALERTS_READ)
    if await leases_repo.recent_leases(conn, agent_id, idx.system, idx.resource_type, idx.action):
        return SCOPE_ALERTS_READ
    return SCOPE_MANAGER_READ


def _search_ref(use: LeaseUse, adapter: Any) -> LeaseUse:
    """A manager lease authorises alert search with the indexer's built-in credential ref."""
    if use.scope == SCOPE_MANAGER_READ and use.credential_ref in adapter.credential_refs().get("manager", ()):
        return msgspec.structs.replace(use, credential_ref=INDEXER_REF)
    return use


def _error_response(exc: OpsgateError, envelope: dict[str, Any]) -> Response[dict[str, Any]]:
    status = exc.status_code
    if isinstance(exc, (WazuhError, RuleNotFound)):
        detail = exc.body()
    else:  # an unexpected adapter failure or the plugin call timeout: no exception text, it is not ours to echo
        timed_out = isinstance(exc, ProviderError) and "timed out" in exc.detail
        status = 504 if timed_out else status
        detail = {"error": "wazuh_timeout" if timed_out else "wazuh_adapter_error",
                  "reason": "the adapter call timed out" if timed_out else "the adapter failed unexpectedly"}
    text = f"wazuh: {detail.get('error')}" + (f" ({detail['reason']})" if detail.get("reason") else "")
    body = {"status": status, "detail": text, "errors": [], **detail, **envelope, "secret_values_returned": False}
    headers = None
    if isinstance(exc, WazuhRateLimited) and exc.retry_after is not None:
        headers = {"Retry-After": str(exc.retry_after)}
    return Response(content=body, status_code=status, headers=headers)


async def _call(conn: Connection, principal: Principal, settings: Settings, host: PluginHost, *, agent_id: int,
                scope: str | None, operation: str, op: str, params: dict[str, Any],
                invoke: Any) -> Response[dict[str, Any]]:
    """Steps 3-5 of the module docstring for one operation; `invoke(adapter, credential_ref, trace)`."""
    adapter = _adapter(host)
    await _check_agent(conn, principal, agent_id)
    if scope is None:
        scope = await _search_scope(conn, principal, agent_id)
    use = await check_lease(conn, principal, agent_id, scope, operation=operation)  # 403 + lease.denied
    lease_ref = use.credential_ref
    if op == "search_alerts":
        use = _search_ref(use, adapter)
    envelope = use.envelope()
    if use.credential_ref != lease_ref:
        envelope["lease_credential_ref"] = lease_ref
    trace = CallTrace()
    try:
        result = await call_plugin(ADAPTER_NAME, op, invoke(adapter, use.credential_ref, trace),
                                   timeout=settings.plugin_call_timeout)
    except (WazuhError, RuleNotFound, ProviderError) as exc:
        outcome = "not_found" if isinstance(exc, RuleNotFound) else "error"
        upstream = {**trace.as_dict(), "error": getattr(exc, "code", "wazuh_adapter_error")}
        if lease_ref != use.credential_ref:
            upstream["lease_credential_ref"] = lease_ref
        if not isinstance(exc, (WazuhError, RuleNotFound)):
            log.warning("wazuh adapter failed unexpectedly: %s", type(exc.__cause__ or exc).__name__,
                        extra={"agent_id": agent_id, "plugin": ADAPTER_NAME})
        audit_id = await record_use(conn, use, principal=principal, operation=operation, params=params,
                                    upstream=upstream, outcome=outcome)
        return _error_response(exc, {**envelope, "audit_id": audit_id})
    upstream = trace.as_dict()
    if lease_ref != use.credential_ref:
        upstream["lease_credential_ref"] = lease_ref
    audit_id = await record_use(conn, use, principal=principal, operation=operation, params=params,
                                upstream=upstream)  # 503 and no data when it cannot be written
    return Response(content={**envelope, "broker_trace": {**BROKER_TRACE, "audit_id": audit_id}, **result})


@get("/api/agents/{agent_id:int}/wazuh/manager/status", operation_id="wazuhManagerStatus",
     opt={"permission": PERMISSION}, tags=["wazuh"])
async def manager_status(agent_id: AgentId, conn: Connection, principal: Principal, settings: Settings,
                         host: PluginHost) -> Response[dict[str, Any]]:
    """Wazuh manager daemon states (`data`: the Wazuh body unchanged, plus a `summary`)."""
    return await _call(conn, principal, settings, host, agent_id=agent_id, scope=SCOPE_MANAGER_READ,
                       operation="wazuh.manager.status", op="manager_status", params={},
                       invoke=lambda a, ref, trace: a.manager_status(ref, trace=trace))


@get("/api/agents/{agent_id:int}/wazuh/rules/{rule_id:str}", operation_id="wazuhGetRule",
     opt={"permission": PERMISSION}, tags=["wazuh"])
async def get_rule(agent_id: AgentId, rule_id: str, conn: Connection, principal: Principal, settings: Settings,
                   host: PluginHost) -> Response[dict[str, Any]]:
    """One rule's metadata; 404 (with the Wazuh evidence in `data`) when the rule does not exist."""
    rid = validate_rule_id(rule_id)
    return await _call(conn, principal, settings, host, agent_id=agent_id, scope=SCOPE_MANAGER_READ,
                       operation="wazuh.rules.get", op="get_rule", params={"rule_id": rid},
                       invoke=lambda a, ref, trace: a.get_rule(ref, rid, trace=trace))


@get("/api/agents/{agent_id:int}/wazuh/alerts/search", operation_id="wazuhSearchAlerts",
     opt={"permission": PERMISSION}, tags=["wazuh"])
async def search_alerts(agent_id: AgentId, conn: Connection, principal: Principal, settings: Settings,
                        host: PluginHost, rule_id: Query = None, source_ip: Query = None,
                        limit: Query = None) -> Response[dict[str, Any]]:
    """Newest alerts by `rule_id` and/or `source_ip` (both optional), `limit` 1..50 (default 10)."""
    rid = None if rule_id in (None, "") else validate_rule_id(rule_id)
    ip = None if source_ip in (None, "") else validate_source_ip(source_ip)
    size = validate_limit(None if limit in (None, "") else limit)
    return await _call(conn, principal, settings, host, agent_id=agent_id, scope=None,
                       operation="wazuh.alerts.search", op="search_alerts",
                       params={"rule_id": rid, "source_ip": ip, "limit": size},
                       invoke=lambda a, ref, trace: a.search_alerts(ref, rule_id=rid, source_ip=ip, limit=size,
                                                                    trace=trace))


def route_handlers() -> list[Any]:
    """The three handlers, for `opsgate_routes` (and for a test plugin that supplies its own adapter)."""
    return [manager_status, get_rule, search_alerts]
