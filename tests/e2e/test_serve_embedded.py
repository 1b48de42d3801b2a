"""`opsgate serve` with no database URL: embedded PostgreSQL up, /health ok, everything stopped on exit."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

OPSGATE = str(Path(sys.executable).parent / "opsgate")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_for(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.mark.e2e
def test_serve_with_embedded_postgres_and_clean_stop(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OPSGATE_DATABASE_URL", "DATABASE_URL")}
    env.update({"OPSGATE_DATA_DIR": str(tmp_path / "data"), "OPSGATE_PORT": str(port), "OPSGATE_RUNNER": "0"})
    proc = subprocess.Popen([OPSGATE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        body = None
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                body = r.json()
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert body == {"status": "ok", "version": "0.1.0", "database": "ok"}
        pgdata = tmp_path / "data" / "pg"
        assert (pgdata / "PG_VERSION").exists()
        assert _postgres_for(pgdata), "embedded postgres is not running"
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "created the first admin token" in output
    assert output.strip().splitlines()  # printed something
    deadline = time.monotonic() + 10
    while _postgres_for(tmp_path / "data" / "pg") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _postgres_for(tmp_path / "data" / "pg"), "embedded postgres left running"
