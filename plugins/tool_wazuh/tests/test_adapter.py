"""`WazuhAdapter` against the fake: shapes, validation first, credential refs, health, hook."""

from __future__ import annotations

import pytest

import opsgate_tool_wazuh
from opsgate import ToolAdapter
from opsgate.errors import Invalid, NotFound
from opsgate.settings import Settings
from opsgate_tool_wazuh.adapter import WazuhAdapter, alerts_query
from opsgate_tool_wazuh.client import CallTrace
from opsgate_tool_wazuh.errors import CredentialUnavailable, RuleNotFound, WazuhNotConfigured

API_REF = "env:WAZUH_API"
IDX_REF = "env:WAZUH_INDEXER"


def test_protocol_name_and_scopes():
    adapter = WazuhAdapter()
    assert isinstance(adapter, ToolAdapter)
    assert adapter.name == "wazuh"
    assert tuple(adapter.lease_scopes) == ("wazuh/api/wazuh.manager/read", "wazuh/indexer/wazuh.alerts/read")
    assert adapter.scope_by_operation["search_alerts"] == "wazuh/indexer/wazuh.alerts/read"


def test_hook_builds_an_unconfigured_adapter_without_io():
    [adapter] = opsgate_tool_wazuh.opsgate_tool_adapters(Settings.from_env({}))
    assert isinstance(adapter, WazuhAdapter)
    assert adapter.configured() == {"manager": False, "indexer": False}
    assert adapter._api is None and adapter._indexer is None


def test_hook_reads_settings_env(wazuh_env):
    [adapter] = opsgate_tool_wazuh.opsgate_tool_adapters(Settings.from_env(wazuh_env))
    assert adapter.configured() == {"manager": True, "indexer": True}
    assert adapter.settings.api_url == "https://wazuh-manager.test:55000"


async def test_manager_status_shape(adapter, fake):
    fake.daemons["wazuh-db"] = "failed"
    trace = CallTrace()
    result = await adapter.manager_status(API_REF, trace=trace)
    assert set(result) == {"data", "summary"}
    assert result["data"]["message"] == "Processes status was successfully read"
    assert result["data"]["data"]["affected_items"][0]["wazuh-db"] == "failed"
    assert result["summary"] == {"running": 9, "stopped": 6, "failed": 1}
    assert trace.as_dict()["target"] == "manager" and trace.http_status == 200 and trace.logins == 1


async def test_get_rule_shape(adapter):
    result = await adapter.get_rule(API_REF, "5712")
    assert result["rule_id"] == "5712"
    assert result["data"]["error"] == 0
    assert result["data"]["data"]["affected_items"][0]["mitre"] == ["T1110"]
    assert (await adapter.get_rule(API_REF, 5760))["data"]["data"]["affected_items"][0]["status"] == "disabled"


async def test_rule_not_found_carries_the_wazuh_evidence(adapter):
    with pytest.raises(RuleNotFound) as info:
        await adapter.get_rule(API_REF, "999999")
    err = info.value
    assert isinstance(err, NotFound) and err.status_code == 404
    body = err.body()
    assert body["rule_id"] == "999999"
    assert body["data"]["error"] == 1
    assert body["data"]["data"]["failed_items"][0]["error"]["code"] == 1208


async def test_search_alerts_shape_and_body(adapter, fake):
    result = await adapter.search_alerts(IDX_REF, rule_id="5710", source_ip="203.0.113.45", limit=5)
    assert result["query"] == {"rule_id": "5710", "source_ip": "203.0.113.45", "limit": 5}
    assert fake.search_bodies == [{
        "size": 5,
        "sort": [{"timestamp": {"order": "desc", "unmapped_type": "date"}}],
        "track_total_hits": True,
        "query": {"bool": {"filter": [{"term": {"rule.id": "5710"}}, {"term": {"data.srcip": "203.0.113.45"}}]}},
    }]
    data = result["data"]
    assert data["total"] == {"value": 2, "relation": "eq"}
    assert [a["index"] for a in data["alerts"]] == ["wazuh-alerts-4.x-2026.03.02", "wazuh-alerts-4.x-2026.03.01"]
    assert set(data["alerts"][0]) == {"index", "id", "source"}
    assert data["alerts"][0]["source"]["rule"]["id"] == "5710"


async def test_search_alerts_defaults_and_no_filters(adapter, fake):
    result = await adapter.search_alerts(IDX_REF)
    assert result["query"] == {"rule_id": None, "source_ip": None, "limit": 10}
    assert fake.search_bodies[0]["query"] == {"match_all": {}}
    assert result["data"]["total"]["value"] == 6
    stamps = [a["source"]["timestamp"] for a in result["data"]["alerts"]]
    assert stamps == sorted(stamps, reverse=True)


async def test_search_alerts_normalises_ipv6_and_rule_id(adapter, fake):
    result = await adapter.search_alerts(IDX_REF, rule_id="05710", source_ip="2001:DB8:0::5", limit="3")
    assert result["query"] == {"rule_id": "5710", "source_ip": "2001:db8::5", "limit": 3}
    assert result["data"]["total"]["value"] == 1


async def test_search_alerts_reports_partial_shards(adapter, fake):
    fake.shard_failures = 1
    result = await adapter.search_alerts(IDX_REF, rule_id="5710")
    assert result["data"]["warnings"]


def test_alerts_query_only_rule():
    assert alerts_query("5710", None, 10)["query"] == {"bool": {"filter": [{"term": {"rule.id": "5710"}}]}}


BAD_RULE_IDS = ["", "abc", "-1", "0", "57.10", " 5710", "5710 ", "1e3", "²", "99999999999", 0, -5, True,
                2**31, 3.0, None, "5710,5712"]
BAD_SOURCE_IPS = ["", "not-an-ip", "203.0.113", "203.0.113.256", "203.0.113.45/32", " 203.0.113.45",
                  "fe80::1%eth0", "x" * 100, 42]
BAD_LIMITS = [0, 51, -1, "0", "abc", "5.5", True, 10.0, 1000]


@pytest.mark.parametrize("rule_id", BAD_RULE_IDS)
async def test_get_rule_validates_before_any_call(adapter, fake, rule_id):
    with pytest.raises(Invalid) as info:
        await adapter.get_rule(API_REF, rule_id)
    assert info.value.field == "rule_id"
    assert fake.calls == []


@pytest.mark.parametrize("rule_id", [r for r in BAD_RULE_IDS if r not in ("", None)])
async def test_search_validates_rule_id_before_any_call(adapter, fake, rule_id):
    with pytest.raises(Invalid) as info:
        await adapter.search_alerts(IDX_REF, rule_id=rule_id)
    assert info.value.field == "rule_id"
    assert fake.calls == []


@pytest.mark.parametrize("source_ip", [s for s in BAD_SOURCE_IPS if s != ""])
async def test_search_validates_source_ip_before_any_call(adapter, fake, source_ip):
    with pytest.raises(Invalid) as info:
        await adapter.search_alerts(IDX_REF, source_ip=source_ip)
    assert info.value.field == "source_ip"
    assert fake.calls == []


@pytest.mark.parametrize("limit", BAD_LIMITS)
async def test_search_validates_limit_before_any_call(adapter, fake, limit):
    with pytest.raises(Invalid) as info:
        await adapter.search_alerts(IDX_REF, rule_id="5710", limit=limit)
    assert info.value.field == "limit"
    assert fake.calls == []


async def test_validation_comes_before_credential_ref(adapter, fake):
    with pytest.raises(Invalid):
        await adapter.get_rule("bogus:ref", "abc")
    assert fake.calls == []


@pytest.mark.parametrize("ref", ["vault:kv/ops/other", "", None, "env:WAZUH_API_PASSWORD"])
async def test_unknown_credential_ref_is_refused_without_calls(adapter, fake, ref):
    with pytest.raises(CredentialUnavailable) as info:
        await adapter.manager_status(ref)
    assert info.value.status_code == 503
    assert info.value.body()["error"] == "credential_unavailable"
    assert fake.calls == []


async def test_credential_ref_of_the_other_set_is_refused(adapter, fake):
    with pytest.raises(CredentialUnavailable):
        await adapter.manager_status(IDX_REF)
    with pytest.raises(CredentialUnavailable):
        await adapter.search_alerts(API_REF, rule_id="5710")
    assert fake.calls == []


async def test_vault_style_and_configured_refs_resolve(fake, wazuh_env, clock):
    env = {**wazuh_env, "WAZUH_API_CREDENTIAL_REFS": "vault:kv/ops/wazuh/api-readonly, vault://wazuh/api/manager-read"}
    adapter = WazuhAdapter.from_env(env, transport=fake.manager_transport(),
                                    indexer_transport=fake.indexer_transport(), clock=clock)
    assert (await adapter.manager_status("vault:kv/ops/wazuh/api-readonly"))["data"]["error"] == 0
    assert (await adapter.manager_status("vault://wazuh/api/manager-read"))["data"]["error"] == 0
    assert (await adapter.search_alerts("vault://wazuh/indexer/alerts-read"))["data"]["alerts"]
    await adapter.aclose()


async def test_not_configured_names_missing_settings(fake, clock):
    adapter = WazuhAdapter.from_env({"WAZUH_API_URL": "https://m:55000"}, transport=fake.manager_transport(),
                                    indexer_transport=fake.indexer_transport(), clock=clock)
    with pytest.raises(WazuhNotConfigured) as info:
        await adapter.manager_status(API_REF)
    assert info.value.missing == ["WAZUH_API_USER", "WAZUH_API_PASSWORD"]
    assert info.value.status_code == 503
    with pytest.raises(WazuhNotConfigured) as info:
        await adapter.search_alerts(IDX_REF)
    assert info.value.body() == {"error": "wazuh_not_configured", "target": "indexer",
                                 "missing": ["WAZUH_INDEXER_URL", "WAZUH_INDEXER_USER", "WAZUH_INDEXER_PASSWORD"]}
    assert fake.calls == []


async def test_manager_works_without_indexer_settings_and_vice_versa(fake, wazuh_env, clock):
    api_only = {k: v for k, v in wazuh_env.items() if not k.startswith("WAZUH_INDEXER_")}
    adapter = WazuhAdapter.from_env(api_only, transport=fake.manager_transport(), clock=clock)
    assert (await adapter.get_rule(API_REF, 5710))["rule_id"] == "5710"
    idx_only = {k: v for k, v in wazuh_env.items() if k.startswith("WAZUH_INDEXER_")}
    adapter2 = WazuhAdapter.from_env(idx_only, indexer_transport=fake.indexer_transport())
    assert (await adapter2.search_alerts(IDX_REF, limit=1))["data"]["alerts"]
    await adapter.aclose()
    await adapter2.aclose()


async def test_health_ok(adapter):
    report = await adapter.health()
    assert report["ok"] is True
    assert report["configured"] == {"manager": True, "indexer": True}
    assert report["missing"] == []
    assert report["manager"] == {"ok": True, "version": "v4.14.1", "supported": True}
    assert report["indexer"] == {"ok": True, "alerts": 6}
    assert report["verify_tls"] is True


async def test_health_unconfigured():
    report = await WazuhAdapter().health()
    assert report["ok"] is False
    assert report["configured"] == {"manager": False, "indexer": False}
    assert "WAZUH_API_PASSWORD" in report["missing"] and "WAZUH_INDEXER_PASSWORD" in report["missing"]
    assert "manager" not in report and "indexer" not in report


async def test_health_reports_failures_without_raising(adapter, fake):
    fake.down = True
    fake.indexer_users["alerts-reader"] = ("changed", True)
    report = await adapter.health()
    assert report["ok"] is False
    assert report["manager"]["error"] == "wazuh_unreachable"
    assert report["indexer"]["error"] == "wazuh_auth_failed"


async def test_health_flags_unsupported_version(adapter, fake):
    fake.version = "v5.0.0"
    report = await adapter.health()
    assert report["manager"]["supported"] is False and report["ok"] is False
