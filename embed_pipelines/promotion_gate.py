"""The promotion gate: what a new index version must show before the view serves it.

Four checks, each with the figures it judged: the version is complete (rows == chunks in every shard, no
rows of missing files), its vectors are sane (dimension, no zero/NaN, unit norm where the model normalizes),
its HNSW index finds the exact nearest neighbours (recall@10), and, where the collection declares golden
questions, it answers them about as well as the version it replaces.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import psycopg

from embed_pipelines.collection import Collection
from embed_pipelines.listing import listed_paths, read_listing
from embed_pipelines.recall import exact_neighbours, recall_at_k, sample_vectors
from embed_pipelines.resources import TextEmbeddingModel
from embed_pipelines.stores import chunks_store, embeddings_folder
from embed_pipelines.vector_store import IndexHealth, search, shard_health
from embed_pipelines.version_registry import VersionRecord

RECALL_K = 10
NORM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    summary: str  # one line: what was found, against what threshold
    figures: dict


@dataclass(frozen=True)
class GateResult:
    version: str
    checks: tuple[GateCheck, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [f"{check.name}: {check.summary}" for check in self.checks if not check.passed]

    def as_json(self) -> dict:
        return {"version": self.version, "passed": self.passed, "checks": [asdict(c) for c in self.checks]}


def unsynced_shards(
    collection: Collection, record: VersionRecord, accepts: Callable[[str], bool] | None = None
) -> list[str]:
    """Shards holding files (those `accepts` takes: a branch's formats) that no sync of the version has
    covered yet."""
    return [
        shard
        for shard in collection.partitions.get_partition_keys()
        if shard not in record.synced_shards and read_listing(collection, shard, accepts)
    ]


def evaluate_gate(
    conn: psycopg.Connection, collection: Collection, candidate: VersionRecord, serving: VersionRecord | None
) -> GateResult:
    health = _index_health(conn, collection, candidate)
    checks = [
        _completeness(collection, candidate, health),
        _vector_sanity(candidate, health),
        _recall(conn, collection, candidate),
    ]
    if collection.promotion.golden_queries:
        checks.append(_golden_queries(conn, collection, candidate, serving))
    return GateResult(candidate.version, tuple(checks))


def _index_health(conn: psycopg.Connection, collection: Collection, candidate: VersionRecord) -> IndexHealth:
    chunks = chunks_store(collection, candidate.chunker_version)
    health, expected_rows = {}, {}
    for shard in collection.partitions.get_partition_keys():
        paths = listed_paths(collection, shard)
        expected_rows[shard] = sum(chunks.row_count(shard, path) or 0 for path in paths)
        health[shard] = shard_health(conn, candidate.table, shard, paths)
    return IndexHealth.of(health, expected_rows)


def _completeness(collection: Collection, candidate: VersionRecord, health: IndexHealth) -> GateCheck:
    unsynced = unsynced_shards(collection, candidate)
    problems = []
    if unsynced:
        problems.append(f"shards not synced: {', '.join(unsynced)}")
    if health.shards_differing:
        problems.append(f"rows != chunks in {health.shards_differing}")
    if health.rows_of_unlisted_files:
        problems.append(f"{health.rows_of_unlisted_files} rows of files no longer in the source")
    return GateCheck(
        "complete",
        not problems,
        "; ".join(problems) or f"{health.rows} rows == {health.chunks} chunks in every shard",
        {"rows": health.rows, "chunks": health.chunks, "shards_not_synced": len(unsynced)},
    )


def _vector_sanity(candidate: VersionRecord, health: IndexHealth) -> GateCheck:
    bad, dimensions = health.zero_or_nan_vectors, health.dimensions
    low, high = health.norm_range or (None, None)
    normalizes = TextEmbeddingModel(**candidate.model).folder_config().normalize
    problems = []
    if bad:
        problems.append(f"{bad} zero or NaN vectors")
    if not set(dimensions) <= {candidate.dimension}:
        problems.append(f"dimensions {dimensions}, model has {candidate.dimension}")
    if normalizes and health.norm_range and not (1 - NORM_TOLERANCE <= low and high <= 1 + NORM_TOLERANCE):
        problems.append(f"norms in [{low:.4f}, {high:.4f}] but the model normalizes to 1")
    return GateCheck(
        "vectors_sane",
        not problems,
        "; ".join(problems) or f"{candidate.dimension} dims, norms in [{low or 0:.4f}, {high or 0:.4f}]",
        {"zero_or_nan": bad, "dimensions": str(dimensions), "norm_min": low, "norm_max": high},
    )


def _recall(conn: psycopg.Connection, collection: Collection, candidate: VersionRecord) -> GateCheck:
    files = sorted((embeddings_folder(collection, candidate.version) / "current").glob("*/*.parquet"))
    queries = sample_vectors(files, collection.promotion.recall_queries) if files else []
    if not len(queries):
        return GateCheck("recall_at_10", True, "no vectors to query", {"queries": 0})
    exact = exact_neighbours(files, queries, RECALL_K)
    approximate = [
        [(hit.document_path, hit.chunk_ordinal, hit.score) for hit in search(conn, candidate.table, query, RECALL_K)]
        for query in queries
    ]
    recall = recall_at_k(approximate, exact, RECALL_K)
    target = collection.promotion.min_recall_at_10
    return GateCheck(
        "recall_at_10",
        recall >= target,
        f"HNSW recall@10 {recall:.3f} against exact k-NN over {len(queries)} sampled vectors (needs >= {target})",
        {"recall_at_10": recall, "queries": len(queries), "target": target},
    )


def _golden_queries(
    conn: psycopg.Connection, collection: Collection, candidate: VersionRecord, serving: VersionRecord | None
) -> GateCheck:
    policy = collection.promotion
    try:
        questions = json.loads(policy.golden_queries.read_text())
        pairs = [(item["question"], item["expected"]) for item in questions]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return GateCheck(
            "golden_queries",
            False,
            f"{policy.golden_queries}: not a JSON list of {{question, expected}} ({error})",
            {},
        )
    rate = hit_rate(conn, candidate, pairs, policy.golden_k)
    figures = {"hit_rate": rate, "questions": len(pairs), "k": policy.golden_k}
    if serving is None or serving.version == candidate.version:
        return GateCheck("golden_queries", True, f"hit rate@{policy.golden_k} {rate:.3f}, nothing to compare", figures)
    serving_rate = hit_rate(conn, serving, pairs, policy.golden_k)
    figures |= {"serving_version": serving.version, "serving_hit_rate": serving_rate}
    return GateCheck(
        "golden_queries",
        rate >= serving_rate - policy.golden_tolerance,
        f"hit rate@{policy.golden_k} {rate:.3f} vs {serving_rate:.3f} for serving version {serving.version} "
        f"(tolerance {policy.golden_tolerance}, {len(pairs)} questions)",
        figures,
    )


def hit_rate(conn: psycopg.Connection, record: VersionRecord, pairs: list[tuple[str, str]], k: int) -> float:
    """Share of questions whose expected document is among the top k chunks, embedded by the version's model."""
    model = TextEmbeddingModel(**record.model)
    hits = 0
    for question, expected in pairs:
        found = search(conn, record.table, model.embed_query(question), k)
        hits += any(hit.document_path == expected for hit in found)
    return hits / len(pairs) if pairs else 1.0
