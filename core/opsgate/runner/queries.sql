-- The runner: claims, leases, heartbeats, supervision writes and recovery.
-- Every status write is a compare-and-set on (status = 'running', runner_id = me),
-- so an operator stop (or a recovery by another runner) is never overwritten.

-- name: claim_lock
-- Serialises claims of every runner, so the count of running tasks is exact.
SELECT pg_advisory_xact_lock(7243001)

-- name: count_running
SELECT count(*) AS total, count(*) FILTER (WHERE runner_id = $1::text) AS mine
  FROM agent_tasks
 WHERE status = 'running'

-- name: get_max_concurrent
SELECT COALESCE((config ->> 'max_concurrent_agents')::int, $1::int)
  FROM agent_runtime_config
 WHERE id = 1

-- name: claim_tasks
WITH c AS (
    SELECT id
      FROM agent_tasks
     WHERE status = 'queued' AND harness = ANY($5::text[])
     ORDER BY id
       FOR UPDATE SKIP LOCKED
     LIMIT $2::int
)
UPDATE agent_tasks t
   SET status = 'running', runner_id = $1::text, host = $3::text, claimed_at = now(), heartbeat_at = now(),
       lease_expires_at = now() + make_interval(secs => $4::float8), attempts = t.attempts + 1,
       status_reason = NULL, exit_code = NULL, pid = NULL, updated_at = now()
  FROM c
 WHERE t.id = c.id
RETURNING t.*

-- name: mark_agents_running
UPDATE agents
   SET status = 'running', status_reason = NULL, started_at = COALESCE(started_at, now()), updated_at = now()
 WHERE id = ANY($1::bigint[]) AND status = 'queued'
RETURNING id

-- name: upsert_runner
INSERT INTO runners (id, hostname, pid, kind, running)
VALUES ($1::text, $2::text, $3::int, $4::text, $5::int)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), running = EXCLUDED.running, stopped_at = NULL
RETURNING heartbeat_at

-- name: stop_runner
UPDATE runners SET stopped_at = now(), running = 0 WHERE id = $1::text

-- name: renew_leases
-- The tasks this runner still owns; anything it supervises but is not listed was stopped or recovered.
UPDATE agent_tasks
   SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => $2::float8)
 WHERE runner_id = $1::text AND status = 'running'
RETURNING id, agent_id, ticket_id, EXTRACT(EPOCH FROM (now() - claimed_at)) AS claimed_seconds_ago

-- name: lapsed_tasks
-- Running tasks whose lease ran out and whose runner has no recent heartbeat (or is gone or stopped).
SELECT t.id, t.agent_id, t.ticket_id, t.runner_id, t.host, t.pid, t.attempts
  FROM agent_tasks t
  LEFT JOIN runners r ON r.id = t.runner_id
 WHERE t.status = 'running'
   AND (t.lease_expires_at IS NULL OR t.lease_expires_at < now())
   AND (r.id IS NULL OR r.stopped_at IS NOT NULL OR r.heartbeat_at < now() - make_interval(secs => $1::float8))
 ORDER BY t.id
   FOR UPDATE OF t SKIP LOCKED

-- name: recover_task
-- Fail ($3 = 'failed') or re-queue ($3 = 'queued') a running task of a lapsed (or stopping) runner.
UPDATE agent_tasks
   SET status = $3::text, status_reason = $4::text,
       runner_id = CASE WHEN $3::text = 'queued' THEN NULL ELSE runner_id END,
       pid = CASE WHEN $3::text = 'queued' THEN NULL ELSE pid END,
       finished_at = CASE WHEN $3::text = 'queued' THEN NULL ELSE now() END,
       lease_expires_at = NULL, updated_at = now()
 WHERE id = $1::bigint AND status = 'running' AND runner_id IS NOT DISTINCT FROM $2::text
RETURNING *

-- name: agent_to
-- The agent of a task follows it, only from running (never over stopped or terminated).
UPDATE agents
   SET status = $2::text, status_reason = $3::text, updated_at = now(),
       finished_at = CASE WHEN $2::text IN ('completed', 'failed', 'stopped', 'terminated') THEN now()
                          ELSE finished_at END
 WHERE id = $1::bigint AND status = 'running'
RETURNING *

-- name: task_started
UPDATE agent_tasks
   SET pid = $3::int, work_dir = $4::text, log_path = $5::text, started_at = now(), last_output_at = now(),
       updated_at = now()
 WHERE id = $1::bigint AND status = 'running' AND runner_id = $2::text
RETURNING id

-- name: task_output
UPDATE agent_tasks
   SET output_tail = $2::text, output_bytes = $3::bigint, last_output_at = $4::timestamptz, updated_at = now()
 WHERE id = $1::bigint

-- name: insert_progress
INSERT INTO agent_task_progress (task_id, kind, text, data)
SELECT $1::bigint, k, t, d::jsonb
  FROM unnest($2::text[], $3::text[], $4::text[]) AS x(k, t, d)

-- name: task_checkpoint
UPDATE agent_tasks
   SET progress = $2::smallint, summary = $3::text, checkpoint = $4::jsonb, updated_at = now()
 WHERE id = $1::bigint AND status = 'running' AND runner_id = $5::text

-- name: finish_task
UPDATE agent_tasks
   SET status = $3::text, status_reason = $4::text, exit_code = COALESCE($5::int, exit_code),
       progress = COALESCE($6::smallint, progress), finished_at = now(), lease_expires_at = NULL, updated_at = now()
 WHERE id = $1::bigint AND status = 'running' AND runner_id = $2::text
RETURNING *

-- name: record_exit
-- The exit code of a process whose task already left `running` (stopped, reported): status untouched.
UPDATE agent_tasks
   SET exit_code = $2::int, updated_at = now()
 WHERE id = $1::bigint AND exit_code IS NULL

-- name: task_states
SELECT id, status, runner_id
  FROM agent_tasks
 WHERE id = ANY($1::bigint[])
