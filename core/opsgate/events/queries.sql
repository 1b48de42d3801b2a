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

-- name: notify_events
-- After the writing transaction committed: wake listeners for these event ids
-- (opsgate.events.notifier). A notify-only transaction that commits
-- asynchronously: the event rows themselves are already durable.
SELECT set_config('synchronous_commit', 'off', true), pg_notify($1::text, x::text)
  FROM unnest($2::bigint[]) AS x

-- name: notify_events_in_transaction
-- When the caller composes a ticket write into its own transaction: a plain
-- NOTIFY, delivered when that transaction commits.
SELECT pg_notify($1::text, x::text)
  FROM unnest($2::bigint[]) AS x
