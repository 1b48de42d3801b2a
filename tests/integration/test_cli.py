import json
import os
import subprocess
import sys
from pathlib import Path

OPSGATE = str(Path(sys.executable).parent / "opsgate")
ALL = {"itop", "local", "hermes", "claude-code", "codex", "wazuh", "static-site"}


def _run(*args, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("OPSGATE_")}
    full.update(env)
    return subprocess.run([OPSGATE, *args], env=full, capture_output=True, text=True, timeout=120)


def test_plugins_json_lists_all_seven():
    r = _run("plugins", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {p["name"] for p in rows} == ALL
    for p in rows:
        assert set(p) >= {"name", "distribution", "version", "kinds", "enabled", "state", "reason"}
        assert p["enabled"] is True and p["distribution"].startswith("opsgate-")


def test_disable_plugin_shows_reason():
    r = _run("plugins", "--json", OPSGATE_DISABLE_PLUGINS="itop")
    itop = next(p for p in json.loads(r.stdout) if p["name"] == "itop")
    assert itop["enabled"] is False and itop["state"] == "disabled"
    assert "OPSGATE_DISABLE_PLUGINS" in itop["reason"]


def test_plugins_table():
    r = _run("plugins")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "DISTRIBUTION", "VERSION"]
    assert len(lines) == 1 + len(ALL)


def test_doctor_ok_and_failing(db_url):
    ok = _run("doctor", OPSGATE_DATABASE_URL=db_url, OPSGATE_PLUGINS="local")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok    database: reachable" in ok.stdout and "migrations: current" in ok.stdout
    missing = _run("doctor", OPSGATE_DATABASE_URL=db_url, OPSGATE_PLUGINS="local,nonexistent")
    assert missing.returncode == 1 and "FAIL  plugin nonexistent" in missing.stdout
    down = _run("doctor", OPSGATE_DATABASE_URL="postgresql://postgres@127.0.0.1:1/none", OPSGATE_PLUGINS="")
    assert down.returncode == 1 and "FAIL  database" in down.stdout


def test_bad_configuration_is_a_clear_error():
    r = _run("plugins", OPSGATE_PORT="eighty")
    assert r.returncode != 0 and "OPSGATE_PORT" in r.stderr
