"""What users do, as Python functions: index a folder, search a collection, manage its index versions.

Every function finds its collection through `config.resolve_collection`, as the code location does, and
version operations take an index family by name ("text", or "pages" for the visual branch)."""

from __future__ import annotations

import dataclasses
import fcntl
import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import dagster as dg
from PIL import Image
from psycopg import sql

from embed_pipelines.assets.reporting import REQUESTED_BY_TAG, progress_logger
from embed_pipelines.automation import (
    UnfinishedSyncs,
    process_tag,
    running_sync,
    shard_range_tags,
    source_files_config,
)
from embed_pipelines.config import resolve_collection
from embed_pipelines.core import settings
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.factory import build_definitions, index_job_name
from embed_pipelines.live_job import live_job_name
from embed_pipelines.pipeline.families import AUDIO, IMAGES, TEXT, accepted_by, configured_models, family_named
from embed_pipelines.pipeline.plan import SyncPlan, plan_sync
from embed_pipelines.resources import PostgresResource
from embed_pipelines.resources.leases import holding_shards
from embed_pipelines.storage.chunk_search import SEARCH_MODES, Hit, Question
from embed_pipelines.storage.filters import FILTER_NAMES, Filters
from embed_pipelines.storage.page_tables import PageHit
from embed_pipelines.storage.picture_search import PictureHit
from embed_pipelines.storage.registry import VersionRecord, find_version, serving_version
from embed_pipelines.storage.registry import list_versions as registry_versions
from embed_pipelines.storage.tables import Footprint, footprint
from embed_pipelines.text.model import TextModel
from embed_pipelines.text.reranker import reranker_from
from embed_pipelines.version_jobs import build_version_jobs, version_job_name, version_op_name
from embed_pipelines.versions.evaluation import Scores, read_questions, score
from embed_pipelines.visual.pictures import image_file_picture
from embed_pipelines.visual.rendering import png_image


class SyncRunning(ConfigurationError):
    """A sync of the collection is queued or running in the instance: a second one would race it."""


def dagster_instance() -> dg.DagsterInstance:
    """The instance in DAGSTER_HOME (default <EMBED_PIPELINES_HOME>/dagster), the one `dagster dev` shows."""
    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():  # the repository's dagster.yaml, copied there, documents the full settings
        config.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    with _setting_up():
        return dg.DagsterInstance.get()


@contextmanager
def _setting_up() -> Iterator[None]:
    """One process at a time creates or migrates the Dagster instance (two at once leave SQLite's schema with
    two heads)."""
    path = settings.dagster_home() / "locks" / "instance.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def shards_in_range(collection: Collection, shard_range: tuple[str, str] | None) -> list[str]:
    """The collection's shards from `first` to `last` (all when None); a key it does not have is refused."""
    if shard_range is None:
        return collection.shard_keys
    first, last = shard_range
    if first not in collection.shard_keys or last not in collection.shard_keys or first > last:
        raise ConfigurationError(
            f"{collection.name} has shards {collection.shard_keys[0]} to {collection.shard_keys[-1]}: "
            f"{first}-{last} is not a range of them"
        )
    return [shard for shard in collection.shard_keys if first <= shard <= last]


def _requested_by() -> dict[str, str]:
    """Who runs it, for the promotion history (the OS user; unnamed in a container without one)."""
    try:
        return {REQUESTED_BY_TAG: getpass.getuser()}
    except (KeyError, OSError):
        return {}


def index(
    source_dir: Path | str,
    collection: str | None = None,
    shard_count: int | None = None,
    instance: dg.DagsterInstance | None = None,
    text_model: TextModel | None = None,
    postgres: PostgresResource | None = None,
    allow_mass_delete: bool = False,
    repair: bool = False,
    shard_range: tuple[str, str] | None = None,
    show_log: bool = False,
) -> dg.ExecuteInProcessResult:
    """Sync every shard of the collection (or those of `shard_range`, first and last included) in one Dagster
    run: only what changed is converted, chunked, embedded and written; the model loads once, and only if
    something needs embedding. Runs over disjoint ranges may run at once, on as many machines. A sync that
    would delete more than the collection's max_delete_share of its documents is refused unless
    `allow_mass_delete`. `repair` reads every file, as the nightly sync does (edits that kept size and mtime).
    `show_log`: a failed step's full report on the terminal, not its one-line reason."""
    spec = resolve_collection(collection, source_dir, shard_count)
    shards = shards_in_range(spec, shard_range)
    instance = instance or dagster_instance()
    models = {TEXT.name: text_model} if text_model else None
    postgres = postgres or PostgresResource()
    job = build_definitions(spec, postgres, models).resolve_job_def(index_job_name(spec))
    with holding_shards(postgres, spec.name, shards) as held:  # before the check: two at once cannot both pass
        if not held:
            raise SyncRunning(f"another sync of {spec.name} is running: sync again when it has ended")
        if running := running_sync(instance, spec, index_job_name(spec), shards, postgres):
            raise SyncRunning(f"another sync of {spec.name} is running (run {running}): sync again when it has ended")
        config = source_files_config(spec, repair or spec.verify_hashes == "always", allow_mass_delete)
        return _in_this_process(job, instance, shard_range_tags(spec, shards), show_log, config)


def _in_this_process(
    job: dg.JobDefinition, instance: dg.DagsterInstance, tags: dict, show_log: bool, run_config: dict | None = None
) -> dg.ExecuteInProcessResult:
    """A run in this process, recorded in the instance with who asked and where it runs, its progress on the
    terminal."""
    return job.with_logger_defs({"progress": progress_logger}).execute_in_process(
        instance=instance,
        tags={**tags, **_requested_by(), **process_tag()},
        run_config={
            "loggers": {"progress": {"config": {"log_level": "INFO", "details": show_log}}},
            **(run_config or {}),
        },
        raise_on_error=False,
    )


def live(
    source_dir: Path | str,
    collection: str | None = None,
    shard_count: int | None = None,
    instance: dg.DagsterInstance | None = None,
    text_model: TextModel | None = None,
    postgres: PostgresResource | None = None,
    show_log: bool = False,
) -> dg.ExecuteInProcessResult:
    """Run the collection's live worker in this process until interrupted (Ctrl-C), whether or not `live` is
    set: the run of its live job the daemon would start, with everything it applies recorded in the instance."""
    spec = dataclasses.replace(resolve_collection(collection, source_dir, shard_count), live=True)
    models = {TEXT.name: text_model} if text_model else None
    job = build_definitions(spec, postgres or PostgresResource(), models).resolve_job_def(live_job_name(spec))
    return _in_this_process(job, instance or dagster_instance(), {}, show_log)


def plan(
    source_dir: Path | str,
    collection: str | None = None,
    shard_count: int | None = None,
    text_model: TextModel | None = None,
    postgres: PostgresResource | None = None,
) -> SyncPlan:
    """What `index` would convert, chunk, embed, reuse, write and delete in each family, and what an earlier
    sync left unfinished, without changing anything (see pipeline/plan.py)."""
    spec = resolve_collection(collection, source_dir, shard_count)
    models = configured_models(spec, {TEXT.name: text_model} if text_model else None)
    with (postgres or PostgresResource()).connect() as conn:
        result = plan_sync(spec, accepted_by(spec), models, conn)
    result.unfinished = _unfinished(spec, {family.name: model for family, model in models}, postgres)
    return result


def unfinished(
    collection: str | None = None,
    source_dir: Path | str | None = None,
    shard_count: int | None = None,
    models: dict | None = None,
    postgres: PostgresResource | None = None,
) -> dict[str, list[str]]:
    """shard -> listed paths, for the shards whose last sync did not finish (a failed or killed run): the
    change sensor requests them again, and the next `index` finishes them."""
    return _unfinished(resolve_collection(collection, source_dir, shard_count), models, postgres)


def _unfinished(spec: Collection, models: dict | None, postgres: PostgresResource | None) -> dict[str, list[str]]:
    """What the change sensor asks, for the configured models (or the given ones, by family name)."""
    targets = [(family, family.versions_of(spec, model).index) for family, model in configured_models(spec, models)]
    return UnfinishedSyncs(postgres or PostgresResource(), spec, targets)()


def search(
    question: str,
    collection: str | None = None,
    k: int = 5,
    *,
    family: str = TEXT.name,
    version: str | None = None,
    postgres: PostgresResource | None = None,
    rerank: int = 0,
    role: str | None = None,
    like: str | Path | None = None,
    **options,
) -> list[Hit] | list[PageHit] | list[PictureHit]:
    """The family's best items for the question, from the serving index version unless `version` names
    another. Text: `mode` dense (cosine), keyword (BM25) or hybrid (both fused); pages: late interaction,
    MaxSim, where `options` may ask for `exact` scoring of every page or `candidates_per_token`. Filters, as
    keyword arguments (storage/filters.py): `path` (a glob), `formats`, `heading`, `where` (metadata field ->
    value), `modified_after`, `modified_before`. The question is embedded, where the mode needs it, by the
    model that made that version's vectors, whatever is configured now. `rerank`: that many candidates are
    re-ordered by the collection's reranker (text). `role`: search as that PostgreSQL role (SET ROLE, on a
    connection of this call's own), seeing only the rows its principals admit: an application that serves many
    users through one login role names each request's user (README: Permissions). `like`: an image file, for
    pictures like it (images), instead of the question."""
    check_question(question if like is None else str(like), k)
    example = None if like is None else _example_picture(family_named(family), Path(like))
    filters = Filters(**{name: options.pop(name) for name in FILTER_NAMES if name in options})
    collection, family = settings.collection_name(collection), family_named(family)
    reranker = _reranker(collection, family, rerank)
    view = family.view(collection)
    with (postgres or PostgresResource()).connect(ddl=False) as conn:
        if role:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        version = version or serving_version(conn, view)
        if version is None:
            raise LookupError(f"collection {collection!r} serves no {family.name} index yet: index it first")
        record = find_version(conn, view, version)
        asked = Question(question, _embedder(family, record, example))
        hits = family.search(conn, record.table, asked, max(k, rerank), filters=filters, **options)
    if reranker is None:
        return hits
    scores = reranker.scores(question, [hit.text for hit in hits])
    ranked = sorted(zip(scores, hits, strict=True), key=lambda pair: pair[0], reverse=True)  # stable: ties keep order
    return [dataclasses.replace(hit, score=score) for score, hit in ranked[:k]]


def _reranker(collection: str, family, rerank: int):
    """The collection's reranker where `rerank` candidates are to be re-ordered, checked before any query."""
    if not rerank:
        return None
    if family not in (TEXT, AUDIO):
        raise ConfigurationError(f"--rerank re-orders text chunks by their text: {family.name} have none to read")
    if not 1 <= rerank <= MAX_HITS:
        raise ConfigurationError(f"--rerank, the candidates re-ordered, must be 1 to {MAX_HITS}, not {rerank}")
    configured = resolve_collection(collection).reranker
    if configured is None:
        raise ConfigurationError(
            f"collection {collection!r} has no reranker: set `reranker` (a cross-encoder folder or a served /rerank "
            "endpoint) in its YAML, or EMBED_PIPELINES_RERANKER"
        )
    return reranker_from(configured)


def _embedder(family, record: VersionRecord, example: Image.Image | None = None):
    """Embeds questions (or the example picture) with the model that made the version's vectors, loaded on
    first use."""

    def embed(text: str):
        model = family.model_from(record.model)
        model.verify_serves(record.version)  # a served model swapped behind its name would answer wrongly
        return model.embed_query(text) if example is None else model.embed_pictures([example])[0]

    return embed


def _example_picture(family, path: Path) -> Image.Image:
    """The picture `search --like` asks with, decoded as an indexed image file is, before any query runs."""
    if family is not IMAGES:
        raise ConfigurationError("--like finds pictures like an example picture: add --family images")
    if not path.is_file():
        raise ConfigurationError(f"--like {path}: no such file")
    try:
        return png_image(image_file_picture(path).png)
    except ValueError as error:
        raise ConfigurationError(f"--like {error}") from None


def evaluate(
    questions: str | Path,
    collection: str | None = None,
    *,
    modes: tuple[str, ...] = SEARCH_MODES,
    versions: tuple[str, ...] = (),
    k: int = 10,
    postgres: PostgresResource | None = None,
) -> dict[tuple[str, str], Scores]:
    """(version, mode) -> scores of the judged questions (versions/evaluation.py), for each text index version named
    (default: the serving one) and each search mode. A question is embedded once per version."""
    judged = read_questions(Path(questions))
    check_question("evaluation", k)
    view = TEXT.view(settings.collection_name(collection))
    results = {}
    with (postgres or PostgresResource()).connect(ddl=False) as conn:
        serving = serving_version(conn, view)
        if not versions and serving is None:
            raise LookupError(f"collection {view!r} serves no text index yet: index it first, or name a --version")
        for version in versions or (serving,):
            record = find_version(conn, view, version)
            embed = _embedder(TEXT, record)
            asked = {q.question: Question(q.question, embed) for q in judged}
            for mode in modes:
                ask = partial(_ask_text, conn, record.table, asked, k, mode)
                results[(version, mode)] = score(judged, ask, k)
    return results


def _ask_text(conn, table: str, asked: dict[str, Question], k: int, mode: str, question: str) -> list[Hit]:
    return TEXT.search(conn, table, asked[question], k, mode=mode)


MAX_HITS = 1000


def check_question(question: str, k: int) -> None:
    """Refuse what no search can answer, before a model loads or a query runs."""
    if not 1 <= k <= MAX_HITS:
        raise ConfigurationError(f"k, the number of hits, must be 1 to {MAX_HITS}, not {k}")
    if not question.strip():
        raise ConfigurationError("the question is empty: ask something")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError as error:  # bytes the terminal's encoding could not decode (surrogate escapes)
        raise ConfigurationError(
            f"the question is not UTF-8 text (position {error.start}): set the terminal's encoding to UTF-8"
        ) from None


def _run_version_job(
    spec: Collection, action: str, config: dict, instance: dg.DagsterInstance | None, postgres, show_log: bool
) -> dg.ExecuteInProcessResult:
    """Run one version job: its definitions hold the PostgreSQL resource only, so no model is looked at. Its
    Dagster log goes to the terminal only when `show_log` (it is kept in the instance either way)."""
    definitions = dg.Definitions(jobs=build_version_jobs(spec), resources={"postgres": postgres or PostgresResource()})
    console = {"console": {"config": {"log_level": "DEBUG" if show_log else "CRITICAL"}}}
    return definitions.resolve_job_def(version_job_name(spec, action)).execute_in_process(
        instance=instance or dagster_instance(),
        run_config={"ops": {version_op_name(spec, action): {"config": config}}, "loggers": console},
        tags=_requested_by(),
        raise_on_error=False,
    )


def promote(
    version: str,
    collection: str | None = None,
    skip_gate: bool = False,
    *,
    family: str = TEXT.name,
    shard_count: int | None = None,
    instance: dg.DagsterInstance | None = None,
    postgres: PostgresResource | None = None,
    show_log: bool = False,
) -> dg.ExecuteInProcessResult:
    """Serve `version` of the family's index if it passes its promotion gate (`skip_gate` serves it
    unchecked)."""
    config = {"version": version, "skip_gate": skip_gate, "family": family_named(family).name}
    return _run_version_job(
        resolve_collection(collection, shard_count=shard_count), "promote", config, instance, postgres, show_log
    )


def rollback(
    collection: str | None = None,
    *,
    family: str = TEXT.name,
    instance: dg.DagsterInstance | None = None,
    postgres: PostgresResource | None = None,
    show_log: bool = False,
) -> dg.ExecuteInProcessResult:
    """Serve the version of the family's index that served before the last change again."""
    config = {"family": family_named(family).name}
    return _run_version_job(resolve_collection(collection), "rollback", config, instance, postgres, show_log)


def drop_version(
    version: str,
    collection: str | None = None,
    *,
    family: str = TEXT.name,
    instance: dg.DagsterInstance | None = None,
    postgres: PostgresResource | None = None,
    show_log: bool = False,
) -> dg.ExecuteInProcessResult:
    """Remove a version of the family's index that is not serving: tables, registry entry, stored vectors."""
    config = {"version": version, "family": family_named(family).name}
    return _run_version_job(resolve_collection(collection), "drop", config, instance, postgres, show_log)


def list_versions(
    collection: str | None = None, *, family: str = TEXT.name, postgres: PostgresResource | None = None
) -> tuple[str | None, list[VersionRecord]]:
    """(serving version, every version newest first) of the family's index."""
    view = family_named(family).view(settings.collection_name(collection))
    with (postgres or PostgresResource()).connect(ddl=False) as conn:
        return serving_version(conn, view), registry_versions(conn, view)


def version_footprints(
    collection: str | None = None, *, family: str = TEXT.name, postgres: PostgresResource | None = None
) -> dict[str, Footprint]:
    """version -> its table's storage tier, rows, table and index bytes (a version whose table is gone: none)."""
    index_family = family_named(family)
    view = index_family.view(settings.collection_name(collection))
    index_suffix = index_family.layout.hnsw[2]
    with (postgres or PostgresResource()).connect(ddl=False) as conn:
        found = {record.version: footprint(conn, record.table, record.table + index_suffix)
                 for record in registry_versions(conn, view)}  # fmt: skip
    return {version: figures for version, figures in found.items() if figures is not None}
