"""Which model a server serves, by what it computes: fixed probe texts are embedded, and their vectors are
matched, within a tolerance, against the probes recorded for earlier index versions in PostgreSQL (the
database a `ProbeRegistry` connects to: by default EMBED_PIPELINES_DSN, else the embedded one).

A name says nothing reliable: servers swap the weights behind the same name, and the same weights go by new
names and URLs. So the index version of a served model is the provider kind, the dimension, the prefixes and
the normalisation, and then whichever recorded version's probes it reproduces; a model that reproduces none
gets a new version, whose probes are recorded for the next time. The name the server reported is kept beside
them, to say which model made a version's vectors. Matching with a tolerance rather than hashing rounded
vectors: a rounding boundary would turn a server's numeric noise (batching, kernels) into a new version.
"""

from __future__ import annotations

import hashlib

import numpy as np
import psycopg

from embed_pipelines.core.fingerprints import index_version, min_cosine
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.storage.database import Database
from embed_pipelines.text.chunking import chunker_settings
from embed_pipelines.text.served_model import PROBES, ServedEmbeddingModel

# Same model: every probe's cosine to its recorded vector at least this. benchmarks/probe_noise.py (MiniLM):
# asked again, in batches of 1-8 or among 56 other inputs through infinity, 1 - cos <= 1.2e-7; bf16 weights
# 7e-5 (bf16 on an H200 against fp32: 5e-4). The same weights with N(0, 0.002) noise: 9.3e-3, caught.
MIN_PROBE_COSINE = 0.995

_DDL = """
CREATE TABLE IF NOT EXISTS embed_pipelines_probes (
    identity text NOT NULL,          -- provider kind, dimension, prefixes, normalisation, chunker (hashed)
    version text NOT NULL,
    reported_model text NOT NULL,    -- the name the server gave when the version was identified
    vectors real[] NOT NULL,         -- the probes' vectors, one after the other
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (identity, version));
"""


class ProbeRegistry:
    """The probes recorded in a database: what identifies a served model."""

    def __init__(self, database: Database):
        self.database = database

    def identify(self, model: ServedEmbeddingModel) -> dict:
        with self.database.connect() as conn:
            return identify(model, conn)

    def check(self, model: ServedEmbeddingModel, facts: dict) -> None:
        with self.database.connect() as conn:
            check_probes(model, facts, conn)

    def check_version(self, model: ServedEmbeddingModel, version: str) -> None:
        with self.database.connect(ddl=False) as conn:  # search's role may only read
            check_version_probes(model, version, conn)


def identify(model, conn: psycopg.Connection) -> dict:
    """The served model's facts: its index version, dimension, normalisation and reported name."""
    vectors, reported = _probe(model)
    normalizes = bool(np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3))
    chunker_version = model.measure_chunker_version()
    identity = index_version(
        {
            "provider": model.provider,
            "dimension": vectors.shape[1],
            "prefixes": [model.query_prefix, model.document_prefix],
            "normalizes": normalizes,
            **chunker_settings(model.chunk_token_limit()),
            "chunker_version": chunker_version,
        }
    )
    _ensure_table(conn)
    version = _matching_version(conn, identity, vectors)
    if version is None:
        digest = hashlib.sha256(np.round(vectors, 3).tobytes()).hexdigest()
        version = index_version({"identity": identity, "probes": digest})
        conn.execute(
            "INSERT INTO embed_pipelines_probes (identity, version, reported_model, vectors) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (identity, version, reported, vectors.ravel().tolist()),
        )
        version = _matching_version(conn, identity, vectors)  # the first recorded, if two raced
    return {
        "version": version,
        "identity": identity,
        "dimension": int(vectors.shape[1]),
        "normalizes": normalizes,
        "reported_model": reported,
        "chunker_version": chunker_version,
    }


def check_probes(model, facts: dict, conn: psycopg.Connection) -> None:
    """Raises when the server no longer computes the vectors recorded for the version (a model swapped
    behind the same name): nothing of it may go into that version's table."""
    _ensure_table(conn)
    recorded = _recorded(conn, facts["identity"]).get(facts["version"])
    then = "Nothing was embedded; the next run identifies the server again and builds a new version"
    _refuse_unless_reproduced(model, facts["version"], recorded, then)


def check_version_probes(model, version: str, conn: psycopg.Connection) -> None:
    """The same for search, which knows the version it serves and only reads."""
    row = conn.execute(
        "SELECT vectors FROM embed_pipelines_probes WHERE version = %s ORDER BY recorded_at LIMIT 1", (version,)
    ).fetchone()
    recorded = None if row is None else _unflattened(row[0])
    then = "search would compare questions embedded by another model with its vectors; sync to build a new version"
    _refuse_unless_reproduced(model, version, recorded, then)


def _refuse_unless_reproduced(model, version: str, recorded: np.ndarray | None, then: str) -> None:
    vectors, reported = _probe(model)
    if recorded is None or not _reproduces(vectors, recorded):
        found = "no probes" if recorded is None or recorded.shape != vectors.shape else "other vectors"
        raise ConfigurationError(
            f"{model.base_url} serves {model.model!r} (reported as {reported!r}), but its probe texts give "
            f"{found} than index version {version}: the model changed behind the name. {then}"
        )


def _probe(model) -> tuple[np.ndarray, str]:
    vectors, reported = model.answer([model.document_prefix + text for text in PROBES])
    return np.asarray(vectors, dtype=np.float32), reported


def _matching_version(conn: psycopg.Connection, identity: str, vectors: np.ndarray) -> str | None:
    """The earliest recorded version of this identity whose probes the vectors reproduce."""
    for version, recorded in _recorded(conn, identity).items():
        if _reproduces(vectors, recorded):
            return version
    return None


def _reproduces(vectors: np.ndarray, recorded: np.ndarray) -> bool:
    return recorded.shape == vectors.shape and min_cosine(recorded, vectors) >= MIN_PROBE_COSINE


def _unflattened(flat: list[float]) -> np.ndarray:
    """Recorded probe vectors, one row per probe text."""
    return np.asarray(flat, dtype=np.float32).reshape(len(PROBES), -1)


def _recorded(conn: psycopg.Connection, identity: str) -> dict[str, np.ndarray]:
    rows = conn.execute(
        "SELECT version, vectors FROM embed_pipelines_probes WHERE identity = %s ORDER BY recorded_at, version",
        (identity,),
    ).fetchall()
    return {version: _unflattened(flat) for version, flat in rows}


def _ensure_table(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('embed_pipelines_probes'))")
        conn.execute(_DDL)
