"""Property: after any sequence of adds, edits, deletes, renames and no-ops, a sync leaves exactly what a
from-scratch rebuild would (same rows, same vectors) and the model ran once per never-seen chunk hash."""

import itertools

import dagster as dg
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import latest_metadata, run_index, write_corpus

from embed_pipelines.text.extraction import DocumentExtractor

NAMES = ["a.md", "b.md", "dir/c.md", "dir/d.md"]
PARAGRAPHS = [
    "## Grind\n\nGrind the beans fresh.",
    "## Water\n\nSoft water protects the boiler.",
    "## Milk\n\nSteam the milk to sixty degrees.",
    "## Bees\n\nThe queen lays eggs in spring.",
    "## Wax\n\nMelt old comb in a solar wax melter.",
]
TEXTS = st.lists(st.sampled_from(PARAGRAPHS), min_size=1, max_size=3).map(lambda ps: "# Doc\n\n" + "\n\n".join(ps))
OPERATIONS = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(NAMES), TEXTS),
    st.tuples(st.just("delete"), st.sampled_from(NAMES)),
    st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("noop")),
)
_collections = itertools.count()


def apply(source, operation) -> None:
    kind, *args = operation
    if kind == "write":
        write_corpus(source, {args[0]: args[1]})
    elif kind == "delete" and (source / args[0]).exists():
        (source / args[0]).unlink()
    elif kind == "rename" and (source / args[0]).exists() and not (source / args[1]).exists():
        (source / args[1]).parent.mkdir(parents=True, exist_ok=True)
        (source / args[0]).rename(source / args[1])


def rebuild(source, model) -> dict[tuple[str, int], tuple[str, str]]:
    """(path, ordinal) -> (chunk hash, text), straight from docling and the chunker, no pipeline."""
    chunker, extractor = model.chunker(), DocumentExtractor()
    expected = {}
    for file in sorted(source.rglob("*.md")):
        path = file.relative_to(source).as_posix()
        for chunk in chunker.chunk(extractor.extract(file).document, path, ""):
            expected[(path, chunk.chunk_ordinal)] = (chunk.chunk_hash, chunk.text)
    return expected


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(operations=st.lists(OPERATIONS, min_size=1, max_size=4))
def test_every_sync_equals_a_rebuild(operations, tmp_path_factory, tiny_model, postgres):
    source = write_corpus(tmp_path_factory.mktemp("src"), {"a.md": "# Doc\n\n" + PARAGRAPHS[0]})
    collection = f"prop_{next(_collections)}"
    embedded: set[str] = set()
    with pytest.MonkeyPatch.context() as patch, dg.instance_for_test() as instance:
        patch.setenv("EMBED_PIPELINES_STATE_DIR", str(tmp_path_factory.mktemp("state")))
        for operation in [("noop",), *operations]:
            apply(source, operation)
            # every operation must go through here; the deletion guard has its own tests (faults/)
            run_index(source, collection, instance, tiny_model, postgres, allow_mass_delete=True)
            with postgres.connect() as conn:
                rows = conn.execute(
                    f"SELECT document_path, chunk_ordinal, chunk_hash, embedding FROM {collection}"
                ).fetchall()
            expected = rebuild(source, tiny_model)
            assert {(p, o): h for p, o, h, _ in rows} == {key: h for key, (h, _) in expected.items()}, operation
            if rows:
                stored = np.stack([vector.to_numpy() for *_, vector in rows])
                fresh = tiny_model.embed_documents([expected[(p, o)][1] for p, o, _, _ in rows])
                assert np.allclose(stored, fresh, rtol=2**-10, atol=1e-6)  # as halfvec keeps them (11 bits)
            new_hashes = {h for h, _ in expected.values()} - embedded
            metadata = latest_metadata(instance, collection, "embeddings")
            assert metadata["chunks_embedded"] == len(new_hashes), operation
            embedded |= new_hashes
