"""Helpers for harness plugins: the agent's environment, binary lookup, the health probe.

Every harness builds its command the same way underneath its CLI's own flags:
a minimal base environment (`PATH`, `HOME`, `LANG`, never the server's
environment), the task's `extra_env`, then the `OPSGATE_*` variables the agent
uses to reach the opsgate API (last, so `extra_env` cannot replace them). The
binary is resolved once when the plugin loads, so `build_command` stays pure,
and `health()` reports whether it was found and which version it is.

    host = HostEnv.from_environ(environ)
    binary = resolve_binary(settings.bin, host.path)
    env = agent_env(run, path=host.path, lang=host.lang)
    env.update({"MYCLI_HOME": ...})

Plugins import this module; they never import each other.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opsgate.protocols import HarnessRun

__all__ = [
    "DEFAULT_LANG", "DEFAULT_PATH", "MAX_ARGV_PROMPT", "HostEnv", "agent_env", "argv_prompt", "base_env",
    "binary_found", "clip", "health_report", "opsgate_env", "probe_version", "resolve_binary", "run_probe",
    "with_v1",
]

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
DEFAULT_LANG = "C.UTF-8"
# Longest prompt passed on the command line; longer ones are read from the prompt file.
MAX_ARGV_PROMPT = 100_000


@dataclass(frozen=True, slots=True)
class HostEnv:
    """What a harness takes from the server's environment when it loads.

    Only `PATH`, `LANG` and `HOME` are kept (with defaults when unset or
    empty); of the model endpoint variables only whether they are set, never
    their values.
    """

    path: str = DEFAULT_PATH
    lang: str = DEFAULT_LANG
    home: str = "/"
    model_key_configured: bool = False  # AGENT_LLM_API_KEY is set
    model_base_url_configured: bool = False  # AGENT_LLM_BASE_URL is set

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None) -> HostEnv:
        env = environ or {}
        return cls(
            path=env.get("PATH") or DEFAULT_PATH,
            lang=env.get("LANG") or DEFAULT_LANG,
            home=env.get("HOME") or "/",
            model_key_configured=bool(env.get("AGENT_LLM_API_KEY")),
            model_base_url_configured=bool(env.get("AGENT_LLM_BASE_URL")),
        )


# --- the agent's environment ---------------------------------------------------


def base_env(path: str, lang: str, home: str | None = None) -> dict[str, str]:
    """`PATH`, `HOME` and `LANG`: the whole environment a CLI inherits from opsgate.

    `home=None` leaves `HOME` out (for a probe that needs no home directory).
    """
    env = {"PATH": path}
    if home is not None:
        env["HOME"] = home
    env["LANG"] = lang
    return env


def opsgate_env(run: HarnessRun) -> dict[str, str]:
    """The `OPSGATE_*` variables the agent reaches the opsgate API with.

    `OPSGATE_TICKET_ID` is empty for a task without a ticket.
    """
    return {
        "OPSGATE_API_URL": run.api_url,
        "OPSGATE_AGENT_ID": str(run.agent_id),
        "OPSGATE_TICKET_ID": "" if run.ticket_id is None else str(run.ticket_id),
        "OPSGATE_TASK_ID": str(run.task_id),
        "OPSGATE_AGENT_TOKEN": run.agent_token,
    }


def agent_env(run: HarnessRun, *, path: str, lang: str) -> dict[str, str]:
    """The agent's environment before the CLI's own variables.

    The base environment with `HOME` at `<state_dir>/home`, then the run's
    `extra_env`, then `opsgate_env(run)`: extra variables are passed but cannot
    replace the fixed ones. The caller adds its CLI's variables last.
    """
    env = base_env(path, lang, home=os.path.join(run.state_dir, "home"))
    env.update(run.extra_env)
    env.update(opsgate_env(run))
    return env


def argv_prompt(run: HarnessRun, limit: int = MAX_ARGV_PROMPT) -> str:
    """The prompt to put on the command line: the prompt itself, or, past `limit`
    bytes, an instruction to read it from `run.prompt_file`."""
    if len(run.prompt.encode()) > limit:
        return f"Your task is in the file {run.prompt_file}. Read it and carry it out."
    return run.prompt


def with_v1(base_url: str) -> str:
    """`base_url` without a trailing slash, ending in `/v1` (added if missing)."""
    base = base_url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


# --- the binary and its health -------------------------------------------------


def resolve_binary(configured: str, env_path: str) -> str:
    """The absolute path of the configured CLI.

    A name with a slash is made absolute as is; a bare name is looked up on
    `env_path` and returned unchanged when it is not found there (so
    `binary_found` reports it missing).
    """
    if os.sep in configured:
        return os.path.abspath(configured)
    return shutil.which(configured, path=env_path) or configured


def binary_found(binary: str) -> bool:
    """True when `binary` is an absolute path to an executable file."""
    return os.path.isabs(binary) and os.access(binary, os.X_OK)


def health_report(*, harness: str, binary: str, configured: str, bin_var: str, auth_mode: str, host: HostEnv,
                  **extra: Any) -> dict[str, Any]:
    """The start of a harness's `health()` report, before the version probe.

    `ok` is False and `version` None until the caller fills them in. `found`
    says whether `binary` is executable; when it is not, `error` names the
    `bin_var` variable to set. `auth` says whether the model endpoint is
    configured, never the key. `extra` keys are added after `auth`.
    """
    report: dict[str, Any] = {
        "ok": False,
        "harness": harness,
        "binary": binary,
        "found": False,
        "version": None,
        "auth": {
            "mode": auth_mode,
            "model_key_configured": host.model_key_configured,
            "model_base_url_configured": host.model_base_url_configured,
        },
        **extra,
    }
    if binary_found(binary):
        report["found"] = True
    else:
        report["error"] = f"{configured!r} not found on PATH (set {bin_var})"
    return report


async def run_probe(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> tuple[int | None, str]:
    """Run a short command (no stdin, stderr into stdout, own session) and return
    `(exit code, stripped output)`.

    The code is None when the command could not start (the output is the OS
    error) or ran past `timeout` seconds (it is killed; the output says so).
    """
    try:
        proc = await asyncio.create_subprocess_exec(*argv, env=dict(env), stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        return None, str(exc)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None, f"timed out after {timeout:g}s"
    return proc.returncode, out.decode(errors="replace").strip()


async def probe_version(binary: str, env: Mapping[str, str], timeout: float) -> tuple[int | None, str]:
    """`binary --version` through `run_probe`: `(exit code, output)`."""
    return await run_probe([binary, "--version"], env, timeout)


# --- output --------------------------------------------------------------------


def clip(text: str, limit: int = 2000) -> str:
    """`text` cut to at most `limit` characters, ending in `…` when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
