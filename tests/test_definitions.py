"""The code location loads as `dagster dev -w workspace.yaml` loads it, with the five assets described."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from embed_pipelines.definitions import defs

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ["source_files", "documents", "chunks", "embeddings", "vector_index"]


def test_the_workspace_validates_with_the_dagster_cli(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_five_partitioned_assets_and_the_view_in_one_group_with_lineage():
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    keys = [dg.AssetKey(["sample", name]) for name in ASSETS]
    view = dg.AssetKey(["sample", "search_view"])
    assert set(graph.get_all_asset_keys()) == {*keys, view}
    for upstream, downstream in zip([*keys, view], [*keys[1:], view], strict=False):
        assert graph.get(downstream).parent_keys == {upstream}
    assert graph.get(view).partitions_def is None and graph.get(view).group_name == "sample"
    for key in keys[2:]:  # chunks, embeddings, vector_index carry the chunker and index versions
        assert graph.get(key).code_version
    for key in keys:
        node = graph.get(key)
        assert node.group_name == "sample"
        assert node.partitions_def.get_partition_keys() == [f"{i:02d}" for i in range(16)]
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
        assert node.description and node.kinds
    assert "dagster/column_schema" in graph.get(keys[2]).metadata
    assert definitions.resolve_job_def("index_sample") is not None


def test_the_ui_shows_the_real_table_name_and_column_types_with_descriptions():
    node = defs().resolve_asset_graph().get(dg.AssetKey(["sample", "vector_index"]))
    version = node.code_version
    assert f"`sample__{version}`" in node.description, "Markdown keeps the table name (no <placeholder>)"
    columns = {column.name: column for column in node.metadata["dagster/column_schema"].columns}
    assert columns["embedding"].type == "halfvec(384)"  # the default storage tier
    assert columns["document_path"].type == "text" and columns["chunk_ordinal"].type == "integer"
    assert all(column.description for column in columns.values())


def test_syncs_of_one_collection_run_one_at_a_time(tmp_path):
    from embed_pipelines.automation import COLLECTION_TAG

    assert defs().resolve_job_def("index_sample").tags[COLLECTION_TAG] == "sample"
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": COLLECTION_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits


def test_a_run_launched_from_the_ui_queues_as_a_sync_of_its_collection(tmp_path):
    """A materialization launched in the UI (as its GraphQL mutation does it, against the code location in a
    process of its own) is a run of Dagster's implicit asset job; dagster.yaml's coordinator queues it with
    the collection's tag, so the one-sync-per-collection limit holds it back."""
    from dagster_graphql.test.utils import define_out_of_process_context, materialize_assets

    from embed_pipelines.automation import COLLECTION_TAG

    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    location = str(ROOT / "embed_pipelines" / "definitions.py")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        with define_out_of_process_context(location, "defs", instance) as context:
            (launched,) = materialize_assets(context, [dg.AssetKey(["sample", "chunks"])], partition_keys=["03"])
        assert launched.data["launchPipelineExecution"]["__typename"] == "LaunchRunSuccess", launched.data
        (run,) = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.QUEUED  # no daemon here to dequeue it
    assert run.tags[COLLECTION_TAG] == "sample"
