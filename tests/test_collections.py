"""Several collections in one code location, declared in YAML: independent assets, tables, state, models."""

import dagster as dg
import pytest
from support import SMALL_CORPUS, indexed_rows, write_corpus

from embed_pipelines.automation import shard_range_tags
from embed_pipelines.config import load_collections
from embed_pipelines.factory import build_all_definitions, index_job_name


def test_two_collections_with_different_models_stay_independent(tmp_path, state_dir, instance, tiny_model, postgres):
    coffee = write_corpus(tmp_path / "coffee", SMALL_CORPUS)
    bees = write_corpus(tmp_path / "bees", {"hive.md": "# Hive\n\nThe brood box sits below the honey super."})
    config = tmp_path / "collections.yaml"
    config.write_text(
        f"collections:\n"
        f"  - {{name: coffee, source: {coffee}, shards: 4}}\n"
        f"  - {{name: bees, source: {bees}, shards: 2, model: {tiny_model.model}}}\n"
    )
    collections = load_collections(config)
    defs = build_all_definitions(collections)
    for collection in collections:
        job = defs.resolve_job_def(index_job_name(collection))
        run = job.execute_in_process(
            instance=instance, tags=shard_range_tags(collection), resources={"postgres": postgres}
        )
        assert run.success

    assert {row[0] for row in indexed_rows(postgres, "coffee")} == {
        "guide/espresso.md",
        "guide/milk.html",
        "notes/cleaning.txt",
        "manuals/grinder.docx",
        "manuals/roasting.pdf",
    }
    assert {row[0] for row in indexed_rows(postgres, "bees")} == {"hive.md"}
    with postgres.connect() as conn:
        dims = {
            name: conn.execute(f"SELECT DISTINCT vector_dims(embedding) FROM {name}").fetchall()
            for name in ("coffee", "bees")
        }
    assert dims == {"coffee": [(384,)], "bees": [(32,)]}
    assert {p.name for p in state_dir.iterdir()} == {"coffee", "bees"}
    assert {key.path[0] for key in defs.resolve_asset_graph().get_all_asset_keys()} == {"coffee", "bees"}


def test_a_bad_config_names_the_file_and_the_problem(tmp_path):
    config = tmp_path / "collections.yaml"
    config.write_text("collections:\n  - {name: docs, path: /data}\n")
    with pytest.raises(ValueError, match=r"collections.yaml: collection 'docs': unknown settings \['path'\]"):
        load_collections(config)
    with pytest.raises(ValueError, match=r"twice.yaml: collections declared twice: \['a'\]"):
        load_collections(_twice(tmp_path))


def _twice(tmp_path):
    config = tmp_path / "twice.yaml"
    config.write_text(f"collections:\n  - {{name: a, source: {tmp_path}}}\n  - {{name: a, source: {tmp_path}}}\n")
    return config


def test_definitions_load_the_config_file_named_by_the_environment(tmp_path, monkeypatch):
    config = tmp_path / "collections.yaml"
    config.write_text(f"collections:\n  - {{name: one, source: {tmp_path}}}\n  - {{name: two, source: {tmp_path}}}\n")
    monkeypatch.setenv("EMBED_PIPELINES_CONFIG", str(config))
    from embed_pipelines.definitions import defs

    definitions = defs()
    kinds = ("index", "reindex", "promote", "rollback", "drop_version")
    assert {job.name for job in definitions.jobs} == {f"{kind}_{name}" for kind in kinds for name in ("one", "two")}
    assert isinstance(definitions.resolve_job_def("index_two"), dg.JobDefinition)
