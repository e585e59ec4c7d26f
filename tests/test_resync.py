"""Re-materializing after edits and deletions leaves exactly the current chunks, shard by shard."""

import dagster as dg
from support import SMALL_CORPUS, definitions, indexed_rows, latest_metadata, run_index, write_corpus

from embed_pipelines.core.collection import Collection
from embed_pipelines.core.shards import shard_of


def test_after_edit_delete_and_add_the_table_equals_a_rebuild(tmp_path, state_dir, instance, text_model, postgres):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "resync", instance, text_model, postgres)
    before = indexed_rows(postgres, "resync")

    (source / "guide/espresso.md").write_text(
        "# Espresso\n\n## Grind\n\nGrind coarser when the shot runs slower than 30 seconds.\n\n"
        "## Tamping\n\nTamp level with about fifteen kilograms of force."
    )
    (source / "notes/cleaning.txt").unlink()
    write_corpus(source, {"notes/water.md": "# Water\n\nSoft water with some minerals protects the boiler."})
    run_index(source, "resync", instance, text_model, postgres)
    after = indexed_rows(postgres, "resync")

    run_index(source, "rebuild", instance, text_model, postgres)
    assert after == indexed_rows(postgres, "rebuild"), "synced table differs from a from-scratch rebuild"
    paths = {row[0] for row in after}
    assert "notes/cleaning.txt" not in paths and "notes/water.md" in paths
    assert {row[2] for row in after if row[0] == "guide/espresso.md"} != {
        row[2] for row in before if row[0] == "guide/espresso.md"
    }
    assert len({(row[0], row[1]) for row in after}) == len(after), "duplicate rows"
    replaced_or_deleted = [row for row in before if row[0] in ("guide/espresso.md", "notes/cleaning.txt")]
    assert latest_metadata(instance, "resync", "vector_index")["rows_deleted"] == len(replaced_or_deleted)


def test_rematerializing_one_shard_replaces_exactly_its_rows(tmp_path, state_dir, instance, text_model, postgres):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "oneshard", instance, text_model, postgres)
    edited, untouched = "guide/espresso.md", "manuals/grinder.docx"
    assert shard_of(edited, 4) != shard_of(untouched, 4)
    before = indexed_rows(postgres, "oneshard")

    (source / edited).write_text("# Espresso\n\nA completely new text about ristretto shots.")
    (source / untouched).unlink()  # its shard is not re-materialized, so its rows must stay
    collection = Collection("oneshard", source.resolve(), 4)
    defs = definitions(collection, text_model, postgres)
    result = dg.materialize(defs.assets, partition_key=shard_of(edited, 4), instance=instance, resources=defs.resources)
    assert result.success
    after = indexed_rows(postgres, "oneshard")

    shard = shard_of(edited, 4)
    assert [r for r in after if r[3] != shard] == [r for r in before if r[3] != shard]
    assert [r[2] for r in after if r[0] == edited] != [r[2] for r in before if r[0] == edited]
    assert any(r[0] == untouched for r in after)
