"""Raw file -> DoclingDocument. Which docling pipeline runs is decided here and recorded per document."""

from __future__ import annotations

import logging
from functools import cached_property
from io import BytesIO
from pathlib import Path

from docling.datamodel.base_models import ConversionStatus, DocumentStream, InputFormat
from docling.datamodel.pipeline_options import NativePdfPipelineOptions, PdfPipelineOptions
from docling.document_converter import DocumentConverter, NativePdfFormatOption, PdfFormatOption

from embed_pipelines.text.formats import (
    SUPPORTED_SUFFIXES,
    Extraction,
    ExtractionMode,
    ExtractionStatus,
    conversion_mode,
)
from embed_pipelines.text.properties import FRONT_MATTER_SUFFIXES, split_front_matter
from embed_pipelines.text.streaming import UTF16_MARKS

_log = logging.getLogger(__name__)

# Text formats, whose suffix decides: docling gets their bytes (as UTF-8 without NUL) under that format's
# suffix, so that its content sniffing cannot override the suffix (it took prose with a comma on every line
# for CSV and refused it, and HTML holding a NUL byte for UTF-16).
_TEXT_FORMATS = {InputFormat.MD: ".md", InputFormat.CSV: ".csv", InputFormat.HTML: ".html"}
_UNDECODABLE = "cannot be decoded reliably"  # docling's words for a text file in no encoding it knows


def _text_bytes(data: bytes) -> bytes:
    """UTF-8 without NUL characters (which nothing downstream can store); UTF-16 files by their byte mark."""
    if data.startswith(UTF16_MARKS):
        data = data.decode("utf-16").encode("utf-8")
    return data.replace(b"\x00", b"")


class DocumentExtractor:
    """Converts one file at a time, never raising for a bad file: a failure is a status with a reason."""

    def __init__(
        self,
        layout_weights: Path | None = None,
        max_file_bytes: int = 100 * 2**20,
        max_pages: int = 2000,
        timeout_s: float = 600,
    ):
        self.layout_weights = layout_weights
        self.max_file_bytes = max_file_bytes
        self.max_pages = max_pages
        self.timeout_s = timeout_s

    @cached_property
    def _converter(self) -> DocumentConverter:
        if self.layout_weights:
            pdf_option = PdfFormatOption(
                pipeline_options=PdfPipelineOptions(
                    artifacts_path=self.layout_weights,
                    do_ocr=False,
                    document_timeout=self.timeout_s,
                )
            )
        else:
            pdf_option = NativePdfFormatOption(
                pipeline_options=NativePdfPipelineOptions(document_timeout=self.timeout_s)
            )
        return DocumentConverter(
            allowed_formats=[InputFormat(name) for name in sorted(set(SUPPORTED_SUFFIXES.values()))],
            format_options={InputFormat.PDF: pdf_option},
        )

    def mode_for(self, path: Path | str) -> ExtractionMode:
        return conversion_mode(path, self.layout_weights)

    def extract(self, path: Path) -> Extraction:
        suffix = path.suffix.lower()
        mode = self.mode_for(path)
        if suffix not in SUPPORTED_SUFFIXES:
            return _failed(mode, f"unsupported file type {suffix or '(none)'}")
        try:
            size = path.stat().st_size
        except OSError as exc:  # vanished or unreadable since the scan
            return _failed(mode, f"cannot read: {exc.strerror or exc}")
        if size == 0:
            return _failed(mode, "file is empty")
        if suffix == ".pdf" and (refusal := _unopenable_pdf(path)):
            return _failed(mode, refusal)
        source: Path | DocumentStream = path
        if named := _TEXT_FORMATS.get(InputFormat(SUPPORTED_SUFFIXES[suffix])):
            if size > self.max_file_bytes:
                return _failed(
                    mode, f"the file ({size} bytes) exceeds the max_file_size of {self.max_file_bytes} bytes"
                )
            try:
                data = _text_bytes(path.read_bytes())
                if suffix in FRONT_MATTER_SUFFIXES:  # metadata, not text: an edit of it alone changes no chunk
                    data = split_front_matter(data)
            except (OSError, UnicodeDecodeError) as exc:
                return _failed(mode, f"cannot read: {getattr(exc, 'strerror', None) or exc}")
            source = DocumentStream(name=f"{path.stem}{named}", stream=BytesIO(data))
        try:
            result = self._converter.convert(
                source,
                raises_on_error=False,
                max_num_pages=self.max_pages,
                max_file_size=self.max_file_bytes,
            )
        except Exception as exc:  # docling raises for some malformed inputs despite raises_on_error=False
            _log.debug("docling failed on %s", path, exc_info=True)
            return _failed(mode, f"{type(exc).__name__}: {exc}")
        if result.status not in (ConversionStatus.SUCCESS, ConversionStatus.PARTIAL_SUCCESS):
            reasons = "; ".join(e.error_message for e in result.errors) or result.status.value
            if _UNDECODABLE in reasons:  # docling's advice (a backend option) is for its own API's users
                return _failed(mode, "not text in UTF-8 or cp1252 (binary data, or another encoding): save it as UTF-8")
            return _failed(mode, f"docling could not convert the file: {reasons}")
        status = (
            ExtractionStatus.SUCCESS if result.status == ConversionStatus.SUCCESS else ExtractionStatus.PARTIAL_SUCCESS
        )
        return Extraction(mode, status, result.document)


def _unopenable_pdf(path: Path) -> str | None:
    """An encrypted PDF said plainly (docling only says it "could not load document <hash>"); other damage is
    left to docling's own parser, which may read what PDFium refuses. Opening reads the cross-reference table
    only: milliseconds."""
    import pypdfium2 as pdfium

    try:
        pdfium.PdfDocument(path).close()
    except pdfium.PdfiumError as error:
        if "password" in str(error).lower():
            return "the PDF is encrypted (it needs a password): decrypt it, or leave it out of the folder"
    return None


def _failed(mode: ExtractionMode, reason: str) -> Extraction:
    return Extraction(mode, ExtractionStatus.FAILURE, None, reason)
