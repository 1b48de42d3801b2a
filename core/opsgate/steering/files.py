"""The steering files in an agent's work dir, replaced atomically.

`agent_steering_inbox.json` is the machine-readable list; `AGENT_STEERING.md`
the same for a human (or a model) to read. Both are written to a temporary
file in the same directory and renamed over the old one, so an agent never
reads a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

INBOX_JSON = "agent_steering_inbox.json"
INBOX_MD = "AGENT_STEERING.md"


def atomic_write(path: str | os.PathLike[str], content: str) -> None:
    """Write `content` to `path` through a temporary file and `os.replace`."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def inbox(agent_id: int, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    items = [{
        "id": e["id"], "note_id": e["note_id"], "ticket_id": e["ticket_id"], "kind": e["kind"], "body": e["body"],
        "author": e["author"], "source": e["source"], "created_at": _iso(e["created_at"]),
        "acknowledged": e["acknowledged_at"] is not None, "acknowledged_at": _iso(e["acknowledged_at"]),
    } for e in events]
    return {"agent_id": agent_id, "pending": sum(1 for i in items if not i["acknowledged"]), "events": items}


def markdown(agent_id: int, events: Sequence[dict[str, Any]]) -> str:
    pending = [e for e in events if e["acknowledged_at"] is None]
    lines = [
        "# Steering from humans", "",
        "New guidance from people working this ticket. It does not interrupt your work: take it into account,",
        "then acknowledge each item with",
        "`curl -sS -X POST -H \"Authorization: Bearer $OPSGATE_AGENT_TOKEN\" "
        "\"$OPSGATE_API_URL/api/agents/$OPSGATE_AGENT_ID/steering/<id>/ack\"`.", "",
        f"Pending: {len(pending)} of {len(events)}.", "",
    ]
    for e in events:
        state = "acknowledged" if e["acknowledged_at"] is not None else "PENDING"
        lines.append(f"## Steering {e['id']} ({state}) from {e['author']} via {e['source']}, "
                     f"{_iso(e['created_at'])}")
        lines.append("")
        lines.append(str(e["body"]))
        lines.append("")
    return "\n".join(lines)


def mirror(work_dir: str | os.PathLike[str], agent_id: int, events: Sequence[dict[str, Any]]) -> None:
    """Replace both steering files in `work_dir`: the Markdown first, so once the JSON inbox lists an
    event the Markdown already shows it."""
    atomic_write(Path(work_dir) / INBOX_MD, markdown(agent_id, events))
    atomic_write(Path(work_dir) / INBOX_JSON, json.dumps(inbox(agent_id, events), indent=2) + "\n")
