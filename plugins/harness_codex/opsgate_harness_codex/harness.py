"""The Codex harness: `codex exec --json` with a custom Responses-API provider.

See `harnesses.md` §3 for the verified flags, config and output format of
Codex CLI 0.171.0.
"""

from __future__ import annotations

import json
import logging
import os
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
    probe_version,
    resolve_binary,
    with_v1,
)
from opsgate.protocols import HarnessCommand, HarnessRun, ProgressEvent

log = logging.getLogger(__name__)

NAME = "codex"
PROVIDER_ID = "opsgate"
# The env var Codex reads the model key from; excluded from the agent's shell.
MODEL_KEY_ENV = "OPSGATE_MODEL_API_KEY"
SANDBOX_MODES = ("read-only", "workspace-write", "danger-full-access")


class CodexSettings(msgspec.Struct, frozen=True, kw_only=True):
    """`CODEX_*` variables (see README)."""

    bin: str = "codex"  # CODEX_BIN
    sandbox_mode: str = "workspace-write"  # CODEX_SANDBOX_MODE
    network_access: bool = True  # CODEX_NETWORK_ACCESS: the agent must reach the opsgate API
    max_retries: int = 2  # CODEX_MAX_RETRIES: request and stream retries of the provider
    ephemeral: bool = True  # CODEX_EPHEMERAL: --ephemeral (no session files)
    reasoning_effort: str = ""  # CODEX_REASONING_EFFORT: model_reasoning_effort, empty: default
    version_timeout: float = 10.0  # CODEX_VERSION_TIMEOUT


class CodexHarness:
    """Runs `codex exec --json` against the opsgate model proxy."""

    name = NAME

    def __init__(self, settings: CodexSettings | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings or CodexSettings()
        if self.settings.sandbox_mode not in SANDBOX_MODES:
            raise ValueError(f"CODEX_SANDBOX_MODE must be one of {', '.join(SANDBOX_MODES)}")
        self.host = HostEnv.from_environ(environ)
        # Resolved once when the plugin loads, so build_command stays free of I/O.
        self.binary = resolve_binary(self.settings.bin, self.host.path)

    # -- command ------------------------------------------------------------

    def codex_home(self, run: HarnessRun) -> str:
        return os.path.join(run.state_dir, "codex")

    def config_toml(self, run: HarnessRun) -> str:
        """`$CODEX_HOME/config.toml`: the custom provider and the network-avoiding switches."""
        s = self.settings
        retries = max(0, s.max_retries)
        lines = [
            "# Written by opsgate-harness-codex for one task.",
            f"model = {_toml(run.model)}",
            f"model_provider = {_toml(PROVIDER_ID)}",
            "check_for_update_on_startup = false",
        ]
        if s.reasoning_effort:
            lines.append(f"model_reasoning_effort = {_toml(s.reasoning_effort)}")
        lines += [
            "",
            f"[model_providers.{PROVIDER_ID}]",
            f"name = {_toml('opsgate model gateway')}",
            f"base_url = {_toml(with_v1(run.model_base_url))}",
            f"env_key = {_toml(MODEL_KEY_ENV)}",
            'wire_api = "responses"',
            f"request_max_retries = {retries}",
            f"stream_max_retries = {retries}",
            "",
            "[shell_environment_policy]",
            f"exclude = [{_toml(MODEL_KEY_ENV)}]",
            "",
            "[analytics]",
            "enabled = false",
            "",
        ]
        return "\n".join(lines)

    def build_command(self, run: HarnessRun) -> HarnessCommand:
        s = self.settings
        argv = [
            self.binary, "exec", "--json", "--skip-git-repo-check",
            "-m", run.model,
            "--sandbox", s.sandbox_mode,
        ]
        if s.sandbox_mode == "workspace-write":
            argv += ["-c", f"sandbox_workspace_write.network_access={'true' if s.network_access else 'false'}"]
        # Repeated here after `exec` (global flags before `exec` do not reach the exec sandbox).
        argv += ["-c", "analytics.enabled=false", "--disable", "plugins", "--disable", "remote_plugin"]
        if s.ephemeral:
            argv.append("--ephemeral")
        argv += ["-C", run.work_dir, "--", argv_prompt(run)]

        env = agent_env(run, path=self.host.path, lang=self.host.lang)
        env.update({
            "CODEX_HOME": self.codex_home(run),
            MODEL_KEY_ENV: run.model_api_key,
        })
        files = {os.path.join(self.codex_home(run), "config.toml"): self.config_toml(run)}
        return HarnessCommand(argv=argv, env=env, files=files)

    # -- output -------------------------------------------------------------

    def parse_line(self, line: str) -> ProgressEvent | None:
        return parse_line(line)

    def detect_failure(self, work_dir: str, exit_code: int, output_tail: str) -> str | None:
        return detect_failure(work_dir, exit_code, output_tail)

    # -- health -------------------------------------------------------------

    async def health(self) -> Mapping[str, Any]:
        report = health_report(harness=NAME, binary=self.binary, configured=self.settings.bin, bin_var="CODEX_BIN",
                               auth_mode="custom_provider_env_key", host=self.host,
                               sandbox_mode=self.settings.sandbox_mode)
        if not report["found"]:
            return report
        env = base_env(self.host.path, self.host.lang, self.host.home)
        code, out = await probe_version(self.binary, env, self.settings.version_timeout)
        if code == 0 and out:
            report["version"] = out.split()[-1]
            report["ok"] = True
        else:
            report["error"] = f"`codex --version` failed: {out[-300:] or code}"
        return report


# --- pure helpers ---------------------------------------------------------------


def _toml(value: str) -> str:
    # A JSON string (ASCII, \" \\ \n \uXXXX escapes) is a valid TOML basic string.
    return json.dumps(value, ensure_ascii=True)


def _is_retry_notice(message: str) -> bool:
    return message.startswith("Reconnecting...")


def parse_line(line: str) -> ProgressEvent | None:
    """One `codex exec --json` line as a progress event; unknown item types pass through as messages."""
    line = line.strip()
    if not line:
        return None
    if not line.startswith("{"):
        if line.lower().startswith("error"):
            return ProgressEvent(kind="error", text=clip(line), data={"fatal": True})
        return None  # stderr chatter ("Reading additional input from stdin...")
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    kind = obj.get("type")
    if kind == "thread.started":
        return ProgressEvent(kind="message", text="codex thread started", data={"thread_id": obj.get("thread_id")})
    if kind == "turn.completed":
        return ProgressEvent(kind="final", text="", data={"usage": obj.get("usage") or {}})
    if kind == "turn.failed":
        message = str((obj.get("error") or {}).get("message", ""))
        return ProgressEvent(kind="error", text=clip(message), data={"fatal": True, "event": kind})
    if kind == "error":
        message = str(obj.get("message", ""))
        return ProgressEvent(kind="error", text=clip(message),
                             data={"fatal": not _is_retry_notice(message), "event": kind})
    if kind in ("item.started", "item.updated", "item.completed"):
        item = obj.get("item") if isinstance(obj.get("item"), dict) else {}
        return _item_event(kind, item)
    return None


def _item_event(event: str, item: dict[str, Any]) -> ProgressEvent | None:
    item_type = item.get("type")
    base = {"item_id": item.get("id"), "item_type": item_type, "event": event}
    if item_type == "command_execution":
        if event == "item.started":
            return ProgressEvent(kind="tool_call", text=clip(str(item.get("command", ""))),
                                 data={**base, "name": "command_execution", "command": item.get("command")})
        if event == "item.completed":
            return ProgressEvent(kind="tool_result", text=clip(str(item.get("aggregated_output") or "")),
                                 data={**base, "command": item.get("command"), "exit_code": item.get("exit_code"),
                                       "status": item.get("status")})
        return None
    if item_type == "mcp_tool_call":
        name = f"{item.get('server', '')}.{item.get('tool', '')}".strip(".")
        if event == "item.started":
            return ProgressEvent(kind="tool_call", text=name, data={**base, "name": name,
                                                                    "arguments": item.get("arguments")})
        if event == "item.completed":
            return ProgressEvent(kind="tool_result", text=clip(json.dumps(item.get("result") or item.get("error"))),
                                 data={**base, "name": name, "status": item.get("status")})
        return None
    if event != "item.completed" and item_type not in ("todo_list",):
        return None
    if item_type == "agent_message":
        return ProgressEvent(kind="message", text=clip(str(item.get("text", "")), 8000), data=base)
    if item_type == "error":
        # e.g. "Model metadata for `x` not found. Defaulting to fallback metadata": harmless.
        return ProgressEvent(kind="error", text=clip(str(item.get("message", ""))), data={**base, "fatal": False})
    if item_type == "file_change":
        paths = [c.get("path") for c in item.get("changes") or [] if isinstance(c, dict)]
        return ProgressEvent(kind="tool_result", text=clip("changed: " + ", ".join(map(str, paths))),
                             data={**base, "paths": paths, "status": item.get("status")})
    text = item.get("text") or item.get("query") or ""
    return ProgressEvent(kind="message", text=clip(str(text)), data=base)


def detect_failure(work_dir: str, exit_code: int, output_tail: str) -> str | None:
    """Judge by `turn.failed` / `turn.completed`, not the exit code (every failure is 1)."""
    completed = False
    failure: str | None = None
    last_error: str | None = None
    for line in output_tail.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            if line.lower().startswith("error"):
                last_error = line
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        kind = obj.get("type")
        if kind == "turn.failed":
            failure = str((obj.get("error") or {}).get("message", "")) or "turn failed"
            completed = False
        elif kind == "turn.completed":
            completed = True
            failure = None
        elif kind == "error" and not _is_retry_notice(str(obj.get("message", ""))):
            last_error = str(obj.get("message", ""))
    if failure is not None:
        return f"codex turn failed: {clip(failure, 500)}"
    if completed:
        return None if exit_code == 0 else f"codex exited {exit_code} after turn.completed"
    detail = last_error or next((ln for ln in reversed(output_tail.splitlines()) if ln.strip()), "no output")
    return f"codex exited {exit_code} without turn.completed: {clip(detail.strip(), 500)}"

