"""Walk a source (a folder or an object-store prefix): every supported file with its size, mtime and sha256,
grouped by shard.

Stat first: a file whose size and mtime equal what was seen before keeps its known sha256 and is not read,
so a scan of an unchanged folder costs one stat per file (of a prefix, one listing).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Literal

from embed_pipelines.core.rows import SourceFile
from embed_pipelines.core.shards import shard_of
from embed_pipelines.core.sources import LocalFolder, ObjectPrefix, Refused, Stat, UnreadableMetadata, sha256_of
from embed_pipelines.text.properties import Properties, UnreadableProperties, read_properties

VerifyHashes = Literal["always", "nightly", "never"]  # which syncs read every file, not only changed stats


@dataclass
class SourceScan:
    files_by_shard: dict[str, list[SourceFile]] = field(default_factory=lambda: defaultdict(list))
    ignored: dict[str, str] = field(default_factory=dict)  # relative path -> why it is not indexed
    unreadable: dict[str, str] = field(default_factory=dict)  # known files that cannot be read now: kept as known
    without_properties: dict[str, str] = field(default_factory=dict)  # files indexed without their own properties
    hashed: int = 0  # files read because they are new or their size or mtime changed
    accepted: int = 0  # files the folder holds that the collection takes, in every shard

    def files(self) -> dict[str, SourceFile]:
        return {file.path: file for files in self.files_by_shard.values() for file in files}


def scan_source(
    source: LocalFolder | ObjectPrefix,
    shard_count: int,
    accepts: Callable[[str], bool],
    shards: set[str] | None = None,
    known: dict[str, SourceFile] | None = None,
    rehash: bool = False,
) -> SourceScan:
    """Files of the requested shards (all when None) that `accepts` takes; `known` maps paths to files of an
    earlier scan; `rehash` reads every file even where size and mtime are unchanged (an edit that kept both:
    `rsync -t`, `cp -p`, some unpackers)."""
    if not source.exists():
        raise FileNotFoundError(f"Source {source} does not exist or is not a folder")
    known = known or {}
    scan = SourceScan()
    unreadable_folders: list[str] = []
    for relative in source.names(unreadable_folders):
        try:
            relative.encode("utf-8")
        except UnicodeEncodeError:
            scan.ignored[relative.encode("utf-8", "replace").decode()] = "file name is not valid UTF-8"
            continue
        if not accepts(relative):
            scan.ignored[relative] = f"unsupported file type {PurePosixPath(relative).suffix or '(none)'}"
            continue
        scan.accepted += 1
        shard = shard_of(relative, shard_count)
        if shards is not None and shard not in shards:
            continue
        try:
            file = _describe(source, relative, known.get(relative), rehash, source.stat(relative), scan)
        except Refused as refusal:
            scan.ignored[relative] = str(refusal)
            continue
        except OSError as exc:
            _unreadable(scan, relative, known, shard, f"cannot read: {exc.strerror or exc}")
            continue
        scan.hashed += file is not known.get(relative)
        scan.files_by_shard[shard].append(file)
    seen = scan.files().keys() | scan.unreadable.keys()
    for inside in unreadable_folders:  # what they held last time stays as it was
        for relative in known.keys() - seen:
            shard = shard_of(relative, shard_count)
            if (shards is None or shard in shards) and (inside == "." or relative.startswith(f"{inside}/")):
                _unreadable(scan, relative, known, shard, f"its folder {inside} cannot be read")
    return scan


def _unreadable(scan: SourceScan, relative: str, known: dict[str, SourceFile], shard: str, reason: str) -> None:
    """A file that cannot be read now is no deletion: a known one keeps its last listing (and so its
    rows), and is reported; an unknown one is not indexed."""
    if relative in known:
        scan.unreadable[relative] = reason
        scan.files_by_shard[shard].append(known[relative])
    else:
        scan.ignored[relative] = reason


def _describe(
    source: LocalFolder | ObjectPrefix,
    relative: str,
    before: SourceFile | None,
    rehash: bool,
    status: Stat,
    scan: SourceScan,
) -> SourceFile:
    """The file as it is; `before` itself when size and mtime are unchanged (no read), unless `rehash`. A file
    read is hashed and described from one local copy (an object is downloaded once). A file listed before its
    properties were read is read once more."""
    unchanged = before is not None and (before.size, before.mtime_ns) == (status.size, status.mtime_ns)
    described = before is not None and before.metadata is not None
    if unchanged and described and not rehash:
        return _with_permissions(before, status)
    with source.local_file(relative) as local:
        sha256 = sha256_of(local)
        if unchanged and described and sha256 == before.sha256:
            return _with_permissions(before, status)
        try:
            properties = read_properties(local)
        except UnreadableProperties as unreadable:
            scan.without_properties[relative] = f"its properties cannot be read: {unreadable}"
            properties = Properties()
    try:
        stored = source.user_metadata(relative)
    except UnreadableMetadata as unreadable:
        scan.without_properties[relative] = str(unreadable)
        stored = {}
    metadata = {**stored, **properties.values}
    return SourceFile(
        path=relative,
        size=status.size,
        mtime_ns=status.mtime_ns,
        sha256=sha256,
        title=properties.title,
        metadata=json.dumps(metadata, sort_keys=True, ensure_ascii=False),
        permissions=status.permissions,
    )


def _with_permissions(before: SourceFile, status: Stat) -> SourceFile:
    """A file whose bytes did not change, with its permissions now (`chmod` changes no modification time)."""
    return before if before.permissions == status.permissions else replace(before, permissions=status.permissions)
