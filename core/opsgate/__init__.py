"""opsgate: the control plane for governed AI agents.

Public surface for plugins: `hookimpl`, `__version__`, the error classes and
the protocols. Import settings helpers from `opsgate.settings`.
"""

from opsgate.errors import (
    ApprovalRequired,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    OpsgateError,
    ProviderError,
)
from opsgate.hookspecs import hookimpl
from opsgate.protocols import (
    DeployTarget,
    DomainEvent,
    Harness,
    TicketProvider,
    ToolAdapter,
)

__version__ = "0.1.0"

__all__ = [
    "ApprovalRequired",
    "Conflict",
    "DeployTarget",
    "DomainEvent",
    "Forbidden",
    "Harness",
    "Invalid",
    "NotFound",
    "OpsgateError",
    "ProviderError",
    "TicketProvider",
    "ToolAdapter",
    "__version__",
    "hookimpl",
]
