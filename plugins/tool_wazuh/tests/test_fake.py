"""The fake speaks the wire formats of contracts/wazuh.md (checked with a plain httpx client)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from opsgate_tool_wazuh.fake import FakeWazuh

BASIC_API = httpx.BasicAuth("wazuh-reader", "fake-api-password")
BASIC_IDX = httpx.BasicAuth("alerts-reader", "fake-indexer-password")


@pytest.fixture
async def manager(fake: FakeWazuh) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.manager_transport(), base_url="http://m") as client:
        yield client


@pytest.fixture
async def idx(fake: FakeWazuh) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.indexer_transport(), base_url="http://i", auth=BASIC_IDX) as client:
        yield client


async def _token(manager: httpx.AsyncClient) -> str:
    resp = await manager.post("/security/user/authenticate", auth=BASIC_API)
    return resp.json()["data"]["token"]


async def test_login_shapes(manager):
    resp = await manager.post("/security/user/authenticate", auth=BASIC_API)
    assert resp.status_code == 200 and resp.json()["error"] == 0
    header, payload, _sig = resp.json()["data"]["token"].split(".")
    claims = msgspec.json.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["exp"] - claims["nbf"] == 900 and claims["sub"] == "wazuh-reader" and claims["iss"] == "wazuh"
    raw = await manager.post("/security/user/authenticate", params={"raw": "true"}, auth=BASIC_API)
    assert raw.headers["content-type"].startswith("text/plain") and raw.text.count(".") == 2
    bad = await manager.post("/security/user/authenticate", auth=("wazuh-reader", "nope"))
    assert bad.status_code == 401
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json() == {"title": "Unauthorized", "detail": "Invalid credentials"}


async def test_data_route_auth_errors(manager, fake):
    missing = await manager.get("/manager/status")
    assert missing.status_code == 401 and missing.json()["detail"] == "No authorization token provided"
    junk = await manager.get("/manager/status", headers={"Authorization": "Bearer junk"})
    assert junk.json()["detail"] == "Invalid token"
    token = await _token(manager)
    fake.advance(901)
    expired = await manager.get("/manager/status", headers={"Authorization": f"Bearer {token}"})
    assert expired.status_code == 401 and expired.json()["detail"] == "Invalid token"


async def test_strict_parameters(manager):
    auth = {"Authorization": f"Bearer {await _token(manager)}"}
    for params in ({"bogus": "1"}, {"limit": "0"}, {"rule_ids": "abc"}, {"rule_ids": "0"}, {"status": "maybe"}):
        resp = await manager.get("/rules", params=params, headers=auth)
        assert resp.status_code == 400, params
        assert resp.json()["title"] == "Bad Request"
    assert (await manager.get("/manager/status", params={"limit": "1"}, headers=auth)).status_code == 400
    assert (await manager.get("/manager/status", params={"pretty": "true"}, headers=auth)).status_code == 200


async def test_rules_filters_and_error_summary(manager):
    auth = {"Authorization": f"Bearer {await _token(manager)}"}
    everything = (await manager.get("/rules", headers=auth)).json()
    assert everything["data"]["total_affected_items"] == 5 and everything["error"] == 0
    enabled = (await manager.get("/rules", params={"status": "enabled"}, headers=auth)).json()
    assert 5760 not in [r["id"] for r in enabled["data"]["affected_items"]]
    ranged = (await manager.get("/rules", params={"level": "5-10", "limit": "2", "offset": "1"}, headers=auth)).json()
    assert ranged["data"]["total_affected_items"] == 4 and len(ranged["data"]["affected_items"]) == 2
    filtered = (await manager.get("/rules", params={"rule_ids": "5712", "group": "invalid_login"},
                                  headers=auth)).json()
    assert filtered["data"]["affected_items"] == [] and filtered["error"] == 0
    mixed = (await manager.get("/rules", params={"rule_ids": "5712,999999"}, headers=auth)).json()
    assert mixed["error"] == 2 and mixed["data"]["failed_items"][0]["id"] == [999999]


async def test_manager_info_and_status(manager, fake):
    auth = {"Authorization": f"Bearer {await _token(manager)}"}
    info = (await manager.get("/manager/info", headers=auth)).json()
    assert info["data"]["affected_items"][0]["version"] == "v4.14.1"
    fake.daemons_not_ready = True
    resp = await manager.get("/manager/status", headers=auth)
    assert resp.status_code == 500 and resp.json()["error"] == 1017


async def test_logout_revokes_and_is_counted(manager, fake):
    token = await _token(manager)
    resp = await manager.delete("/security/user/authenticate", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    assert (await manager.get("/manager/status", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    fake.logouts = 0  # the fixture asserts that the adapter never logs out; this test did on purpose
    fake.calls.clear()


async def test_indexer_search_features(idx, fake):
    body = {"size": 2, "sort": [{"@timestamp": "asc"}], "track_total_hits": True,
            "query": {"bool": {"must": {"term": {"data.srcip": "203.0.113.45"}},
                               "filter": [{"range": {"timestamp": {"gte": "2026-03-02T00:00:00.000+0000"}}}]}},
            "_source": ["rule.id", "timestamp"]}
    resp = (await idx.post("/wazuh-alerts-4.x-*/_search", json=body)).json()
    assert resp["hits"]["total"] == {"value": 2, "relation": "eq"}
    assert [h["_source"] for h in resp["hits"]["hits"]] == [
        {"rule": {"id": "5710"}, "timestamp": "2026-03-02T14:07:31.482+0000"},
        {"rule": {"id": "5712"}, "timestamp": "2026-03-02T14:08:02.115+0000"}]
    assert resp["_shards"]["total"] == 6  # 3 shards per daily index, 2 indices match the pattern
    none = (await idx.post("/wazuh-archives-4.x-*/_search", json={})).json()
    assert none["hits"]["total"]["value"] == 0 and none["hits"]["hits"] == []


async def test_indexer_errors(idx, fake):
    missing = await idx.post("/wazuh-alerts-4.x-1999.01.01/_search", json={})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "index_not_found_exception"
    for body in ({"query": {"match": {"rule.id": "5710"}}}, {"aggs": {}}, {"sort": [{"rule.level": "desc"}]}):
        resp = await idx.post("/wazuh-alerts-4.x-*/_search", json=body)
        assert resp.status_code == 400 and resp.json()["error"]["type"] == "parsing_exception", body
    big = await idx.post("/wazuh-alerts-4.x-*/_search", json={"size": 10001})
    assert big.status_code == 400 and big.json()["error"]["type"] == "illegal_argument_exception"
    unknown = await idx.post("/wazuh-alerts-4.x-*/_search", params={"nope": "1"}, json={})
    assert unknown.status_code == 400
    bad = await idx.post("/wazuh-alerts-4.x-*/_search", json={}, auth=("alerts-reader", "wrong"))
    assert bad.status_code == 401 and bad.text == "Unauthorized"
    assert bad.headers["www-authenticate"] == 'Basic realm="OpenSearch Security"'


async def test_indexer_total_lower_bound(idx, fake):
    for i in range(12):
        fake.add_alert("5716", timestamp=f"2026-03-03T10:{i:02d}:00.000+0000", srcip="192.0.2.9")
    resp = (await idx.post("/wazuh-alerts-4.x-*/_search", json={"size": 1, "track_total_hits": 5})).json()
    assert resp["hits"]["total"] == {"value": 5, "relation": "gte"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_runs_as_a_server_on_loopback():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "opsgate_tool_wazuh.fake", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, trust_env=False) as client:
            for _ in range(100):
                try:
                    resp = await client.post("/security/user/authenticate", auth=BASIC_API)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("fake server did not start")
            token = resp.json()["data"]["token"]
            status = await client.get("/manager/status", headers={"Authorization": f"Bearer {token}"})
            assert status.json()["data"]["affected_items"][0]["wazuh-apid"] == "running"
            search = await client.post("/wazuh-alerts-4.x-*/_search", json={"size": 1}, auth=BASIC_IDX)
            assert search.json()["hits"]["total"]["value"] == 6
    finally:
        proc.terminate()
        proc.communicate(timeout=10)  # reap the process and close its pipe
