"""What a sync needs to know of file formats before anything is converted: which suffixes convert, in which
docling pipeline, and what a conversion returns. Kept apart from `extraction` so that listing files and
deciding what changed never import docling (seconds of a sync that has nothing to convert)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docling_core.types.doc import DoclingDocument

# Formats docling converts here without model weights (SimplePipeline), plus PDF: suffix -> docling's
# InputFormat value. Text is read as Markdown.
SUPPORTED_SUFFIXES = {
    ".md": "md",
    ".markdown": "md",
    ".txt": "md",
    ".text": "md",
    ".rst": "md",
    ".csv": "csv",
    ".tsv": "csv",  # docling's CSV reader sniffs the delimiter
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".docx": "docx",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".pdf": "pdf",
}


class ExtractionMode(str, Enum):
    SIMPLE = "simple"  # docling SimplePipeline: office, markup and text formats
    NATIVE_PDF = "native_pdf"  # model-free PDF text with page numbers, no layout analysis
    LAYOUT_PDF = "layout_pdf"  # docling's layout model from a local weights folder
    STREAMED_TEXT = "streamed_text"  # a text file too large to parse: read and chunked as a stream, no docling


class ExtractionStatus(str, Enum):
    SUCCESS = "success"
    PARTIAL_SUCCESS = "partial_success"
    FAILURE = "failure"


@dataclass(frozen=True)
class Extraction:
    mode: ExtractionMode
    status: ExtractionStatus
    document: DoclingDocument | None  # None for a streamed file: it is read again when chunked
    error: str | None = None
    text_chars: int = 0  # of a streamed file


def is_supported(path: Path | str) -> bool:
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


# Text formats docling reads as Markdown (see SUPPORTED_SUFFIXES): past a size, streamed instead.
STREAMABLE_SUFFIXES = frozenset(suffix for suffix, format_ in SUPPORTED_SUFFIXES.items() if format_ == "md")


def streams(path: Path | str, size: int, stream_over_bytes: int) -> bool:
    """Whether a file is read as a stream rather than parsed by docling (see text/streaming.py)."""
    return size > stream_over_bytes and Path(path).suffix.lower() in STREAMABLE_SUFFIXES


def conversion_mode(path: Path | str, layout_weights: Path | None) -> ExtractionMode:
    """The pipeline a file converts with: PDFs with the layout model where its weights are configured."""
    if Path(path).suffix.lower() != ".pdf":
        return ExtractionMode.SIMPLE
    return ExtractionMode.LAYOUT_PDF if layout_weights else ExtractionMode.NATIVE_PDF
