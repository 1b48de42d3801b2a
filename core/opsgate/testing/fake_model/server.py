"""The fake model server: Anthropic Messages, OpenAI Responses and Chat Completions on one port.

Standard library only (`http.server` in a background thread), so it starts in
milliseconds, has no event loop of its own and can stall a stream on purpose.
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

MODEL_PROTOCOLS = ("anthropic", "responses", "chat")

# Shell tools the CLIs offer, by protocol, in order of preference.
ANTHROPIC_SHELL_TOOLS = ("Bash", "bash", "shell", "terminal")
RESPONSES_SHELL_TOOLS = ("exec_command", "shell_command", "shell", "local_shell", "terminal", "bash")
CHAT_SHELL_TOOLS = ("terminal", "shell", "bash", "exec_command", "run_command")


# --- the script --------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One scripted model turn: run a shell command, or answer with final text."""

    kind: str  # "shell" | "final"
    command: str = ""
    text: str = ""


def shell(command: str, text: str = "") -> Step:
    """A turn that calls the CLI's shell tool with `command` (optional text before it)."""
    return Step(kind="shell", command=command, text=text)


def final(text: str) -> Step:
    """A turn that ends the conversation with `text`."""
    return Step(kind="final", text=text)


DEFAULT_SCRIPT: tuple[Step, ...] = (
    shell("echo ok > proof.txt"),
    final("Done."),
)


# --- recording ---------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, raw text, or None
    protocol: str  # anthropic | responses | chat | count_tokens | models | probe | other
    at: float = field(default_factory=time.time)
    status: int = 0

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def tool_names(self) -> list[str]:
        return [name for name in (_tool_name(t) for t in _tools(self.body)) if name]

    @property
    def authorization(self) -> str | None:
        """The `Authorization` header value, if any."""
        return self.headers.get("authorization")

    @property
    def api_key(self) -> str | None:
        """The credential sent, from `x-api-key` or a Bearer `Authorization`."""
        if "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    @property
    def stream(self) -> bool:
        return bool(isinstance(self.body, dict) and self.body.get("stream"))

    def text(self) -> str:
        """Every piece of text in the request (system, instructions, messages), joined."""
        return "\n".join(_texts(self.body))

    def tool_results(self) -> int:
        """How many tool results the conversation already holds."""
        return _count_tool_results(self.protocol, self.body)


def _tools(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return []
    tools = body.get("tools") or []
    out: list[dict[str, Any]] = []
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        out.append(tool)
        # Responses API "namespace" tools group functions.
        for sub in tool.get("tools") or []:
            if isinstance(sub, dict):
                out.append(sub)
    return out


def _tool_name(tool: Mapping[str, Any]) -> str | None:
    if isinstance(tool.get("function"), dict):
        return tool["function"].get("name")
    return tool.get("name") or tool.get("type")


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key in ("system", "instructions", "messages", "input", "content", "text", "output"):
            if key in value:
                yield from _texts(value[key])


def _count_tool_results(protocol: str, body: Any) -> int:
    if not isinstance(body, dict):
        return 0
    count = 0
    if protocol == "anthropic":
        for message in body.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):
                count += sum(1 for block in content if isinstance(block, dict) and block.get("type") == "tool_result")
    elif protocol == "responses":
        items = body.get("input")
        if isinstance(items, list):
            count = sum(1 for item in items if isinstance(item, dict) and str(item.get("type", "")).endswith("_output"))
    elif protocol == "chat":
        count = sum(1 for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "tool")
    return count


# --- the server --------------------------------------------------------------


class FakeModelServer:
    """A scripted model endpoint on 127.0.0.1, served from a background thread.

    Args:
        script: the steps of the conversation (default: one shell step writing
            `proof.txt`, then "Done.").
        scripts: optional per-test scripts keyed by a marker string; the first
            marker found in a request's text picks its script, else `script`.
        model: the model id reported in responses and `/models`.
        fail_status: answer every model call with this HTTP status (401, 429,
            500 …) and a protocol-shaped error body.
        fail_times: with `fail_status`, fail only the first N model calls.
        stall_before: seconds to wait before answering a model call.
        stall_during: seconds to wait after the first event of a stream.
        port: 0 picks a free port.
    """

    def __init__(
        self,
        script: Sequence[Step] | None = None,
        *,
        scripts: Mapping[str, Sequence[Step]] | None = None,
        model: str = "fake-model",
        fail_status: int | None = None,
        fail_times: int | None = None,
        stall_before: float = 0.0,
        stall_during: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.script: tuple[Step, ...] = tuple(script) if script is not None else DEFAULT_SCRIPT
        self.scripts: dict[str, tuple[Step, ...]] = {k: tuple(v) for k, v in (scripts or {}).items()}
        self.model = model
        self.fail_status = fail_status
        self.fail_times = fail_times
        self.stall_before = stall_before
        self.stall_during = stall_during
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._model_calls = 0
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> FakeModelServer:
        if self._httpd is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        httpd = ThreadingHTTPServer((self._host, self._port), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(target=httpd.serve_forever, name="fake-model", daemon=True)
        self._thread.start()
        log.debug("fake model server listening on %s", self.url)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve in the calling thread (the `python -m` entry point)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the fake model server is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The root URL, without `/v1` (Claude Code's base URL)."""
        return f"http://{self._host}:{self.port}"

    @property
    def v1_url(self) -> str:
        """`<root>/v1`, the OpenAI-compatible base (Codex, Hermes)."""
        return self.url + "/v1"

    # recording

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def model_requests(self) -> list[RecordedRequest]:
        """Only the model calls (messages, responses, chat completions)."""
        return [r for r in self.requests if r.protocol in MODEL_PROTOCOLS]

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._model_calls = 0

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_id(self) -> int:
        return next(self._ids)

    def _should_fail(self) -> bool:
        with self._lock:
            self._model_calls += 1
            if self.fail_status is None:
                return False
            return self.fail_times is None or self._model_calls <= self.fail_times

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    # script

    def choose_step(self, request: RecordedRequest) -> Step:
        """The step for this request: plain text without tools, else the script's step."""
        script = self.script
        if self.scripts:
            text = request.text()
            for marker, steps in self.scripts.items():
                if marker in text:
                    script = steps
                    break
        index = request.tool_results()
        if not request.tool_names:
            # Side calls (titles, summaries) offer no tools: plain text.
            for step in script:
                if step.kind == "final":
                    return step
            return final("ok")
        if index < len(script):
            return script[index]
        last_final = [s for s in script if s.kind == "final"]
        return last_final[-1] if last_final else final("Done.")


# --- HTTP handling -----------------------------------------------------------


def _classify(method: str, path: str) -> str:
    p = path.rstrip("/")
    if method == "POST":
        if p.endswith("/messages/count_tokens"):
            return "count_tokens"
        if p.endswith("/messages"):
            return "anthropic"
        if p.endswith("/responses"):
            return "responses"
        if p.endswith("/chat/completions"):
            return "chat"
    if method in ("GET", "HEAD"):
        if p in ("", "/"):
            return "probe"
        if p.endswith("/models") or "/models/" in p:
            return "models"
    return "other"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeModelServer  # set on the bound subclass
    protocol_version = "HTTP/1.1"
    server_version = "opsgate-fake-model/1"
    disable_nagle_algorithm = True  # small SSE frames go out at once (no 40 ms delayed-ACK stalls)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("fake model: " + format, *args)

    # request plumbing

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            raw = b"".join(chunks)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        return raw

    def _handle(self) -> None:
        split = urlsplit(self.path)
        raw = self._read_body() if self.command in ("POST", "PUT", "PATCH") else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            protocol=_classify(self.command, split.path),
        )
        self.fake._record(request)
        try:
            self._dispatch(request)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("fake model: client went away during %s %s", self.command, split.path)
            self.close_connection = True

    do_GET = do_POST = do_HEAD = do_PUT = do_PATCH = do_DELETE = _handle

    def _dispatch(self, request: RecordedRequest) -> None:
        fake = self.fake
        protocol = request.protocol
        if protocol == "probe":
            return self._json(200, {"ok": True, "server": "opsgate-fake-model"}, request)
        if protocol == "models":
            return self._models(request)
        if protocol == "count_tokens":
            return self._json(200, {"input_tokens": max(1, len(request.text()) // 4)}, request)
        if protocol not in MODEL_PROTOCOLS:
            return self._json(404, {"error": {"type": "not_found", "message": f"no route {request.path}"}}, request)
        if not isinstance(request.body, dict):
            return self._json(400, _error_body(protocol, 400, "request body must be a JSON object"), request)
        fake._sleep(fake.stall_before)
        if fake._should_fail():
            status = int(fake.fail_status or 500)
            return self._json(status, _error_body(protocol, status, f"scripted failure {status}"), request)
        step = fake.choose_step(request)
        n = fake._next_id()
        model = request.model or fake.model
        if protocol == "anthropic":
            events = _anthropic_events(step, request, model, n)
            if request.stream:
                return self._sse(events, request, named=True)
            return self._json(200, _anthropic_message(step, request, model, n), request)
        if protocol == "responses":
            events = _responses_events(step, request, model, n)
            if request.stream:
                return self._sse(events, request, named=True)
            return self._json(200, _responses_object(step, request, model, n), request)
        # chat
        if request.stream:
            return self._sse(_chat_chunks(step, request, model, n), request, named=False, done=True)
        return self._json(200, _chat_completion(step, request, model, n), request)

    def _models(self, request: RecordedRequest) -> None:
        model = self.fake.model
        entry = {"id": model, "object": "model", "created": 0, "owned_by": "opsgate",
                 "type": "model", "display_name": model, "created_at": "2026-01-01T00:00:00Z"}
        tail = request.path.rstrip("/").rsplit("/models", 1)[-1].strip("/")
        if tail:
            if tail != model:
                return self._json(404, {"error": {"type": "not_found_error", "message": f"no model {tail}"}}, request)
            return self._json(200, entry, request)
        return self._json(200, {"object": "list", "data": [entry], "has_more": False,
                                "first_id": model, "last_id": model}, request)

    # response writers

    def _json(self, status: int, payload: Any, request: RecordedRequest) -> None:
        data = json.dumps(payload).encode()
        request.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400 and request.protocol in MODEL_PROTOCOLS:
            self.send_header("x-should-retry", "false" if status in (400, 401, 403, 404) else "true")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _sse(self, events: Iterable[tuple[str | None, dict[str, Any]]], request: RecordedRequest, *,
             named: bool, done: bool = False) -> None:
        request.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        first = True
        for name, data in events:
            frame = (f"event: {name}\n" if named and name else "") + f"data: {json.dumps(data)}\n\n"
            self._chunk(frame.encode())
            if first:
                first = False
                self.fake._sleep(self.fake.stall_during)
        if done:
            self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _error_body(protocol: str, status: int, message: str) -> dict[str, Any]:
    kinds = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
             404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
    kind = kinds.get(status, "api_error")
    if protocol == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


# --- tool selection ----------------------------------------------------------


def _pick_tool(request: RecordedRequest, preferred: Sequence[str]) -> str | None:
    offered = request.tool_names
    for name in preferred:
        if name in offered:
            return name
    return None


def _tool_arguments(tool: str, command: str) -> dict[str, Any]:
    if tool == "Bash":
        return {"command": command, "description": "Run the scripted command"}
    if tool == "exec_command":
        return {"cmd": command}
    if tool in ("shell", "local_shell"):
        return {"command": ["bash", "-lc", command]}
    return {"command": command}


def _shell_call(step: Step, request: RecordedRequest, preferred: Sequence[str]) -> tuple[str, dict[str, Any]] | None:
    if step.kind != "shell":
        return None
    tool = _pick_tool(request, preferred)
    if tool is None:
        return None
    return tool, _tool_arguments(tool, step.command)


def _final_text(step: Step, request: RecordedRequest) -> str:
    if step.kind == "final":
        return step.text
    return f"No shell tool was offered (tools: {', '.join(request.tool_names) or 'none'})."


def _usage_numbers(request: RecordedRequest) -> tuple[int, int]:
    return max(1, len(request.text()) // 4), 5


# --- Anthropic Messages ------------------------------------------------------


def _anthropic_blocks(step: Step, request: RecordedRequest, n: int) -> tuple[list[dict[str, Any]], str]:
    call = _shell_call(step, request, ANTHROPIC_SHELL_TOOLS)
    if call is None:
        return [{"type": "text", "text": _final_text(step, request)}], "end_turn"
    blocks: list[dict[str, Any]] = []
    if step.text:
        blocks.append({"type": "text", "text": step.text})
    blocks.append({"type": "tool_use", "id": f"toolu_{n:04d}", "name": call[0], "input": call[1]})
    return blocks, "tool_use"


def _anthropic_message(step: Step, request: RecordedRequest, model: str, n: int) -> dict[str, Any]:
    blocks, stop = _anthropic_blocks(step, request, n)
    tokens_in, tokens_out = _usage_numbers(request)
    return {"id": f"msg_{n:04d}", "type": "message", "role": "assistant", "model": model, "content": blocks,
            "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}}


def _anthropic_events(step: Step, request: RecordedRequest, model: str, n: int) -> Iterator[tuple[str, dict[str, Any]]]:
    blocks, stop = _anthropic_blocks(step, request, n)
    tokens_in, tokens_out = _usage_numbers(request)
    yield "message_start", {"type": "message_start", "message": {
        "id": f"msg_{n:04d}", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": tokens_in, "output_tokens": 1}}}
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "text", "text": ""}}
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "text_delta", "text": block["text"]}}
        else:
            yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(block["input"])}}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                            "usage": {"output_tokens": tokens_out}}
    yield "message_stop", {"type": "message_stop"}


# --- OpenAI Responses --------------------------------------------------------


def _responses_item(step: Step, request: RecordedRequest, n: int) -> dict[str, Any]:
    call = _shell_call(step, request, RESPONSES_SHELL_TOOLS)
    if call is None:
        return {"type": "message", "role": "assistant", "id": f"msg_{n:04d}", "status": "completed",
                "content": [{"type": "output_text", "text": _final_text(step, request), "annotations": []}]}
    tool, arguments = call
    return {"type": "function_call", "id": f"fc_{n:04d}", "call_id": f"call_{n:04d}", "name": tool,
            "arguments": json.dumps(arguments), "status": "completed"}


def _responses_object(step: Step, request: RecordedRequest, model: str, n: int,
                      item: dict[str, Any] | None = None, status: str = "completed") -> dict[str, Any]:
    tokens_in, tokens_out = _usage_numbers(request)
    output = [item or _responses_item(step, request, n)] if status == "completed" else []
    return {"id": f"resp_{n:04d}", "object": "response", "created_at": int(time.time()), "status": status,
            "model": model, "output": output,
            "usage": {"input_tokens": tokens_in, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": tokens_out, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": tokens_in + tokens_out}}


def _responses_events(step: Step, request: RecordedRequest, model: str, n: int) -> Iterator[tuple[str, dict[str, Any]]]:
    item = _responses_item(step, request, n)
    seq = itertools.count()
    created = _responses_object(step, request, model, n, status="in_progress")
    yield "response.created", {"type": "response.created", "sequence_number": next(seq), "response": created}
    if item["type"] == "message":
        added = {**item, "status": "in_progress", "content": []}
        yield "response.output_item.added", {"type": "response.output_item.added", "sequence_number": next(seq),
                                             "output_index": 0, "item": added}
        text = item["content"][0]["text"]
        yield "response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": next(seq),
                                             "item_id": item["id"], "output_index": 0, "content_index": 0,
                                             "delta": text}
    else:
        added = {**item, "status": "in_progress", "arguments": ""}
        yield "response.output_item.added", {"type": "response.output_item.added", "sequence_number": next(seq),
                                             "output_index": 0, "item": added}
    yield "response.output_item.done", {"type": "response.output_item.done", "sequence_number": next(seq),
                                        "output_index": 0, "item": item}
    yield "response.completed", {"type": "response.completed", "sequence_number": next(seq),
                                 "response": _responses_object(step, request, model, n, item=item)}


# --- OpenAI Chat Completions -------------------------------------------------


def _chat_message(step: Step, request: RecordedRequest, n: int) -> tuple[dict[str, Any], str]:
    call = _shell_call(step, request, CHAT_SHELL_TOOLS)
    if call is None:
        return {"role": "assistant", "content": _final_text(step, request)}, "stop"
    tool, arguments = call
    return {"role": "assistant", "content": step.text or None, "tool_calls": [{
        "index": 0, "id": f"call_{n:04d}", "type": "function",
        "function": {"name": tool, "arguments": json.dumps(arguments)}}]}, "tool_calls"


def _chat_completion(step: Step, request: RecordedRequest, model: str, n: int) -> dict[str, Any]:
    message, reason = _chat_message(step, request, n)
    for call in message.get("tool_calls", []):
        call.pop("index", None)
    tokens_in, tokens_out = _usage_numbers(request)
    return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": reason, "logprobs": None}],
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                      "total_tokens": tokens_in + tokens_out}}


def _chat_chunks(step: Step, request: RecordedRequest, model: str, n: int) -> Iterator[tuple[None, dict[str, Any]]]:
    message, reason = _chat_message(step, request, n)
    base = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    yield None, {**base, "choices": [{"index": 0, "delta": message, "finish_reason": None}]}
    yield None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}
    body = request.body if isinstance(request.body, dict) else {}
    if (body.get("stream_options") or {}).get("include_usage"):
        tokens_in, tokens_out = _usage_numbers(request)
        yield None, {**base, "choices": [], "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                                                      "total_tokens": tokens_in + tokens_out}}
