-- Access requests. The gate (change_requests, kind 'access') carries the
-- decision; this row links it to the child ticket and the lease it grants.

-- name: insert_access_request
INSERT INTO access_requests (ticket_id, child_ticket_id, change_id, agent_id, resource, permission, account_ref,
                             assignment_group, risk_level, reason, lease_request, scope, requested_by)
VALUES ($1::bigint, $2::bigint, $3::bigint, $4::bigint, $5::text, $6::text, $7::text,
        $8::text, $9::text, $10::text, $11::jsonb, $12::text, $13::text)
RETURNING id

-- name: set_lease
UPDATE access_requests
   SET lease_id = $2::text, updated_at = now()
 WHERE id = $1::bigint

-- name: lock_by_change
SELECT *
  FROM access_requests
 WHERE change_id = $1::bigint
   FOR UPDATE

-- name: decide
-- pending_approval/approved ($2) -> $3 (approved, granted, rejected, expired, cancelled).
UPDATE access_requests
   SET status = $3::text, decided_by = coalesce(decided_by, $4::text), decided_at = coalesce(decided_at, now()),
       updated_at = now()
 WHERE id = $1::bigint AND status = ANY ($2::text[])
RETURNING *

-- name: list_for_ticket
-- Requests filed on the ticket or whose child access ticket it is, with the
-- gate's effective status, the child ticket and the lease.
SELECT ar.*,
       CASE WHEN c.status IN ('pending', 'approved') AND c.expires_at <= now() THEN 'expired'
            ELSE c.status END AS change_status,
       c.expires_at AS change_expires_at,
       ct.title AS child_title, ct.status AS child_status, ct.owning_group AS child_owning_group,
       l.status AS lease_stored_status,
       CASE WHEN l.status = 'active' AND l.expire_time <= now() THEN 'expired' ELSE l.status END AS lease_status,
       l.expire_time AS lease_expire_time, l.credential_ref AS lease_credential_ref
  FROM access_requests ar
  JOIN change_requests c ON c.id = ar.change_id
  LEFT JOIN tickets ct ON ct.id = ar.child_ticket_id
  LEFT JOIN leases l ON l.lease_id = ar.lease_id
 WHERE ar.ticket_id = $1::bigint OR ar.child_ticket_id = $1::bigint
 ORDER BY ar.id DESC
 LIMIT $2::integer

-- name: get_view
SELECT ar.*,
       CASE WHEN c.status IN ('pending', 'approved') AND c.expires_at <= now() THEN 'expired'
            ELSE c.status END AS change_status,
       c.expires_at AS change_expires_at,
       ct.title AS child_title, ct.status AS child_status, ct.owning_group AS child_owning_group,
       l.status AS lease_stored_status,
       CASE WHEN l.status = 'active' AND l.expire_time <= now() THEN 'expired' ELSE l.status END AS lease_status,
       l.expire_time AS lease_expire_time, l.credential_ref AS lease_credential_ref
  FROM access_requests ar
  JOIN change_requests c ON c.id = ar.change_id
  LEFT JOIN tickets ct ON ct.id = ar.child_ticket_id
  LEFT JOIN leases l ON l.lease_id = ar.lease_id
 WHERE ar.id = $1::bigint

-- name: create_child_ticket
-- The child access ticket with its creation note, audit row and events, in the
-- requester's transaction. $7 provider, $8 provider_sync_status; a local
-- ticket gets provider_ref LOCAL-<id> like every local ticket.
WITH nid AS (
    SELECT nextval('tickets_id_seq'::regclass) AS id
), t AS (
    INSERT INTO tickets (id, title, description, ticket_class, priority, assignee_team, owning_group,
                         security_classification, created_by, provider, provider_sync_status, provider_ref,
                         provider_class)
    SELECT nid.id, $1::text, $2::text, 'UserRequest', $3::text, $4::text, $4::text, $5::text, $6::text, $7::text,
           $8::text, CASE WHEN $7::text = 'local' THEN 'LOCAL-' || nid.id END,
           CASE WHEN $7::text = 'local' THEN 'UserRequest' END
      FROM nid
    RETURNING *
), n AS (
    INSERT INTO ticket_notes (ticket_id, created_at, kind, body, author, source, visibility, details)
    SELECT t.id, t.created_at, 'created', 'Ticket created by ' || $6::text || ': ' || t.title, $6::text,
           'control-plane', 'internal', $9::jsonb
      FROM t
    RETURNING id
), a AS (
    INSERT INTO audit_log (actor, actor_kind, action, category, level, target_type, target_id, ticket_id, details)
    SELECT $10::text, $11::text, 'ticket_created', 'ticket', 'info', 'ticket', t.id::text, t.id,
           $9::jsonb || jsonb_build_object('note_id', n.id)
      FROM t, n
    RETURNING id
), e AS (
    INSERT INTO event_log (kind, category, level, actor, ticket_id, payload)
    SELECT 'ticket_created', 'ticket', 'info', $10::text, t.id,
           jsonb_build_object('ticket_id', t.id, 'note_id', n.id, 'status', t.status, 'priority', t.priority,
                              'ticket_class', t.ticket_class, 'owning_group', t.owning_group,
                              'provider', t.provider, 'created_by', t.created_by)
      FROM t, n
    UNION ALL
    SELECT 'ticket_note_added', 'ticket', 'info', $10::text, t.id,
           jsonb_build_object('ticket_id', t.id, 'note_id', n.id, 'kind', 'created', 'source', 'control-plane',
                              'visibility', 'internal', 'author', $6::text, 'steer', false)
      FROM t, n
    RETURNING id
), nt AS (
    SELECT pg_notify($12::text, e.id::text) FROM e
)
SELECT t.id, n.id AS note_id, a.id AS audit_id, (SELECT count(*) FROM nt) AS notified
  FROM t, n, a

-- name: set_child_status
-- Resolve or close the child access ticket, only from the status read ($2),
-- with its status note, audit row and events.
WITH u AS (
    UPDATE tickets
       SET status = $3::text, previous_status = status, updated_at = now(),
           resolved_at = CASE WHEN $3::text = 'resolved' THEN now() ELSE resolved_at END,
           closed_at = CASE WHEN $3::text IN ('closed', 'cancelled', 'rejected') THEN now() ELSE closed_at END
     WHERE id = $1::bigint AND status = $2::text
    RETURNING *
), n AS (
    INSERT INTO ticket_notes (ticket_id, created_at, kind, body, author, source, visibility, details)
    SELECT u.id, u.updated_at, 'status', $4::text, $5::text, 'control-plane', 'internal',
           $6::jsonb || jsonb_build_object('from_status', $2::text, 'to_status', $3::text)
      FROM u
    RETURNING id
), a AS (
    INSERT INTO audit_log (actor, actor_kind, action, category, level, target_type, target_id, ticket_id, details)
    SELECT $5::text, $7::text, 'ticket_status_changed', 'ticket', 'info', 'ticket', u.id::text, u.id,
           $6::jsonb || jsonb_build_object('note_id', n.id, 'from_status', $2::text, 'to_status', $3::text)
      FROM u, n
    RETURNING id
), e AS (
    INSERT INTO event_log (kind, category, level, actor, ticket_id, payload)
    SELECT 'ticket_status_changed', 'ticket', 'info', $5::text, u.id,
           jsonb_build_object('ticket_id', u.id, 'note_id', n.id, 'from_status', $2::text, 'to_status', $3::text)
      FROM u, n
    UNION ALL
    SELECT 'ticket_note_added', 'ticket', 'info', $5::text, u.id,
           jsonb_build_object('ticket_id', u.id, 'note_id', n.id, 'kind', 'status', 'source', 'control-plane',
                              'visibility', 'internal', 'author', $5::text, 'steer', false)
      FROM u, n
    RETURNING id
), nt AS (
    SELECT pg_notify($8::text, e.id::text) FROM e
)
SELECT u.id, n.id AS note_id, (SELECT count(*) FROM nt) AS notified
  FROM u, n
