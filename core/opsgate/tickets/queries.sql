-- Tickets, notes and attachments. Every write of a state change is one
-- statement: the change, its timeline note, its audit row and its events go in
-- together (one round trip, one implicit transaction). The NOTIFY of the
-- events follows once that has committed (opsgate.events.notifier).

-- name: get_ticket
SELECT *
  FROM tickets
 WHERE id = $1::bigint

-- name: lock_ticket
SELECT *
  FROM tickets
 WHERE id = $1::bigint
   FOR UPDATE

-- name: create_ticket
-- $24/$25/$26: idempotency principal, key (NULL: none) and request hash; $27 the
-- key's lifetime in hours. With a key that is taken and not yet expired nothing
-- is written and no row returns; an expired key is taken over.
WITH nid AS (
    SELECT nextval('tickets_id_seq'::regclass) AS id, nextval('ticket_notes_id_seq'::regclass) AS note_id
), k AS (
    INSERT INTO idempotency_keys (principal, scope, key, request_hash, ticket_id, note_id)
    SELECT $24::text, 'ticket_create', $25::text, $26::text, nid.id, nid.note_id
      FROM nid
     WHERE $25::text IS NOT NULL
    ON CONFLICT (principal, scope, key) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, ticket_id = EXCLUDED.ticket_id, note_id = EXCLUDED.note_id,
           created_at = now()
     WHERE idempotency_keys.created_at <= now() - $27::float8 * interval '1 hour'
    RETURNING ticket_id AS id, note_id
), src AS (
    SELECT id, note_id FROM nid WHERE $25::text IS NULL
    UNION ALL
    SELECT id, note_id FROM k
), t AS (
    INSERT INTO tickets (id, title, description, ticket_class, status, priority, assignee, assignee_team,
                         owning_group, security_classification, requester_name, requester_email,
                         requester_phone, affected_user, affected_user_email, created_by, provider,
                         provider_sync_status, provider_ref, provider_class)
    SELECT src.id, $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text,
           $8::text, $9::text, $10::text, $11::text,
           $12::text, $13::text, $14::text, $15::text, $16::text,
           $17::text, CASE WHEN $18::boolean THEN 'LOCAL-' || src.id END, CASE WHEN $18::boolean THEN $3::text END
      FROM src
    RETURNING *
), n AS (
    INSERT INTO ticket_notes (id, ticket_id, created_at, kind, body, author, source, visibility, details)
    SELECT src.note_id, t.id, t.created_at, 'created', $21::text, $15::text, 'control-plane', 'internal', $22::jsonb
      FROM t, src
    RETURNING id
), a AS (
    INSERT INTO audit_log (actor, actor_kind, action, category, level, target_type, target_id, ticket_id, details)
    SELECT $19::text, $20::text, 'ticket_created', 'ticket', 'info', 'ticket', t.id::text, t.id,
           $22::jsonb || jsonb_build_object('note_id', n.id)
      FROM t, n
    RETURNING id
), e AS (
    INSERT INTO event_log (kind, category, level, actor, ticket_id, payload)
    SELECT 'ticket_created', 'ticket', 'info', $19::text, t.id,
           $23::jsonb || jsonb_build_object('ticket_id', t.id, 'note_id', n.id)
      FROM t, n
    UNION ALL
    SELECT 'ticket_note_added', 'ticket', 'info', $19::text, t.id,
           jsonb_build_object('ticket_id', t.id, 'note_id', n.id, 'kind', 'created', 'source', 'control-plane',
                              'visibility', 'internal', 'author', $15::text, 'steer', false)
      FROM t, n
    RETURNING id
), o AS (
    -- The provider outbox delivers a ticket created for an external provider
    -- (opsgate.providers); the marker finds the remote ticket again after a
    -- lost create reply.
    INSERT INTO provider_outbox (ticket_id, provider, op, payload)
    SELECT t.id, t.provider, 'create',
           jsonb_build_object('marker', 'opsgate-' || t.id || '-'
                                        || substr(md5(random()::text || clock_timestamp()::text), 1, 12))
      FROM t
     WHERE t.provider_sync_status = 'pending_create'
    RETURNING id
)
SELECT t.*, n.id AS note_id, a.id AS audit_id, (SELECT array_agg(id ORDER BY id) FROM e) AS event_ids
  FROM t, n, a

-- name: get_idempotency_key
-- Only a key younger than $4 hours: an expired one is as good as deleted.
SELECT request_hash, ticket_id, note_id
  FROM idempotency_keys
 WHERE principal = $1::text AND scope = $2::text AND key = $3::text
   AND created_at > now() - $4::float8 * interval '1 hour'

-- name: delete_expired_idempotency_keys
-- The sweeper: up to $2 keys older than $1 hours.
DELETE FROM idempotency_keys
 WHERE (principal, scope, key) IN (SELECT principal, scope, key
                                     FROM idempotency_keys
                                    WHERE created_at <= now() - $1::float8 * interval '1 hour'
                                    ORDER BY created_at
                                    LIMIT $2::integer
                                      FOR UPDATE SKIP LOCKED)

-- name: transition_ticket
-- Status changes, request-info and user-response: only from the status the
-- caller read ($2); zero rows means someone else changed it first.
-- A ticket of an external provider gets its provider outbox row here too:
-- the status when the caller asked for close_provider (in $10), the
-- requester-facing note of request-info/user-response otherwise. Changes the
-- provider itself made (source = the provider) are never sent back.
WITH u AS (
    UPDATE tickets
       SET status = $3::text,
           previous_status = CASE WHEN status = $3::text THEN previous_status ELSE status END,
           updated_at = now(),
           resolved_at = CASE WHEN $3::text = 'resolved' THEN now() ELSE resolved_at END,
           closed_at = CASE WHEN $3::text IN ('closed', 'cancelled', 'rejected') THEN now() ELSE closed_at END
     WHERE id = $1::bigint AND status = $2::text
    RETURNING *
), n AS (
    INSERT INTO ticket_notes (ticket_id, created_at, kind, body, author, source, visibility, agent_id, details)
    SELECT u.id, u.updated_at, $4::text, $5::text, $6::text, $7::text, $8::text, $9::bigint, $10::jsonb
      FROM u
    RETURNING *
), a AS (
    INSERT INTO audit_log (actor, actor_kind, action, category, level, target_type, target_id, ticket_id,
                           agent_id, details)
    SELECT $11::text, $12::text, $13::text, 'ticket', 'info', 'ticket', u.id::text, u.id, $9::bigint,
           $10::jsonb || jsonb_build_object('note_id', n.id, 'from_status', $2::text, 'to_status', $3::text)
      FROM u, n
    RETURNING id
), e AS (
    INSERT INTO event_log (kind, category, level, actor, ticket_id, agent_id, payload)
    SELECT $13::text, 'ticket', 'info', $11::text, u.id, $9::bigint,
           jsonb_build_object('ticket_id', u.id, 'note_id', n.id, 'from_status', $2::text, 'to_status', $3::text)
      FROM u, n
    UNION ALL
    SELECT 'ticket_note_added', 'ticket', 'info', $11::text, u.id, $9::bigint,
           jsonb_build_object('ticket_id', u.id, 'note_id', n.id, 'kind', $4::text, 'source', $7::text,
                              'visibility', $8::text, 'author', $6::text, 'steer', $14::boolean)
      FROM u, n
    RETURNING id
), o AS (
    INSERT INTO provider_outbox (ticket_id, provider, op, payload)
    SELECT u.id, u.provider, 'status',
           jsonb_build_object('status', $3::text, 'from_status', $2::text, 'reason', $10::jsonb ->> 'reason',
                              'close', true, 'note_id', n.id)
      FROM u, n
     WHERE u.provider <> 'local' AND $7::text <> u.provider AND $4::text = 'status'
       AND ($10::jsonb ->> 'close_provider') = 'true'
    UNION ALL
    SELECT u.id, u.provider, 'note',
           jsonb_build_object('note_id', n.id, 'kind', n.kind, 'body', n.body, 'visibility', n.visibility)
      FROM u, n
     WHERE u.provider <> 'local' AND $7::text <> u.provider AND $4::text IN ('request_info', 'user_response')
    RETURNING id
)
SELECT u.*, n.id AS n_id, n.created_at AS n_created_at, n.kind AS n_kind, n.body AS n_body,
       n.author AS n_author, n.source AS n_source, n.visibility AS n_visibility, n.agent_id AS n_agent_id,
       n.details AS n_details, a.id AS audit_id, (SELECT array_agg(id ORDER BY id) FROM e) AS event_ids
  FROM u, n, a

-- name: assign_ticket
-- Run after lock_ticket in the same transaction; $2..$9 say which fields change.
-- A ticket of an external provider gets a provider outbox row when a field
-- really changed ($14 changed is not empty): the assignment note, sent to the
-- provider's internal log.
WITH u AS (
    UPDATE tickets
       SET assignee = CASE WHEN $2::boolean THEN $3::text ELSE assignee END,
           assignee_team = CASE WHEN $4::boolean THEN $5::text ELSE assignee_team END,
           owning_group = CASE WHEN $6::boolean THEN $7::text ELSE owning_group END,
           priority = CASE WHEN $8::boolean THEN $9::text ELSE priority END,
           updated_at = now()
     WHERE id = $1::bigint
    RETURNING *
), n AS (
    INSERT INTO ticket_notes (ticket_id, created_at, kind, body, author, source, visibility, agent_id, details)
    SELECT u.id, u.updated_at, 'assignment', $10::text, $11::text, $12::text, 'internal', $13::bigint, $14::jsonb
      FROM u
    RETURNING *
), a AS (
    INSERT INTO audit_log (actor, actor_kind, action, category, level, target_type, target_id, ticket_id,
                           agent_id, details)
    SELECT $15::text, $16::text, 'ticket_assignment_changed', 'ticket', 'info', 'ticket', u.id::text, u.id,
           $13::bigint, $14::jsonb || jsonb_build_object('note_id', n.id)
      FROM u, n
    RETURNING id
), e AS (
    INSERT INTO event_log (kind, category, level, actor, ticket_id, agent_id, payload)
    SELECT 'ticket_assignment_changed', 'ticket', 'info', $15::text, u.id, $13::bigint,
           $14::jsonb || jsonb_build_object('ticket_id', u.id, 'note_id', n.id)
      FROM u, n
    UNION ALL
    SELECT 'ticket_note_added', 'ticket', 'info', $15::text, u.id, $13::bigint,
           jsonb_build_object('ticket_id', u.id, 'note_id', n.id, 'kind', 'assignment', 'source', $12::text,
                              'visibility', 'internal', 'author', $11::text, 'steer', false)
      FROM u, n
    RETURNING id
), o AS (
    INSERT INTO provider_outbox (ticket_id, provider, op, payload)
    SELECT u.id, u.provider, 'assignment',
           jsonb_build_object('note_id', n.id, 'kind', 'assignment', 'body', n.body, 'visibility', 'internal',
                              'assignee', u.assignee, 'assignee_team', u.assignee_team,
                              'owning_group', u.owning_group, 'priority', u.priority)
      FROM u, n
     WHERE u.provider <> 'local' AND $12::text <> u.provider
       AND COALESCE($14::jsonb -> 'changed', '{}'::jsonb) <> '{}'::jsonb
    RETURNING id
)
SELECT u.*, n.id AS n_id, n.created_at AS n_created_at, n.kind AS n_kind, n.body AS n_body,
       n.author AS n_author, n.source AS n_source, n.visibility AS n_visibility, n.agent_id AS n_agent_id,
       n.details AS n_details, a.id AS audit_id, (SELECT array_agg(id ORDER BY id) FROM e) AS event_ids
  FROM u, n, a

-- name: add_note
-- $9/$10/$11: idempotency principal, key (NULL: none), request hash; $13 the
-- key's lifetime in hours (an expired key is taken over).
-- A note on a ticket of an external provider is queued for it in the same
-- statement, unless the provider wrote it (inbound sync: source = provider).
WITH nid AS (
    SELECT nextval('ticket_notes_id_seq'::regclass) AS id
), k AS (
    INSERT INTO idempotency_keys (principal, scope, key, request_hash, ticket_id, note_id)
    SELECT $9::text, 'ticket_note', $10::text, $11::text, $1::bigint, nid.id
      FROM nid
     WHERE $10::text IS NOT NULL
    ON CONFLICT (principal, scope, key) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, ticket_id = EXCLUDED.ticket_id, note_id = EXCLUDED.note_id,
           created_at = now()
     WHERE idempotency_keys.created_at <= now() - $13::float8 * interval '1 hour'
    RETURNING note_id AS id
), src AS (
    SELECT id FROM nid WHERE $10::text IS NULL
    UNION ALL
    SELECT id FROM k
), n AS (
    INSERT INTO ticket_notes (id, ticket_id, kind, body, author, source, visibility, agent_id, details)
    SELECT src.id, $1::bigint, 'note', $2::text, $3::text, $4::text, $5::text, $6::bigint, $7::jsonb
      FROM src
    RETURNING *
), e AS (
    INSERT INTO event_log (kind, category, level, actor, ticket_id, agent_id, payload)
    SELECT 'ticket_note_added', 'ticket', 'info', $12::text, n.ticket_id, n.agent_id,
           jsonb_build_object('ticket_id', n.ticket_id, 'note_id', n.id, 'kind', 'note', 'source', n.source,
                              'visibility', n.visibility, 'author', n.author, 'steer', $8::boolean)
      FROM n
    RETURNING id
), o AS (
    INSERT INTO provider_outbox (ticket_id, provider, op, payload)
    SELECT n.ticket_id, t.provider, 'note',
           jsonb_build_object('note_id', n.id, 'kind', n.kind, 'body', n.body, 'visibility', n.visibility)
      FROM n
      JOIN tickets t ON t.id = n.ticket_id
     WHERE t.provider <> 'local' AND n.source <> t.provider
    RETURNING id
)
SELECT n.*, (SELECT array_agg(id ORDER BY id) FROM e) AS event_ids
  FROM n

-- name: get_note
SELECT *
  FROM ticket_notes
 WHERE id = $1::bigint

-- name: add_attachment
-- Inserts nothing when note_id ($3) is given but is not a note of this ticket.
WITH x AS (
    INSERT INTO ticket_attachments (ticket_id, note_id, filename, content_type, size_bytes, storage_ref, sha256,
                                    metadata, uploaded_by)
    SELECT $1::bigint, $3::bigint, $4::text, $5::text, $6::bigint, $7::text, $8::text, $9::jsonb, $2::text
     WHERE $3::bigint IS NULL
        OR EXISTS (SELECT 1 FROM ticket_notes WHERE id = $3::bigint AND ticket_id = $1::bigint)
    RETURNING *
), a AS (
    INSERT INTO audit_log (actor, actor_kind, action, category, level, target_type, target_id, ticket_id,
                           agent_id, details)
    SELECT $2::text, $10::text, 'ticket_attachment_added', 'ticket', 'info', 'ticket_attachment', x.id::text,
           x.ticket_id, $11::bigint,
           jsonb_build_object('attachment_id', x.id, 'filename', x.filename, 'content_type', x.content_type,
                              'size_bytes', x.size_bytes, 'sha256', x.sha256, 'note_id', x.note_id)
      FROM x
    RETURNING id
), e AS (
    INSERT INTO event_log (kind, category, level, actor, ticket_id, agent_id, payload)
    SELECT 'ticket_attachment_added', 'ticket', 'info', $2::text, x.ticket_id, $11::bigint,
           jsonb_build_object('ticket_id', x.ticket_id, 'attachment_id', x.id, 'filename', x.filename)
      FROM x
    RETURNING id
)
SELECT x.*, (SELECT array_agg(id ORDER BY id) FROM e) AS event_ids
  FROM x

-- name: list_notes
-- The newest $2 notes of a ticket (callers reverse them to oldest first).
SELECT *
  FROM ticket_notes
 WHERE ticket_id = $1::bigint
 ORDER BY id DESC
 LIMIT $2::integer

-- name: list_attachments
SELECT *
  FROM ticket_attachments
 WHERE ticket_id = $1::bigint
 ORDER BY id
 LIMIT $2::integer
