"""Who is calling, and what they may do.

Permissions are `area:verb` strings; a grant of `*` covers everything and
`area:*` covers every verb of that area. Ticket rows are further limited by
security classification and owning group (`opsgate.auth.scope`).
"""

from __future__ import annotations

import msgspec

CLASSIFICATIONS: tuple[str, ...] = ("public", "internal", "confidential", "restricted", "secret")

# What an agent token may do, on its own ticket only.
AGENT_PERMISSIONS: frozenset[str] = frozenset({
    "tickets:read", "tickets:note", "tickets:request_info", "tickets:status",
    "changes:read", "changes:request", "changes:complete",
    "access:request", "agents:report", "tools:use",
})


def grants(granted: frozenset[str] | set[str], permission: str) -> bool:
    """True when `granted` covers `permission` (exact, `area:*` or `*`)."""
    if "*" in granted or permission in granted:
        return True
    area = permission.split(":", 1)[0]
    return f"{area}:*" in granted


def classification_rank(value: str) -> int:
    return CLASSIFICATIONS.index(value)


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated caller."""

    kind: str  # user | service | agent | local
    name: str
    id: int | None = None
    roles: tuple[str, ...] = ()
    permissions: frozenset[str] = frozenset()
    max_classification: str = "secret"
    groups: tuple[str, ...] | None = None  # None: every group
    agent_id: int | None = None
    ticket_id: int | None = None
    auth_method: str = "token"  # session | proxy | token | agent_token | disabled
    acting_as: str | None = None  # X-Dashboard-Service-User

    def has(self, permission: str) -> bool:
        return grants(self.permissions, permission)

    @property
    def actor(self) -> str:
        """The name written into audit rows and notes."""
        if self.kind == "agent" and self.agent_id is not None:
            return f"agent_{self.agent_id}"
        if self.acting_as:
            return f"{self.name}:{self.acting_as}"
        return self.name

    @property
    def actor_kind(self) -> str:
        return {"local": "local"}.get(self.kind, self.kind)

    def allowed_classifications(self) -> list[str]:
        return list(CLASSIFICATIONS[: classification_rank(self.max_classification) + 1])

    def can_see(self, *, ticket_id: int, classification: str, owning_group: str | None) -> bool:
        """Row-level check for one ticket."""
        if self.kind == "agent":
            return self.ticket_id is not None and ticket_id == self.ticket_id
        if classification_rank(classification) > classification_rank(self.max_classification):
            return False
        if self.groups is None or owning_group is None:
            return True
        return owning_group in self.groups


LOCAL_ADMIN = Principal(kind="local", name="local-admin", roles=("platform-admin",),
                        permissions=frozenset({"*"}), auth_method="disabled")
