"""httpx clients for the Wazuh server API and the Wazuh indexer (contracts/wazuh.md 2-3).

`WazuhApiClient`: HTTP Basic login at `POST /security/user/authenticate`
(GET only when the manager answers 405, i.e. a 4.0-4.3 manager), the JWT is
cached and refreshed about 60 s before its `exp`, refreshes are serialised by
one lock, a 401 on a data call drops the token and retries once, a 401 from
the login itself is never retried, and logout is never called.

`WazuhIndexerClient`: HTTP Basic on every request to
`POST /<alerts index>/_search`; 401 bodies are not decoded (plain text or
empty).

Both map failures to `opsgate_tool_wazuh.errors` and never put a password,
token or Authorization header into an exception, a log record or a result.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from opsgate_tool_wazuh.errors import (
    WazuhAuthError,
    WazuhPermissionDenied,
    WazuhRateLimited,
    WazuhRequestRejected,
    WazuhUnavailable,
    scrub,
)

log = logging.getLogger(__name__)

__all__ = ["CallTrace", "WazuhApiClient", "WazuhIndexerClient", "tls_verify"]

LOGIN_PATH = "/security/user/authenticate"
DEFAULT_TOKEN_LIFETIME = 900.0
REFRESH_MARGIN = 60.0
DEFAULT_RETRY_AFTER = 60
_json = msgspec.json.Decoder()


def tls_verify(verify_tls: bool, ca_bundle: str | None) -> ssl.SSLContext | bool:
    """The `verify=` value for httpx: False (explicit opt-out), a context trusting
    `ca_bundle`, or True (the system store). Reading the bundle is I/O, so this
    runs on first use, not at construction."""
    if not verify_tls:
        return False
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    return True


@dataclass
class CallTrace:
    """Non-secret facts about one adapter call, for the route's audit row."""

    target: str = ""
    http_status: int | None = None
    duration_ms: int = 0
    logins: int = 0
    retried_after_401: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "http_status": self.http_status, "duration_ms": self.duration_ms,
                "logins": self.logins, "retried_after_401": self.retried_after_401}


def token_expiry(token: str, issued_at: float) -> float:
    """`exp` from the JWT's middle segment (a hint only, no signature check),
    else issue time + 900 s."""
    try:
        segment = token.split(".")[1]
        payload = _json.decode(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        exp = payload["exp"]
        if isinstance(exp, (int, float)) and not isinstance(exp, bool):
            return float(exp)
    except (IndexError, KeyError, TypeError, ValueError, binascii.Error, msgspec.DecodeError):
        pass
    log.debug("wazuh token expiry unreadable; assuming %ds", int(DEFAULT_TOKEN_LIFETIME))
    return issued_at + DEFAULT_TOKEN_LIFETIME


def _decode(resp: httpx.Response) -> Any:
    try:
        return _json.decode(resp.content)
    except msgspec.DecodeError:
        return None


def _retry_after(resp: httpx.Response) -> int:
    value = resp.headers.get("retry-after", "")
    return int(value) if value.isdigit() else DEFAULT_RETRY_AFTER


class _Http:
    """The httpx.AsyncClient shared by one client object, created on first use."""

    def __init__(self, base_url: str, verify_tls: bool, ca_bundle: str | None, timeout: float,
                 transport: httpx.AsyncBaseTransport | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.verify_tls = verify_tls
        self.ca_bundle = ca_bundle
        self.timeout = timeout
        self.transport = transport
        self._client: httpx.AsyncClient | None = None

    def client(self, op: str, target: str) -> httpx.AsyncClient:
        if self._client is None:
            try:
                verify = tls_verify(self.verify_tls, self.ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise WazuhUnavailable(op, "CA bundle could not be loaded", code="wazuh_tls_config",
                                       target=target) from exc
            self._client = httpx.AsyncClient(
                base_url=self.base_url, verify=verify, timeout=httpx.Timeout(self.timeout),
                transport=self.transport, follow_redirects=False, trust_env=False,
                headers={"Accept": "application/json"})
        return self._client

    async def send(self, op: str, target: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; transport failures become `WazuhUnavailable`."""
        client = self.client(op, target)
        try:
            return await client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            log.warning("wazuh %s %s timed out (%s)", target, op, type(exc).__name__)
            raise WazuhUnavailable(op, f"{target} timed out after {self.timeout:g}s", code="wazuh_timeout",
                                   status_code=504, target=target) from exc
        except httpx.TransportError as exc:
            reason = "TLS verification failed" if isinstance(exc.__context__, ssl.SSLError) or \
                "CERTIFICATE" in str(exc).upper() else f"{target} unreachable ({type(exc).__name__})"
            log.warning("wazuh %s %s failed: %s", target, op, reason)
            raise WazuhUnavailable(op, reason, target=target) from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class WazuhApiClient:
    """The Wazuh server API (manager, port 55000) with a cached JWT.

    Construction does no I/O. `clock` returns epoch seconds (tests share a
    fake clock with the fake manager).
    """

    target = "manager"

    def __init__(self, base_url: str, user: str, password: str, *, verify_tls: bool = True,
                 ca_bundle: str | None = None, timeout: float = 15.0,
                 transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.time, refresh_margin: float = REFRESH_MARGIN) -> None:
        self._http = _Http(base_url, verify_tls, ca_bundle, timeout, transport)
        self._user = user
        self._password = password
        self._clock = clock
        self._margin = refresh_margin
        self._token: str | None = None
        self._issued_at = 0.0
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self._login_method = "POST"

    def __repr__(self) -> str:
        return f"WazuhApiClient(base_url={self._http.base_url!r}, <credentials redacted>)"

    @property
    def http(self) -> _Http:
        return self._http

    def _secrets(self, used: str | None = None) -> tuple[str | None, ...]:
        token = used or self._token or ""
        # the whole token and its payload/signature segments (the header is a constant)
        return (self._password, token or None, *[part for part in token.split(".")[1:] if len(part) >= 8])

    def _token_fresh(self) -> bool:
        if self._token is None:
            return False
        margin = min(self._margin, max(0.0, (self._expires_at - self._issued_at) / 2))
        return self._clock() < self._expires_at - margin

    async def _login(self, op: str, trace: CallTrace) -> None:
        """Basic login; never retried on 401 (the manager's brute-force guard)."""
        issued = self._clock()
        resp = await self._http.send(op, self.target, self._login_method, LOGIN_PATH,
                                     auth=httpx.BasicAuth(self._user, self._password))
        if resp.status_code == 405 and self._login_method == "POST":
            log.info("wazuh manager refused POST login (405); using GET (pre-4.4 manager)")
            self._login_method = "GET"
            resp = await self._http.send(op, self.target, "GET", LOGIN_PATH,
                                         auth=httpx.BasicAuth(self._user, self._password))
        trace.logins += 1
        trace.http_status = resp.status_code
        if resp.status_code != 200:
            body = _decode(resp)
            if resp.status_code == 401:
                log.warning("wazuh login refused (401); not retrying")
                raise WazuhAuthError(op, "login refused: check WAZUH_API_USER / WAZUH_API_PASSWORD",
                                     target=self.target, upstream_status=401)
            if resp.status_code == 403:
                code = body.get("error", body.get("code")) if isinstance(body, dict) else None
                log.warning("wazuh login forbidden (403, error %s)", code)
                raise WazuhAuthError(op, "login blocked by the manager" if code == 6000 else "login forbidden",
                                     code="wazuh_login_blocked" if code == 6000 else None,
                                     target=self.target, upstream_status=403, wazuh_error=code)
            self._raise_for_status(op, resp, body)
        body = _decode(resp)
        token = body.get("data", {}).get("token") if isinstance(body, dict) and \
            isinstance(body.get("data"), dict) else None
        if not isinstance(token, str) or not token:
            raise WazuhUnavailable(op, "login answer had no token", code="wazuh_bad_response",
                                   target=self.target, upstream_status=resp.status_code)
        self._token = token
        self._issued_at = issued
        self._expires_at = token_expiry(token, issued)
        log.debug("wazuh login ok; token valid for %ds", int(self._expires_at - issued))

    async def _ensure_token(self, op: str, trace: CallTrace, *, stale: str | None = None) -> str:
        async with self._lock:
            if stale is not None and self._token == stale:
                self._token = None
            if not self._token_fresh():
                await self._login(op, trace)
            assert self._token is not None
            return self._token

    def _raise_for_status(self, op: str, resp: httpx.Response, body: Any, token: str | None = None) -> None:
        """Map a non-200 problem+json answer (contract 2.7) to an exception; `token` is
        the one sent, scrubbed from the echoed detail even if it was dropped already."""
        status = resp.status_code
        problem = body if isinstance(body, dict) else {}
        code = problem.get("error", problem.get("code"))
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        title = scrub(problem.get("title"), self._secrets(token))
        detail = scrub(problem.get("detail"), self._secrets(token))
        kw: dict[str, Any] = {"target": self.target, "upstream_status": status, "wazuh_error": code,
                              "title": title, "detail": detail}
        if status == 401:
            raise WazuhAuthError(op, "token refused after one re-login", **kw)
        if status == 403:
            raise WazuhPermissionDenied(op, "the API user lacks the RBAC action", **kw)
        if status == 429:
            log.warning("wazuh manager rate limit reached (error %s)", code)
            raise WazuhRateLimited(op, "manager rate limit reached", retry_after=_retry_after(resp), **kw)
        if status >= 500:
            log.warning("wazuh manager %s answered %d (error %s)", op, status, code)
            raise WazuhUnavailable(op, f"manager answered {status}", code="wazuh_upstream_error", **kw)
        raise WazuhRequestRejected(op, f"manager answered {status}", **kw)

    async def get(self, op: str, path: str, params: Mapping[str, str] | None = None,
                  trace: CallTrace | None = None) -> dict[str, Any]:
        """GET a data endpoint with the Bearer token; the decoded 200 body."""
        trace = trace if trace is not None else CallTrace()
        trace.target = self.target
        started = time.monotonic()
        try:
            token = await self._ensure_token(op, trace)
            resp = await self._http.send(op, self.target, "GET", path, params=params,
                                         headers={"Authorization": f"Bearer {token}"})
            if resp.status_code == 401:
                log.info("wazuh manager refused the cached token on %s; logging in once more", op)
                trace.retried_after_401 = True
                token = await self._ensure_token(op, trace, stale=token)
                resp = await self._http.send(op, self.target, "GET", path, params=params,
                                             headers={"Authorization": f"Bearer {token}"})
                if resp.status_code == 401 and self._token == token:
                    self._token = None  # the next call logs in afresh
            trace.http_status = resp.status_code
            body = _decode(resp)
            if resp.status_code != 200:
                self._raise_for_status(op, resp, body, token)
            if not isinstance(body, dict):
                raise WazuhUnavailable(op, "manager answer was not a JSON object", code="wazuh_bad_response",
                                       target=self.target, upstream_status=resp.status_code)
            return body
        finally:
            trace.duration_ms = int((time.monotonic() - started) * 1000)

    async def manager_status(self, trace: CallTrace | None = None) -> dict[str, Any]:
        """`GET /manager/status`, body unchanged (contract 2.4)."""
        return await self.get("manager_status", "/manager/status", trace=trace)

    async def manager_info(self, trace: CallTrace | None = None) -> dict[str, Any]:
        """`GET /manager/info`, body unchanged (contract 2.5)."""
        return await self.get("manager_info", "/manager/info", trace=trace)

    async def rules(self, rule_ids: Sequence[int], trace: CallTrace | None = None) -> dict[str, Any]:
        """`GET /rules?rule_ids=a,b`, body unchanged (contract 2.6)."""
        ids = ",".join(str(int(i)) for i in rule_ids)
        return await self.get("get_rule", "/rules", params={"rule_ids": ids}, trace=trace)

    async def aclose(self) -> None:
        """Close the connection pool. Never logs out (that would kill other processes' tokens)."""
        await self._http.aclose()


class WazuhIndexerClient:
    """The Wazuh indexer (OpenSearch, port 9200) with HTTP Basic on every request."""

    target = "indexer"

    def __init__(self, base_url: str, user: str, password: str, *, verify_tls: bool = True,
                 ca_bundle: str | None = None, timeout: float = 15.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = _Http(base_url, verify_tls, ca_bundle, timeout, transport)
        self._auth = httpx.BasicAuth(user, password)
        self._password = password

    def __repr__(self) -> str:
        return f"WazuhIndexerClient(base_url={self._http.base_url!r}, <credentials redacted>)"

    @property
    def http(self) -> _Http:
        return self._http

    async def search(self, index: str, body: Mapping[str, Any], trace: CallTrace | None = None) -> dict[str, Any]:
        """`POST /<index>/_search?ignore_unavailable=true`; the decoded 200 body."""
        op = "search_alerts"
        trace = trace if trace is not None else CallTrace()
        trace.target = self.target
        started = time.monotonic()
        try:
            resp = await self._http.send(op, self.target, "POST", f"/{index}/_search",
                                         params={"ignore_unavailable": "true"}, auth=self._auth,
                                         content=msgspec.json.encode(body),
                                         headers={"Content-Type": "application/json"})
            trace.http_status = resp.status_code
        finally:
            trace.duration_ms = int((time.monotonic() - started) * 1000)
        status = resp.status_code
        if status == 401:  # plain text "Unauthorized" or empty: never JSON-decoded
            log.warning("wazuh indexer refused the credentials (401)")
            raise WazuhAuthError(op, "indexer refused the credentials: check WAZUH_INDEXER_USER / "
                                 "WAZUH_INDEXER_PASSWORD", target=self.target, upstream_status=401)
        body = _decode(resp)
        if status == 200:
            if not isinstance(body, dict) or not isinstance(body.get("hits"), dict):
                raise WazuhUnavailable(op, "indexer answer was not a search result", code="wazuh_bad_response",
                                       target=self.target, upstream_status=status)
            return body
        err = body.get("error") if isinstance(body, dict) else None
        etype = scrub(err.get("type"), (self._password,)) if isinstance(err, dict) else None
        reason = scrub(err.get("reason"), (self._password,)) if isinstance(err, dict) else None
        kw: dict[str, Any] = {"target": self.target, "upstream_status": status, "title": etype, "detail": reason}
        if status == 403:
            raise WazuhPermissionDenied(op, "the indexer user may not search the alerts index", **kw)
        if status == 429:
            log.warning("wazuh indexer overloaded (429 %s)", etype)
            raise WazuhRateLimited(op, "indexer overloaded", retry_after=_retry_after(resp), **kw)
        if status >= 500:
            log.warning("wazuh indexer answered %d (%s)", status, etype)
            raise WazuhUnavailable(op, f"indexer answered {status}", code="wazuh_upstream_error", **kw)
        raise WazuhRequestRejected(op, f"indexer answered {status}", **kw)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()
