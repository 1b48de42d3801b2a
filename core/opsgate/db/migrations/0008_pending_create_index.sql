-- The provider dispatcher looks once a minute for tickets marked
-- pending_create that have no queued create (outbox_enqueue_missing_creates).
-- Without this index that is a sequential scan of every ticket (~350 ms of
-- CPU per process at 1M tickets); with it, a read of the few pending rows.

CREATE INDEX tickets_pending_create_idx ON tickets (id)
    WHERE provider_sync_status = 'pending_create' AND provider_ref IS NULL;
