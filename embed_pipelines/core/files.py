"""Files that survive a crash whole or not at all: written beside their target, flushed to disk, then renamed
over it (a power loss otherwise leaves a 0-byte file that fails every later run), the debris a killed run
leaves behind swept away, and a full disk said with its folder."""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

DEBRIS = ".*.tmp"  # what a write leaves beside its target when it is killed before the rename
DEBRIS_AGE_S = 3600  # scratch files older than this belong to no running write


def temporary_beside(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


def replace_durably(written: Path, target: Path) -> None:
    """Rename a finished file over `target`, its bytes and the rename both on disk first."""
    with written.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(written, target)
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def sweep_debris(root: Path, older_than: float) -> int:
    """Remove the temporary files of writes that were killed before `older_than` (a time stamp); returns how
    many went. Writes of a running sync are younger and stay."""
    swept = 0
    for path in root.rglob(DEBRIS) if root.is_dir() else ():
        try:
            if path.stat().st_mtime < older_than:
                path.unlink()
                swept += 1
        except FileNotFoundError:  # finished or swept meanwhile
            continue
    return swept


class DiskFull(OSError):
    """No space left where a file was being written, said with the folder, the space free there and what to do
    (an ENOSPC alone names no path)."""

    def __init__(self, folder: Path | str, what: str):
        super().__init__(f"no space left on the disk of {folder} ({free_mib(folder)} free): {what}")
        self.errno = errno.ENOSPC


def free_mib(folder: Path | str) -> str:
    return f"{free_bytes(folder) / 2**20:.1f} MiB"


def free_bytes(folder: Path | str) -> int:
    """The space free on the disk of `folder` (or of its nearest existing parent)."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def disk_full(error: BaseException | None) -> BaseException | None:
    """The ENOSPC in the error's chain (SQLite, under Dagster's instance storage, says it in words), or None."""
    while error is not None:
        if getattr(error, "errno", None) == errno.ENOSPC or "database or disk is full" in str(error):
            return error
        error = error.__cause__ or error.__context__
    return None
