"""One collection, however it is reached: the code location, the CLI and the API resolve the same source,
shard count and index version from the YAML file; a disagreeing path is refused; version operations need
PostgreSQL, not the model."""

import shutil

import dagster as dg
import pytest
from support import SMALL_CORPUS, served_version, write_corpus

from embed_pipelines import api, cli
from embed_pipelines.assets.common import asset_key
from embed_pipelines.config import configured_collections, resolve_collection
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.factory import build_all_definitions
from embed_pipelines.storage.registry import list_versions, serving_version


@pytest.fixture
def configured(tmp_path, state_dir, monkeypatch, tiny_model):
    """A YAML file declaring `conf` over a folder, with 3 shards and the tiny model."""
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    config = tmp_path / "collections.yaml"
    config.write_text(f"collections:\n  - {{name: conf, source: {source}, shards: 3, model: {tiny_model.model}}}\n")
    monkeypatch.setenv("EMBED_PIPELINES_CONFIG", str(config))
    monkeypatch.setenv("EMBED_PIPELINES_SHARDS", "16")  # what the environment would say is overridden
    return source, config


def test_the_code_location_the_api_and_the_cli_resolve_the_same_collection(
    configured, tmp_path, instance, postgres, tiny_model, capsys
):
    source, _ = configured
    (location,) = configured_collections()
    defs = build_all_definitions([location])
    node = defs.resolve_asset_graph().get(asset_key(location, "embeddings"))
    assert node.partitions_def.get_partition_keys() == ["0", "1", "2"]
    assert node.code_version == tiny_model.index_version()

    assert resolve_collection("conf", source) == resolve_collection("conf") == location
    assert cli.main(["index", str(source), "--collection", "conf", "--plan"]) == 0
    assert "5 added" in capsys.readouterr().out

    assert api.index(source, "conf", instance=instance, postgres=postgres).success
    listings = (location.state_location / "source_files").files()
    assert [listing.name for listing in listings] == ["0.parquet", "1.parquet", "2.parquet"]
    with postgres.connect() as conn:
        assert serving_version(conn, "conf") == served_version(tiny_model)


def test_a_path_or_shard_count_that_disagrees_with_the_configuration_is_refused(configured, tmp_path, capsys):
    source, config = configured
    other = write_corpus(tmp_path / "other", {"a.md": "# A\n\nSomething else."})
    with pytest.raises(ValueError, match=f"configured with source {source}"):
        resolve_collection("conf", other)
    assert cli.main(["index", str(other), "--collection", "conf"]) == 2
    error = capsys.readouterr().err
    assert f"configured with source {source}" in error and str(config) in error
    assert cli.main(["index", str(source), "--collection", "conf", "--shards", "4"]) == 2
    assert "configured with 3 shards" in capsys.readouterr().err


def test_rollback_and_drop_work_with_the_configured_model_folder_gone(
    tmp_path, state_dir, monkeypatch, instance, postgres, tiny_model, wider_tiny_model
):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    config = tmp_path / "collections.yaml"
    versions = []
    for number, model in enumerate((tiny_model, wider_tiny_model)):  # an upgrade, each from its own folder
        folder = shutil.copytree(model.model, tmp_path / f"model-{number}")
        config.write_text(f"collections:\n  - {{name: gone, source: {source}, shards: 2, model: {folder}}}\n")
        monkeypatch.setenv("EMBED_PIPELINES_CONFIG", str(config))
        assert api.index(source, "gone", instance=instance, postgres=postgres).success
        versions.append(served_version(model))
    shutil.move(tmp_path / "model-1", tmp_path / "elsewhere")  # the configured model is no longer there

    rolled_back = api.rollback("gone", instance=instance, postgres=postgres)
    assert rolled_back.success
    assert api.drop_version(versions[1], "gone", instance=instance, postgres=postgres).success
    with postgres.connect() as conn:
        assert serving_version(conn, "gone") == versions[0]
        assert [record.version for record in list_versions(conn, "gone")] == [versions[0]]
    swap = instance.get_latest_materialization_event(dg.AssetKey(["gone", "search_view"])).asset_materialization
    assert swap.metadata["serving_version"].value == versions[0]


def test_the_sample_collection_of_an_unconfigured_code_location_refuses_another_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("EMBED_PIPELINES_CONFIG", raising=False)
    monkeypatch.delenv("EMBED_PIPELINES_SOURCE", raising=False)
    monkeypatch.delenv("EMBED_PIPELINES_COLLECTION", raising=False)
    other = write_corpus(tmp_path / "other", {"a.md": "# A\n\nSomething else."})
    with pytest.raises(ConfigurationError, match="the sample corpus, as EMBED_PIPELINES_SOURCE is unset"):
        resolve_collection(None, other)  # the code location syncs the sample corpus into `sample`
    assert resolve_collection("docs", other).source == other.resolve()
