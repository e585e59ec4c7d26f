"""Storage tiers (storage/tiers.py): a collection moves its text index to halfvec, to binary with rescoring and
back to float32, each a version of its own made from the stored float32 vectors (no model call), gated against
exact float32 search, promoted, while search answers throughout."""

import shutil
import threading

import numpy as np
import pytest
from support import SMALL_CORPUS, latest_metadata, run_index, write_corpus

from embed_pipelines import api
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.storage import tables
from embed_pipelines.storage.tiers import stored_tier
from embed_pipelines.text.local_model import TextEmbeddingModel

QUESTION = "how hot should steamed milk get"


class Searching:
    """Searches the collection over and over on a thread of its own, keeping every answer or failure."""

    def __init__(self, collection: str, postgres):
        self.collection, self.postgres = collection, postgres
        self.answers: list[list[str]] = []
        self.failures: list[BaseException] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                hits = api.search(QUESTION, self.collection, mode="dense", postgres=self.postgres)
                self.answers.append([hit.document_path for hit in hits])
            except Exception as failure:  # noqa: BLE001 (asserted by the test)
                self.failures.append(failure)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def texts_embedded(monkeypatch) -> list[int]:
    """Every call of the text model on documents, counted by the number of texts."""
    counted, embed = [], TextEmbeddingModel.embed_documents

    def counting(self, texts):
        counted.append(len(texts))
        return embed(self, texts)

    monkeypatch.setattr(TextEmbeddingModel, "embed_documents", counting)
    return counted


def test_a_collection_moves_between_tiers_without_a_model_call_while_search_answers(
    tmp_path, state_dir, instance, tiny_model, postgres, monkeypatch
):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    embedded = texts_embedded(monkeypatch)
    monkeypatch.setenv("EMBED_PIPELINES_STORAGE", "float32")  # a collection indexed before halfvec was the default
    run_index(source, "tiered", instance, tiny_model, postgres)
    first, records = api.list_versions("tiered", postgres=postgres)
    assert sum(embedded) == 6 and len(records) == 1
    expected = [hit.document_path for hit in api.search(QUESTION, "tiered", mode="dense", postgres=postgres)]

    served = {"float32": first}
    for tier in ("halfvec", "binary", "float32"):
        monkeypatch.setenv("EMBED_PIPELINES_STORAGE", tier)
        with Searching("tiered", postgres) as searching:
            run_index(source, "tiered", instance, tiny_model, postgres)
        assert sum(embedded) == 6, f"moving to {tier} called the model"
        assert latest_metadata(instance, "tiered", "vector_index")["storage_tier"] == tier
        assert not searching.failures and searching.answers, "search stopped answering during the move"
        assert all(answer == expected for answer in searching.answers)
        serving, records = api.list_versions("tiered", postgres=postgres)
        record = next(record for record in records if record.version == serving)
        with postgres.connect() as conn:
            storage, dimension = stored_tier(conn, record.table)
            column_type = conn.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attname = 'embedding'",
                (record.table,),
            ).fetchone()[0]
        assert storage.tier == tier and column_type == f"{'vector' if tier == 'float32' else 'halfvec'}({dimension})"
        recall = next(check for check in record.gate["checks"] if check["name"] == "recall_at_10")["figures"]
        assert recall["tier"] == tier and recall["recall_at_10"] >= 0.95
        hits = api.search(QUESTION, "tiered", mode="dense", postgres=postgres)
        assert [hit.document_path for hit in hits] == expected
        served[tier] = serving
    assert served["float32"] == first, "back in float32, the collection serves its first version again"
    assert len(set(served.values())) == 3
    footprints = api.version_footprints("tiered", postgres=postgres)  # retention kept the last two
    assert {version: (f.tier, f.rows) for version, f in footprints.items()} == {
        first: ("float32", 6),
        served["binary"]: ("binary", 6),
    }
    assert all(f.index_bytes > 0 for f in footprints.values())


def test_an_hnsw_build_tells_its_progress(postgres, monkeypatch):
    """The run's log hears the build start, how far PostgreSQL says it is while it runs, and its end."""
    monkeypatch.setattr(tables, "PROGRESS_EVERY_S", 0.05)
    vectors = np.random.default_rng(0).normal(size=(40_000, 64)).astype(np.float32)
    told: list[str] = []
    with postgres.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS progress_told")
        conn.execute("CREATE TABLE progress_told (id bigint PRIMARY KEY, embedding vector(64) NOT NULL)")
        with conn.cursor().copy("COPY progress_told (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "vector"])
            for row, vector in enumerate(vectors):
                copy.write_row((row, vector))
        tables.ensure_hnsw_index(conn, "progress_told", say=told.append)
        conn.execute("DROP TABLE progress_told")
    assert told[0].startswith("Building the HNSW index progress_told_embedding_hnsw over 40,000 rows")
    assert any("% of the table's blocks after" in line for line in told[1:-1]), told
    assert told[-1].startswith("progress_told_embedding_hnsw: built in")


def test_a_matryoshka_model_is_indexed_on_its_first_dimensions_and_rescored_on_all(
    tmp_path, state_dir, instance, tiny_model, postgres, monkeypatch
):
    folder = shutil.copytree(tiny_model.model, tmp_path / "matryoshka")
    (folder / "README.md").write_text("---\ntags:\n- sentence-transformers\n- loss:MatryoshkaLoss\n---\n# A model\n")
    model = TextEmbeddingModel(model=str(folder), device="cpu")
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    monkeypatch.setenv("EMBED_PIPELINES_INDEX_DIMENSIONS", "16")
    run_index(source, "prefixed", instance, model, postgres)
    serving, records = api.list_versions("prefixed", postgres=postgres)
    record = next(record for record in records if record.version == serving)
    with postgres.connect() as conn:
        storage, dimension = stored_tier(conn, record.table)
        (definition,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (f"{record.table}_embedding_hnsw",)
        ).fetchone()
        question = model.embed_query(QUESTION)
        nearest = f'SELECT document_path FROM "{record.table}" ORDER BY embedding <=> %s::halfvec LIMIT 5'
        exact = [path for (path,) in conn.execute(nearest, (question,))]
    assert (storage.label, dimension) == ("halfvec/16", 32) and "subvector(embedding, 1, 16)" in definition
    recall = next(check for check in record.gate["checks"] if check["name"] == "recall_at_10")["figures"]
    assert recall["tier"] == "halfvec/16" and recall["recall_at_10"] >= 0.95
    found = api.search(QUESTION, "prefixed", mode="dense", postgres=postgres)
    assert [hit.document_path for hit in found] == exact, "the index's candidates ordered on all 32 dimensions"


def test_an_index_on_fewer_dimensions_is_refused_for_a_model_not_trained_for_them(
    tmp_path, state_dir, instance, tiny_model, postgres, monkeypatch
):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    monkeypatch.setenv("EMBED_PIPELINES_INDEX_DIMENSIONS", "16")
    with pytest.raises(ConfigurationError, match="does not say it was trained for shortened vectors"):
        api.index(source, "unprefixed", instance=instance, text_model=tiny_model, postgres=postgres)
    monkeypatch.setenv("EMBED_PIPELINES_INDEX_DIMENSIONS", "32")
    with pytest.raises(ConfigurationError, match="the model has 32 dimensions"):
        api.index(source, "unprefixed", instance=instance, text_model=tiny_model, postgres=postgres)
    damaged = shutil.copytree(tiny_model.model, tmp_path / "damaged")
    (damaged / "README.md").write_text("---\ntags: [sentence-transformers, : loss\n---\n")
    monkeypatch.setenv("EMBED_PIPELINES_INDEX_DIMENSIONS", "16")
    with pytest.raises(ConfigurationError, match=r"README.md: the model card cannot be read"):
        api.index(
            source,
            "unprefixed",
            instance=instance,
            text_model=TextEmbeddingModel(model=str(damaged)),
            postgres=postgres,
        )
