"""Async client of iTop's REST/JSON API (contract: contracts/itop-rest.md).

Every call is one `POST <ITOP_URL>webservices/rest.php?version=<v>` with a
form-encoded body holding `json_data` (the request object as a JSON string)
and, for user/password login, the `auth_user`/`auth_pwd` fields; HTTP Basic
or an `Auth-Token` header are the alternatives. iTop answers HTTP 200 for
successes and errors alike; the `code` member decides (see `errors.py`).
Cookies are never kept: rest.php re-authenticates every request.
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import msgspec

from opsgate_provider_itop.errors import (
    ItopConfigError,
    ItopError,
    ItopTimeout,
    ItopTransportError,
    from_reply,
)
from opsgate_provider_itop.settings import ItopSettings

log = logging.getLogger(__name__)

Key = int | str | Mapping[str, Any]


class ItopObject(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a reply's `objects` (keyed `Class::id` on the wire)."""

    cls: str
    key: str
    fields: dict[str, Any]
    code: int = 0
    message: str = ""


class GetResult(msgspec.Struct, frozen=True, kw_only=True):
    """A `core/get` reply: `found` is the total match count, `objects` the requested page."""

    found: int
    objects: list[ItopObject]


def oql_quote(value: str) -> str:
    """A single-quoted OQL string literal (backslash escapes `\\` and `'`)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fields_param(output_fields: str | Sequence[str]) -> str:
    return output_fields if isinstance(output_fields, str) else ",".join(output_fields)


def _no_cookies() -> http.cookiejar.CookieJar:
    # rest.php sets a session cookie on every reply; keeping it is useless.
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class ItopClient:
    """One iTop instance. Construct freely (no I/O); the HTTP client is opened on first use."""

    def __init__(self, settings: ItopSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    # --- plumbing ---------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None or self._http.is_closed:
            self._http = httpx.AsyncClient(
                transport=self._transport,
                timeout=httpx.Timeout(self.settings.timeout_seconds),
                verify=self.settings.verify_tls,
                cookies=_no_cookies(),
                follow_redirects=False,
                headers={"Accept": "application/json", "User-Agent": "opsgate-provider-itop"},
            )
        return self._http

    async def aclose(self) -> None:
        """Close the HTTP client (a later call opens a new one)."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _auth(self) -> tuple[dict[str, str], dict[str, str], httpx.BasicAuth | None]:
        """(extra form fields, extra headers, basic auth) for the configured login mode."""
        s = self.settings
        mode = s.auth_mode
        if mode == "token":
            return {}, {"Auth-Token": s.auth_token}, None
        if mode == "basic":
            return {}, {}, httpx.BasicAuth(s.user, s.password)
        if mode == "form":
            return {"auth_user": s.user, "auth_pwd": s.password}, {}, None
        raise ItopConfigError((s.missing() or ["ITOP_USER"])[0], "no iTop credentials configured")

    async def call(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Send one request object; return the decoded reply when its `code` is 0, else raise."""
        operation = str(request.get("operation", ""))
        if not self.settings.url:
            raise ItopConfigError("ITOP_URL", "the iTop application root is needed", operation=operation)
        form, headers, basic = self._auth()
        data = {"json_data": json.dumps(request, ensure_ascii=False), **form}
        log.debug("itop %s class=%s", operation, request.get("class", ""))
        try:
            response = await self._client().post(
                self.settings.endpoint,
                params={"version": self.settings.api_version},
                data=data,
                headers=headers,
                auth=basic if basic is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            raise ItopTimeout(f"timed out after {self.settings.timeout_seconds}s ({type(exc).__name__})",
                              operation=operation) from exc
        except httpx.HTTPError as exc:
            raise ItopTransportError(f"{type(exc).__name__}: {exc}", operation=operation) from exc
        return self._decode(response, operation)

    def _decode(self, response: httpx.Response, operation: str) -> dict[str, Any]:
        if response.status_code != 200:
            raise ItopTransportError(f"HTTP {response.status_code} from iTop", operation=operation,
                                     http_status=response.status_code)
        try:
            reply = json.loads(response.content)
        except ValueError as exc:
            kind = response.headers.get("content-type", "unknown content type")
            raise ItopTransportError(f"reply is not JSON ({kind}, {len(response.content)} bytes)",
                                     operation=operation, http_status=200) from exc
        if not isinstance(reply, dict) or not isinstance(reply.get("code"), int):
            raise ItopTransportError("reply is not an iTop envelope (no integer 'code')",
                                     operation=operation, http_status=200)
        code = reply["code"]
        if code != 0:
            error = from_reply(code, str(reply.get("message") or ""), operation)
            log.warning("itop %s failed: code %s: %s", operation, code, error.message)
            raise error
        return reply

    @staticmethod
    def _objects(reply: Mapping[str, Any]) -> list[ItopObject]:
        raw = reply.get("objects") or {}  # null or missing when nothing is reported
        objects = []
        for name, entry in raw.items():
            cls = str(entry.get("class") or name.split("::", 1)[0])
            key = str(entry.get("key") or name.split("::", 1)[-1])
            objects.append(ItopObject(cls=cls, key=key, fields=dict(entry.get("fields") or {}),
                                      code=int(entry.get("code") or 0), message=str(entry.get("message") or "")))
        return objects

    def _one(self, reply: Mapping[str, Any], operation: str) -> ItopObject:
        objects = self._objects(reply)
        if len(objects) != 1:
            raise ItopError(f"expected one object in the reply, got {len(objects)}", operation=operation)
        return objects[0]

    # --- operations -------------------------------------------------------

    async def list_operations(self) -> list[dict[str, Any]]:
        """`list_operations`: the verbs the server offers (proves URL, login and REST profile)."""
        reply = await self.call({"operation": "list_operations"})
        return list(reply.get("operations") or [])

    async def check_credentials(self, user: str, password: str) -> bool:
        """`core/check_credentials`: whether another user/password pair is valid."""
        reply = await self.call({"operation": "core/check_credentials", "user": user, "password": password})
        return bool(reply.get("authorized"))

    async def get(self, cls: str, key: Key, output_fields: str | Sequence[str] = "*", *,
                  limit: int = 0, page: int = 1) -> GetResult:
        """`core/get`: objects matching `key` (id, OQL or criteria); `found` counts all matches."""
        request: dict[str, Any] = {"operation": "core/get", "class": cls, "key": key,
                                   "output_fields": _fields_param(output_fields)}
        if limit:
            request["limit"] = limit
            request["page"] = page
        reply = await self.call(request)
        message = str(reply.get("message") or "")
        objects = self._objects(reply)
        found = int(message.split(":", 1)[1]) if message.startswith("Found:") else len(objects)
        return GetResult(found=found, objects=objects)

    async def create(self, cls: str, fields: Mapping[str, Any], comment: str,
                     output_fields: str | Sequence[str] = "id") -> ItopObject:
        """`core/create`: the new object with `output_fields`."""
        reply = await self.call({"operation": "core/create", "class": cls, "comment": comment,
                                 "fields": dict(fields), "output_fields": _fields_param(output_fields)})
        return self._one(reply, "core/create")

    async def update(self, cls: str, key: Key, fields: Mapping[str, Any], comment: str,
                     output_fields: str | Sequence[str] = "id") -> ItopObject:
        """`core/update`: `key` must match exactly one object."""
        reply = await self.call({"operation": "core/update", "class": cls, "key": key, "comment": comment,
                                 "fields": dict(fields), "output_fields": _fields_param(output_fields)})
        return self._one(reply, "core/update")

    async def apply_stimulus(self, cls: str, key: Key, stimulus: str, fields: Mapping[str, Any] | None,
                             comment: str, output_fields: str | Sequence[str] = "id") -> ItopObject:
        """`core/apply_stimulus`: fire a lifecycle transition, with the fields its target state needs."""
        reply = await self.call({"operation": "core/apply_stimulus", "class": cls, "key": key,
                                 "stimulus": stimulus, "comment": comment, "fields": dict(fields or {}),
                                 "output_fields": _fields_param(output_fields)})
        return self._one(reply, "core/apply_stimulus")

    async def delete(self, cls: str, key: Key, comment: str, *, simulate: bool = False) -> list[ItopObject]:
        """`core/delete` (test clean-up only; the provider never deletes tickets)."""
        reply = await self.call({"operation": "core/delete", "class": cls, "key": key, "comment": comment,
                                 "simulate": simulate})
        return self._objects(reply)

    async def append_case_log(self, cls: str, key: Key, log_code: str, message: str, comment: str,
                              output_fields: str | Sequence[str] = "id") -> ItopObject:
        """Append one text entry to `public_log` or `private_log` (never the replacing `items` form)."""
        if log_code not in ("public_log", "private_log"):
            raise ValueError(f"not a case log: {log_code!r}")
        return await self.update(cls, key, {log_code: {"add_item": {"message": message, "format": "text"}}},
                                 comment, output_fields)

    async def list_changed_since(self, cls: str, since: str | None, output_fields: str | Sequence[str] = "*",
                                 *, limit: int = 100, page: int = 1) -> GetResult:
        """Objects of `cls` whose `last_update` >= `since` (iTop local time string), one page."""
        oql = f"SELECT {cls}"
        if since:
            oql += f" WHERE last_update >= {oql_quote(since)}"
        return await self.get(cls, oql, output_fields, limit=limit, page=page)
