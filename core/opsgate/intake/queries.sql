-- Intake: RACI groups and rules, intake sessions, auto-assignment decisions.

-- name: list_groups
SELECT *
  FROM raci_groups
 ORDER BY name

-- name: get_group
SELECT *
  FROM raci_groups
 WHERE id = $1::bigint

-- name: lock_group
SELECT *
  FROM raci_groups
 WHERE id = $1::bigint
   FOR UPDATE

-- name: group_by_name
SELECT *
  FROM raci_groups
 WHERE lower(name) = lower($1::text)

-- name: insert_group
INSERT INTO raci_groups (name, description, default_assignee, risk_level, enabled, created_by, updated_by)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::boolean, $6::text, $6::text)
RETURNING *

-- name: update_group
-- A rename cascades to raci_rules.assignment_group through the foreign key.
UPDATE raci_groups
   SET name = $2::text, description = $3::text, default_assignee = $4::text, risk_level = $5::text,
       enabled = $6::boolean, updated_by = $7::text, updated_at = now()
 WHERE id = $1::bigint
RETURNING *

-- name: enabled_rules_of_group
SELECT name
  FROM raci_rules
 WHERE assignment_group = $1::text AND enabled
 ORDER BY name

-- name: list_rules
SELECT *
  FROM raci_rules
 ORDER BY name

-- name: enabled_rules
SELECT *
  FROM raci_rules
 WHERE enabled
 ORDER BY name

-- name: get_rule
SELECT *
  FROM raci_rules
 WHERE id = $1::bigint

-- name: lock_rule
SELECT *
  FROM raci_rules
 WHERE id = $1::bigint
   FOR UPDATE

-- name: insert_rule
INSERT INTO raci_rules (name, intent, description, keywords, ticket_class, priority, assignment_group,
                        responsible, accountable, consulted, informed, approval_required, approval_action,
                        risk_level, knowledge_tags, auto_assign_agent, auto_agent_model, auto_agent_prompt,
                        security_classification, enabled, created_by, updated_by)
VALUES ($1::text, $2::text, $3::text, $4::jsonb, $5::text, $6::text, $7::text,
        $8::text, $9::text, $10::jsonb, $11::jsonb, $12::boolean, $13::text,
        $14::text, $15::jsonb, $16::boolean, $17::text, $18::text,
        $19::text, $20::boolean, $21::text, $21::text)
RETURNING *

-- name: update_rule
UPDATE raci_rules
   SET name = $2::text, intent = $3::text, description = $4::text, keywords = $5::jsonb,
       ticket_class = $6::text, priority = $7::text, assignment_group = $8::text, responsible = $9::text,
       accountable = $10::text, consulted = $11::jsonb, informed = $12::jsonb, approval_required = $13::boolean,
       approval_action = $14::text, risk_level = $15::text, knowledge_tags = $16::jsonb,
       auto_assign_agent = $17::boolean, auto_agent_model = $18::text, auto_agent_prompt = $19::text,
       security_classification = $20::text, enabled = $21::boolean, updated_by = $22::text, updated_at = now()
 WHERE id = $1::bigint
RETURNING *

-- name: insert_session
INSERT INTO intake_sessions (actor, actor_kind, title, message, category, requester_name, requester_email, answers,
                             rule_id, rule_name, intent, matched, confidence, classification, ticket_id,
                             classification_note_id, attachment_ids, approval_required, approval_action,
                             approval_status, change_request_id, auto_assign_requested, auto_assignment)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::jsonb,
        $9::bigint, $10::text, $11::text, $12::boolean, $13::double precision, $14::jsonb, $15::bigint,
        $16::bigint, $17::bigint[], $18::boolean, $19::text,
        $20::text, $21::bigint, $22::boolean, $23::jsonb)
RETURNING *

-- name: session_of_ticket
SELECT *
  FROM intake_sessions
 WHERE ticket_id = $1::bigint

-- name: set_session_auto_assignment
UPDATE intake_sessions
   SET auto_assignment = $2::jsonb
 WHERE id = $1::bigint
RETURNING *

-- name: list_sessions
-- Row scope of the ticket each session created: $1 allowed classifications,
-- $2 the caller's groups (NULL: every group). $3 optional ticket filter.
SELECT s.*
  FROM intake_sessions s
  LEFT JOIN tickets t ON t.id = s.ticket_id
 WHERE (t.id IS NULL OR t.security_classification = ANY($1::text[]))
   AND ($2::text[] IS NULL OR t.owning_group IS NULL OR t.owning_group = ANY($2::text[]))
   AND ($3::bigint IS NULL OR s.ticket_id = $3::bigint)
 ORDER BY s.id DESC
 LIMIT $4::integer OFFSET $5::integer

-- name: related_tickets
-- Recent tickets of the same owning group within the caller's row scope; the
-- service ranks them by shared keywords. $4 excludes one ticket (or none).
SELECT *
  FROM tickets
 WHERE owning_group = $1::text
   AND security_classification = ANY($2::text[])
   AND ($3::text[] IS NULL OR owning_group = ANY($3::text[]))
   AND id <> coalesce($4::bigint, 0)
 ORDER BY id DESC
 LIMIT $5::integer

-- name: count_rule_assignments
-- Auto-assignments of one rule inside the cap window, counted under the rule's row lock.
SELECT count(*)
  FROM intake_auto_assignments
 WHERE rule_id = $1::bigint
   AND decision = 'assigned'
   AND created_at > now() - make_interval(secs => $2::double precision)

-- name: insert_auto_assignment
INSERT INTO intake_auto_assignments (ticket_id, rule_id, decision, reason_code, reason, agent_id, task_id, note_id,
                                     catch_up_sync, actor)
VALUES ($1::bigint, $2::bigint, $3::text, $4::text, $5::text, $6::bigint, $7::bigint, $8::bigint,
        $9::boolean, $10::text)
RETURNING id

-- name: auto_assignments_of_ticket
SELECT *
  FROM intake_auto_assignments
 WHERE ticket_id = $1::bigint
 ORDER BY id

-- name: add_intake_note
-- An intake timeline note (source 'intake') plus its ticket_note_added event and
-- NOTIFY, inside the caller's transaction.
WITH n AS (
    INSERT INTO ticket_notes (ticket_id, kind, body, author, source, visibility, details)
    VALUES ($1::bigint, $2::text, $3::text, $4::text, 'intake', 'internal', $5::jsonb)
    RETURNING *
), e AS (
    INSERT INTO event_log (kind, category, level, actor, ticket_id, payload)
    SELECT 'ticket_note_added', 'ticket', 'info', $4::text, n.ticket_id,
           jsonb_build_object('ticket_id', n.ticket_id, 'note_id', n.id, 'kind', n.kind, 'source', n.source,
                              'visibility', n.visibility, 'author', n.author, 'steer', false)
      FROM n
    RETURNING id
), nt AS (
    SELECT pg_notify($6::text, e.id::text) FROM e
)
SELECT n.id, (SELECT count(*) FROM nt) AS notified
  FROM n
