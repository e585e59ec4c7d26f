"""The database fails in bounded time and never tells a secret: a black-holed host, a statement that runs too
long, and a malformed or wrong DSN whose password must not reach the event log, the terminal or an error."""

import socket
import threading
import time

import dagster as dg
import psycopg
import pytest
from support import SMALL_CORPUS, definitions, write_corpus

from embed_pipelines import api, cli
from embed_pipelines.automation import shard_range_tags
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.factory import index_job_name
from embed_pipelines.resources import PostgresResource

PASSWORD = "pl4nted-Secret"


@pytest.fixture
def black_hole():
    """A port that accepts connections and never answers, as a host behind a dropping firewall would."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


def test_a_black_holed_database_fails_in_bounded_time(black_hole, monkeypatch):
    monkeypatch.setenv("HOLE_DSN", f"postgresql://reader:{PASSWORD}@127.0.0.1:{black_hole}/db")
    resource = PostgresResource(dsn_env_var="HOLE_DSN", connect_timeout_s=1, connect_attempts=2)
    outcome = []

    def connect():
        try:
            resource.connect()
        except psycopg.OperationalError as error:
            outcome.append(error)

    started = time.perf_counter()
    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the connection waited forever"
    assert time.perf_counter() - started < 15 and "after 2 attempts" in str(outcome[0])
    assert PASSWORD not in str(outcome[0])


def test_a_statement_that_runs_too_long_is_cancelled(postgres):
    limited = postgres.model_copy(update={"statement_timeout_s": 1})
    with limited.connect() as conn, pytest.raises(psycopg.errors.QueryCanceled):
        conn.execute("SELECT pg_sleep(5)")


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://reader:{PASSWORD}%zz with spaces@127.0.0.1:9/db",  # malformed: libpq quotes it
        f"postgresql://reader:{PASSWORD}@127.0.0.1:9/db?connect_timeout=2",  # well formed, nothing listens
    ],
    ids=["malformed", "unreachable"],
)
def test_a_planted_password_never_reaches_logs_errors_or_the_terminal(dsn, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("EMBED_PIPELINES_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    monkeypatch.setenv("EMBED_PIPELINES_DSN", dsn)
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    assert cli.main(["index", str(source), "--collection", "leaky", "--shards", "2"]) != 0
    assert cli.main(["search", "how hard should I tamp?", "--collection", "leaky"]) != 0
    terminal = capfd.readouterr()
    assert PASSWORD not in terminal.out + terminal.err
    assert "EMBED_PIPELINES_DSN" in terminal.out + terminal.err, "the failure says where to look"
    collection = Collection("leaky", source.resolve(), 2)  # a run the sensor starts meets the database inside it
    job = definitions(collection, postgres=PostgresResource()).resolve_job_def(index_job_name(collection))
    with dg.DagsterInstance.from_config(str(tmp_path / "home" / "dagster")) as instance:
        run = job.execute_in_process(instance=instance, tags=shard_range_tags(collection), raise_on_error=False)
        events = instance.all_logs(run.run_id)
    assert not run.success
    assert events and not [event for event in events if PASSWORD in str(event)]
    with pytest.raises((ConfigurationError, psycopg.OperationalError)) as raised:
        api.search("tamp", "leaky")
    assert PASSWORD not in str(raised.value) and raised.value.__context__ is None
