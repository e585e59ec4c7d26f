"""The HNSW build's memory is sized to the index, so that pgvector keeps the whole graph in memory (once it
no longer fits, the rest is inserted on disk, several times slower)."""

from __future__ import annotations

import numpy as np
import pytest

from embed_pipelines.storage import tables
from embed_pipelines.storage.tables import ensure_hnsw_index, hnsw_build_memory


def test_the_build_memory_grows_with_the_index_between_its_floor_and_a_quarter_of_memory():
    gib = 2**30
    assert hnsw_build_memory(1_000, 384, memory_total=16 * gib) == tables.HNSW_BUILD_MIN_BYTES
    two_million = hnsw_build_memory(2_100_000, 64, memory_total=64 * gib)
    assert 2_100_000 * 972 < two_million < 2_100_000 * 1_300  # 972 bytes an element measured at 64 dimensions
    assert hnsw_build_memory(100_000_000, 1024, memory_total=16 * gib) == 4 * gib


@pytest.mark.parametrize("dimension", [16, 96])
def test_a_built_index_fits_in_the_memory_it_was_given(postgres, monkeypatch, dimension):
    monkeypatch.setattr(tables, "HNSW_BUILD_MIN_BYTES", 1 * 2**20)  # the floor would hide the sizing
    table = f"hnsw_fit_{dimension}"
    rows = np.random.default_rng(dimension).standard_normal((6_000, dimension)).astype(np.float32)
    notices: list[str] = []
    with postgres.connect() as conn:
        conn.add_notice_handler(lambda notice: notices.append(notice.message_primary))
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id serial, embedding vector({dimension}))")
        with conn.cursor().copy(f"COPY {table} (embedding) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row])
        ensure_hnsw_index(conn, table)
        ensure_hnsw_index(conn, table)  # a second call finds it built
        built = conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = %s", (table,)).fetchone()[0]
        conn.execute(f"DROP TABLE {table}")
    assert built == 1
    assert not [n for n in notices if "no longer fits" in n], notices
