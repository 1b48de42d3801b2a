"""The Claude Code harness: `claude -p … --output-format stream-json` against the model proxy.

See `/docs` `harnesses.md` §2 for the verified flags, environment and output
format of Claude Code 2.1.197.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
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
)
from opsgate.protocols import HarnessCommand, HarnessRun, ProgressEvent

log = logging.getLogger(__name__)

NAME = "claude-code"


class ClaudeCodeSettings(msgspec.Struct, frozen=True, kw_only=True):
    """`CLAUDE_CODE_*` variables (see README)."""

    bin: str = "claude"  # CLAUDE_CODE_BIN
    allowed_tools: str = "Bash,Read,Edit,Write,Glob,Grep"  # CLAUDE_CODE_ALLOWED_TOOLS
    max_turns: int = 0  # CLAUDE_CODE_MAX_TURNS, 0: no --max-turns
    max_retries: int = 2  # CLAUDE_CODE_MAX_RETRIES, passed through to the CLI
    bare: bool = False  # CLAUDE_CODE_BARE: --bare (Bash/Edit/Read only, tiny system prompt)
    env_scrub: str = "auto"  # CLAUDE_CODE_ENV_SCRUB: auto | on | off
    bwrap: str = ""  # CLAUDE_CODE_BWRAP: bubblewrap binary when it is not on PATH
    api_timeout_ms: int = 0  # CLAUDE_CODE_API_TIMEOUT_MS, 0: the CLI's default
    version_timeout: float = 10.0  # CLAUDE_CODE_VERSION_TIMEOUT, seconds for `claude --version`


class ClaudeCodeHarness:
    """Runs Claude Code in print mode with stream-json output."""

    name = NAME

    def __init__(self, settings: ClaudeCodeSettings | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings or ClaudeCodeSettings()
        self.host = HostEnv.from_environ(environ)
        path = self.host.path
        # Resolved once when the plugin loads, so build_command stays free of I/O.
        self.binary = resolve_binary(self.settings.bin, path)
        self.bwrap = resolve_binary(self.settings.bwrap, path) if self.settings.bwrap else shutil.which("bwrap", path=path)
        mode = self.settings.env_scrub.strip().lower()
        if mode not in ("auto", "on", "off"):
            raise ValueError("CLAUDE_CODE_ENV_SCRUB must be auto, on or off")
        self.env_scrub = mode == "on" or (mode == "auto" and self.bwrap is not None)

    # -- command ------------------------------------------------------------

    def build_command(self, run: HarnessRun) -> HarnessCommand:
        s = self.settings
        argv = [
            self.binary, "-p", argv_prompt(run),
            "--output-format", "stream-json", "--verbose",
            "--model", run.model,
            "--permission-mode", "dontAsk",
            "--allowedTools", ",".join(t.strip() for t in s.allowed_tools.split(",") if t.strip()),
            "--append-system-prompt-file", os.path.join(run.work_dir, "AGENTS.md"),
        ]
        if s.max_turns > 0:
            argv += ["--max-turns", str(s.max_turns)]
        if s.bare:
            argv.append("--bare")

        path = self.host.path
        if self.env_scrub and self.bwrap and os.path.dirname(self.bwrap) not in path.split(os.pathsep):
            path = os.path.dirname(self.bwrap) + os.pathsep + path
        env = agent_env(run, path=path, lang=self.host.lang)
        base = run.model_base_url.rstrip("/")
        if base.endswith("/v1"):
            base = base[:-3]
        env.update({
            "ANTHROPIC_BASE_URL": base,
            "ANTHROPIC_API_KEY": run.model_api_key,  # sent as x-api-key
            "ANTHROPIC_AUTH_TOKEN": run.model_api_key,  # sent as Authorization: Bearer
            # Background and sub-agent calls use the same model id the proxy knows.
            "ANTHROPIC_MODEL": run.model,
            "ANTHROPIC_SMALL_FAST_MODEL": run.model,
            "ANTHROPIC_DEFAULT_OPUS_MODEL": run.model,
            "ANTHROPIC_DEFAULT_SONNET_MODEL": run.model,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": run.model,
            "CLAUDE_CONFIG_DIR": os.path.join(run.state_dir, "claude"),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_MAX_RETRIES": str(max(0, s.max_retries)),
            "CLAUDE_CODE_SUBPROCESS_ENV_SCRUB": "1" if self.env_scrub else "0",
        })
        if s.api_timeout_ms > 0:
            env["API_TIMEOUT_MS"] = str(s.api_timeout_ms)
        return HarnessCommand(argv=argv, env=env, files={})

    # -- output -------------------------------------------------------------

    def parse_line(self, line: str) -> ProgressEvent | None:
        return parse_line(line)

    def detect_failure(self, work_dir: str, exit_code: int, output_tail: str) -> str | None:
        return detect_failure(work_dir, exit_code, output_tail)

    # -- health -------------------------------------------------------------

    async def health(self) -> Mapping[str, Any]:
        report = health_report(harness=NAME, binary=self.binary, configured=self.settings.bin,
                               bin_var="CLAUDE_CODE_BIN", auth_mode="api_key+bearer", host=self.host,
                               env_scrub=self.env_scrub, bwrap=self.bwrap)
        if not report["found"]:
            return report
        env = {**base_env(self.host.path, self.host.lang, self.host.home),
               "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
        code, out = await probe_version(self.binary, env, self.settings.version_timeout)
        if code == 0 and out:
            report["version"] = out.split()[0]
            report["ok"] = self.env_scrub or self.settings.env_scrub != "on"
        else:
            report["error"] = f"`claude --version` failed: {out[-300:] or code}"
        return report


# --- pure helpers ---------------------------------------------------------------


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_content_text(part) for part in content)
    if isinstance(content, dict):
        if content.get("type") == "text":
            return str(content.get("text", ""))
        return _content_text(content.get("content", ""))
    return ""


def parse_line(line: str) -> ProgressEvent | None:
    """One stream-json line (or a stderr line) as a progress event."""
    line = line.strip()
    if not line:
        return None
    if not line.startswith("{"):
        if line.lower().startswith("error:"):
            return ProgressEvent(kind="error", text=clip(line))
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    kind = obj.get("type")
    if kind == "system":
        subtype = obj.get("subtype")
        if subtype == "init":
            return ProgressEvent(kind="message", text=f"Claude Code {obj.get('claude_code_version', '')} started, "
                                                      f"model {obj.get('model', '')}".replace("  ", " "),
                                 data={"subtype": "init", "session_id": obj.get("session_id"),
                                       "model": obj.get("model"), "cwd": obj.get("cwd"),
                                       "tools": obj.get("tools", []), "permission_mode": obj.get("permissionMode"),
                                       "api_key_source": obj.get("apiKeySource"),
                                       "version": obj.get("claude_code_version")})
        if subtype == "api_retry":
            data = {k: obj.get(k) for k in ("attempt", "max_retries", "retry_delay_ms", "error_status", "error")}
            return ProgressEvent(kind="error", text=f"model API retry {obj.get('attempt')}/{obj.get('max_retries')}: "
                                                    f"{obj.get('error')} (HTTP {obj.get('error_status')})",
                                 data={"subtype": "api_retry", **data})
        return None
    if kind == "assistant":
        message = obj.get("message") or {}
        blocks = message.get("content") or []
        texts = [b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
        calls = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
        if calls:
            call = calls[0]
            tool_input = call.get("input") or {}
            shown = tool_input.get("command") if isinstance(tool_input, dict) else None
            text = f"{call.get('name')}: {shown}" if shown else str(call.get("name"))
            return ProgressEvent(kind="tool_call", text=clip(text),
                                 data={"id": call.get("id"), "name": call.get("name"), "input": tool_input,
                                       "calls": len(calls), "text": "\n".join(texts)})
        if texts:
            return ProgressEvent(kind="message", text=clip("\n".join(texts)),
                                 data={"model": message.get("model")})
        return None
    if kind == "user":
        blocks = (obj.get("message") or {}).get("content") or []
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"] if isinstance(
            blocks, list) else []
        if not results:
            return None
        result = results[0]
        extra = obj.get("tool_use_result") if isinstance(obj.get("tool_use_result"), dict) else {}
        return ProgressEvent(kind="tool_result", text=clip(_content_text(result.get("content"))),
                             data={"tool_use_id": result.get("tool_use_id"), "is_error": bool(result.get("is_error")),
                                   "interrupted": extra.get("interrupted")})
    if kind == "result":
        data = {k: obj.get(k) for k in ("subtype", "is_error", "api_error_status", "num_turns", "duration_ms",
                                        "total_cost_usd", "usage", "permission_denials", "terminal_reason",
                                        "stop_reason", "session_id")}
        text = str(obj.get("result") or obj.get("subtype") or "")
        if obj.get("is_error"):
            return ProgressEvent(kind="error", text=clip(text), data=data)
        return ProgressEvent(kind="final", text=clip(text, 8000), data=data)
    return None


def _last_result(output_tail: str) -> dict[str, Any] | None:
    for line in reversed(output_tail.splitlines()):
        line = line.strip()
        if '"type":"result"' not in line.replace(" ", ""):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            if '"is_error":true' in line.replace(" ", ""):
                return {"type": "result", "is_error": True, "result": "(truncated result line)"}
            continue
        if isinstance(obj, dict) and obj.get("type") == "result":
            return obj
    return None


def detect_failure(work_dir: str, exit_code: int, output_tail: str) -> str | None:
    """Judge a finished run by its `result` line (`is_error`, `permission_denials`), not its exit code."""
    result = _last_result(output_tail)
    if result is None:
        lines = [ln.strip() for ln in output_tail.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.lower().startswith("error")]
        detail = (errors or lines or ["no output"])[-1]
        return f"claude exited {exit_code} without a result event: {clip(detail, 500)}"
    if result.get("is_error"):
        status = result.get("api_error_status")
        what = result.get("terminal_reason") or result.get("subtype") or "error"
        suffix = f", model API status {status}" if status else ""
        return f"claude reported an error ({what}{suffix}): {clip(str(result.get('result') or ''), 500)}"
    denials = result.get("permission_denials") or []
    if denials:
        names = sorted({str(d.get("tool_name", "?")) if isinstance(d, dict) else str(d) for d in denials})
        return f"claude was refused tool permission for: {', '.join(names)}"
    if exit_code != 0:
        return f"claude exited {exit_code} after a successful result"
    return None

