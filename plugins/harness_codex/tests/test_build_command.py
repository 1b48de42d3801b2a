"""build_command: argv, config.toml, environment, key placement, no host secrets."""

from __future__ import annotations

import tomllib

import pytest

from opsgate.errors import Invalid
from opsgate.protocols import Harness, HarnessRun
from opsgate.settings import Settings
from opsgate.testing.harness_e2e import AGENT_BASE_ENV, SERVER_ENV, SERVER_SECRETS, UNIT_STATE, unit_run
from opsgate_harness_codex import CodexHarness, CodexSettings, opsgate_harnesses

HOST_ENV = {
    **SERVER_ENV,
    "OPENAI_API_KEY": "sk-host-openai",
    "CODEX_API_KEY": "sk-host-codex",
    "WAZUH_PASSWORD": "wazuh-secret",
}
SECRETS = [*SERVER_SECRETS, "sk-host-openai", "sk-host-codex", "wazuh-secret"]
ALLOWED_ENV = AGENT_BASE_ENV | {"CODEX_HOME", "OPSGATE_MODEL_API_KEY"}
STATE = UNIT_STATE


def make_run(**overrides) -> HarnessRun:
    return unit_run(**{"model": "gpt-test", **overrides})


def make_harness(**settings) -> CodexHarness:
    return CodexHarness(CodexSettings(**settings), environ=HOST_ENV)


def test_hook_returns_a_named_harness():
    settings = Settings.from_env({**HOST_ENV, "CODEX_BIN": "/opt/codex/bin/codex", "CODEX_MAX_RETRIES": "0"})
    [harness] = opsgate_harnesses(settings=settings)
    assert isinstance(harness, Harness)
    assert harness.name == "codex"
    assert harness.binary == "/opt/codex/bin/codex"
    assert harness.settings.max_retries == 0


def test_hook_names_a_bad_variable():
    with pytest.raises(Invalid) as info:
        opsgate_harnesses(settings=Settings.from_env({"CODEX_NETWORK_ACCESS": "maybe"}))
    assert "CODEX_NETWORK_ACCESS" in str(info.value.args) + str(info.value)


def test_unknown_sandbox_mode_is_refused():
    with pytest.raises(ValueError):
        make_harness(sandbox_mode="bypass")


def test_argv():
    argv = make_harness(bin="/opt/codex").build_command(make_run()).argv
    assert argv[:4] == ["/opt/codex", "exec", "--json", "--skip-git-repo-check"]
    assert argv[argv.index("-m") + 1] == "gpt-test"
    assert argv[argv.index("--sandbox") + 1] == "workspace-write"
    assert "sandbox_workspace_write.network_access=true" in argv
    assert "analytics.enabled=false" in argv
    # every -c / --disable comes after `exec`
    assert argv.index("exec") < argv.index("-c") and argv.index("exec") < argv.index("--disable")
    assert argv.count("--disable") == 2 and "plugins" in argv and "remote_plugin" in argv
    assert "--ephemeral" in argv
    assert argv[argv.index("-C") + 1] == "/var/lib/opsgate/work/agent-12"
    assert argv[-2:] == ["--", "Add a note to the ticket."]
    assert "--dangerously-bypass-approvals-and-sandbox" not in argv


def test_argv_variants():
    argv = make_harness(sandbox_mode="danger-full-access", ephemeral=False).build_command(make_run()).argv
    assert argv[argv.index("--sandbox") + 1] == "danger-full-access"
    assert not any(a.startswith("sandbox_workspace_write") for a in argv)
    assert "--ephemeral" not in argv
    argv = make_harness(network_access=False).build_command(make_run()).argv
    assert "sandbox_workspace_write.network_access=false" in argv


def test_a_huge_prompt_is_read_from_the_prompt_file():
    argv = make_harness().build_command(make_run(prompt="y" * 200_000)).argv
    assert "/var/lib/opsgate/work/agent-12/TASK.md" in argv[-1] and len(argv[-1]) < 1000


def test_config_toml_has_the_custom_provider_and_switches():
    cmd = make_harness(max_retries=1, reasoning_effort="low").build_command(make_run(model='odd "model"'))
    assert list(cmd.files) == [f"{STATE}/codex/config.toml"]
    config = tomllib.loads(cmd.files[f"{STATE}/codex/config.toml"])
    assert config["model"] == 'odd "model"'
    assert config["model_provider"] == "opsgate"
    assert config["model_reasoning_effort"] == "low"
    assert config["check_for_update_on_startup"] is False
    assert config["analytics"] == {"enabled": False}
    provider = config["model_providers"]["opsgate"]
    assert provider["base_url"] == "http://proxy.internal:4000/v1"
    assert provider["env_key"] == "OPSGATE_MODEL_API_KEY"
    assert provider["wire_api"] == "responses"
    assert provider["request_max_retries"] == 1 and provider["stream_max_retries"] == 1
    assert config["shell_environment_policy"]["exclude"] == ["OPSGATE_MODEL_API_KEY"]


def test_base_url_already_ending_in_v1_is_kept():
    cmd = make_harness().build_command(make_run(model_base_url="http://p:1/v1/"))
    config = tomllib.loads(cmd.files[f"{STATE}/codex/config.toml"])
    assert config["model_providers"]["opsgate"]["base_url"] == "http://p:1/v1"


def test_env():
    env = make_harness().build_command(make_run()).env
    assert env["OPSGATE_MODEL_API_KEY"] == "sk-run-model-key"
    assert env["CODEX_HOME"] == f"{STATE}/codex"
    assert env["HOME"] == f"{STATE}/home"
    assert env["OPSGATE_API_URL"] == "http://127.0.0.1:8000"
    assert env["OPSGATE_AGENT_ID"] == "12" and env["OPSGATE_TICKET_ID"] == "7" and env["OPSGATE_TASK_ID"] == "31"
    assert env["OPSGATE_AGENT_TOKEN"] == "agt-run-token"
    assert env["PATH"] == "/opt/bin:/usr/bin:/bin" and env["LANG"] == "en_US.UTF-8"


def test_no_host_secret_reaches_the_agent():
    cmd = make_harness().build_command(make_run())
    assert set(cmd.env) <= ALLOWED_ENV
    blob = repr(cmd.argv) + repr(cmd.env) + repr(cmd.files)
    for secret in SECRETS:
        assert secret not in blob
    # the model key is only in the env var Codex reads, never in argv or the config file
    assert "sk-run-model-key" not in repr(cmd.argv) + repr(cmd.files)


def test_extra_env_cannot_replace_fixed_variables():
    env = make_harness().build_command(make_run(extra_env={"TZ": "UTC", "CODEX_HOME": "/tmp/x"})).env
    assert env["TZ"] == "UTC" and env["CODEX_HOME"] == f"{STATE}/codex"


def test_build_command_is_pure(tmp_path):
    run = make_run(work_dir=str(tmp_path / "w"), state_dir=str(tmp_path / "s"))
    harness = make_harness()
    assert harness.build_command(run) == harness.build_command(run)
    assert list(tmp_path.iterdir()) == []


async def test_health_reports_a_missing_binary():
    report = await CodexHarness(CodexSettings(bin="no-such-codex"), environ={"PATH": "/nonexistent"}).health()
    assert report["ok"] is False and report["found"] is False and "CODEX_BIN" in report["error"]
