"""The benchmarks' corpus: Debian's Python documentation, never committed: its HTML pages, or (`sources=True`)
the reStructuredText sources they were built from, as plain-text peers' benchmarks use them.

apt-get install python3.11-doc      # 530 pages, 67 MB of HTML under /usr/share/doc/python3.11/html,
                                    # 497 sources under its _sources/
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


def documentation(corpus: Path, sources: bool) -> tuple[Path, list[Path]]:
    """The folder the files are relative to, and the files sorted by path: HTML pages or .rst sources."""
    if not sources:
        return corpus, html_pages(corpus)
    folder = corpus / "_sources"
    if not folder.is_dir():
        sys.exit(f"{folder} not found: apt-get install python3.11-doc, or pass --corpus")
    return folder, sorted(folder.rglob("*.rst.txt"))


def edit(page: Path) -> None:
    """A new paragraph at the end of a page's text."""
    paragraph = "Edited for the benchmark: a new paragraph."
    text = page.read_text(encoding="utf-8", errors="replace")
    if page.suffix == ".html":
        page.write_text(text.replace("</body>", f"<p>{paragraph}</p></body>", 1))
    else:
        page.write_text(f"{text.rstrip()}\n\n{paragraph}\n")


def copy_pages(pages: list[Path], corpus: Path, target: Path) -> int:
    """Copy pages under `target`, keeping their paths relative to `corpus`."""
    for page in pages:
        destination = target / page.relative_to(corpus)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, destination)
    return len(pages)
