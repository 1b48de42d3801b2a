"""`GET /api/agents/runner-health` and `GET /api/agents/processes`.

Harness health comes from each harness plugin's `health()` (binary found,
version, auth); the model endpoint is probed with `GET <root>/v1/models`.
Reports are cached for a few seconds so a dashboard polling the page does not
run every CLI's `--version` each time. No secret value is ever reported.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
from asyncpg import Connection

from opsgate.agents import repo
from opsgate.agents.schemas import Processes, RunnerHealth
from opsgate.agents.service import load_config
from opsgate.errors import OpsgateError
from opsgate.plugins import PluginHost, call_plugin
from opsgate.settings import Settings

log = logging.getLogger(__name__)

CACHE_SECONDS = 10.0
PROBE_TIMEOUT = 3.0
_cache: dict[int, tuple[float, dict[str, Any]]] = {}
_SETTING_FIELDS = ("allowed_tools", "toolsets", "sandbox_mode", "network_access", "max_turns", "env_scrub")


def _permissions(harness: Any) -> dict[str, Any]:
    """Permission mode and allowed tools a harness runs with, from its (non-secret) settings."""
    settings = getattr(harness, "settings", None)
    out: dict[str, Any] = {}
    for field in _SETTING_FIELDS:
        if settings is not None and hasattr(settings, field):
            out[field] = getattr(settings, field)
    name = getattr(harness, "name", "")
    if name == "claude-code":
        out["permission_mode"] = "dontAsk"
    elif name == "codex":
        out["permission_mode"] = f"sandbox:{out.get('sandbox_mode', '?')}"
    elif name == "hermes":
        out["permission_mode"] = "yolo (-z one-shot)"
    return out


async def _probe(url: str) -> dict[str, Any]:
    target = url.rstrip("/")
    target = (target if target.endswith("/v1") else target + "/v1") + "/models"
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT, trust_env=False) as client:
            response = await client.get(target)
    except httpx.HTTPError as exc:
        return {"url": target, "reachable": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"url": target, "reachable": response.status_code < 300 or response.status_code in (401, 403),
            "status_code": response.status_code, "latency_ms": round((time.monotonic() - started) * 1000, 1)}


async def _codex_login(host: PluginHost, settings: Settings) -> dict[str, Any]:
    if settings.codex_auth_mode != "oauth":
        return {"status": "not_applicable", "detail": "CODEX_AUTH_MODE is api_key (custom provider with the proxy)"}
    codex = host.harnesses().get("codex")
    binary = getattr(codex, "binary", None)
    if not binary or not os.access(binary, os.X_OK):
        return {"status": "unknown", "detail": "codex harness or binary not available"}
    env = {"PATH": settings.env.get("PATH", "/usr/bin:/bin"), "HOME": settings.env.get("HOME", "/")}
    if settings.env.get("CODEX_HOME"):
        env["CODEX_HOME"] = settings.env["CODEX_HOME"]
    try:
        proc = await asyncio.create_subprocess_exec(binary, "login", "status", env=env,
                                                    stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                    start_new_session=True)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=15)
    except (OSError, TimeoutError) as exc:
        return {"status": "unknown", "detail": f"{type(exc).__name__}: {exc}"[:300]}
    text = out.decode(errors="replace").strip()
    if "Logged in using ChatGPT" in text:
        status = "logged_in"
    elif "API key configured" in text:
        status = "api_key"
    else:
        status = "not_logged_in"
    return {"status": status, "exit_code": proc.returncode, "detail": text.splitlines()[0][:200] if text else ""}


async def runner_health(conn: Connection, settings: Settings, host: PluginHost,
                        runner: Any | None) -> RunnerHealth:
    cfg = await load_config(conn)
    runners = await repo.list_runners(conn)
    key = id(host)
    cached = _cache.get(key)
    if cached is None or time.monotonic() - cached[0] > CACHE_SECONDS:
        harnesses: dict[str, Any] = {}
        for name, harness in sorted(host.harnesses().items()):
            try:
                report = dict(await call_plugin(name, "health", harness.health(),
                                                timeout=settings.plugin_call_timeout))
            except OpsgateError as exc:
                report = {"ok": False, "error": exc.detail}
            report["permissions"] = _permissions(harness)
            harnesses[name] = report
        profile = cfg.profiles.get(cfg.active_profile) if cfg.active_profile else None
        url = (profile.model_base_url if profile and profile.model_base_url else None) or settings.agent_llm_base_url
        model_api = await _probe(url) if url else {"reachable": False, "error": "AGENT_LLM_BASE_URL is not set"}
        cached = (time.monotonic(), {"harnesses": harnesses, "model_api_url": url or None, "model_api": model_api,
                                     "codex": await _codex_login(host, settings)})
        _cache[key] = cached
    data = cached[1]
    configured = cfg.default_harness or (sorted(host.harnesses())[0] if len(host.harnesses()) == 1 else None)
    selected_ok = bool(configured and data["harnesses"].get(configured, {}).get("ok"))
    return RunnerHealth(
        ok=selected_ok and bool(data["model_api"].get("reachable")),
        configured_harness=configured, default_model=cfg.default_model, model_api_url=data["model_api_url"],
        model_api=data["model_api"],
        credentials={"model_api_key_configured": bool(settings.agent_llm_api_key),
                     "model_base_url_configured": bool(settings.agent_llm_base_url),
                     "work_dir": settings.work_dir, "work_dir_exists": Path(settings.work_dir).is_dir()},
        harnesses=data["harnesses"], codex_auth_mode=settings.codex_auth_mode, codex_login_status=data["codex"],
        runners=[{k: (round(float(v), 1) if k == "heartbeat_age_seconds" else v) for k, v in r.items()}
                 for r in runners],
        max_concurrent_agents=cfg.max_concurrent_agents, runner_in_this_process=runner is not None)


def _proc_list(pgids: set[int]) -> list[dict[str, Any]]:
    """Members of the given process groups, from /proc (no `ps` needed)."""
    out: list[dict[str, Any]] = []
    root = Path("/proc")
    if not pgids or not root.is_dir():
        return out
    for entry in root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            pgrp = int(fields[2])
            if pgrp not in pgids:
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue
        out.append({"pid": int(entry.name), "pgid": pgrp, "state": fields[0], "ppid": int(fields[1]),
                    "cmdline": cmd[:300]})
    return sorted(out, key=lambda p: p["pid"])


async def processes(conn: Connection, runner: Any | None) -> Processes:
    tracked = runner.tracked() if runner is not None else []
    pgids = {t["pgid"] for t in tracked if t.get("pgid")}
    running = await repo.running_tasks(conn)
    return Processes(ps_path=shutil.which("ps"), runner_id=runner.id if runner is not None else None,
                     tracked=tracked, processes=await asyncio.to_thread(_proc_list, pgids), running_tasks=running)
