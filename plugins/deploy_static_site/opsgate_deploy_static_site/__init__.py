"""Static-site deployment target: publishes approved static trees under /published/<slug>/.

Hook implementations only; they do no I/O (the published-sites directory is
created on the first publish). `StaticSiteTarget` lives in `target.py`, the
public `/published/...` route in `serving.py`, and the approval-gated API route
`POST /api/agents/{agent_id}/deploy/static-site` in `deploy.py` (see the
README section "The API route").
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from opsgate import hookimpl
from opsgate_deploy_static_site.deploy import deploy_static_site
from opsgate_deploy_static_site.serving import make_route
from opsgate_deploy_static_site.settings import StaticSiteSettings, load_settings
from opsgate_deploy_static_site.target import StaticSiteTarget

if TYPE_CHECKING:
    from opsgate.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["PLUGIN_NAME", "StaticSiteSettings", "StaticSiteTarget", "opsgate_deploy_targets", "opsgate_routes"]

PLUGIN_NAME = "static-site"


def target_from_settings(settings: Settings) -> StaticSiteTarget:
    """The target configured from `OPSGATE_PUBLISHED_*` in the core settings' environment."""
    own = load_settings(settings)
    return StaticSiteTarget(own.published_dir(settings.data_dir), own)


@hookimpl
def opsgate_deploy_targets(settings: Settings) -> list[StaticSiteTarget]:
    """The `static-site` deploy target."""
    return [target_from_settings(settings)]


@hookimpl
def opsgate_routes(settings: Settings) -> list[Any]:
    """`GET|HEAD /published/{path:path}` (public, read-only) and the gated deploy route."""
    own = load_settings(settings)
    return [make_route(own.published_dir(settings.data_dir)), deploy_static_site]
