-- Core journals: the audit trail and the domain event log (outbox).

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    actor_kind  text NOT NULL DEFAULT 'system'
                CHECK (actor_kind IN ('user', 'service', 'agent', 'system', 'provider', 'local')),
    action      text NOT NULL,
    category    text NOT NULL DEFAULT 'general',
    level       text NOT NULL DEFAULT 'info'
                CHECK (level IN ('debug', 'info', 'warning', 'error', 'critical')),
    target_type text,
    target_id   text,
    ticket_id   bigint,
    agent_id    bigint,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC, id DESC);
CREATE INDEX audit_log_ticket_idx ON audit_log (ticket_id, created_at DESC) WHERE ticket_id IS NOT NULL;
CREATE INDEX audit_log_agent_idx ON audit_log (agent_id, created_at DESC) WHERE agent_id IS NOT NULL;
CREATE INDEX audit_log_action_idx ON audit_log (action, created_at DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, created_at DESC);

CREATE TABLE event_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL,
    category    text NOT NULL DEFAULT 'general',
    level       text NOT NULL DEFAULT 'info'
                CHECK (level IN ('debug', 'info', 'warning', 'error', 'critical')),
    actor       text,
    ticket_id   bigint,
    agent_id    bigint,
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX event_log_created_idx ON event_log (created_at DESC, id DESC);
CREATE INDEX event_log_ticket_idx ON event_log (ticket_id, created_at DESC) WHERE ticket_id IS NOT NULL;
CREATE INDEX event_log_agent_idx ON event_log (agent_id, created_at DESC) WHERE agent_id IS NOT NULL;
CREATE INDEX event_log_kind_idx ON event_log (kind, created_at DESC);
