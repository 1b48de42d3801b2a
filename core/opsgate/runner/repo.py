"""SQL of the runner (claims, leases, heartbeats, supervision writes, recovery)."""

from __future__ import annotations

from opsgate.db import sql

_Q = sql.load(__package__)
CLAIM_LOCK = _Q["claim_lock"]
COUNT_RUNNING = _Q["count_running"]
GET_MAX_CONCURRENT = _Q["get_max_concurrent"]
CLAIM_TASKS = _Q["claim_tasks"]
MARK_AGENTS_RUNNING = _Q["mark_agents_running"]
UPSERT_RUNNER = _Q["upsert_runner"]
STOP_RUNNER = _Q["stop_runner"]
RENEW_LEASES = _Q["renew_leases"]
LAPSED_TASKS = _Q["lapsed_tasks"]
RECOVER_TASK = _Q["recover_task"]
AGENT_TO = _Q["agent_to"]
TASK_STARTED = _Q["task_started"]
TASK_OUTPUT = _Q["task_output"]
INSERT_PROGRESS = _Q["insert_progress"]
TASK_CHECKPOINT = _Q["task_checkpoint"]
FINISH_TASK = _Q["finish_task"]
RECORD_EXIT = _Q["record_exit"]
TASK_STATES = _Q["task_states"]
