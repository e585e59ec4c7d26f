"""The bundled sample corpus (a beekeeping handbook) and the renderers that turn its Markdown into DOCX
and PDF, so that the demo and the tests exercise every format docling reads here without binary files
in the repository. `name.docx.md` becomes `name.docx`, `name.pdf.md` becomes `name.pdf`."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

_SOURCES = resources.files("embed_pipelines") / "corpus"
# Golden questions of the sample collection: each names the one corpus file that answers it.
SAMPLE_QUESTIONS = Path(str(resources.files("embed_pipelines") / "sample_questions.json"))


def _blocks(markdown: str):
    """(kind, text) for the Markdown subset the corpus uses: '#'/'##' headings, '- ' bullets, paragraphs."""
    for line in markdown.splitlines():
        line = line.strip()
        if line.startswith("## "):
            yield "h2", line[3:]
        elif line.startswith("# "):
            yield "h1", line[2:]
        elif line.startswith("- "):
            yield "bullet", line[2:]
        elif line:
            yield "paragraph", line


def render_docx(markdown: str, target: Path) -> None:
    import docx  # the renderers load only when the sample corpus is written

    document = docx.Document()
    for kind, text in _blocks(markdown):
        if kind in ("h1", "h2"):
            document.add_heading(text, level=int(kind[1]))
        else:
            document.add_paragraph(text, style="List Bullet" if kind == "bullet" else None)
    document.save(str(target))


def render_pdf(markdown: str, target: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_margins(20, 20, 20)
    pdf.add_page()
    styles = {"h1": ("B", 16, 10), "h2": ("B", 13, 8), "bullet": ("", 11, 6), "paragraph": ("", 11, 6)}
    for kind, text in _blocks(markdown):
        weight, size, height = styles[kind]
        pdf.set_font("Helvetica", weight, size)
        pdf.multi_cell(0, height, f"- {text}" if kind == "bullet" else text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    pdf.output(str(target))


RENDERERS = {".docx": render_docx, ".pdf": render_pdf}


def write_document(source_name: str, text: str, folder: Path) -> Path:
    """Write one corpus file, rendering `x.docx.md` / `x.pdf.md` to `x.docx` / `x.pdf`."""
    stem, suffix = Path(source_name).stem, Path(Path(source_name).stem).suffix
    if source_name.endswith(".md") and suffix in RENDERERS:
        target = folder / stem
        RENDERERS[suffix](text, target)
    else:
        target = folder / source_name
        target.write_text(text, encoding="utf-8")
    return target


def write_sample_corpus(folder: Path) -> Path:
    """(Re)write the sample corpus into folder; other files there are left alone."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted(_SOURCES.iterdir(), key=lambda s: s.name):
        write_document(source.name, source.read_text(encoding="utf-8"), folder)
    return folder


def sample_questions() -> list[dict]:
    """Paraphrased questions, each with the one corpus file that answers it."""
    return json.loads(SAMPLE_QUESTIONS.read_text())


def ensure_sample_corpus(folder: Path) -> Path:
    if not folder.is_dir() or not any(folder.iterdir()):
        write_sample_corpus(folder)
    return folder
