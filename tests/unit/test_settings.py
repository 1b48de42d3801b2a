import msgspec
import pytest

from opsgate.errors import Invalid
from opsgate.settings import Settings, load


def test_defaults_and_database_url_fallback():
    s = Settings.from_env({"DATABASE_URL": "postgresql://x/y", "HOME": "/nonexistent"})
    assert s.database_url == "postgresql://x/y"
    assert s.port == 8000 and s.auth_mode == "enabled"
    assert s.plugins is None and s.disable_plugins == ()


def test_opsgate_database_url_wins():
    s = Settings.from_env({"DATABASE_URL": "a", "OPSGATE_DATABASE_URL": "b"})
    assert s.database_url == "b"


def test_plugin_lists_and_flags():
    s = Settings.from_env({"OPSGATE_PLUGINS": "itop, local,", "OPSGATE_DISABLE_PLUGINS": "wazuh",
                           "OPSGATE_MIGRATE": "off", "OPSGATE_PORT": "9001"})
    assert s.plugins == ("itop", "local")
    assert s.disable_plugins == ("wazuh",)
    assert s.migrate is False and s.port == 9001
    assert Settings.from_env({"OPSGATE_PLUGINS": ""}).plugins == ()


def test_bad_values_name_the_variable():
    with pytest.raises(Invalid) as exc:
        Settings.from_env({"OPSGATE_PORT": "eighty"})
    assert exc.value.field == "OPSGATE_PORT"
    with pytest.raises(Invalid) as exc:
        Settings.from_env({"OPSGATE_MIGRATE": "maybe"})
    assert exc.value.field == "OPSGATE_MIGRATE"
    with pytest.raises(Invalid) as exc:
        Settings.from_env({"OPSGATE_AUTH_MODE": "open"})
    assert exc.value.field == "OPSGATE_AUTH_MODE"


class Demo(msgspec.Struct, frozen=True, kw_only=True):
    url: str = ""
    timeout_seconds: float = 30
    verify_tls: bool = True


def test_plugin_settings_load_converts_and_names_bad_variable():
    d = load(Demo, prefix="DEMO_", environ={"DEMO_URL": "http://h", "DEMO_TIMEOUT_SECONDS": "5",
                                            "DEMO_VERIFY_TLS": "false"})
    assert d == Demo(url="http://h", timeout_seconds=5.0, verify_tls=False)
    with pytest.raises(Invalid) as exc:
        load(Demo, prefix="DEMO_", environ={"DEMO_TIMEOUT_SECONDS": "soon"})
    assert exc.value.field == "DEMO_TIMEOUT_SECONDS"


def test_api_url_uses_loopback_for_wildcard_host():
    assert Settings.from_env({"OPSGATE_HOST": "0.0.0.0", "OPSGATE_PORT": "8123"}).api_url == "http://127.0.0.1:8123"
    assert Settings.from_env({"OPSGATE_PUBLIC_API_URL": "https://ops.example/"}).api_url == "https://ops.example"


def test_secret_key_is_generated_once_per_data_dir(tmp_path):
    s = Settings.from_env({"OPSGATE_DATA_DIR": str(tmp_path)})
    first = s.effective_secret_key()
    assert len(first) > 40
    assert s.effective_secret_key() == first
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_operations_doc_lists_every_core_variable():
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    import inspect

    import opsgate.settings as mod

    source = inspect.getsource(mod)
    import re

    names = set(re.findall(r'"(OPSGATE_[A-Z_]+|DATABASE_URL)"', source))
    assert names, "no variables found"
    missing = sorted(n for n in names if f"`{n}`" not in doc)
    assert not missing, f"docs/operations.md lacks {missing}"
