-- Agents domain. Scope parameters: a classifications array and an owning-group
-- array, each NULL when the caller sees all of them.

-- name: get_config
SELECT config, version, updated_at, updated_by
  FROM agent_runtime_config
 WHERE id = 1

-- name: put_config
UPDATE agent_runtime_config
   SET config = $1::jsonb, version = version + 1, updated_at = now(), updated_by = $2::text
 WHERE id = 1
RETURNING config, version, updated_at, updated_by

-- name: set_ticket_agent
UPDATE tickets SET agent_id = $2::bigint, updated_at = now()
 WHERE id = $1::bigint

-- name: clear_ticket_agent
UPDATE tickets SET agent_id = NULL, updated_at = now()
 WHERE id = $1::bigint AND agent_id = $2::bigint

-- name: insert_agent
INSERT INTO agents (ticket_id, name, harness, model, profile_id, task_type, created_by, replaces_agent_id)
VALUES ($1::bigint, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::bigint)
RETURNING *

-- name: insert_task
INSERT INTO agent_tasks (agent_id, ticket_id, type, prompt, harness, model, model_base_url, timeout_minutes,
                         created_by)
VALUES ($1::bigint, $2::bigint, $3::text, $4::text, $5::text, $6::text, $7::text, $8::int, $9::text)
RETURNING *

-- name: get_agent
SELECT a.*, t.security_classification AS ticket_classification, t.owning_group AS ticket_owning_group,
       t.title AS ticket_title, t.status AS ticket_status
  FROM agents a
  LEFT JOIN tickets t ON t.id = a.ticket_id
 WHERE a.id = $1::bigint

-- name: lock_agent
SELECT a.*, t.security_classification AS ticket_classification, t.owning_group AS ticket_owning_group,
       t.title AS ticket_title, t.status AS ticket_status
  FROM agents a
  LEFT JOIN tickets t ON t.id = a.ticket_id
 WHERE a.id = $1::bigint
   FOR UPDATE OF a

-- name: list_agents
SELECT a.*, t.title AS ticket_title, t.status AS ticket_status,
       lt.id AS task_id, lt.status AS task_status, lt.progress AS task_progress, lt.summary AS task_summary
  FROM agents a
  LEFT JOIN tickets t ON t.id = a.ticket_id
  LEFT JOIN LATERAL (SELECT id, status, progress, summary FROM agent_tasks
                      WHERE agent_id = a.id ORDER BY id DESC LIMIT 1) lt ON true
 WHERE ($1::text[] IS NULL OR a.status = ANY($1::text[]))
   AND ($2::bigint IS NULL OR a.ticket_id = $2::bigint)
   AND (t.id IS NULL OR (($3::text[] IS NULL OR t.security_classification = ANY($3::text[]))
                         AND ($4::text[] IS NULL OR t.owning_group IS NULL OR t.owning_group = ANY($4::text[]))))
 ORDER BY a.id DESC
 LIMIT $5::int OFFSET $6::int

-- name: count_agents
SELECT count(*)
  FROM agents a
  LEFT JOIN tickets t ON t.id = a.ticket_id
 WHERE ($1::text[] IS NULL OR a.status = ANY($1::text[]))
   AND ($2::bigint IS NULL OR a.ticket_id = $2::bigint)
   AND (t.id IS NULL OR (($3::text[] IS NULL OR t.security_classification = ANY($3::text[]))
                         AND ($4::text[] IS NULL OR t.owning_group IS NULL OR t.owning_group = ANY($4::text[]))))

-- name: list_tasks
SELECT k.id, k.agent_id, k.ticket_id, k.type, k.status, k.status_reason, k.harness, k.model, k.timeout_minutes,
       k.created_by, k.runner_id, k.host, k.attempts, k.pid, k.work_dir, k.log_path, k.exit_code, k.progress,
       k.summary, k.checkpoint, k.output_bytes, k.last_output_at, k.heartbeat_at, k.lease_expires_at,
       k.stop_requested_by, k.created_at, k.updated_at, k.claimed_at, k.started_at, k.finished_at
  FROM agent_tasks k
  LEFT JOIN tickets t ON t.id = k.ticket_id
 WHERE ($1::text[] IS NULL OR k.status = ANY($1::text[]))
   AND ($2::bigint IS NULL OR k.agent_id = $2::bigint)
   AND ($3::bigint IS NULL OR k.ticket_id = $3::bigint)
   AND (t.id IS NULL OR (($4::text[] IS NULL OR t.security_classification = ANY($4::text[]))
                         AND ($5::text[] IS NULL OR t.owning_group IS NULL OR t.owning_group = ANY($5::text[]))))
 ORDER BY k.id DESC
 LIMIT $6::int OFFSET $7::int

-- name: get_task
SELECT k.*, t.security_classification AS ticket_classification, t.owning_group AS ticket_owning_group
  FROM agent_tasks k
  LEFT JOIN tickets t ON t.id = k.ticket_id
 WHERE k.id = $1::bigint

-- name: agent_tasks
SELECT id, agent_id, ticket_id, type, status, status_reason, harness, model, timeout_minutes, created_by,
       runner_id, host, attempts, pid, work_dir, log_path, exit_code, progress, summary, checkpoint, output_bytes,
       last_output_at, heartbeat_at, lease_expires_at, stop_requested_by, created_at, updated_at, claimed_at,
       started_at, finished_at
  FROM agent_tasks
 WHERE agent_id = $1::bigint
 ORDER BY id DESC
 LIMIT $2::int

-- name: latest_task
SELECT *
  FROM agent_tasks
 WHERE agent_id = $1::bigint
 ORDER BY id DESC
 LIMIT 1

-- name: task_progress
SELECT id, created_at, kind, text, data
  FROM (SELECT * FROM agent_task_progress WHERE task_id = $1::bigint ORDER BY id DESC LIMIT $2::int) p
 ORDER BY id

-- name: agent_audit
SELECT id, created_at, actor, actor_kind, action, category, level, target_type, target_id, ticket_id, details
  FROM audit_log
 WHERE agent_id = $1::bigint
 ORDER BY created_at DESC, id DESC
 LIMIT $2::int

-- name: end_agent
-- Compare-and-set: any live status -> a final one ($2). Zero rows: already final.
UPDATE agents
   SET status = $2::text, status_reason = $3::text, finished_at = now(), updated_at = now()
 WHERE id = $1::bigint
   AND status IN ('queued', 'running', 'pending_approval', 'awaiting_access', 'awaiting_user_response', 'blocked')
RETURNING *

-- name: end_active_tasks
UPDATE agent_tasks
   SET status = $2::text, status_reason = $3::text, stop_requested_by = $4::text, finished_at = now(),
       updated_at = now(), lease_expires_at = NULL
 WHERE agent_id = $1::bigint AND status IN ('queued', 'running')
RETURNING id, status, runner_id, host, pid

-- name: requeue_agent
-- Compare-and-set for a continuation: a waiting or ended (not terminated) agent becomes queued again.
UPDATE agents
   SET status = 'queued', status_reason = $2::text, finished_at = NULL, updated_at = now()
 WHERE id = $1::bigint
   AND status IN ('pending_approval', 'awaiting_access', 'awaiting_user_response', 'blocked', 'completed',
                  'failed', 'stopped')
RETURNING *

-- name: report_task
-- Legacy status update of a running task: a wait state, completed or failed ($2), or progress only ($2 = running).
UPDATE agent_tasks
   SET status = $2::text,
       status_reason = COALESCE($3::text, status_reason),
       progress = COALESCE($4::smallint, progress),
       summary = COALESCE($5::text, summary),
       finished_at = CASE WHEN $2::text = 'running' THEN finished_at ELSE now() END,
       lease_expires_at = CASE WHEN $2::text = 'running' THEN lease_expires_at ELSE NULL END,
       updated_at = now()
 WHERE agent_id = $1::bigint AND status = 'running'
RETURNING *

-- name: report_agent
UPDATE agents
   SET status = $2::text, status_reason = COALESCE($3::text, status_reason), updated_at = now(),
       finished_at = CASE WHEN $2::text IN ('completed', 'failed') THEN now() ELSE finished_at END
 WHERE id = $1::bigint AND status = 'running'
RETURNING *

-- name: agent_counts
SELECT status, count(*) AS n
  FROM agents
 GROUP BY status

-- name: task_counts
SELECT status, count(*) AS n
  FROM agent_tasks
 GROUP BY status

-- name: task_durations
SELECT count(*) FILTER (WHERE status = 'completed') AS completed,
       avg(EXTRACT(EPOCH FROM (finished_at - started_at))) FILTER (WHERE status = 'completed') AS avg_completed,
       avg(EXTRACT(EPOCH FROM (finished_at - started_at))) AS avg_all,
       avg(EXTRACT(EPOCH FROM (started_at - created_at))) AS avg_queue_wait
  FROM agent_tasks
 WHERE started_at IS NOT NULL AND finished_at IS NOT NULL

-- name: running_tasks
SELECT id, agent_id, ticket_id, harness, model, runner_id, host, pid, work_dir, started_at, heartbeat_at,
       lease_expires_at, last_output_at, output_bytes
  FROM agent_tasks
 WHERE status = 'running'
 ORDER BY id

-- name: list_runners
SELECT id, hostname, pid, kind, started_at, heartbeat_at, stopped_at, running,
       EXTRACT(EPOCH FROM (now() - heartbeat_at)) AS heartbeat_age_seconds
  FROM runners
 WHERE stopped_at IS NULL OR stopped_at > now() - interval '1 hour'
 ORDER BY started_at DESC
 LIMIT 100

-- name: ticket_scope
SELECT security_classification, owning_group
  FROM tickets
 WHERE id = $1::bigint

-- name: ticket_tasks
-- The newest $2 tasks of a ticket (the ticket context), each with the last $3
-- characters of its output tail; $4: only this agent's tasks (an agent caller), NULL: all.
SELECT id, agent_id, ticket_id, type, status, status_reason, harness, model, timeout_minutes, created_by,
       runner_id, host, attempts, pid, work_dir, log_path, exit_code, progress, summary, checkpoint, output_bytes,
       last_output_at, heartbeat_at, lease_expires_at, stop_requested_by, created_at, updated_at, claimed_at,
       started_at, finished_at, right(output_tail, $3::int) AS log_tail
  FROM agent_tasks
 WHERE ticket_id = $1::bigint
   AND ($4::bigint IS NULL OR agent_id = $4::bigint)
 ORDER BY id DESC
 LIMIT $2::int
