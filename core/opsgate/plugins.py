"""Plugin host: discovery through entry points, enable/disable, listing.

`load(settings)` builds a fresh pluggy `PluginManager`, registers the built-in
plugins, then every entry point of group `opsgate`, and collects what each
contribution hook returns. A plugin that cannot be imported, requires another
opsgate version, or whose hook raises is skipped and reported with its reason;
the rest load. Nothing outside this module touches `pm.hook`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import importlib_metadata
import msgspec
import pluggy
from packaging.requirements import InvalidRequirement, Requirement

from opsgate import hookspecs
from opsgate.errors import OpsgateError, ProviderError
from opsgate.protocols import DeployTarget, DomainEvent, Harness, TicketProvider, ToolAdapter
from opsgate.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

ENTRY_POINT_GROUP = "opsgate"


class PluginInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One discovered plugin, as `opsgate plugins` and `GET /api/plugins` list it."""

    name: str
    distribution: str | None
    version: str | None
    kinds: list[str]
    hooks: list[str]
    enabled: bool
    state: str  # enabled | disabled | failed | incompatible | builtin
    reason: str | None = None


class PluginHost:
    """The loaded plugins and what they contributed; the typed facade over pluggy."""

    def __init__(self, settings: Settings, pm: pluggy.PluginManager) -> None:
        self.settings = settings
        self.pm = pm
        self._infos: dict[str, PluginInfo] = {}
        self._providers: dict[str, TicketProvider] = {}
        self._harnesses: dict[str, Harness] = {}
        self._tools: dict[str, ToolAdapter] = {}
        self._deploy: dict[str, DeployTarget] = {}
        self._routes: list[Any] = []
        self.owner: dict[tuple[str, str], str] = {}  # (kind, object name) -> plugin name

    # -- listing --------------------------------------------------------

    def list(self) -> list[PluginInfo]:
        """Every discovered plugin, sorted by name."""
        return [self._infos[name] for name in sorted(self._infos)]

    def info(self, name: str) -> PluginInfo | None:
        return self._infos.get(name)

    # -- contributions --------------------------------------------------

    def ticket_providers(self) -> dict[str, TicketProvider]:
        return dict(self._providers)

    def harnesses(self) -> dict[str, Harness]:
        return dict(self._harnesses)

    def tool_adapters(self) -> dict[str, ToolAdapter]:
        return dict(self._tools)

    def deploy_targets(self) -> dict[str, DeployTarget]:
        return dict(self._deploy)

    def routes(self) -> list[Any]:
        return list(self._routes)

    # -- lifecycle and events ----------------------------------------------

    async def emit_event(self, event: DomainEvent) -> None:
        """Fan an event out to every `opsgate_event` implementation, isolating failures."""
        await self._call_each("opsgate_event", {"event": event})

    async def startup(self, app: Any) -> None:
        await self._call_each("opsgate_startup", {"app": app, "settings": self.settings})

    async def shutdown(self, app: Any) -> None:
        await self._call_each("opsgate_shutdown", {"app": app, "settings": self.settings}, reverse=True)

    async def _call_each(self, hook_name: str, kwargs: dict[str, Any], *, reverse: bool = False) -> None:
        impls = getattr(self.pm.hook, hook_name).get_hookimpls()
        # pluggy lists implementations last-registered first; run in registration order.
        ordered = impls if reverse else list(reversed(impls))
        for impl in ordered:
            plugin = impl.plugin_name
            try:
                result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
                if inspect.isawaitable(result):
                    await asyncio.wait_for(result, timeout=self.settings.plugin_call_timeout)
            except Exception:  # a plugin failure must not stop the others
                log.exception("plugin hook failed", extra={"plugin": plugin, "hook": hook_name})


# --- loading ------------------------------------------------------------------


def new_plugin_manager(settings: Settings) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if settings.trace_plugins:
        pm.trace.root.setwriter(lambda message: log.info("plugin trace: %s", message.rstrip()))
        pm.enable_tracing()
    return pm


def load(
    settings: Settings,
    *,
    extra: Iterable[tuple[str, object]] = (),
    discover: bool = True,
) -> PluginHost:
    """Build a `PluginHost`: built-ins, entry points (unless `discover=False`), then `extra`.

    `extra` is a sequence of `(name, module_or_object)` registered as if they
    were entry points (tests use it to load only the plugins they name).
    """
    pm = new_plugin_manager(settings)
    host = PluginHost(settings, pm)
    allow = set(settings.plugins) if settings.plugins is not None else None
    deny = set(settings.disable_plugins)

    candidates: list[tuple[str, Callable[[], object], str | None, str | None, list[str]]] = []
    if discover:
        for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            requires = list(dist.requires or []) if dist is not None else []
            candidates.append((ep.name, ep.load, dist.name if dist else None,
                               dist.version if dist else None, requires))
    for name, obj in extra:
        candidates.append((name, (lambda o=obj: o), None, None, []))

    seen: set[str] = set()
    for name, loader, dist_name, dist_version, requires in candidates:
        if name in seen:
            log.error("plugin name %r is provided twice; keeping the first", name)
            continue
        seen.add(name)

        def record(state: str, reason: str | None, hooks: Sequence[str] = (), kinds: Sequence[str] = ()) -> None:
            host._infos[name] = PluginInfo(
                name=name, distribution=dist_name, version=dist_version, kinds=sorted(set(kinds)),
                hooks=sorted(hooks), enabled=state == "enabled", state=state, reason=reason,
            )

        if name in deny:
            record("disabled", "blocked by OPSGATE_DISABLE_PLUGINS")
            pm.set_blocked(name)
            continue
        if allow is not None and name not in allow:
            record("disabled", "not listed in OPSGATE_PLUGINS")
            continue
        incompatible = _version_conflict(requires)
        if incompatible:
            record("incompatible", incompatible)
            continue
        try:
            module = loader()
        except Exception as exc:
            log.warning("plugin %s failed to import: %s", name, exc, extra={"plugin": name})
            record("failed", f"import failed: {type(exc).__name__}: {exc}")
            continue
        try:
            pm.register(module, name=name)
        except Exception as exc:  # pluggy validation (bad hook signature, unknown hook)
            record("failed", f"registration failed: {exc}")
            continue
        hooks = [impl_hook for impl_hook in _hooks_of(pm, module)]
        unknown = [h for h in hooks if h not in hookspecs.CONTRIBUTION_KINDS and h not in hookspecs.LIFECYCLE_KINDS]
        if unknown:
            pm.unregister(module)
            record("failed", f"unknown hook(s): {', '.join(sorted(unknown))}")
            continue
        try:
            kinds = _collect(host, name, module)
        except _ContributionError as exc:
            pm.unregister(module)
            record("failed", str(exc))
            continue
        kinds += [hookspecs.LIFECYCLE_KINDS[h] for h in hooks if h in hookspecs.LIFECYCLE_KINDS]
        record("enabled", None, hooks, kinds)
        log.info("plugin loaded", extra={"plugin": name})

    if allow:
        for missing in sorted(allow - seen):
            host._infos[missing] = PluginInfo(
                name=missing, distribution=None, version=None, kinds=[], hooks=[], enabled=False,
                state="failed", reason="listed in OPSGATE_PLUGINS but not installed",
            )
    pm.check_pending()
    return host


class _ContributionError(Exception):
    pass


_REGISTRIES = {
    "opsgate_ticket_providers": "_providers",
    "opsgate_harnesses": "_harnesses",
    "opsgate_tool_adapters": "_tools",
    "opsgate_deploy_targets": "_deploy",
}


def _hooks_of(pm: pluggy.PluginManager, module: object) -> list[str]:
    return [caller.name for caller in (pm.get_hookcallers(module) or [])]


def _collect(host: PluginHost, plugin_name: str, module: object) -> list[str]:
    """Call the plugin's contribution hooks and register what they return, all or nothing."""
    staged: dict[str, list[Any]] = {}
    kinds: list[str] = []
    for hook_name, kind in hookspecs.CONTRIBUTION_KINDS.items():
        caller = getattr(host.pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            if impl.plugin is not module:
                continue
            try:
                result = impl.function(**{arg: host.settings for arg in impl.argnames})
            except Exception as exc:
                log.warning("plugin %s hook %s raised: %s", plugin_name, hook_name, exc, extra={"plugin": plugin_name})
                raise _ContributionError(f"{hook_name} raised {type(exc).__name__}: {exc}") from exc
            items = list(result or [])
            staged[hook_name] = items
            if items:
                kinds.append(kind)
    for hook_name, items in staged.items():
        if hook_name == "opsgate_routes":
            continue
        registry: dict[str, Any] = getattr(host, _REGISTRIES[hook_name])
        kind = hookspecs.CONTRIBUTION_KINDS[hook_name]
        names: set[str] = set()
        for obj in items:
            obj_name = getattr(obj, "name", None)
            if not isinstance(obj_name, str) or not obj_name:
                raise _ContributionError(f"{hook_name} returned an object without a name: {obj!r}")
            if obj_name in registry or obj_name in names:
                other = host.owner.get((kind, obj_name), plugin_name)
                raise _ContributionError(
                    f"duplicate {kind} name {obj_name!r}: plugin {plugin_name!r} and plugin {other!r} both provide it")
            names.add(obj_name)
    for hook_name, items in staged.items():
        if hook_name == "opsgate_routes":
            host._routes.extend(items)
            continue
        registry = getattr(host, _REGISTRIES[hook_name])
        kind = hookspecs.CONTRIBUTION_KINDS[hook_name]
        for obj in items:
            registry[obj.name] = obj
            host.owner[(kind, obj.name)] = plugin_name
    return kinds


def _version_conflict(requires: Sequence[str]) -> str | None:
    from opsgate import __version__

    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.name.lower() != "opsgate" or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        if req.specifier and not req.specifier.contains(__version__, prereleases=True):
            return f"requires opsgate{req.specifier}, running {__version__}"
    return None


async def call_plugin(plugin: str, op: str, awaitable: Awaitable[T], *, timeout: float) -> T:
    """Await a plugin object's coroutine under a timeout.

    Domain errors (`OpsgateError`) pass through; anything unexpected becomes
    `ProviderError(plugin, op)` chained to the original.
    """
    try:
        return await asyncio.wait_for(awaitable, timeout=timeout)
    except OpsgateError:
        raise
    except TimeoutError as exc:
        raise ProviderError(plugin, op, f"timed out after {timeout:g}s") from exc
    except Exception as exc:
        raise ProviderError(plugin, op, f"{type(exc).__name__}: {exc}") from exc
