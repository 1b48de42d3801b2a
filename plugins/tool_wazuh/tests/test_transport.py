"""Transport failures and TLS options, with respx standing in for the network."""

from __future__ import annotations

import ssl

import certifi
import httpx
import msgspec
import pytest
import respx

from opsgate_tool_wazuh.adapter import WazuhAdapter
from opsgate_tool_wazuh.client import WazuhApiClient, WazuhIndexerClient, tls_verify
from opsgate_tool_wazuh.errors import WazuhAuthError, WazuhUnavailable

API = "https://wazuh-manager.test:55000"
IDX = "https://wazuh-indexer.test:9200"
TOKEN = "eyJhbGciOiJFUzUxMiIsInR5cCI6IkpXVCJ9.eyJleHAiOjQxMDI0NDQ4MDB9.c2lnbmF0dXJl"  # exp 2100-01-01
LOGIN_OK = {"data": {"token": TOKEN}, "error": 0}
STATUS_OK = {"data": {"affected_items": [{"wazuh-db": "running"}], "total_affected_items": 1,
                      "total_failed_items": 0, "failed_items": []},
             "message": "Processes status was successfully read", "error": 0}
SEARCH_OK = {"took": 1, "timed_out": False, "_shards": {"total": 3, "successful": 3, "skipped": 0, "failed": 0},
             "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": None, "hits": []}}


@pytest.fixture
def adapter():
    env = {"WAZUH_API_URL": API, "WAZUH_API_USER": "reader", "WAZUH_API_PASSWORD": "pw",
           "WAZUH_INDEXER_URL": IDX, "WAZUH_INDEXER_USER": "alerts", "WAZUH_INDEXER_PASSWORD": "ipw",
           "WAZUH_TIMEOUT_SECONDS": "2"}
    return WazuhAdapter.from_env(env)


@pytest.fixture
def mock():
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


# --- server API ---------------------------------------------------------------


async def test_headers_basic_on_login_bearer_on_data(adapter, mock):
    login = mock.post(f"{API}/security/user/authenticate").respond(200, json=LOGIN_OK)
    status = mock.get(f"{API}/manager/status").respond(200, json=STATUS_OK)
    result = await adapter.manager_status("env:WAZUH_API")
    assert result["data"] == STATUS_OK
    assert login.calls.last.request.headers["authorization"].startswith("Basic ")
    assert status.calls.last.request.headers["authorization"] == f"Bearer {TOKEN}"
    await adapter.aclose()


async def test_rules_params(adapter, mock):
    mock.post(f"{API}/security/user/authenticate").respond(200, json=LOGIN_OK)
    rules = mock.get(f"{API}/rules", params={"rule_ids": "5710"}).respond(200, json={
        "data": {"affected_items": [{"id": 5710, "level": 5}], "total_affected_items": 1,
                 "total_failed_items": 0, "failed_items": []}, "message": "All selected rules were returned",
        "error": 0})
    assert (await adapter.get_rule("env:WAZUH_API", 5710))["rule_id"] == "5710"
    assert rules.called
    assert dict(rules.calls.last.request.url.params) == {"rule_ids": "5710"}
    await adapter.aclose()


async def test_connect_error(adapter, mock):
    mock.post(f"{API}/security/user/authenticate").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(WazuhUnavailable) as info:
        await adapter.manager_status("env:WAZUH_API")
    assert info.value.code == "wazuh_unreachable" and info.value.status_code == 502
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_timeout_is_504(adapter, mock):
    mock.post(f"{API}/security/user/authenticate").respond(200, json=LOGIN_OK)
    mock.get(f"{API}/manager/status").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(WazuhUnavailable) as info:
        await adapter.manager_status("env:WAZUH_API")
    assert info.value.code == "wazuh_timeout" and info.value.status_code == 504
    assert "2s" in str(info.value)


async def test_tls_failure(adapter, mock):
    mock.post(f"{API}/security/user/authenticate").mock(
        side_effect=httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"))
    with pytest.raises(WazuhUnavailable) as info:
        await adapter.manager_status("env:WAZUH_API")
    assert info.value.reason == "TLS verification failed"


async def test_500_with_problem_json(adapter, mock):
    mock.post(f"{API}/security/user/authenticate").respond(200, json=LOGIN_OK)
    mock.get(f"{API}/manager/status").respond(
        500, json={"title": "Wazuh Internal Error", "detail": "Request timed out", "error": 3021},
        headers={"content-type": "application/problem+json; charset=utf-8"})
    with pytest.raises(WazuhUnavailable) as info:
        await adapter.manager_status("env:WAZUH_API")
    assert info.value.body() == {"error": "wazuh_upstream_error", "reason": "manager answered 500",
                                 "target": "manager", "upstream_status": 500, "wazuh_error": 3021,
                                 "title": "Wazuh Internal Error", "detail": "Request timed out"}


async def test_500_html_body(adapter, mock):
    mock.post(f"{API}/security/user/authenticate").respond(502, text="<html>Bad Gateway</html>")
    with pytest.raises(WazuhUnavailable) as info:
        await adapter.manager_status("env:WAZUH_API")
    assert info.value.upstream_status == 502


async def test_non_json_200(adapter, mock):
    mock.post(f"{API}/security/user/authenticate").respond(200, json=LOGIN_OK)
    mock.get(f"{API}/manager/status").respond(200, text="<html>proxy login</html>")
    with pytest.raises(WazuhUnavailable) as info:
        await adapter.manager_status("env:WAZUH_API")
    assert info.value.code == "wazuh_bad_response"


async def test_login_without_token(adapter, mock):
    mock.post(f"{API}/security/user/authenticate").respond(200, text="not json")
    with pytest.raises(WazuhUnavailable) as info:
        await adapter.manager_status("env:WAZUH_API")
    assert info.value.code == "wazuh_bad_response"


async def test_rate_limit_code_under_code_key_and_retry_after(adapter, mock):
    mock.post(f"{API}/security/user/authenticate").respond(200, json=LOGIN_OK)
    mock.get(f"{API}/manager/status").respond(
        429, json={"title": "Too Many Requests", "detail": "Maximum number of requests per minute reached",
                   "code": 6001}, headers={"Retry-After": "17"})
    with pytest.raises(Exception) as info:
        await adapter.manager_status("env:WAZUH_API")
    assert info.value.wazuh_error == 6001 and info.value.retry_after == 17


async def test_403_rbac(adapter, mock):
    mock.post(f"{API}/security/user/authenticate").respond(200, json=LOGIN_OK)
    mock.get(f"{API}/manager/status").respond(
        403, json={"title": "Permission Denied", "detail": "The current user does not have permission",
                   "remediation": "Check RBAC", "error": 4000})
    with pytest.raises(WazuhAuthError) as info:
        await adapter.manager_status("env:WAZUH_API")
    assert info.value.code == "wazuh_permission_denied" and info.value.wazuh_error == 4000


# --- indexer ------------------------------------------------------------------


async def test_indexer_request(adapter, mock):
    route = mock.post(f"{IDX}/wazuh-alerts-4.x-*/_search").respond(200, json=SEARCH_OK)
    result = await adapter.search_alerts("env:WAZUH_INDEXER", rule_id=5710, source_ip="203.0.113.45")
    assert result["data"] == {"total": {"value": 0, "relation": "eq"}, "alerts": []}
    request = route.calls.last.request
    assert request.headers["authorization"].startswith("Basic ")
    assert request.headers["content-type"] == "application/json"
    assert msgspec.json.decode(request.content) == {
        "size": 10,
        "sort": [{"timestamp": {"order": "desc", "unmapped_type": "date"}}],
        "track_total_hits": True,
        "query": {"bool": {"filter": [{"term": {"rule.id": "5710"}}, {"term": {"data.srcip": "203.0.113.45"}}]}},
    }
    await adapter.aclose()


@pytest.mark.parametrize("effect", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"),
                                    httpx.ReadTimeout("slow")])
async def test_indexer_transport_failures(adapter, mock, effect):
    mock.post(f"{IDX}/wazuh-alerts-4.x-*/_search").mock(side_effect=effect)
    with pytest.raises(WazuhUnavailable) as info:
        await adapter.search_alerts("env:WAZUH_INDEXER")
    assert info.value.target == "indexer"


@pytest.mark.parametrize(("status", "kwargs", "code"), [
    (500, {"text": "Internal Server Error"}, "wazuh_upstream_error"),
    (200, {"text": "<html/>"}, "wazuh_bad_response"),
    (200, {"json": {"unexpected": True}}, "wazuh_bad_response"),
    (401, {"text": "Unauthorized", "headers": {"WWW-Authenticate": 'Basic realm="OpenSearch Security"'}},
     "wazuh_auth_failed"),
    (401, {"content": b""}, "wazuh_auth_failed"),
])
async def test_indexer_bad_answers(adapter, mock, status, kwargs, code):
    mock.post(f"{IDX}/wazuh-alerts-4.x-*/_search").respond(status, **kwargs)
    with pytest.raises(Exception) as info:
        await adapter.search_alerts("env:WAZUH_INDEXER")
    assert info.value.code == code


# --- TLS ------------------------------------------------------------------------


def test_tls_verify_values():
    assert tls_verify(False, certifi.where()) is False
    assert tls_verify(True, None) is True
    ctx = tls_verify(True, certifi.where())
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] > 0


def _ssl_context(client) -> ssl.SSLContext:
    http = client.http.client("probe", "manager")
    assert http._trust_env is False  # no proxies or netrc from the process environment
    return http._transport._pool._ssl_context


def test_verify_on_by_default_uses_system_store():
    ctx = _ssl_context(WazuhApiClient(API, "u", "p"))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_ca_bundle_is_passed_to_httpx():
    client = WazuhApiClient(API, "u", "p", ca_bundle=certifi.where())
    assert client.http.ca_bundle == certifi.where()
    ctx = _ssl_context(client)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.cert_store_stats()["x509_ca"] > 0


def test_explicit_opt_out_disables_verification():
    ctx = _ssl_context(WazuhIndexerClient(IDX, "u", "p", verify_tls=False))
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname


def test_adapter_passes_settings_to_clients(tmp_path):
    env = {"WAZUH_API_URL": API, "WAZUH_API_USER": "u", "WAZUH_API_PASSWORD": "p", "WAZUH_VERIFY_TLS": "false",
           "WAZUH_TIMEOUT_SECONDS": "7", "WAZUH_INDEXER_URL": IDX, "WAZUH_INDEXER_USER": "u",
           "WAZUH_INDEXER_PASSWORD": "p", "WAZUH_INDEXER_VERIFY_TLS": "true",
           "WAZUH_INDEXER_CA_BUNDLE": certifi.where()}
    adapter = WazuhAdapter.from_env(env)
    api = adapter._api_client("probe")
    idx = adapter._indexer_client("probe")
    assert (api.http.verify_tls, api.http.ca_bundle, api.http.timeout) == (False, None, 7.0)
    assert (idx.http.verify_tls, idx.http.ca_bundle, idx.http.timeout) == (True, certifi.where(), 7.0)
    assert _ssl_context(api).verify_mode == ssl.CERT_NONE
    assert _ssl_context(idx).verify_mode == ssl.CERT_REQUIRED


async def test_missing_ca_bundle_is_a_clear_error(tmp_path, mock):
    env = {"WAZUH_API_URL": API, "WAZUH_API_USER": "u", "WAZUH_API_PASSWORD": "p",
           "WAZUH_CA_BUNDLE": str(tmp_path / "missing.pem")}
    adapter = WazuhAdapter.from_env(env)
    with pytest.raises(WazuhUnavailable) as info:
        await adapter.manager_status("env:WAZUH_API")
    assert info.value.code == "wazuh_tls_config"
    assert not mock.calls
