"""A served model through its OpenAI-compatible endpoint, against a real server: infinity on 127.0.0.1 serving the
bundled all-MiniLM-L6-v2 (see embedding_server.py). Same vectors and rows as the in-process model; identity by
what the server computes, not by its name or URL."""

import shutil

import numpy as np
import pytest
import torch
from embedding_server import TEI_MAX_CLIENT_BATCH, EmbeddingServer, FaultProxy
from safetensors.torch import load_file, save_file
from support import indexed_rows, latest_metadata, run_index, write_corpus

from embed_pipelines import api
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.pipeline.families import text_model
from embed_pipelines.text.extraction import DocumentExtractor
from embed_pipelines.text.local_model import TextEmbeddingModel, bundled_model_folder
from embed_pipelines.text.served_model import ServedEmbeddingModel

PARAGRAPHS = [
    "Varroa mites are counted with an alcohol wash of about 300 bees.",
    "A strong colony needs ten frames of brood before the main flow.",
    "Oxalic acid works best when the colony has no capped brood.",
    "Swarm cells along the bottom bars mean the colony plans to split.",
]
CORPUS = {
    "mites.md": "# Mites\n\n" + PARAGRAPHS[0] + "\n\n## Treatment\n\n" + PARAGRAPHS[2],
    "brood.md": "# Brood\n\n" + PARAGRAPHS[1],
    "swarms.md": "# Swarms\n\n" + PARAGRAPHS[3],
}


@pytest.fixture
def registry(postgres, monkeypatch):
    """Probes are recorded in the database the pipeline's default PostgresResource resolves: this session's."""
    monkeypatch.setenv("EMBED_PIPELINES_DSN", postgres.database().uri())
    return postgres


def served(base_url: str, name: str = "minilm", **settings) -> ServedEmbeddingModel:
    """MiniLM through a server, chunked with its own tokenizer to the local model's limit: the same chunks."""
    local = TextEmbeddingModel(device="cpu")
    settings = {"tokenizer": str(bundled_model_folder()), "chunk_tokens": local.chunk_token_limit(), **settings}
    return text_model({"provider": "openai_compatible", "base_url": base_url, "model": name, **settings})


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def test_the_server_gives_the_in_process_model_s_vectors(minilm_server, registry):
    model = served(minilm_server.base_url, max_batch_inputs=3)  # two requests, in flight together
    remote = model.embed_documents(PARAGRAPHS)
    local = TextEmbeddingModel(device="cpu").embed_documents(PARAGRAPHS)
    assert cosines(remote, local).min() >= 0.9999
    assert model.usage()["requests"] >= 2 and model.usage()["inputs"] >= len(PARAGRAPHS)


def test_a_sync_edit_noop_cycle_through_the_server_gives_the_local_model_s_rows(
    tmp_path, state_dir, instance, minilm_server, registry, text_model
):
    model = served(minilm_server.base_url)
    through_server = write_corpus(tmp_path / "served", CORPUS)
    in_process = write_corpus(tmp_path / "local", CORPUS)
    for source in (through_server, in_process):
        (source / "brood.md").write_text("# Brood\n\nTen frames of brood, then supers go on.")
    rounds = []
    for edit in (None, "edit", "noop"):
        if edit == "edit":
            for source in (through_server, in_process):
                (source / "swarms.md").write_text("# Swarms\n\n" + PARAGRAPHS[3] + " Clip the queen first.")
        run_index(through_server, "served", instance, model, registry)
        run_index(in_process, "in_process", instance, text_model, registry)
        rounds.append(latest_metadata(instance, "served", "embeddings"))
        assert [row[:3] for row in indexed_rows(registry, "served")] == [
            row[:3] for row in indexed_rows(registry, "in_process")
        ]
    # The no-op embeds nothing; its one request is the probe check that catches a model swapped behind its name.
    assert rounds[2]["chunks_embedded"] == 0 and rounds[2]["server_requests"] == 1
    assert rounds[1]["chunks_embedded"] >= 1 and rounds[1]["server_tokens"] > 0
    with registry.connect() as conn:
        stored = {
            (path, ordinal): vector.to_numpy()
            for path, ordinal, vector in conn.execute("SELECT document_path, chunk_ordinal, embedding FROM served")
        }
        for path, ordinal, vector in conn.execute("SELECT document_path, chunk_ordinal, embedding FROM in_process"):
            assert cosines(stored[(path, ordinal)][None], vector.to_numpy()[None])[0] >= 0.9999


def test_the_same_model_under_another_name_and_url_is_the_same_version(
    tmp_path, state_dir, instance, minilm_server, registry
):
    source = write_corpus(tmp_path / "docs", CORPUS)
    original = served(minilm_server.base_url)
    run_index(source, "aliased", instance, original, registry)
    alias = EmbeddingServer(bundled_model_folder(), "all-minilm-under-another-name")
    try:
        renamed = served(alias.base_url, "all-minilm-under-another-name")
        assert renamed.index_version() == original.index_version()
        run_index(source, "aliased", instance, renamed, registry)
        assert latest_metadata(instance, "aliased", "embeddings")["chunks_embedded"] == 0, "nothing re-embedded"
    finally:
        alias.stop()


def test_another_model_behind_the_same_name_is_refused_then_gets_its_own_version(
    tmp_path, state_dir, instance, registry
):
    """The weights change behind the name (a perturbed MiniLM copy: same dimension, normalised, other
    vectors): the cached version's probes no longer match, nothing is embedded into it, and the next run
    identifies the server again, under a new version."""
    perturbed = tmp_path / "minilm-perturbed"
    shutil.copytree(bundled_model_folder(), perturbed)
    weights = perturbed / "model.safetensors"
    generator = torch.Generator().manual_seed(0)
    tensors = {name: t + 0.05 * torch.randn(t.shape, generator=generator) for name, t in load_file(weights).items()}
    save_file(tensors, weights)
    source = write_corpus(tmp_path / "docs", CORPUS)

    server = EmbeddingServer(bundled_model_folder(), "swapped")
    model = served(server.base_url, "swapped")
    try:
        run_index(source, "swapped", instance, model, registry)
        first = model.index_version()
    finally:
        server.stop()
    rows = indexed_rows(registry, "swapped")
    server = EmbeddingServer(perturbed, "swapped", port=server.port)  # the same name and URL
    try:
        # No file changed: search and the sync still ask the server, and refuse.
        with pytest.raises(ConfigurationError, match="changed behind the name"):
            api.search("When do swarms leave?", "swapped", postgres=registry)
        refused = api.index(source, "swapped", shard_count=4, instance=instance, text_model=model, postgres=registry)
        assert not refused.success
        failures = [
            event.step_failure_data.error.cause.message for event in refused.all_events if event.is_step_failure
        ]
        assert any("changed behind the name" in message for message in failures), failures
        assert indexed_rows(registry, "swapped") == rows, "nothing mixed into the old version"
        (source / "brood.md").write_text("# Brood\n\nA new paragraph that needs a vector.")
        assert model.index_version() != first
        run_index(source, "swapped", instance, model, registry)  # the new version builds beside the old one
        assert latest_metadata(instance, "swapped", "embeddings")["index_version"] == model.index_version()
    finally:
        server.stop()


def test_the_plan_counts_and_prices_what_a_sync_sends_and_a_budget_stops_a_sync_first(
    tmp_path, state_dir, instance, minilm_server, registry
):
    source = write_corpus(tmp_path / "docs", CORPUS)
    pricing = {"price_per_million_tokens": 0.02, "tokens_per_second": 1000.0, "max_batch_inputs": 2}
    plan = api.plan(source, "priced", 4, text_model=served(minilm_server.base_url, **pricing), postgres=registry)
    tokens = plan.cost["tokens"]
    assert tokens > 0 and plan.cost["requests"] >= 2
    assert plan.cost["seconds"] == tokens / 1000.0 and plan.cost["cost"] == tokens / 1e6 * 0.02
    assert "embedding: tokens" in plan.summary()

    tight = served(minilm_server.base_url, **pricing, max_tokens_per_sync=tokens - 1)
    before = tight.usage()["tokens"]
    refused = api.index(source, "priced", shard_count=4, instance=instance, text_model=tight, postgres=registry)
    assert not refused.success
    assert tight.usage()["tokens"] == before, "nothing was sent past the budget"

    enough = served(minilm_server.base_url, **pricing, max_tokens_per_sync=tokens)
    run_index(source, "priced", instance, enough, registry)
    assert latest_metadata(instance, "priced", "embeddings")["server_tokens"] == tokens, "as the plan said"


@pytest.mark.parametrize("shape", ["tei", "vllm"])
def test_chunks_are_sized_by_the_server_s_own_tokenize(tmp_path, minilm_server, registry, shape):
    proxy = FaultProxy(minilm_server.base_url, tokenize=(shape, bundled_model_folder()))
    try:
        by_server = served(proxy.base_url, tokenizer="server", max_batch_inputs=TEI_MAX_CLIENT_BATCH)
        by_folder = served(proxy.base_url)
        texts = [*PARAGRAPHS, "Überwinterung: " + "brood " * 400] + [f"Frame {n} of the brood box." for n in range(40)]
        assert by_server.count_tokens(texts) == by_folder.count_tokens(texts)
        asked = proxy.tokenize_requests
        assert by_server.count_tokens(texts) == by_folder.count_tokens(texts) and proxy.tokenize_requests == asked

        source = tmp_path / "season.md"
        sections = [f"## Week {week}\n\n" + " ".join(PARAGRAPHS[: 1 + week % 4]) * (1 + week % 3) for week in range(30)]
        source.write_text("# The beekeeping season\n\n" + "\n\n".join(sections))
        document = DocumentExtractor().extract(source).document
        chunks = [by_model.chunker().chunk(document, "season.md", "sha") for by_model in (by_server, by_folder)]
        assert len(chunks[0]) > 3
        assert [(c.text, c.token_count) for c in chunks[0]] == [(c.text, c.token_count) for c in chunks[1]]
        by_characters = served(proxy.base_url, tokenizer="", chars_per_token=4)
        assert by_server.chunker_version() not in (by_folder.chunker_version(), by_characters.chunker_version())
    finally:
        proxy.stop()


def test_a_server_without_tokenize_is_named_when_chunks_should_be_sized_by_it(minilm_server, registry):
    with pytest.raises(ConfigurationError, match=r"has no /tokenize .* name a local tokenizer folder"):
        served(minilm_server.base_url, tokenizer="server").count_tokens(PARAGRAPHS)
