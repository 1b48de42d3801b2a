"""Capability-gated contract tests.

A contract test decorated with `@requires("case_log")` is collected only for
subclasses whose `capabilities` declare that capability; for the others it is
deselected at collection (never run, never skipped half-way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def requires(*names: str) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        fn.__opsgate_requires__ = names  # type: ignore[attr-defined]
        return fn

    return mark


def deselect_unsupported(items: list[Any], config: Any) -> None:
    """`pytest_collection_modifyitems` body: drop tests whose capability the class lacks."""
    keep, drop = [], []
    for item in items:
        needed = getattr(getattr(item, "function", None), "__opsgate_requires__", ())
        cls = getattr(item, "cls", None)
        caps = getattr(cls, "capabilities", {}) if cls is not None else {}
        if needed and not all(caps.get(name) for name in needed):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
