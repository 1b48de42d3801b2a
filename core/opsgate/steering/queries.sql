-- Steering events: one per (agent, note), so relaying is idempotent and any
-- process (API replica or runner) may do it.

-- name: steer_for_note
-- A note ($1) from a human/provider source ($2) reaches every live agent of its ticket but its author.
INSERT INTO agent_steering_events (agent_id, ticket_id, note_id, kind, body, author, source, created_at)
SELECT a.id, n.ticket_id, n.id, 'note', n.body, n.author, n.source, n.created_at
  FROM ticket_notes n
  JOIN agents a ON a.ticket_id = n.ticket_id
 WHERE n.id = $1::bigint
   AND n.source = ANY($2::text[])
   AND (n.agent_id IS NULL OR n.agent_id <> a.id)
   AND a.status IN ('queued', 'running', 'pending_approval', 'awaiting_access', 'awaiting_user_response', 'blocked')
ON CONFLICT (agent_id, note_id) DO NOTHING
RETURNING id, agent_id, ticket_id, note_id

-- name: backfill_agent
-- Notes on the agent's ticket since it was created that were not relayed yet (a missed NOTIFY).
INSERT INTO agent_steering_events (agent_id, ticket_id, note_id, kind, body, author, source, created_at)
SELECT a.id, n.ticket_id, n.id, 'note', n.body, n.author, n.source, n.created_at
  FROM agents a
  JOIN ticket_notes n ON n.ticket_id = a.ticket_id
 WHERE a.id = $1::bigint
   AND n.created_at >= a.created_at
   AND n.source = ANY($2::text[])
   AND (n.agent_id IS NULL OR n.agent_id <> a.id)
   AND a.status IN ('queued', 'running', 'pending_approval', 'awaiting_access', 'awaiting_user_response', 'blocked')
ON CONFLICT (agent_id, note_id) DO NOTHING
RETURNING id, agent_id, ticket_id, note_id

-- name: list_for_agent
SELECT *
  FROM (SELECT * FROM agent_steering_events WHERE agent_id = $1::bigint ORDER BY id DESC LIMIT $2::int) s
 ORDER BY id

-- name: count_pending
SELECT count(*)
  FROM agent_steering_events
 WHERE agent_id = $1::bigint AND acknowledged_at IS NULL

-- name: mark_delivered
UPDATE agent_steering_events
   SET delivered_at = now()
 WHERE id = ANY($1::bigint[]) AND delivered_at IS NULL

-- name: ack
UPDATE agent_steering_events
   SET acknowledged_at = now(), acknowledged_by = $3::text
 WHERE agent_id = $1::bigint AND id = $2::bigint AND acknowledged_at IS NULL
RETURNING *

-- name: get_event
SELECT *
  FROM agent_steering_events
 WHERE agent_id = $1::bigint AND id = $2::bigint
