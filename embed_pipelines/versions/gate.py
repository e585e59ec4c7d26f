"""The promotion gate: what a new index version must show before its view serves it.

Each check looks at one thing and says what it found. A family picks its checks: text versions must be
complete (rows == chunks in every shard, no rows of missing files), have sane vectors (dimension, no
zero/NaN, unit norm where the model normalizes), an HNSW index that finds the exact nearest neighbours
(recall@10) and, where the collection declares judged questions, rank their answers about as well (nDCG) as
the version they replace; page versions must have synced every shard holding pages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import psycopg

from embed_pipelines.core.access import PUBLIC
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.storage.access import distinct_principals, probe
from embed_pipelines.storage.chunk_search import Question, search
from embed_pipelines.storage.registry import VersionRecord
from embed_pipelines.storage.stores import chunks_store
from embed_pipelines.storage.tables import IndexHealth, shard_health
from embed_pipelines.storage.tiers import stored_tier, vectors_version
from embed_pipelines.sync.listing import listed_paths, read_listing
from embed_pipelines.versions.evaluation import JudgedQuestion, Scores, read_questions, score
from embed_pipelines.versions.family import IndexFamily
from embed_pipelines.versions.recall import exact_neighbours, recall_at_k, sample_vectors

RECALL_K = 10
LEAK_CHECK = "readers_see_only_their_rows"
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


@dataclass
class GateInputs:
    """What every check may look at: the candidate version, the one it would replace, and where they live."""

    conn: psycopg.Connection
    collection: Collection
    family: IndexFamily
    candidate: VersionRecord
    serving: VersionRecord | None
    figures: dict = field(default_factory=dict)  # what one check measured and another reuses


def unsynced_shards(collection: Collection, family: IndexFamily, record: VersionRecord) -> list[str]:
    """Shards holding files of the family that no sync of the version has covered yet."""
    return [
        shard
        for shard in collection.shard_keys
        if shard not in record.synced_shards and read_listing(collection, shard, family.accepts)
    ]


def evaluate_gate(inputs: GateInputs) -> GateResult:
    checks = (check(inputs) for check in inputs.family.gate)
    return GateResult(inputs.candidate.version, tuple(check for check in checks if check is not None))


def _chunk_health(inputs: GateInputs) -> IndexHealth:
    """The version table's health against the chunks each shard should hold (one scan, shared by checks)."""
    if "chunk_health" not in inputs.figures:
        conn, collection, candidate = inputs.conn, inputs.collection, inputs.candidate
        chunks = chunks_store(collection, candidate.chunker_version, inputs.family.layout.kind)
        health, expected_rows = {}, {}
        for shard in collection.shard_keys:
            paths = listed_paths(collection, shard, inputs.family.accepts)
            expected_rows[shard] = sum(chunks.row_count(shard, path) or 0 for path in paths)
            health[shard] = shard_health(conn, candidate.table, shard, paths)
        inputs.figures["chunk_health"] = IndexHealth.of(health, expected_rows)
    return inputs.figures["chunk_health"]


def shards_synced(inputs: GateInputs) -> GateCheck:
    """Every shard holding the family's files has been synced by the version."""
    unsynced = unsynced_shards(inputs.collection, inputs.family, inputs.candidate)
    summary = f"shards not synced: {', '.join(unsynced)}" if unsynced else "every shard holding files is synced"
    return GateCheck("complete", not unsynced, summary, {"shards_not_synced": len(unsynced)})


def rows_match_chunks(inputs: GateInputs) -> GateCheck:
    """Every shard synced, its rows equal to its chunks, no rows of files the source no longer holds."""
    health = _chunk_health(inputs)
    unsynced = unsynced_shards(inputs.collection, inputs.family, inputs.candidate)
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


def vectors_sane(inputs: GateInputs) -> GateCheck:
    """The model's dimension, no zero or NaN vector, unit norms where the model normalizes."""
    candidate, health = inputs.candidate, _chunk_health(inputs)
    bad, dimensions = health.zero_or_nan_vectors, health.dimensions
    low, high = health.norm_range or (None, None)
    normalizes = inputs.family.model_from(candidate.model).normalizes()
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


def recall_at_10(inputs: GateInputs) -> GateCheck:
    """The HNSW index finds the exact nearest neighbours (over the stored float32 vectors) of sampled vectors:
    in a storage tier other than float32, what the tier loses is measured with what the index loses."""
    conn, collection, candidate = inputs.conn, inputs.collection, inputs.candidate
    stored = vectors_version(conn, candidate.table, candidate.version)
    current = inputs.family.vectors_folder(collection, stored) / "current"
    files = current.files(recursive=True)
    queries = sample_vectors(files, collection.promotion.recall_queries)
    if not len(queries):
        return GateCheck("recall_at_10", True, "no vectors to query", {"queries": 0})
    exact = exact_neighbours(files, queries, RECALL_K)
    ordinal, search_family = inputs.family.layout.ordinal, inputs.family.search
    approximate = [
        [
            (hit.document_path, getattr(hit, ordinal), hit.score)
            for hit in search_family(conn, candidate.table, Question.of_vector(query), RECALL_K, mode="dense")
        ]
        for query in queries
    ]
    recall = recall_at_k(approximate, exact, RECALL_K)
    target, (storage, _) = collection.promotion.min_recall_at_10, stored_tier(conn, candidate.table)
    return GateCheck(
        "recall_at_10",
        recall >= target,
        f"HNSW recall@10 {recall:.3f} ({storage.label}) against exact float32 k-NN over {len(queries)} sampled "
        f"vectors (needs >= {target})",
        {"recall_at_10": recall, "queries": len(queries), "target": target, "tier": storage.label},
    )


def golden_queries(inputs: GateInputs) -> GateCheck | None:
    """Where the collection declares judged questions (versions/evaluation.py: by span, or the golden form
    `{question, expected}`): nDCG@k, in the default search mode, no lower than the serving version's by more
    than the tolerance. Every score is a figure of the check, so the UI plots quality per version."""
    conn, candidate, serving, family = inputs.conn, inputs.candidate, inputs.serving, inputs.family
    policy = inputs.collection.promotion
    if not policy.golden_queries:
        return None
    try:
        questions = read_questions(policy.golden_queries)
    except ConfigurationError as error:
        return GateCheck("golden_queries", False, str(error), {})
    k = policy.golden_k
    scores = judged_scores(conn, family, candidate, questions, k)
    figures = scores.as_metadata() | {"hit_rate": scores.hit_at_k, "k": k}
    if serving is None or serving.version == candidate.version:
        return GateCheck("golden_queries", True, f"nDCG@{k} {scores.ndcg:.3f}, nothing to compare", figures)
    served = judged_scores(conn, family, serving, questions, k)
    figures |= {"serving_version": serving.version, "serving_ndcg": served.ndcg, "serving_hit_rate": served.hit_at_k}
    return GateCheck(
        "golden_queries",
        scores.ndcg >= served.ndcg - policy.golden_tolerance,
        f"nDCG@{k} {scores.ndcg:.3f} vs {served.ndcg:.3f} for serving version {serving.version} "
        f"(tolerance {policy.golden_tolerance}, {len(questions)} questions)",
        figures,
    )


def judged_scores(
    conn: psycopg.Connection, family: IndexFamily, record: VersionRecord, questions: list[JudgedQuestion], k: int
) -> Scores:
    """The version's default search on the questions, embedded by the version's own model."""
    model = family.model_from(record.model)
    return score(questions, lambda text: search(conn, record.table, Question(text, model.embed_query), k), k)


def readers_see_only_their_rows(inputs: GateInputs) -> GateCheck | None:
    """Where the collection declares `access`: no reader sees a row of the version its principals do not admit."""
    if inputs.collection.access is None:
        return None
    return leak_check(inputs.conn, [inputs.candidate.table])


def leak_check(conn: psycopg.Connection, relations: list[str]) -> GateCheck:
    """As a role holding each principal the rows name, and as one holding none, read each relation (the version
    table last): none may see a row beyond what its roles admit (storage/access.py)."""
    principals = [PUBLIC, *(name for name in distinct_principals(conn, relations[-1]) if name != PUBLIC)]
    try:
        probes = [found for principal in principals for found in probe(conn, relations, principal)]
    except PermissionError as error:
        return GateCheck(LEAK_CHECK, False, str(error), {"principals_probed": 0})
    leaked = {f"{found.principal} in {found.relation}": found.leaked for found in probes if found.leaked}
    summary = (
        f"rows seen beyond their principals: {leaked}"
        if leaked
        else f"{len(principals)} principals probed on {', '.join(relations)}: none saw a row it is not admitted to"
    )
    figures = {"principals_probed": len(principals), "rows_leaked": sum(leaked.values())}
    return GateCheck(LEAK_CHECK, not leaked, summary, figures)
