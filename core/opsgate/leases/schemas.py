"""Request and response shapes of the lease endpoints (contracts/leases.md 2.3, 2.8)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

Reason = Annotated[str, Meta(max_length=2000)]


class Lease(msgspec.Struct, kw_only=True, frozen=True):
    """A lease record; `status` is effective (an active lease past expire_time reads `expired`)."""

    lease_id: str
    agent_id: int
    ticket_id: int | None
    scope: str
    system: str
    resource_type: str
    resource_id: str
    action: str
    credential_ref: str | None
    status: str
    renewable: bool
    lease_duration: int
    ttl: int
    issue_time: datetime
    expire_time: datetime | None
    max_expire_time: datetime | None
    last_renewal_time: datetime | None
    source: dict[str, Any]
    change_id: int | None
    access_request_id: int | None
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    secret_values_returned: bool = False


class LeaseList(msgspec.Struct, kw_only=True, frozen=True):
    agent_id: int
    leases: list[Lease]
    secret_values_returned: bool = False


class LeaseRenew(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    increment: Annotated[int, Meta(ge=1, le=31_536_000)] | None = None


class LeaseRevoke(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Reason = ""


class RevokePrefix(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    scope_prefix: Annotated[str, Meta(max_length=600)]
    agent_id: Annotated[int, Meta(ge=1)] | None = None
    reason: Reason = ""


class RevokedCount(msgspec.Struct, kw_only=True, frozen=True):
    revoked: int
    lease_ids: list[str]
    secret_values_returned: bool = False


class LeaseRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The structured `lease` object of an access request: a concrete scope and a wished ttl.

    `credential_ref` is accepted only to refuse it by name: the approver picks the
    credential, never the requester (leases.md 3).
    """

    system: Annotated[str, Meta(max_length=128)]
    resource_type: Annotated[str, Meta(max_length=128)]
    resource_id: Annotated[str, Meta(max_length=128)]
    action: Annotated[str, Meta(max_length=128)]
    ttl_seconds: Annotated[int, Meta(ge=1, le=31_536_000)] | None = None
    credential_ref: str | None = None


class LeaseUse(msgspec.Struct, kw_only=True, frozen=True):
    """What a tool route gets back from a successful check: the lease and the ref to resolve.

    Carries no secret; `credential_ref` is a name that only the adapter resolves.
    """

    lease_id: str
    agent_id: int
    ticket_id: int | None
    scope: str
    granted_scope: str
    credential_ref: str
    expire_time: datetime
    ttl: int
    operation: str | None = None
    request_id: str | None = None
    secret_values_returned: bool = False

    def envelope(self) -> dict[str, Any]:
        """The lease fields a tool response carries (leases.md: lease_id, credential_ref, no secrets)."""
        return {"agent_id": self.agent_id, "lease_id": self.lease_id, "scope": self.scope,
                "credential_ref": self.credential_ref, "secret_values_returned": False}
