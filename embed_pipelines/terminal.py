"""What the CLI prints, made safe for a terminal: file names, document text and error messages may hold control
characters (an escape sequence in a file name can clear the screen, set the window title or print fake
coloured lines). Every character that a terminal acts on, other than a newline or a tab, is shown escaped
(`\\x1b`), in everything the CLI writes, whoever writes it."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

# C0 and C1 controls (not \t, \n), DEL, and the bidirectional overrides that reorder what is shown.
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    return CONTROLS.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


class SafeStream:
    """A text stream that escapes control characters on their way to the one it wraps."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text))
        return len(text)

    def __getattr__(self, name: str):  # flush, fileno, isatty, encoding ...: the wrapped stream's
        return getattr(self._stream, name)


@contextmanager
def safe_output() -> Iterator[None]:
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(sys.stdout), SafeStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
