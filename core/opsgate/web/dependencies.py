"""Resolve a handler's dependencies one after another, not in an anyio task group.

Litestar 2.x resolves the dependencies of one level of the dependency graph
concurrently, in an anyio task group, whenever there are two or more of them
(litestar-org/litestar#4563). Ours (`conn`, `principal`, `settings`, `host`,
see `opsgate.web.deps`) return at once, so the concurrency buys nothing, and
the task group costs about 0.15 ms of CPU per request: a fifth of what a
ticket create costs the server (`bench/tickets.py`).

`install()` replaces `KwargsModel.resolve_dependencies` with a sequential
resolver that calls Litestar's own `resolve_dependency` for each dependency,
level by level, in the same order of levels. It also closes the generator
dependencies already started when a later one fails (Litestar leaves those to
the event loop's async-generator finalizer), so a checked-out connection goes
back to the pool before the error response is sent. It installs only on the Litestar it was written against (checked by
the names and parameters it relies on); anywhere else it leaves Litestar's
resolver in place and logs why.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from litestar._kwargs import kwargs_model
from litestar._kwargs.cleanup import DependencyCleanupGroup
from litestar._kwargs.dependencies import resolve_dependency

log = logging.getLogger(__name__)

_EXPECTED_PARAMETERS = ["self", "connection", "kwargs"]
_EXPECTED_RESOLVE_DEPENDENCY = ["dependency", "connection", "kwargs", "cleanup_group"]


async def resolve_sequentially(self: Any, connection: Any, kwargs: dict[str, Any]) -> DependencyCleanupGroup:
    """`KwargsModel.resolve_dependencies`, one dependency at a time."""
    cleanup_group = DependencyCleanupGroup()
    try:
        for batch in self.dependency_batches:
            for dependency in batch:
                await resolve_dependency(dependency, connection, kwargs, cleanup_group)
    except BaseException as exc:
        await cleanup_group.close(exc if isinstance(exc, Exception) else None)
        raise
    return cleanup_group


def compatible() -> str | None:
    """None when this Litestar has what the sequential resolver relies on, else the reason."""
    model = getattr(kwargs_model, "KwargsModel", None)
    original = getattr(model, "resolve_dependencies", None)
    if original is None:
        return "litestar._kwargs.kwargs_model.KwargsModel.resolve_dependencies is gone"
    if original is resolve_sequentially:
        return None
    if list(inspect.signature(original).parameters) != _EXPECTED_PARAMETERS:
        return "KwargsModel.resolve_dependencies takes other parameters"
    if "dependency_batches" not in getattr(model, "__slots__", ()):
        return "KwargsModel no longer has dependency_batches"
    if list(inspect.signature(resolve_dependency).parameters) != _EXPECTED_RESOLVE_DEPENDENCY:
        return "litestar._kwargs.dependencies.resolve_dependency takes other parameters"
    if not hasattr(DependencyCleanupGroup, "close"):
        return "DependencyCleanupGroup.close is gone"
    return None


def install() -> bool:
    """Use the sequential resolver (idempotent); False when this Litestar is not the expected one."""
    reason = compatible()
    if reason is not None:
        log.warning("keeping Litestar's concurrent dependency resolution: %s", reason)
        return False
    kwargs_model.KwargsModel.resolve_dependencies = resolve_sequentially  # type: ignore[method-assign]
    return True
