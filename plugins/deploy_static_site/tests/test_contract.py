"""The core's deploy-target contract suite, run against `StaticSiteTarget`."""

from pathlib import Path

import pytest

from opsgate.testing import DeployTargetContract
from opsgate_deploy_static_site.target import StaticSiteTarget


class TestStaticSiteTarget(DeployTargetContract):
    @pytest.fixture
    def target(self, tmp_path: Path) -> StaticSiteTarget:
        return StaticSiteTarget(published_dir=tmp_path / "published")
