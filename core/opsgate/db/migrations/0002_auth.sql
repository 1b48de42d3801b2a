-- Principals, roles, scopes, tokens, sessions and the access decision log.

CREATE TABLE roles (
    name                     text PRIMARY KEY,
    description              text NOT NULL DEFAULT '',
    permissions              text[] NOT NULL,
    default_max_classification text NOT NULL DEFAULT 'internal'
        CHECK (default_max_classification IN ('public', 'internal', 'confidential', 'restricted', 'secret')),
    builtin                  boolean NOT NULL DEFAULT false,
    created_at               timestamptz NOT NULL DEFAULT now()
);

INSERT INTO roles (name, description, permissions, default_max_classification, builtin) VALUES
('platform-admin', 'Everything, including settings and access administration.', ARRAY['*'], 'secret', true),
('soc-manager', 'All ticket, agent, change and access work, including approvals.',
 ARRAY['tickets:*', 'agents:*', 'changes:*', 'access:request', 'access:read', 'leases:*', 'intake:*',
       'search:read', 'dashboard:read', 'audit:read', 'knowledge:*', 'plugins:read', 'settings:read',
       'deployments:write', 'tools:read', 'cicd:*', 'chat:*'], 'secret', true),
('analyst', 'Read tickets in scope, add notes, request info, changes and access; intake and search.',
 ARRAY['tickets:read', 'tickets:create', 'tickets:note', 'tickets:request_info', 'changes:read', 'changes:request',
       'access:request', 'intake:read', 'intake:submit', 'search:read', 'dashboard:read', 'agents:read',
       'knowledge:read', 'tools:read', 'cicd:read', 'chat:write'], 'confidential', true),
('auditor', 'Read-only, including the audit trail.',
 ARRAY['tickets:read', 'agents:read', 'changes:read', 'audit:read', 'dashboard:read', 'search:read',
       'intake:read', 'settings:read', 'plugins:read', 'leases:read', 'access:read', 'knowledge:read',
       'tools:read', 'cicd:read', 'chat:read'], 'secret', true),
('agent-operator', 'Spawn and supervise agents, complete changes, deploy.',
 ARRAY['agents:*', 'tickets:read', 'tickets:note', 'changes:read', 'changes:complete', 'deployments:write',
       'dashboard:read', 'leases:read', 'tools:read', 'settings:read'], 'confidential', true);

CREATE TABLE users (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username           text NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 200),
    display_name       text,
    email              text,
    password_hash      text,
    source             text NOT NULL DEFAULT 'local' CHECK (source IN ('local', 'proxy')),
    max_classification text CHECK (max_classification IN ('public', 'internal', 'confidential', 'restricted', 'secret')),
    disabled           boolean NOT NULL DEFAULT false,
    failed_logins      integer NOT NULL DEFAULT 0,
    locked_until       timestamptz,
    last_login_at      timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_roles (
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL REFERENCES roles (name),
    granted_by text,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, role)
);

CREATE TABLE user_scopes (
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_name text NOT NULL,
    granted_by text,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, group_name)
);

CREATE TABLE service_tokens (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role               text NOT NULL REFERENCES roles (name),
    token_hash         text NOT NULL UNIQUE,
    token_prefix       text NOT NULL,
    max_classification text CHECK (max_classification IN ('public', 'internal', 'confidential', 'restricted', 'secret')),
    groups             text[],
    created_by         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_used_at       timestamptz,
    revoked_at         timestamptz,
    revoked_by         text
);
CREATE UNIQUE INDEX service_tokens_active_name_idx ON service_tokens (name) WHERE revoked_at IS NULL;

CREATE TABLE agent_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id    bigint NOT NULL,
    ticket_id   bigint,
    task_id     bigint,
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    revoke_reason text
);
CREATE INDEX agent_tokens_agent_idx ON agent_tokens (agent_id) WHERE revoked_at IS NULL;

CREATE TABLE sessions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    client_ip   text,
    user_agent  text
);

CREATE TABLE access_decisions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    principal_kind text,
    principal   text,
    method      text NOT NULL,
    route       text NOT NULL,
    permission  text,
    allowed     boolean NOT NULL,
    reason      text NOT NULL
);
CREATE INDEX access_decisions_created_idx ON access_decisions (created_at DESC);
