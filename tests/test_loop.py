"""The incremental loop and its steps without Dagster or PostgreSQL: a step over an in-memory document set,
and the embeddings step over real Parquet stores in a scratch folder with a counting stand-in for the model
(the model is not what is tested here; the real ones are, in test_text_encoder.py and the end-to-end tests)."""

from __future__ import annotations

import hashlib
from collections.abc import Hashable

import numpy as np
import pytest

from embed_pipelines.core.collection import Collection
from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.core.rows import Chunk, SourceFile
from embed_pipelines.core.shards import shard_of
from embed_pipelines.pipeline.embed import EmbedChunks
from embed_pipelines.pipeline.families import TEXT
from embed_pipelines.pipeline.incremental import (
    Failed,
    InStepRecord,
    Missing,
    ShardSync,
    Wanted,
    WorkAhead,
    sync_shards,
)
from embed_pipelines.pipeline.steps import made_from
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.storage.stores import chunks_store, embeddings_store
from embed_pipelines.sync.listing import write_listing
from embed_pipelines.text.model import InputsRefused


class DictStep(ShardSync):
    """Documents are strings; a document's output is its upper-cased input, made from the input itself."""

    def __init__(self, inputs: dict[str, dict[str, str | None]], fail: set[str] = frozenset()):
        super().__init__()
        self.inputs, self.fail = inputs, fail
        self.outputs: dict[str, dict[str, tuple[str, str]]] = {}  # shard -> path -> (made from, output)
        self.rebuilt: list[str] = []
        self.in_step_shards: set[str] = set()
        self.settled: list[str] = []

    def start_shard(self, shard: str) -> list[str]:
        return list(self.inputs.get(shard, {}))

    def in_step(self, shard: str) -> bool:
        return shard in self.in_step_shards

    def wanted(self, shard: str, path: str) -> Wanted:
        value = self.inputs[shard][path]
        if value is None:
            raise Missing("no input yet")
        return Wanted(value, value)

    def current(self, shard: str, path: str) -> Hashable | None:
        made = self.outputs.get(shard, {}).get(path)
        return made[0] if made else None

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        if path in self.fail:
            raise Failed("refused")
        self.rebuilt.append(path)
        self.outputs.setdefault(shard, {})[path] = (wanted.signature, wanted.value.upper())

    def prune(self, shard: str, keep: list[str]) -> int:
        gone = set(self.outputs.get(shard, {})) - set(keep)
        for path in gone:
            del self.outputs[shard][path]
        return len(gone)

    def settle(self, clean: list[str]) -> None:
        self.settled = clean


def test_the_loop_rebuilds_only_what_differs_and_prunes_what_left():
    step = DictStep({"0": {"a": "one", "b": "two"}, "1": {"c": "three"}})
    first = sync_shards(step, ["0", "1"])
    assert (first.rebuilt, first.unchanged, first.removed) == (3, 0, 0) and step.settled == ["0", "1"]

    step.inputs = {"0": {"a": "one", "b": "TWO!"}, "1": {}}
    step.rebuilt.clear()
    second = sync_shards(step, ["0", "1"])
    assert step.rebuilt == ["b"] and (second.rebuilt, second.unchanged, second.removed) == (1, 1, 1)
    assert step.outputs == {"0": {"a": ("one", "ONE"), "b": ("TWO!", "TWO!")}, "1": {}}


def test_a_failed_or_missing_document_keeps_its_output_and_its_shard_is_not_settled():
    step = DictStep({"0": {"a": "one"}, "1": {"b": "two"}})
    sync_shards(step, ["0", "1"])
    step.inputs = {"0": {"a": "new"}, "1": {"b": None}}
    step.fail = {"a"}
    warnings: list[str] = []
    tally = sync_shards(step, ["0", "1"], warnings.append)
    assert tally.failed == {"a": "refused"} and tally.without_input == {"b": "no input yet"}
    assert step.outputs["0"]["a"] == ("one", "ONE"), "the failed document keeps what it had"
    assert step.outputs["1"]["b"] == ("two", "TWO"), "a listed document without input yet keeps its output"
    assert step.settled == [] and warnings == ["Could not rebuild a: refused"]


def test_a_shard_in_step_is_skipped_without_a_look_at_its_documents():
    step = DictStep({"0": {"a": "one"}, "1": {"b": "two"}})
    step.in_step_shards = {"1"}
    tally = sync_shards(step, ["0", "1"])
    assert step.rebuilt == ["a"] and tally.unchanged == 1 and step.settled == ["0"]


def test_late_failures_undo_their_count_and_keep_the_shard_unsettled():
    class Batched(DictStep):
        def finish(self) -> None:
            self.late_failures["a"] = ("0", "the model refused it")

    step = Batched({"0": {"a": "one"}, "1": {"b": "two"}})
    tally = sync_shards(step, ["0", "1"])
    assert tally.rebuilt == 1 and tally.failed == {"a": "the model refused it"} and step.settled == ["1"]


def test_work_ahead_starts_at_most_depth_documents_in_order():
    started: list[str] = []
    ahead = WorkAhead(2, lambda shard, path, wanted: started.append(path) or path.upper())
    ahead.plan("0", [(path, Wanted(path)) for path in "abcd"])
    assert ahead.take("a") == "A" and started == ["a", "b"]
    assert ahead.take("b") == "B" and started == ["a", "b", "c"]


def test_an_in_step_record_reads_back_what_was_written():
    record = InStepRecord(InStepRecord.inputs_of("listing", "dpi=144", "upstream|token"), "42")
    assert InStepRecord.parse(str(record)) == record and InStepRecord.parse(None) is None


class CountingModel:
    """A stand-in text model: a vector per text from its hash; counts what it was asked; refuses texts that
    contain 'REFUSE' as a server's 400 would."""

    dimension = 8

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def verify_identity(self) -> None:
        pass

    def within_budget(self, spent: int, texts: list[str]) -> int:
        return spent

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.embedded += texts
        vectors = np.array(
            [np.frombuffer(hashlib.sha256(text.encode()).digest()[:32], dtype=np.float32) for text in texts]
        )
        refused = {row: "too long" for row, text in enumerate(texts) if "REFUSE" in text}
        if refused:
            vectors[list(refused)] = np.nan
            raise InputsRefused(refused, vectors)
        return vectors


@pytest.fixture
def collection(tmp_path) -> Collection:
    return Collection("loop", tmp_path / "source", shards=2, state=str(tmp_path / "state"))


VERSIONS = Versions(index="v1", chunker="c1")


def write_documents(collection: Collection, documents: dict[str, list[str]]) -> None:
    """Listings and chunks as the earlier steps would leave them."""
    store = chunks_store(collection, VERSIONS.chunker)
    listed: dict[str, list[SourceFile]] = {shard: [] for shard in collection.shard_keys}
    for path, texts in documents.items():
        shard = shard_of(path, collection.shards)
        sha = hashlib.sha256("".join(texts).encode()).hexdigest()
        listed[shard].append(SourceFile(path=path, size=1, mtime_ns=1, sha256=sha))
        chunks = [
            Chunk(
                document_path=path,
                source_sha256=sha,
                chunk_ordinal=ordinal,
                text=text,
                headings=[],
                pages=[],
                char_count=len(text),
                token_count=1,
                chunk_hash=hashlib.sha256(text.encode()).hexdigest(),
            )
            for ordinal, text in enumerate(texts)
        ]
        store.write(shard, path, chunks, made_from=sha)
    for shard, files in listed.items():
        write_listing(collection, shard, files)


def embed(collection: Collection, model: CountingModel):
    return sync_shards(EmbedChunks(Stores(collection), TEXT, model, VERSIONS), collection.shard_keys)


def test_each_chunk_is_embedded_once_across_edits_and_duplicates(collection):
    model = CountingModel()
    write_documents(collection, {"a.md": ["alpha", "beta"], "b.md": ["beta", "gamma"]})
    first = embed(collection, model)
    assert sorted(model.embedded) == ["alpha", "beta", "gamma"] and first.rebuilt == 2

    model.embedded.clear()
    assert embed(collection, model).unchanged == 2 and model.embedded == []

    write_documents(collection, {"a.md": ["alpha", "delta"], "b.md": ["beta", "gamma"]})
    assert embed(collection, model).rebuilt == 1 and model.embedded == ["delta"]
    stored = embeddings_store(collection, VERSIONS.index, model.dimension)
    shard = shard_of("a.md", collection.shards)
    hashes = [hashlib.sha256(text.encode()).hexdigest() for text in ["alpha", "delta"]]
    assert stored.made_from(shard, "a.md") == made_from(hashes)


def test_a_refused_chunk_fails_its_document_alone_and_it_keeps_its_vectors(collection):
    model = CountingModel()
    write_documents(collection, {"a.md": ["alpha"], "b.md": ["beta"]})
    embed(collection, model)
    stored = embeddings_store(collection, VERSIONS.index, model.dimension)
    shard = shard_of("a.md", collection.shards)
    before = stored.made_from(shard, "a.md")

    write_documents(collection, {"a.md": ["REFUSE me"], "b.md": ["beta", "more"]})
    tally = embed(collection, model)
    assert tally.failed == {"a.md": "chunk 0: too long"} and tally.rebuilt == 1
    assert stored.made_from(shard, "a.md") == before, "the refused document keeps its last vectors"


def test_no_two_families_share_a_view_a_vectors_folder_or_a_model_resource():
    """Each would silently overwrite the other's: a view, the vectors' state folder, the model resource key."""
    from embed_pipelines.pipeline.families import FAMILIES

    for attribute in ("view_suffix", "vectors_asset", "model_resource", "view_asset"):
        values = [getattr(family, attribute) for family in FAMILIES.values()]
        assert len(set(values)) == len(values), attribute
