"""Helpers shared by the tests: write small corpora, run the pipeline, read what landed in pgvector."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from embed_pipelines import api
from embed_pipelines.core.collection import DEFAULT_TIER
from embed_pipelines.resources import PostgresResource
from embed_pipelines.sample_corpus import write_document
from embed_pipelines.text.local_model import TextEmbeddingModel

SMALL_CORPUS = {
    "guide/espresso.md": "# Espresso\n\n## Grind\n\nA fine, even grind and a 25 second shot give a balanced cup.\n\n"
    "## Tamping\n\nTamp level with about fifteen kilograms of force.",
    "guide/milk.html": "<html><head><title>Milk</title></head><body><h1>Steaming milk</h1>"
    "<p>Stretch the milk until it reaches about 60 degrees C and looks like wet paint.</p></body></html>",
    "notes/cleaning.txt": "Cleaning\n\nBackflush the group head with detergent once a week and descale monthly.",
    "manuals/grinder.docx.md": "# Grinder manual\n\n## Burrs\n\nConical burrs last about 500 kilograms of beans.\n\n"
    "- Replace burrs when shots run fast\n- Keep the hopper dry",
    "manuals/roasting.pdf.md": "# Roasting\n\n## First crack\n\nLight roasts end shortly after first crack, "
    "near 205 degrees C, keeping the acidity of the origin.",
}


def served_version(model) -> str:
    """The index version a text collection of `model` builds and serves: the model's vectors in the default
    storage tier (storage/tiers.py)."""
    return model.versions().stored_in(DEFAULT_TIER).index


def write_corpus(folder: Path, documents: dict[str, str]) -> Path:
    """Write documents by their source names (`x.docx.md` renders to `x.docx`, `x.pdf.md` to `x.pdf`)."""
    for name, text in documents.items():
        target_folder = folder / Path(name).parent
        target_folder.mkdir(parents=True, exist_ok=True)
        write_document(Path(name).name, text, target_folder)
    return folder


def run_index(
    source: Path,
    collection: str,
    instance: dg.DagsterInstance,
    text_model: TextEmbeddingModel,
    postgres: PostgresResource,
    shard_count: int = 4,
    allow_mass_delete: bool = False,
    repair: bool = False,
) -> dg.ExecuteInProcessResult:
    result = api.index(
        source,
        collection,
        shard_count=shard_count,
        repair=repair,
        instance=instance,
        text_model=text_model,
        postgres=postgres,
        allow_mass_delete=allow_mass_delete,
    )
    assert result.success, "the index run failed"
    return result


def indexed_rows(postgres: PostgresResource, relation: str) -> list[tuple]:
    """(document_path, chunk_ordinal, chunk_hash, shard) of every row, sorted."""
    with postgres.connect() as conn:
        return conn.execute(
            f'SELECT document_path, chunk_ordinal, chunk_hash, shard FROM "{relation}" ORDER BY 1, 2'
        ).fetchall()


def latest_metadata(instance: dg.DagsterInstance, collection: str, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey([collection, asset]))
    assert event is not None, f"{collection}/{asset} was never materialized"
    return {key: value.value for key, value in event.asset_materialization.metadata.items()}


def write_pdf(path: Path, page_texts: list[str]) -> Path:
    """A PDF with one page per text (A4, 24 pt Helvetica)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_font("helvetica", size=24)
    for text in page_texts:
        pdf.add_page()
        pdf.multi_cell(0, 12, text=text)
    pdf.output(str(path))
    return path


def definitions(
    collection, text_model=None, postgres=None, visual_model=None, picture_model=None, audio_model=None
) -> dg.Definitions:
    """The collection's definitions with the given models in place of the configured ones."""
    from embed_pipelines.factory import build_definitions

    given = (("text", text_model), ("pages", visual_model), ("images", picture_model), ("audio", audio_model))
    models = {name: model for name, model in given if model is not None}
    return build_definitions(collection, postgres, models)


def hold_leases(postgres: PostgresResource, collection: str, shards: list[str], fork_child: bool = False):
    """Another process holding the shards' sync leases (resources/leases.py), as a CLI sync or the live worker does,
    until killed; `fork_child`: with a forked child of its own that outlives it (a conversion worker)."""
    holder = "import os, sys, time\nfrom embed_pipelines.resources.leases import holding_shards\n"
    holder += "from embed_pipelines.resources import PostgresResource\n"
    holder += f"with holding_shards(PostgresResource(), {collection!r}, {shards!r}) as held:\n"
    holder += "    if sys.argv[1] == 'fork' and os.fork() == 0:\n        time.sleep(60)\n        os._exit(0)\n"
    holder += "    print(held, flush=True)\n    time.sleep(60)\n"
    env = {**os.environ, "EMBED_PIPELINES_DSN": postgres.database().uri()}
    command = [sys.executable, "-c", holder, "fork" if fork_child else "alone"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout.readline().strip() == "True"
    return process
