"""The Hermes Agent harness: `hermes -z` one-shot mode with a named provider in `$HERMES_HOME/config.yaml`.

See `harnesses.md` §4 for the verified flags, config and output of Hermes
Agent 0.19.0.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from opsgate.harness_support import (
    HostEnv,
    agent_env,
    argv_prompt,
    base_env,
    clip,
    health_report,
    resolve_binary,
    run_probe,
    with_v1,
)
from opsgate.protocols import HarnessCommand, HarnessRun, ProgressEvent

log = logging.getLogger(__name__)

NAME = "hermes"
PROVIDER_ID = "opsgate"
# Hermes strips this well-known name from its terminal tool's environment;
# a custom key_env name would be visible to the agent's commands (§4.2).
MODEL_KEY_ENV = "OPENAI_API_KEY"
# Written by `--usage-file` in the work dir, so detect_failure can read it.
USAGE_FILE = ".hermes-usage.json"


class HermesSettings(msgspec.Struct, frozen=True, kw_only=True):
    """`HERMES_*` variables (see README)."""

    bin: str = "hermes"  # HERMES_BIN
    toolsets: str = "terminal,file"  # HERMES_TOOLSETS: -t, comma-separated
    max_retries: int = 1  # HERMES_MAX_RETRIES: agent.api_max_retries (attempts on 5xx / timeouts)
    context_length: int = 128000  # HERMES_CONTEXT_LENGTH: model.context_length (avoids a catalogue lookup)
    version_timeout: float = 15.0  # HERMES_VERSION_TIMEOUT


class HermesHarness:
    """Runs `hermes -z` against the opsgate model proxy (OpenAI chat completions)."""

    name = NAME

    def __init__(self, settings: HermesSettings | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings or HermesSettings()
        self.host = HostEnv.from_environ(environ)
        # Resolved once when the plugin loads, so build_command stays free of I/O.
        self.binary = resolve_binary(self.settings.bin, self.host.path)

    # -- command ------------------------------------------------------------

    def hermes_home(self, run: HarnessRun) -> str:
        return os.path.join(run.state_dir, "hermes")

    def config(self, run: HarnessRun) -> dict[str, Any]:
        """`$HERMES_HOME/config.yaml` as data: the named provider and the network-avoiding switches."""
        return {
            "providers": {
                PROVIDER_ID: {
                    "base_url": with_v1(run.model_base_url),  # Hermes appends /chat/completions
                    "key_env": MODEL_KEY_ENV,
                    "default_model": run.model,
                },
            },
            "model": {
                "provider": PROVIDER_ID,
                "default": run.model,
                "context_length": self.settings.context_length,
            },
            "agent": {"api_max_retries": max(1, self.settings.max_retries)},
            "security": {"allow_lazy_installs": False},
        }

    def usage_file(self, run: HarnessRun) -> str:
        return os.path.join(run.work_dir, USAGE_FILE)

    def build_command(self, run: HarnessRun) -> HarnessCommand:
        s = self.settings
        prompt = argv_prompt(run)
        if prompt.startswith("-"):
            prompt = " " + prompt  # not an option to argparse
        toolsets = ",".join(t.strip() for t in s.toolsets.split(",") if t.strip())
        argv = [self.binary, "-z", prompt, "-m", run.model, "--provider", PROVIDER_ID]
        if toolsets:
            argv += ["-t", toolsets]
        argv += ["--usage-file", self.usage_file(run)]

        env = agent_env(run, path=self.host.path, lang=self.host.lang)
        env.update({
            "HERMES_HOME": self.hermes_home(run),
            MODEL_KEY_ENV: run.model_api_key,
            "HERMES_DISABLE_LAZY_INSTALLS": "1",
        })
        files = {
            # JSON is YAML: no YAML writer needed, and no quoting surprises.
            os.path.join(self.hermes_home(run), "config.yaml"): json.dumps(self.config(run), indent=2) + "\n",
            # Emptied before start, so a stale report of an earlier run is never read.
            self.usage_file(run): "",
        }
        return HarnessCommand(argv=argv, env=env, files=files)

    # -- output -------------------------------------------------------------

    def parse_line(self, line: str) -> ProgressEvent | None:
        return parse_line(line)

    def detect_failure(self, work_dir: str, exit_code: int, output_tail: str) -> str | None:
        return detect_failure(work_dir, exit_code, output_tail)

    # -- health -------------------------------------------------------------

    async def health(self) -> Mapping[str, Any]:
        report = health_report(harness=NAME, binary=self.binary, configured=self.settings.bin, bin_var="HERMES_BIN",
                               auth_mode="provider_key_env", host=self.host, toolsets=self.settings.toolsets)
        if not report["found"]:
            return report
        # `hermes --version` asks the package index for updates; the venv's metadata does not.
        python = _interpreter(self.binary)
        code, out = await run_probe([python, "-c", "import importlib.metadata as m; print(m.version('hermes-agent'))"],
                                    base_env(self.host.path, self.host.lang), self.settings.version_timeout)
        if code == 0 and out:
            report["version"] = out.splitlines()[-1].strip()
            report["ok"] = True
        else:
            report["error"] = f"hermes-agent version not readable next to {self.binary}: {out[-300:] or code}"
        return report


# --- pure helpers ---------------------------------------------------------------


def _interpreter(script: str) -> str:
    """The Python of the venv Hermes is installed in: the script's shebang, else a sibling `python`."""
    try:
        with open(script, "rb") as fh:
            first = fh.readline(512).decode(errors="replace").strip()
    except OSError:
        first = ""
    if first.startswith("#!"):
        parts = first[2:].split()
        if parts and os.path.basename(parts[0]).startswith("python") and os.access(parts[0], os.X_OK):
            return parts[0]
    return os.path.join(os.path.dirname(os.path.realpath(script)), "python")


_MODEL_ERROR = re.compile(r"^(HTTP \d{3}: |API call failed after \d+ retr)")


def _is_error_line(line: str) -> bool:
    # `-z` prints model errors as if they were the answer ("HTTP 401: …").
    low = line.lower()
    return bool(_MODEL_ERROR.match(line)) or low.startswith(
        ("hermes -z:", "error:", "traceback (most recent call last)")) or (low.startswith("hermes:") and "error" in low)


def parse_line(line: str) -> ProgressEvent | None:
    """`hermes -z` prints only the final answer (stdout) and fatal errors (stderr)."""
    line = line.rstrip()
    if not line.strip():
        return None
    if _is_error_line(line.strip()):
        return ProgressEvent(kind="error", text=clip(line.strip()))
    return ProgressEvent(kind="message", text=clip(line, 8000))


def read_usage(work_dir: str) -> dict[str, Any] | None:
    """The `--usage-file` report of the last run in `work_dir`, or None."""
    try:
        with open(os.path.join(work_dir, USAGE_FILE), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def detect_failure(work_dir: str, exit_code: int, output_tail: str) -> str | None:
    """Judge by the usage report's `failed`/`completed`: model errors exit 0 and print as the answer."""
    lines = [ln.strip() for ln in output_tail.splitlines() if ln.strip()]
    last = lines[-1] if lines else "no output"
    errors = [ln for ln in lines if _is_error_line(ln)]
    usage = read_usage(work_dir)
    if usage is None:
        detail = errors[-1] if errors else last
        return f"hermes exited {exit_code} without a usage report: {clip(detail, 500)}"
    if usage.get("failed"):
        return f"hermes reported a failed run (exit {exit_code}): {clip(last, 500)}"
    if not usage.get("completed"):
        return f"hermes did not complete the run (exit {exit_code}): {clip(last, 500)}"
    if exit_code != 0:
        detail = errors[-1] if errors else last
        return f"hermes exited {exit_code}: {clip(detail, 500)}"
    return None

