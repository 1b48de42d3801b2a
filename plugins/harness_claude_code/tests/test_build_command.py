"""build_command: argv, environment, key placement, no host secrets, settings."""

from __future__ import annotations

import pytest

import opsgate.settings
from opsgate.errors import Invalid
from opsgate.protocols import Harness, HarnessRun
from opsgate.settings import Settings
from opsgate.testing.harness_e2e import AGENT_BASE_ENV, SERVER_ENV, SERVER_SECRETS, unit_run
from opsgate_harness_claude_code import ClaudeCodeHarness, ClaudeCodeSettings, opsgate_harnesses

HOST_ENV = {
    **SERVER_ENV,
    "ITOP_PASSWORD": "itop-secret",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "ANTHROPIC_API_KEY": "sk-host-anthropic",
    "GITHUB_TOKEN": "ghp-host",
}
SECRETS = [*SERVER_SECRETS, "itop-secret", "aws-secret", "sk-host-anthropic", "ghp-host"]

ALLOWED_ENV = AGENT_BASE_ENV | {
    "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "ANTHROPIC_DEFAULT_HAIKU_MODEL", "CLAUDE_CONFIG_DIR", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    "DISABLE_AUTOUPDATER", "DISABLE_TELEMETRY", "DISABLE_ERROR_REPORTING", "CLAUDE_CODE_MAX_RETRIES",
    "CLAUDE_CODE_SUBPROCESS_ENV_SCRUB",
}


def make_run(**overrides) -> HarnessRun:
    return unit_run(**{"model": "claude-test-model", **overrides})


def make_harness(**settings) -> ClaudeCodeHarness:
    return ClaudeCodeHarness(ClaudeCodeSettings(**settings), environ=HOST_ENV)


def test_hook_returns_a_named_harness():
    settings = Settings.from_env({**HOST_ENV, "CLAUDE_CODE_BIN": "/opt/claude/bin/claude",
                                  "CLAUDE_CODE_MAX_TURNS": "40", "CLAUDE_CODE_ENV_SCRUB": "off"})
    [harness] = opsgate_harnesses(settings=settings)
    assert isinstance(harness, Harness)
    assert harness.name == "claude-code"
    assert harness.binary == "/opt/claude/bin/claude"
    assert harness.settings.max_turns == 40
    assert harness.env_scrub is False


def test_hook_names_a_bad_variable():
    with pytest.raises(Invalid) as info:
        opsgate_harnesses(settings=Settings.from_env({"CLAUDE_CODE_MAX_TURNS": "many"}))
    assert "CLAUDE_CODE_MAX_TURNS" in str(info.value.args) + str(info.value)


def test_argv_is_print_mode_stream_json_with_an_allow_list():
    cmd = make_harness(bin="/opt/claude", env_scrub="off").build_command(make_run())
    argv = cmd.argv
    assert argv[:3] == ["/opt/claude", "-p", "Add a note to the ticket."]
    assert argv[argv.index("--output-format") + 1] == "stream-json"
    assert "--verbose" in argv  # stream-json requires it in print mode
    assert argv[argv.index("--model") + 1] == "claude-test-model"
    assert argv[argv.index("--permission-mode") + 1] == "dontAsk"
    assert argv[argv.index("--allowedTools") + 1] == "Bash,Read,Edit,Write,Glob,Grep"
    assert argv[argv.index("--append-system-prompt-file") + 1] == "/var/lib/opsgate/work/agent-12/AGENTS.md"
    assert "--dangerously-skip-permissions" not in argv and "bypassPermissions" not in argv
    assert "--max-turns" not in argv and "--bare" not in argv
    assert cmd.files == {}


def test_optional_flags():
    cmd = make_harness(bin="claude", max_turns=25, bare=True, allowed_tools=" Bash(curl:*) , Read ",
                       api_timeout_ms=60000, env_scrub="off").build_command(make_run())
    assert cmd.argv[cmd.argv.index("--max-turns") + 1] == "25"
    assert "--bare" in cmd.argv
    assert cmd.argv[cmd.argv.index("--allowedTools") + 1] == "Bash(curl:*),Read"
    assert cmd.env["API_TIMEOUT_MS"] == "60000"


def test_a_huge_prompt_is_read_from_the_prompt_file():
    cmd = make_harness(env_scrub="off").build_command(make_run(prompt="x" * 200_000))
    assert "/var/lib/opsgate/work/agent-12/TASK.md" in cmd.argv[2]
    assert len(cmd.argv[2]) < 1000


def test_env_places_the_model_key_and_endpoint():
    env = make_harness(env_scrub="off").build_command(make_run()).env
    assert env["ANTHROPIC_BASE_URL"] == "http://proxy.internal:4000"  # the root, without /v1 or a slash
    assert env["ANTHROPIC_API_KEY"] == "sk-run-model-key"
    assert env["ANTHROPIC_AUTH_TOKEN"] == "sk-run-model-key"
    assert env["ANTHROPIC_MODEL"] == env["ANTHROPIC_SMALL_FAST_MODEL"] == "claude-test-model"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["DISABLE_AUTOUPDATER"] == "1"
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "2"


def test_base_url_given_with_v1_is_reduced_to_the_root():
    env = make_harness(env_scrub="off").build_command(make_run(model_base_url="http://p:1/v1/")).env
    assert env["ANTHROPIC_BASE_URL"] == "http://p:1"


def test_env_has_the_opsgate_variables_and_state_under_the_state_dir():
    env = make_harness(env_scrub="off").build_command(make_run()).env
    assert env["OPSGATE_API_URL"] == "http://127.0.0.1:8000"
    assert env["OPSGATE_AGENT_ID"] == "12"
    assert env["OPSGATE_TICKET_ID"] == "7"
    assert env["OPSGATE_TASK_ID"] == "31"
    assert env["OPSGATE_AGENT_TOKEN"] == "agt-run-token"
    assert env["CLAUDE_CONFIG_DIR"] == "/var/lib/opsgate/work/agent-12/.state/claude"
    assert env["HOME"] == "/var/lib/opsgate/work/agent-12/.state/home"
    assert env["PATH"] == "/opt/bin:/usr/bin:/bin"
    assert env["LANG"] == "en_US.UTF-8"


def test_no_ticket_gives_an_empty_ticket_id():
    env = make_harness(env_scrub="off").build_command(make_run(ticket_id=None)).env
    assert env["OPSGATE_TICKET_ID"] == ""


def test_no_host_secret_reaches_the_agent_env():
    cmd = make_harness(env_scrub="off").build_command(make_run())
    assert set(cmd.env) <= ALLOWED_ENV
    blob = repr(cmd.argv) + repr(cmd.env) + repr(cmd.files)
    for secret in SECRETS:
        assert secret not in blob


def test_extra_env_is_passed_but_cannot_replace_the_fixed_variables():
    run = make_run(extra_env={"TZ": "UTC", "ANTHROPIC_BASE_URL": "http://evil", "OPSGATE_AGENT_TOKEN": "x"})
    env = make_harness(env_scrub="off").build_command(run).env
    assert env["TZ"] == "UTC"
    assert env["ANTHROPIC_BASE_URL"] == "http://proxy.internal:4000"
    assert env["OPSGATE_AGENT_TOKEN"] == "agt-run-token"


def test_env_scrub_on_with_bwrap_puts_bwrap_on_path():
    harness = make_harness(env_scrub="auto", bwrap="/opt/codex/resources/bwrap")
    assert harness.env_scrub is True
    env = harness.build_command(make_run()).env
    assert env["CLAUDE_CODE_SUBPROCESS_ENV_SCRUB"] == "1"
    assert env["PATH"] == "/opt/codex/resources:/opt/bin:/usr/bin:/bin"


def test_env_scrub_auto_without_bwrap_is_off():
    harness = ClaudeCodeHarness(ClaudeCodeSettings(env_scrub="auto"), environ={"PATH": "/nonexistent"})
    assert harness.env_scrub is False
    assert harness.build_command(make_run()).env["CLAUDE_CODE_SUBPROCESS_ENV_SCRUB"] == "0"


def test_env_scrub_must_be_a_known_mode():
    with pytest.raises(ValueError):
        make_harness(env_scrub="sometimes")


def test_build_command_is_pure(tmp_path):
    run = make_run(work_dir=str(tmp_path / "w"), state_dir=str(tmp_path / "w" / ".state"))
    harness = make_harness(env_scrub="off")
    assert harness.build_command(run) == harness.build_command(run)
    assert list(tmp_path.iterdir()) == []


def test_settings_load_from_claude_code_prefix():
    loaded = opsgate.settings.load(ClaudeCodeSettings, prefix="CLAUDE_CODE_",
                                   environ={"CLAUDE_CODE_BARE": "1", "CLAUDE_CODE_MAX_RETRIES": "0"})
    assert loaded.bare is True and loaded.max_retries == 0


async def test_health_reports_a_missing_binary():
    harness = ClaudeCodeHarness(ClaudeCodeSettings(bin="no-such-claude"), environ={"PATH": "/nonexistent"})
    report = await harness.health()
    assert report["ok"] is False and report["found"] is False
    assert "CLAUDE_CODE_BIN" in report["error"]
