"""Which process writes a collection's shards: the one holding their leases in PostgreSQL.

A sync run executed in a CLI or API process holds a session advisory lock per shard in the index's database,
on a connection of its own, taken before it looks for other running syncs and kept until it ends. PostgreSQL
drops a session's locks when the session ends: at once when the process ends on any host, however it ends
(SIGKILL, a container's PID namespace torn down), and within about a minute (TCP keepalives, set on both
sides of the session) when its machine is gone. So a sync is alive exactly while its leases are held, seen
alike from every host sharing the database and the Dagster instance: no PID or host name is trusted, and two
syncs started at the same instant cannot both pass the check.

Every step of a run writes its shards under the same leases (`writing_shards`), waiting while another process
writes them (the live worker's batch, a sync in a CLI), so that no two processes ever write one shard's state at
once; a step of a CLI sync, whose process holds the leases already, goes on."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import psycopg

from embed_pipelines.resources.postgres import PostgresResource
from embed_pipelines.storage.connect import KEEPALIVES

# The server's side of the session's TCP keepalives, as the client's (ignored on a Unix socket): without them
# PostgreSQL notices a vanished machine only after the system's default of two hours.
SERVER_KEEPALIVES = {f"tcp_{name}": str(KEEPALIVES[name]) for name in ("keepalives_idle", "keepalives_interval",
                                                                       "keepalives_count")}  # fmt: skip
LEASES = 0x53594E43  # the first key of every lease: this package's sync leases, apart from other advisory locks
LIVE = 0x4C495645  # the first key of a collection's live worker lease: one worker per collection
_own_sessions: set[int] = set()  # backend PIDs of the sessions holding this process's leases
_held_here: set[tuple[int, int]] = set()  # the leases those sessions hold
_lease_sockets: set[int] = set()  # their sockets' file descriptors in this process


def _release_in_child() -> None:
    """A forked child must not keep its parent's leases alive: a parent killed with SIGKILL would otherwise
    hold them until its orphans end. (The package's own workers start from the fork server and hold none; this
    covers a plain fork by anything else in the process.) The child's copies of the lease
    sockets become /dev/null, under the same numbers, so nothing it closes or writes reaches another file."""
    if not _lease_sockets:
        return
    nothing = os.open(os.devnull, os.O_RDWR)
    for socket in _lease_sockets:
        os.dup2(nothing, socket)
    os.close(nothing)
    _lease_sockets.clear()
    _own_sessions.clear()
    _held_here.clear()


os.register_at_fork(after_in_child=_release_in_child)


def _key(collection: str, shard: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{collection}/{shard}".encode()).digest()[:4], "big") & 0x7FFFFFFF


@contextmanager
def holding_shards(postgres: PostgresResource, collection: str, shards: Iterable[str]) -> Iterator[bool]:
    """Holds the shards' leases while the block runs; yields False (holding none) when another session holds
    any of them."""
    with _holding(postgres, _shard_keys(collection, shards)) as session:
        yield session is not None


@contextmanager
def writing_shards(postgres: PostgresResource, collection: str, shards: Iterable[str]) -> Iterator[None]:
    """A run's step writes its shards under their leases: those this process does not hold already, waited
    for while another process holds them."""
    missing = [key for key in _shard_keys(collection, shards) if key not in _held_here]
    if not missing:
        yield
        return
    with _holding(postgres, missing, wait=True):
        yield


def _shard_keys(collection: str, shards: Iterable[str]) -> list[tuple[int, int]]:
    return [(LEASES, _key(collection, shard)) for shard in sorted(shards)]  # one order: waiters never deadlock


@contextmanager
def holding_live_lease(postgres: PostgresResource, collection: str) -> Iterator[psycopg.Connection | None]:
    """Held by a collection's live worker for as long as it lives: the session holding it (the worker checks
    that it is still there), or None when another worker holds it."""
    with _holding(postgres, [(LIVE, _key(collection, "live"))]) as session:
        yield session


def live_worker_alive(conn: psycopg.Connection, collection: str) -> bool:
    """Whether a session, on any host, holds the collection's live worker lease."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s "
        "AND objsubid = 2",
        (LIVE, _key(collection, "live")),
    ).fetchone()
    return row[0] > 0


@contextmanager
def _holding(
    postgres: PostgresResource, keys: list[tuple[int, int]], wait: bool = False
) -> Iterator[psycopg.Connection | None]:
    """Session advisory locks on a connection of their own, held while the block runs: all of them (the
    session holding them is yielded), or none (None) when another session holds any; `wait`: until it does not."""
    take = "SELECT pg_advisory_lock(%s, %s), true" if wait else "SELECT pg_try_advisory_lock(%s, %s)"
    with postgres.connect() as conn:  # its own session: closing it ends the leases
        for name, value in SERVER_KEEPALIVES.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        for key in keys:
            if not conn.execute(take, key).fetchone()[-1]:
                yield None
                return
        session, socket = conn.info.backend_pid, conn.fileno()
        _own_sessions.add(session)
        _lease_sockets.add(socket)
        _held_here.update(keys)
        try:
            yield conn
        finally:
            _own_sessions.discard(session)
            _lease_sockets.discard(socket)
            _held_here.difference_update(keys)


def held_elsewhere(conn: psycopg.Connection, collection: str, shards: Iterable[str]) -> bool:
    """Whether a session of another process, on any host, holds a lease of any of the shards."""
    keys = [_key(collection, shard) for shard in shards]
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s "
        "AND objid = ANY(%s) AND objsubid = 2 AND pid <> ALL(%s)",
        (LEASES, keys, list(_own_sessions)),
    ).fetchone()
    return row[0] > 0
