"""A fake Wazuh server API and Wazuh indexer speaking the real wire formats.

Built from contracts/wazuh.md section 5. One `FakeWazuh` object holds the
state of both servers and exposes three ASGI apps:

- `manager_app`: `POST|GET|DELETE /security/user/authenticate`, `GET /`,
  `GET /manager/status`, `GET /manager/info`, `GET /rules`, with JWT-shaped
  tokens that expire, the `{"data": ..., "error": 0}` envelopes, problem+json
  errors, strict query parameters, a login brute-force guard and an optional
  per-minute rate limit;
- `indexer_app`: `POST|GET /<pattern>/_search` with Basic auth (non-JSON 401),
  daily `wazuh-alerts-4.x-YYYY.MM.DD` indices, `bool` `filter`/`must` with
  `term` and `range`, sort on `timestamp`, `track_total_hits`, and a 400
  `parsing_exception` for anything it does not implement;
- `app`: both on one port (`/<pattern>/_search` goes to the indexer).

In-process use: `httpx.AsyncClient(transport=fake.manager_transport())`.
Test hooks: `expire_tokens()`, `revoke_all()`, `advance(seconds)`, `down`,
`indexer_down`, `daemons_not_ready`, `indexer_unavailable`,
`rate_limit_per_minute`, `calls` / `count()`, `logins`, `logouts`,
`search_bodies`.

As a server on loopback only: `python -m opsgate_tool_wazuh.fake --port 55000`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import fnmatch
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import msgspec

log = logging.getLogger(__name__)

__all__ = ["FakeClock", "FakeWazuh", "main"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON = "application/json; charset=UTF-8"
PROBLEM = "application/problem+json; charset=utf-8"
DAEMONS = ("wazuh-agentlessd", "wazuh-analysisd", "wazuh-authd", "wazuh-csyslogd", "wazuh-monitord",
           "wazuh-execd", "wazuh-integratord", "wazuh-logcollector", "wazuh-maild", "wazuh-remoted",
           "wazuh-reportd", "wazuh-syscheckd", "wazuh-clusterd", "wazuh-modulesd", "wazuh-db", "wazuh-apid")
_STOPPED = {"wazuh-agentlessd", "wazuh-csyslogd", "wazuh-integratord", "wazuh-maild", "wazuh-reportd",
            "wazuh-clusterd"}
_RULE_PARAMS_DONE = {"pretty", "wait_for_complete", "offset", "limit", "rule_ids", "status", "group", "level",
                     "filename", "relative_dirname"}
_RULE_PARAMS_KNOWN = _RULE_PARAMS_DONE | {"pci_dss", "gdpr", "gpg13", "hipaa", "nist-800-53", "tsc", "mitre",
                                          "search", "q", "select", "sort", "distinct"}
_SEARCH_PARAMS = {"ignore_unavailable", "allow_no_indices", "pretty"}
_SEARCH_BODY_KEYS = {"size", "from", "sort", "track_total_hits", "query", "_source"}
_SORT_FIELDS = {"timestamp", "@timestamp"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _dumps(obj: Any) -> bytes:
    return msgspec.json.encode(obj)


def _parse_time(value: Any) -> datetime:
    """An alert timestamp (`2026-03-02T14:07:31.482+0000`, ISO with Z) or epoch ms."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    text = str(value)
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class FakeClock:
    """Epoch seconds that tests can move forward; share it with the client under test."""

    def __init__(self, start: float | None = None) -> None:
        self._offset = 0.0
        self._start = start

    def __call__(self) -> float:
        base = time.time() if self._start is None else self._start
        return base + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds


@dataclass
class Call:
    """One request the fake saw (no credentials recorded, only the auth scheme)."""

    target: str
    method: str
    path: str
    query: list[tuple[str, str]]
    auth_scheme: str | None
    status: int = 0


@dataclass
class _Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    client_ip: str

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query)

    def basic(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(value[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user, password

    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:].strip() if value.lower().startswith("bearer ") else None

    def auth_scheme(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value.split(" ", 1)[0].capitalize() if value else None


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)


class _ParseError(Exception):
    pass


def _problem(status: int, title: str, detail: str | None = None, **extra: Any) -> _Response:
    body: dict[str, Any] = {"title": title}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return _Response(status, _dumps(body), PROBLEM)


def _os_error(status: int, etype: str, reason: str, **extra: Any) -> _Response:
    cause = {"type": etype, "reason": reason, **extra}
    return _Response(status, _dumps({"error": {"root_cause": [cause], **cause}, "status": status}))


def _sshd_rules() -> list[dict[str, Any]]:
    base = {"filename": "0095-sshd_rules.xml", "relative_dirname": "ruleset/rules", "status": "enabled",
            "gpg13": [], "hipaa": ["164.312.b"], "tsc": ["CC6.1", "CC6.8", "CC7.2", "CC7.3"]}
    return [
        {**base, "id": 5710, "level": 5,
         "details": {"if_sid": "5700", "match": {"pattern": "illegal user|invalid user"}},
         "pci_dss": ["10.2.4", "10.2.5", "10.6.1"], "gdpr": ["IV_35.7.d", "IV_32.2"], "gpg13": ["7.1"],
         "nist_800_53": ["AU.14", "AC.7", "AU.6"], "mitre": ["T1110.001", "T1021.004"],
         "groups": ["syslog", "sshd", "invalid_login", "authentication_failed"],
         "description": "sshd: Attempt to login using a non-existent user"},
        {**base, "id": 5712, "level": 10,
         "details": {"frequency": "8", "timeframe": "120", "ignore": "60", "if_matched_sid": "5710",
                     "same_source_ip": ""},
         "pci_dss": ["11.4", "10.2.4", "10.2.5"], "gdpr": ["IV_35.7.d", "IV_32.2"],
         "nist_800_53": ["SI.4", "AU.14", "AC.7"], "mitre": ["T1110"],
         "groups": ["authentication_failures", "syslog", "sshd"],
         "description": "sshd: brute force trying to get access to the system. Non existent user."},
        {**base, "id": 5715, "level": 3,
         "details": {"if_sid": "5700", "match": {"pattern": "^Accepted|authenticated.$"}},
         "pci_dss": ["10.2.5"], "gdpr": ["IV_32.2"], "nist_800_53": ["AU.14", "AC.7"], "mitre": ["T1078", "T1021"],
         "groups": ["syslog", "sshd", "authentication_success"],
         "description": "sshd: authentication success."},
        {**base, "id": 5716, "level": 5,
         "details": {"if_sid": "5700", "match": {"pattern": "^Failed|^error: PAM: Authentication"}},
         "pci_dss": ["10.2.4", "10.2.5"], "gdpr": ["IV_35.7.d", "IV_32.2"], "nist_800_53": ["AU.14", "AC.7"],
         "mitre": ["T1110.001"], "groups": ["syslog", "sshd", "authentication_failed"],
         "description": "sshd: authentication failed."},
        {**base, "id": 5760, "level": 5, "status": "disabled",
         "details": {"if_sid": "5700,5716",
                     "match": {"pattern": "Failed password|Failed keyboard|authentication error"}},
         "pci_dss": ["10.2.4", "10.2.5"], "gdpr": ["IV_35.7.d", "IV_32.2"], "nist_800_53": ["AU.14", "AC.7"],
         "mitre": ["T1110.001", "T1021.004"], "groups": ["syslog", "sshd", "authentication_failed"],
         "description": "sshd: authentication failed."},
    ]


class FakeWazuh:
    """State and ASGI apps of a fake Wazuh manager API and indexer.

    `token_marker` is put into every token's signature segment, so a leak
    test can make the fake's tokens canaries.
    """

    def __init__(self, *, api_user: str = "wazuh-reader", api_password: str = "fake-api-password",
                 indexer_user: str = "alerts-reader", indexer_password: str = "fake-indexer-password",
                 token_lifetime: int = 900, clock: Callable[[], float] | None = None, token_marker: str = "",
                 seed: bool = True) -> None:
        self.clock = clock or FakeClock()
        self.api_users = {api_user: api_password}
        # indexer user -> (password, may search wazuh-alerts-*)
        self.indexer_users: dict[str, tuple[str, bool]] = {indexer_user: (indexer_password, True)}
        self.token_lifetime = token_lifetime
        self.token_marker = token_marker
        self.version = "v4.14.1"
        self.daemons = {name: ("stopped" if name in _STOPPED else "running") for name in DAEMONS}
        self.rules: list[dict[str, Any]] = _sshd_rules()
        self.indices: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        # switches
        self.down = False
        self.indexer_down = False
        self.daemons_not_ready = False
        self.indexer_unavailable = False
        self.indexer_overloaded = False
        self.legacy_get_login = False  # behave like a 4.0-4.3 manager (POST login -> 405)
        self.empty_401_body = False  # OpenSearch 2.11-2.13 behaviour
        self.shard_failures = 0
        self.rate_limit_per_minute: int | None = None
        self.max_login_attempts = 50
        self.block_time = 300
        # observations
        self.calls: list[Call] = []
        self.logins = 0
        self.logouts = 0
        self.failed_logins: dict[str, int] = {}
        self.search_bodies: list[dict[str, Any]] = []
        self.issued_tokens: list[str] = []
        self._tokens: dict[str, dict[str, Any]] = {}
        self._revoked: set[str] = set()
        self._blocked_until: dict[str, float] = {}
        self._minute: tuple[int, int] = (0, 0)
        if seed:
            self._seed_alerts()

    # --- test hooks ---------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the fake's clock (and any client sharing the clock) forward."""
        advance = getattr(self.clock, "advance", None)
        if advance is None:
            raise TypeError("advance() needs a FakeClock")
        advance(seconds)

    def expire_tokens(self) -> None:
        """Make every issued token invalid now (the client still believes it is valid)."""
        self._revoked.update(self._tokens)

    revoke_all = expire_tokens

    def count(self, target: str | None = None, path: str | None = None, method: str | None = None) -> int:
        """How many requests matched (all of them without arguments)."""
        return sum(1 for c in self.calls if (target is None or c.target == target)
                   and (path is None or c.path == path) and (method is None or c.method == method))

    def add_alert(self, rule_id: str, *, timestamp: str, srcip: str | None = None, level: int = 5,
                  description: str = "", agent: dict[str, str] | None = None, **extra: Any) -> str:
        """Index one alert document in its daily index; returns its `_id`."""
        when = _parse_time(timestamp)
        source: dict[str, Any] = {
            "timestamp": timestamp,
            "@timestamp": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "id": f"{int(when.timestamp())}.{secrets.randbelow(10_000_000)}",
            "rule": {"id": str(rule_id), "level": level, "description": description,
                     "groups": ["syslog", "sshd"], "firedtimes": 1, "mail": False},
            "agent": agent or {"id": "017", "name": "web-frontend-02", "ip": "192.0.2.27"},
            "manager": {"name": "wazuh-manager-1"},
            "decoder": {"parent": "sshd", "name": "sshd"},
            "location": "journald",
        }
        if srcip is not None:
            source["data"] = {"srcip": srcip}
        source.update(extra)
        doc_id = _b64url(secrets.token_bytes(15))
        self.indices.setdefault(f"wazuh-alerts-4.x-{when:%Y.%m.%d}", []).append((doc_id, source))
        return doc_id

    def _seed_alerts(self) -> None:
        invalid = "sshd: Attempt to login using a non-existent user"
        self.add_alert("5710", timestamp="2026-03-01T22:51:09.007+0000", srcip="203.0.113.45", description=invalid,
                       full_log="Mar  1 22:51:09 web-frontend-02 sshd[47001]: Invalid user admin from 203.0.113.45")
        self.add_alert("5710", timestamp="2026-03-02T14:07:31.482+0000", srcip="203.0.113.45", description=invalid,
                       full_log="Mar  2 14:07:30 web-frontend-02 sshd[48211]: Invalid user oracle from 203.0.113.45")
        self.add_alert("5712", timestamp="2026-03-02T14:08:02.115+0000", srcip="203.0.113.45", level=10,
                       description="sshd: brute force trying to get access to the system. Non existent user.")
        self.add_alert("5715", timestamp="2026-03-02T09:12:44.301+0000", srcip="198.51.100.7", level=3,
                       description="sshd: authentication success.")
        self.add_alert("5710", timestamp="2026-03-02T11:40:00.000+0000", srcip="2001:db8::5", description=invalid)
        self.add_alert("502", timestamp="2026-03-02T00:00:01.000+0000", level=3,
                       description="Wazuh server started.", agent={"id": "000", "name": "wazuh-manager-1"})

    # --- transports and apps ----------------------------------------------

    def manager_transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.manager_app)

    def indexer_transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.indexer_app)

    async def manager_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi("manager", scope, receive, send)

    async def indexer_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi("indexer", scope, receive, send)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        await self._asgi("indexer" if path.endswith("/_search") else "manager", scope, receive, send)

    async def _asgi(self, target: str, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = _Request(
            method=scope["method"], path=scope["path"],
            query=parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True),
            headers={k.decode().lower(): v.decode() for k, v in scope.get("headers", [])},
            body=body, client_ip=(scope.get("client") or ("127.0.0.1", 0))[0])
        call = Call(target, request.method, request.path, request.query, request.auth_scheme())
        self.calls.append(call)
        if (self.down and target == "manager") or (self.indexer_down and target == "indexer"):
            call.status = -1
            raise httpx.ConnectError(f"fake {target} is down")
        response = self._manager(request) if target == "manager" else self._indexer(request)
        call.status = response.status
        log.debug("fake %s %s %s -> %d", target, request.method, request.path, response.status)
        headers = [(b"content-type", response.content_type.encode()),
                   (b"content-length", str(len(response.body)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in response.headers]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    # --- manager --------------------------------------------------------------

    def _manager(self, req: _Request) -> _Response:
        if self.rate_limit_per_minute is not None:
            minute = int(self.clock() // 60)
            count = self._minute[1] + 1 if self._minute[0] == minute else 1
            self._minute = (minute, count)
            if count > self.rate_limit_per_minute:
                return _problem(429, "Too Many Requests", "Maximum number of requests per minute reached",
                                remediation="Raise the per-minute limit in the API configuration if this is "
                                            "expected load", error=6001)
        routes: dict[str, tuple[set[str], Callable[[_Request], _Response]]] = {
            "/security/user/authenticate": ({"POST", "GET", "DELETE"}, self._authenticate),
            "/": ({"GET"}, self._root),
            "/manager/status": ({"GET"}, self._manager_status),
            "/manager/info": ({"GET"}, self._manager_info),
            "/rules": ({"GET"}, self._rules),
        }
        route = routes.get(req.path.rstrip("/") or "/")
        if route is None:
            return _problem(404, "Not Found", "404: Not Found")
        methods, handler = route
        if req.method not in methods:
            return _problem(405, "Method Not Allowed", "405: Method Not Allowed")
        return handler(req)

    def _unknown_params(self, req: _Request, allowed: Iterable[str]) -> _Response | None:
        extra = sorted({k for k, _ in req.query} - set(allowed))
        if extra:
            return _problem(400, "Bad Request", f"Unknown query parameter(s): {', '.join(extra)}")
        return None

    def _mint(self, user: str) -> str:
        now = int(self.clock())
        header = _b64url(_dumps({"alg": "ES512", "typ": "JWT"}))
        payload = _b64url(_dumps({"iss": "wazuh", "aud": "Wazuh API REST", "nbf": now,
                                  "exp": now + self.token_lifetime, "sub": user, "run_as": False,
                                  "rbac_roles": [1], "rbac_mode": "white"}))
        token = f"{header}.{payload}.{self.token_marker}{_b64url(secrets.token_bytes(24))}"
        self._tokens[token] = {"sub": user, "exp": now + self.token_lifetime}
        self.issued_tokens.append(token)
        return token

    def _authenticate(self, req: _Request) -> _Response:
        if req.method == "DELETE":
            user = self._token_user(req)
            if isinstance(user, _Response):
                return user
            self.logouts += 1
            self._revoked.update(t for t, meta in self._tokens.items() if meta["sub"] == user)
            return _Response(200, _dumps({"data": {"affected_items": [], "total_affected_items": 0,
                                                   "total_failed_items": 0, "failed_items": []},
                                          "message": "User was successfully logged out", "error": 0}))
        if req.method == "POST" and self.legacy_get_login:
            return _problem(405, "Method Not Allowed", "405: Method Not Allowed")
        bad = self._unknown_params(req, {"pretty", "wait_for_complete", "raw"})
        if bad:
            return bad
        now = self.clock()
        if self._blocked_until.get(req.client_ip, 0) > now:
            return _problem(403, "Permission Denied", "Login attempt limit reached", error=6000,
                            remediation="Try again later")
        creds = req.basic()
        if creds is None or self.api_users.get(creds[0]) != creds[1] or not creds[1]:
            failed = self.failed_logins.get(req.client_ip, 0) + 1
            self.failed_logins[req.client_ip] = failed
            if failed >= self.max_login_attempts:
                self._blocked_until[req.client_ip] = now + self.block_time
            return _problem(401, "Unauthorized", "Invalid credentials")
        self.logins += 1
        token = self._mint(creds[0])
        if req.params.get("raw") == "true":
            return _Response(200, token.encode(), "text/plain; charset=utf-8")
        return _Response(200, _dumps({"data": {"token": token}, "error": 0}))

    def _token_user(self, req: _Request) -> str | _Response:
        token = req.bearer()
        if not req.headers.get("authorization"):
            return _problem(401, "Unauthorized", "No authorization token provided")
        meta = self._tokens.get(token or "")
        if meta is None or token in self._revoked or meta["exp"] <= self.clock():
            return _problem(401, "Unauthorized", "Invalid token")
        return meta["sub"]

    def _data_route(self, req: _Request, allowed: Iterable[str]) -> _Response | None:
        user = self._token_user(req)
        if isinstance(user, _Response):
            return user
        bad = self._unknown_params(req, allowed)
        if bad:
            return bad
        if self.daemons_not_ready:
            return _problem(500, "Wazuh Internal Error",
                            "Some Wazuh daemons are not ready yet in node \"node01\" (wazuh-modulesd->failed)",
                            error=1017)
        return None

    @staticmethod
    def _envelope(items: list[Any], message: str, *, total: int | None = None,
                  failed: list[dict[str, Any]] | None = None, error: int = 0) -> _Response:
        failed = failed or []
        return _Response(200, _dumps({
            "data": {"affected_items": items, "total_affected_items": len(items) if total is None else total,
                     "total_failed_items": sum(len(f["id"]) for f in failed), "failed_items": failed},
            "message": message, "error": error}))

    def _root(self, req: _Request) -> _Response:
        denied = self._data_route(req, {"pretty", "wait_for_complete"})
        if denied:
            return denied
        return _Response(200, _dumps({"data": {"title": "Wazuh API REST", "api_version": self.version.lstrip("v"),
                                               "revision": 41401, "license_name": "GPL 2.0",
                                               "hostname": "wazuh-manager-1",
                                               "timestamp": datetime.fromtimestamp(self.clock(), UTC).isoformat()},
                                      "error": 0}))

    def _manager_status(self, req: _Request) -> _Response:
        denied = self._data_route(req, {"pretty", "wait_for_complete"})
        return denied or self._envelope([dict(self.daemons)], "Processes status was successfully read")

    def _manager_info(self, req: _Request) -> _Response:
        denied = self._data_route(req, {"pretty", "wait_for_complete"})
        info = {"path": "/var/ossec", "version": self.version, "type": "server", "max_agents": "unlimited",
                "openssl_support": "yes", "tz_offset": "+0000", "tz_name": "UTC",
                "uuid": "3f6c1a52-9d0e-4b7a-8c21-5e4f0a9b7d13"}
        return denied or self._envelope([info], "Basic information was successfully read")

    def _rules(self, req: _Request) -> _Response:
        denied = self._data_route(req, _RULE_PARAMS_KNOWN)
        if denied:
            return denied
        params = req.params
        todo = sorted(set(params) - _RULE_PARAMS_DONE)
        if todo:
            return _problem(400, "Bad Request", f"fake: parameter(s) not implemented: {', '.join(todo)}")
        try:
            ids = [int(x) for x in params["rule_ids"].split(",")] if "rule_ids" in params else None
            limit = int(params.get("limit", "500"))
            offset = int(params.get("offset", "0"))
            level = params.get("level")
            lo, _, hi = (level or "0").partition("-")
            level_range = (int(lo), int(hi or lo))
        except ValueError:
            return _problem(400, "Bad Request", "Invalid parameter value")
        status = params.get("status", "all")
        if (ids is not None and any(i < 1 for i in ids)) or not 1 <= limit <= 100000 or offset < 0 \
                or status not in ("enabled", "disabled", "all"):
            return _problem(400, "Bad Request", "Invalid parameter value")
        known = {r["id"] for r in self.rules}
        missing = [i for i in dict.fromkeys(ids or []) if i not in known]
        selected = [r for r in self.rules
                    if (ids is None or r["id"] in ids)
                    and (status == "all" or r["status"] == status)
                    and ("group" not in params or params["group"] in r["groups"])
                    and (level is None or level_range[0] <= r["level"] <= level_range[1])
                    and ("filename" not in params or r["filename"] == params["filename"])
                    and ("relative_dirname" not in params or r["relative_dirname"] == params["relative_dirname"])]
        page = selected[offset:offset + limit]
        failed = [{"error": {"code": 1208, "message": "The rule does not exist or you do not have permission "
                                                      "to see it"}, "id": missing}] if missing else []
        if failed and page:
            return self._envelope(page, "Some rules were not returned", total=len(selected), failed=failed, error=2)
        if failed:
            return self._envelope([], "No rule was returned", total=0, failed=failed, error=1)
        message = "All selected rules were returned" if page else "No rule was returned"
        return self._envelope(page, message, total=len(selected))

    # --- indexer --------------------------------------------------------------

    def _indexer(self, req: _Request) -> _Response:
        creds = req.basic()
        user = self.indexer_users.get(creds[0]) if creds else None
        if creds is None or user is None or user[0] != creds[1]:
            body = b"" if self.empty_401_body else b"Unauthorized"
            return _Response(401, body, "text/plain; charset=UTF-8",
                             [("WWW-Authenticate", 'Basic realm="OpenSearch Security"')])
        match = re.fullmatch(r"/([^/]+)/_search", req.path)
        if match is None or req.method not in ("GET", "POST"):
            return _os_error(400, "illegal_argument_exception", f"no handler found for uri [{req.path}] and "
                                                                f"method [{req.method}]")
        if not user[1]:
            return _os_error(403, "security_exception", f"no permissions for [indices:data/read/search] and "
                                                        f"User [name={creds[0]}, backend_roles=[], "
                                                        f"requestedTenant=null]")
        if self.indexer_unavailable:
            return _os_error(503, "cluster_block_exception",
                             "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];")
        if self.indexer_overloaded:
            return _os_error(429, "es_rejected_execution_exception", "rejected execution of search")
        extra = sorted({k for k, _ in req.query} - _SEARCH_PARAMS)
        if extra:
            return _os_error(400, "illegal_argument_exception",
                             f"request [{req.path}] contains unrecognized parameter: [{extra[0]}]")
        try:
            body = msgspec.json.decode(req.body) if req.body.strip() else {}
        except msgspec.DecodeError:
            return _os_error(400, "parsing_exception", "request body is not valid JSON")
        if not isinstance(body, dict):
            return _os_error(400, "parsing_exception", "request body must be an object")
        self.search_bodies.append(body)
        indices = self._resolve_indices(match.group(1), req.params.get("ignore_unavailable") == "true")
        if isinstance(indices, _Response):
            return indices
        try:
            return self._search(indices, body)
        except _ParseError as exc:
            return _os_error(400, "parsing_exception", str(exc))

    def _resolve_indices(self, pattern: str, ignore_unavailable: bool) -> list[str] | _Response:
        names: list[str] = []
        for part in pattern.split(","):
            if "*" in part:
                names += [n for n in sorted(self.indices) if fnmatch.fnmatchcase(n, part)]
            elif part in self.indices:
                names.append(part)
            elif not ignore_unavailable:
                return _os_error(404, "index_not_found_exception", f"no such index [{part}]", index=part)
        return list(dict.fromkeys(names))

    def _predicate(self, query: Any) -> Callable[[dict[str, Any]], bool]:
        if not isinstance(query, dict) or len(query) != 1:
            raise _ParseError("query must be an object with one clause")
        (kind, spec), = query.items()
        if kind == "match_all":
            return lambda _doc: True
        if kind == "bool":
            if not isinstance(spec, dict) or set(spec) - {"filter", "must"}:
                raise _ParseError("fake supports bool.filter and bool.must only")
            clauses: list[Any] = []
            for key in ("filter", "must"):
                value = spec.get(key, [])
                clauses += value if isinstance(value, list) else [value]
            preds = [self._predicate(c) for c in clauses]
            return lambda doc: all(p(doc) for p in preds)
        if kind == "term":
            if not isinstance(spec, dict) or len(spec) != 1:
                raise _ParseError("[term] query malformed")
            (fld, value), = spec.items()
            if isinstance(value, dict):
                value = value.get("value")
            want = str(value).lower() if isinstance(value, bool) else str(value)
            return lambda doc: any(
                (str(v).lower() if isinstance(v, bool) else str(v)) == want for v in _values(doc, fld))
        if kind == "range":
            if not isinstance(spec, dict) or len(spec) != 1:
                raise _ParseError("[range] query malformed")
            (fld, bounds), = spec.items()
            if fld not in _SORT_FIELDS or not isinstance(bounds, dict):
                raise _ParseError("fake supports [range] on timestamp only")
            checks = []
            for op, raw in bounds.items():
                if op not in ("gte", "gt", "lte", "lt"):
                    raise _ParseError(f"[range] query does not support [{op}]")
                checks.append((op, self._date_math(raw)))

            def in_range(doc: dict[str, Any]) -> bool:
                stamp = doc.get(fld)
                if stamp is None:
                    return False
                when = _parse_time(stamp)
                return all({"gte": when >= b, "gt": when > b, "lte": when <= b, "lt": when < b}[op]
                           for op, b in checks)
            return in_range
        raise _ParseError(f"unknown query [{kind}]")

    def _date_math(self, value: Any) -> datetime:
        if isinstance(value, str) and value.startswith("now"):
            m = re.fullmatch(r"now(?:([+-])(\d+)([smhdw]))?", value)
            if m is None:
                raise _ParseError(f"failed to parse date field [{value}]")
            now = datetime.fromtimestamp(self.clock(), UTC)
            if not m.group(1):
                return now
            unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(3)]
            delta = timedelta(**{unit: int(m.group(2))})
            return now + delta if m.group(1) == "+" else now - delta
        try:
            return _parse_time(value)
        except ValueError as exc:
            raise _ParseError(f"failed to parse date field [{value}]") from exc

    def _search(self, indices: list[str], body: dict[str, Any]) -> _Response:
        unknown = sorted(set(body) - _SEARCH_BODY_KEYS)
        if unknown:
            raise _ParseError(f"fake: unknown or unimplemented key [{unknown[0]}] in the search body")
        size, start = body.get("size", 10), body.get("from", 0)
        if not isinstance(size, int) or not isinstance(start, int) or size < 0 or start < 0:
            raise _ParseError("[size] and [from] must be non-negative integers")
        if size + start > 10000:
            return _os_error(400, "illegal_argument_exception",
                             f"Result window is too large, from + size must be less than or equal to: [10000] "
                             f"but was [{size + start}].")
        pred = self._predicate(body.get("query", {"match_all": {}}))
        hits = [(index, doc_id, src) for index in indices for doc_id, src in self.indices[index] if pred(src)]
        sort_field, descending = self._sort_spec(body.get("sort"))
        if sort_field:
            hits.sort(key=lambda h: _parse_time(h[2][sort_field]) if sort_field in h[2] else
                      datetime.min.replace(tzinfo=UTC), reverse=descending)
        page = hits[start:start + size]
        out_hits = []
        for index, doc_id, src in page:
            hit: dict[str, Any] = {"_index": index, "_id": doc_id, "_score": None if sort_field else 1.0,
                                   "_source": _source_filter(src, body.get("_source", True))}
            if sort_field:
                hit["sort"] = [int(_parse_time(src[sort_field]).timestamp() * 1000)] if sort_field in src \
                    else [None]
            out_hits.append(hit)
        out: dict[str, Any] = {"max_score": None if sort_field else (1.0 if page else None), "hits": out_hits}
        track = body.get("track_total_hits", 10000)
        if track is True:
            out = {"total": {"value": len(hits), "relation": "eq"}, **out}
        elif track is not False:
            bound = int(track)
            out = {"total": {"value": min(len(hits), bound), "relation": "gte" if len(hits) > bound else "eq"},
                   **out}
        shards_total = 3 * len(indices)
        failed = min(self.shard_failures, shards_total)
        shards: dict[str, Any] = {"total": shards_total, "successful": shards_total - failed, "skipped": 0,
                                  "failed": failed}
        if failed:
            shards["failures"] = [{"shard": 0, "index": indices[0], "node": "node-1",
                                   "reason": {"type": "node_not_connected_exception", "reason": "fake"}}]
        return _Response(200, _dumps({"took": 3, "timed_out": False, "_shards": shards, "hits": out}))

    @staticmethod
    def _sort_spec(sort: Any) -> tuple[str | None, bool]:
        if sort is None:
            return None, False
        items = sort if isinstance(sort, list) else [sort]
        if len(items) != 1:
            raise _ParseError("fake supports one sort field")
        item = items[0]
        if isinstance(item, str):
            fld, order = item, "asc"
        elif isinstance(item, dict) and len(item) == 1:
            (fld, spec), = item.items()
            order = spec if isinstance(spec, str) else spec.get("order", "asc") if isinstance(spec, dict) else None
            if isinstance(spec, dict) and set(spec) - {"order", "unmapped_type"}:
                raise _ParseError("fake supports sort options [order, unmapped_type] only")
        else:
            raise _ParseError("malformed sort")
        if fld not in _SORT_FIELDS or order not in ("asc", "desc"):
            raise _ParseError(f"fake supports sort on timestamp/@timestamp asc|desc only, got [{fld}]")
        return fld, order == "desc"


def _values(doc: dict[str, Any], dotted: str) -> list[Any]:
    value: Any = doc
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return []
        value = value[part]
    return value if isinstance(value, list) else [value]


def _source_filter(src: dict[str, Any], spec: Any) -> dict[str, Any] | None:
    if spec is True:
        return src
    if spec is False:
        return None
    includes = spec if isinstance(spec, list) else spec.get("includes", []) if isinstance(spec, dict) else [spec]
    out: dict[str, Any] = {}
    for path in includes:
        vals = _values(src, path)
        if not vals:
            continue
        node = out
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = vals[0] if len(vals) == 1 and not isinstance(_get(src, path), list) else vals
    return out


def _get(doc: dict[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def main(argv: list[str] | None = None) -> None:
    """Run both fakes on one 127.0.0.1 port (manager routes + `/<index>/_search`)."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m opsgate_tool_wazuh.fake", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-user", default="wazuh-reader")
    parser.add_argument("--api-password", default="fake-api-password")
    parser.add_argument("--indexer-user", default="alerts-reader")
    parser.add_argument("--indexer-password", default="fake-indexer-password")
    parser.add_argument("--token-lifetime", type=int, default=900)
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per minute (default: off)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    fake = FakeWazuh(api_user=args.api_user, api_password=args.api_password, indexer_user=args.indexer_user,
                     indexer_password=args.indexer_password, token_lifetime=args.token_lifetime)
    fake.rate_limit_per_minute = args.rate_limit
    log.info("fake Wazuh manager + indexer on http://127.0.0.1:%d (set WAZUH_API_URL and WAZUH_INDEXER_URL "
             "to it)", args.port)
    uvicorn.run(fake.app, host="127.0.0.1", port=args.port, log_level="info", lifespan="off",
                interface="asgi3")


if __name__ == "__main__":
    main()
