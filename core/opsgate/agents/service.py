"""The rules of agents: spawning, control transitions, runtime configuration, reads.

Creating work inserts the agent and its queued task in one transaction; the
runner (not the request) starts the process. Every state change is a
compare-and-set on the row's current status, written with its audit row and
its domain event (NOTIFY) in the same transaction.

Other domains call:
- `spawn(...)` to start an agent on a ticket (e.g. RACI auto-assignment, ops chat);
- `queue_continuation(conn, agent_id, ...)` to resume a waiting agent (an approved
  gate, granted access, a requester's answer) with a new queued task;
- `stop_agent(...)` / `unassign(...)` to end an agent (its process is stopped by its runner).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from asyncpg import Connection

from opsgate.agents import config as runtime
from opsgate.agents import release, repo, vocab
from opsgate.agents.schemas import (
    Agent,
    AgentAction,
    AgentDetail,
    AgentList,
    AgentStats,
    AgentUpdate,
    AssignAgent,
    ConfigView,
    CreateFromPrompt,
    ModelsView,
    ProgressItem,
    RestartAgent,
    RestartResult,
    SpawnAgent,
    SpawnResult,
    SteeringEvent,
    SteeringList,
    Task,
    TaskList,
    TaskLogs,
    TaskSummary,
    WakeAgent,
)
from opsgate.audit import repo as audit
from opsgate.auth.principal import CLASSIFICATIONS, Principal
from opsgate.errors import Conflict, Forbidden, Invalid, NotFound
from opsgate.events import repo as events
from opsgate.plugins import PluginHost
from opsgate.settings import Settings
from opsgate.steering import service as steering
from opsgate.tickets import service as tickets
from opsgate.tickets.vocab import FINAL_STATUSES as FINAL_TICKET_STATUSES

log = logging.getLogger(__name__)

DETAIL_TASKS = 20
DETAIL_AUDIT = 50
DETAIL_PROGRESS = 100
LOG_DEFAULT_BYTES = 65536
LOG_MAX_BYTES = 1_048_576

_TASK_FIELDS = frozenset(Task.__struct_fields__)
_AGENT_FIELDS = frozenset(Agent.__struct_fields__) - {"latest_task"}

DEFAULT_PROMPTS = {
    "ticket_resolution": (
        "Work ticket #{ticket_id}: {title}\n\n"
        "AGENTS.md in your working directory has the ticket, its notes and how to call the opsgate API with "
        "your agent token. Investigate, act only within your permissions (ask for approval or access through "
        "the API when you need more), record your evidence as ticket notes, and write checkpoint.json with "
        "status \"done\" and progress 100 when you are finished. Finishing your task does not close the "
        "ticket: set its status through the status endpoint only when the work is verified."
    ),
    "postmortem": "Write a postmortem for ticket #{ticket_id}: {title}. Use the ticket context in AGENTS.md; "
                  "post the postmortem as a ticket note, then write checkpoint.json with status \"done\".",
    "workflow_build": "Build a reusable workflow from how ticket #{ticket_id} ({title}) was handled; post it as a "
                      "ticket note, then write checkpoint.json with status \"done\".",
    "workflow_rerun": "Re-run the workflow for ticket #{ticket_id}: {title}. Record results as ticket notes, then "
                      "write checkpoint.json with status \"done\".",
    "ad_hoc": "{title}",
}


# --- conversions and scoping ------------------------------------------------------


def scope(principal: Principal) -> tuple[list[str] | None, list[str] | None]:
    """(classifications, groups) parameters of the list queries; None: no limit."""
    classes = None if principal.max_classification == CLASSIFICATIONS[-1] else principal.allowed_classifications()
    groups = None if principal.groups is None else list(principal.groups)
    return classes, groups


def to_task(row: dict[str, Any], *, with_prompt: bool = False) -> Task:
    fields = {k: v for k, v in row.items() if k in _TASK_FIELDS}
    fields["prompt"] = row.get("prompt") if with_prompt else None
    return Task(**fields)


def to_agent(row: dict[str, Any], latest: dict[str, Any] | None = None) -> Agent:
    fields = {k: v for k, v in row.items() if k in _AGENT_FIELDS}
    summary = None
    if latest is not None:
        summary = TaskSummary(id=latest["id"], status=latest["status"], progress=latest["progress"],
                              summary=latest.get("summary"))
    elif row.get("task_id") is not None:
        summary = TaskSummary(id=row["task_id"], status=row["task_status"], progress=row["task_progress"],
                              summary=row["task_summary"])
    return Agent(**fields, latest_task=summary)


def _can_see(principal: Principal, row: dict[str, Any]) -> bool:
    if principal.kind == "agent":
        return principal.agent_id is not None and row["id"] == principal.agent_id
    if row.get("ticket_id") is None or row.get("ticket_classification") is None:
        return True
    return principal.can_see(ticket_id=row["ticket_id"], classification=row["ticket_classification"],
                             owning_group=row["ticket_owning_group"])


async def visible_agent(conn: Connection, principal: Principal, agent_id: int, *,
                        lock: bool = False) -> dict[str, Any]:
    """The agent row, or NotFound when missing or outside the caller's scope (an agent sees only itself)."""
    row = await repo.get_agent(conn, agent_id, lock=lock)
    if row is None or not _can_see(principal, row):
        raise NotFound(f"agent {agent_id} not found")
    return row


async def _visible_task(conn: Connection, principal: Principal, task_id: int) -> dict[str, Any]:
    row = await repo.get_task(conn, task_id)
    if row is None:
        raise NotFound(f"task {task_id} not found")
    if principal.kind == "agent":
        if row["agent_id"] != principal.agent_id:
            raise NotFound(f"task {task_id} not found")
    elif row["ticket_id"] is not None and row["ticket_classification"] is not None and not principal.can_see(
            ticket_id=row["ticket_id"], classification=row["ticket_classification"],
            owning_group=row["ticket_owning_group"]):
        raise NotFound(f"task {task_id} not found")
    return row


async def _journal(conn: Connection, principal: Principal | None, action: str, agent: dict[str, Any], *,
                   details: dict[str, Any], level: str = "info") -> None:
    """Audit row and domain event of an agent change; inside the change's transaction."""
    actor = principal.actor if principal else "control-plane"
    kind = principal.actor_kind if principal else "system"
    payload = {"agent_id": agent["id"], "ticket_id": agent.get("ticket_id"), "status": agent.get("status"),
               **details}
    await audit.record(conn, actor=actor, actor_kind=kind, action=action, category="agent", level=level,
                       target_type="agent", target_id=agent["id"], ticket_id=agent.get("ticket_id"),
                       agent_id=agent["id"], details=payload)
    await events.emit(conn, action, actor=actor, ticket_id=agent.get("ticket_id"), agent_id=agent["id"],
                      payload=payload, category="agent", level=level)


# --- runtime configuration ---------------------------------------------------------


async def load_config(conn: Connection) -> runtime.RuntimeConfig:
    """The stored runtime configuration (defaults for anything unset)."""
    row = await repo.get_config(conn)
    try:
        return runtime.parse(row["config"] or {})
    except Invalid:
        log.exception("stored agent runtime configuration is invalid; using defaults")
        return runtime.RuntimeConfig()


def _config_view(row: dict[str, Any], cfg: runtime.RuntimeConfig, host: PluginHost) -> ConfigView:
    data = msgspec.to_builtins(cfg)
    return ConfigView(**data, version=row["version"], updated_at=row["updated_at"], updated_by=row["updated_by"],
                      harnesses=sorted(host.harnesses()))


async def get_config(conn: Connection, host: PluginHost) -> ConfigView:
    row = await repo.get_config(conn)
    return _config_view(row, await load_config(conn), host)


async def put_config(conn: Connection, principal: Principal, host: PluginHost, body: Any) -> ConfigView:
    """Persist the fields given (top level replaces); secrets are refused with 400."""
    if not isinstance(body, dict):
        raise Invalid("body", "must be a JSON object")
    async with conn.transaction():
        current = await load_config(conn)
        updated = runtime.validate_update(current, body, list(host.harnesses()))
        row = await repo.put_config(conn, msgspec.to_builtins(updated), principal.actor)
        changed = sorted(body)
        await audit.record(conn, actor=principal.actor, actor_kind=principal.actor_kind,
                           action="agent_config_updated", category="settings", target_type="agent_config",
                           target_id=1, details={"fields": changed, "version": row["version"]})
        await events.emit(conn, "agent_config_updated", actor=principal.actor, category="agent",
                          payload={"fields": changed, "version": row["version"],
                                   "max_concurrent_agents": updated.max_concurrent_agents})
    log.info("agent runtime configuration updated", extra={"fields": changed, "version": row["version"]})
    return _config_view(row, updated, host)


async def models(conn: Connection, settings: Settings, host: PluginHost) -> ModelsView:
    cfg = await load_config(conn)
    data = msgspec.to_builtins(cfg)
    return ModelsView(models=runtime.model_list(cfg), active_profile=cfg.active_profile,
                      profiles=data["profiles"], route_assignments=data["route_assignments"],
                      max_concurrent_agents=cfg.max_concurrent_agents,
                      default_timeout_minutes=cfg.default_timeout_minutes, default_harness=cfg.default_harness,
                      default_model=cfg.default_model, harnesses=sorted(host.harnesses()),
                      codex_auth_mode=settings.codex_auth_mode,
                      model_base_url_configured=bool(settings.agent_llm_base_url))


# --- spawning -------------------------------------------------------------------


def default_prompt(task_type: str, ticket: dict[str, Any]) -> str:
    return DEFAULT_PROMPTS[task_type].format(ticket_id=ticket["id"], title=ticket["title"])


async def spawn(conn: Connection, principal: Principal, settings: Settings, host: PluginHost, *, ticket_id: int,
                task_type: str = "ticket_resolution", harness: str | None = None, model: str | None = None,
                profile_id: str | None = None, prompt: str | None = None,
                replaces_agent_id: int | None = None) -> SpawnResult:
    """Insert an agent and its queued task in one transaction; a runner starts it."""
    task_type = vocab.task_type(task_type)
    if prompt is not None and not prompt.strip():
        prompt = None
    async with conn.transaction():
        ticket = await tickets.visible_ticket(conn, principal, ticket_id, lock=True)
        if ticket["status"] in FINAL_TICKET_STATUSES:
            raise Conflict(f"ticket {ticket_id} is {ticket['status']}; reopen it before assigning an agent")
        if task_type == "ticket_resolution" and ticket["agent_id"] is not None:
            current = await repo.get_agent(conn, ticket["agent_id"])
            if current is not None and current["status"] not in vocab.FINAL_AGENT_STATUSES:
                raise Conflict(f"ticket {ticket_id} already has agent {current['id']} ({current['status']}); "
                               "unassign or stop it first")
        cfg = await load_config(conn)
        resolved = runtime.resolve(cfg, settings, list(host.harnesses()), harness=harness, model=model,
                                   profile_id=profile_id, ticket=ticket, task_type=task_type)
        text = prompt if prompt is not None else default_prompt(task_type, ticket)
        agent = await repo.insert_agent(
            conn, ticket_id=ticket_id, name=f"{resolved.harness} {task_type} #{ticket_id}",
            harness=resolved.harness, model=resolved.model, profile_id=resolved.profile_id, task_type=task_type,
            created_by=principal.actor, replaces_agent_id=replaces_agent_id)
        task = await repo.insert_task(
            conn, agent_id=agent["id"], ticket_id=ticket_id, task_type=task_type, prompt=text,
            harness=resolved.harness, model=resolved.model, model_base_url=resolved.model_base_url,
            timeout_minutes=resolved.timeout_minutes, created_by=principal.actor)
        if task_type == "ticket_resolution":
            await repo.set_ticket_agent(conn, ticket_id, agent["id"])
        await _journal(conn, principal, "agent_spawned", agent, details={
            "task_id": task["id"], "task_type": task_type, "harness": resolved.harness, "model": resolved.model,
            "profile_id": resolved.profile_id, "model_repaired_from": resolved.repaired_from,
            "replaces_agent_id": replaces_agent_id})
    if resolved.repaired_from:
        log.info("codex oauth: model alias repaired", extra={"agent_id": agent["id"], "from": resolved.repaired_from,
                                                            "to": resolved.model})
    log.info("agent spawned", extra={"agent_id": agent["id"], "ticket_id": ticket_id, "task_id": task["id"],
                                     "harness": resolved.harness})
    agent = {**agent, "ticket_title": ticket["title"], "ticket_status": ticket["status"]}
    return SpawnResult(agent=to_agent(agent, task), task=to_task(task, with_prompt=True), ticket_id=ticket_id,
                       model_repaired_from=resolved.repaired_from)


async def assign_agent(conn: Connection, principal: Principal, settings: Settings, host: PluginHost,
                       ticket_id: int, data: AssignAgent) -> SpawnResult:
    return await spawn(conn, principal, settings, host, ticket_id=ticket_id, harness=data.harness, model=data.model,
                       profile_id=data.profile_id, prompt=data.prompt)


async def spawn_agent(conn: Connection, principal: Principal, settings: Settings, host: PluginHost,
                      data: SpawnAgent) -> SpawnResult:
    return await spawn(conn, principal, settings, host, ticket_id=data.ticket_id, task_type=data.task_type,
                       harness=data.harness, model=data.model, profile_id=data.profile_id, prompt=data.prompt)


async def create_from_prompt(conn: Connection, principal: Principal, settings: Settings, host: PluginHost,
                             data: CreateFromPrompt) -> SpawnResult:
    """A local ticket from the prompt and an ad hoc agent on it."""
    from opsgate.tickets.schemas import TicketCreate

    prompt = data.prompt.strip()
    if not prompt:
        raise Invalid("prompt", "must not be empty")
    if not principal.has("tickets:create"):
        raise Forbidden(f"{principal.actor} lacks tickets:create", required_permission="tickets:create")
    title = (data.title or "").strip() or prompt.splitlines()[0][:200]
    # Resolve harness and model first, so a bad value creates no ticket.
    cfg = await load_config(conn)
    runtime.resolve(cfg, settings, list(host.harnesses()), harness=data.harness, model=data.model,
                    profile_id=data.profile_id, task_type="ad_hoc",
                    ticket={"owning_group": data.owning_group, "ticket_class": data.ticket_class,
                            "priority": data.priority, "provider": "local"})
    # The ticket service commits (and NOTIFYs) on its own; the agent follows in a second transaction.
    created = await tickets.create_ticket(
        conn, principal, settings, host,
        TicketCreate(title=title, description=prompt, ticket_class=data.ticket_class, priority=data.priority,
                     owning_group=data.owning_group, security_classification=data.security_classification,
                     sync_provider=False))
    return await spawn(conn, principal, settings, host, ticket_id=created.id, task_type="ad_hoc",
                       harness=data.harness, model=data.model, profile_id=data.profile_id, prompt=prompt)


# --- control ----------------------------------------------------------------------


async def _end(conn: Connection, principal: Principal | None, agent: dict[str, Any], status: str,
               reason: str, action: str) -> tuple[dict[str, Any], list[int]]:
    """Live agent -> `status`, its active tasks likewise, tokens revoked; inside a transaction."""
    ended = await repo.end_agent(conn, agent["id"], status, reason)
    if ended is None:
        raise Conflict(f"agent {agent['id']} is already {agent['status']}")
    actor = principal.actor if principal else "control-plane"
    tasks = await repo.end_active_tasks(conn, agent["id"], status, reason, actor)
    await release.release(conn, agent["id"], f"agent {status}: {reason}", agent_ended=True)
    task_ids = [t["id"] for t in tasks]
    await _journal(conn, principal, action, {**ended}, details={
        "reason": reason, "previous_status": agent["status"], "task_ids": task_ids,
        "runner_ids": sorted({t["runner_id"] for t in tasks if t["runner_id"]})})
    log.info("agent %s", status, extra={"agent_id": agent["id"], "reason": reason, "tasks": task_ids})
    return ended, task_ids


def _with_ticket(row: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    return {**row, "ticket_title": before.get("ticket_title"), "ticket_status": before.get("ticket_status")}


async def stop_agent(conn: Connection, principal: Principal, agent_id: int, reason: str) -> AgentAction:
    """Operator stop: status `stopped` (nothing later overwrites it); the runner kills the process group."""
    reason = reason.strip() or "operator_stop"
    async with conn.transaction():
        agent = await visible_agent(conn, principal, agent_id, lock=True)
        ended, task_ids = await _end(conn, principal, agent, "stopped", reason, "agent_stopped")
    return AgentAction(agent=to_agent(_with_ticket(ended, agent)), action="stopped", tasks=task_ids)


async def unassign(conn: Connection, principal: Principal, ticket_id: int, reason: str) -> AgentAction:
    """Terminate the ticket's current agent and clear `tickets.agent_id`."""
    reason = reason.strip() or "unassigned"
    async with conn.transaction():
        ticket = await tickets.visible_ticket(conn, principal, ticket_id, lock=True)
        if ticket["agent_id"] is None:
            raise Conflict(f"ticket {ticket_id} has no agent assigned")
        agent = await repo.get_agent(conn, ticket["agent_id"], lock=True)
        await repo.clear_ticket_agent(conn, ticket_id, ticket["agent_id"])
        if agent is None:
            raise Conflict(f"ticket {ticket_id} names agent {ticket['agent_id']}, which does not exist")
        task_ids: list[int] = []
        if agent["status"] in vocab.FINAL_AGENT_STATUSES:
            row = agent
            await _journal(conn, principal, "agent_unassigned", agent, details={"reason": reason})
        else:
            row, task_ids = await _end(conn, principal, agent, "terminated", reason, "agent_terminated")
    return AgentAction(agent=to_agent(_with_ticket(row, agent)), action="unassigned", tasks=task_ids)


async def restart(conn: Connection, principal: Principal, settings: Settings, host: PluginHost, agent_id: int,
                  data: RestartAgent) -> RestartResult:
    """Terminate the agent (stopping its active task) and spawn a replacement with the latest prompt."""
    async with conn.transaction():
        agent = await visible_agent(conn, principal, agent_id, lock=True)
        if agent["ticket_id"] is None:
            raise Conflict(f"agent {agent_id} has no ticket to restart on")
        if agent["status"] == "terminated":
            raise Conflict(f"agent {agent_id} is terminated; restart its replacement instead")
        latest = await repo.latest_task(conn, agent_id)
        if agent["status"] in vocab.FINAL_AGENT_STATUSES:
            ended = agent  # already ended: it keeps its final status and is replaced
        else:
            ended, _ = await _end(conn, principal, agent, "terminated", data.reason, "agent_terminated")
        replacement = await spawn(
            conn, principal, settings, host, ticket_id=agent["ticket_id"], task_type=agent["task_type"],
            harness=data.harness or agent["harness"], model=data.model or agent["model"],
            profile_id=None, prompt=data.prompt or (latest["prompt"] if latest else None),
            replaces_agent_id=agent_id)
    return RestartResult(previous=to_agent(_with_ticket(ended, agent)), replacement=replacement)


async def queue_continuation(conn: Connection, agent_id: int, *, principal: Principal | None = None,
                             prompt: str | None = None, reason: str = "continue") -> Task:
    """Resume an agent that waits (or ended, but was not terminated) with a new queued task.

    For other domains: an approved change gate, granted access or a requester's
    answer calls this. `Conflict` when the agent is queued, running or terminated,
    or when its ticket already has an active task of this type.
    """
    async with conn.transaction():
        agent = await repo.get_agent(conn, agent_id, lock=True)
        if agent is None:
            raise NotFound(f"agent {agent_id} not found")
        if principal is not None and not _can_see(principal, agent):
            raise NotFound(f"agent {agent_id} not found")
        latest = await repo.latest_task(conn, agent_id)
        requeued = await repo.requeue_agent(conn, agent_id, reason)
        if requeued is None:
            raise Conflict(f"agent {agent_id} is {agent['status']}; only a waiting or ended agent can continue")
        text = prompt
        if text is None or not text.strip():
            base = latest["prompt"] if latest else default_prompt(agent["task_type"], {
                "id": agent["ticket_id"], "title": agent.get("ticket_title") or ""})
            text = (f"{base}\n\nContinue this task ({reason}). Your earlier work is in this directory; "
                    "check AGENTS.md, the ticket notes and the steering files for what changed.")
        task = await repo.insert_task(
            conn, agent_id=agent_id, ticket_id=agent["ticket_id"], task_type=agent["task_type"], prompt=text,
            harness=agent["harness"], model=agent["model"],
            model_base_url=latest["model_base_url"] if latest else None,
            timeout_minutes=latest["timeout_minutes"] if latest else 60,
            created_by=principal.actor if principal else "control-plane")
        await _journal(conn, principal, "agent_task_queued", requeued, details={
            "task_id": task["id"], "reason": reason, "previous_status": agent["status"]})
    return to_task(task, with_prompt=True)


async def wake(conn: Connection, principal: Principal, agent_id: int, data: WakeAgent) -> AgentAction:
    """A live task: nothing to do (the runner heartbeats it); otherwise a continuation from the latest prompt."""
    agent = await visible_agent(conn, principal, agent_id)
    if agent["status"] in ("queued", "running"):
        latest = await repo.latest_task(conn, agent_id)
        async with conn.transaction():
            await events.emit(conn, "agent_wake", actor=principal.actor, ticket_id=agent["ticket_id"],
                              agent_id=agent_id, category="agent",
                              payload={"agent_id": agent_id, "task_id": latest["id"] if latest else None})
        return AgentAction(agent=to_agent(agent, latest), action="already_active",
                           task=to_task(latest) if latest else None)
    if agent["status"] == "terminated":
        raise Conflict(f"agent {agent_id} is terminated; spawn or restart instead")
    task = await queue_continuation(conn, agent_id, principal=principal, prompt=data.prompt,
                                    reason=data.reason.strip() or "wake")
    agent = await visible_agent(conn, principal, agent_id)
    return AgentAction(agent=to_agent(agent), action="continuation_queued", tasks=[task.id], task=task)


REPORTABLE = (*vocab.WAIT_STATUSES, "completed", "failed", "running")


async def update(conn: Connection, principal: Principal, agent_id: int, data: AgentUpdate) -> AgentAction:
    """Legacy status report of a running agent: a wait state, completed, failed, or progress (running)."""
    status = vocab.agent_status(data.status)
    if status not in REPORTABLE:
        raise Invalid("status", f"must be one of {', '.join(REPORTABLE)}; use /stop to stop an agent")
    async with conn.transaction():
        agent = await visible_agent(conn, principal, agent_id, lock=True)
        task = await repo.report_task(conn, agent_id, status, data.reason, data.progress, data.summary)
        if task is None:
            raise Conflict(f"agent {agent_id} has no running task (it is {agent['status']})")
        row = agent
        if status != "running":
            row = await repo.report_agent(conn, agent_id, status, data.reason) or agent
            await release.release(conn, agent_id, f"task {status} (reported)", agent_ended=False)
        await _journal(conn, principal, "agent_status_updated", row, details={
            "task_id": task["id"], "reported_status": status, "reason": data.reason, "progress": data.progress,
            "task_ids": [task["id"]] if status != "running" else []})
    if status == "completed":
        await release.after_completed(conn, agent_id, task["id"], data.summary or data.reason or "")
    return AgentAction(agent=to_agent(_with_ticket(row, agent), task), action="updated", tasks=[task["id"]],
                       task=to_task(task))


# --- reads --------------------------------------------------------------------------


async def list_agents(conn: Connection, principal: Principal, *, status: str | None, ticket_id: int | None,
                      limit: int, offset: int) -> AgentList:
    statuses = vocab.csv_statuses(status, vocab.agent_status)
    sc = scope(principal)
    rows = await repo.list_agents(conn, statuses, ticket_id, sc, limit, offset)
    total = await repo.count_agents(conn, statuses, ticket_id, sc)
    return AgentList(agents=[to_agent(r) for r in rows], total=total, limit=limit, offset=offset)


async def active_agents(conn: Connection, principal: Principal, limit: int) -> AgentList:
    statuses = list(vocab.LIVE_AGENT_STATUSES)
    sc = scope(principal)
    rows = await repo.list_agents(conn, statuses, None, sc, limit, 0)
    total = await repo.count_agents(conn, statuses, None, sc)
    return AgentList(agents=[to_agent(r) for r in rows], total=total, limit=limit, offset=0)


async def stats(conn: Connection) -> AgentStats:
    agents, tasks, durations = await repo.counts(conn)

    def num(value: Any) -> float | None:
        return None if value is None else round(float(value), 3)

    return AgentStats(
        agents=agents, tasks=tasks, total_agents=sum(agents.values()),
        active_agents=sum(n for s, n in agents.items() if s in vocab.LIVE_AGENT_STATUSES),
        running_tasks=tasks.get("running", 0), queued_tasks=tasks.get("queued", 0),
        completed_tasks=tasks.get("completed", 0), average_duration_seconds=num(durations["avg_all"]),
        average_completed_duration_seconds=num(durations["avg_completed"]),
        average_queue_wait_seconds=num(durations["avg_queue_wait"]))


async def list_tasks(conn: Connection, principal: Principal, *, status: str | None, agent_id: int | None,
                     ticket_id: int | None, limit: int, offset: int) -> TaskList:
    statuses = vocab.csv_statuses(status, vocab.task_status)
    rows = await repo.list_tasks(conn, statuses, agent_id, ticket_id, scope(principal), limit, offset)
    return TaskList(tasks=[to_task(r) for r in rows], limit=limit, offset=offset)


def _progress(rows: list[dict[str, Any]]) -> list[ProgressItem]:
    return [ProgressItem(**r) for r in rows]


def _steering(rows: list[dict[str, Any]]) -> list[SteeringEvent]:
    return [SteeringEvent(**{k: v for k, v in r.items() if k in SteeringEvent.__struct_fields__}) for r in rows]


async def detail(conn: Connection, principal: Principal, agent_id: int) -> AgentDetail:
    agent = await visible_agent(conn, principal, agent_id)
    tasks = await repo.agent_tasks(conn, agent_id, DETAIL_TASKS)
    latest = await repo.latest_task(conn, agent_id)
    progress = await repo.task_progress(conn, latest["id"], DETAIL_PROGRESS) if latest else []
    audit_rows = await repo.agent_audit(conn, agent_id, DETAIL_AUDIT)
    events_rows = await steering.list_events(conn, agent_id, 20)
    return AgentDetail(agent=to_agent(agent, latest), latest_task=to_task(latest, with_prompt=True) if latest else None,
                       tasks=[to_task(t) for t in tasks], progress=_progress(progress),
                       steering=_steering(events_rows), changes=[], audit=audit_rows)


# --- reads for the ticket detail and context (opsgate.tickets) -------------------------


async def ticket_agent(conn: Connection, principal: Principal, agent_id: int | None) -> dict[str, Any] | None:
    """The ticket's current agent with its latest task, as JSON values; None when there is none
    or the caller may not see it (an agent token sees only itself)."""
    if agent_id is None:
        return None
    agent = await repo.get_agent(conn, agent_id)
    if agent is None or not _can_see(principal, agent):
        return None
    latest = await repo.latest_task(conn, agent_id)
    return msgspec.to_builtins(to_agent(agent, latest))


async def ticket_tasks(conn: Connection, principal: Principal, ticket_id: int, *, limit: int,
                       tail_chars: int) -> list[dict[str, Any]]:
    """The ticket's newest tasks (an agent token: only its own) with the last `tail_chars`
    characters of each one's output (`log_tail`, `log_truncated`). The caller has checked
    that the ticket is visible."""
    only = principal.agent_id if principal.kind == "agent" else None
    if principal.kind == "agent" and only is None:
        return []
    rows = await repo.ticket_tasks(conn, ticket_id, limit, tail_chars, only)
    out = []
    for row in rows:
        item = msgspec.to_builtins(to_task(row))
        item["log_tail"] = row["log_tail"]
        item["log_truncated"] = row["output_bytes"] > len(row["log_tail"].encode())
        out.append(item)
    return out


def _read_tail(path: str, limit: int) -> tuple[str, int, bool] | None:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            data = fh.read(limit)
    except OSError:
        return None
    return data.decode("utf-8", errors="replace"), size, size > limit


async def _logs(conn: Connection, task: dict[str, Any], limit: int) -> TaskLogs:
    limit = max(1, min(limit, LOG_MAX_BYTES))
    progress = _progress(await repo.task_progress(conn, task["id"], DETAIL_PROGRESS))
    if task["log_path"]:
        tail = _read_tail(task["log_path"], limit)
        if tail is not None:
            content, size, truncated = tail
            return TaskLogs(task_id=task["id"], agent_id=task["agent_id"], status=task["status"], source="file",
                            log_path=task["log_path"], content=content, bytes=size, truncated=truncated,
                            progress=progress)
    content = task["output_tail"] or ""
    if len(content) > limit:
        content = content[-limit:]
    return TaskLogs(task_id=task["id"], agent_id=task["agent_id"], status=task["status"], source="database",
                    log_path=task["log_path"], content=content, bytes=task["output_bytes"],
                    truncated=task["output_bytes"] > len(content.encode()), progress=progress)


async def task_logs(conn: Connection, principal: Principal, task_id: int, limit: int) -> TaskLogs:
    """The tail of the task's `output.log` when this host has it, else the tail kept in the database."""
    return await _logs(conn, await _visible_task(conn, principal, task_id), limit)


async def agent_logs(conn: Connection, principal: Principal, agent_id: int, limit: int) -> TaskLogs:
    await visible_agent(conn, principal, agent_id)
    latest = await repo.latest_task(conn, agent_id)
    if latest is None:
        raise NotFound(f"agent {agent_id} has no task")
    return await _logs(conn, latest, limit)


async def steering_list(conn: Connection, principal: Principal, agent_id: int, limit: int) -> SteeringList:
    await visible_agent(conn, principal, agent_id)
    rows = await steering.list_events(conn, agent_id, limit)
    return SteeringList(agent_id=agent_id, events=_steering(rows), pending=await steering.pending(conn, agent_id))


async def steering_ack(conn: Connection, principal: Principal, agent_id: int, event_id: int) -> SteeringEvent:
    await visible_agent(conn, principal, agent_id)
    row = await steering.acknowledge(conn, agent_id, event_id, principal.actor, principal.actor_kind)
    if row is None:
        raise NotFound(f"steering event {event_id} of agent {agent_id} not found")
    return _steering([row])[0]
