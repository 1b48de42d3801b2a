-- name: insert_event
INSERT INTO event_log (kind, category, level, actor, ticket_id, agent_id, payload)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::bigint, $6::bigint, $7::jsonb)
RETURNING id, created_at

-- name: notify_event
SELECT pg_notify($1::text, $2::text)

-- name: get_event
SELECT id, kind, category, level, actor, ticket_id, agent_id, payload, created_at
  FROM event_log
 WHERE id = $1::bigint
