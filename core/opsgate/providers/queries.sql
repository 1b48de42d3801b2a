-- Provider sync: the outbox (outbound), the pull cursors and the imported
-- case-log keys (inbound). Claims use leases taken with FOR UPDATE SKIP
-- LOCKED, so any number of processes may dispatch and pull at once.

-- name: claim_due
-- The head (lowest open id) of each ticket's queue, when it is due and not
-- claimed, leased to $1 for $3 seconds; at most $2 rows. A failed create
-- blocks its ticket's queue (nothing can reach a record that does not
-- exist); a failed note/status/assignment does not.
WITH heads AS (
    SELECT DISTINCT ON (ticket_id) id
      FROM provider_outbox
     WHERE status = 'pending' OR (status = 'failed' AND op = 'create')
     ORDER BY ticket_id, id
), due AS (
    SELECT o.id
      FROM provider_outbox o
      JOIN heads h ON h.id = o.id
     WHERE o.status = 'pending'
       AND o.next_attempt_at <= now()
       AND (o.claimed_until IS NULL OR o.claimed_until < now())
       AND ($4::bigint IS NULL OR o.ticket_id = $4::bigint)
     ORDER BY o.next_attempt_at, o.id
     LIMIT $2::integer
       FOR UPDATE OF o SKIP LOCKED
)
UPDATE provider_outbox o
   SET claimed_by = $1::text,
       claimed_until = now() + make_interval(secs => $3::double precision),
       updated_at = now()
  FROM due
 WHERE o.id = due.id
RETURNING o.*

-- name: outbox_delivered
-- Only by the claimant; zero rows means the claim was lost (lease lapsed or
-- the inbound sync settled the row first).
UPDATE provider_outbox
   SET status = $3::text,
       attempts = attempts + 1,
       delivered_at = now(),
       last_error = $4::text,
       claimed_by = NULL,
       claimed_until = NULL,
       updated_at = now()
 WHERE id = $1::bigint AND claimed_by = $2::text
RETURNING *

-- name: outbox_retry
UPDATE provider_outbox
   SET attempts = attempts + 1,
       next_attempt_at = now() + make_interval(secs => $3::double precision),
       last_error = $4::text,
       claimed_by = NULL,
       claimed_until = NULL,
       updated_at = now()
 WHERE id = $1::bigint AND claimed_by = $2::text
RETURNING *

-- name: outbox_failed
UPDATE provider_outbox
   SET status = 'failed',
       attempts = attempts + $3::integer,
       last_error = $4::text,
       claimed_by = NULL,
       claimed_until = NULL,
       updated_at = now()
 WHERE id = $1::bigint AND claimed_by = $2::text
RETURNING *

-- name: outbox_release
-- Give a claim back untouched (shutdown in the middle of a batch).
UPDATE provider_outbox
   SET claimed_by = NULL, claimed_until = NULL, updated_at = now()
 WHERE id = $1::bigint AND claimed_by = $2::text

-- name: outbox_settle_create
-- The inbound sync found the remote ticket a create produced (by its marker):
-- the create row is done, whoever holds it.
UPDATE provider_outbox
   SET status = 'delivered', delivered_at = now(), claimed_by = NULL, claimed_until = NULL,
       last_error = NULL, updated_at = now()
 WHERE ticket_id = $1::bigint AND op = 'create' AND status IN ('pending', 'failed')

-- name: outbox_requeue_create
-- push-provider on a create that failed: try again from scratch.
UPDATE provider_outbox
   SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL, claimed_by = NULL,
       claimed_until = NULL, updated_at = now()
 WHERE ticket_id = $1::bigint AND provider = $2::text AND op = 'create' AND status = 'failed'
RETURNING id

-- name: outbox_enqueue
INSERT INTO provider_outbox (ticket_id, provider, op, payload)
VALUES ($1::bigint, $2::text, $3::text, $4::jsonb)
RETURNING *

-- name: outbox_enqueue_missing_creates
-- Safety net for writers that mark a ticket pending_create without queueing
-- its create (and for rows lost to a manual cleanup): queue one.
INSERT INTO provider_outbox (ticket_id, provider, op, payload)
SELECT t.id, t.provider, 'create',
       jsonb_build_object('marker', 'opsgate-' || t.id || '-' || substr(md5(random()::text || clock_timestamp()::text), 1, 12))
  FROM tickets t
 WHERE t.provider_sync_status = 'pending_create'
   AND t.provider <> 'local'
   AND t.provider_ref IS NULL
   AND NOT EXISTS (SELECT 1 FROM provider_outbox o WHERE o.ticket_id = t.id AND o.op = 'create')
 LIMIT $1::integer
RETURNING id, ticket_id

-- name: outbox_for_ticket
SELECT *
  FROM provider_outbox
 WHERE ticket_id = $1::bigint
 ORDER BY id

-- name: outbox_open_count
SELECT count(*)
  FROM provider_outbox
 WHERE ticket_id = $1::bigint AND provider = $2::text
   AND (status = 'pending' OR (status = 'failed' AND op = 'create'))

-- name: outbox_create_by_marker
SELECT ticket_id
  FROM provider_outbox
 WHERE provider = $1::text AND op = 'create' AND payload ->> 'marker' = $2::text
 ORDER BY id
 LIMIT 1

-- name: outbox_echo_candidates
-- Notes opsgate queued for this ticket that no case-log entry has been
-- recognised as yet, oldest first.
SELECT id, op, status, payload
  FROM provider_outbox
 WHERE ticket_id = $1::bigint AND provider = $2::text AND op IN ('note', 'assignment')
   AND echo_key IS NULL AND status IN ('pending', 'delivered')
 ORDER BY id

-- name: outbox_set_echo
UPDATE provider_outbox
   SET echo_key = $2::text, updated_at = now()
 WHERE id = $1::bigint AND echo_key IS NULL
RETURNING id

-- name: outbox_stats
SELECT provider, op, status, count(*) AS n
  FROM provider_outbox
 GROUP BY provider, op, status
 ORDER BY provider, op, status

-- name: ticket_for_delivery
SELECT id, title, description, ticket_class, status, priority, assignee, assignee_team, owning_group,
       requester_name, requester_email, provider, provider_ref, provider_class, provider_sync_status,
       provider_payload
  FROM tickets
 WHERE id = $1::bigint

-- name: ticket_link_remote
-- Record the remote ticket on the canonical one, once: only while no remote
-- ref is known. Zero rows: someone linked it first (compare the refs).
UPDATE tickets
   SET provider_ref = $3::text,
       provider_class = $4::text,
       provider_url = $5::text,
       provider_payload = provider_payload || $6::jsonb,
       provider_sync_status = 'synced',
       provider_last_error = NULL
 WHERE id = $1::bigint AND provider = $2::text AND provider_ref IS NULL
RETURNING id, provider_ref, provider_class

-- name: ticket_sync_state
-- After a delivery attempt: $2 the new provider_sync_status (NULL keeps it),
-- $3 the last error (NULL clears it), $4 merged into provider_payload.
-- pending_create is only ever left for synced (by ticket_link_remote) or for
-- create_failed (by this statement with $2 = 'create_failed').
UPDATE tickets
   SET provider_sync_status = CASE
           WHEN $2::text IS NULL THEN provider_sync_status
           WHEN provider_sync_status = 'pending_create' AND $2::text NOT IN ('create_failed', 'pending_create')
               THEN provider_sync_status
           ELSE $2::text END,
       provider_last_error = $3::text,
       provider_payload = provider_payload || $4::jsonb
 WHERE id = $1::bigint
RETURNING id, provider_sync_status, provider_last_error

-- name: ticket_by_remote
SELECT *
  FROM tickets
 WHERE provider = $1::text AND provider_class = $2::text AND provider_ref = $3::text
   FOR UPDATE

-- name: ticket_lock
SELECT t.*,
       EXISTS (SELECT 1 FROM agents a
                WHERE a.ticket_id = t.id
                  AND a.status IN ('queued', 'running', 'pending_approval', 'awaiting_access',
                                   'awaiting_user_response', 'blocked')) AS agent_active
  FROM tickets t
 WHERE t.id = $1::bigint
   FOR UPDATE OF t

-- name: ticket_retarget
-- push-provider of a local ticket: it now belongs to provider $2 and waits
-- for its create, queued in the same statement.
WITH u AS (
    UPDATE tickets
       SET provider = $2::text, provider_ref = NULL, provider_class = NULL, provider_url = NULL,
           provider_sync_status = 'pending_create', provider_last_error = NULL, updated_at = now()
     WHERE id = $1::bigint AND provider = 'local'
    RETURNING id, provider
), o AS (
    INSERT INTO provider_outbox (ticket_id, provider, op, payload)
    SELECT u.id, u.provider, 'create',
           jsonb_build_object('marker', 'opsgate-' || u.id || '-' || substr(md5(random()::text || clock_timestamp()::text), 1, 12))
      FROM u
    RETURNING id
)
SELECT u.id, (SELECT id FROM o) AS outbox_id
  FROM u

-- name: ticket_mark_pending_create
UPDATE tickets
   SET provider_sync_status = 'pending_create', provider_last_error = NULL
 WHERE id = $1::bigint AND provider = $2::text AND provider_ref IS NULL
RETURNING id

-- name: import_ticket
-- A remote ticket opsgate did not know: the canonical ticket (already
-- synced, never auto-assigned), its creation note, audit row and events.
WITH t AS (
    INSERT INTO tickets (title, description, ticket_class, status, priority, created_by, provider, provider_ref,
                         provider_class, provider_url, provider_sync_status, provider_payload,
                         resolved_at, closed_at)
    VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text, $9::text, $10::text,
            'synced', $11::jsonb,
            CASE WHEN $4::text IN ('resolved', 'closed') THEN now() END,
            CASE WHEN $4::text IN ('closed', 'cancelled', 'rejected') THEN now() END)
    ON CONFLICT DO NOTHING
    RETURNING *
), n AS (
    INSERT INTO ticket_notes (ticket_id, created_at, kind, body, author, source, visibility, details)
    SELECT t.id, t.created_at, 'created', $12::text, $6::text, $7::text, 'internal', $13::jsonb
      FROM t
    RETURNING id
), a AS (
    INSERT INTO audit_log (actor, actor_kind, action, category, level, target_type, target_id, ticket_id, details)
    SELECT $6::text, 'system', 'ticket_imported', 'ticket', 'info', 'ticket', t.id::text, t.id,
           $13::jsonb || jsonb_build_object('note_id', n.id)
      FROM t, n
    RETURNING id
), e AS (
    INSERT INTO event_log (kind, category, level, actor, ticket_id, payload)
    SELECT 'ticket_created', 'ticket', 'info', $6::text, t.id,
           $13::jsonb || jsonb_build_object('ticket_id', t.id, 'note_id', n.id, 'status', t.status,
                                            'priority', t.priority, 'ticket_class', t.ticket_class,
                                            'provider', t.provider, 'created_by', t.created_by)
      FROM t, n
    UNION ALL
    SELECT 'ticket_note_added', 'ticket', 'info', $6::text, t.id,
           jsonb_build_object('ticket_id', t.id, 'note_id', n.id, 'kind', 'created', 'source', $7::text,
                              'visibility', 'internal', 'author', $6::text, 'steer', false)
      FROM t, n
    RETURNING id
)
SELECT t.*, n.id AS note_id, (SELECT array_agg(id ORDER BY id) FROM e) AS event_ids
  FROM t, n

-- name: ticket_remote_seen
-- What the last pull saw of the remote record (reconcile compares with it).
UPDATE tickets
   SET provider_payload = provider_payload || $2::jsonb,
       provider_url = COALESCE($3::text, provider_url)
 WHERE id = $1::bigint

-- name: note_key_claim
INSERT INTO provider_note_keys (ticket_id, note_key, outbox_id)
VALUES ($1::bigint, $2::text, $3::bigint)
ON CONFLICT DO NOTHING
RETURNING note_key

-- name: note_key_set_note
UPDATE provider_note_keys
   SET note_id = $3::bigint
 WHERE ticket_id = $1::bigint AND note_key = $2::text

-- name: note_keys_of
SELECT note_key
  FROM provider_note_keys
 WHERE ticket_id = $1::bigint AND note_key = ANY($2::text[])

-- name: sync_state_lease
-- Take (or renew) the pull lease of a provider; no row: someone else holds it.
INSERT INTO provider_sync_state AS s (provider, lease_owner, lease_until, last_run_at)
VALUES ($1::text, $2::text, now() + make_interval(secs => $3::double precision), now())
ON CONFLICT (provider) DO UPDATE
   SET lease_owner = EXCLUDED.lease_owner, lease_until = EXCLUDED.lease_until, last_run_at = now(),
       updated_at = now()
 WHERE s.lease_owner IS NULL OR s.lease_owner = EXCLUDED.lease_owner OR s.lease_until < now()
RETURNING cursor, runs

-- name: sync_state_save
UPDATE provider_sync_state
   SET cursor = $3::text,
       records_seen = records_seen + $4::bigint,
       lease_until = now() + make_interval(secs => $5::double precision),
       updated_at = now()
 WHERE provider = $1::text AND lease_owner = $2::text
RETURNING provider

-- name: sync_state_release
UPDATE provider_sync_state
   SET lease_owner = NULL,
       lease_until = NULL,
       runs = runs + 1,
       last_ok_at = CASE WHEN $3::text IS NULL THEN now() ELSE last_ok_at END,
       last_error = $3::text,
       updated_at = now()
 WHERE provider = $1::text AND lease_owner = $2::text

-- name: sync_state_get
SELECT provider, cursor IS NOT NULL AS has_cursor, lease_owner, lease_until, last_run_at, last_ok_at, last_error,
       runs, records_seen
  FROM provider_sync_state
 WHERE provider = $1::text
