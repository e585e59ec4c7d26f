"""Files that survive a crash whole or not at all: written beside their target, flushed to disk, then renamed
over it (a power loss otherwise leaves a 0-byte file that fails every later run), and the debris a killed run
leaves behind swept away."""

from __future__ import annotations

import os
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
