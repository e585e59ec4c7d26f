"""What a file says about itself: a title and properties, read by the scan from the bytes it hashes.

Markdown front matter (YAML between `---` lines) as it is, and its `title` (else the first `# heading`);
HTML's `<title>`; the core properties of DOCX, PPTX and XLSX (`docProps/core.xml`, the same part in all three,
read from the zip without loading the document); a PDF's information dictionary. Properties are JSON values
(dates as ISO 8601 text), so the sink's `metadata jsonb` holds them as they are.

A file whose properties cannot be read (broken front matter, a damaged properties part) is still indexed,
without them, and the reason is reported with its name; a file that cannot be opened at all (not a zip, a
damaged PDF) has none here: its conversion says what is wrong with it, once.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import yaml

HEAD_BYTES = 64 * 1024  # where a text file's front matter and title must start
_FRONT_MATTER = re.compile(rb"\A(?:\xef\xbb\xbf)?---[ \t]*\r?\n(.*?\r?\n)?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
_MARKDOWN_TITLE = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.M)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.S | re.I)
FRONT_MATTER_SUFFIXES = frozenset({".md", ".markdown"})
_HTML = {".html", ".htm", ".xhtml"}
_OFFICE = {".docx", ".pptx", ".xlsx"}
# docProps/core.xml's elements -> property names (Dublin Core, as Office writes them)
_CORE = {
    "{http://purl.org/dc/elements/1.1/}title": "title",
    "{http://purl.org/dc/elements/1.1/}creator": "author",
    "{http://purl.org/dc/elements/1.1/}subject": "subject",
    "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}keywords": "keywords",
    "{http://purl.org/dc/terms/}created": "created",
    "{http://purl.org/dc/terms/}modified": "modified",
}
_PDF_INFO = {"Title": "title", "Author": "author", "Subject": "subject", "Keywords": "keywords",
             "CreationDate": "created", "ModDate": "modified"}  # fmt: skip


class UnreadableProperties(Exception):
    """The file's properties could not be read (broken front matter, a damaged zip): why."""


@dataclass(frozen=True)
class Properties:
    title: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


def read_properties(path: Path) -> Properties:
    """The title and properties of the file at `path` (a local file, or a downloaded copy of an object)."""
    suffix = path.suffix.lower()
    try:
        if suffix in FRONT_MATTER_SUFFIXES:
            return _markdown(_head(path))
        if suffix in _HTML:
            found = _HTML_TITLE.search(_head(path).decode("utf-8", "replace"))
            return Properties(_clean(html.unescape(found.group(1))) if found else None)
        if suffix in _OFFICE:
            return _titled(_office(path))
        if suffix == ".pdf":
            return _titled(_pdf(path))
    except (ElementTree.ParseError, yaml.YAMLError) as error:
        raise UnreadableProperties(f"{type(error).__name__}: {error}".splitlines()[0]) from error
    except (OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error):
        pass  # the file itself is damaged (a truncated zip, an encrypted member): left to its conversion to say
    return Properties()


def split_front_matter(data: bytes) -> bytes:
    """A Markdown file's bytes after its front matter: what is converted and embedded, so that an edit of the
    front matter alone changes no chunk. A block that is no YAML mapping (a horizontal rule, then prose) is
    text, and stays."""
    try:
        return data[_front_matter(data)[1] :]
    except yaml.YAMLError:  # kept as text; the scan names the file and why its metadata is missing
        return data


def _front_matter(data: bytes) -> tuple[dict, int]:
    """The front matter's mapping and where the text after it starts, within the file's first HEAD_BYTES; ({},
    0) where there is none. Raises yaml.YAMLError for a block that is no YAML."""
    found = _FRONT_MATTER.match(data[:HEAD_BYTES])
    if not found:
        return {}, 0
    loaded = yaml.safe_load((found.group(1) or b"").decode("utf-8", "replace"))
    if loaded is None:  # an empty block, or comments only
        return {}, found.end()
    return (loaded, found.end()) if isinstance(loaded, dict) else ({}, 0)


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(HEAD_BYTES)


def _markdown(head: bytes) -> Properties:
    loaded, start = _front_matter(head)
    values = _json_values(loaded)
    title = values.get("title")
    if not isinstance(title, str):
        heading = _MARKDOWN_TITLE.search(head[start:].decode("utf-8-sig", "replace"))
        title = heading.group(1) if heading else None
    return Properties(_clean(title), values)


def _office(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as package:
        if "docProps/core.xml" not in package.namelist():
            return {}
        root = ElementTree.fromstring(package.read("docProps/core.xml"))
    return {_CORE[child.tag]: child.text.strip() for child in root if child.tag in _CORE and (child.text or "").strip()}


def _pdf(path: Path) -> dict[str, Any]:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as error:  # damaged or encrypted: its conversion says so
        raise OSError(str(error)) from error
    try:
        info = document.get_metadata_dict(skip_empty=True)
    finally:
        document.close()
    values = {_PDF_INFO[key]: value.strip() for key, value in info.items() if key in _PDF_INFO and value.strip()}
    for key in ("created", "modified"):
        if key in values:
            values[key] = _pdf_date(values[key])
    return values


def _pdf_date(text: str) -> str:
    """`D:20260114093000+01'00'` as ISO 8601; text that is no PDF date stays as it is."""
    found = re.fullmatch(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(Z|[+-]\d{2}'?\d{2}'?)?", text.strip())
    if not found:
        return text
    year, month, day, hour, minute, second, zone = found.groups()
    stamp = f"{year}-{month or '01'}-{day or '01'}T{hour or '00'}:{minute or '00'}:{second or '00'}"
    if zone:
        stamp += "+00:00" if zone == "Z" else f"{zone[:3]}:{zone.replace(chr(39), '')[3:5]}"
    return stamp


def _titled(values: dict[str, Any]) -> Properties:
    return Properties(_clean(values.get("title")), _json_values(values))


def _clean(title: Any) -> str | None:
    return " ".join(str(title).replace("\x00", "").split()) or None if title is not None else None


def _json_values(value: Any) -> Any:
    """YAML's dates and times as ISO 8601 text, text without NUL; other values as JSON has them."""
    if isinstance(value, str):
        return value.replace("\x00", "")  # PostgreSQL's text and jsonb hold no NUL character
    if isinstance(value, dict):
        return {str(key).replace("\x00", ""): _json_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_values(item) for item in value]
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if value is None or isinstance(value, int | bool) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return str(value)  # what JSON cannot hold (NaN, binary): as YAML wrote it
