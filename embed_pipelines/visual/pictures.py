"""Pictures for the image family: an image file as one picture (its first frame), and the pictures docling
found in a converted document, each with its page, caption and section.

A picture is stored as the PNG the model embeds, at most MAX_SIDE pixels on its longer side: its hash is what
its vector is stored under, so the same picture anywhere in the collection is embedded once.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from embed_pipelines.visual.rendering import png_bytes, png_sha256

IMAGE_FILE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".gif", ".bmp", ".heic", ".heif"})
DOCUMENT_SUFFIXES = frozenset({".pdf", ".docx", ".pptx"})  # docling keeps their pictures' pixels
HEIF_SUFFIXES = frozenset({".heic", ".heif"})
MAX_SIDE = 1024  # CLIP and SigLIP see 224 to 512 pixels a side: a larger picture only costs storage
MAX_PIXELS = 100_000_000  # beyond this a file is refused rather than decoded (a decompression bomb)
# A caption docling did not link to its picture reads like one.
_CAPTION_START = re.compile(r"^(fig(ure)?|image|photo(graph)?|diagram|illustration|chart|plate|screenshot)\b", re.I)


def is_image_file(path: Path | str) -> bool:
    return Path(path).suffix.lower() in IMAGE_FILE_SUFFIXES


def has_pictures(path: Path | str) -> bool:
    """Whether the image family reads the file: an image file, or a document whose pictures docling keeps (a
    collection that leaves documents' pictures out takes none from them: pipeline/extract_pictures.py)."""
    suffix = Path(path).suffix.lower()
    return suffix in IMAGE_FILE_SUFFIXES or suffix in DOCUMENT_SUFFIXES


@dataclass(frozen=True)
class PictureImage:
    ordinal: int  # 0 for an image file; the picture's position in its document otherwise
    page_number: int | None
    caption: str
    headings: tuple[str, ...]
    width: int
    height: int
    png: bytes

    @property
    def sha256(self) -> str:
        return png_sha256(self.png)


def _as_png(image: Image.Image) -> tuple[int, int, bytes]:
    """RGB (transparency over white, as a page shows it), at most MAX_SIDE a side, as PNG."""
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(background, image)
    image = image.convert("RGB")
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    return image.width, image.height, png_bytes(image)


def _opener_for(path: Path) -> None:
    """HEIC/HEIF decode through pillow-heif where it is installed; a clear refusal where it is not."""
    if path.suffix.lower() not in HEIF_SUFFIXES:
        return
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        raise ValueError(f"{path.name}: no HEIC decoder is installed (pip install pillow-heif)") from None
    register_heif_opener()


def image_file_picture(path: Path) -> PictureImage:
    """The picture of an image file (an animation's first frame). Raises ValueError naming the file when it
    cannot be decoded."""
    _opener_for(path)
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ValueError(f"{path.name}: {image.width}x{image.height} pixels, more than {MAX_PIXELS:,}")
            image.seek(0)
            image.load()
            width, height, png = _as_png(image)
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path.name}: not a readable image ({error})") from error
    return PictureImage(0, None, "", (), width, height, png)


def document_pictures(docling_json: str, min_side: int) -> Iterator[PictureImage]:
    """The pictures of a converted document, in reading order, those under `min_side` pixels on a side left
    out (bullets, rules, logos). Each keeps the page it is on, its caption and the headings above it. The
    caption is docling's, else a text that reads like one ("Figure 1: ...") placed next to it: on a page (PDF,
    PPTX), the nearest such text just above or below it; without pages (DOCX), the text right after it."""
    from docling_core.types.doc import DoclingDocument, PictureItem, SectionHeaderItem, TextItem, TitleItem

    document = DoclingDocument.model_validate_json(docling_json)
    items = [item for item, _ in document.iterate_items()]
    placed = [item for item in items if isinstance(item, TextItem) and item.prov and _CAPTION_START.match(item.text)]
    headings: dict[int, str] = {}  # level -> the heading last seen at it
    ordinal = 0
    for position, item in enumerate(items):
        if isinstance(item, TitleItem | SectionHeaderItem):
            level = 0 if isinstance(item, TitleItem) else item.level
            headings = {kept: text for kept, text in headings.items() if kept < level} | {level: item.text}
        if not isinstance(item, PictureItem) or item.image is None:
            continue
        image = _decoded(str(item.image.uri))
        if image is None or min(image.size) < min_side:
            continue
        ordinal += 1
        width, height, png = _as_png(image)
        following = items[position + 1] if position + 1 < len(items) else None
        caption = item.caption_text(document).strip() or _caption_beside(document, item, placed, following)
        page = item.prov[0].page_no if item.prov else None
        yield PictureImage(ordinal, page, caption, tuple(headings.values()), width, height, png)


def _caption_beside(document, picture, placed: list, following) -> str:
    """The caption-like text nearest the picture on its page (within a tenth of the page's height above or
    below it, overlapping it across), or, for a picture without a place, the caption-like text right after it."""
    from docling_core.types.doc import TextItem

    if not picture.prov:
        caption_like = isinstance(following, TextItem) and _CAPTION_START.match(following.text)
        return following.text.strip() if caption_like else ""
    page = picture.prov[0].page_no
    size = document.pages[page].size if page in document.pages else None
    if size is None:
        return ""
    box = picture.prov[0].bbox.to_top_left_origin(size.height)
    nearest, best_gap = "", size.height / 10
    for text in (text for text in placed if text.prov[0].page_no == page):
        other = text.prov[0].bbox.to_top_left_origin(size.height)
        across = min(box.r, other.r) - max(box.l, other.l)
        gap = max(0.0, other.t - box.b, box.t - other.b)
        if across > 0 and gap <= best_gap:
            nearest, best_gap = text.text.strip(), gap
    return nearest


def _decoded(uri: str) -> Image.Image | None:
    """The pixels of a picture docling embedded as a data URI; None for one it only refers to."""
    if not uri.startswith("data:") or "," not in uri:
        return None
    try:
        image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return image
