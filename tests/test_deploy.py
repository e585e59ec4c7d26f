"""The files in deploy/ work: the instance config validates with dagster-postgres against a real PostgreSQL
(the embedded one), its run launcher section validates against dagster-k8s's K8sRunLauncher schema (no
cluster is needed for that), a sync run's accelerator request is a valid `dagster-k8s/config` tag, and an
instance on dagster-postgres runs the sensor -> run -> promotion path."""

from pathlib import Path

import dagster as dg
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from support import SMALL_CORPUS, definitions, served_version, write_corpus

from embed_pipelines.core.collection import Collection
from embed_pipelines.factory import K8S_CONFIG_TAG, accelerator_request, index_job_name
from embed_pipelines.storage.registry import serving_version

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _database_url(postgres, name: str) -> str:
    """A database of its own on the session's embedded server, as dagster-postgres wants it named: with the
    psycopg2 driver, which SQLAlchemy 2.1 no longer picks by default (psycopg 3 refuses its NOTIFY)."""
    with postgres.connect() as conn:
        conn.autocommit = True
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return (
        postgres.database().uri().replace("postgresql://", "postgresql+psycopg2://").replace("/postgres?", f"/{name}?")
    )


def test_the_instance_config_and_the_run_launcher_validate(postgres, monkeypatch):
    from dagster_k8s import K8sRunLauncher

    monkeypatch.setenv("DAGSTER_PG_URL", _database_url(postgres, "dagster_validate"))
    config, _ = dagster_instance_config(str(DEPLOY), "dagster.yaml")
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_PG_URL"}
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    checked = process_config(K8sRunLauncher.config_type(), launcher["config"])
    assert checked.success, checked.errors
    kinds = [document["kind"] for document in yaml.safe_load_all((DEPLOY / "kubernetes/embed-pipelines.yaml").open())]
    assert kinds.count("Deployment") == 3 and "RoleBinding" in kinds


def test_a_sync_run_asks_kubernetes_for_its_accelerators(tmp_path):
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    assert accelerator_request(Collection("nogpu", tmp_path)) == {}  # no tag, and no GPU node needed
    tag = accelerator_request(Collection("gpus", tmp_path, run_gpus=2))[K8S_CONFIG_TAG]
    parsed = UserDefinedDagsterK8sConfig.from_dict(tag)
    assert parsed.container_config["resources"]["limits"] == {"nvidia.com/gpu": "2"}


def test_an_instance_on_dagster_postgres_runs_sensor_run_and_promotion(
    tmp_path, state_dir, postgres, tiny_model, monkeypatch
):
    monkeypatch.setenv("DAGSTER_PG_URL", _database_url(postgres, "dagster_runs"))
    deployed = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    home = tmp_path / "dagster"
    home.mkdir()
    # the deploy file's storage and limits; the default launcher in place of Kubernetes, which is not here
    local = {key: value for key, value in deployed.items() if key != "run_launcher"}
    (home / "dagster.yaml").write_text(yaml.safe_dump(local))
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    collection = Collection("deployed", source.resolve(), 4)
    defs = definitions(collection, tiny_model, postgres)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        (sensor,) = [s for s in defs.sensors if s.name == "deployed_source_changes"]
        (request,) = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
        job = defs.resolve_job_def(index_job_name(collection))
        result = job.execute_in_process(instance=instance, tags=request.tags)
        assert result.success
        assert instance.get_run_by_id(result.run_id).is_success  # the run is in PostgreSQL
        promoted = instance.get_latest_materialization_event(dg.AssetKey(["deployed", "search_view"]))
        assert promoted.asset_materialization.metadata["serving_version"].value == served_version(tiny_model)
    with postgres.connect() as conn:
        assert serving_version(conn, "deployed") == served_version(tiny_model)
