"""Where a collection's files come from: a local folder or an object-store prefix (`s3://bucket/docs`).

Both answer the same questions: which files are there (by path relative to the root, hidden ones left out),
each file's size and modification time (the stat-first signal: for an object, what the store's listing says,
so an unchanged prefix costs one listing and no reads), its bytes, and a local file to convert (an object is
downloaded to this process's own temp folder and removed afterwards).
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import BinaryIO, Literal

import pyarrow.fs as pafs

from embed_pipelines.core.location import Location

FollowLinks = Literal["inside", "always", "never"]  # which symbolic links to files a scan follows


@dataclass(frozen=True)
class Stat:
    size: int
    mtime_ns: int
    permissions: str | None = None  # `owner:group:mode` of a local file, where asked (SourceFile.permissions)


class Refused(Exception):
    """A file the scan does not read, and why."""


class UnreadableMetadata(Exception):
    """An object's user metadata could not be read: why (the object is indexed without it)."""


def source_of(where: str | Path) -> Path | str:
    """A local folder as an absolute path, an object-store URL as it is: what a collection's source holds."""
    text = str(where)
    return text.rstrip("/") if "://" in text and not text.startswith("file://") else Path(text).expanduser().resolve()


def open_source(
    where: Path | str, links: FollowLinks = "inside", permissions: bool = False
) -> LocalFolder | ObjectPrefix:
    """`permissions`: a local folder's files are listed with their POSIX owner, group and mode."""
    return ObjectPrefix(Location.of(where)) if isinstance(where, str) else LocalFolder(where, links, permissions)


def _hidden(relative: str) -> bool:
    """.git, .DS_Store, editor swap files."""
    return any(part.startswith(".") for part in relative.split("/"))


class LocalFolder:
    def __init__(self, root: Path, links: FollowLinks = "inside", permissions: bool = False):
        self.root = root
        self.links = links
        self.permissions = permissions

    def __str__(self) -> str:
        return str(self.root)

    def exists(self) -> bool:
        return self.root.is_dir()

    def names(self, unreadable_folders: list[str]) -> Iterator[str]:
        """Relative paths of the visible files, sorted folder by folder; folders that cannot be listed are
        added (relative) to `unreadable_folders`."""

        def unreadable(error: OSError) -> None:
            unreadable_folders.append(Path(error.filename).relative_to(self.root).as_posix())

        for folder, subfolders, names in os.walk(self.root, onerror=unreadable):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            base = Path(folder).relative_to(self.root)
            for name in sorted(names):
                if not name.startswith("."):
                    yield (base / name).as_posix()

    def stat(self, relative: str) -> Stat:
        """Once per file (the sensor stats every file on every tick). Refused: a symbolic link that `links`
        does not follow (by default one that leads out of the folder: `notes.txt -> ~/.aws/credentials` must
        not become searchable), or something that is no regular file (a FIFO or device would block)."""
        path = self.root / relative
        status = path.stat()
        if path.is_symlink():
            if self.links == "never":
                raise Refused("a symbolic link (links are not followed)")
            if self.links == "inside" and not path.resolve().is_relative_to(self.root.resolve()):
                raise Refused("a symbolic link that leads out of the source folder")
        if not stat.S_ISREG(status.st_mode):
            raise Refused("not a regular file")
        return Stat(status.st_size, status.st_mtime_ns, _permissions(status) if self.permissions else None)

    def open(self, relative: str) -> BinaryIO:
        return (self.root / relative).open("rb")

    @contextmanager
    def local_file(self, relative: str) -> Iterator[Path]:
        yield self.root / relative

    def user_metadata(self, relative: str) -> dict[str, str]:
        return {}


def _permissions(status: os.stat_result) -> str:
    """`owner:group:mode`, by name where the system knows one (a role of that name is a principal)."""
    return f"{_named('user', status.st_uid)}:{_named('group', status.st_gid)}:{stat.S_IMODE(status.st_mode):04o}"


@lru_cache(maxsize=2048)
def _named(kind: str, number: int) -> str:
    """A user's or group's name, else its number."""
    try:
        return pwd.getpwuid(number).pw_name if kind == "user" else grp.getgrgid(number).gr_name
    except KeyError:
        return str(number)


class ObjectPrefix:
    def __init__(self, root: Location):
        self.root = root
        self._listed: dict[str, Stat] = {}

    def __str__(self) -> str:
        return str(self.root)

    def exists(self) -> bool:
        return self.root.fs.get_file_info(self.root.path).type == pafs.FileType.Directory

    def names(self, unreadable_folders: list[str]) -> Iterator[str]:
        """One listing of the prefix; sizes and modification times come with it."""
        selector = pafs.FileSelector(self.root.path, recursive=True)
        start = len(self.root.path) + 1
        self._listed = {
            info.path[start:]: Stat(info.size, info.mtime_ns)
            for info in self.root.fs.get_file_info(selector)
            if info.is_file and not _hidden(info.path[start:])
        }
        yield from sorted(self._listed)

    def stat(self, relative: str) -> Stat:
        return self._listed[relative]

    def open(self, relative: str) -> BinaryIO:
        return self.root.fs.open_input_stream(f"{self.root.path}/{relative}")

    @contextmanager
    def local_file(self, relative: str) -> Iterator[Path]:
        """A downloaded copy under its own name (converters go by the suffix), removed afterwards."""
        folder = Path(tempfile.mkdtemp(prefix="embed-pipelines-source-"))
        try:
            target = folder / relative.rsplit("/", 1)[-1]
            (self.root / relative).download(target)
            yield target
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @property
    def bucket(self) -> str:
        return self.root.path.partition("/")[0]

    @property
    def key_prefix(self) -> str:
        """What the keys of the source's objects start with: `docs/` for `s3://bucket/docs`, nothing at a root."""
        prefix = self.root.path.partition("/")[2]
        return f"{prefix}/" if prefix else ""

    def user_metadata(self, relative: str) -> dict[str, str]:
        """An S3 object's user metadata (`x-amz-meta-*`, names in lower case), by one HEAD request: pyarrow's
        filesystem does not return it. Other stores' metadata is not read."""
        if self.root.fs.type_name != "s3":
            return {}
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._s3_client.head_object(Bucket=self.bucket, Key=self.key_prefix + relative).get("Metadata", {})
        except (BotoCoreError, ClientError) as error:
            raise UnreadableMetadata(  # after the SDK's own retries of throttling and 5xx answers
                f"its object metadata cannot be read (indexed without it until the object changes): {error}"
            ) from None

    @cached_property
    def _s3_client(self):
        import boto3  # the AWS SDK reads the same standard environment as pyarrow (AWS_ENDPOINT_URL, keys)

        return boto3.client("s3")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()
