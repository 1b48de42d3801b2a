"""Ticket provider sync: registry, outbound outbox and dispatcher, inbound pull sync and reconcile.

- `registry`: the providers the plugins contribute, looked up by name.
- `outbox`: delivery of queued canonical changes (rows written by the tickets
  statements in the same transaction as the change) with retry and backoff.
- `inbound`: pull sync (changed-since cursor per provider), upsert by
  (provider, provider_class, provider_ref), case-log mirroring, reconcile.
- `loops`: the background dispatcher and pull loops started by `serve`.
- `service`/`routes`: the HTTP endpoints.
"""
