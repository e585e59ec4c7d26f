"""What changed in a source between two scans: added, edited, deleted, renamed, unchanged files."""

from __future__ import annotations

from dataclasses import dataclass, field

from embed_pipelines.core.rows import SourceFile


@dataclass
class SourceChanges:
    added: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (old path, new path), same bytes
    unchanged: list[str] = field(default_factory=list)

    @property
    def touched_paths(self) -> set[str]:
        """Every path whose rows must change: both ends of a rename count."""
        renamed = {path for pair in self.renamed for path in pair}
        return set(self.added) | set(self.edited) | set(self.deleted) | renamed

    def summary(self) -> str:
        return ", ".join(f"{count} {name}" for name, count in self.counts().items())

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "edited": len(self.edited),
            "deleted": len(self.deleted),
            "renamed": len(self.renamed),
            "unchanged": len(self.unchanged),
        }


def mass_deletion(deleted: int, documents: int, listed: int, max_share: float) -> str | None:
    """Why a sync that deletes `deleted` of the collection's `documents` looks like a source that is not
    there (unmounted, emptied, the wrong folder) rather than real deletions, or None. `listed`: files the
    source lists now."""
    if not deleted:
        return None
    if listed == 0:
        return f"the source lists no files, so all {deleted} documents would be deleted"
    if deleted > max_share * documents:
        share = deleted / documents
        return f"{deleted} of its {documents} documents ({share:.0%}) would be deleted, more than {max_share:.0%}"
    return None


def compare_scans(before: dict[str, SourceFile], after: dict[str, SourceFile]) -> SourceChanges:
    """Both map path -> file. A deleted file whose bytes reappear under a new path is a rename."""
    changes = SourceChanges()
    for path, file in sorted(after.items()):
        if path not in before:
            changes.added.append(path)
        elif before[path].described() != file.described():
            changes.edited.append(path)
        else:
            changes.unchanged.append(path)
    deleted = sorted(set(before) - set(after))
    added_by_sha: dict[str, list[str]] = {}
    for path in changes.added:
        added_by_sha.setdefault(after[path].sha256, []).append(path)
    for path in deleted:
        candidates = added_by_sha.get(before[path].sha256)
        if candidates:
            new_path = candidates.pop(0)
            changes.added.remove(new_path)
            changes.renamed.append((path, new_path))
        else:
            changes.deleted.append(path)
    return changes
