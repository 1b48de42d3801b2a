"""Plugin discovery through real entry points of fixture distributions."""

import textwrap
from pathlib import Path

import pytest

from opsgate import plugins
from opsgate.settings import Settings

GOOD = '''
from opsgate import hookimpl

class Dummy:
    name = "dummy"
    ticket_classes = ("Incident",)
    capabilities = {}

@hookimpl
def opsgate_ticket_providers():
    return [Dummy()]

EVENTS = []

@hookimpl
async def opsgate_event(event):
    EVENTS.append(event.kind)
'''

MODULES = {
    "fx_good": GOOD,
    "fx_broken": "raise ImportError('missing native library libfoo.so')\n",
    "fx_raising": textwrap.dedent('''
        from opsgate import hookimpl

        @hookimpl
        def opsgate_harnesses(settings):
            raise RuntimeError("cannot build harness")
    '''),
    "fx_dup": textwrap.dedent('''
        from opsgate import hookimpl

        class Dummy:
            name = "dummy"

        @hookimpl
        def opsgate_ticket_providers():
            return [Dummy()]
    '''),
    "fx_misspelt": textwrap.dedent('''
        from opsgate import hookimpl

        @hookimpl
        def opsgate_tickt_providers():
            return []
    '''),
    "fx_old": "",
    "fx_bad_event": textwrap.dedent('''
        from opsgate import hookimpl

        @hookimpl
        def opsgate_event(event):
            raise ValueError("observer bug")
    '''),
}
ENTRY = {"fx_good": ("good", "opsgate>=0.1,<0.2"), "fx_broken": ("broken", "opsgate"),
         "fx_raising": ("raising", "opsgate"), "fx_dup": ("dup", "opsgate"),
         "fx_misspelt": ("misspelt", "opsgate"), "fx_old": ("old", "opsgate>=9"),
         "fx_bad_event": ("badevent", "opsgate")}


@pytest.fixture
def fixture_plugins(tmp_path: Path, monkeypatch):
    for module, source in MODULES.items():
        (tmp_path / f"{module}.py").write_text(source)
        ep_name, requirement = ENTRY[module]
        dist = tmp_path / f"{module}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\nRequires-Dist: {requirement}\n")
        (dist / "entry_points.txt").write_text(f"[opsgate]\n{ep_name} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield


def _settings(**env):
    return Settings.from_env({"OPSGATE_PLUGINS": "good,broken,raising,dup,misspelt,old,badevent", **env})


def test_failures_are_reported_not_raised(fixture_plugins):
    host = plugins.load(_settings())
    infos = {i.name: i for i in host.list()}
    assert infos["good"].enabled and infos["good"].state == "enabled"
    assert infos["good"].kinds == ["events", "provider"]
    assert infos["good"].distribution == "fx-good" and infos["good"].version == "1.0"
    assert infos["broken"].state == "failed" and "libfoo.so" in infos["broken"].reason
    assert infos["raising"].state == "failed" and "cannot build harness" in infos["raising"].reason
    assert infos["dup"].state == "failed"
    assert "dummy" in infos["dup"].reason and "'good'" in infos["dup"].reason and "'dup'" in infos["dup"].reason
    assert infos["misspelt"].state == "failed" and "opsgate_tickt_providers" in infos["misspelt"].reason
    assert infos["old"].state == "incompatible" and ">=9" in infos["old"].reason
    assert list(host.ticket_providers()) == ["dummy"]
    assert host.owner[("provider", "dummy")] == "good"
    assert host.harnesses() == {}


def test_deny_list_blocks_with_reason(fixture_plugins):
    host = plugins.load(_settings(OPSGATE_DISABLE_PLUGINS="good"))
    good = host.info("good")
    assert good is not None and not good.enabled and good.state == "disabled"
    assert "OPSGATE_DISABLE_PLUGINS" in good.reason
    # with good blocked, dup's provider is no longer a duplicate
    assert host.info("dup").enabled
    assert list(host.ticket_providers()) == ["dummy"] and host.owner[("provider", "dummy")] == "dup"


def test_allow_list_only_loads_named(fixture_plugins):
    host = plugins.load(Settings.from_env({"OPSGATE_PLUGINS": "good,ghost"}))
    assert host.info("good").enabled
    assert host.info("broken").state == "disabled" and "OPSGATE_PLUGINS" in host.info("broken").reason
    assert host.info("ghost").state == "failed" and "not installed" in host.info("ghost").reason


def test_empty_allow_list_loads_nothing(fixture_plugins):
    host = plugins.load(Settings.from_env({"OPSGATE_PLUGINS": ""}))
    assert all(not i.enabled for i in host.list())


async def test_event_fan_out_isolates_a_failing_observer(fixture_plugins, caplog):
    import fx_good

    from opsgate.protocols import DomainEvent

    host = plugins.load(_settings())
    fx_good.EVENTS.clear()
    await host.emit_event(DomainEvent(id=1, kind="ticket_created"))
    assert fx_good.EVENTS == ["ticket_created"]
    assert any("badevent" == getattr(r, "plugin", None) for r in caplog.records)


def test_in_repo_plugins_are_discovered():
    host = plugins.load(Settings.from_env({}))
    names = {i.name for i in host.list()}
    assert {"itop", "local", "hermes", "claude-code", "codex", "wazuh", "static-site"} <= names


async def test_call_plugin_wraps_unexpected_errors():
    import asyncio

    from opsgate.errors import NotFound, ProviderError

    async def boom():
        raise KeyError("x")

    with pytest.raises(ProviderError) as exc:
        await plugins.call_plugin("itop", "create", boom(), timeout=1)
    assert exc.value.provider == "itop" and exc.value.op == "create"
    assert isinstance(exc.value.__cause__, KeyError)

    async def slow():
        await asyncio.sleep(5)

    with pytest.raises(ProviderError, match="timed out"):
        await plugins.call_plugin("itop", "fetch", slow(), timeout=0.05)

    async def missing():
        raise NotFound("ticket 1")

    with pytest.raises(NotFound):
        await plugins.call_plugin("itop", "fetch", missing(), timeout=1)
