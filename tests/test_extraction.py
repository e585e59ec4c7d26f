"""docling conversion of single files: the mode used, and a failure as a status with a reason."""

import os

import pytest
from support import SMALL_CORPUS, write_corpus

from embed_pipelines.text.extraction import DocumentExtractor
from embed_pipelines.text.formats import ExtractionMode, ExtractionStatus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = write_corpus(tmp_path_factory.mktemp("docs"), SMALL_CORPUS)
    (folder / "broken.pdf").write_bytes(os.urandom(2048))
    (folder / "empty.html").write_bytes(b"")
    return folder


@pytest.mark.parametrize(
    "name, mode",
    [
        ("guide/espresso.md", ExtractionMode.SIMPLE),
        ("guide/milk.html", ExtractionMode.SIMPLE),
        ("notes/cleaning.txt", ExtractionMode.SIMPLE),
        ("manuals/grinder.docx", ExtractionMode.SIMPLE),
        ("manuals/roasting.pdf", ExtractionMode.NATIVE_PDF),
    ],
)
def test_each_format_converts_with_its_mode(corpus, name, mode):
    extraction = DocumentExtractor().extract(corpus / name)
    assert (extraction.status, extraction.mode) == (ExtractionStatus.SUCCESS, mode)
    assert extraction.document.export_to_text().strip()


@pytest.mark.parametrize(
    "name, reason",
    [
        ("broken.pdf", "docling could not convert"),
        ("empty.html", "file is empty"),
        ("vanished.md", "cannot read"),
        ("guide", "unsupported file type (none)"),
    ],
)
def test_a_bad_file_is_a_failure_with_a_reason_not_an_exception(corpus, name, reason):
    extraction = DocumentExtractor().extract(corpus / name)
    assert extraction.status == ExtractionStatus.FAILURE and extraction.document is None
    assert reason in extraction.error


def test_pdf_mode_is_layout_when_weights_are_configured(tmp_path):
    assert DocumentExtractor(layout_weights=tmp_path).mode_for("a.pdf") == ExtractionMode.LAYOUT_PDF
    assert DocumentExtractor().mode_for("a.PDF") == ExtractionMode.NATIVE_PDF
    assert DocumentExtractor(layout_weights=tmp_path).mode_for("a.md") == ExtractionMode.SIMPLE


def test_a_file_over_the_size_limit_is_a_failure_naming_the_limit(corpus):
    extraction = DocumentExtractor(max_file_bytes=10).extract(corpus / "guide/espresso.md")
    assert extraction.status == ExtractionStatus.FAILURE and "exceeds the max_file_size" in extraction.error
