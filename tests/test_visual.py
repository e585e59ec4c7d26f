"""The visual branch end to end: PDF pages and images -> ColPali-family multi-vectors -> pgvector -> MaxSim search.

The models are tiny random-weight ColQwen2 and ColPali built from configs (tiny_visual_model.py): the hub's
checkpoints cannot be downloaded here. Their rankings mean nothing; the plumbing is what is under test.
"""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from support import definitions, write_pdf
from tiny_visual_model import build_tiny_colpali, build_tiny_colqwen2

from embed_pipelines import api
from embed_pipelines.assets.common import asset_key
from embed_pipelines.automation import shard_range_tags
from embed_pipelines.core.collection import Collection, VisualBranch
from embed_pipelines.factory import index_job_name
from embed_pipelines.pipeline.families import PAGES, accepted_by, configured_models
from embed_pipelines.pipeline.plan import plan_sync
from embed_pipelines.storage.registry import serving_version
from embed_pipelines.visual.model import VisualEmbeddingModel

BUILDERS = {"colqwen2": build_tiny_colqwen2, "colpali": build_tiny_colpali}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def visual_model(request, tmp_path_factory) -> VisualEmbeddingModel:
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(f"tiny-{request.param}"))
    return VisualEmbeddingModel(model=str(folder), family=request.param, device="cpu")


def index(collection: Collection, visual_model, tiny_model, postgres, instance):
    job = definitions(collection, tiny_model, postgres, visual_model).resolve_job_def(index_job_name(collection))
    result = job.execute_in_process(instance=instance, tags=shard_range_tags(collection), raise_on_error=False)
    assert result.success, "the index run failed"
    return result


def page_metadata(result, collection: Collection, asset: str) -> dict:
    """The run's metadata of an asset (each materialized shard carries the same)."""
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == asset_key(collection, asset)]
    return {key: value.value for key, value in events[0].materialization.metadata.items()}


def page_rows(postgres, view: str) -> list[tuple]:
    with postgres.connect() as conn:
        return conn.execute(
            f"SELECT document_path, page_number, image_sha256, id, cardinality(tokens) FROM {view} ORDER BY 1, 2"
        ).fetchall()


def test_pdf_and_image_pages_are_indexed_and_found(tmp_path, state_dir, instance, postgres, tiny_model, visual_model):
    source = tmp_path / "docs"
    source.mkdir()
    write_pdf(source / "report.pdf", ["Quarterly revenue table", "Architecture diagram", "Appendix"])
    Image.new("RGB", (80, 60), "navy").save(source / "scan.png")
    (source / "broken.png").write_bytes(b"not an image")
    (source / "notes.md").write_text("# Notes\n\nText files still go through the text branch.")
    collection = Collection(
        f"vis_{visual_model.family}",
        source,
        shards=2,
        visual=VisualBranch(visual_model.model, visual_model.family),
    )

    result = index(collection, visual_model, tiny_model, postgres, instance)

    rows = page_rows(postgres, f"{collection.name}_pages")
    assert [(path, page) for path, page, *_ in rows] == [
        ("report.pdf", 1),
        ("report.pdf", 2),
        ("report.pdf", 3),
        ("scan.png", 1),
    ]
    assert all(tokens > 0 for *_, tokens in rows)
    rendered = page_metadata(result, collection, "page_images")
    assert rendered["documents_failed"] == 1 and "broken.png: not a readable image" in rendered["failed_files"]
    assert page_metadata(result, collection, "page_embeddings")["pages_embedded"] == 4
    vectors = PAGES.vectors_folder(collection, visual_model.index_version())
    stored = pq.read_table([file.path for file in vectors.files(recursive=True)])
    tokens = np.concatenate([np.asarray(page, np.float32) for page in stored.column("tokens").to_pylist()])
    assert np.isfinite(tokens).all(), "padding stripped: no NaN stored"

    hits = api.search("revenue table", collection.name, k=3, family="pages", postgres=postgres)
    assert len(hits) == 3 and {hit.document_path for hit in hits} <= {"report.pdf", "scan.png"}
    exact = api.search("revenue table", collection.name, k=3, family="pages", exact=True, postgres=postgres)
    assert [(h.document_path, h.page_number) for h in hits] == [(h.document_path, h.page_number) for h in exact]
    # The text branch indexes the PDF's text and the Markdown file, and leaves the image to the visual branch.
    text_hits = api.search("revenue", collection.name, k=20, postgres=postgres)
    assert {hit.document_path for hit in text_hits} == {"notes.md", "report.pdf"}


def test_an_edit_re_embeds_only_changed_pages_and_a_delete_removes_the_document(
    tmp_path, state_dir, instance, postgres, tiny_model, visual_model
):
    source = tmp_path / "docs"
    source.mkdir()
    write_pdf(source / "a.pdf", ["one", "two", "three"])
    write_pdf(source / "b.pdf", ["other document"])
    collection = Collection(
        f"edit_{visual_model.family}",
        source,
        shards=2,
        visual=VisualBranch(visual_model.model, visual_model.family),
    )
    index(collection, visual_model, tiny_model, postgres, instance)
    before = {
        (path, page): (image, row_id)
        for path, page, image, row_id, _ in page_rows(postgres, f"{collection.name}_pages")
    }

    write_pdf(source / "a.pdf", ["one", "two, revised", "three"])
    models = configured_models(collection, {"text": tiny_model, "pages": visual_model})
    rows_before_plan = page_rows(postgres, f"{collection.name}_pages")
    with postgres.connect() as conn:  # the plan runs the same steps dry, pages included
        plan = plan_sync(collection, accepted_by(collection), models, conn)
    assert page_rows(postgres, f"{collection.name}_pages") == rows_before_plan, "the plan changed rows"
    edited = index(collection, visual_model, tiny_model, postgres, instance)
    after = {
        (path, page): (image, row_id)
        for path, page, image, row_id, _ in page_rows(postgres, f"{collection.name}_pages")
    }
    embedded = page_metadata(edited, collection, "page_embeddings")
    assert (embedded["pages_embedded"], embedded["pages_reused"]) == (1, 2), "unchanged pages are not re-embedded"
    assert (plan.figure("pages_embedded"), plan.figure("pages_reused")) == (1, 2), "as the plan said"
    assert plan.steps["pages/LoadPages"].rebuilt == 1 and plan.steps["pages/RenderPages"].rebuilt == 1
    assert after[("a.pdf", 2)][0] != before[("a.pdf", 2)][0] and after[("a.pdf", 1)][0] == before[("a.pdf", 1)][0]
    assert after[("b.pdf", 1)] == before[("b.pdf", 1)], "the other document's row is untouched"

    (source / "a.pdf").unlink()
    index(collection, visual_model, tiny_model, postgres, instance)
    assert [key for key in sorted(after) if key[0] == "a.pdf"] and {
        path for path, *_ in page_rows(postgres, f"{collection.name}_pages")
    } == {"b.pdf"}


def test_an_adapter_checkpoint_loads_on_a_local_base_model(tmp_path):
    """vidore's ColQwen2/ColPali releases are LoRA adapters naming a hub base model: offline, the base
    comes from a local folder."""
    import torch
    from colpali_engine.models import ColQwen2
    from peft import LoraConfig, get_peft_model

    base = build_tiny_colqwen2(tmp_path / "base")
    tuned = get_peft_model(
        ColQwen2.from_pretrained(base, dtype=torch.float32),
        LoraConfig(r=4, target_modules=["custom_text_proj"], init_lora_weights=False),  # non-zero: visible
    )
    tuned.save_pretrained(tmp_path / "adapter")
    config = tmp_path / "adapter" / "adapter_config.json"
    config.write_text(config.read_text().replace(str(base), "vidore/colqwen2-base"))  # as published

    with pytest.raises(FileNotFoundError, match="set the visual model's base_model"):
        VisualEmbeddingModel(model=str(tmp_path / "adapter"), device="cpu").embed_query("x")
    adapted = VisualEmbeddingModel(model=str(tmp_path / "adapter"), base_model=str(base), device="cpu")
    plain = VisualEmbeddingModel(model=str(base), device="cpu")
    question = adapted.embed_query("where is the revenue table")
    batch = plain.encoder().processor.process_queries(["where is the revenue table"])
    with torch.inference_mode():
        expected = tuned.eval()(**batch)[0][batch["attention_mask"][0].bool()].numpy()
    assert np.allclose(question, expected, atol=1e-5), "the adapter's weights are applied"
    assert not np.allclose(question, plain.embed_query("where is the revenue table"), atol=1e-3)
    assert adapted.index_version() != plain.index_version()


def test_a_new_visual_model_builds_beside_the_served_pages_and_rolls_back(
    tmp_path, state_dir, instance, postgres, tiny_model
):
    source = tmp_path / "docs"
    source.mkdir()
    write_pdf(source / "a.pdf", ["one", "two"])
    Image.new("RGB", (50, 50), "olive").save(source / "b.png")
    models = [
        VisualEmbeddingModel(model=str(build_tiny_colqwen2(tmp_path / f"m{seed}", seed=seed)), device="cpu")
        for seed in (0, 1)
    ]
    first, second = (model.index_version() for model in models)
    collection = Collection("pageupgrade", source, shards=2, visual=VisualBranch(models[0].model))

    def serving() -> str:
        with postgres.connect() as conn:
            return serving_version(conn, f"{collection.name}_pages")

    index(collection, models[0], tiny_model, postgres, instance)
    assert serving() == first
    index(collection, models[1], tiny_model, postgres, instance)
    assert serving() == second and first != second
    assert api.rollback(collection.name, instance=instance, postgres=postgres, family="pages").success
    assert serving() == first
    index(collection, models[1], tiny_model, postgres, instance)
    assert serving() == first, "a rolled-back page version is not promoted again by a sync"

    promote = api.promote(second, collection.name, shard_count=2, instance=instance, postgres=postgres, family="pages")
    assert promote.success and serving() == second
    assert api.drop_version(first, collection.name, instance=instance, postgres=postgres, family="pages").success
    assert not PAGES.vectors_folder(collection, first).exists()
    with postgres.connect() as conn:
        gone = conn.execute(
            "SELECT to_regclass(%s), to_regclass(%s)",
            (f"pageupgrade_pages__{first}", f"pageupgrade_pages__{first}_regions"),
        ).fetchone()
    assert gone == (None, None)


def test_pages_prepared_ahead_get_the_vectors_of_one_page_at_a_time_and_an_oom_splits_the_batch(
    visual_model, monkeypatch
):
    """Processing the next batch in a helper thread, and halving a batch the device cannot hold, change
    nothing in the vectors or their order."""
    pages = [Image.new("RGB", (40 + 8 * i, 56), (30 * i, 90, 200 - 20 * i)) for i in range(5)]
    encoder = visual_model.encoder()
    alone = [encoder.embed_pages([page])[0] for page in pages]
    monkeypatch.setattr(encoder, "batch_size", 4)
    forward = encoder._forward
    full_batches = []

    def out_of_memory_on_four(batch):
        if batch["attention_mask"].shape[0] == 4:
            full_batches.append(4)
            raise torch.OutOfMemoryError("injected")
        return forward(batch)

    monkeypatch.setattr(encoder, "_forward", out_of_memory_on_four)
    together = encoder.embed_pages(pages)
    assert full_batches == [4], "the first batch was tried whole, then in halves"
    assert len(together) == len(alone)
    for one, batched in zip(alone, together, strict=True):
        assert one.shape == batched.shape
        assert np.allclose(one, batched, atol=1e-4)
