"""Reranking: a cross-encoder re-orders search's candidates, from a local folder or served by a real infinity-emb
on 127.0.0.1. The cross-encoder is a tiny random-weight one built from a config (no weights can be fetched here):
what is under test is that its scores, and only they, order the hits."""

from __future__ import annotations

import hashlib

import pytest
import torch
from embedding_server import EmbeddingServer
from support import run_index, write_corpus
from tiny_model import build_tiny_model
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

from embed_pipelines import api
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.text.reranker import LocalReranker, ServedReranker, reranker_from

CORPUS = {  # words of the tiny vocabulary, so no pair outgrows its 64 positions
    f"notes/{topic}.md": f"# {topic}\n\n{text}"
    for topic, text in {
        "grind": "grind the coffee bean for an espresso shot",
        "milk": "steam the milk hot for the cup",
        "water": "cold water in the cup of coffee",
        "clean": "clean the cup and the shot with hot water",
        "roast": "roast the coffee bean in spring",
        "bees": "the bees of the hive bring nectar and pollen",
    }.items()
}


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory) -> str:
    """A two-layer BERT with one output label, and the tiny model's tokenizer: the CrossEncoder layout."""
    folder = build_tiny_model(tmp_path_factory.mktemp("cross_encoder"))
    tokenizer = BertTokenizerFast.from_pretrained(folder)
    torch.manual_seed(7)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=1,
        initializer_range=0.5,  # spread scores: at the default 0.02 a random head scores every pair alike
    )
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    for name in ("modules.json", "sentence_bert_config.json"):  # a cross-encoder folder has neither
        (folder / name).unlink()
    return str(folder)


def logits(folder: str, question: str, texts: list[str]) -> list[float]:
    """The model's own forward pass on each (question, text) pair, one at a time, the text cut to the model's
    64 positions (this tiny vocabulary spells most words letter by letter)."""
    tokenizer = BertTokenizerFast.from_pretrained(folder)
    model = BertForSequenceClassification.from_pretrained(folder).eval()
    with torch.inference_mode():
        cut = {"truncation": "only_second", "max_length": 64, "return_tensors": "pt"}
        pairs = [tokenizer(question, text, **cut) for text in texts]
        return [model(**pair).logits[0, 0].item() for pair in pairs]


@pytest.fixture
def indexed(tmp_path, state_dir, instance, tiny_model, postgres, cross_encoder, monkeypatch):
    source = write_corpus(tmp_path / "docs", CORPUS)
    collection = f"rr_{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]}"
    run_index(source, collection, instance, tiny_model, postgres, shard_count=1)
    monkeypatch.setenv("EMBED_PIPELINES_RERANKER", cross_encoder)
    return collection


def test_a_local_cross_encoder_orders_the_candidates_by_its_scores(indexed, postgres, cross_encoder):
    question = "grind the coffee"
    candidates = api.search(question, indexed, k=6, postgres=postgres)
    reranked = api.search(question, indexed, k=3, postgres=postgres, rerank=6)
    scores = logits(cross_encoder, question, [h.text for h in candidates])
    expected = sorted(zip(scores, candidates, strict=True), key=lambda pair: pair[0], reverse=True)
    assert [h.document_path for h in reranked] == [hit.document_path for _, hit in expected[:3]]
    assert [h.score for h in reranked] == pytest.approx([score for score, _ in expected[:3]], abs=1e-5)


def test_infinity_serves_the_same_cross_encoder_and_orders_alike(cross_encoder):
    server = EmbeddingServer(__import__("pathlib").Path(cross_encoder), "tiny-reranker")
    try:
        texts = [text.split("\n\n", 1)[1] for text in CORPUS.values()]
        question = "clean the cup"
        served = ServedReranker(server.base_url, "tiny-reranker").scores(question, texts)
    finally:
        server.stop()
    local = LocalReranker(cross_encoder).scores(question, texts)
    assert sorted(range(len(texts)), key=served.__getitem__) == sorted(range(len(texts)), key=local.__getitem__)
    sigmoid = [1 / (1 + pytest.importorskip("math").exp(-score)) for score in local]
    assert served == pytest.approx(sigmoid, abs=1e-3) or served == pytest.approx(local, abs=1e-3)


def test_rerank_refuses_what_it_cannot_do(indexed, postgres, tmp_path, monkeypatch):
    with pytest.raises(ConfigurationError, match="no config.json"):
        reranker_from(str(tmp_path)).scores("q", ["a"])
    with pytest.raises(ConfigurationError, match="re-orders text chunks by their text: pages have none"):
        api.search("q", indexed, k=3, postgres=postgres, rerank=5, family="pages")
    monkeypatch.delenv("EMBED_PIPELINES_RERANKER")
    with pytest.raises(ConfigurationError, match="has no reranker"):
        api.search("q", indexed, k=3, postgres=postgres, rerank=5)
    with pytest.raises(ConfigurationError, match="did not answer"):
        ServedReranker("http://127.0.0.1:9/v1", timeout_s=2).scores("q", ["a"])
