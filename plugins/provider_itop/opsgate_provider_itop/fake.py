"""A faithful in-process fake of iTop's REST/JSON API (contract: contracts/itop-rest.md).

`FakeItop` keeps its objects in memory and speaks the real wire protocol:
`POST .../webservices/rest.php` with `version` and `json_data` read from the
query string or a form/multipart body (a raw JSON body is ignored: code 3),
form/Basic/token login, the envelope checks in iTop's order, both error
shapes, `objects` keyed `Class::id` with string values, the shared ref
counter, the priority matrix, case logs, the UserRequest/Incident lifecycles
with the (weaker, PHP 8) mandatory-attribute check of section 9.3, and times
as naive strings in a configurable server zone. Every reply is HTTP 200 with
`Content-type: application/json` and `/` escaped as `\\/`.

Use it in tests through `fake.transport()` (an `httpx.MockTransport`) or as
an ASGI app (`httpx.ASGITransport(app=fake)`), or run a server bound to
127.0.0.1: `python -m opsgate_provider_itop.fake --port 8089`.

With `state_path` (`--state FILE` for the server) the objects, counters and
call counts are written to FILE after every request and read back at start,
so a restarted server keeps its tickets (end-to-end outage tests).

Test hooks: `fail_next(...)` (an iTop error reply), `fail_next_http(...)` (a
non-200 or non-JSON reply), `drop_next_reply(...)` (commit, then lose the
reply), `set_time()`/`advance()`, `calls` (a Counter of executed operations),
`creates`, `requests` (what arrived), `add_user()`, `add_object()`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import json
import logging
import os
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import httpx

from opsgate_provider_itop import fake_oql as oql
from opsgate_provider_itop.fake_model import (
    ABSTRACT,
    ATTRS,
    CLASSES,
    MANDATORY,
    OPERATIONS,
    PRIORITY,
    REF_PREFIX,
    ROOT,
    TRANSITION_DATES,
    TRANSITIONS,
    VERSIONS,
    Attr,
    friendlyname,
    is_a,
)
from opsgate_provider_itop.markup import html_to_text, looks_like_html, text_to_html
from opsgate_provider_itop.settings import ItopSettings

log = logging.getLogger(__name__)

REST_PROFILE = "REST Services User"
AGENT_PROFILES = {"Service Desk Agent", "Support Agent"}
TICKET_CLASSES = {"Ticket", "UserRequest", "Incident"}
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class _Thrown(Exception):
    """A thrown error: `{"code": N, "message": "Error: <text>"}` (no objects member)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class _InOp(Exception):
    """An in-operation error: `{"code": N, "message": "<text>", "objects": null}`."""

    def __init__(self, code: int, text: str, **extra: Any) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.extra = extra


@dataclass
class FakeUser:
    """An iTop User: login, password, its contact (display name), profiles and tokens."""

    login: str
    password: str
    user_id: int
    display_name: str
    profiles: set[str] = field(default_factory=lambda: {REST_PROFILE, *AGENT_PROFILES})
    tokens: set[str] = field(default_factory=set)
    rights: dict[str, set[str]] | None = None  # class -> {"read", "modify", "delete"}; None: from profiles

    def can(self, right: str, cls: str) -> bool:
        """Whether the user has `right` (read/modify/delete, incl. the bulk variant) on `cls`."""
        if self.rights is not None:
            return right in self.rights.get(cls, set())
        if "Administrator" in self.profiles:
            return True
        if self.profiles & AGENT_PROFILES:
            return right == "read" or (right == "modify" and cls in TICKET_CLASSES)
        return False


@dataclass
class _Fault:
    kind: str  # reply | http | drop
    operation: str | None
    code: int = 100
    message: str = ""
    shape: str = "thrown"
    status: int = 500
    body: bytes = b""
    content_type: str = "text/html"


@dataclass
class FakeRequest:
    """What one call looked like on the wire (for assertions)."""

    method: str
    operation: str | None
    auth: str | None  # form | basic | token | url | None
    content_type: str
    cookie: bool
    version: str | None
    data: dict[str, Any] | None


@dataclass
class _Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    dropped: bool = False


def _dumps(value: Any) -> bytes:
    """JSON as PHP's json_encode writes it: ASCII only, `/` escaped."""
    return json.dumps(value, ensure_ascii=True).replace("/", "\\/").encode("ascii")


class FakeItop:
    """An in-memory iTop speaking the REST/JSON protocol. Construct one per test."""

    def __init__(self, *, url: str = "http://itop.test/", timezone: str = "Europe/Paris",
                 strict_mandatory: bool = False, allowed_login_types: tuple[str, ...] = ("form", "external", "basic"),
                 token_login: bool = True, seed: bool = True,
                 state_path: str | None = None) -> None:
        self.url = url.rstrip("/") + "/"
        self.zone = ZoneInfo(timezone)
        self.timezone = timezone
        self.strict_mandatory = strict_mandatory
        self.allowed_login_types = tuple(allowed_login_types) + (("token",) if token_login else ())
        self.db: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}  # (root class, id) -> (leaf, values)
        self._ids: Counter[str] = Counter()
        self._ref_counter = 1
        self._now: datetime | None = None
        self._faults: list[_Fault] = []
        self.users: dict[str, FakeUser] = {}
        self.calls: Counter[str] = Counter()
        self.requests: list[FakeRequest] = []
        self.default_user = FakeUser("opsgate", "opsgate-secret", 2, "AgentOps Bot",
                                     tokens={"tok-" + "a" * 116})
        self.add_user(self.default_user)
        self.add_user(FakeUser("admin", "admin-secret", 1, "My First Name My Last Name",
                               profiles={"Administrator", REST_PROFILE}, tokens={"tok-admin"}))
        self.add_user(FakeUser("norest", "norest-secret", 3, "No Rest", profiles=set(AGENT_PROFILES)))
        self.add_user(FakeUser("portal", "portal-secret", 4, "Claude Monet", profiles={"Portal user", REST_PROFILE}))
        self.state_path = state_path  # when set: objects survive a restart (see save_state/load_state)
        if state_path and os.path.exists(state_path):
            self.load_state()
        elif seed:
            self._seed()

    # --- set-up helpers ---------------------------------------------------

    def _seed(self) -> None:
        demo = self.add_object("Organization", name="Demo", code="DEMO")
        it = self.add_object("Organization", name="IT Department", code="IT")
        self.add_object("Person", name="Monet", first_name="Claude", email="claude.monet@demo.com", org_id=demo)
        self.add_object("Person", name="Bot", first_name="AgentOps", email="agentops@it.example", org_id=it)
        self.add_object("Person", name="Verne", first_name="Jules", email="jules.verne@it.example", org_id=it)
        self.add_object("Team", name="Service Desk", email="desk@it.example", org_id=it)
        self.add_object("Service", name="Computers and peripherals", org_id=demo)

    def add_user(self, user: FakeUser) -> FakeUser:
        """Register (or replace) a user."""
        self.users[user.login] = user
        return user

    def add_object(self, cls: str, **values: Any) -> int:
        """Insert an object directly (no checks, no REST); return its id."""
        leaf_attrs = ATTRS[cls]
        obj: dict[str, Any] = {code: self._default(a) for code, a in leaf_attrs.items()}
        obj.update(values)
        root = ROOT.get(cls, cls)
        self._ids[root] += 1
        obj["id"] = self._ids[root]
        if cls in REF_PREFIX and not obj.get("ref"):
            self._ref_counter += 1
            obj["ref"] = f"{REF_PREFIX[cls]}-{self._ref_counter:06d}"
        self.db[(root, obj["id"])] = (cls, obj)
        return obj["id"]

    def settings(self, **overrides: Any) -> ItopSettings:
        """ItopSettings pointing at this fake with the default user and the seeded defaults."""
        values: dict[str, Any] = {
            "url": self.url, "user": self.default_user.login, "password": self.default_user.password,
            "default_org_id": "1", "default_caller_id": "1", "default_team_id": "1", "default_agent_id": "3",
            "default_service_id": "1", "timezone": self.timezone,
        }
        values.update(overrides)
        return ItopSettings(**values)

    def transport(self) -> httpx.MockTransport:
        """An httpx transport that routes every request to this fake."""
        return httpx.MockTransport(self.handle_httpx)

    # --- clock ------------------------------------------------------------

    def now(self) -> datetime:
        """The server's local time (naive), frozen once `set_time`/`advance` was called."""
        if self._now is not None:
            return self._now
        return datetime.now(self.zone).replace(tzinfo=None, microsecond=0)

    def set_time(self, when: str | datetime) -> None:
        """Freeze the clock at a local time ("YYYY-MM-DD HH:MM:SS" or a naive datetime)."""
        self._now = datetime.strptime(when, DATE_FORMAT) if isinstance(when, str) else when.replace(microsecond=0)

    def advance(self, seconds: float) -> None:
        """Move the (frozen) clock forward."""
        self._now = self.now() + timedelta(seconds=seconds)

    def _stamp(self) -> str:
        return self.now().strftime(DATE_FORMAT)

    # --- test hooks -------------------------------------------------------

    def fail_next(self, code: int = 100, message: str = "Error: injected failure", *, shape: str = "thrown",
                  operation: str | None = None) -> None:
        """Answer the next call (of `operation`, if given) with this iTop error, doing nothing."""
        self._faults.append(_Fault("reply", operation, code=code, message=message, shape=shape))

    def fail_next_http(self, status: int = 500, body: bytes | str = b"<b>Fatal error</b>", *,
                       content_type: str = "text/html", operation: str | None = None) -> None:
        """Answer the next call with a raw HTTP reply (a PHP fatal error, a proxy page...)."""
        raw = body.encode() if isinstance(body, str) else body
        self._faults.append(_Fault("http", operation, status=status, body=raw, content_type=content_type))

    def drop_next_reply(self, operation: str | None = None) -> None:
        """Execute the next call (commit), then lose its reply (the client sees a read timeout)."""
        self._faults.append(_Fault("drop", operation))

    def _take_fault(self, kind: str, operation: str | None) -> _Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.kind == kind and (fault.operation is None or fault.operation == operation):
                return self._faults.pop(i)
        return None

    @property
    def creates(self) -> int:
        """How many core/create calls succeeded."""
        return self.calls["core/create"]

    def objects_of(self, cls: str) -> list[dict[str, Any]]:
        """Snapshots of the stored objects of `cls` (and subclasses), by id."""
        return [copy.deepcopy(obj) for (_, _), (leaf, obj) in sorted(self.db.items()) if is_a(leaf, cls)]

    def get_object(self, cls: str, obj_id: int) -> dict[str, Any] | None:
        """A snapshot of one stored object, or None."""
        entry = self.db.get((ROOT.get(cls, cls), int(obj_id)))
        return copy.deepcopy(entry[1]) if entry and is_a(entry[0], cls) else None

    # --- persistence (a server restarted with the same --state keeps its data) ----

    def dump_state(self) -> dict[str, Any]:
        """Objects, id and ref counters and call counts as JSON-able data."""
        return {
            "objects": [[root, obj_id, leaf, obj] for (root, obj_id), (leaf, obj) in sorted(self.db.items())],
            "ids": dict(self._ids),
            "ref_counter": self._ref_counter,
            "calls": dict(self.calls),
        }

    def save_state(self) -> None:
        """Write `dump_state()` to `state_path` atomically."""
        if not self.state_path:
            return
        tmp = f"{self.state_path}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.dump_state(), fh, default=str)
        os.replace(tmp, self.state_path)

    def load_state(self) -> None:
        """Replace the objects and counters with those saved in `state_path`."""
        assert self.state_path
        with open(self.state_path, encoding="utf-8") as fh:
            state = json.load(fh)
        self.db = {(root, int(obj_id)): (leaf, obj) for root, obj_id, leaf, obj in state["objects"]}
        self._ids = Counter({k: int(v) for k, v in state["ids"].items()})
        self._ref_counter = int(state["ref_counter"])
        self.calls = Counter({k: int(v) for k, v in state.get("calls", {}).items()})

    # --- transports -------------------------------------------------------

    def handle_httpx(self, request: httpx.Request) -> httpx.Response:
        """`httpx.MockTransport` handler."""
        reply = self.handle(request.method, request.url.path, request.url.query,
                            {k.lower(): v for k, v in request.headers.items()}, request.content)
        if reply.dropped:
            raise httpx.ReadTimeout("fake iTop dropped the reply", request=request)
        return httpx.Response(reply.status, headers=reply.headers, content=reply.body)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """ASGI entry point (uvicorn, `httpx.ASGITransport`)."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
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
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        reply = self.handle(scope["method"], scope["path"], scope.get("query_string", b""), headers, body)
        if reply.dropped:
            raise ConnectionAbortedError("fake iTop dropped the reply")
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]})
        await send({"type": "http.response.body", "body": reply.body})

    # --- request handling -------------------------------------------------

    def handle(self, method: str, path: str, query: bytes | str, headers: Mapping[str, str], body: bytes) -> _Reply:
        """Process one HTTP request; `headers` have lower-case names."""
        if path.endswith("/pages/UI.php") and method == "GET":
            return self._ui_page(query)
        if not path.endswith("/webservices/rest.php"):
            return _Reply(404, [("Content-Type", "text/html")], b"<h1>Not Found</h1>")
        get_params = self._parse_query(query)
        post_params = self._parse_body(headers.get("content-type", ""), body) if method == "POST" else {}
        params = {**get_params, **post_params}  # PHP's $_REQUEST: POST wins
        data = self._peek_json(params.get("json_data"))
        operation = str(data.get("operation")) if isinstance(data, dict) and "operation" in data else None
        http_fault = self._take_fault("http", operation)
        if http_fault is not None:
            return _Reply(http_fault.status, [("Content-Type", http_fault.content_type)], http_fault.body)
        record = FakeRequest(method=method, operation=operation, auth=None,
                             content_type=headers.get("content-type", ""), cookie="cookie" in headers,
                             version=params.get("version"), data=data if isinstance(data, dict) else None)
        self.requests.append(record)
        try:
            user, record.auth = self._login(method, headers, get_params, post_params)
            payload = self._dispatch(user, params, operation)
        except _Thrown as exc:
            payload = {"code": exc.code, "message": f"Error: {exc.text}"}
        except _InOp as exc:
            payload = {"code": exc.code, "message": exc.text, "objects": None, **exc.extra}
        headers_out = [("Content-type", "application/json"), ("Access-Control-Allow-Origin", "*"),
                       ("Set-Cookie", f"itop-{secrets.token_hex(4)}={secrets.token_hex(13)}; path=/; HttpOnly")]
        drop = self._take_fault("drop", operation) is not None
        if self.state_path and operation is not None:
            self.save_state()
        return _Reply(200, headers_out, _dumps(payload), dropped=drop)

    @staticmethod
    def _parse_query(query: bytes | str) -> dict[str, str]:
        text = query.decode("latin-1") if isinstance(query, bytes) else query
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}

    @staticmethod
    def _parse_body(content_type: str, body: bytes) -> dict[str, str]:
        kind = content_type.split(";", 1)[0].strip().lower()
        if kind == "application/x-www-form-urlencoded":
            return {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
        if kind == "multipart/form-data":
            message = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
            out = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name:
                    out[str(name)] = part.get_payload(decode=True).decode("utf-8")
            return out
        return {}  # a raw JSON body is not read by rest.php

    @staticmethod
    def _peek_json(raw: str | None) -> Any:
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _login(self, method: str, headers: Mapping[str, str], get_params: Mapping[str, str],
               post_params: Mapping[str, str]) -> tuple[FakeUser, str]:
        """Run the login modes in order; the first that finds credentials decides."""
        for mode in self.allowed_login_types:
            if mode == "form" and method == "POST" and "auth_user" in post_params:
                return self._check_password(post_params["auth_user"], post_params.get("auth_pwd")), mode
            if mode == "url" and "auth_user" in get_params:
                return self._check_password(get_params["auth_user"], get_params.get("auth_pwd")), mode
            if mode == "basic" and headers.get("authorization", "").lower().startswith("basic "):
                try:
                    raw = base64.b64decode(headers["authorization"][6:].strip()).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError):
                    raise _Thrown(1, "Invalid login") from None
                login, _, password = raw.partition(":")
                return self._check_password(login, password), mode
            if mode == "token":
                token = headers.get("auth-token") or post_params.get("auth_token") or get_params.get("auth_token")
                if token:
                    user = next((u for u in self.users.values() if token in u.tokens), None)
                    if user is None:
                        raise _Thrown(1, "Invalid login")
                    return self._check_rest(user), mode
        raise _Thrown(1, "Invalid login")

    def _check_password(self, login: str, password: str | None) -> FakeUser:
        user = self.users.get(login)
        if user is None or password is None or not secrets.compare_digest(user.password, password):
            raise _Thrown(1, "Invalid login")
        return self._check_rest(user)

    @staticmethod
    def _check_rest(user: FakeUser) -> FakeUser:
        if "Portal user" in user.profiles:
            raise _Thrown(1, "Portal user is not allowed")
        if REST_PROFILE not in user.profiles:
            raise _Thrown(1, "This user is not authorized to use the web services. "
                             "(The profile REST Services User is required to access the REST web services)")
        return user

    def _dispatch(self, user: FakeUser, params: Mapping[str, str], operation: str | None) -> dict[str, Any]:
        version = params.get("version")
        if version is None:
            raise _Thrown(2, "Missing parameter 'version'")
        if "json_data" not in params:
            raise _Thrown(3, "Missing parameter 'json_data'")
        data = self._peek_json(params["json_data"])
        if data is None or data == "" or data == []:
            raise _Thrown(4, "Parameter json_data is not a valid JSON structure")
        if version not in VERSIONS:
            raise _Thrown(10, f"Unknown version '{version}'")
        if not isinstance(data, dict) or "operation" not in data:
            raise _Thrown(100, "Missing parameter 'operation'")
        handler = _HANDLERS.get(str(operation))
        if handler is None:
            raise _Thrown(11, f"Unknown verb '{operation}' in version '{version}'")
        fault = self._take_fault("reply", operation)
        if fault is not None:
            if fault.shape == "thrown":
                return {"code": fault.code, "message": fault.message}
            return {"code": fault.code, "message": fault.message, "objects": None}
        result = handler(self, user, data, version)
        self.calls[str(operation)] += 1
        return result

    def _ui_page(self, query: bytes | str) -> _Reply:
        params = self._parse_query(query)
        cls, obj_id = params.get("class", ""), params.get("id", "")
        obj = self.get_object(cls, int(obj_id)) if cls in ATTRS and obj_id.isdigit() else None
        if params.get("operation") != "details" or obj is None:
            return _Reply(404, [("Content-Type", "text/html")], b"<h1>Object not found</h1>")
        page = f"<html><head><title>{friendlyname(cls, obj)}</title></head><body><h1>{obj.get('title', '')}</h1>"
        return _Reply(200, [("Content-Type", "text/html; charset=utf-8")], (page + "</body></html>").encode())

    # --- values -----------------------------------------------------------

    @staticmethod
    def _default(attr: Attr) -> Any:
        if attr.kind == "caselog":
            return []
        return attr.default

    def _lookup(self, cls: str, obj_id: int) -> tuple[str, dict[str, Any]] | None:
        entry = self.db.get((ROOT.get(cls, cls), obj_id))
        return entry if entry and is_a(entry[0], cls) else None

    def _raw(self, leaf: str, obj: Mapping[str, Any], code: str) -> Any:
        """An attribute's value for OQL and criteria (ints for keys, text for case logs)."""
        if code == "id":
            return obj["id"]
        if code == "friendlyname":
            return friendlyname(leaf, obj)
        if code == "finalclass":
            return leaf
        if code == "operational_status":
            status = obj.get("status")
            return "resolved" if status == "resolved" else "closed" if status in ("closed", "rejected") else "ongoing"
        attr = ATTRS[leaf].get(code)
        if attr is None and code.endswith("_friendlyname"):
            key = ATTRS[leaf].get(code[: -len("_friendlyname")])
            if key is not None and key.kind == "extkey":
                target = self._lookup(key.target, int(obj.get(key.code) or 0))
                return friendlyname(*target) if target else ""
        if attr is None:
            raise KeyError(code)
        if attr.kind == "extfield":
            key = ATTRS[leaf][attr.target]
            target = self._lookup(key.target, int(obj.get(attr.target) or 0))
            return "" if target is None else self._raw(target[0], target[1], attr.ext_attr)
        if attr.kind == "caselog":
            return "\n".join(e["message"] for e in obj.get(code) or [])
        return obj.get(code, self._default(attr))

    def _out(self, leaf: str, obj: Mapping[str, Any], code: str) -> Any:
        """An attribute's value as JSON on the wire (strings, "0" keys, "" dates, case-log objects)."""
        attr = ATTRS[leaf].get(code)
        if attr is not None and attr.kind == "caselog":
            return {"entries": [{k: e[k] for k in ("date", "user_login", "user_id", "message", "message_html")}
                                for e in obj.get(code) or []]}
        if attr is not None and attr.kind == "stopwatch":
            return int(obj.get(code) or 0)
        value = self._raw(leaf, obj, code)
        return "" if value is None else str(value)

    def _valid_output_codes(self, cls: str) -> set[str]:
        attrs = ATTRS[cls]
        return {"id", "friendlyname", *attrs,
                *(f"{c}_friendlyname" for c, a in attrs.items() if a.kind == "extkey")}

    def _star_codes(self, cls: str) -> list[str]:
        attrs = ATTRS[cls]
        return [*attrs, "friendlyname", *(f"{c}_friendlyname" for c, a in attrs.items() if a.kind == "extkey")]

    def _output_spec(self, cls: str, spec: Any) -> list[str] | str:
        """'*', '*+' or a validated list of codes."""
        if spec is None or spec == "*" or spec == "":
            return "*"
        if spec == "*+":
            return "*+"
        codes = [c.strip() for c in str(spec).split(",") if c.strip()]
        valid = self._valid_output_codes(cls)
        for code in codes:
            if code not in valid:
                raise _Thrown(100, f"output_fields: invalid attribute code '{code}'")
        return codes

    def _entry(self, cls: str, leaf: str, obj: Mapping[str, Any], spec: list[str] | str,
               message: str = "", code: int = 0) -> dict[str, Any]:
        if spec == "*":
            codes = [c for c in self._star_codes(cls) if c in self._valid_output_codes(leaf)]
        elif spec == "*+":
            codes = self._star_codes(leaf)
        else:
            codes = [c for c in spec if c in self._valid_output_codes(leaf)]
        return {"code": code, "message": message, "class": leaf, "key": str(obj["id"]),
                "fields": {c: self._out(leaf, obj, c) for c in codes}}

    def _objects(self, cls: str, found: list[tuple[str, dict[str, Any]]], spec: list[str] | str,
                 message: str = "") -> dict[str, Any] | None:
        if not found:
            return None
        return {f"{leaf}::{obj['id']}": self._entry(cls, leaf, obj, spec, message) for leaf, obj in found}

    # --- keys -------------------------------------------------------------

    @staticmethod
    def _require(data: Mapping[str, Any], *names: str) -> None:
        for name in names:
            if name not in data:
                raise _Thrown(100, f"Missing parameter '{name}'")

    @staticmethod
    def _check_class(cls: Any) -> str:
        if not isinstance(cls, str) or cls not in ATTRS:
            raise _Thrown(100, f"class: '{cls}' is not a valid class'")
        return cls

    def _all(self, cls: str) -> list[tuple[str, dict[str, Any]]]:
        return [(leaf, obj) for (_, _), (leaf, obj) in sorted(self.db.items()) if is_a(leaf, cls)]

    def _query(self, text: str) -> list[tuple[str, dict[str, Any]]]:
        try:
            query = oql.parse(text)
            if query.cls not in ATTRS:
                raise oql.OqlError(f"Unknown class '{query.cls}'")
            valid = self._valid_output_codes(query.cls) | {"finalclass", "operational_status"}
            for name in oql.fields_of(query.where):
                code = name.split(".", 1)[-1] if "." in name else name
                if "." in name and name.split(".", 1)[0] != query.alias:
                    raise oql.OqlError(f"Unknown class alias '{name.split('.', 1)[0]}'")
                if code not in valid:
                    raise oql.OqlError(f"Unknown attribute '{code}' of class {query.cls}")
            matches = []
            for leaf, obj in self._all(query.cls):
                resolve = (lambda n, leaf=leaf, obj=obj: self._raw(leaf, obj, n.split(".", 1)[-1]))
                if query.where is None or oql.evaluate(query.where, resolve):
                    matches.append((leaf, obj))
            return matches
        except (oql.OqlError, KeyError) as exc:
            raise _Thrown(100, f"Query failed to execute: query = {text}, {exc}") from None

    def _criteria(self, cls: str, criteria: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        wanted: dict[str, Any] = {}
        narrow = cls
        for code, value in criteria.items():
            if code == "finalclass":
                narrow = self._check_class(value)
                continue
            if code not in self._valid_output_codes(cls):
                raise _Thrown(100, f"{code}: Unknown attribute")
            attr = ATTRS[cls].get(code)
            if attr is not None and attr.kind == "extkey" and not isinstance(value, (int, float)) and \
                    not (isinstance(value, str) and value.isdigit()):
                try:
                    value = self._resolve_ext(attr, value)
                except _Thrown:
                    return []
            wanted[code] = value
        found = []
        for leaf, obj in self._all(cls):
            if not is_a(leaf, narrow):
                continue
            if all(oql.evaluate(oql.Compare(oql.Field(c), "=", v), lambda n, leaf=leaf, obj=obj:
                                self._raw(leaf, obj, n)) for c, v in wanted.items()):
                found.append((leaf, obj))
        return found

    @staticmethod
    def _describe(criteria: Mapping[str, Any]) -> str:
        pairs = ", ".join(f"{k}: {v}" for k, v in criteria.items())
        return f"{pairs} ({', '.join(str(v) for v in criteria.values())})"

    def _find(self, cls: str, key: Any) -> list[tuple[str, dict[str, Any]]]:
        """Every object `key` selects (any number)."""
        if isinstance(key, bool) or key is None or isinstance(key, (list, float)):
            raise _Thrown(100, "Wrong format for key: expecting an id, an OQL query or criteria")
        if isinstance(key, int) or (isinstance(key, str) and key.strip().isdigit()):
            entry = self._lookup(cls, int(key))
            return [entry] if entry else []
        if isinstance(key, str):
            return self._query(key)
        return self._criteria(cls, key)

    def _find_one(self, cls: str, key: Any) -> tuple[str, dict[str, Any]]:
        """Exactly one object, else the iTop messages of section 3.1."""
        found = self._find(cls, key)
        if len(found) == 1:
            return found[0]
        if isinstance(key, int) or (isinstance(key, str) and key.strip().isdigit()):
            raise _Thrown(100, f"Invalid object {cls}::{int(key)}")
        if isinstance(key, str):
            if not found:
                raise _Thrown(100, f"No item found for query: {key}")
            raise _Thrown(100, f"Several items found ({len(found)}) for query: {key}")
        if not found:
            raise _Thrown(100, f"No item found with criteria: {self._describe(key)}")
        raise _Thrown(100, f"Several items found ({len(found)}) with criteria: {self._describe(key)}")

    def _resolve_ext(self, attr: Attr, value: Any) -> int:
        if value is None or value == "" or value == 0 or value == "0":
            return 0
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            if self._lookup(attr.target, int(value)) is None:
                raise _Thrown(100, f"{attr.code}: Invalid object {attr.target}::{int(value)}")
            return int(value)
        try:
            return int(self._find_one(attr.target, value)[1]["id"])
        except _Thrown as exc:
            raise _Thrown(100, f"{attr.code}: {exc.text}") from None

    # --- writing ----------------------------------------------------------

    def _log_entry(self, user: FakeUser, value: Any, code: str) -> dict[str, Any] | list[dict[str, Any]]:
        """One case-log entry from a string or `add_item`, or the whole list from `items`."""
        if isinstance(value, str):
            return self._make_entry(user, value, "html", {})
        if isinstance(value, dict) and "add_item" in value:
            return self._make_entry(user, None, None, value["add_item"], code)
        if isinstance(value, dict) and "items" in value:
            return [self._make_entry(user, None, None, item, code) for item in value["items"] or []]
        raise _Thrown(100, f"{code}: Invalid value for a case log")

    def _make_entry(self, user: FakeUser, text: str | None, fmt: str | None, item: Any,
                    code: str = "") -> dict[str, Any]:
        if text is None:
            if not isinstance(item, dict) or "message" not in item:
                raise _Thrown(100, f"{code}: Missing mandatory entry: 'message'")
            text, fmt = str(item["message"]), str(item.get("format") or "html")
        author_name, author_id = user.display_name, str(user.user_id)
        if isinstance(item, dict) and "user_id" in item:
            if "Administrator" not in user.profiles:
                raise _InOp(1, "Only administrators can set the author of a case log entry")
            uid = int(item["user_id"] or 0)
            if uid == 0:
                author_name, author_id = str(item.get("user_login") or ""), "0"
            else:
                other = next((u for u in self.users.values() if u.user_id == uid), None)
                if other is None:
                    raise _Thrown(100, f"{code}: Invalid object User::{uid}")
                author_name, author_id = other.display_name, str(uid)
        if fmt == "text":
            message, message_html = text, text_to_html(text).removeprefix("<p>").removesuffix("</p>")
        elif looks_like_html(text):
            message, message_html = html_to_text(text), text
        else:
            message, message_html = text, text_to_html(text)
        date = str(item["date"]) if isinstance(item, dict) and item.get("date") else self._stamp()
        return {"date": date, "user_login": author_name, "user_id": author_id, "message": message,
                "message_html": message_html, "format": fmt}

    def _apply_fields(self, user: FakeUser, leaf: str, obj: dict[str, Any], fields: Any) -> None:
        if not isinstance(fields, dict):
            raise _Thrown(100, "fields: must be an object (attribute code: value)")
        attrs = ATTRS[leaf]
        for code, value in fields.items():
            attr = attrs.get(code)
            if attr is None:
                raise _Thrown(100, f"{code}: Unknown attribute")
            if attr.computed:
                continue  # ref, priority, dates...: iTop overwrites what was sent
            if attr.kind == "caselog":
                entry = self._log_entry(user, value, code)
                obj[code] = entry if isinstance(entry, list) else [*obj.get(code, []), entry]
            elif attr.kind == "extkey":
                obj[code] = self._resolve_ext(attr, value)
            elif attr.kind == "enum":
                text = "" if value is None else str(value)
                if text not in attr.values:
                    raise _Thrown(100, f"Unexpected value for attribute '{attr.label}' ({code}) : "
                                       f"Value not allowed [{text}]")
                obj[code] = text
            elif attr.kind == "text":
                text = "" if value is None else str(value)
                obj[code] = text if not text or looks_like_html(text) else text_to_html(text)
            else:
                obj[code] = "" if value is None else str(value)

    def _check_null(self, leaf: str, obj: Mapping[str, Any]) -> None:
        required = {"Organization": ("name",), "Person": ("name", "org_id"), "Team": ("name", "org_id"),
                    "Service": ("name", "org_id"), "ServiceSubcategory": ("name", "service_id")}.get(
            leaf, ("title", "description", "org_id"))
        if leaf in REF_PREFIX and obj.get("status") in MANDATORY and "caller_id" in MANDATORY[obj["status"]]:
            required = (*required, "caller_id")
        for code in required:
            if obj.get(code) in (None, "", 0):
                attr = ATTRS[leaf][code]
                raise _Thrown(100, f"Unexpected value for attribute '{attr.label}' ({code}) : Null not allowed")

    @staticmethod
    def _compute(leaf: str, obj: dict[str, Any]) -> None:
        if leaf in REF_PREFIX:
            obj["priority"] = PRIORITY.get(str(obj.get("impact")), {}).get(str(obj.get("urgency")), "4")

    def _can(self, user: FakeUser, right: str, cls: str, verb: str) -> None:
        if not user.can(right, cls):
            raise _InOp(1, f"The current user does not have enough permissions for {verb} data of class {cls}")

    # --- operations -------------------------------------------------------

    def op_list_operations(self, user: FakeUser, data: dict, version: str) -> dict[str, Any]:
        ops = [{"verb": v, "description": d, "extension": "CoreServices"} for v, d in OPERATIONS]
        return {"code": 0, "message": f"Operations: {len(ops)}", "version": version, "operations": ops}

    def op_check_credentials(self, user: FakeUser, data: dict, version: str) -> dict[str, Any]:
        self._require(data, "user", "password")
        other = self.users.get(str(data["user"]))
        ok = other is not None and secrets.compare_digest(other.password, str(data["password"]))
        return {"code": 0, "message": None, "authorized": ok}

    def op_get(self, user: FakeUser, data: dict, version: str) -> dict[str, Any]:
        self._require(data, "class", "key")
        cls = self._check_class(data["class"])
        spec = self._output_spec(cls, data.get("output_fields"))
        self._can(user, "read", cls, "reading")
        limit, page = int(data.get("limit") or 0), int(data["page"]) if data.get("page") is not None else 1
        if page < 1:
            raise _InOp(13, f"Invalid page number: {page}, must be 1 or greater")
        found = self._find(cls, data["key"])
        total = len(found)
        if limit > 0:
            found = found[limit * (page - 1): limit * page]
        return {"code": 0, "message": f"Found: {total}", "objects": self._objects(cls, found, spec)}

    def op_create(self, user: FakeUser, data: dict, version: str) -> dict[str, Any]:
        self._require(data, "class", "fields", "comment")
        cls = self._check_class(data["class"])
        spec = self._output_spec(cls, data.get("output_fields"))
        self._can(user, "modify", cls, "creating")
        if cls in ABSTRACT:
            raise _Thrown(100, f"class: '{cls}' is abstract and cannot be instantiated")
        obj: dict[str, Any] = {code: self._default(a) for code, a in ATTRS[cls].items()}
        self._apply_fields(user, cls, obj, data["fields"])
        if cls in REF_PREFIX:
            self._ref_counter += 1  # consumed even when the insert fails below
            obj["ref"] = f"{REF_PREFIX[cls]}-{self._ref_counter:06d}"
            obj["start_date"] = obj["last_update"] = self._stamp()
        self._check_null(cls, obj)
        self._compute(cls, obj)
        root = ROOT.get(cls, cls)
        self._ids[root] += 1
        obj["id"] = self._ids[root]
        self.db[(root, obj["id"])] = (cls, obj)
        log.debug("fake iTop created %s::%s", cls, obj["id"])
        return {"code": 0, "message": None, "objects": self._objects(cls, [(cls, obj)], spec, "created")}

    def op_update(self, user: FakeUser, data: dict, version: str) -> dict[str, Any]:
        self._require(data, "class", "key", "fields", "comment")
        cls = self._check_class(data["class"])
        spec = self._output_spec(cls, data.get("output_fields"))
        self._can(user, "modify", cls, "modifying")
        leaf, stored = self._find_one(cls, data["key"])
        obj = copy.deepcopy(stored)
        self._apply_fields(user, leaf, obj, data["fields"])
        self._check_null(leaf, obj)
        if leaf in REF_PREFIX:
            obj["last_update"] = self._stamp()
        self._compute(leaf, obj)
        self.db[(ROOT.get(leaf, leaf), obj["id"])] = (leaf, obj)
        return {"code": 0, "message": None, "objects": self._objects(cls, [(leaf, obj)], spec, "updated")}

    def op_apply_stimulus(self, user: FakeUser, data: dict, version: str) -> dict[str, Any]:
        self._require(data, "class", "key", "fields", "stimulus", "comment")
        cls = self._check_class(data["class"])
        spec = self._output_spec(cls, data.get("output_fields"))
        self._can(user, "modify", cls, "modifying")
        leaf, stored = self._find_one(cls, data["key"])
        obj = copy.deepcopy(stored)
        self._apply_fields(user, leaf, obj, data["fields"])
        stimulus = str(data["stimulus"])
        state = str(obj.get("status"))
        target = TRANSITIONS.get(leaf, {}).get(state, {}).get(stimulus)
        if target is None:
            raise _InOp(100, f"Invalid stimulus: '{stimulus}' on the object {friendlyname(leaf, obj)} "
                             f"in state '{state}'")
        missing = []
        for code in MANDATORY.get(target, ()):
            attr = ATTRS[leaf][code]
            if attr.kind == "extkey" and not self.strict_mandatory:
                continue  # PHP 8: an empty key (0) is not == '' (contract 9.3)
            if obj.get(code) in ("", None) or (attr.kind == "extkey" and not obj.get(code)):
                missing.append(code)
        if missing:
            raise _InOp(100, f"Missing mandatory attribute(s) for applying the stimulus: {', '.join(missing)}.")
        now = self._stamp()
        obj["status"] = target
        if target in TRANSITION_DATES:
            obj[TRANSITION_DATES[target]] = now
        if target == "resolved" and obj.get("start_date"):
            start = datetime.strptime(obj["start_date"], DATE_FORMAT)
            obj["time_spent"] = str(max(0, int((self.now() - start).total_seconds())))
        obj["last_update"] = now
        self._compute(leaf, obj)
        self.db[(ROOT.get(leaf, leaf), obj["id"])] = (leaf, obj)
        log.debug("fake iTop %s::%s %s -> %s", leaf, obj["id"], state, target)
        return {"code": 0, "message": None, "objects": self._objects(cls, [(leaf, obj)], spec, "updated")}

    def op_delete(self, user: FakeUser, data: dict, version: str) -> dict[str, Any]:
        self._require(data, "class", "key", "comment")
        cls = self._check_class(data["class"])
        self._can(user, "delete", cls, "deleting")
        simulate = bool(data.get("simulate"))
        found = self._find(cls, data["key"])
        if not found:
            return {"code": 0, "message": ("SIMULATING: " if simulate else "") + "Deleted: 0", "objects": None}
        ids = {(ROOT.get(leaf, leaf), obj["id"]) for leaf, obj in found}
        blocked = []
        for (root, oid) in ids:
            for (_, _), (leaf, obj) in self.db.items():
                if (ROOT.get(leaf, leaf), obj["id"]) in ids:
                    continue
                for attr in ATTRS[leaf].values():
                    if attr.kind == "extkey" and ROOT.get(attr.target, attr.target) == root and obj.get(attr.code) == oid:
                        blocked.append((leaf, obj))
        if blocked:
            objects = {f"{leaf}::{obj['id']}": {**self._entry(leaf, leaf, obj, ["id", "friendlyname"]), "code": 4,
                                                "message": "must be deleted explicitly"} for leaf, obj in blocked}
            return {"code": 100, "message": "Deletion not allowed: dependent objects exist", "objects": objects}
        objects = {f"{leaf}::{obj['id']}": {**self._entry(leaf, leaf, obj, ["id", "friendlyname"]),
                                            "message": "deleted"} for leaf, obj in found}
        if not simulate:
            for key in ids:
                del self.db[key]
        return {"code": 0, "message": ("SIMULATING: " if simulate else "") + f"Deleted: {len(found)}",
                "objects": objects}

    def op_get_related(self, user: FakeUser, data: dict, version: str) -> dict[str, Any]:
        self._require(data, "class", "key", "relation")
        cls = self._check_class(data["class"])
        direction = data.get("direction", "down")
        if direction not in ("down", "up"):
            raise _InOp(100, f"Invalid value: '{direction}' for the parameter 'direction'", relations=[])
        found = self._find(cls, data["key"])
        if not found:
            return {"code": 0, "message": "Nothing found", "objects": None, "relations": {}}
        counts = Counter(leaf for leaf, _ in found)
        summary = ", ".join(f"{leaf}= {n}" for leaf, n in counts.items())
        objects = {f"{leaf}::{obj['id']}": self._entry(leaf, leaf, obj, ["id", "friendlyname"]) for leaf, obj in found}
        return {"code": 0, "message": f"Scope: {len(found)}; Related objects: {summary}", "objects": objects,
                "relations": {}}


_HANDLERS = {
    "list_operations": FakeItop.op_list_operations,
    "core/check_credentials": FakeItop.op_check_credentials,
    "core/get": FakeItop.op_get,
    "core/create": FakeItop.op_create,
    "core/update": FakeItop.op_update,
    "core/apply_stimulus": FakeItop.op_apply_stimulus,
    "core/delete": FakeItop.op_delete,
    "core/get_related": FakeItop.op_get_related,
}

assert set(CLASSES) == set(ATTRS)


def main(argv: list[str] | None = None) -> None:
    """Serve a fake iTop on 127.0.0.1 (never another interface)."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m opsgate_provider_itop.fake", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--timezone", default="Europe/Paris")
    parser.add_argument("--strict", action="store_true", help="also require external keys on transitions")
    parser.add_argument("--no-token", action="store_true", help="disable token login")
    parser.add_argument("--state", default=None, metavar="FILE",
                        help="keep the objects in FILE (JSON, written after every request, read at start)")
    args = parser.parse_args(argv)
    fake = FakeItop(url=f"http://127.0.0.1:{args.port}/", timezone=args.timezone, strict_mandatory=args.strict,
                    token_login=not args.no_token, state_path=args.state)
    s = fake.settings()
    print(f"fake iTop on {s.app_root} (REST endpoint {s.endpoint}); settings for opsgate:", flush=True)
    for name in ("url", "user", "password", "default_org_id", "default_caller_id", "default_team_id",
                 "default_agent_id", "default_service_id", "timezone"):
        print(f"ITOP_{name.upper()}={getattr(s, name)}", flush=True)
    print(f"# or token login: ITOP_AUTH_TOKEN={next(iter(fake.default_user.tokens))}", flush=True)
    uvicorn.run(fake, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
