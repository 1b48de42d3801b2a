"""Errors of the Wazuh adapter, mapped per contracts/wazuh.md section 4.4.

Every class is an `opsgate.errors.OpsgateError`, so the core's plugin-call
wrapper passes it through unchanged, and `status_code` is the control-plane
answer the contract proposes. `body()` is a JSON-able dict a route can return
as is (plus `secret_values_returned: false`).

Messages are built from fixed text, status codes, Wazuh error codes and
upstream `title`/`detail` after `scrub()`; they never carry a credential,
token or Authorization header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from opsgate.errors import NotFound, ProviderError

__all__ = [
    "CredentialUnavailable",
    "RuleNotFound",
    "WazuhAuthError",
    "WazuhError",
    "WazuhNotConfigured",
    "WazuhPermissionDenied",
    "WazuhRateLimited",
    "WazuhRequestRejected",
    "WazuhUnavailable",
    "scrub",
]

_AUTH_RE = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_MAX_DETAIL = 300


def scrub(text: Any, secrets: Iterable[str | None] = ()) -> str | None:
    """`text` as a short string with secrets, JWTs and auth header values removed."""
    if text is None:
        return None
    out = str(text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "[redacted]")
    out = _AUTH_RE.sub(r"\1 [redacted]", out)
    out = _JWT_RE.sub("[redacted]", out)
    if len(out) > _MAX_DETAIL:
        out = out[:_MAX_DETAIL] + "..."
    return out


class WazuhError(ProviderError):
    """Base of the adapter's upstream failures (502 unless a subclass says otherwise)."""

    status_code = 502
    code = "wazuh_error"
    retryable = False

    def __init__(self, op: str, reason: str, *, target: str = "manager", upstream_status: int | None = None,
                 wazuh_error: int | None = None, title: str | None = None, detail: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__("wazuh", op, reason)
        self.reason = reason
        self.target = target  # manager | indexer | settings
        self.upstream_status = upstream_status
        self.wazuh_error = wazuh_error
        self.title = title
        self.upstream_detail = detail
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        """The control-plane error body (names and codes only, no secrets)."""
        out: dict[str, Any] = {"error": self.code, "reason": self.reason, "target": self.target}
        if self.upstream_status is not None:
            out["upstream_status"] = self.upstream_status
        if self.wazuh_error is not None:
            out["wazuh_error"] = self.wazuh_error
        if self.title:
            out["title"] = self.title
        if self.upstream_detail:
            out["detail"] = self.upstream_detail
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.args[0]!r})"


class WazuhNotConfigured(WazuhError):
    """The settings the call needs are missing; `missing` lists variable names."""

    status_code = 503
    code = "wazuh_not_configured"

    def __init__(self, op: str, missing: list[str], *, target: str) -> None:
        super().__init__(op, "missing settings: " + ", ".join(missing), target=target)
        self.missing = list(missing)

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "missing": self.missing, "target": self.target}


class CredentialUnavailable(WazuhError):
    """The lease's credential_ref does not resolve to a credential set this call can use."""

    status_code = 503
    code = "credential_unavailable"

    def __init__(self, op: str, credential_ref: str, reason: str) -> None:
        super().__init__(op, reason, target="settings")
        self.credential_ref = credential_ref

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "credential_ref": self.credential_ref, "reason": self.reason}


class WazuhUnavailable(WazuhError):
    """Unreachable, TLS failure, timeout (504), upstream 5xx, or a body that is not JSON."""

    code = "wazuh_unreachable"
    retryable = True

    def __init__(self, op: str, reason: str, *, code: str | None = None, status_code: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(op, reason, **kwargs)
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code


class WazuhAuthError(WazuhError):
    """Login refused, a second 401 after one re-login, or indexer 401."""

    code = "wazuh_auth_failed"

    def __init__(self, op: str, reason: str, *, code: str | None = None, **kwargs: Any) -> None:
        super().__init__(op, reason, **kwargs)
        if code:
            self.code = code


class WazuhPermissionDenied(WazuhAuthError):
    """Authenticated, but RBAC (4000) or the indexer's security plugin said no."""

    code = "wazuh_permission_denied"


class WazuhRateLimited(WazuhError):
    """Upstream 429 (server API 6001, indexer overload); answer 503 with Retry-After."""

    status_code = 503
    code = "wazuh_rate_limited"
    retryable = True


class WazuhRequestRejected(WazuhError):
    """Upstream refused the request itself (400, 404, 405, 413): a bug or a version mismatch."""

    code = "wazuh_request_rejected"


class RuleNotFound(NotFound):
    """Wazuh answered 200 without the rule (error 1 with a 1208 failed item, or nothing matched).

    `upstream` is the Wazuh body, unchanged, so a 404 can still carry the
    provider's own evidence (contract 4.2).
    """

    code = "wazuh_rule_not_found"

    def __init__(self, rule_id: str, upstream: dict[str, Any]) -> None:
        super().__init__(f"wazuh rule {rule_id} not found")
        self.rule_id = rule_id
        self.upstream = upstream
        self.wazuh_error = 1208

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "rule_id": self.rule_id, "data": self.upstream}
