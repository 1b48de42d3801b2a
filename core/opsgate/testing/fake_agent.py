"""A fake agent CLI for fast runner tests (standard library only; run by path, not imported).

    python fake_agent.py <prompt file>

It plays the `fake:` lines of the prompt, in order:

    fake: print <text>                 print a line
    fake: event <kind> <text>          print a progress line the FakeHarness parses
    fake: sleep <seconds>
    fake: checkpoint <status> <progress> [summary]
    fake: note <body>                  POST a note to its ticket with its agent token
    fake: record <path>                append {"task_id", "pid", "event": "start"|"end", "t"} lines to <path>
    fake: env <path>                   write its environment to <path> (relative to the work dir)
    fake: wait-steering <seconds>      wait for a pending steering event; write steering_seen.json
    fake: ignore-term                  ignore SIGTERM (the runner must SIGKILL the group)
    fake: spawn-child <seconds>        start a background child in its process group
    fake: fail <text>                  print a line FakeHarness.detect_failure reports
    fake: exit <code>

Without any `fake:` line it prints a line and writes a done checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

TASK_ID = os.environ.get("OPSGATE_TASK_ID", "?")
_records: list[str] = []


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def record(path: str, event: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"task_id": int(TASK_ID), "pid": os.getpid(), "event": event, "t": time.time()}) + "\n")


def checkpoint(status: str, progress: str, summary: str) -> None:
    tmp = f".checkpoint.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"status": status, "progress": int(progress), "summary": summary}, fh)
    os.replace(tmp, "checkpoint.json")


def note(body: str) -> None:
    import urllib.request  # imported only when used: keeps the fake agent's start-up fast

    url = f"{os.environ['OPSGATE_API_URL']}/api/tickets/{os.environ['OPSGATE_TICKET_ID']}/notes"
    request = urllib.request.Request(url, data=json.dumps({"body": body}).encode(), method="POST", headers={
        "Authorization": f"Bearer {os.environ['OPSGATE_AGENT_TOKEN']}", "Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        say(f"note posted: HTTP {response.status}")


def wait_steering(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("agent_steering_inbox.json", encoding="utf-8") as fh:
                inbox = json.load(fh)
        except (OSError, ValueError):
            inbox = {}
        if inbox.get("pending"):
            with open("steering_seen.json", "w", encoding="utf-8") as fh:
                json.dump({"seen_at": time.time(), "inbox": inbox}, fh)
            say("EVENT " + json.dumps({"kind": "message", "text": "steering received"}))
            return
        time.sleep(0.05)
    say("no steering arrived")


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as fh:
        lines = [ln.strip()[5:].strip() for ln in fh if ln.strip().lower().startswith("fake:")]
    if not lines:
        lines = ["print hello from the fake agent", "checkpoint done 100 finished"]
    try:
        for line in lines:
            verb, _, rest = line.partition(" ")
            if verb == "print":
                say(rest)
            elif verb == "event":
                kind, _, text = rest.partition(" ")
                say("EVENT " + json.dumps({"kind": kind, "text": text}))
            elif verb == "sleep":
                time.sleep(float(rest))
            elif verb == "checkpoint":
                parts = rest.split(" ", 2)
                checkpoint(parts[0], parts[1], parts[2] if len(parts) > 2 else "")
            elif verb == "note":
                note(rest)
            elif verb == "record":
                record(rest, "start")
                _records.append(rest)
            elif verb == "env":
                with open(rest, "w", encoding="utf-8") as fh:
                    fh.write("\n".join(f"{k}={v}" for k, v in sorted(os.environ.items())) + "\n")
            elif verb == "wait-steering":
                wait_steering(float(rest or 10))
            elif verb == "ignore-term":
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            elif verb == "spawn-child":
                import subprocess

                subprocess.Popen(["sleep", rest or "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            elif verb == "fail":
                say(f"FAKE-FAILURE {rest}")
            elif verb == "exit":
                return int(rest)
            else:
                say(f"unknown fake command: {line}")
        return 0
    finally:
        for path in _records:
            record(path, "end")


if __name__ == "__main__":
    sys.exit(main())
