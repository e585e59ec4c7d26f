"""The text model: vectors equal sentence-transformers, batching is invisible, config comes from the folder."""

import json

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.text.encoder import token_budget_batches
from embed_pipelines.text.local_model import TextEmbeddingModel, bundled_model_folder
from embed_pipelines.text.model_folder import read_model_folder
from embed_pipelines.text.torch_runtime import pool

TEXTS = [
    "Bees cluster to keep warm.",
    "",
    "word " * 600,  # longer than the model's 256 positions: truncated the same way as sentence-transformers
    "Ünïcödé and emoji 🐝 survive tokenization.",
    *[f"Sentence number {i} about {'hives ' * (i % 7)}and honey." for i in range(40)],
]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    model = SentenceTransformer(str(bundled_model_folder()), device="cpu")
    return model.encode(TEXTS, normalize_embeddings=True)


@pytest.mark.parametrize("backend", ["torch", "openvino"])
@pytest.mark.parametrize("token_budget", [64, 1024, 16384])
def test_vectors_equal_sentence_transformers_for_any_batching(reference, token_budget, backend):
    model = TextEmbeddingModel(device="cpu", token_budget=token_budget, backend=backend)
    vectors = model.embed_documents(TEXTS)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert _cosines(vectors, reference).min() >= 0.9999
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_the_bundled_folder_declares_mean_pooling_normalization_and_256_tokens():
    config = read_model_folder(bundled_model_folder())
    assert (config.pooling, config.normalize, config.max_seq_length) == ("mean", True, 256)


def test_prefixes_come_from_the_folder_unless_configured(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "query: ", "document": "passage: "}})
    )
    config = read_model_folder(folder)
    assert (config.query_prefix, config.document_prefix) == ("query: ", "passage: ")
    assert (config.pooling, config.normalize) == ("mean", False)


def test_an_unsupported_module_is_a_clear_error(tmp_path):
    (tmp_path / "modules.json").write_text(
        json.dumps([{"idx": 0, "path": "2_Dense", "type": "sentence_transformers.models.Dense"}])
    )
    with pytest.raises(ValueError, match="'Dense' is not supported"):
        read_model_folder(tmp_path)


def test_a_prefix_shortens_the_chunk_token_limit():
    plain = TextEmbeddingModel(device="cpu")
    prefixed = TextEmbeddingModel(device="cpu", document_prefix="search document: ")
    assert plain.chunk_token_limit() == 254
    assert prefixed.chunk_token_limit() == 254 - len(
        plain.tokenizer("search document: ", add_special_tokens=False)["input_ids"]
    )


@pytest.mark.parametrize(
    "lengths, budget, max_batch",
    [
        ([5, 300, 7, 7, 120, 1, 64], 512, 4),  # mixed lengths: long rows go alone
        ([10] * 100, 100, 256),  # equal lengths: exactly budget / length rows per batch
        ([1000], 10, 8),  # one row longer than the whole budget still forms a batch
    ],
)
def test_token_budget_batches_cover_every_row_once_within_budget(lengths, budget, max_batch):
    batches = token_budget_batches(lengths, budget, max_batch)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= max_batch
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= budget


def test_pooling_modes_ignore_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, "mean").tolist() == [[2.0, 3.0]]
    assert pool(hidden, mask, "cls").tolist() == [[1.0, 2.0]]
    assert pool(hidden, mask, "max").tolist() == [[3.0, 4.0]]
    assert pool(hidden, mask, "lasttoken").tolist() == [[3.0, 4.0]]
    left_padded = torch.tensor([[0, 1, 1]])
    assert pool(hidden, left_padded, "lasttoken").tolist() == [[100.0, 100.0]]


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_the_pipelined_encoder_keeps_order_and_vectors(reference, backend):
    """Padded by a helper thread, kept on the device, copied back once: the same vectors, in input order."""
    vectors = TextEmbeddingModel(device="cpu", token_budget=256, backend=backend).embed_documents(TEXTS)
    assert _cosines(vectors, reference).min() >= 0.99999


def test_a_batch_that_runs_out_of_memory_is_split_in_halves(reference, monkeypatch):
    encoder = TextEmbeddingModel(device="cpu", token_budget=16384, backend="torch").encoder()
    transformer = encoder.runtime.model.transformer
    forward = transformer.forward
    rows_tried = []

    def small_memory(*args, input_ids, **kwargs):
        rows_tried.append(input_ids.shape[0])
        if input_ids.shape[0] > 4:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return forward(*args, input_ids=input_ids, **kwargs)

    monkeypatch.setattr(transformer, "forward", small_memory)
    vectors = encoder.encode(TEXTS)
    assert max(rows_tried) > 4 and rows_tried[-1] <= 4  # big batches failed, halves went through
    assert _cosines(vectors, reference).min() >= 0.99999


def test_cached_model_facts_that_the_machine_contradicts_fail_the_load_and_go(tmp_path, monkeypatch):
    """The dtype class is part of the index version; a cache that says another one than the loaded model
    (new hardware under the same home) must not let vectors into the wrong version."""
    monkeypatch.setenv("EMBED_PIPELINES_HOME", str(tmp_path))
    model = TextEmbeddingModel(device="cpu")
    version = model.index_version()
    facts, cache_file = model.facts()
    cache_file.write_text(json.dumps({**facts, "dtype": "bfloat16"}))
    assert model.index_version() != version  # what a stale cache would make of the version
    with pytest.raises(ConfigurationError, match="bfloat16"):
        model.encoder()
    assert not cache_file.exists()
    assert model.index_version() == version


def test_openvino_runs_on_cpu_by_default_and_its_conversion_is_kept(tiny_model, monkeypatch):
    from embed_pipelines.text import openvino_runtime

    first = _fresh_encoder(tiny_model)
    assert isinstance(first.runtime, openvino_runtime.OpenVinoRuntime)

    def no_second_conversion(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(openvino_runtime, "_convert", no_second_conversion)
    again = _fresh_encoder(tiny_model)
    torch_vectors = _fresh_encoder(tiny_model.model_copy(update={"backend": "torch"})).encode(TEXTS)
    assert _cosines(again.encode(TEXTS), torch_vectors).min() >= 0.99999


def test_a_model_openvino_does_not_reproduce_runs_in_torch_or_is_refused_when_asked_for(
    tiny_model, tmp_path, monkeypatch, caplog
):
    """The conversion is checked against torch's vectors; a refusal is remembered, so later loads go straight
    to torch, and `backend: openvino` names the reason instead."""
    from embed_pipelines.text import openvino_runtime
    from embed_pipelines.text.torch_runtime import TorchRuntime

    monkeypatch.setenv("EMBED_PIPELINES_HOME", str(tmp_path))
    monkeypatch.setattr(openvino_runtime, "MIN_CONVERSION_COSINE", 1.01)  # no graph can meet it
    assert isinstance(_fresh_encoder(tiny_model).runtime, TorchRuntime)
    assert "OpenVINO cannot run the model" in caplog.text and "differ from torch's" in caplog.text
    monkeypatch.setattr(openvino_runtime, "_convert", lambda *args: pytest.fail("tried to convert again"))
    assert isinstance(_fresh_encoder(tiny_model).runtime, TorchRuntime)
    with pytest.raises(ConfigurationError, match="differ from torch's"):
        _fresh_encoder(tiny_model.model_copy(update={"backend": "openvino"}))


def test_openvino_is_refused_off_the_cpu():
    with pytest.raises(ConfigurationError, match="runs on the CPU, not on mps"):
        TextEmbeddingModel(device="mps", backend="openvino").encoder()


def _fresh_encoder(model: TextEmbeddingModel):
    """The model loaded again, as a new process would (not the one this process keeps)."""
    from embed_pipelines.text.local_model import _load_encoder

    _load_encoder.cache_clear()
    return model.encoder()
