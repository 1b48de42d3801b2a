-- Reads of the event listener (one dedicated LISTEN connection per process).

-- name: events_by_id
SELECT id, kind, category, level, actor, ticket_id, agent_id, payload, created_at
  FROM event_log
 WHERE id = ANY($1::bigint[])
 ORDER BY id

-- name: events_after
SELECT id, kind, category, level, actor, ticket_id, agent_id, payload, created_at
  FROM event_log
 WHERE id > $1::bigint
 ORDER BY id
 LIMIT $2::int

-- name: last_event_id
SELECT COALESCE(max(id), 0) FROM event_log
