"""Lease scopes `system/resource_type/resource_id/action`, lease ids and credential refs.

A scope in a request or a check is concrete; in a grant, `resource_id` may be
a glob (`*`, `?`) and `action` may be `*`. Matching uses `fnmatchcase` so it
never folds case.
"""

from __future__ import annotations

import os
import re
import time
from fnmatch import fnmatchcase
from typing import NamedTuple

from opsgate.errors import Invalid

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_GLOB_SEGMENT = re.compile(r"^[A-Za-z0-9._*?-]{1,128}$")
_CREDENTIAL_REF = re.compile(r"^[a-z][a-z0-9+.-]{0,31}:\S{1,480}$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SCOPE_FIELDS = ("system", "resource_type", "resource_id", "action")


class Scope(NamedTuple):
    """The four segments of a scope."""

    system: str
    resource_type: str
    resource_id: str
    action: str

    def __str__(self) -> str:
        return "/".join(self)

    @property
    def is_glob(self) -> bool:
        return self.action == "*" or any(c in self.resource_id for c in "*?")


def _check(value: str, field: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise Invalid(field, f"{what} (letters, digits, '.', '_', '-'; 1 to 128 characters)")
    return value


def concrete(system: str, resource_type: str, resource_id: str, action: str, *, field: str = "scope") -> Scope:
    """A scope as requested or checked: every segment concrete, no glob characters."""
    parts = (system, resource_type, resource_id, action)
    for name, value in zip(SCOPE_FIELDS, parts):
        _check(value, f"{field}.{name}" if field != "scope" else field, _SEGMENT,
               f"{name} must be a concrete segment without glob characters")
    return Scope(*parts)


def parse_concrete(text: str, field: str = "scope") -> Scope:
    """`wazuh/api/wazuh.manager/read` -> Scope; globs are refused."""
    parts = text.split("/") if isinstance(text, str) else []
    if len(parts) != 4:
        raise Invalid(field, "must be system/resource_type/resource_id/action (four '/'-separated segments)")
    return concrete(*parts, field=field)


def parse_grant(text: str, field: str = "scope") -> Scope:
    """A grant pattern: `resource_id` may be a glob, `action` may be `*`."""
    parts = text.split("/") if isinstance(text, str) else []
    if len(parts) != 4:
        raise Invalid(field, "must be system/resource_type/resource_id/action (four '/'-separated segments)")
    system, resource_type, resource_id, action = parts
    _check(system, field, _SEGMENT, "system must be a concrete segment")
    _check(resource_type, field, _SEGMENT, "resource_type must be a concrete segment")
    _check(resource_id, field, _GLOB_SEGMENT, "resource_id must be a segment or a glob")
    if action != "*":
        _check(action, field, _SEGMENT, "action must be a concrete segment or '*'")
    return Scope(system, resource_type, resource_id, action)


def matches(grant: Scope, wanted: Scope) -> bool:
    """True when the granted pattern covers the concrete scope `wanted`."""
    return (grant.system == wanted.system and grant.resource_type == wanted.resource_type
            and fnmatchcase(wanted.resource_id, grant.resource_id)
            and (grant.action == "*" or grant.action == wanted.action))


def covers(held: Scope, wanted: Scope) -> bool:
    """True when a held pattern covers a (possibly glob) pattern being handed on."""
    if held.system != wanted.system or held.resource_type != wanted.resource_type:
        return False
    if held.action != "*" and held.action != wanted.action:
        return False
    if any(c in wanted.resource_id for c in "*?"):
        return held.resource_id in ("*", wanted.resource_id)
    return fnmatchcase(wanted.resource_id, held.resource_id)


def specificity(grant: Scope) -> int:
    """Higher is more specific: an exact resource_id before a glob, an exact action before `*`."""
    exact_resource = not any(c in grant.resource_id for c in "*?")
    return (2 if exact_resource else 0) + (1 if grant.action != "*" else 0)


def credential_ref(value: str, field: str = "credential_ref") -> str:
    """Validate `<resolver>:<locator>` (a name, never a secret value)."""
    if not isinstance(value, str) or not _CREDENTIAL_REF.match(value):
        raise Invalid(field, "must be <resolver>:<locator>, e.g. env:WAZUH_API or vault:kv/ops/wazuh/api-readonly")
    return value


def default_credential_ref(scope: Scope) -> str:
    """`env:<SYSTEM>_<RESOURCE_TYPE>`, e.g. `env:WAZUH_API` for `wazuh/api/...`."""
    name = re.sub(r"[^A-Z0-9]+", "_", f"{scope.system}_{scope.resource_type}".upper()).strip("_")
    return f"env:{name}"


def new_lease_id() -> str:
    """`lse_` + a ULID (48-bit millisecond time, 80 random bits) in Crockford base32."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "lse_" + "".join(reversed(chars))
