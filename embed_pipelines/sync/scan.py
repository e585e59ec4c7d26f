"""Walk a source folder: every supported file with its size, mtime and sha256, grouped by shard.

Stat first: a file whose size and mtime equal what was seen before keeps its known sha256 and is not read,
so a scan of an unchanged folder costs one stat per file.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from embed_pipelines.storage.rows import SourceFile
from embed_pipelines.sync.shards import shard_of

FollowLinks = Literal["inside", "always", "never"]  # which symbolic links to files a scan follows
VerifyHashes = Literal["always", "nightly", "never"]  # which syncs read every file, not only changed stats


@dataclass
class SourceScan:
    files_by_shard: dict[str, list[SourceFile]] = field(default_factory=lambda: defaultdict(list))
    ignored: dict[str, str] = field(default_factory=dict)  # relative path -> why it is not indexed
    unreadable: dict[str, str] = field(default_factory=dict)  # known files that cannot be read now: kept as known
    hashed: int = 0  # files read because they are new or their size or mtime changed
    accepted: int = 0  # files the folder holds that the collection takes, in every shard

    def files(self) -> dict[str, SourceFile]:
        return {file.path: file for files in self.files_by_shard.values() for file in files}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _visible_files(root: Path, unreadable_folders: list[str]):
    """Files under root, skipping hidden files and folders (.git, .DS_Store, editor swap files); folders that
    cannot be listed are added to `unreadable_folders`."""
    for folder, subfolders, names in os.walk(root, onerror=lambda error: unreadable_folders.append(error.filename)):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield Path(folder) / name


def _refusal(path: Path, root: Path, links: FollowLinks, status: os.stat_result) -> str | None:
    """Why a file is not read, or None: a symbolic link that `links` does not follow (by default one that
    leads out of the source folder: `notes.txt -> ~/.aws/credentials` must not become searchable), or
    something that is no regular file (a FIFO or device would block the scan)."""
    if path.is_symlink():
        if links == "never":
            return "a symbolic link (links are not followed)"
        if links == "inside" and not path.resolve().is_relative_to(root.resolve()):
            return "a symbolic link that leads out of the source folder"
    if not stat.S_ISREG(status.st_mode):
        return "not a regular file"
    return None


def scan_source(
    root: Path,
    shard_count: int,
    accepts: Callable[[Path], bool],
    shards: set[str] | None = None,
    known: dict[str, SourceFile] | None = None,
    links: FollowLinks = "inside",
    rehash: bool = False,
) -> SourceScan:
    """Regular files of the requested shards (all when None) that `accepts` takes; `known` maps paths to files
    of an earlier scan; `links` says which symbolic links are followed; `rehash` reads every file even where
    size and mtime are unchanged (an edit that kept both: `rsync -t`, `cp -p`, some unpackers)."""
    if not root.is_dir():
        raise FileNotFoundError(f"Source folder {root} does not exist or is not a folder")
    known = known or {}
    scan = SourceScan()
    unreadable_folders: list[str] = []
    for path in _visible_files(root, unreadable_folders):
        relative = path.relative_to(root).as_posix()
        try:
            relative.encode("utf-8")
        except UnicodeEncodeError:
            scan.ignored[relative.encode("utf-8", "replace").decode()] = "file name is not valid UTF-8"
            continue
        if not accepts(path):
            scan.ignored[relative] = f"unsupported file type {path.suffix or '(none)'}"
            continue
        scan.accepted += 1
        shard = shard_of(relative, shard_count)
        if shards is not None and shard not in shards:
            continue
        try:
            status = path.stat()  # once per file: the sensor stats every file on every tick
            if refusal := _refusal(path, root, links, status):
                scan.ignored[relative] = refusal
                continue
            file = _describe(path, relative, known.get(relative), rehash, status)
        except OSError as exc:
            _unreadable(scan, relative, known, shard, f"cannot read: {exc.strerror or exc}")
            continue
        scan.hashed += file is not known.get(relative)
        scan.files_by_shard[shard].append(file)
    seen = scan.files().keys() | scan.unreadable.keys()
    for folder in unreadable_folders:  # what they held last time stays as it was
        inside = Path(folder).relative_to(root).as_posix()
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


def _describe(path: Path, relative: str, before: SourceFile | None, rehash: bool, status: os.stat_result) -> SourceFile:
    """The file as it is; `before` itself when size and mtime are unchanged (no read), unless `rehash`."""
    if before is not None and (before.size, before.mtime_ns) == (status.st_size, status.st_mtime_ns):
        if not rehash:
            return before
        sha256 = sha256_of(path)
        return before if sha256 == before.sha256 else replace(before, sha256=sha256)
    return SourceFile(path=relative, size=status.st_size, mtime_ns=status.st_mtime_ns, sha256=sha256_of(path))
