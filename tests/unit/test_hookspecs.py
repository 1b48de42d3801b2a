"""Every hook has a docstring with Since, a docs section headed by its exact signature, and a test."""

import inspect
import re
from pathlib import Path

from opsgate import hookspecs

ROOT = Path(__file__).parents[2]


def _hooks():
    return {name: fn for name, fn in vars(hookspecs).items()
            if name.startswith("opsgate_") and callable(fn) and hasattr(fn, "opsgate_spec")}


def _signature(fn) -> str:
    sig = inspect.signature(fn)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{fn.__name__}({params}) -> {sig.return_annotation}"


def test_hook_set_matches_architecture():
    assert set(_hooks()) == {
        "opsgate_ticket_providers", "opsgate_harnesses", "opsgate_tool_adapters", "opsgate_deploy_targets",
        "opsgate_routes", "opsgate_event", "opsgate_startup", "opsgate_shutdown",
    }
    assert set(hookspecs.CONTRIBUTION_KINDS) | set(hookspecs.LIFECYCLE_KINDS) == set(_hooks())


def test_every_hook_is_documented_and_tested():
    doc = (ROOT / "docs" / "plugin-hooks.md").read_text()
    headings = set(re.findall(r"^### `(.+)`$", doc, re.MULTILINE))
    this_file = Path(__file__).read_text()
    for name, fn in _hooks().items():
        assert fn.__doc__ and "Since " in fn.__doc__, f"{name} lacks a docstring with Since"
        assert _signature(fn) in headings, f"docs/plugin-hooks.md lacks a section headed `{_signature(fn)}`"
        assert f"def test_hook_{name}(" in this_file, f"no test_hook_{name}"
        assert not fn.opsgate_spec.get("firstresult"), f"{name} must not be firstresult"


def _load(settings_env=None, **impls):
    import types

    from opsgate import hookimpl, plugins
    from opsgate.settings import Settings

    module = types.ModuleType("fx_hooks")
    for name, fn in impls.items():
        setattr(module, name, hookimpl(fn))
    return plugins.load(Settings.from_env(settings_env or {}), extra=[("fx", module)], discover=False)


class _Obj:
    def __init__(self, name):
        self.name = name


def test_hook_opsgate_ticket_providers():
    host = _load(opsgate_ticket_providers=lambda settings: [_Obj("acme")])
    assert list(host.ticket_providers()) == ["acme"] and host.info("fx").kinds == ["provider"]


def test_hook_opsgate_harnesses():
    host = _load(opsgate_harnesses=lambda: [_Obj("h1"), _Obj("h2")])
    assert sorted(host.harnesses()) == ["h1", "h2"]


def test_hook_opsgate_tool_adapters():
    host = _load(opsgate_tool_adapters=lambda settings: [_Obj("tool")])
    assert list(host.tool_adapters()) == ["tool"] and host.owner[("tool", "tool")] == "fx"


def test_hook_opsgate_deploy_targets():
    host = _load(opsgate_deploy_targets=lambda: [_Obj("site")])
    assert list(host.deploy_targets()) == ["site"]


def test_hook_opsgate_routes():
    from litestar import get

    @get("/api/plugins/fx/ping", opt={"permission": "plugins:read"})
    async def ping() -> dict:
        return {"pong": True}

    host = _load(opsgate_routes=lambda settings: [ping])
    assert host.routes() == [ping] and host.info("fx").kinds == ["routes"]


async def test_hook_opsgate_event():
    from opsgate.protocols import DomainEvent

    seen = []

    async def observer(event):
        seen.append(event.id)

    host = _load(opsgate_event=observer)
    await host.emit_event(DomainEvent(id=42, kind="x"))
    assert seen == [42]


async def test_hook_opsgate_startup():
    calls = []
    host = _load(opsgate_startup=lambda app, settings: calls.append((app, settings.port)))
    await host.startup("APP")
    assert calls == [("APP", 8000)]


async def test_hook_opsgate_shutdown():
    calls = []

    async def stop(app):
        calls.append(app)

    host = _load(opsgate_shutdown=stop)
    await host.shutdown("APP")
    assert calls == ["APP"]
