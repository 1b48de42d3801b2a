-- name: insert_audit
INSERT INTO audit_log (actor, actor_kind, action, category, level, target_type, target_id,
                       ticket_id, agent_id, details)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text,
        $8::bigint, $9::bigint, $10::jsonb)
RETURNING id
