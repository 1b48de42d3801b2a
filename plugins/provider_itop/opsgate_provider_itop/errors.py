"""Exceptions raised by the iTop client and provider.

Every error is an `ItopError`, itself an `opsgate.errors.ProviderError`
(provider `itop`, `op` the iTop operation), so the core maps it to a 502 and
records it on the ticket. An error carries iTop's result `code` (None for
transport failures) and `message`; never the credentials.

Mapping (contract section 4; iTop says its texts are not a stable API, so the
classes are chosen by `code`, the text only refines code 100):

| code | class |
| --- | --- |
| none (timeout, connection, HTTP != 200, non-JSON) | `ItopTransportError` (`ItopTimeout`) |
| 1, 5, 6 "Invalid login" | `ItopLoginError` |
| 1 other (REST profile, class rights, portal user) | `ItopPermissionError` |
| 2, 3, 4, 10, 11, 12, 13 | `ItopRequestError` |
| 100 | `ItopInternalError` (`ItopNotFound`, `ItopAmbiguousKey`, `ItopInvalidStimulus`, `ItopMissingAttributes`) |
"""

from __future__ import annotations

import re

from opsgate.errors import ProviderError


class ItopError(ProviderError):
    """An iTop call failed: `code` (iTop result code or None) and `message` (iTop's text).

    `retryable` tells the core's provider outbox whether trying the same call
    again later can succeed (transport failures, login or server errors) or
    not (missing settings, a request this provider cannot serve, a lifecycle
    with no path to the wanted status).
    """

    retryable = True

    def __init__(self, message: str, *, code: int | None = None, operation: str = "") -> None:
        super().__init__("itop", operation or "call", message if code is None else f"[{code}] {message}")
        self.code = code
        self.message = message
        self.operation = operation


class ItopConfigError(ItopError):
    """A setting the operation needs is missing; `variable` names it (e.g. `ITOP_DEFAULT_ORG_ID`)."""

    retryable = False

    def __init__(self, variable: str, reason: str, *, operation: str = "") -> None:
        super().__init__(f"{variable} is not set: {reason}", operation=operation)
        self.variable = variable


class ItopUsageError(ItopError):
    """The caller asked for something this provider cannot do (unknown class, bad visibility...)."""

    retryable = False


class ItopLifecycleError(ItopError):
    """The remote ticket's state has no path to the requested opsgate status."""

    retryable = False


class ItopTransportError(ItopError):
    """No usable reply: connection failure, HTTP status other than 200, or a body that is not JSON."""

    def __init__(self, message: str, *, operation: str = "", http_status: int | None = None) -> None:
        super().__init__(message, operation=operation)
        self.http_status = http_status


class ItopTimeout(ItopTransportError):
    """The request timed out (connect, write, read or pool)."""


class ItopAccessError(ItopError):
    """Code 1 (or 5/6): iTop refused who we are or what we asked."""


class ItopLoginError(ItopAccessError):
    """Login failed: wrong user/password/token, or none sent (code 1 "Invalid login", 5, 6)."""


class ItopPermissionError(ItopAccessError):
    """Logged in, but not allowed: REST Services User profile missing, class rights missing, portal user."""


class ItopRequestError(ItopError):
    """The envelope was refused: missing version/json_data, bad JSON, unsupported version, unknown
    operation, unsafe delete or bad page (codes 2, 3, 4, 10, 11, 12, 13)."""

    retryable = False


class ItopInternalError(ItopError):
    """Code 100: bad class/attribute/value, key resolution, lifecycle or data-model check failures."""


class ItopNotFound(ItopInternalError):
    """Code 100: the key of an update/apply_stimulus matched no object."""


class ItopAmbiguousKey(ItopInternalError):
    """Code 100: the key of an update/apply_stimulus matched several objects."""


class ItopInvalidStimulus(ItopInternalError):
    """Code 100: the object's state has no transition for the stimulus."""

    retryable = False


class ItopMissingAttributes(ItopInternalError):
    """Code 100: the target state needs attributes that are empty; `attributes` lists them."""

    retryable = False

    def __init__(self, message: str, *, code: int | None = None, operation: str = "") -> None:
        super().__init__(message, code=code, operation=operation)
        tail = message.split(":", 1)[1] if ":" in message else ""
        self.attributes = [a.strip() for a in tail.strip().rstrip(".").split(",") if a.strip()]


_LOGIN_CODES = {5, 6}
_REQUEST_CODES = {2, 3, 4, 10, 11, 12, 13}
_NOT_FOUND = re.compile(r"Invalid object |No item found")
_AMBIGUOUS = re.compile(r"Several items found")


def from_reply(code: int, message: str, operation: str) -> ItopError:
    """The exception for an iTop reply with a non-zero `code`."""
    text = message or ""
    if code in _LOGIN_CODES or (code == 1 and "Invalid login" in text):
        return ItopLoginError(text, code=code, operation=operation)
    if code == 1:
        return ItopPermissionError(text, code=code, operation=operation)
    if code in _REQUEST_CODES:
        return ItopRequestError(text, code=code, operation=operation)
    if code == 100:
        if text.startswith("Invalid stimulus"):
            return ItopInvalidStimulus(text, code=code, operation=operation)
        if text.startswith("Missing mandatory attribute"):
            return ItopMissingAttributes(text, code=code, operation=operation)
        if _AMBIGUOUS.search(text):
            return ItopAmbiguousKey(text, code=code, operation=operation)
        if _NOT_FOUND.search(text):
            return ItopNotFound(text, code=code, operation=operation)
        return ItopInternalError(text, code=code, operation=operation)
    return ItopError(text, code=code, operation=operation)
