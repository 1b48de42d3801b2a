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
