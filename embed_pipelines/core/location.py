"""Where state lives: a folder on local disk or a prefix in an object store (`s3://`, `gs://`, `abfs://`,
`file://`), behind one small interface.

pyarrow's filesystems rather than fsspec: pyarrow is already how every state file is read and written, it
reaches S3, GCS and Azure with each SDK's standard environment (for S3 `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`), so no credential ever passes through
config, and a large file is read a row group at a time, only the columns a step needs.

Writes are whole or absent. On local disk a file is written beside its target, flushed and renamed over it;
an object store has no rename, but an object appears only once its upload completes, so the finished file is
uploaded to its key in one piece.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from embed_pipelines.core.files import DiskFull, disk_full, replace_durably, sweep_debris, temporary_beside

_COPY_CHUNK = 8 << 20  # bytes per read and write when copying to or from an object store


@dataclass(frozen=True)
class Location:
    """A file or folder in a filesystem; `/` goes down a level."""

    fs: pafs.FileSystem
    path: str

    @classmethod
    def of(cls, where: str | Path) -> Location:
        """A URL (`s3://bucket/prefix`, ...) or a local path."""
        text = str(where)
        if "://" not in text:
            return cls(pafs.LocalFileSystem(), str(Path(text).expanduser().absolute()))
        fs, path = pafs.FileSystem.from_uri(text)
        return cls(fs, path.rstrip("/"))

    def __truediv__(self, name: str) -> Location:
        return Location(self.fs, f"{self.path}/{name}")

    def __str__(self) -> str:
        return self.path if self.local else f"{self.fs.type_name}://{self.path}"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def exists(self) -> bool:
        return self.fs.get_file_info(self.path).type != pafs.FileType.NotFound

    def files(self, suffix: str = ".parquet", recursive: bool = False) -> list[Location]:
        """The files in this folder whose names end in `suffix`; none when it does not exist."""
        found = (Location(self.fs, info.path) for info in self._file_infos(suffix, recursive))
        return sorted(found, key=lambda location: location.path)

    def sizes(self, suffix: str = ".parquet", recursive: bool = False) -> dict[str, tuple[int, float]]:
        """Name -> (bytes, modified in seconds since the epoch) of the files `files` lists (with `recursive`,
        names are paths under this folder); one listing."""
        return {
            info.path.removeprefix(f"{self.path}/"): (info.size, info.mtime.timestamp())
            for info in self._file_infos(suffix, recursive)
        }

    def _file_infos(self, suffix: str, recursive: bool) -> Iterator[pafs.FileInfo]:
        selector = pafs.FileSelector(self.path, recursive=recursive, allow_not_found=True)
        return (info for info in self.fs.get_file_info(selector) if info.is_file and info.path.endswith(suffix))

    def folders(self) -> list[Location]:
        """The folders in this folder; none when it does not exist."""
        selector = pafs.FileSelector(self.path, allow_not_found=True)
        found = self.fs.get_file_info(selector)
        folders = (Location(self.fs, info.path) for info in found if info.type == pafs.FileType.Directory)
        return sorted(folders, key=lambda location: location.path)

    def read_table(self, **options):
        return pq.read_table(self.path, filesystem=self.fs, **options)

    def parquet_file(self) -> pq.ParquetFile:
        """Without pre-buffering: a pre-buffering reader keeps every range it read until it is closed, so
        reading a 2-million-row file a batch at a time held 0.8 MB more per batch (1.6 GB by its end)."""
        return pq.ParquetFile(self.fs.open_input_file(self.path), pre_buffer=False)

    def parquet_metadata(self) -> pq.FileMetaData:
        with self.fs.open_input_file(self.path) as handle:
            return pq.read_metadata(handle)

    def read_text(self) -> str:
        with self.fs.open_input_stream(self.path) as handle:
            return handle.read().decode("utf-8")

    def write_text(self, text: str) -> None:
        with self.writing() as scratch:
            scratch.write_text(text, encoding="utf-8")
            self.put(scratch)

    def put(self, written: Path) -> None:
        """Make the finished local file `written` this file, whole: renamed into place on local disk, else
        uploaded in one piece (the object appears only when its upload completes)."""
        if self.local:
            replace_durably(written, Path(self.path))
            return
        with written.open("rb") as source, self.fs.open_output_stream(self.path) as target:
            shutil.copyfileobj(source, target, _COPY_CHUNK)
        written.unlink()

    def download(self, target: Path) -> None:
        """A local copy of this file's bytes at `target`."""
        with self.fs.open_input_stream(self.path) as source, target.open("wb") as local:
            shutil.copyfileobj(source, local, _COPY_CHUNK)

    @contextmanager
    def writing(self) -> Iterator[Path]:
        """A local scratch file to write this file's bytes into; it becomes this file with `put`, and is
        removed if the write fails."""
        if self.local:
            scratch = temporary_beside(Path(self.path))
        else:  # in the system's temp folder: this process's own scratch, never shared state
            descriptor, name = tempfile.mkstemp(prefix="embed-pipelines-", suffix=".tmp")
            os.close(descriptor)
            scratch = Path(name)
        try:
            yield scratch
        except BaseException as error:
            scratch.unlink(missing_ok=True)
            if disk_full(error):
                raise DiskFull(scratch.parent, f"{self} was left as it was; free space there and sync again") from error
            raise

    def sweep_debris(self, older_than: float) -> int:
        """Scratch files of killed writes under this folder, older than `older_than`; an object store has none
        (an object appears whole or not at all)."""
        return sweep_debris(Path(self.path), older_than) if self.local else 0

    def delete(self) -> None:
        self.fs.delete_file(self.path)

    def delete_tree(self) -> None:
        """Remove this folder and everything under it; nothing when it does not exist."""
        if self.exists():
            self.fs.delete_dir(self.path)

    def move_to(self, target: Location) -> None:
        """A rename on local disk; a copy, then a delete, in an object store (callers name targets by content,
        so a move cut short and done again leaves one copy). The target is modified at the move, as an object
        store's copy is: a retired file's age counts from its retirement."""
        if self.local:
            Path(target.path).parent.mkdir(parents=True, exist_ok=True)
        self.fs.move(self.path, target.path)
        if self.local:
            os.utime(target.path)
