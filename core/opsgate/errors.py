"""Domain errors raised by services, repos and plugins.

None of these knows about HTTP; `opsgate.app` maps them to status codes in one
place (STYLE.md section 9).
"""

from __future__ import annotations


class OpsgateError(Exception):
    """Base class of every error opsgate raises on purpose."""

    status_code = 500

    def __init__(self, detail: str = "", *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail or self.__class__.__name__
        self.errors = errors or []


class Invalid(OpsgateError):
    """Bad input: names the field and the reason."""

    status_code = 400

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", errors=[{"field": field, "message": reason}])
        self.field = field
        self.reason = reason


class Unauthorized(OpsgateError):
    """No valid credentials were presented."""

    status_code = 401

    def __init__(self, detail: str = "authentication required") -> None:
        super().__init__(detail)


class Forbidden(OpsgateError):
    """The principal is known but may not do this."""

    status_code = 403

    def __init__(self, detail: str = "access denied", *, required_permission: str | None = None,
                 body: dict | None = None) -> None:
        super().__init__(detail)
        self.required_permission = required_permission
        self.body = body


class NotFound(OpsgateError):
    """The row does not exist (or is outside the caller's scope)."""

    status_code = 404


class Conflict(OpsgateError):
    """The row is not in the state the operation needs, or a unique key clashes."""

    status_code = 409


class ApprovalRequired(OpsgateError):
    """The action needs an approved change gate first."""

    status_code = 409


class ProviderError(OpsgateError):
    """A plugin object (provider, tool, harness, deploy target) failed."""

    status_code = 502

    def __init__(self, provider: str, op: str, detail: str = "") -> None:
        super().__init__(f"{provider}.{op} failed" + (f": {detail}" if detail else ""))
        self.provider = provider
        self.op = op


class Unavailable(OpsgateError):
    """A dependency (usually the database) is not reachable right now."""

    status_code = 503
