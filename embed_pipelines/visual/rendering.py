"""Pages as images for the visual branch: PDF pages rendered at a configured DPI by pypdfium2 (the PDFium
binding docling itself uses), and image files as one-page documents.

Pages are produced one at a time, so memory does not grow with a document's page count.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pypdfium2
from PIL import Image

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"})
VISUAL_SUFFIXES = IMAGE_SUFFIXES | {".pdf"}
MAX_PAGE_PIXELS = 40_000_000  # 8,000 x 5,000: an A0 poster at 144 DPI fits


def is_visual(path: Path | str) -> bool:
    return Path(path).suffix.lower() in VISUAL_SUFFIXES


def png_bytes(image: Image.Image) -> bytes:
    """An RGB image as PNG, fast (pages and pictures are stored, not shipped)."""
    buffer = io.BytesIO()
    (image if image.mode == "RGB" else image.convert("RGB")).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def png_sha256(png: bytes) -> str:
    """What a page's or picture's vectors are stored under: the same one is embedded once per index version."""
    return hashlib.sha256(png).hexdigest()


def png_image(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB")


@dataclass(frozen=True)
class PageImage:
    page_number: int  # 1-based
    width: int
    height: int
    png: bytes

    @property
    def sha256(self) -> str:
        return png_sha256(self.png)

    def image(self) -> Image.Image:
        return png_image(self.png)


def _page_image(page_number: int, image: Image.Image) -> PageImage:
    return PageImage(page_number, image.width, image.height, png_bytes(image))


def render_pages(path: Path, dpi: int) -> Iterator[PageImage]:
    """Every page of a PDF, or the one page of an image file. Raises ValueError naming the file when it
    cannot be read as either."""
    if path.suffix.lower() == ".pdf":
        yield from _pdf_pages(path, dpi)
        return
    try:
        with Image.open(path) as image:
            yield _page_image(1, image)
    except (OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path.name}: not a readable image ({error})") from error


def _scale(size_in_points: tuple[float, float], dpi: int) -> float:
    """The rendering scale for `dpi`, lowered where the page would exceed MAX_PAGE_PIXELS (a 200-inch page at
    144 DPI is 830 million pixels, 2.5 GB): the model's processor resizes pages to a few hundred thousand
    pixels anyway, so a cap loses nothing it would see."""
    width, height = size_in_points
    scale = dpi / 72
    pixels = width * height * scale * scale
    return scale if pixels <= MAX_PAGE_PIXELS else scale * math.sqrt(MAX_PAGE_PIXELS / pixels)


def _pdf_pages(path: Path, dpi: int) -> Iterator[PageImage]:
    try:
        document = pypdfium2.PdfDocument(path)
    except (pypdfium2.PdfiumError, OSError) as error:  # OSError: gone or unreadable since the scan
        raise ValueError(f"{path.name}: not a readable PDF ({error})") from error
    try:
        for index in range(len(document)):
            try:
                page = document[index]
            except pypdfium2.PdfiumError as error:
                raise ValueError(f"{path.name}: page {index + 1} cannot be loaded ({error})") from error
            try:
                bitmap = page.render(scale=_scale(page.get_size(), dpi))
            except pypdfium2.PdfiumError as error:
                raise ValueError(f"{path.name}: page {index + 1} cannot be rendered ({error})") from error
            finally:
                page.close()
            yield _page_image(index + 1, bitmap.to_pil())
    finally:
        document.close()
