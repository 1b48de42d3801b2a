"""Scoped credential leases for tool adapters (contracts/leases.md).

Tool routes call `opsgate.leases.service.check_lease` (or the `use_lease`
context manager) on every call; the rest of this package grants, renews,
revokes and expires leases.
"""
