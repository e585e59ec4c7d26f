"""Hash shards: the partitions of every asset. A file's shard depends only on its relative path."""

from __future__ import annotations

import hashlib


def shard_keys(count: int) -> list[str]:
    width = len(str(count - 1))
    return [str(i).zfill(width) for i in range(count)]


def shard_of(relative_path: str, count: int) -> str:
    """Stable across processes and machines (unlike Python's salted `hash`)."""
    digest = hashlib.sha256(relative_path.encode("utf-8")).digest()
    return shard_keys(count)[int.from_bytes(digest[:8], "big") % count]
