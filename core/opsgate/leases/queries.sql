-- Scoped credential leases (contracts/leases.md). "now" is always the
-- database clock. Every read adds `effective_status` (an active lease past its
-- expire_time reads as expired before the sweeper writes it) and `ttl`.
-- Transitions are compare-and-set: UPDATE ... WHERE status = <expected>.

-- name: insert_lease
-- $10 status: 'pending' (awaiting approval) or 'active' (a direct grant).
-- For an active grant $11 is the ttl and $12 the max ttl in seconds.
INSERT INTO leases (lease_id, agent_id, ticket_id, scope, system, resource_type, resource_id, action,
                    credential_ref, status, lease_duration, requested_ttl, expire_time, max_expire_time, source,
                    change_id, access_request_id, renewable)
VALUES ($1::text, $2::bigint, $3::bigint, $4::text, $5::text, $6::text, $7::text, $8::text,
        $9::text, $10::text,
        CASE WHEN $10::text = 'active' THEN $11::integer ELSE 0 END, $11::integer,
        CASE WHEN $10::text = 'active' THEN now() + make_interval(secs => $11::integer) END,
        CASE WHEN $10::text = 'active' THEN now() + make_interval(secs => $12::integer) END,
        $13::jsonb, $14::bigint, $15::bigint, $16::boolean)
RETURNING *,
          status AS effective_status,
          CASE WHEN status = 'active' THEN GREATEST(0, floor(extract(epoch FROM expire_time - now())))::integer
               ELSE 0 END AS ttl

-- name: activate_lease
-- pending -> active on approval: the approver's credential_ref, ttl ($3) and max ttl ($4) from now.
UPDATE leases
   SET status = 'active', credential_ref = $2::text, lease_duration = $3::integer, issue_time = now(),
       expire_time = now() + make_interval(secs => $3::integer),
       max_expire_time = now() + make_interval(secs => $4::integer),
       source = source || $5::jsonb, updated_at = now()
 WHERE lease_id = $1::text AND status = 'pending'
RETURNING *,
          status AS effective_status,
          GREATEST(0, floor(extract(epoch FROM expire_time - now())))::integer AS ttl

-- name: deny_lease
-- pending -> denied (the access gate was rejected or expired).
UPDATE leases
   SET status = 'denied', revoked_at = now(), revoked_by = $2::text, revoke_reason = $3::text, updated_at = now()
 WHERE lease_id = $1::text AND status = 'pending'
RETURNING *

-- name: supersede_active
-- A new grant replaces the live lease of the same (agent, scope).
UPDATE leases
   SET status = 'revoked', revoked_at = now(), revoked_by = $3::text, revoke_reason = 'superseded',
       updated_at = now()
 WHERE agent_id = $1::bigint AND scope = $2::text AND status = 'active'
RETURNING *

-- name: get_lease
SELECT l.*,
       CASE WHEN l.status = 'active' AND l.expire_time <= now() THEN 'expired' ELSE l.status END
           AS effective_status,
       CASE WHEN l.status = 'active' THEN GREATEST(0, floor(extract(epoch FROM l.expire_time - now())))::integer
            ELSE 0 END AS ttl
  FROM leases l
 WHERE l.lease_id = $1::text

-- name: list_agent_leases
SELECT l.*,
       CASE WHEN l.status = 'active' AND l.expire_time <= now() THEN 'expired' ELSE l.status END
           AS effective_status,
       CASE WHEN l.status = 'active' THEN GREATEST(0, floor(extract(epoch FROM l.expire_time - now())))::integer
            ELSE 0 END AS ttl
  FROM leases l
 WHERE l.agent_id = $1::bigint
 ORDER BY l.issue_time DESC, l.lease_id DESC
 LIMIT $2::integer

-- name: usable_leases
-- Candidates for a check: active, unexpired, of a ticket that is not closed,
-- same system/resource_type and a matching action; resource_id globs are
-- matched by the caller with fnmatchcase.
SELECT l.*,
       'active'::text AS effective_status,
       GREATEST(0, floor(extract(epoch FROM l.expire_time - now())))::integer AS ttl
  FROM leases l
  LEFT JOIN tickets t ON t.id = l.ticket_id
  LEFT JOIN agents a ON a.id = l.agent_id
 WHERE l.agent_id = $1::bigint AND l.system = $2::text AND l.resource_type = $3::text
   AND (l.action = $4::text OR l.action = '*')
   AND l.status = 'active' AND l.expire_time > now()
   AND (t.id IS NULL OR t.status NOT IN ('closed', 'cancelled', 'rejected'))
   AND (a.id IS NULL OR a.status NOT IN ('completed', 'failed', 'stopped', 'terminated'))

-- name: recent_leases
-- For the denial reason: the agent's latest leases of the system/resource_type.
SELECT l.lease_id, l.status, l.resource_id, l.action, l.issue_time,
       (l.status = 'active' AND l.expire_time <= now()) AS past_expiry,
       (coalesce(t.status IN ('closed', 'cancelled', 'rejected'), false)
        OR coalesce(a.status IN ('completed', 'failed', 'stopped', 'terminated'), false)) AS ticket_closed
  FROM leases l
  LEFT JOIN tickets t ON t.id = l.ticket_id
  LEFT JOIN agents a ON a.id = l.agent_id
 WHERE l.agent_id = $1::bigint AND l.system = $2::text AND l.resource_type = $3::text
   AND (l.action = $4::text OR l.action = '*')
 ORDER BY l.issue_time DESC, l.lease_id DESC
 LIMIT 50

-- name: count_active
SELECT count(*)
  FROM leases
 WHERE agent_id = $1::bigint AND status = 'active' AND expire_time > now()

-- name: renew_lease
-- new expire_time = min(now + increment, max_expire_time); only an active,
-- renewable, unexpired lease.
UPDATE leases
   SET expire_time = LEAST(now() + make_interval(secs => $2::integer), max_expire_time),
       lease_duration = GREATEST(0, floor(extract(epoch FROM
                            LEAST(now() + make_interval(secs => $2::integer), max_expire_time) - now())))::integer,
       last_renewal_time = now(), updated_at = now()
 WHERE lease_id = $1::text AND status = 'active' AND renewable AND expire_time > now()
RETURNING *,
          status AS effective_status,
          GREATEST(0, floor(extract(epoch FROM expire_time - now())))::integer AS ttl

-- name: revoke_lease
UPDATE leases
   SET status = 'revoked', revoked_at = now(), revoked_by = $2::text, revoke_reason = $3::text, updated_at = now()
 WHERE lease_id = $1::text AND status IN ('active', 'pending')
RETURNING *,
          status AS effective_status,
          0 AS ttl

-- name: revoke_prefix
-- Every live lease whose scope starts with $1 (optionally of one agent).
UPDATE leases
   SET status = 'revoked', revoked_at = now(), revoked_by = $3::text, revoke_reason = $4::text, updated_at = now()
 WHERE status = 'active' AND expire_time > now() AND starts_with(scope, $1::text)
   AND ($2::bigint IS NULL OR agent_id = $2::bigint)
RETURNING *

-- name: revoke_agent_leases
-- $4: also revoke pending leases (the agent is gone for good, not just between tasks).
UPDATE leases
   SET status = 'revoked', revoked_at = now(), revoked_by = $2::text, revoke_reason = $3::text, updated_at = now()
 WHERE agent_id = $1::bigint AND (status = 'active' OR ($4::boolean AND status = 'pending'))
RETURNING *

-- name: revoke_ended_agent_leases
-- The sweeper: live leases of agents that finished (task_finished) or were
-- stopped/terminated (agent_ended); pending leases of stopped/terminated agents too.
UPDATE leases l
   SET status = 'revoked', revoked_at = now(), revoked_by = 'system',
       revoke_reason = CASE WHEN a.status IN ('completed', 'failed') THEN 'task_finished' ELSE 'agent_ended' END,
       updated_at = now()
  FROM agents a
 WHERE a.id = l.agent_id
   AND (l.status = 'active' OR (l.status = 'pending' AND a.status IN ('stopped', 'terminated')))
   AND a.status IN ('completed', 'failed', 'stopped', 'terminated')
   AND l.lease_id IN (SELECT x.lease_id FROM leases x
                       WHERE x.status IN ('active', 'pending')
                       ORDER BY x.lease_id
                       LIMIT $1::integer
                         FOR UPDATE SKIP LOCKED)
RETURNING l.*

-- name: revoke_ticket_leases
UPDATE leases
   SET status = 'revoked', revoked_at = now(), revoked_by = $2::text, revoke_reason = $3::text, updated_at = now()
 WHERE ticket_id = $1::bigint AND status IN ('active', 'pending')
RETURNING *

-- name: revoke_closed_ticket_leases
-- The sweeper: live leases of tickets that have been closed, cancelled or rejected.
UPDATE leases
   SET status = 'revoked', revoked_at = now(), revoked_by = 'system', revoke_reason = 'ticket_closed',
       updated_at = now()
 WHERE lease_id IN (SELECT l.lease_id
                      FROM leases l
                      JOIN tickets t ON t.id = l.ticket_id
                     WHERE l.status IN ('active', 'pending') AND t.status IN ('closed', 'cancelled', 'rejected')
                     LIMIT $1::integer
                       FOR UPDATE OF l SKIP LOCKED)
RETURNING *

-- name: expire_due_leases
UPDATE leases
   SET status = 'expired', updated_at = now()
 WHERE lease_id IN (SELECT lease_id
                      FROM leases
                     WHERE status = 'active' AND expire_time <= now()
                     ORDER BY expire_time
                     LIMIT $1::integer
                       FOR UPDATE SKIP LOCKED)
   AND status = 'active'
RETURNING *
