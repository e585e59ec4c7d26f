"""Which process syncs a collection's shards on this host: the one holding their locks.

A sync run executed in a CLI or API process holds an `flock` on one file per shard it syncs, under the Dagster
instance, taken before it looks for other running syncs and kept until it ends. The kernel lets the locks go
when the process ends, however it ends (SIGKILL, a container's PID namespace torn down), so a sync is alive
exactly while its locks are held: no PID is trusted, and two syncs started at the same instant cannot both
pass the check. First-time set-up of the instance is serialized by a lock of its own."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from embed_pipelines.core import settings

_held: set[Path] = set()  # lock files this process holds: another run cannot hold them too


def _lock_file(collection: str, shard: str) -> Path:
    folder = settings.dagster_home() / "locks" / collection
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{shard}.lock"


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding the file's lock, or None when another process holds it."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


@contextmanager
def holding_shards(collection: str, shards: Iterable[str]) -> Iterator[bool]:
    """Holds the shards' locks while the block runs; yields False (holding none) when another process holds
    any of them."""
    paths = [_lock_file(collection, shard) for shard in sorted(shards)]
    held: list[int] = []
    try:
        for path in paths:
            descriptor = _try_lock(path)
            if descriptor is None:
                yield False
                return
            held.append(descriptor)
        _held.update(paths)
        try:
            yield True
        finally:
            _held.difference_update(paths)
    finally:
        for descriptor in held:
            os.close(descriptor)  # closing the descriptor releases its lock


def any_held_elsewhere(collection: str, shards: Iterable[str]) -> bool:
    """Whether another live process of this host holds a lock of any of the shards."""
    for shard in shards:
        path = _lock_file(collection, shard)
        if path in _held:
            continue
        descriptor = _try_lock(path)
        if descriptor is None:
            return True
        os.close(descriptor)
    return False


@contextmanager
def setting_up() -> Iterator[None]:
    """One process at a time creates or migrates the Dagster instance (two at once leave SQLite's schema with
    two heads)."""
    path = settings.dagster_home() / "locks" / "instance.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
