"""Local ticket provider: tickets that live only in opsgate (entry point `local`)."""

from opsgate import hookimpl
from opsgate_provider_local.provider import LocalProvider, ref_for

PLUGIN_NAME = "local"

__all__ = ["PLUGIN_NAME", "LocalProvider", "opsgate_ticket_providers", "ref_for"]


@hookimpl
def opsgate_ticket_providers():
    return [LocalProvider()]
