"""Example plugin: hook implementations only; the objects live in their own modules."""

import logging

from opsgate import hookimpl

log = logging.getLogger(__name__)


@hookimpl
def opsgate_event(event):
    log.debug("saw event %s", event.kind)
