"""The image family: image files and the pictures in documents, embedded by a CLIP or SigLIP model (tiny
random-weight ones built from configs, tests/tiny_picture_model.py), indexed, found by text and by example."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import docx
import pptx
import pytest
from fpdf import FPDF
from PIL import Image, ImageDraw
from support import definitions
from tiny_picture_model import build_tiny_clip, build_tiny_siglip

from embed_pipelines import api, cli
from embed_pipelines.assets.common import asset_key
from embed_pipelines.automation import shard_range_tags
from embed_pipelines.core.collection import Collection, ImageBranch
from embed_pipelines.factory import index_job_name
from embed_pipelines.pipeline.families import IMAGES, accepted_by, configured_models
from embed_pipelines.pipeline.plan import plan_sync
from embed_pipelines.storage.registry import serving_version
from embed_pipelines.visual.picture_model import PictureEmbeddingModel
from embed_pipelines.visual.pictures import image_file_picture

BUILDERS = {"clip": build_tiny_clip, "siglip": build_tiny_siglip}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def picture_model(request, tmp_path_factory) -> PictureEmbeddingModel:
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(f"tiny-{request.param}"))
    return PictureEmbeddingModel(model=str(folder), device="cpu")


def drawing(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A picture of its own: stripes and a box whose colours and places follow the seed."""
    image = Image.new("RGB", size, ((seed * 67) % 256, (seed * 131) % 256, (seed * 29) % 256))
    draw = ImageDraw.Draw(image)
    for stripe in range(0, size[0], 8 + seed % 7):
        draw.line((stripe, 0, stripe + seed * 5, size[1]), fill=((seed * 13) % 256, 255 - seed * 20 % 256, 90), width=3)
    draw.rectangle((10 + seed * 3, 20, 70 + seed * 4, 90), fill=(255 - (seed * 50) % 256, 40, (seed * 90) % 256))
    return image


def write_docx(path: Path, picture: Path, caption: str) -> None:
    """A heading, a bullet-sized icon (left out: under min_picture_side), the picture and its caption."""
    icon = path.with_name("icon.png")
    drawing(3, (16, 16)).save(icon)
    document = docx.Document()
    document.add_heading("Hive frames", 1)
    document.add_picture(str(icon))
    document.add_paragraph("A frame holds comb; the picture shows one.")
    document.add_picture(str(picture))
    document.add_paragraph(caption)
    document.save(path)


def write_pptx(path: Path, picture: Path) -> None:
    presentation = pptx.Presentation()
    for title in ("Title slide", "Brood pattern"):
        slide = presentation.slides.add_slide(presentation.slide_layouts[5])
        slide.shapes.title.text = title
    slide.shapes.add_picture(str(picture), pptx.util.Inches(1), pptx.util.Inches(2))
    presentation.save(path)


def write_pdf_with_picture(path: Path, picture: Path) -> None:
    """Two pages of text, the second with the picture on it."""
    pdf = FPDF(format="A4")
    pdf.set_font("helvetica", size=14)
    pdf.add_page()
    pdf.multi_cell(0, 10, text="Inspection report. The pictures follow.")
    pdf.add_page()
    pdf.multi_cell(0, 10, text="Page two shows the frame.")
    pdf.image(str(picture), x=20, y=40, w=120)
    pdf.set_y(135)  # under the picture (120 x 90 mm from y=40)
    pdf.multi_cell(0, 10, text="Figure 2: the inspection frame, from above")
    pdf.set_y(250)
    pdf.multi_cell(0, 10, text="Figure 3 is on the next page.")  # caption-like, but far from the picture
    pdf.output(str(path))


def index(collection: Collection, tiny_model, picture_model, postgres, instance):
    job = definitions(collection, tiny_model, postgres, picture_model=picture_model).resolve_job_def(
        index_job_name(collection)
    )
    result = job.execute_in_process(instance=instance, tags=shard_range_tags(collection), raise_on_error=False)
    assert result.success, "the index run failed"
    return result


def metadata(result, collection: Collection, asset: str) -> dict:
    """The run's metadata of an asset, summed over its shards' materializations where numeric."""
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == asset_key(collection, asset)]
    return {key: value.value for key, value in events[0].materialization.metadata.items()}


def picture_rows(postgres, view: str) -> dict[tuple[str, int], tuple]:
    with postgres.connect() as conn:
        rows = conn.execute(
            f"SELECT document_path, picture_ordinal, page_number, caption, headings, image_sha256, id FROM {view}"
        ).fetchall()
    return {(path, ordinal): rest for path, ordinal, *rest in rows}  # rest: a list


@pytest.fixture
def source(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed, name in enumerate(("hive.png", "queen.jpg", "swarm.webp", "frame.tiff", "smoker.bmp"), start=1):
        drawing(seed).save(folder / name)
    drawing(6).save(folder / "bees.gif", save_all=True, append_images=[drawing(7)], duration=100)
    drawing(8).save(tmp_path / "brood.png")
    write_docx(tmp_path / "guide.docx", tmp_path / "brood.png", "Figure 1: a brood frame, capped")
    (tmp_path / "guide.docx").rename(folder / "guide.docx")
    write_pptx(folder / "talk.pptx", folder / "hive.png")  # the same picture as hive.png: embedded once
    drawing(9).save(tmp_path / "inspection.png")
    write_pdf_with_picture(folder / "report.pdf", tmp_path / "inspection.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG after all")
    (folder / "notes.md").write_text("# Notes\n\nText files stay with the text family.")
    return folder


def test_pictures_of_files_and_documents_are_indexed_and_found_by_text_and_by_example(
    source, tmp_path, state_dir, instance, postgres, tiny_model, picture_model, capsys
):
    collection = Collection("pics", source, shards=2, images=ImageBranch(picture_model.model))

    result = index(collection, tiny_model, picture_model, postgres, instance)

    rows = picture_rows(postgres, "pics_images")
    files = {"hive.png", "queen.jpg", "swarm.webp", "frame.tiff", "smoker.bmp", "bees.gif"}
    assert set(rows) == {(name, 0) for name in files} | {("guide.docx", 1), ("talk.pptx", 1), ("report.pdf", 1)}
    assert rows[("guide.docx", 1)][:3] == [None, "Figure 1: a brood frame, capped", ["Hive frames"]]
    assert rows[("talk.pptx", 1)][0] == 2 and rows[("report.pdf", 1)][0] == 2, "the slide or page it is on"
    assert rows[("report.pdf", 1)][1] == "Figure 2: the inspection frame, from above", "the caption under it"
    assert rows[("talk.pptx", 1)][3] == rows[("hive.png", 0)][3], "the same picture, the same PNG"
    extracted = metadata(result, collection, "pictures")
    assert extracted["documents_failed"] == 1 and "broken.jpg: not a readable image" in extracted["failed_files"]
    embedded = metadata(result, collection, "picture_embeddings")
    assert (embedded["pictures_embedded"], embedded["pictures_reused"]) == (8, 1), "hive.png's picture once"
    with postgres.connect() as conn:
        assert serving_version(conn, "pics_images") == picture_model.index_version(), "the gate passed"

    like = api.search("", "pics", k=3, family="images", like=source / "queen.jpg", postgres=postgres)
    assert like[0].document_path == "queen.jpg" and like[0].score == pytest.approx(1.0, abs=1e-3)
    drawing(8).save(tmp_path / "example.png")
    like_brood = api.search("", "pics", k=1, family="images", like=tmp_path / "example.png", postgres=postgres)
    assert (like_brood[0].document_path, like_brood[0].page_number) == ("guide.docx", None)
    asked = api.search("a diagram of the hive frame", "pics", k=9, family="images", postgres=postgres)
    assert len(asked) == 9 and [hit.score for hit in asked] == sorted((hit.score for hit in asked), reverse=True)
    only_documents = api.search("frame", "pics", k=8, family="images", formats=["docx"], postgres=postgres)
    assert [hit.document_path for hit in only_documents] == ["guide.docx"]

    cli.print_hits(like_brood)
    assert 'guide.docx  picture 1, Hive frames  "Figure 1: a brood frame, capped"' in capsys.readouterr().out
    text_hits = api.search("text family", "pics", k=5, postgres=postgres)
    assert {hit.document_path for hit in text_hits} <= {"notes.md", "guide.docx", "talk.pptx", "report.pdf"}


def test_an_edit_re_embeds_only_the_edited_picture_and_a_delete_removes_it(
    source, state_dir, instance, postgres, tiny_model, picture_model
):
    collection = Collection("pics_edit", source, shards=2, images=ImageBranch(picture_model.model))
    index(collection, tiny_model, picture_model, postgres, instance)
    before = picture_rows(postgres, "pics_edit_images")

    drawing(11).save(source / "queen.jpg")
    models = configured_models(collection, {"text": tiny_model, "images": picture_model})
    with postgres.connect() as conn:
        plan = plan_sync(collection, accepted_by(collection), models, conn)
    assert (plan.figure("pictures_embedded"), plan.figure("pictures_reused")) == (1, 0)
    assert picture_rows(postgres, "pics_edit_images") == before, "the plan changed nothing"
    edited = index(collection, tiny_model, picture_model, postgres, instance)

    embedded = metadata(edited, collection, "picture_embeddings")
    assert (embedded["pictures_embedded"], embedded["pictures_reused"]) == (1, 0), "only the edited picture"
    after = picture_rows(postgres, "pics_edit_images")
    assert after[("queen.jpg", 0)][3] != before[("queen.jpg", 0)][3]
    assert {key: row for key, row in after.items() if key[0] != "queen.jpg"} == {
        key: row for key, row in before.items() if key[0] != "queen.jpg"
    }, "every other row untouched, ids included"

    (source / "queen.jpg").unlink()
    (source / "guide.docx").unlink()
    index(collection, tiny_model, picture_model, postgres, instance)
    assert {path for path, _ in picture_rows(postgres, "pics_edit_images")} == {
        path for path, _ in before if path not in ("queen.jpg", "guide.docx")
    }


def test_a_new_image_model_builds_beside_the_served_one_and_rolls_back(
    source, tmp_path, state_dir, instance, postgres, tiny_model
):
    """CLIP, then SigLIP: a new version, built beside and promoted once checked; a rollback serves CLIP's again."""
    clip = PictureEmbeddingModel(model=str(build_tiny_clip(tmp_path / "clip")), device="cpu")
    siglip = PictureEmbeddingModel(model=str(build_tiny_siglip(tmp_path / "siglip")), device="cpu")
    for model in (clip, siglip):
        collection = Collection("pics_swap", source, shards=2, images=ImageBranch(model.model))
        index(collection, tiny_model, model, postgres, instance)

    serving, records = api.list_versions("pics_swap", family="images", postgres=postgres)
    assert serving == siglip.index_version() and {r.version for r in records} == {
        clip.index_version(),
        siglip.index_version(),
    }
    assert {check["name"] for check in records[0].gate["checks"]} >= {"complete", "recall_at_10"}
    assert api.rollback("pics_swap", family="images", instance=instance, postgres=postgres).success
    assert api.list_versions("pics_swap", family="images", postgres=postgres)[0] == clip.index_version()
    hits = api.search("", "pics_swap", k=1, family="images", like=source / "swarm.webp", postgres=postgres)
    assert hits[0].document_path == "swarm.webp", "questions are embedded by the serving version's model"
    dropped = api.drop_version(
        siglip.index_version(), "pics_swap", instance=instance, postgres=postgres, family="images"
    )
    assert dropped.success and not IMAGES.vectors_folder(collection, siglip.index_version()).exists()


def test_a_heic_photo_is_decoded_or_refused_with_what_to_install(tmp_path):
    photo = tmp_path / "IMG_0001.heic"
    photo.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    installed = importlib.util.find_spec("pillow_heif") is not None
    expected = "not a readable image" if installed else r"no HEIC decoder is installed \(pip install pillow-heif\)"
    with pytest.raises(ValueError, match=f"IMG_0001.heic: {expected}"):
        image_file_picture(photo)
