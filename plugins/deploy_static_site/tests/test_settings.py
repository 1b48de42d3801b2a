"""`OPSGATE_PUBLISHED_*` settings and the hook implementations."""

from __future__ import annotations

from pathlib import Path

import pytest

import opsgate_deploy_static_site
from opsgate.errors import Invalid
from opsgate.protocols import DeployTarget
from opsgate.settings import Settings
from opsgate_deploy_static_site.rules import CONTENT_TYPES
from opsgate_deploy_static_site.settings import StaticSiteSettings, load_settings


def _core(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"OPSGATE_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path), **env})


def test_defaults(tmp_path):
    own = load_settings(_core(tmp_path))
    assert own == StaticSiteSettings()
    assert own.published_dir(str(tmp_path / "data")) == tmp_path / "data" / "published"
    assert own.extensions() == frozenset(CONTENT_TYPES)
    assert own.max_files == 1000 and own.max_file_bytes == 10 * 1024 * 1024


def test_every_variable_is_read(tmp_path):
    own = load_settings(_core(tmp_path, OPSGATE_PUBLISHED_DIR=str(tmp_path / "sites"),
                              OPSGATE_PUBLISHED_MAX_FILES="10", OPSGATE_PUBLISHED_MAX_DIRS="3",
                              OPSGATE_PUBLISHED_MAX_DEPTH="2", OPSGATE_PUBLISHED_MAX_TOTAL_BYTES="5000",
                              OPSGATE_PUBLISHED_MAX_FILE_BYTES="1000",
                              OPSGATE_PUBLISHED_ALLOWED_EXTENSIONS="HTML, .css,png",
                              OPSGATE_PUBLISHED_RETAIN_SECONDS="5",
                              OPSGATE_PUBLISHED_PUBLIC_BASE_URL="https://ops.example"))
    assert own.published_dir("ignored") == tmp_path / "sites"
    assert (own.max_files, own.max_dirs, own.max_depth, own.max_total_bytes, own.max_file_bytes) == \
        (10, 3, 2, 5000, 1000)
    assert own.extensions() == {"html", "css", "png"}
    assert own.retain_seconds == 5 and own.public_base_url == "https://ops.example"


@pytest.mark.parametrize(("var", "value"), [("OPSGATE_PUBLISHED_MAX_FILES", "lots"),
                                            ("OPSGATE_PUBLISHED_MAX_FILES", "0"),
                                            ("OPSGATE_PUBLISHED_MAX_TOTAL_BYTES", "-1"),
                                            ("OPSGATE_PUBLISHED_RETAIN_SECONDS", "-3"),
                                            ("OPSGATE_PUBLISHED_ALLOWED_EXTENSIONS", "html,php"),
                                            ("OPSGATE_PUBLISHED_ALLOWED_EXTENSIONS", "css,png"),
                                            ("OPSGATE_PUBLISHED_ALLOWED_EXTENSIONS", ",")])
def test_bad_values_name_the_variable(tmp_path, var, value):
    with pytest.raises(Invalid) as caught:
        load_settings(_core(tmp_path, **{var: value}))
    assert caught.value.field == var


def test_hooks_do_no_io(tmp_path):
    core = _core(tmp_path)
    targets = opsgate_deploy_static_site.opsgate_deploy_targets(settings=core)
    routes = opsgate_deploy_static_site.opsgate_routes(settings=core)
    assert [t.name for t in targets] == ["static-site"]
    assert isinstance(targets[0], DeployTarget)
    assert targets[0].published_dir == tmp_path / "data" / "published"
    assert len(routes) == 2 and routes[0].opt.get("public") is True
    assert routes[0].http_methods == {"GET", "HEAD"}
    assert routes[1].opt == {"permission": "deployments:write"} and routes[1].http_methods == {"POST"}
    assert not (tmp_path / "data").exists()
