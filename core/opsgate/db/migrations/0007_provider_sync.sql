-- Provider sync: the outbound outbox, the inbound pull cursors and the
-- case-log entry keys already mirrored, plus the provider columns of tickets.
--
-- Expand only: provider_sync_status gains create_failed (the old values stay
-- accepted), and the provider identity of a ticket becomes
-- (provider, provider_class, provider_ref).

ALTER TABLE tickets DROP CONSTRAINT tickets_provider_sync_status_check;
ALTER TABLE tickets ADD CONSTRAINT tickets_provider_sync_status_check
    CHECK (provider_sync_status IN ('local_only', 'pending_create', 'pending_update', 'synced', 'create_failed',
                                    'error'));

DROP INDEX tickets_provider_ref_idx;
CREATE UNIQUE INDEX tickets_provider_ref_idx ON tickets (provider, provider_class, provider_ref)
    WHERE provider_ref IS NOT NULL;

-- One row per canonical change a provider must receive, written in the same
-- transaction as the change. Delivered in id order per ticket; claimed with a
-- lease (claimed_by/claimed_until) so several dispatchers never deliver the
-- same row at once, and a crashed dispatcher's claim lapses.
CREATE TABLE provider_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id       bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    provider        text NOT NULL CHECK (provider ~ '^[a-z][a-z0-9_-]{0,63}$'),
    op              text NOT NULL CHECK (op IN ('create', 'note', 'status', 'assignment')),
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    status          text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed', 'skipped')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_by      text,
    claimed_until   timestamptz,
    last_error      text,
    echo_key        text,  -- the provider's key of the case-log entry this note came back as
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX provider_outbox_open_idx ON provider_outbox (ticket_id, id) WHERE status IN ('pending', 'failed');
CREATE INDEX provider_outbox_due_idx ON provider_outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX provider_outbox_ticket_idx ON provider_outbox (ticket_id, op, id);
CREATE INDEX provider_outbox_marker_idx ON provider_outbox (provider, (payload ->> 'marker'))
    WHERE op = 'create';

-- Pull-sync state per provider: the provider's opaque cursor and a lease so
-- that one process at a time pulls a provider.
CREATE TABLE provider_sync_state (
    provider       text PRIMARY KEY CHECK (provider ~ '^[a-z][a-z0-9_-]{0,63}$'),
    cursor         text,
    lease_owner    text,
    lease_until    timestamptz,
    last_run_at    timestamptz,
    last_ok_at     timestamptz,
    last_error     text,
    runs           bigint NOT NULL DEFAULT 0,
    records_seen   bigint NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Case-log entries of a remote ticket already handled (mirrored as a note, or
-- recognised as an entry opsgate pushed itself): never mirrored twice.
CREATE TABLE provider_note_keys (
    ticket_id   bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    note_key    text NOT NULL CHECK (length(note_key) BETWEEN 1 AND 500),
    note_id     bigint REFERENCES ticket_notes (id) ON DELETE SET NULL,
    outbox_id   bigint REFERENCES provider_outbox (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ticket_id, note_key)
);
