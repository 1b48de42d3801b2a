"""One place that maps errors to HTTP responses (STYLE.md section 9).

Body: `{"status", "detail", "errors": [{"field", "message"}]}`; a 403 adds
`"error": "access_denied"` and `"required_permission"`. Unexpected exceptions
are logged with the request id and answered as a bare 500.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from opsgate.errors import Forbidden, OpsgateError
from opsgate.logging import request_id_var

log = logging.getLogger(__name__)


def _body(status: int, detail: str, errors: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "detail": detail, "errors": errors or []}
    body.update(extra)
    return body


def _respond(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(content=body, status_code=status, media_type=MediaType.JSON, headers=headers)


def handle_opsgate_error(_: Request, exc: OpsgateError) -> Response:
    if isinstance(exc, Forbidden):
        if exc.body is not None:
            return _respond(403, {"status": 403, **exc.body})
        return _respond(403, _body(403, exc.detail, error="access_denied",
                                   required_permission=exc.required_permission))
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return _respond(exc.status_code, _body(exc.status_code, exc.detail, exc.errors), headers)


_PATH = re.compile(r"`\$\.([^`]+)`")
_NAMED_FIELD = re.compile(r"(?:missing required field|unknown field) `([^`]+)`")


def _field_of(item: dict[str, Any]) -> str:
    """The request field a Litestar validation item is about.

    Litestar's `key` is the field's path inside the body (`title`, `body`, `details.x`)
    or `data` when the error is about the body as a whole: then the field is named in
    msgspec's message (`$.path`, or a missing/unknown field in backticks), else it is
    the whole body and reported as `body`. A body field literally named `body` arrives
    with key `body`, so it is never confused with the whole body.
    """
    key = item.get("key")
    if key and key != "data":
        return str(key).removeprefix("data.")
    message = str(item.get("message", ""))
    match = _PATH.search(message) or _NAMED_FIELD.search(message)
    if match:
        return match.group(1)
    return "body"


def handle_validation(_: Request, exc: ValidationException) -> Response:
    items = exc.extra if isinstance(exc.extra, list) else []
    errors = []
    for item in items:
        if isinstance(item, dict):
            message = str(item.get("message", "invalid value"))
            errors.append({"field": _field_of(item), "message": message})
    if not errors:
        errors.append({"field": "body", "message": str(exc.detail)})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return _respond(400, _body(400, detail, errors))


def handle_http(_: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if status >= 500:
        log.error("HTTP %s: %s", status, detail)
    errors = [{"field": "body", "message": detail}] if status == 400 else []
    return _respond(status, _body(status, detail, errors), exc.headers)


def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path,
                  extra={"request_id": request_id_var.get()})
    return _respond(500, _body(500, "internal server error", request_id=request_id_var.get()))


HANDLERS = {
    OpsgateError: handle_opsgate_error,
    ValidationException: handle_validation,
    HTTPException: handle_http,
    Exception: handle_unexpected,
}
