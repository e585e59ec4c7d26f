"""Model upgrades: a new index version builds beside the served one, is promoted only when complete and
checked, rolls back without recomputing, and old versions are dropped by retention or by hand."""

import json
import threading

from support import SMALL_CORPUS, definitions, indexed_rows, served_version, write_corpus

from embed_pipelines import api
from embed_pipelines.assets.common import asset_key
from embed_pipelines.automation import shard_range_tags
from embed_pipelines.config import resolve_collection
from embed_pipelines.core.collection import Collection
from embed_pipelines.factory import index_job_name
from embed_pipelines.pipeline.families import TEXT
from embed_pipelines.storage.registry import list_versions, serving_version
from embed_pipelines.text.local_model import TextEmbeddingModel

QUESTION = "How hot should the steamed milk get?"


def sync(collection, text_model, postgres, instance, shards=None):
    job = definitions(collection, text_model, postgres).resolve_job_def(index_job_name(collection))
    result = job.execute_in_process(instance=instance, tags=shard_range_tags(collection, shards), raise_on_error=False)
    assert result.success, "the sync run failed"
    return result


def gate_checks(result) -> dict[str, tuple[bool, dict]]:
    return {
        evaluation.check_name: (evaluation.passed, {k: v.value for k, v in evaluation.metadata.items()})
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.check_name.startswith("gate_")
    }


def view_dimension(postgres, view: str) -> int:
    with postgres.connect() as conn:
        return conn.execute(f"SELECT DISTINCT vector_dims(embedding) FROM {view}").fetchone()[0]


def serving(postgres, name: str) -> str | None:
    with postgres.connect() as conn:
        return serving_version(conn, name)


def table_rows(postgres, table: str) -> list[tuple]:
    with postgres.connect() as conn:
        return conn.execute(f'SELECT id, document_path, chunk_hash, indexed_at FROM "{table}" ORDER BY id').fetchall()


def table_exists(postgres, table: str) -> bool:
    with postgres.connect() as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{table}"',)).fetchone()[0]


def test_an_upgrade_builds_beside_the_served_version_swaps_when_checked_and_rolls_back(
    tmp_path, state_dir, instance, postgres, tiny_model, wider_tiny_model
):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    collection = Collection("upgrade", source, shards=4)
    v1, v2 = served_version(tiny_model), served_version(wider_tiny_model)
    assert v1 != v2

    first = sync(collection, tiny_model, postgres, instance)
    assert serving(postgres, "upgrade") == v1
    assert all(passed for passed, _ in gate_checks(first).values()) and len(gate_checks(first)) == 3
    before = api.search(QUESTION, "upgrade", k=3, postgres=postgres)
    assert before and view_dimension(postgres, "upgrade") == 32
    v1_rows = table_rows(postgres, f"upgrade__{v1}")

    # Backfill model 2 shard by shard: the view and search keep answering from model 1 all along.
    shards = sorted({row[3] for row in indexed_rows(postgres, "upgrade")})
    assert len(shards) > 1
    sync(collection, wider_tiny_model, postgres, instance, shards=shards[:1])
    assert serving(postgres, "upgrade") == v1
    assert api.search(QUESTION, "upgrade", k=3, postgres=postgres) == before
    with postgres.connect() as conn:
        building = {record.version: record for record in list_versions(conn, "upgrade")}[v2]
    assert building.synced_shards == shards[:1] and building.dimension == 48

    answers = []
    rest = threading.Thread(target=sync, args=(collection, wider_tiny_model, postgres, instance, shards[1:]))
    rest.start()
    while rest.is_alive():
        answers.append(api.search(QUESTION, "upgrade", k=3, postgres=postgres))
    rest.join()

    # Complete and checked: the view now serves model 2, and the swap is recorded on search_view. Until
    # the swap every answer came from model 1; after it, from model 2; never anything in between.
    assert serving(postgres, "upgrade") == v2
    assert view_dimension(postgres, "upgrade") == 48
    after = api.search(QUESTION, "upgrade", k=3, postgres=postgres)
    assert after != before and answers[0] == before
    swapped_at = answers.index(after) if after in answers else len(answers)
    assert answers == [before] * swapped_at + [after] * (len(answers) - swapped_at)
    swap = instance.get_latest_materialization_event(asset_key(collection, "search_view")).asset_materialization
    assert swap.metadata["serving_version"].value == v2 and swap.metadata["replaced_version"].value == v1
    assert len(api.search(QUESTION, "upgrade", k=3, version=v1, postgres=postgres)) == 3  # --version

    # Rollback: model 1 serves again, its rows untouched (nothing recomputed or rewritten).
    assert api.rollback("upgrade", instance=instance, postgres=postgres).success
    assert serving(postgres, "upgrade") == v1
    assert table_rows(postgres, f"upgrade__{v1}") == v1_rows
    assert api.search(QUESTION, "upgrade", k=3, postgres=postgres) == before
    # A rolled-back version is not promoted again by the next sync.
    sync(collection, wider_tiny_model, postgres, instance)
    assert serving(postgres, "upgrade") == v1

    # Drop: model 2's table, registry entry and vectors go; the serving version cannot be dropped.
    assert api.drop_version(v2, "upgrade", instance=instance, postgres=postgres).success
    assert not table_exists(postgres, f"upgrade__{v2}")
    assert not TEXT.vectors_folder(collection, wider_tiny_model.index_version()).exists()
    refused = api.drop_version(v1, "upgrade", instance=instance, postgres=postgres)
    assert not refused.success and table_exists(postgres, f"upgrade__{v1}")


GOLDEN = [
    {"question": "To what temperature should milk be stretched?", "expected": "guide/milk.html"},
    {"question": "How often do I backflush and descale?", "expected": "notes/cleaning.txt"},
    {"question": "When does a light roast end?", "expected": "manuals/roasting.pdf"},
    {"question": "How many kilograms of beans do conical burrs last?", "expected": "manuals/grinder.docx"},
    {"question": "How hard should I tamp?", "expected": "guide/espresso.md"},
]


def test_a_failing_gate_keeps_the_served_version_and_says_why(
    tmp_path, state_dir, instance, postgres, text_model, tiny_model, monkeypatch
):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    golden = tmp_path / "golden.json"
    golden.write_text(json.dumps(GOLDEN))
    config = tmp_path / "collections.yaml"
    config.write_text(
        f"collections:\n  - name: gated\n    source: {source}\n    shards: 4\n"
        f"    promotion: {{golden_queries: {golden}, golden_k: 1}}\n"
    )
    monkeypatch.setenv("EMBED_PIPELINES_CONFIG", str(config))
    collection = resolve_collection("gated")
    good, random = served_version(text_model), served_version(tiny_model)

    first = sync(collection, text_model, postgres, instance)
    assert serving(postgres, "gated") == good
    assert gate_checks(first)["gate_golden_queries"][1]["hit_rate"] >= 0.8

    # A random-weight model answers the golden questions badly: complete and sane, but not promoted.
    second = sync(collection, tiny_model, postgres, instance)
    checks = gate_checks(second)
    assert serving(postgres, "gated") == good
    assert checks["gate_complete"][0] and checks["gate_vectors_sane"][0] and checks["gate_recall_at_10"][0]
    passed, figures = checks["gate_golden_queries"]
    assert not passed and figures["hit_rate"] < figures["serving_hit_rate"] - 0.05
    assert figures["ndcg@1"] < figures["serving_ndcg"] - 0.05  # what the gate judges: nDCG@k, k = golden_k
    observation = instance.fetch_observations(asset_key(collection, "search_view"), limit=1).records[0]
    assert "golden_queries" in observation.asset_observation.metadata["note"].value
    said = [event for event in instance.all_logs(second.run_id) if event.dagster_event is None]
    assert len([event for event in said if "golden_queries" in event.user_message]) == 1, "the refusal said once"

    # Nothing changed: the next sync does not re-run the gate; asking explicitly reports why it refuses.
    assert gate_checks(sync(collection, tiny_model, postgres, instance)) == {}
    refused = api.promote(random, "gated", instance=instance, postgres=postgres)
    assert not refused.success and serving(postgres, "gated") == good
    forced = api.promote(random, "gated", skip_gate=True, instance=instance, postgres=postgres)
    assert forced.success and serving(postgres, "gated") == random


def test_retention_keeps_the_last_versions_and_never_the_serving_one(
    tmp_path, state_dir, instance, postgres, tiny_model
):
    source = write_corpus(tmp_path / "docs", {"a.md": "# A\n\nThe hive has frames of comb.", "b.md": "Bees."})
    collection = Collection("kept", source, shards=2, keep_versions=2)
    models = [TextEmbeddingModel(model=tiny_model.model, device="cpu", document_prefix=p) for p in ("", "a: ", "b: ")]
    versions = [served_version(model) for model in models]
    for model in models:
        sync(collection, model, postgres, instance)
    assert serving(postgres, "kept") == versions[2]
    with postgres.connect() as conn:
        assert [record.version for record in list_versions(conn, "kept")] == [versions[2], versions[1]]
    assert not table_exists(postgres, f"kept__{versions[0]}")
    assert not TEXT.vectors_folder(collection, models[0].index_version()).exists()
    assert table_exists(postgres, f"kept__{versions[1]}")


def test_retention_never_drops_a_build_in_progress(tmp_path, state_dir, postgres):
    from embed_pipelines.storage.registry import point_view, register_version
    from embed_pipelines.storage.tables import CHUNK_TABLE, ensure_table
    from embed_pipelines.versions import lifecycle

    collection = Collection("building", tmp_path, shards=2, keep_versions=2)
    with postgres.connect() as conn:
        for version in ("zzz", "aaa"):  # served in turn
            ensure_table(conn, "building", version, 3)
            register_version(conn, "building", version, {"model": ""}, 3, "c")
            point_view(conn, "building", version, CHUNK_TABLE, "promote", "test", {})
        ensure_table(conn, "building", "bbb", 3)  # the configured model's version, half built
        register_version(conn, "building", "bbb", {"model": ""}, 3, "c")

        outcome = lifecycle.promote(conn, collection, TEXT, "zzz", "test", check=False)  # back to an older one
        # Two kept (zzz serving, aaa served before it), and the build in progress on top of them.
        assert outcome.serving == "zzz" and outcome.dropped == ()
        assert {record.version for record in list_versions(conn, "building")} == {"zzz", "aaa", "bbb"}
