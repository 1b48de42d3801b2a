"""build_command: argv, config.yaml, environment, key placement, no host secrets."""

from __future__ import annotations

import json

import pytest

from opsgate.errors import Invalid
from opsgate.protocols import Harness, HarnessRun
from opsgate.settings import Settings
from opsgate.testing.harness_e2e import AGENT_BASE_ENV, SERVER_ENV, SERVER_SECRETS, UNIT_STATE, UNIT_WORK, unit_run
from opsgate_harness_hermes import HermesHarness, HermesSettings, opsgate_harnesses

HOST_ENV = {
    **SERVER_ENV,
    "OPENAI_API_KEY": "sk-host-openai",
    "OPENROUTER_API_KEY": "sk-host-openrouter",
    "ITOP_PASSWORD": "itop-secret",
}
SECRETS = [*SERVER_SECRETS, "sk-host-openai", "sk-host-openrouter", "itop-secret"]
ALLOWED_ENV = AGENT_BASE_ENV | {"HERMES_HOME", "OPENAI_API_KEY", "HERMES_DISABLE_LAZY_INSTALLS"}
WORK = UNIT_WORK
STATE = UNIT_STATE


def make_run(**overrides) -> HarnessRun:
    return unit_run(**{"model": "hermes-test-model", **overrides})


def make_harness(**settings) -> HermesHarness:
    return HermesHarness(HermesSettings(**settings), environ=HOST_ENV)


def test_hook_returns_a_named_harness():
    settings = Settings.from_env({**HOST_ENV, "HERMES_BIN": "/opt/hermes/bin/hermes", "HERMES_TOOLSETS": "terminal"})
    [harness] = opsgate_harnesses(settings=settings)
    assert isinstance(harness, Harness)
    assert harness.name == "hermes"
    assert harness.binary == "/opt/hermes/bin/hermes"
    assert harness.settings.toolsets == "terminal"


def test_hook_names_a_bad_variable():
    with pytest.raises(Invalid) as info:
        opsgate_harnesses(settings=Settings.from_env({"HERMES_CONTEXT_LENGTH": "big"}))
    assert "HERMES_CONTEXT_LENGTH" in str(info.value.args) + str(info.value)


def test_argv():
    argv = make_harness(bin="/opt/hermes").build_command(make_run()).argv
    assert argv == ["/opt/hermes", "-z", "Add a note to the ticket.", "-m", "hermes-test-model",
                    "--provider", "opsgate", "-t", "terminal,file", "--usage-file", WORK + "/.hermes-usage.json"]


def test_argv_variants():
    argv = make_harness(toolsets=" terminal , file,todo ").build_command(make_run(prompt="-x do it")).argv
    assert argv[2] == " -x do it"  # never read as an option
    assert argv[argv.index("-t") + 1] == "terminal,file,todo"
    assert "-t" not in make_harness(toolsets="").build_command(make_run()).argv
    long = make_harness().build_command(make_run(prompt="z" * 200_000)).argv[2]
    assert WORK + "/TASK.md" in long and len(long) < 1000


def test_config_yaml_and_usage_reset():
    cmd = make_harness(max_retries=2, context_length=64000).build_command(make_run())
    assert set(cmd.files) == {STATE + "/hermes/config.yaml", WORK + "/.hermes-usage.json"}
    assert cmd.files[WORK + "/.hermes-usage.json"] == ""
    config = json.loads(cmd.files[STATE + "/hermes/config.yaml"])  # JSON is valid YAML
    assert config["providers"]["opsgate"] == {"base_url": "http://proxy.internal:4000/v1",
                                              "key_env": "OPENAI_API_KEY", "default_model": "hermes-test-model"}
    assert config["model"] == {"provider": "opsgate", "default": "hermes-test-model", "context_length": 64000}
    assert config["agent"] == {"api_max_retries": 2}
    assert config["security"] == {"allow_lazy_installs": False}


def test_config_is_valid_yaml():
    yaml = pytest.importorskip("yaml")
    cmd = make_harness().build_command(make_run(model='a "quoted": model'))
    config = yaml.safe_load(cmd.files[STATE + "/hermes/config.yaml"])
    assert config["model"]["default"] == 'a "quoted": model'


def test_env():
    env = make_harness().build_command(make_run()).env
    assert env["OPENAI_API_KEY"] == "sk-run-model-key"  # a name Hermes strips from the terminal tool
    assert env["HERMES_HOME"] == STATE + "/hermes"
    assert env["HOME"] == STATE + "/home"
    assert env["HERMES_DISABLE_LAZY_INSTALLS"] == "1"
    assert env["OPSGATE_API_URL"] == "http://127.0.0.1:8000"
    assert env["OPSGATE_AGENT_ID"] == "12" and env["OPSGATE_TICKET_ID"] == "7" and env["OPSGATE_TASK_ID"] == "31"
    assert env["OPSGATE_AGENT_TOKEN"] == "agt-run-token"


def test_no_host_secret_reaches_the_agent():
    cmd = make_harness().build_command(make_run())
    assert set(cmd.env) <= ALLOWED_ENV
    blob = repr(cmd.argv) + repr(cmd.env) + repr(cmd.files)
    for secret in SECRETS:
        assert secret not in blob
    assert "sk-run-model-key" not in repr(cmd.argv) + repr(cmd.files)


def test_extra_env_cannot_replace_fixed_variables():
    env = make_harness().build_command(make_run(extra_env={"TZ": "UTC", "OPENAI_API_KEY": "other"})).env
    assert env["TZ"] == "UTC" and env["OPENAI_API_KEY"] == "sk-run-model-key"


def test_build_command_is_pure(tmp_path):
    run = make_run(work_dir=str(tmp_path / "w"), state_dir=str(tmp_path / "s"))
    harness = make_harness()
    assert harness.build_command(run) == harness.build_command(run)
    assert list(tmp_path.iterdir()) == []


async def test_health_reports_a_missing_binary():
    report = await HermesHarness(HermesSettings(bin="no-such-hermes"), environ={"PATH": "/nonexistent"}).health()
    assert report["ok"] is False and report["found"] is False and "HERMES_BIN" in report["error"]
