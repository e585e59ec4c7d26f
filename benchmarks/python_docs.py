"""The benchmarks' corpus: the HTML pages of Debian's Python documentation, never committed.

apt-get install python3.11-doc      # 530 pages, 67 MB of HTML under /usr/share/doc/python3.11/html
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DEFAULT_CORPUS = Path("/usr/share/doc/python3.11/html")


def html_pages(corpus: Path) -> list[Path]:
    """Every page sorted by path, without Sphinx's _sources/_static folders."""
    if not corpus.is_dir():
        sys.exit(f"{corpus} not found: apt-get install python3.11-doc, or pass --corpus")
    return sorted(
        p for p in corpus.rglob("*.html") if not any(part.startswith("_") for part in p.relative_to(corpus).parts)
    )


def copy_pages(pages: list[Path], corpus: Path, target: Path) -> int:
    """Copy pages under `target`, keeping their paths relative to `corpus`."""
    for page in pages:
        destination = target / page.relative_to(corpus)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, destination)
    return len(pages)
