-- name: service_principal
SELECT t.id, t.name, t.role, r.permissions,
       COALESCE(t.max_classification, r.default_max_classification) AS max_classification,
       t.groups
  FROM service_tokens t
  JOIN roles r ON r.name = t.role
 WHERE t.token_hash = $1::text AND t.revoked_at IS NULL

-- name: touch_service_token
UPDATE service_tokens SET last_used_at = now()
 WHERE id = $1::bigint AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')

-- name: agent_principal
SELECT id, agent_id, ticket_id, task_id, extract(epoch FROM expires_at - now())::float8 AS expires_in
  FROM agent_tokens
 WHERE token_hash = $1::text AND revoked_at IS NULL AND expires_at > now()

-- name: insert_agent_token
INSERT INTO agent_tokens (agent_id, ticket_id, task_id, token_hash, expires_at)
VALUES ($1::bigint, $2::bigint, $3::bigint, $4::text, now() + make_interval(secs => $5::double precision))
RETURNING id

-- name: revoke_agent_tokens
UPDATE agent_tokens SET revoked_at = now(), revoke_reason = $2::text
 WHERE agent_id = $1::bigint AND revoked_at IS NULL

-- name: user_principal
SELECT u.id, u.username, u.disabled, u.max_classification,
       COALESCE((SELECT array_agg(ur.role ORDER BY ur.role) FROM user_roles ur WHERE ur.user_id = u.id), '{}') AS roles,
       COALESCE((SELECT array_agg(DISTINCT p)
                   FROM user_roles ur JOIN roles r ON r.name = ur.role, unnest(r.permissions) AS p
                  WHERE ur.user_id = u.id), '{}') AS permissions,
       COALESCE((SELECT array_agg(r.default_max_classification)
                   FROM user_roles ur JOIN roles r ON r.name = ur.role
                  WHERE ur.user_id = u.id), '{}') AS role_classifications,
       (SELECT array_agg(s.group_name ORDER BY s.group_name) FROM user_scopes s WHERE s.user_id = u.id) AS groups
  FROM users u
 WHERE u.id = $1::bigint

-- name: session_user
SELECT user_id FROM sessions
 WHERE token_hash = $1::text AND revoked_at IS NULL AND expires_at > now()

-- name: insert_session
INSERT INTO sessions (user_id, token_hash, expires_at, client_ip, user_agent)
VALUES ($1::bigint, $2::text, now() + make_interval(secs => $3::double precision), $4::text, $5::text)
RETURNING id, expires_at

-- name: revoke_session
UPDATE sessions SET revoked_at = now() WHERE token_hash = $1::text AND revoked_at IS NULL RETURNING user_id

-- name: user_for_login
SELECT id, username, password_hash, disabled, failed_logins, locked_until, locked_until > now() AS locked
  FROM users
 WHERE username = $1::text

-- name: login_failed
UPDATE users
   SET failed_logins = failed_logins + 1,
       locked_until = CASE WHEN failed_logins + 1 >= $2::int
                           THEN now() + make_interval(secs => $3::double precision) ELSE locked_until END
 WHERE id = $1::bigint
RETURNING failed_logins, locked_until

-- name: login_succeeded
UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = now(),
                 password_hash = COALESCE($2::text, password_hash)
 WHERE id = $1::bigint

-- name: user_by_username
SELECT id FROM users WHERE username = $1::text

-- name: insert_user
INSERT INTO users (username, display_name, email, password_hash, source, max_classification)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text)
RETURNING id

-- name: insert_proxy_user
INSERT INTO users (username, email, source) VALUES ($1::text, $2::text, 'proxy')
ON CONFLICT (username) DO UPDATE SET email = COALESCE(EXCLUDED.email, users.email)
RETURNING id, (xmax = 0) AS inserted

-- name: list_users
SELECT u.id, u.username, u.display_name, u.email, u.source, u.max_classification, u.disabled,
       u.last_login_at, u.created_at,
       COALESCE((SELECT array_agg(role ORDER BY role) FROM user_roles WHERE user_id = u.id), '{}') AS roles,
       COALESCE((SELECT array_agg(group_name ORDER BY group_name) FROM user_scopes WHERE user_id = u.id), '{}') AS groups
  FROM users u
 ORDER BY u.id
 LIMIT $1::int OFFSET $2::int

-- name: get_user
SELECT u.id, u.username, u.display_name, u.email, u.source, u.max_classification, u.disabled,
       u.last_login_at, u.created_at,
       COALESCE((SELECT array_agg(role ORDER BY role) FROM user_roles WHERE user_id = u.id), '{}') AS roles,
       COALESCE((SELECT array_agg(group_name ORDER BY group_name) FROM user_scopes WHERE user_id = u.id), '{}') AS groups
  FROM users u
 WHERE u.id = $1::bigint

-- name: grant_role
INSERT INTO user_roles (user_id, role, granted_by) VALUES ($1::bigint, $2::text, $3::text)
ON CONFLICT DO NOTHING

-- name: revoke_roles
DELETE FROM user_roles WHERE user_id = $1::bigint

-- name: grant_scope
INSERT INTO user_scopes (user_id, group_name, granted_by) VALUES ($1::bigint, $2::text, $3::text)
ON CONFLICT DO NOTHING

-- name: revoke_scopes
DELETE FROM user_scopes WHERE user_id = $1::bigint

-- name: set_user_classification
UPDATE users SET max_classification = $2::text WHERE id = $1::bigint

-- name: list_scopes
SELECT group_name, granted_by, granted_at FROM user_scopes WHERE user_id = $1::bigint ORDER BY group_name

-- name: list_roles
SELECT name, description, permissions, default_max_classification, builtin FROM roles ORDER BY name

-- name: get_role
SELECT name FROM roles WHERE name = $1::text

-- name: insert_service_token
INSERT INTO service_tokens (name, role, token_hash, token_prefix, max_classification, groups, created_by)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text[], $7::text)
RETURNING id, name, role, token_prefix, created_at

-- name: list_service_tokens
SELECT id, name, role, token_prefix, max_classification, groups, created_by, created_at, last_used_at,
       revoked_at, revoked_by
  FROM service_tokens
 ORDER BY id

-- name: revoke_service_token
UPDATE service_tokens SET revoked_at = now(), revoked_by = $2::text
 WHERE id = $1::bigint AND revoked_at IS NULL
RETURNING id, name

-- name: service_token_exists
SELECT revoked_at FROM service_tokens WHERE id = $1::bigint

-- name: count_principals
SELECT (SELECT count(*) FROM service_tokens) + (SELECT count(*) FROM users WHERE password_hash IS NOT NULL)

-- name: insert_decision
INSERT INTO access_decisions (principal_kind, principal, method, route, permission, allowed, reason)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::boolean, $7::text)

-- name: notify_auth_change
SELECT pg_notify('opsgate_auth', $1::text)
