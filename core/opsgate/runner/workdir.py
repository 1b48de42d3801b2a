"""The work dir of an agent and the files the runner lays out in it.

    <OPSGATE_WORK_DIR>/agents/<agent_id>/      the agent's working directory (kept across its tasks)
        AGENTS.md                             instructions: ticket context, API usage, checkpoint and steering
        TASK.md                               the task prompt
        checkpoint.json                       {"status", "progress", "summary"}, written by the agent
        output.log -> logs/task-<id>.log      the current task's output
        agent_steering_inbox.json, AGENT_STEERING.md
    <OPSGATE_WORK_DIR>/state/task-<id>/        per-task CLI state (config homes), outside the agent's directory

Everything lives under opsgate's data dir, never the system temp dir (Codex's
sandbox breaks there, harnesses.md §3.1).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsgate.steering.files import INBOX_JSON, atomic_write, mirror

CHECKPOINT = "checkpoint.json"
AGENTS_MD = "AGENTS.md"
TASK_MD = "TASK.md"
OUTPUT_LOG = "output.log"
MAX_NOTES = 20
MAX_NOTE_CHARS = 2000


@dataclass(frozen=True)
class Layout:
    """Paths of one task's run."""

    root: Path
    state_dir: Path
    log_path: Path

    @property
    def agents_md(self) -> Path:
        return self.root / AGENTS_MD

    @property
    def prompt_file(self) -> Path:
        return self.root / TASK_MD

    @property
    def checkpoint(self) -> Path:
        return self.root / CHECKPOINT

    @property
    def output_log(self) -> Path:
        return self.root / OUTPUT_LOG


def layout_for(work_dir: str, agent_id: int, task_id: int) -> Layout:
    base = Path(work_dir).expanduser().resolve()
    root = base / "agents" / str(agent_id)
    return Layout(root=root, state_dir=base / "state" / f"task-{task_id}",
                  log_path=root / "logs" / f"task-{task_id}.log")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def agents_md(*, task: dict[str, Any], ticket: dict[str, Any] | None, notes: list[dict[str, Any]],
              api_url: str) -> str:
    """The instructions file: who the agent is, the ticket, how to use the API, the protocols."""
    tid = task["ticket_id"]
    lines = [
        "# opsgate agent instructions", "",
        f"You are opsgate agent {task['agent_id']}, running task {task['id']} ({task['type']}) "
        f"on ticket #{tid}." if tid is not None else
        f"You are opsgate agent {task['agent_id']}, running task {task['id']} ({task['type']}).",
        "Your task prompt is in TASK.md. The platform enforces approvals, permissions and credential leases:",
        "ask through the API instead of working around a refusal.", "",
    ]
    if ticket is not None:
        lines += [
            "## Ticket", "",
            f"- id: {ticket['id']}", f"- title: {ticket['title']}", f"- class: {ticket['ticket_class']}",
            f"- status: {ticket['status']}", f"- priority: {ticket['priority']}",
            f"- owning group: {ticket.get('owning_group') or '-'}",
            f"- requester: {ticket.get('requester_name') or '-'} <{ticket.get('requester_email') or '-'}>", "",
            "### Description", "", _clip(ticket.get("description") or "(none)", 8000), "",
        ]
        if notes:
            lines += [f"### Latest notes ({len(notes)})", ""]
            for note in notes:
                lines.append(f"- [{note['created_at']:%Y-%m-%d %H:%M}] {note['author']} ({note['source']}): "
                             + _clip(note["body"].replace("\n", " "), MAX_NOTE_CHARS))
            lines.append("")
    auth = '-H "Authorization: Bearer $OPSGATE_AGENT_TOKEN"'
    base = "$OPSGATE_API_URL/api/tickets/$OPSGATE_TICKET_ID"
    lines += [
        "## Calling the opsgate API", "",
        f"The API is at `$OPSGATE_API_URL` (now {api_url}). Your token is `$OPSGATE_AGENT_TOKEN`: it works only",
        "for your ticket and only while this task runs. Your ids: `$OPSGATE_AGENT_ID`, `$OPSGATE_TICKET_ID`,",
        "`$OPSGATE_TASK_ID`. Examples:", "",
        "```sh",
        "# the ticket with its notes, attachments and related records",
        f'curl -sS {auth} "{base}/context"',
        "# add a note (your evidence and progress)",
        f'curl -sS -X POST {auth} -H "Content-Type: application/json" "{base}/notes" \\',
        "     -d '{\"body\": \"what you found or did\", \"visibility\": \"internal\"}'",
        "# ask the requester a question (the ticket waits for the answer)",
        f'curl -sS -X POST {auth} -H "Content-Type: application/json" "{base}/request-info" \\',
        "     -d '{\"question\": \"...\"}'",
        "# change the ticket status, only once the work is verified",
        f'curl -sS -X POST {auth} -H "Content-Type: application/json" "{base}/status" \\',
        "     -d '{\"status\": \"resolved\", \"reason\": \"evidence and verification\"}'",
        "```", "",
        "Finishing your task does not change the ticket's status; only the status endpoint does.", "",
        "## Checkpoint protocol", "",
        "Keep `checkpoint.json` in this directory up to date (replace the whole file):", "",
        "```json",
        '{"status": "running", "progress": 40, "summary": "what is done, what is next"}',
        "```", "",
        "- `status`: `running`; `done` (with `progress` 100) when you are finished: the runner then completes",
        "  the task and ends your process; `pending_approval`, `awaiting_access`, `awaiting_user_response` or",
        "  `blocked` when you must wait (the runner stops your process; you are resumed later); `failed`.",
        "- `progress`: 0 to 100. `summary`: one or two sentences.", "",
        "## Steering", "",
        "People working the ticket may send guidance while you run. It appears in `AGENT_STEERING.md` and",
        "`agent_steering_inbox.json` in this directory (replaced atomically within seconds). Check them",
        "between steps, take pending items into account, then acknowledge each one:", "",
        "```sh",
        f'curl -sS -X POST {auth} "$OPSGATE_API_URL/api/agents/$OPSGATE_AGENT_ID/steering/<id>/ack"',
        "```", "",
    ]
    return "\n".join(lines)


def prepare(lay: Layout, *, task: dict[str, Any], ticket: dict[str, Any] | None, notes: list[dict[str, Any]],
            api_url: str) -> None:
    """Create the directories and write AGENTS.md, TASK.md, a fresh checkpoint and the output log."""
    lay.root.mkdir(parents=True, exist_ok=True)
    lay.log_path.parent.mkdir(parents=True, exist_ok=True)
    lay.state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(lay.agents_md, agents_md(task=task, ticket=ticket, notes=notes[-MAX_NOTES:], api_url=api_url))
    atomic_write(lay.prompt_file, task["prompt"].rstrip("\n") + "\n")
    atomic_write(lay.checkpoint, json.dumps({"status": "running", "progress": 0, "summary": ""}) + "\n")
    lay.log_path.touch()
    if not (lay.root / INBOX_JSON).exists():
        mirror(lay.root, task["agent_id"], [])
    link = lay.output_log
    tmp = link.with_name(f".{OUTPUT_LOG}.{task['id']}.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    os.symlink(os.path.relpath(lay.log_path, lay.root), tmp)
    os.replace(tmp, link)


def write_files(root: Path, files: dict[str, str]) -> None:
    """The harness's files (config homes, ...): absolute paths, or relative to the work dir."""
    for path, content in files.items():
        target = Path(path) if os.path.isabs(path) else root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, content)


def read_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint as a dict, or None while it is missing, partial or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
