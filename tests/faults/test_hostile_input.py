"""Hostile files in the source folder: a FIFO with a supported suffix must not hang the scan, and a symbolic
link must not carry a file from outside the source folder into the index."""

import os
import threading

from support import indexed_rows, latest_metadata, run_index, write_corpus

from embed_pipelines.core.sources import LocalFolder
from embed_pipelines.sync.scan import scan_source
from embed_pipelines.text.formats import is_supported


def test_a_fifo_with_a_supported_suffix_does_not_hang_the_scan(tmp_path):
    write_corpus(tmp_path, {"a.md": "# A\n\nText."})
    os.mkfifo(tmp_path / "pipe.md")  # reading it would block until a writer comes
    scans = []
    worker = threading.Thread(
        target=lambda: scans.append(scan_source(LocalFolder(tmp_path), 4, is_supported)), daemon=True
    )
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the scan blocked on the FIFO"
    (scan,) = scans
    assert set(scan.files()) == {"a.md"} and scan.ignored == {"pipe.md": "not a regular file"}


def test_links_out_of_the_source_folder_are_skipped_and_reported(tmp_path, state_dir, instance, tiny_model, postgres):
    secret = tmp_path / "home" / "credentials.txt"
    secret.parent.mkdir()
    secret.write_text("aws_secret_access_key = wJalrXUtnFEMI-planted-secret")
    source = write_corpus(tmp_path / "docs", {"guide.md": "# Guide\n\nHow to brew.", "notes/n.md": "# N\n\nNotes."})
    (source / "leak.txt").symlink_to(secret)
    (source / "alias.md").symlink_to(source / "guide.md")  # inside the folder: followed

    run_index(source, "links", instance, tiny_model, postgres)
    rows = indexed_rows(postgres, "links")
    assert {row[0] for row in rows} == {"guide.md", "notes/n.md", "alias.md"}
    with postgres.connect() as conn:
        assert not conn.execute("SELECT 1 FROM links WHERE text LIKE '%planted-secret%'").fetchall()
    skipped = latest_metadata(instance, "links", "source_files")["not_indexed"]
    assert "leak.txt" in skipped and "leads out of the source folder" in skipped


def test_a_giant_pdf_page_renders_within_the_pixel_cap(tmp_path):
    from fpdf import FPDF

    from embed_pipelines.visual.rendering import MAX_PAGE_PIXELS, render_pages

    pdf = FPDF(unit="in", format=(200, 100))  # a 200-inch banner: 28,800 x 14,400 pixels at 144 DPI
    pdf.add_page()
    pdf.set_font("helvetica", size=400)
    pdf.cell(text="Banner")
    pdf.output(str(tmp_path / "banner.pdf"))
    (page,) = render_pages(tmp_path / "banner.pdf", dpi=144)
    assert page.width * page.height <= MAX_PAGE_PIXELS * 1.001
    assert abs(page.width / page.height - 2) < 0.01, "the page keeps its shape"
