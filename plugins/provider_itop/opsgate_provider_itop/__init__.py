"""iTop ticket provider: two-way sync of canonical tickets with Combodo iTop over its REST/JSON API.

Hook implementations only; the provider lives in `provider.py`, the REST
client in `client.py` and a faithful fake iTop in `fake.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsgate import hookimpl
from opsgate.settings import load

from opsgate_provider_itop.provider import ItopProvider
from opsgate_provider_itop.settings import ItopSettings

if TYPE_CHECKING:
    from opsgate.settings import Settings

PLUGIN_NAME = "itop"

__all__ = ["PLUGIN_NAME", "ItopProvider", "ItopSettings", "opsgate_ticket_providers"]


@hookimpl
def opsgate_ticket_providers(settings: Settings) -> list[ItopProvider]:
    """The iTop provider, configured from `ITOP_*` in `settings.env` (no I/O; unset means not configured)."""
    return [ItopProvider(load(ItopSettings, prefix="ITOP_", environ=settings.env))]
