"""A tiny stand-in for the opsgate API that records what an agent's commands send."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


@dataclass
class RecordedCall:
    """One request the agent made to the stand-in API."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, raw text, or None
    at: float = field(default_factory=time.time)

    @property
    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None


class RecordingApi:
    """Answers every request (POST: 201 `{"id": n}`, else 200 `{}`) and records it.

    Pointed to by `HTTP(S)_PROXY`, it also records (and refuses) every outbound
    connection a CLI attempts through a proxy, so tests can assert there were none.

        with RecordingApi() as api:
            env["OPSGATE_API_URL"] = api.url
            ...
            assert api.calls[0].path == "/api/tickets/7/notes"
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._calls: list[RecordedCall] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> RecordingApi:
        if self._httpd is None:
            handler = type("_BoundApiHandler", (_ApiHandler,), {"api": self})
            self._httpd = ThreadingHTTPServer((self._host, self._port), handler)
            self._httpd.daemon_threads = True
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="recording-api", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> RecordingApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the recording API is not running")
        return f"http://{self._host}:{self._httpd.server_address[1]}"

    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._calls)

    def _record(self, call: RecordedCall) -> int:
        with self._lock:
            self._calls.append(call)
            return len(self._calls)


class _ApiHandler(BaseHTTPRequestHandler):
    api: RecordingApi
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small SSE frames go out at once (no 40 ms delayed-ACK stalls)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("recording api: " + format, *args)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        n = self.api._record(RecordedCall(
            method=self.command,
            path=urlsplit(self.path).path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        ))
        status, payload = (201, {"id": n}) if self.command == "POST" else (200, {})
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def do_CONNECT(self) -> None:  # noqa: N802 - stdlib naming
        # Used as an HTTP(S)_PROXY sentinel: record the tunnel attempt, refuse it.
        self.api._record(RecordedCall(method="CONNECT", path=self.path,
                                      headers={k.lower(): v for k, v in self.headers.items()}, body=None))
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
