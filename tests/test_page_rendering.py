"""Pages as images: PDF pages at the configured DPI, image files as one page, bad files named."""

import pytest
from PIL import Image
from support import write_pdf

from embed_pipelines.visual.rendering import is_visual, render_pages


def test_pdf_pages_render_one_by_one_at_the_dpi(tmp_path):
    write_pdf(tmp_path / "three.pdf", ["Page 1", "Page 2", "Page 3"])
    pages = list(render_pages(tmp_path / "three.pdf", dpi=72))
    assert [page.page_number for page in pages] == [1, 2, 3]
    assert (pages[0].width, pages[0].height) == (596, 842)  # A4 is 595.3 x 841.9 points: pixels at 72 DPI
    assert len({page.sha256 for page in pages}) == 3, "different pages, different image hashes"
    assert list(render_pages(tmp_path / "three.pdf", dpi=144))[0].width == 1191
    assert [p.sha256 for p in render_pages(tmp_path / "three.pdf", dpi=72)] == [p.sha256 for p in pages]


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tiff"])
def test_an_image_file_is_a_one_page_document(tmp_path, suffix):
    Image.new("RGB", (64, 48), "teal").save(tmp_path / f"scan{suffix}")
    (page,) = render_pages(tmp_path / f"scan{suffix}", dpi=144)
    assert (page.page_number, page.width, page.height) == (1, 64, 48)
    assert page.image().size == (64, 48) and is_visual(f"x/scan{suffix.upper()}")


def test_unreadable_files_are_named_with_the_reason(tmp_path):
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.7 truncated")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.pdf: not a readable PDF"):
        list(render_pages(tmp_path / "broken.pdf", 72))
    with pytest.raises(ValueError, match="broken.png: not a readable image"):
        list(render_pages(tmp_path / "broken.png", 72))
