"""Request id, logging context and security headers, as plain ASGI."""

from __future__ import annotations

import os
import re
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from opsgate.events.notifier import current_notifier
from opsgate.logging import agent_id_var, request_id_var, ticket_id_var
from opsgate.web.deps import release_stashed_conn

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def request_context(app: ASGIApp) -> ASGIApp:
    """Give each HTTP/WebSocket request an id (from `X-Request-ID` when sane) and echo it, and the
    app's event notifier."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _SAFE_ID.match(incoming) else os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        tokens = (request_id_var.set(request_id), ticket_id_var.set(None), agent_id_var.set(None))
        # Event wake-ups of this request's writes go through the app's notifier (opsgate.events.notifier).
        notifier_token = current_notifier.set(getattr(scope["app"].state, "notifier", None))
        try:
            await app(scope, receive, send)
        finally:
            await release_stashed_conn(scope)
            current_notifier.reset(notifier_token)
            request_id_var.reset(tokens[0])
            ticket_id_var.reset(tokens[1])
            agent_id_var.reset(tokens[2])

    return middleware


async def add_response_headers(message: Message, scope: Scope) -> None:
    """`before_send` hook: security headers and the request id on every response."""
    if message["type"] != "http.response.start":
        return
    headers: list[Any] = list(message.get("headers", []))
    present = {name.lower() if isinstance(name, bytes) else name.lower().encode() for name, _ in headers}
    for name, value in SECURITY_HEADERS:
        if name not in present:
            headers.append((name, value))
    request_id = scope.get("state", {}).get("request_id")
    if request_id and b"x-request-id" not in present:
        headers.append((b"x-request-id", request_id.encode()))
    message["headers"] = headers
