"""Contract suites for tool adapters and deploy targets.

    class TestWazuhAdapter(ToolAdapterContract):
        @pytest.fixture
        def adapter(self):
            return WazuhAdapter(...)

    class TestStaticSite(DeployTargetContract):
        @pytest.fixture
        def target(self, tmp_path):
            return StaticSiteTarget(published_dir=tmp_path / "published")
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import msgspec
import pytest

from opsgate.errors import Invalid
from opsgate.protocols import DeployRequest, DeployResult, DeployTarget, ToolAdapter

SCOPE = re.compile(r"^[a-z0-9][a-z0-9_.-]*/[a-z0-9][a-z0-9_.-]*/[a-z0-9*][a-z0-9_.*-]*/[a-z0-9*][a-z0-9_*-]*$")


class ToolAdapterContract:
    """What every tool adapter shows, configured or not."""

    @pytest.fixture
    def adapter(self) -> ToolAdapter:
        raise NotImplementedError("override the `adapter` fixture")

    @pytest.fixture
    def unconfigured_adapter(self) -> ToolAdapter:
        raise NotImplementedError("override the `unconfigured_adapter` fixture (built with no settings)")

    def test_satisfies_the_protocol(self, adapter: ToolAdapter) -> None:
        assert isinstance(adapter, ToolAdapter)
        assert isinstance(adapter.name, str) and re.fullmatch(r"[a-z][a-z0-9-]*", adapter.name)

    def test_lease_scopes_are_system_type_id_action(self, adapter: ToolAdapter) -> None:
        assert adapter.lease_scopes
        for scope in adapter.lease_scopes:
            assert SCOPE.match(scope), scope
            assert scope.split("/", 1)[0] == adapter.name, f"{scope} is not in the {adapter.name}/ namespace"

    async def test_health_reports_ok_as_json(self, adapter: ToolAdapter) -> None:
        report = await adapter.health()
        assert isinstance(report.get("ok"), bool)
        msgspec.json.encode(report)

    async def test_health_of_an_unconfigured_adapter_is_not_ok_and_does_not_raise(
            self, unconfigured_adapter: ToolAdapter) -> None:
        report = await unconfigured_adapter.health()
        assert report.get("ok") is False


class DeployTargetContract:
    """Publishing from an agent work dir: valid trees publish, hostile ones are refused."""

    @pytest.fixture
    def target(self) -> DeployTarget:
        raise NotImplementedError("override the `target` fixture")

    @pytest.fixture
    def work_dir(self, tmp_path: Path) -> Path:
        work = tmp_path / "agent-work"
        work.mkdir()
        return work

    def _request(self, work_dir: Path, source_dir: str, slug: str) -> DeployRequest:
        return DeployRequest(change_id=1, agent_id=1, ticket_id=1, work_dir=str(work_dir), source_dir=source_dir,
                             slug=slug)

    def _site(self, work_dir: Path, name: str = "site", text: str = "hello") -> Path:
        site = work_dir / name
        site.mkdir()
        (site / "index.html").write_text(f"<!doctype html><title>{text}</title><p>{text}</p>")
        return site

    def test_satisfies_the_protocol(self, target: DeployTarget) -> None:
        assert isinstance(target, DeployTarget)
        assert isinstance(target.name, str) and target.name

    async def test_publishes_a_valid_tree(self, target: DeployTarget, work_dir: Path) -> None:
        self._site(work_dir)
        result = await target.publish(self._request(work_dir, "site", "contract-demo"))
        assert isinstance(result, DeployResult)
        assert result.relative_url == "/published/contract-demo/"
        assert result.files == 1 and result.bytes > 0

    async def test_refuses_a_tree_without_index(self, target: DeployTarget, work_dir: Path) -> None:
        (work_dir / "site").mkdir()
        (work_dir / "site" / "about.html").write_text("<p>no index</p>")
        with pytest.raises(Invalid):
            await target.publish(self._request(work_dir, "site", "no-index"))

    async def test_refuses_symlinks(self, target: DeployTarget, work_dir: Path) -> None:
        site = self._site(work_dir)
        os.symlink("/etc/passwd", site / "passwd.html")
        with pytest.raises(Invalid):
            await target.publish(self._request(work_dir, "site", "symlinked"))

    @pytest.mark.parametrize("source", ["../outside", "/etc", "site/../../outside"])
    async def test_refuses_paths_escaping_the_work_dir(self, target: DeployTarget, work_dir: Path,
                                                       source: str) -> None:
        outside = work_dir.parent / "outside"
        outside.mkdir(exist_ok=True)
        (outside / "index.html").write_text("<p>outside</p>")
        self._site(work_dir)
        with pytest.raises(Invalid):
            await target.publish(self._request(work_dir, source, "escape"))

    @pytest.mark.parametrize("slug", ["", "UPPER", "-lead", "trail-", "a_b", "a/b", "..", "x" * 64])
    async def test_refuses_unsafe_slugs(self, target: DeployTarget, work_dir: Path, slug: str) -> None:
        self._site(work_dir)
        with pytest.raises(Invalid):
            await target.publish(self._request(work_dir, "site", slug))

    async def test_redeploy_replaces_the_site(self, target: DeployTarget, work_dir: Path) -> None:
        self._site(work_dir, "v1", "first")
        self._site(work_dir, "v2", "second")
        first = await target.publish(self._request(work_dir, "v1", "replace-me"))
        second = await target.publish(self._request(work_dir, "v2", "replace-me"))
        assert first.relative_url == second.relative_url
