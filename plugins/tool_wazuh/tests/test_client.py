"""The httpx clients against the fake manager and indexer (contracts/wazuh.md 2-3)."""

from __future__ import annotations

import asyncio
import base64

import msgspec
import pytest

from opsgate_tool_wazuh.client import WazuhApiClient, WazuhIndexerClient, token_expiry
from opsgate_tool_wazuh.errors import (
    WazuhAuthError,
    WazuhPermissionDenied,
    WazuhRateLimited,
    WazuhRequestRejected,
    WazuhUnavailable,
)

LOGIN = "/security/user/authenticate"


def _logins(fake) -> int:
    return fake.count(path=LOGIN)


async def test_login_once_and_cache_token(api, fake):
    await api.manager_status()
    await api.manager_info()
    await api.rules([5710])
    assert _logins(fake) == 1
    assert fake.logins == 1
    schemes = {(c.path, c.auth_scheme) for c in fake.calls}
    assert schemes == {(LOGIN, "Basic"), ("/manager/status", "Bearer"), ("/manager/info", "Bearer"),
                       ("/rules", "Bearer")}
    login = fake.calls[0]
    assert login.method == "POST" and login.query == []


async def test_concurrent_calls_cause_one_login(api, fake):
    await asyncio.gather(*(api.manager_status() for _ in range(10)))
    assert _logins(fake) == 1
    assert fake.count(path="/manager/status") == 10


async def test_refresh_before_expiry_without_a_401(api, fake):
    await api.manager_status()
    fake.advance(830)  # 70 s left: still fresh
    await api.manager_status()
    assert _logins(fake) == 1
    fake.advance(20)  # 50 s left: inside the 60 s margin, refresh first
    await api.manager_status()
    assert _logins(fake) == 2
    assert all(c.status != 401 for c in fake.calls)


async def test_token_expiry_is_read_from_the_jwt(fake, clock):
    fake.token_lifetime = 300
    client = WazuhApiClient("https://m:55000", "wazuh-reader", "fake-api-password",
                            transport=fake.manager_transport(), clock=clock)
    await client.manager_status()
    fake.advance(250)  # 50 s left of 300: refresh
    await client.manager_status()
    assert _logins(fake) == 2
    await client.aclose()


def test_unreadable_token_expiry_assumes_900_seconds():
    assert token_expiry("not-a-jwt", 1000.0) == 1900.0
    payload = base64.urlsafe_b64encode(msgspec.json.encode({"exp": 5000})).rstrip(b"=").decode()
    assert token_expiry(f"h.{payload}.s", 1000.0) == 5000.0


async def test_one_retry_after_401(api, fake):
    await api.manager_status()
    fake.expire_tokens()  # server-side invalidation: the client still thinks it is fresh
    body = await api.manager_status()
    assert body["error"] == 0
    assert _logins(fake) == 2
    statuses = [c.status for c in fake.calls if c.path == "/manager/status"]
    assert statuses == [200, 401, 200]


async def test_second_401_is_an_auth_error_and_not_retried_again(fake, clock):
    fake.token_lifetime = 0  # every token is invalid on arrival
    client = WazuhApiClient("https://m:55000", "wazuh-reader", "fake-api-password",
                            transport=fake.manager_transport(), clock=clock)
    with pytest.raises(WazuhAuthError) as info:
        await client.manager_status()
    assert info.value.upstream_status == 401
    assert _logins(fake) == 2
    assert fake.count(path="/manager/status") == 2
    await client.aclose()


async def test_login_401_is_never_retried(fake, clock):
    client = WazuhApiClient("https://m:55000", "wazuh-reader", "wrong", transport=fake.manager_transport(),
                            clock=clock)
    with pytest.raises(WazuhAuthError) as info:
        await client.manager_status()
    assert info.value.code == "wazuh_auth_failed"
    assert info.value.status_code == 502
    assert _logins(fake) == 1
    assert fake.count(path="/manager/status") == 0
    await client.aclose()


async def test_login_blocked_after_failed_attempts(fake, clock):
    fake.max_login_attempts = 2
    bad = WazuhApiClient("https://m:55000", "wazuh-reader", "wrong", transport=fake.manager_transport(), clock=clock)
    for _ in range(2):
        with pytest.raises(WazuhAuthError):
            await bad.manager_status()
    good = WazuhApiClient("https://m:55000", "wazuh-reader", "fake-api-password",
                          transport=fake.manager_transport(), clock=clock)
    with pytest.raises(WazuhAuthError) as info:
        await good.manager_status()
    assert info.value.code == "wazuh_login_blocked"
    assert info.value.wazuh_error == 6000
    fake.advance(301)
    assert (await good.manager_status())["error"] == 0
    await bad.aclose()
    await good.aclose()


async def test_legacy_manager_falls_back_to_get_login(api, fake):
    fake.legacy_get_login = True
    await api.manager_status()
    await api.manager_status()
    logins = [(c.method, c.status) for c in fake.calls if c.path == LOGIN]
    assert logins == [("POST", 405), ("GET", 200)]


async def test_rate_limit_maps_to_rate_limited(api, fake):
    fake.rate_limit_per_minute = 2  # login + one call
    await api.manager_status()
    with pytest.raises(WazuhRateLimited) as info:
        await api.manager_status()
    err = info.value
    assert err.wazuh_error == 6001
    assert err.status_code == 503
    assert err.retry_after == 60
    assert err.body()["title"] == "Too Many Requests"
    fake.advance(60)
    assert (await api.manager_status())["error"] == 0
    assert _logins(fake) == 1


async def test_daemons_not_ready_is_retryable_unavailable(api, fake):
    fake.daemons_not_ready = True
    with pytest.raises(WazuhUnavailable) as info:
        await api.manager_status()
    err = info.value
    assert err.retryable and err.wazuh_error == 1017 and err.upstream_status == 500
    assert err.code == "wazuh_upstream_error"
    assert err.body()["title"] == "Wazuh Internal Error"


async def test_manager_down_is_unavailable(api, fake):
    fake.down = True
    with pytest.raises(WazuhUnavailable) as info:
        await api.manager_status()
    assert info.value.code == "wazuh_unreachable"


async def test_rule_lookup_bodies(api):
    found = await api.rules([5712])
    assert found["error"] == 0
    assert found["data"]["affected_items"][0]["id"] == 5712
    missing = await api.rules([999999])
    assert missing["error"] == 1
    assert missing["data"]["failed_items"][0]["error"]["code"] == 1208
    mixed = await api.rules([5712, 999999])
    assert mixed["error"] == 2
    assert mixed["message"] == "Some rules were not returned"


async def test_rules_query_parameter_is_comma_list(api, fake):
    await api.rules([5710, 5712])
    call = [c for c in fake.calls if c.path == "/rules"][0]
    assert call.query == [("rule_ids", "5710,5712")]


async def test_rejected_request_maps_to_request_rejected(api):
    with pytest.raises(WazuhRequestRejected) as info:
        await api.get("probe", "/no/such/endpoint")
    assert info.value.upstream_status == 404


# --- indexer -----------------------------------------------------------------

CONTRACT_BODY = {
    "size": 10,
    "sort": [{"timestamp": {"order": "desc", "unmapped_type": "date"}}],
    "track_total_hits": True,
    "query": {"bool": {"filter": [{"term": {"rule.id": "5710"}}, {"term": {"data.srcip": "203.0.113.45"}}]}},
}


async def test_indexer_search_sends_basic_and_the_body(indexer, fake):
    result = await indexer.search("wazuh-alerts-4.x-*", CONTRACT_BODY)
    assert fake.search_bodies == [CONTRACT_BODY]
    call = fake.calls[0]
    assert (call.method, call.path, call.auth_scheme) == ("POST", "/wazuh-alerts-4.x-*/_search", "Basic")
    assert call.query == [("ignore_unavailable", "true")]
    hits = result["hits"]
    assert hits["total"] == {"value": 2, "relation": "eq"}
    stamps = [h["_source"]["timestamp"] for h in hits["hits"]]
    assert stamps == ["2026-03-02T14:07:31.482+0000", "2026-03-01T22:51:09.007+0000"]
    assert all(h["_score"] is None and isinstance(h["sort"][0], int) for h in hits["hits"])
    assert result["_shards"]["failed"] == 0


@pytest.mark.parametrize("empty", [False, True])
async def test_indexer_401_non_json_body(fake, empty):
    fake.empty_401_body = empty
    client = WazuhIndexerClient("https://i:9200", "alerts-reader", "wrong", transport=fake.indexer_transport())
    with pytest.raises(WazuhAuthError) as info:
        await client.search("wazuh-alerts-4.x-*", CONTRACT_BODY)
    assert info.value.upstream_status == 401
    assert info.value.target == "indexer"
    await client.aclose()


async def test_indexer_403_is_permission_denied(fake):
    fake.indexer_users["no-perm"] = ("pw", False)
    client = WazuhIndexerClient("https://i:9200", "no-perm", "pw", transport=fake.indexer_transport())
    with pytest.raises(WazuhPermissionDenied) as info:
        await client.search("wazuh-alerts-4.x-*", CONTRACT_BODY)
    assert info.value.title == "security_exception"
    await client.aclose()


async def test_indexer_503_and_429(indexer, fake):
    fake.indexer_unavailable = True
    with pytest.raises(WazuhUnavailable) as info:
        await indexer.search("wazuh-alerts-4.x-*", CONTRACT_BODY)
    assert info.value.upstream_status == 503 and info.value.title == "cluster_block_exception"
    fake.indexer_unavailable = False
    fake.indexer_overloaded = True
    with pytest.raises(WazuhRateLimited):
        await indexer.search("wazuh-alerts-4.x-*", CONTRACT_BODY)


async def test_indexer_down(indexer, fake):
    fake.indexer_down = True
    with pytest.raises(WazuhUnavailable) as info:
        await indexer.search("wazuh-alerts-4.x-*", CONTRACT_BODY)
    assert info.value.target == "indexer"


async def test_indexer_rejects_unimplemented_query(indexer):
    with pytest.raises(WazuhRequestRejected) as info:
        await indexer.search("wazuh-alerts-4.x-*", {"query": {"wildcard": {"rule.id": "57*"}}})
    assert info.value.title == "parsing_exception"
