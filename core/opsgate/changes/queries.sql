-- Approval gates. Reads return the stored row plus `effective_status`
-- ('expired' once expires_at has passed on a pending/approved gate, before the
-- sweeper writes it) and timings computed on the database clock. Every
-- transition is one compare-and-set UPDATE ... WHERE status = $expected.

-- name: insert_change
INSERT INTO change_requests (ticket_id, agent_id, kind, action, target, command, reason, risk_level,
                             approval_policy, digest, requested_by, requested_by_name, requested_by_kind,
                             spawned_by, expires_at)
VALUES ($1::bigint, $2::bigint, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text,
        $9::jsonb, $10::text, $11::text, $12::text, $13::text,
        $14::text, now() + make_interval(secs => $15::integer))
RETURNING *,
          status AS effective_status,
          NULL::integer AS waiting_seconds,
          GREATEST(0, floor(extract(epoch FROM expires_at - now())))::integer AS seconds_until_expiry

-- name: get_change
-- With the ticket's classification and owning group for the row-level check.
SELECT c.*,
       CASE WHEN c.status IN ('pending', 'approved') AND c.expires_at <= now() THEN 'expired'
            ELSE c.status END AS effective_status,
       CASE WHEN c.status = 'pending' THEN floor(extract(epoch FROM now() - c.created_at))::integer
            END AS waiting_seconds,
       CASE WHEN c.status IN ('pending', 'approved')
            THEN GREATEST(0, floor(extract(epoch FROM c.expires_at - now())))::integer END AS seconds_until_expiry,
       t.security_classification AS ticket_classification, t.owning_group AS ticket_owning_group,
       t.status AS ticket_status, ar.id AS access_request_id
  FROM change_requests c
  JOIN tickets t ON t.id = c.ticket_id
  LEFT JOIN access_requests ar ON ar.change_id = c.id
 WHERE c.id = $1::bigint

-- name: lock_change
-- Inside the completing transaction: the row as stored, locked, with expiry on the database clock.
SELECT c.*, (c.expires_at <= now()) AS past_expiry
  FROM change_requests c
 WHERE c.id = $1::bigint
   FOR UPDATE

-- name: list_changes
-- $1 allowed classifications, $2 groups (NULL: every group), $3 ticket, $4 agent,
-- $5 effective statuses (empty: all), $6 limit, $7 offset.
SELECT c.*,
       CASE WHEN c.status IN ('pending', 'approved') AND c.expires_at <= now() THEN 'expired'
            ELSE c.status END AS effective_status,
       CASE WHEN c.status = 'pending' THEN floor(extract(epoch FROM now() - c.created_at))::integer
            END AS waiting_seconds,
       CASE WHEN c.status IN ('pending', 'approved')
            THEN GREATEST(0, floor(extract(epoch FROM c.expires_at - now())))::integer END AS seconds_until_expiry,
       ar.id AS access_request_id
  FROM change_requests c
  JOIN tickets t ON t.id = c.ticket_id
  LEFT JOIN access_requests ar ON ar.change_id = c.id
 WHERE t.security_classification = ANY ($1::text[])
   AND ($2::text[] IS NULL OR t.owning_group IS NULL OR t.owning_group = ANY ($2::text[]))
   AND ($3::bigint IS NULL OR c.ticket_id = $3::bigint)
   AND ($4::bigint IS NULL OR c.agent_id = $4::bigint)
   AND (cardinality($5::text[]) = 0
        OR (CASE WHEN c.status IN ('pending', 'approved') AND c.expires_at <= now() THEN 'expired'
                 ELSE c.status END) = ANY ($5::text[]))
 ORDER BY c.id DESC
 LIMIT $6::integer OFFSET $7::integer

-- name: count_changes
SELECT count(*)
  FROM change_requests c
  JOIN tickets t ON t.id = c.ticket_id
 WHERE t.security_classification = ANY ($1::text[])
   AND ($2::text[] IS NULL OR t.owning_group IS NULL OR t.owning_group = ANY ($2::text[]))
   AND ($3::bigint IS NULL OR c.ticket_id = $3::bigint)
   AND ($4::bigint IS NULL OR c.agent_id = $4::bigint)
   AND (cardinality($5::text[]) = 0
        OR (CASE WHEN c.status IN ('pending', 'approved') AND c.expires_at <= now() THEN 'expired'
                 ELSE c.status END) = ANY ($5::text[]))

-- name: list_pending
-- Pending and not expired, oldest first (the approval queue).
SELECT c.*,
       'pending'::text AS effective_status,
       floor(extract(epoch FROM now() - c.created_at))::integer AS waiting_seconds,
       GREATEST(0, floor(extract(epoch FROM c.expires_at - now())))::integer AS seconds_until_expiry,
       ar.id AS access_request_id
  FROM change_requests c
  JOIN tickets t ON t.id = c.ticket_id
  LEFT JOIN access_requests ar ON ar.change_id = c.id
 WHERE c.status = 'pending' AND c.expires_at > now()
   AND t.security_classification = ANY ($1::text[])
   AND ($2::text[] IS NULL OR t.owning_group IS NULL OR t.owning_group = ANY ($2::text[]))
   AND ($3::bigint IS NULL OR c.ticket_id = $3::bigint)
 ORDER BY c.created_at, c.id
 LIMIT $4::integer

-- name: change_stats
-- One row per (effective status, risk level) with counts and timings.
SELECT CASE WHEN c.status IN ('pending', 'approved') AND c.expires_at <= now() THEN 'expired'
            ELSE c.status END AS status,
       c.risk_level,
       count(*) AS n,
       count(*) FILTER (WHERE c.status IN ('pending', 'approved') AND c.expires_at <= now()) AS unswept,
       coalesce(sum(extract(epoch FROM c.decided_at - c.created_at))
                FILTER (WHERE c.decided_at IS NOT NULL), 0)::float8 AS decision_seconds,
       count(*) FILTER (WHERE c.decided_at IS NOT NULL) AS decided,
       max(floor(extract(epoch FROM now() - c.created_at)))
           FILTER (WHERE c.status = 'pending' AND c.expires_at > now())::integer AS oldest_pending_seconds,
       count(*) FILTER (WHERE c.auto_approved) AS auto_approved
  FROM change_requests c
  JOIN tickets t ON t.id = c.ticket_id
 WHERE t.security_classification = ANY ($1::text[])
   AND ($2::text[] IS NULL OR t.owning_group IS NULL OR t.owning_group = ANY ($2::text[]))
   AND ($3::bigint IS NULL OR c.ticket_id = $3::bigint)
 GROUP BY 1, 2

-- name: approve_change
-- pending -> approved, only while not expired. $5 approval_mode, $6 auto_approved,
-- $7 seconds an approved gate stays completable.
UPDATE change_requests
   SET status = 'approved', decided_by = $2::text, decided_for = $3::text, decision_reason = $4::text,
       decided_at = now(), approval_mode = $5::text, auto_approved = $6::boolean,
       expires_at = now() + make_interval(secs => $7::integer), updated_at = now()
 WHERE id = $1::bigint AND status = 'pending' AND expires_at > now()
RETURNING *

-- name: reject_change
UPDATE change_requests
   SET status = 'rejected', decided_by = $2::text, decided_for = $3::text, decision_reason = $4::text,
       decided_at = now(), updated_at = now()
 WHERE id = $1::bigint AND status = 'pending' AND expires_at > now()
RETURNING *

-- name: cancel_change
UPDATE change_requests
   SET status = 'cancelled', decided_by = $2::text, decision_reason = $3::text, decided_at = now(),
       updated_at = now()
 WHERE id = $1::bigint AND status = 'pending'
RETURNING *

-- name: finish_change
-- approved -> completed | failed ($2), only while not expired and only for the
-- digest that was approved ($6).
UPDATE change_requests
   SET status = $2::text, completed_by = $3::text, completed_at = now(), result = $4::text,
       evidence = $5::jsonb, updated_at = now()
 WHERE id = $1::bigint AND status = 'approved' AND expires_at > now() AND digest = $6::text
RETURNING *

-- name: expire_change
-- The sweeper: pending/approved ($2) -> expired once expires_at has passed.
UPDATE change_requests
   SET status = 'expired', updated_at = now()
 WHERE id = $1::bigint AND status = $2::text AND expires_at <= now()
RETURNING *

-- name: due_changes
-- Open gates past their expiry; each is then expired by a compare-and-set, so sweepers may overlap.
SELECT id, status
  FROM change_requests
 WHERE status IN ('pending', 'approved') AND expires_at <= now()
 ORDER BY expires_at
 LIMIT $1::integer

-- name: auto_completable
-- Approved, unexpired gates of an agent whose policy allows supervisor completion.
SELECT id
  FROM change_requests
 WHERE agent_id = $1::bigint AND status = 'approved' AND expires_at > now()
   AND coalesce((approval_policy ->> 'auto_complete')::boolean, true)
   AND NOT coalesce((approval_policy ->> 'manual_completion_required')::boolean, false)
 ORDER BY id

-- name: agent_spawner
-- Who created the agent (the human or service that spawned it), for separation of duties.
SELECT created_by
  FROM agents
 WHERE id = $1::bigint

-- name: add_gate_note
-- A control-plane timeline note on the gate's ticket plus its ticket_note_added event.
WITH n AS (
    INSERT INTO ticket_notes (ticket_id, kind, body, author, source, visibility, agent_id, details)
    VALUES ($1::bigint, $2::text, $3::text, $4::text, 'control-plane', 'internal', $5::bigint, $6::jsonb)
    RETURNING *
), e AS (
    INSERT INTO event_log (kind, category, level, actor, ticket_id, agent_id, payload)
    SELECT 'ticket_note_added', 'ticket', 'info', $4::text, n.ticket_id, n.agent_id,
           jsonb_build_object('ticket_id', n.ticket_id, 'note_id', n.id, 'kind', n.kind, 'source', n.source,
                              'visibility', n.visibility, 'author', n.author, 'steer', false)
      FROM n
    RETURNING id
), nt AS (
    SELECT pg_notify($7::text, e.id::text) FROM e
)
SELECT n.id, n.created_at, (SELECT count(*) FROM nt) AS notified
  FROM n

-- name: lock_agent
-- The linked agent, locked for the resume decision (serialises racing approvals).
SELECT id, status, ticket_id
  FROM agents
 WHERE id = $1::bigint
   FOR UPDATE

-- name: add_steering_event
-- Deliver an approval to a queued/running agent through its steering inbox.
INSERT INTO agent_steering_events (agent_id, ticket_id, note_id, kind, body, author, source)
VALUES ($1::bigint, $2::bigint, $3::bigint, $4::text, $5::text, $6::text, 'control-plane')
ON CONFLICT (agent_id, note_id) DO NOTHING
RETURNING id

-- name: completed_tasks_with_approved_gates
-- Auto-completion catch-up: agents whose latest task completed after one of
-- their gates was approved, and that still have approved, open gates.
SELECT DISTINCT ON (c.agent_id) c.agent_id, t.id AS task_id, coalesce(t.summary, '') AS summary
  FROM change_requests c
  JOIN agent_tasks t ON t.agent_id = c.agent_id AND t.status = 'completed' AND t.finished_at >= c.decided_at
 WHERE c.status = 'approved' AND c.expires_at > now()
   AND coalesce((c.approval_policy ->> 'auto_complete')::boolean, true)
   AND NOT coalesce((c.approval_policy ->> 'manual_completion_required')::boolean, false)
   AND NOT EXISTS (SELECT 1 FROM agent_tasks q
                    WHERE q.agent_id = c.agent_id AND q.status IN ('queued', 'running'))
 ORDER BY c.agent_id, t.id DESC
 LIMIT $1::integer
