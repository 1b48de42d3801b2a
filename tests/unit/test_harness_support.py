"""opsgate.harness_support: the helpers every harness plugin builds its command and health report with."""

from __future__ import annotations

import json
import os
import sys

import pytest

from opsgate.harness_support import (
    DEFAULT_LANG,
    DEFAULT_PATH,
    HostEnv,
    agent_env,
    argv_prompt,
    base_env,
    binary_found,
    clip,
    health_report,
    opsgate_env,
    probe_version,
    resolve_binary,
    run_probe,
    with_v1,
)
from opsgate.protocols import HarnessRun


def make_run(**overrides) -> HarnessRun:
    values = dict(
        task_id=31, agent_id=12, ticket_id=7, work_dir="/w/agent-12", state_dir="/w/agent-12/.state",
        prompt="Do it.", prompt_file="/w/agent-12/TASK.md", model="m", model_base_url="http://p:1",
        model_api_key="sk-model", api_url="http://127.0.0.1:8000", agent_token="agt-token",
    )
    values.update(overrides)
    return HarnessRun(**values)


def executable(path, text="#!/bin/sh\necho 'tool 1.2.3'\n"):
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


# --- HostEnv ---------------------------------------------------------------------


def test_host_env_keeps_path_lang_home_and_only_whether_the_model_is_configured():
    host = HostEnv.from_environ({"PATH": "/opt/bin", "LANG": "en_US.UTF-8", "HOME": "/root",
                                 "AGENT_LLM_API_KEY": "sk-secret", "AGENT_LLM_BASE_URL": "http://p"})
    assert host == HostEnv(path="/opt/bin", lang="en_US.UTF-8", home="/root",
                           model_key_configured=True, model_base_url_configured=True)
    assert "sk-secret" not in repr(host)


@pytest.mark.parametrize("environ", [None, {}, {"PATH": "", "LANG": "", "HOME": "", "AGENT_LLM_API_KEY": ""}])
def test_host_env_defaults_for_unset_or_empty_variables(environ):
    host = HostEnv.from_environ(environ)
    assert host.path == DEFAULT_PATH == "/usr/local/bin:/usr/bin:/bin"
    assert host.lang == DEFAULT_LANG == "C.UTF-8"
    assert host.home == "/"
    assert host.model_key_configured is False and host.model_base_url_configured is False


# --- environment -----------------------------------------------------------------


def test_base_env_with_and_without_home():
    assert base_env("/bin", "C.UTF-8", "/h") == {"PATH": "/bin", "HOME": "/h", "LANG": "C.UTF-8"}
    assert base_env("/bin", "C.UTF-8") == {"PATH": "/bin", "LANG": "C.UTF-8"}


def test_opsgate_env():
    assert opsgate_env(make_run()) == {
        "OPSGATE_API_URL": "http://127.0.0.1:8000",
        "OPSGATE_AGENT_ID": "12",
        "OPSGATE_TICKET_ID": "7",
        "OPSGATE_TASK_ID": "31",
        "OPSGATE_AGENT_TOKEN": "agt-token",
    }


def test_opsgate_env_without_a_ticket_has_an_empty_ticket_id():
    assert opsgate_env(make_run(ticket_id=None))["OPSGATE_TICKET_ID"] == ""


def test_agent_env_layers_base_then_extra_then_opsgate():
    run = make_run(extra_env={"TZ": "UTC", "PATH": "/evil", "OPSGATE_AGENT_TOKEN": "forged"})
    env = agent_env(run, path="/opt/bin", lang="en_US.UTF-8")
    assert env == {
        "PATH": "/evil",  # extra_env may replace the base (the runner's own choice)...
        "HOME": "/w/agent-12/.state/home",
        "LANG": "en_US.UTF-8",
        "TZ": "UTC",
        **opsgate_env(run),  # ...but never the OPSGATE_* variables
    }
    assert env["OPSGATE_AGENT_TOKEN"] == "agt-token"
    assert "sk-model" not in repr(env)  # the model key is the harness's to place


def test_argv_prompt_switches_to_the_prompt_file_past_the_limit():
    assert argv_prompt(make_run(prompt="short")) == "short"
    assert argv_prompt(make_run(prompt="x" * 100_000)) == "x" * 100_000
    long = argv_prompt(make_run(prompt="x" * 100_001))
    assert long == "Your task is in the file /w/agent-12/TASK.md. Read it and carry it out."
    # the limit counts bytes, not characters
    assert argv_prompt(make_run(prompt="é" * 6), limit=10).startswith("Your task is in the file")


@pytest.mark.parametrize(("given", "expected"), [
    ("http://p:1", "http://p:1/v1"), ("http://p:1/", "http://p:1/v1"),
    ("http://p:1/v1", "http://p:1/v1"), ("http://p:1/v1/", "http://p:1/v1"),
])
def test_with_v1(given, expected):
    assert with_v1(given) == expected


# --- binary ----------------------------------------------------------------------


def test_resolve_binary_on_the_given_path(tmp_path):
    tool = executable(tmp_path / "mytool")
    assert resolve_binary("mytool", f"/nonexistent{os.pathsep}{tmp_path}") == tool


def test_resolve_binary_keeps_an_unknown_name():
    assert resolve_binary("no-such-tool", "/nonexistent") == "no-such-tool"


def test_resolve_binary_makes_a_path_absolute_without_looking_it_up(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_binary("bin/tool", "/nonexistent") == str(tmp_path / "bin" / "tool")
    assert resolve_binary("/opt/tool", "/nonexistent") == "/opt/tool"


def test_binary_found(tmp_path):
    assert binary_found(executable(tmp_path / "tool")) is True
    plain = tmp_path / "plain"
    plain.write_text("")
    assert binary_found(str(plain)) is False
    assert binary_found("tool") is False
    assert binary_found(str(tmp_path / "missing")) is False


# --- health ----------------------------------------------------------------------


def test_health_report_for_a_found_binary(tmp_path):
    tool = executable(tmp_path / "tool")
    host = HostEnv(model_key_configured=True)
    report = health_report(harness="demo", binary=tool, configured="tool", bin_var="DEMO_BIN",
                           auth_mode="api_key", host=host, sandbox="on")
    assert report == {
        "ok": False, "harness": "demo", "binary": tool, "found": True, "version": None,
        "auth": {"mode": "api_key", "model_key_configured": True, "model_base_url_configured": False},
        "sandbox": "on",
    }


def test_health_report_names_the_variable_for_a_missing_binary():
    report = health_report(harness="demo", binary="no-such-tool", configured="no-such-tool", bin_var="DEMO_BIN",
                           auth_mode="api_key", host=HostEnv())
    assert report["ok"] is False and report["found"] is False
    assert report["error"] == "'no-such-tool' not found on PATH (set DEMO_BIN)"


async def test_probe_version(tmp_path):
    tool = executable(tmp_path / "tool", "#!/bin/sh\necho \"tool $1 $LANG\"\necho warning >&2\n")
    code, out = await probe_version(tool, base_env("/usr/bin:/bin", "C.UTF-8"), timeout=10)
    assert code == 0
    assert out == "tool --version C.UTF-8\nwarning"  # stderr joins stdout, stripped


async def test_run_probe_gets_only_the_given_environment():
    code, out = await run_probe([sys.executable, "-c", "import json, os; print(json.dumps(sorted(os.environ)))"],
                                {"PATH": "/usr/bin:/bin", "ONLY": "1"}, timeout=10)
    assert code == 0
    names = set(json.loads(out))
    assert {"PATH", "ONLY"} <= names <= {"PATH", "ONLY", "LC_CTYPE"}  # LC_CTYPE: Python's locale coercion


async def test_run_probe_reports_a_failing_command(tmp_path):
    tool = executable(tmp_path / "tool", "#!/bin/sh\necho broken\nexit 3\n")
    assert await run_probe([tool], {"PATH": "/usr/bin:/bin"}, timeout=10) == (3, "broken")


async def test_run_probe_reports_a_command_that_cannot_start(tmp_path):
    code, out = await run_probe([str(tmp_path / "missing")], {}, timeout=10)
    assert code is None and "missing" in out


async def test_run_probe_kills_a_command_past_its_timeout(tmp_path):
    tool = executable(tmp_path / "tool", "#!/bin/sh\nexec sleep 30\n")
    assert await run_probe([tool], {"PATH": "/usr/bin:/bin"}, timeout=0.2) == (None, "timed out after 0.2s")


# --- output ----------------------------------------------------------------------


def test_clip():
    assert clip("short") == "short"
    assert clip("x" * 2000) == "x" * 2000
    assert clip("x" * 2001) == "x" * 1999 + "…"
    assert clip("abcdef", 4) == "abc…" and len(clip("abcdef", 4)) == 4
