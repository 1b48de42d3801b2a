"""Leak test: canary secrets never reach a result, an exception or a log record.

Both passwords and the fake's tokens are unique canaries. Every adapter method
runs through success and each failure path; everything the caller or an
operator could see is collected and searched for the canaries (and for the
Basic header values derived from them).
"""

from __future__ import annotations

import base64
import logging
import traceback
import uuid
from typing import Any

import httpx
import msgspec
import pytest
import respx

from opsgate_tool_wazuh.adapter import WazuhAdapter
from opsgate_tool_wazuh.client import CallTrace
from opsgate_tool_wazuh.fake import FakeClock, FakeWazuh

API_USER, IDX_USER = "wazuh-reader", "alerts-reader"
API_REF, IDX_REF = "env:WAZUH_API", "env:WAZUH_INDEXER"


class Canaries:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex
        self.api_pw = f"CANARY-API-PW-{tag}"
        self.idx_pw = f"CANARY-IDX-PW-{tag}"
        self.token = f"CANARYTOKEN{tag}"
        self.env = {"WAZUH_API_URL": "https://wazuh-manager.test:55000", "WAZUH_API_USER": API_USER,
                    "WAZUH_API_PASSWORD": self.api_pw, "WAZUH_INDEXER_URL": "https://wazuh-indexer.test:9200",
                    "WAZUH_INDEXER_USER": IDX_USER, "WAZUH_INDEXER_PASSWORD": self.idx_pw}
        self.seen: list[str] = []

    def needles(self) -> list[str]:
        basic = [base64.b64encode(f"{u}:{p}".encode()).decode()
                 for u, p in ((API_USER, self.api_pw), (IDX_USER, self.idx_pw))]
        return [self.api_pw, self.idx_pw, self.token, "CANARY", *basic]

    def add_result(self, value: Any) -> None:
        self.seen += [repr(value), msgspec.json.encode(value).decode()]

    def add_exception(self, exc: BaseException) -> None:
        chain: BaseException | None = exc
        while chain is not None:
            self.seen += [str(chain), repr(chain)]
            chain = chain.__cause__ or chain.__context__
        self.seen.append("".join(traceback.format_exception(exc)))
        body = getattr(exc, "body", None)
        if callable(body):
            self.seen.append(msgspec.json.encode(body()).decode())

    async def run(self, coro: Any) -> Any:
        try:
            result = await coro
        except Exception as exc:  # every failure path is collected, none is expected to escape
            self.add_exception(exc)
            return exc
        self.add_result(result)
        return result

    def assert_clean(self, caplog: pytest.LogCaptureFixture) -> None:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        for record in caplog.records:
            self.seen += [formatter.format(record), repr(record.args), repr(record.__dict__)]
        assert caplog.records, "expected log records to inspect"
        blob = "\n".join(self.seen)
        for needle in self.needles():
            assert needle not in blob, f"canary leaked: {needle[:18]}..."


@pytest.fixture
def canaries() -> Canaries:
    return Canaries()


@pytest.fixture
def cfake(canaries: Canaries) -> FakeWazuh:
    fake = FakeWazuh(api_user=API_USER, api_password=canaries.api_pw, indexer_user=IDX_USER,
                     indexer_password=canaries.idx_pw, token_marker=canaries.token, clock=FakeClock())
    return fake


def _adapter(fake: FakeWazuh, env: dict[str, str]) -> WazuhAdapter:
    return WazuhAdapter.from_env(env, transport=fake.manager_transport(), indexer_transport=fake.indexer_transport(),
                                 clock=fake.clock)


async def _exercise(c: Canaries, adapter: WazuhAdapter) -> list[Any]:
    """Every adapter method once; returns what came back (results or exceptions)."""
    out = []
    trace = CallTrace()
    out.append(await c.run(adapter.manager_status(API_REF, trace=trace)))
    c.add_result(trace.as_dict())
    out.append(await c.run(adapter.get_rule(API_REF, "5712")))
    out.append(await c.run(adapter.get_rule(API_REF, "999999")))
    out.append(await c.run(adapter.search_alerts(IDX_REF, rule_id="5710", source_ip="203.0.113.45", limit=5)))
    out.append(await c.run(adapter.health()))
    return out


async def test_no_canary_leaks_through_the_fake(canaries, cfake, caplog):
    caplog.set_level(logging.DEBUG)
    c, fake = canaries, cfake
    adapter = _adapter(fake, c.env)

    # success paths (and the rule-not-found error)
    ok = await _exercise(c, adapter)
    assert ok[0]["data"]["error"] == 0 and ok[3]["data"]["alerts"] and ok[4]["ok"] is True
    assert fake.issued_tokens and all(c.token in t for t in fake.issued_tokens)

    # input validation and credential refs
    await c.run(adapter.get_rule(API_REF, "not-a-rule"))
    await c.run(adapter.search_alerts(IDX_REF, source_ip="999.1.1.1"))
    await c.run(adapter.search_alerts(IDX_REF, limit=500))
    await c.run(adapter.manager_status("vault:kv/unknown"))
    await c.run(adapter.search_alerts(API_REF))

    # token invalidated server-side: one retry succeeds
    fake.expire_tokens()
    await c.run(adapter.manager_status(API_REF))

    # upstream failures, one at a time
    fake.daemons_not_ready = True
    await _exercise(c, adapter)
    fake.daemons_not_ready = False
    fake.rate_limit_per_minute = 0
    await _exercise(c, adapter)
    fake.rate_limit_per_minute = None
    fake.indexer_unavailable = True
    await _exercise(c, adapter)
    fake.indexer_unavailable = False
    fake.indexer_overloaded = True
    await _exercise(c, adapter)
    fake.indexer_overloaded = False
    fake.down, fake.indexer_down = True, True
    await _exercise(c, adapter)
    fake.down, fake.indexer_down = False, False

    # a token refused on every call (second 401 after one re-login)
    fake.token_lifetime = 0
    fake.expire_tokens()
    await _exercise(c, adapter)
    fake.token_lifetime = 900

    # the indexer user loses its permission, then its password changes (text and empty 401)
    fake.indexer_users[IDX_USER] = (c.idx_pw, False)
    await _exercise(c, adapter)
    fake.indexer_users[IDX_USER] = ("rotated", True)
    await _exercise(c, adapter)
    fake.empty_401_body = True
    await _exercise(c, adapter)

    # the API password changes: login 401, then the brute-force block (403 / 6000)
    fake.api_users[API_USER] = "rotated"
    fake.expire_tokens()
    fake.max_login_attempts = 3
    for _ in range(3):
        await _exercise(c, adapter)
    assert fake.count(path="/security/user/authenticate") > 3

    # nothing configured for the indexer, then for anything
    half = _adapter(fake, {k: v for k, v in c.env.items() if not k.startswith("WAZUH_INDEXER_")})
    await _exercise(c, half)
    await _exercise(c, WazuhAdapter())
    c.add_result(repr(adapter))
    c.add_result([repr(adapter.settings), repr(adapter.indexer_settings), repr(adapter._api), repr(adapter._indexer)])

    await adapter.aclose()
    await half.aclose()
    c.assert_clean(caplog)


async def test_upstream_echoing_secrets_is_scrubbed(canaries, caplog):
    """A hostile or buggy upstream that echoes the token or password back in its error detail."""
    caplog.set_level(logging.DEBUG)
    c = canaries
    token = "eyJhbGciOiJFUzUxMiJ9.eyJleHAiOjQxMDI0NDQ4MDB9." + c.token
    basic = base64.b64encode(f"{API_USER}:{c.api_pw}".encode()).decode()
    adapter = WazuhAdapter.from_env(c.env)
    with respx.mock(assert_all_called=False) as mock:
        mock.post("https://wazuh-manager.test:55000/security/user/authenticate").respond(
            200, json={"data": {"token": token}, "error": 0})
        mock.get("https://wazuh-manager.test:55000/manager/status").respond(
            500, json={"title": f"Bearer {token}", "detail": f"auth Basic {basic} pw={c.api_pw} tok={token}",
                       "error": 1000})
        mock.get("https://wazuh-manager.test:55000/rules").respond(
            403, json={"title": "Permission Denied", "detail": f"token {c.token} denied", "error": 4000})
        mock.post("https://wazuh-indexer.test:9200/wazuh-alerts-4.x-*/_search").respond(
            400, json={"error": {"type": "parsing_exception", "reason": f"bad {c.idx_pw}"}, "status": 400})
        err = await c.run(adapter.manager_status(API_REF))
        assert err.body()["wazuh_error"] == 1000 and "[redacted]" in err.body()["detail"]
        await c.run(adapter.get_rule(API_REF, 5710))
        await c.run(adapter.search_alerts(IDX_REF))
        mock.get("https://wazuh-manager.test:55000/").respond(
            401, json={"title": "Unauthorized", "detail": f"Invalid token {token}"})
        err = await c.run(adapter._api_client("probe").get("probe", "/"))
        assert err.code == "wazuh_auth_failed" and err.body()["detail"] == "Invalid token [redacted]"
        mock.get("https://wazuh-manager.test:55000/manager/info").mock(
            side_effect=httpx.ConnectError("[Errno 111] Connection refused"))
        await c.run(adapter.health())
    await adapter.aclose()
    c.assert_clean(caplog)
