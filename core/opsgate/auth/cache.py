"""A short-lived, bounded, per-process cache of bearer-token principals.

The guard looks a token's digest up here before asking the database, so a
busy client costs no database round trip for authentication. Correctness
rules:

* every revocation through this process (`auth.repo.revoke_*`) bumps the
  process-wide generation before and again after its statement, and an entry
  filled under an older generation is never returned — a revoked token fails
  on the very next request here;
* the revoking statement also sends `NOTIFY opsgate_auth`; every process's
  event listener bumps its generation when it arrives (and whenever its LISTEN
  connection reconnects, since notifications may have been missed), so a
  token revoked by another process (an `opsgate worker` ending a task) stops
  working within milliseconds, and at the latest after
  `OPSGATE_AUTH_CACHE_SECONDS` if that notification is lost;
* an entry never outlives the token's own expiry.

Only bearer tokens (service and agent) are cached; sessions and proxy
identities always go to the database.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from opsgate.auth.principal import Principal

CHANNEL = "opsgate_auth"

_generation = 0


def invalidate() -> None:
    """Forget every cached principal in this process (all caches)."""
    global _generation
    _generation += 1


def generation() -> int:
    return _generation


def on_notify(_payload: str = "") -> None:
    """LISTEN callback for `opsgate_auth` (and for a LISTEN reconnect)."""
    invalidate()


class PrincipalCache:
    def __init__(self, ttl_seconds: float, max_size: int) -> None:
        self.ttl = ttl_seconds
        self.max_size = max_size
        self._entries: OrderedDict[str, tuple[float, int, Principal]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token_digest: str) -> Principal | None:
        entry = self._entries.get(token_digest)
        if entry is None:
            return None
        expires, gen, principal = entry
        if gen != _generation or expires <= time.monotonic():
            self._entries.pop(token_digest, None)
            return None
        return principal

    def put(self, token_digest: str, principal: Principal, filled_generation: int, lifetime: float | None) -> None:
        """Remember a principal read from the database under `filled_generation`
        (taken before the read); `lifetime` caps the entry (seconds the token stays valid)."""
        if self.ttl <= 0 or filled_generation != _generation:
            return
        keep = self.ttl if lifetime is None else min(self.ttl, lifetime)
        if keep <= 0:
            return
        self._entries[token_digest] = (time.monotonic() + keep, filled_generation, principal)
        self._entries.move_to_end(token_digest)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
