"""A served model's faults, through a proxy in front of a real embedding server (infinity on 127.0.0.1): throttling
with Retry-After, 5xx bursts, a connection reset, an answer slower than the timeout, and an input the server
refuses. Retries are waited out and counted; no chunk is embedded twice; a batch that fails for good writes
nothing; a refused input fails its file alone."""

import json

import numpy as np
import pytest
from embedding_server import FaultProxy
from support import indexed_rows, latest_metadata, served_version, write_corpus

from embed_pipelines import api
from embed_pipelines.pipeline.families import text_model
from embed_pipelines.text.local_model import TextEmbeddingModel, bundled_model_folder
from embed_pipelines.text.served_model import ServedEmbeddingModel

TEXTS = [f"Hive {i} was inspected on day {i * 7}; the brood looked healthy." for i in range(6)]
CORPUS = {f"hive-{i}.md": f"# Hive {i}\n\n{text}" for i, text in enumerate(TEXTS)}


def refusal(status: int, message: str, **headers: str) -> tuple[int, dict, bytes]:
    return status, headers, json.dumps({"error": {"message": message}}).encode()


@pytest.fixture
def proxy(minilm_server, postgres, monkeypatch):
    monkeypatch.setenv("EMBED_PIPELINES_DSN", postgres.database().uri())  # where the probes are recorded
    proxy = FaultProxy(minilm_server.base_url)
    yield proxy
    proxy.stop()


def served(proxy: FaultProxy, **settings) -> ServedEmbeddingModel:
    return text_model(
        {
            "provider": "openai_compatible",
            "base_url": proxy.base_url,
            "model": "minilm",
            "tokenizer": str(bundled_model_folder()),
            "chunk_tokens": TextEmbeddingModel(device="cpu").chunk_token_limit(),
            "max_batch_inputs": 3,
            "max_concurrency": 1,
            **settings,
        }
    )


def embedded_texts(proxy: FaultProxy) -> list[str]:
    """Every input the server answered with vectors (probe texts left out)."""
    return [text for inputs, status in proxy.forwarded if status == 200 for text in inputs if "Hive" in text]


@pytest.mark.parametrize(
    "faults, retries, throttled",
    [
        ([refusal(429, "slow down", **{"retry-after": "1"})], 1, 1),
        ([refusal(503, "overloaded")] * 3, 3, 0),
        (["reset"], 1, 0),
    ],
    ids=["429 with Retry-After", "a burst of 503", "a connection reset mid-batch"],
)
def test_a_passing_fault_is_retried_and_nothing_is_embedded_twice(proxy, faults, retries, throttled):
    model = served(proxy, max_retries=4, timeout_s=20)
    before = model.usage()
    proxy.then(*faults)
    vectors = model.embed_documents(TEXTS)
    usage = {name: value - before[name] for name, value in model.usage().items()}
    assert usage["retries"] == retries and usage["throttled"] == throttled
    if throttled:
        assert usage["throttle_wait_s"] == 1.0
    assert sorted(embedded_texts(proxy)) == sorted(TEXTS), "each text was embedded once"
    local = TextEmbeddingModel(device="cpu").embed_documents(TEXTS)
    assert np.allclose(vectors, local, atol=1e-4)


def test_an_answer_slower_than_the_timeout_is_given_up_and_asked_again(proxy):
    model = served(proxy, max_retries=2, timeout_s=1)
    before = model.usage()
    proxy.then(3.0)  # the first request waits 3 s at the proxy
    vectors = model.embed_documents(TEXTS)
    assert model.usage()["retries"] - before["retries"] == 1
    assert np.isfinite(vectors).all()


def test_a_batch_that_fails_for_good_writes_nothing_and_the_next_sync_embeds_each_chunk_once(
    proxy, tmp_path, state_dir, instance, postgres
):
    source = write_corpus(tmp_path / "docs", CORPUS)
    model = served(proxy, max_retries=1, timeout_s=20)
    model.index_version()  # identified before the faults: the probes are not what fails here
    proxy.then(*[refusal(503, "down")] * 6)
    failed = api.index(source, "down", shard_count=2, instance=instance, text_model=model, postgres=postgres)
    assert not failed.success
    assert not list(state_dir.glob("down/embeddings/*/current/*/*.parquet")), "no vector file was written"
    table = f"down__{served_version(model)}"
    assert not _exists(postgres, table) or not indexed_rows(postgres, table), "no row was written"
    proxy.faults.clear()
    assert api.index(source, "down", shard_count=2, instance=instance, text_model=model, postgres=postgres).success
    assert {row[0] for row in indexed_rows(postgres, "down")} == set(CORPUS)
    assert sorted(embedded_texts(proxy)) == sorted(set(embedded_texts(proxy))), "no chunk embedded twice"


def test_an_input_the_server_refuses_fails_its_file_alone(proxy, tmp_path, state_dir, instance, postgres):
    source = write_corpus(tmp_path / "docs", {**CORPUS, "poison.md": "# Poison\n\nREFUSE-ME and nothing else."})
    proxy.refused.add("REFUSE-ME")
    model = served(proxy, max_retries=1)
    result = api.index(source, "poison", shard_count=2, instance=instance, text_model=model, postgres=postgres)
    assert not result.success, "the run shows red for the refused file"
    embeddings = latest_metadata(instance, "poison", "embeddings")
    assert embeddings["documents_failed"] == 1 and "poison.md" in embeddings["failed_files"]
    assert "the server refused it: 400" in embeddings["failed_files"]
    table = f"poison__{served_version(model)}"  # not promoted: a shard is not synced while a file fails
    assert {row[0] for row in indexed_rows(postgres, table)} == set(CORPUS), "the rest went on"


def _exists(postgres, relation: str) -> bool:
    with postgres.connect() as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()[0]
