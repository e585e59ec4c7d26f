"""Text files too large to be worth a parse (a log, a data dump, a book), read and chunked as a stream.

docling parses a whole file into one document before anything is chunked: ~10 s per MB here, and a 30 MB
file ran past the conversion limit at 1.6 GB. A streamed file is read a window at a time, cut into sections
at its Markdown headings (docling reads text files as Markdown: the same ATX and setext headings), and each
section is split by semchunk, the splitter docling's own chunker uses for long text, at paragraph, line,
sentence and word breaks. Memory holds a few windows, whatever the file's size.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import BinaryIO

WINDOW_CHARS = 1 << 20  # text handed to a chunking worker at a time
UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")
_BREAKS = ("\n\n", "\n", " ")  # where a window may end, best first
# An ATX heading (`## Title`), or a setext one (a line underlined with = or -). Linear: a 30 MB line is read once.
_HEADING = re.compile(r"^(#{1,6})[ \t]+([^\n]*)$|^([^\n]+)\n(=+|-+)[ \t]*$", re.MULTILINE)
_COUNTS_KEPT = 65_536  # token counts remembered per section split (semchunk asks about the same pieces again)


def read_windows(stream: BinaryIO, window_chars: int = WINDOW_CHARS) -> Iterator[str]:
    """The stream's text in windows of about `window_chars`, each ending at a paragraph break where there is
    one in its second half (else a line break, else a space). UTF-8 (UTF-16 by its byte mark); undecodable
    bytes become U+FFFD, NUL characters (which PostgreSQL cannot store) are dropped, line ends become \\n."""
    start = stream.read(2)
    decoder = codecs.getincrementaldecoder("utf-16" if start in UTF16_MARKS else "utf-8")(errors="replace")
    carry = decoder.decode(start)
    while True:
        block = stream.read(window_chars)
        text = (carry + decoder.decode(block, final=not block)).replace("\x00", "").replace("\r\n", "\n")
        if not block:
            if text:
                yield text
            return
        cut = _last_break(text)
        yield text[:cut]
        carry = text[cut:]


def _last_break(text: str) -> int:
    for separator in _BREAKS:
        found = text.rfind(separator, len(text) // 2)
        if found > 0:
            return found + len(separator)
    return len(text)


@dataclass(frozen=True)
class Section:
    """Text under one heading path (outermost first)."""

    headings: tuple[str, ...]
    text: str


class HeadingPath:
    """The headings above the text read so far: a window is cut into sections at each heading it holds."""

    def __init__(self) -> None:
        self.headings: list[tuple[int, str]] = []  # (level, title)

    def sections(self, window: str) -> list[Section]:
        found, start = [], 0
        for heading in _HEADING.finditer(window):
            atx, title, setext_title, underline = heading.groups()
            title = (title.rstrip(" \t#") if atx else setext_title).strip()
            if not title:
                continue
            found.append(self._section(window[start : heading.start()]))
            level = len(atx) if atx else (1 if underline.startswith("=") else 2)
            self.headings = [h for h in self.headings if h[0] < level] + [(level, title)]
            start = heading.end()
        found.append(self._section(window[start:]))
        return [section for section in found if section.text.strip()]

    def _section(self, text: str) -> Section:
        return Section(tuple(title for _, title in self.headings), text.strip())


def sections(windows: Iterable[str]) -> Iterator[list[Section]]:
    """Each window's sections, with the heading path carried from window to window."""
    path = HeadingPath()
    for window in windows:
        yield path.sections(window)


def split_section(section: Section, max_tokens: int, count: Callable[[str], int]) -> list[tuple[list[str], str]]:
    """A section's chunks as (headings, text), each text its headings and a piece of the section, one per
    line (as docling's chunker writes them), within `max_tokens`. Headings that would take more than half of
    the budget are left out of the text (they stay in the chunk's headings)."""
    import semchunk

    headings = list(section.headings)
    prefix = "\n".join(headings)
    budget = max_tokens - (count(prefix) + 1 if prefix else 0)
    if budget < max_tokens // 2:
        prefix, budget = "", max_tokens
    counted = lru_cache(_COUNTS_KEPT)(count)
    pieces = semchunk.chunk(section.text, chunk_size=budget, token_counter=counted, memoize=False)
    return [(headings, f"{prefix}\n{piece}" if prefix else piece) for piece in pieces if piece.strip()]


class NotText(ValueError):
    """A streamed file that is mostly bytes UTF-8 cannot decode: binary data under a text suffix."""


def count_text(stream: BinaryIO, most_undecodable: float = 0.1) -> int:
    """Characters of a streamed file's text; NotText when its first window is more than `most_undecodable`
    replacement characters (a few, from a stray byte, are kept as they are)."""
    chars = 0
    for window in read_windows(stream):
        if not chars and (bad := window.count("\ufffd")) > most_undecodable * len(window):
            raise NotText(f"not text: {bad} of its first {len(window)} characters are not UTF-8")
        chars += len(window)
    return chars
