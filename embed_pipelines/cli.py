"""`embed-pipelines index|search|versions|demo`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath

import psycopg

from embed_pipelines import api
from embed_pipelines.assets.reporting import failed_documents, failure_reason, interrupted_run
from embed_pipelines.core import settings
from embed_pipelines.core.files import DiskFull, disk_full, free_bytes
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.pipeline.families import FAMILIES, PAGES
from embed_pipelines.sample_corpus import sample_questions, write_sample_corpus
from embed_pipelines.storage.chunk_search import SEARCH_MODES, Hit
from embed_pipelines.storage.page_tables import PageHit
from embed_pipelines.storage.picture_search import PictureHit
from embed_pipelines.terminal import safe_output


def print_hits(hits: list[Hit] | list[PageHit] | list[PictureHit]) -> None:
    if not hits:
        print("No results: is the collection indexed, and do the filters match any of it?")
    for rank, hit in enumerate(hits, start=1):
        if isinstance(hit, PageHit):
            print(f"{rank:>2}. {hit.score:.3f}  {hit.document_path}  page {hit.page_number}")
            continue
        if isinstance(hit, PictureHit):
            print(f"{rank:>2}. {hit.score:.3f}  {hit.document_path}  {_picture_place(hit)}".rstrip())
            continue
        where = " > ".join(hit.headings)
        if hit.start_s is not None:  # a recording's chunk: when it was said
            where = f"{clock(hit.start_s)}–{clock(hit.end_s)}"
        if hit.pages:
            where += f" (page {', '.join(map(str, hit.pages))})"
        title = f" - {hit.title}" if hit.title and hit.title != PurePosixPath(hit.document_path).stem else ""
        print(f"{rank:>2}. {hit.score:.3f}  {hit.document_path}{title}  {where}".rstrip())
        snippet = " ".join(hit.text.split())
        print(textwrap.indent(textwrap.shorten(snippet, width=200, placeholder=" ..."), "      "))


def clock(seconds: float) -> str:
    """00:12:31: a time into a recording, to the second."""
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _picture_place(hit: PictureHit) -> str:
    """Where a picture is in its document: page, position, section and caption (nothing for an image file)."""
    if not hit.picture_ordinal:
        return ""
    place = [f"page {hit.page_number}"] if hit.page_number else []
    place.append(f"picture {hit.picture_ordinal}")
    if hit.headings:
        place.append(" > ".join(hit.headings))
    caption = f'  "{textwrap.shorten(hit.caption, width=120, placeholder=" ...")}"' if hit.caption else ""
    return ", ".join(place) + caption


# Exit codes of `index` (the README lists them).
INDEXED, SYNC_FAILED, REFUSED, FILES_FAILED, INTERRUPTED = 0, 1, 2, 3, 130


def _index(args: argparse.Namespace) -> int:
    if args.plan:
        print(api.plan(args.path, collection=args.collection, shard_count=args.shards).summary())
        return INDEXED
    result = api.index(
        args.path,
        collection=args.collection,
        shard_count=args.shards,
        allow_mass_delete=args.allow_mass_delete,
        repair=args.repair,
        shard_range=tuple(args.shard_range.split("-", 1)) if args.shard_range else None,
        show_log=args.verbose,
    )
    if result.success:
        failed = failed_documents(result)
        if not failed:
            print(f"Run {result.run_id}: succeeded")
            return INDEXED
        counts = ", ".join(f"{step}: {count}" for step, count in failed.items())
        print(f"Run {result.run_id}: succeeded, but files failed ({counts}); each is named above with its reason "
              "and keeps its last indexed rows")  # fmt: skip
        return FILES_FAILED
    interrupted = interrupted_run(result)
    print(f"Run {result.run_id}: {'interrupted' if interrupted else 'FAILED'}")
    try:
        left = api.unfinished(args.collection, args.path, args.shards)
        print(f"Left unfinished: shards {', '.join(left) or 'none'}; nothing indexed is lost, and they stay pending "
              "until a sync finishes them")  # fmt: skip
    except Exception as error:  # noqa: BLE001 (the database may be what failed the run)
        print(f"Which shards are left unfinished cannot be told now: {type(error).__name__}", file=sys.stderr)
    return INTERRUPTED if interrupted else SYNC_FAILED


def _live(args: argparse.Namespace) -> int:
    result = api.live(args.path, collection=args.collection, shard_count=args.shards, show_log=args.verbose)
    print(f"Run {result.run_id}: {'stopped' if result.success else 'FAILED'}")
    return INDEXED if result.success else SYNC_FAILED


def _search(args: argparse.Namespace) -> int:
    options = {"exact": args.exact, "candidates_per_token": args.candidates_per_token}
    if args.family != PAGES.name and (args.exact or args.candidates_per_token is not None):
        raise ConfigurationError("--exact and --candidates-per-token score page images: add --family pages")
    if args.family == PAGES.name and (args.mode or args.heading):
        raise ConfigurationError("--mode and --heading search text chunks: leave out --family pages")
    options |= {"mode": args.mode, "path": args.path, "formats": args.format, "heading": args.heading}
    options |= {"where": _metadata_conditions(args.where or []), "modified_after": args.modified_after}
    options["modified_before"] = args.modified_before
    options |= {"rerank": args.rerank, "role": args.role, "like": args.like}
    chosen = {name: value for name, value in options.items() if value not in (None, False, 0)}
    try:
        hits = api.search(args.question, args.collection, args.k, family=args.family, version=args.version, **chosen)
    except LookupError as error:
        print(error, file=sys.stderr)
        return 1
    print_hits(hits)
    return 0


def _metadata_conditions(pairs: list[str]) -> dict[str, str]:
    """`--where team=search --where year=2026` as a mapping (values as text; filters.py matches numbers too)."""
    conditions = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise ConfigurationError(f"--where {pair!r}: expected FIELD=VALUE, e.g. --where team=search")
        conditions[name.strip()] = value
    return conditions


def _eval(args: argparse.Namespace) -> int:
    try:
        results = api.evaluate(
            args.questions,
            args.collection,
            modes=tuple(args.mode or SEARCH_MODES),
            versions=tuple(args.version or ()),
            k=args.k,
        )
    except LookupError as error:
        print(error, file=sys.stderr)
        return 1
    k = args.k
    print(f"{'version':<14}{'mode':<9}{'hit@1':>7}{f'hit@{k}':>8}{f'MRR@{k}':>8}{f'nDCG@{k}':>9}{f'recall@{k}':>10}")
    for (version, mode), scores in results.items():
        print(
            f"{version:<14}{mode:<9}{scores.hit_at_1:>7.3f}{scores.hit_at_k:>8.3f}{scores.mrr:>8.3f}"
            f"{scores.ndcg:>9.3f}{scores.recall:>10.3f}"
        )
    print(f"({len(next(iter(results.values())).ranks)} questions)")
    return 0


def _versions_list(args: argparse.Namespace) -> int:
    serving, records = api.list_versions(args.collection, family=args.family)
    footprints = api.version_footprints(args.collection, family=args.family)
    if not records:
        print(f"Collection {args.collection!r} has no index versions yet.")
    for record in records:
        state = "serving" if record.version == serving else "rolled back" if record.rejected else ""
        gate = record.gate or {}
        verdict = {True: "gate passed", False: "gate FAILED"}.get(gate.get("passed"), "not gated")
        model = record.model["model"] or "bundled all-MiniLM-L6-v2"
        print(
            f"{'*' if record.version == serving else ' '} {record.version}  {record.dimension:>5} dims  "
            f"{len(record.synced_shards):>3} shards synced  {verdict:<11}  {state:<11}  "
            f"{record.created_at:%Y-%m-%d %H:%M}  {model}"
        )
        if record.version in footprints:
            print(f"    {_storage_line(footprints[record.version], gate)}")
    return 0


def _storage_line(footprint, gate: dict) -> str:
    """A version's tier, what its table and index take, and what its gate measured of its quality."""
    figures = {name: value for check in gate.get("checks", []) for name, value in check["figures"].items()}
    measured = [f"{name.replace('_at_', '@')} {value:.3f}" for name, value in figures.items()
                if (name == "recall_at_10" or name.startswith("ndcg@")) and isinstance(value, float)]  # fmt: skip
    return (
        f"{footprint.tier:<8} {footprint.rows:>9,} rows  {footprint.bytes_per_row:>7,.0f} B/row  "
        f"table {footprint.table_bytes / 2**20:,.1f} MiB  index {footprint.index_bytes / 2**20:,.1f} MiB"
        + (f"  {'  '.join(measured)}" if measured else "")
    )


def _report_run(result, done: str) -> int:
    """A version job's outcome in one line: what it did, or why it did not."""
    if result.success:
        print(f"{done} (run {result.run_id})")
        return 0
    failure = result.get_step_failure_events()[0].step_failure_data
    reason = failure.user_failure_data.description if failure.user_failure_data else failure_reason(failure.error)
    print(f"Nothing changed: {reason.strip()} (run {result.run_id})", file=sys.stderr)
    return 1


def _versions_promote(args: argparse.Namespace) -> int:
    result = api.promote(
        args.version,
        args.collection,
        skip_gate=args.skip_gate,
        family=args.family,
        shard_count=args.shards,
        show_log=args.verbose,
    )
    return _report_run(result, f"{args.collection} now serves {args.version}")


def _versions_rollback(args: argparse.Namespace) -> int:
    result = api.rollback(args.collection, family=args.family, show_log=args.verbose)
    return _report_run(result, f"{args.collection} rolled back to the version it served before")


def _versions_drop(args: argparse.Namespace) -> int:
    result = api.drop_version(args.version, args.collection, family=args.family, show_log=args.verbose)
    return _report_run(result, f"dropped {args.collection} version {args.version}")


def _demo(args: argparse.Namespace) -> int:
    """Index the bundled sample corpus into the embedded PostgreSQL and answer a sample question."""
    folder = write_sample_corpus(settings.sample_corpus_dir())
    print(f"Sample corpus written to {folder}")
    result = api.index(folder, collection=settings.DEFAULT_COLLECTION)
    if not result.success:
        print(f"Run {result.run_id} FAILED")
        return 1
    question = args.question or sample_questions()[1]["question"]
    print(f"\nQuestion: {question}")
    print_hits(api.search(question, collection=settings.DEFAULT_COLLECTION, k=args.k))
    return 0


COLLECTION_HELP = f"default ${settings.COLLECTION_ENV} or {settings.DEFAULT_COLLECTION}"


def add_family_flag(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--family", choices=sorted(FAMILIES), default="text", help=f"{text} (default text)")


class OneLineParser(argparse.ArgumentParser):
    """A usage error in one line, as every other failure (`--help` shows the usage); exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="embed-pipelines", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="show libraries' warnings and progress bars")
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="sync a folder into a pgvector collection through Dagster")
    index.add_argument("path", help="source folder, or an object-store URL (s3://bucket/docs)")
    index.add_argument("--plan", action="store_true", help="print what a sync would do; change nothing")
    index.add_argument("--collection", default=None, help=COLLECTION_HELP)
    index.add_argument("--shards", type=int, default=None, help="default $EMBED_PIPELINES_SHARDS or 16")
    index.add_argument(
        "--shard-range",
        default=None,
        metavar="FIRST-LAST",
        help="sync only these shards (e.g. 00-07): runs over disjoint ranges may run at once, on several machines",
    )
    index.add_argument(
        "--repair", action="store_true", help="read every file (edits that kept size and mtime), as the nightly sync"
    )
    index.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="let this sync delete more than the collection's max_delete_share of its documents (default 50 %%)",
    )
    index.set_defaults(handler=_index)

    live = commands.add_parser(
        "live", help="follow a folder or bucket: apply each change seconds after it is saved, until Ctrl-C"
    )
    live.add_argument("path", help="source folder, or an object-store URL (s3://bucket/docs; needs events_queue)")
    live.add_argument("--collection", default=None, help=COLLECTION_HELP)
    live.add_argument("--shards", type=int, default=None, help="default $EMBED_PIPELINES_SHARDS or 16")
    live.set_defaults(handler=_live)

    search = commands.add_parser("search", help="print the chunks nearest to a question")
    search.add_argument("question", nargs="?", default="", help="what to find (leave out with --like)")
    search.add_argument("--collection", default=None, help=COLLECTION_HELP)
    search.add_argument("-k", type=int, default=5)
    search.add_argument("--version", default=None, help="an index version other than the serving one")
    add_family_flag(search, "which index: text chunks, page images (MaxSim), pictures or recordings' transcripts")
    search.add_argument(
        "--mode",
        choices=SEARCH_MODES,
        default=None,
        help="dense (cosine of the vectors), keyword (BM25) or hybrid (both, fused by rank; the default)",
    )
    search.add_argument("--path", default=None, help="only documents whose path matches this glob: 'guides/**'")
    search.add_argument(
        "--format", action="append", default=None, help="only documents of this suffix (pdf, md, ...); repeatable"
    )
    search.add_argument("--heading", default=None, help="only chunks under a heading that contains this text")
    search.add_argument(
        "--where",
        action="append",
        metavar="FIELD=VALUE",
        help="only documents whose metadata field equals (or, a list, holds) VALUE; repeatable, all must hold",
    )
    search.add_argument("--modified-after", metavar="DATE", help="only documents modified at or after (ISO 8601)")
    search.add_argument("--modified-before", metavar="DATE", help="only documents modified before (ISO 8601)")
    search.add_argument(
        "--rerank", type=int, default=0, metavar="N", help="re-order the N best by the collection's reranker"
    )
    search.add_argument(
        "--role", default=None, help="search as this PostgreSQL role (SET ROLE): only the rows its principals admit"
    )
    search.add_argument(
        "--exact", action="store_true", help="with --family pages: score every page, not HNSW candidates"
    )
    search.add_argument(
        "--candidates-per-token",
        type=int,
        default=None,
        help="with --family pages: nearest regions per query token (default 20)",
    )
    search.add_argument(
        "--like", metavar="IMAGE", default=None, help="with --family images: pictures like this image file"
    )
    search.set_defaults(handler=_search)

    evaluate = commands.add_parser(
        "eval", help="score search on judged questions: hit@1, hit@k, MRR, nDCG and recall, per mode and version"
    )
    evaluate.add_argument("questions", help='JSON or JSON Lines: {"question": ..., "relevant": [{"path", "span"}]}')
    evaluate.add_argument("--collection", default=None, help=COLLECTION_HELP)
    evaluate.add_argument(
        "--mode", action="append", choices=SEARCH_MODES, default=None, help="repeat for several (default: all)"
    )
    evaluate.add_argument(
        "--version", action="append", default=None, help="an index version; repeat for several (default: serving)"
    )
    evaluate.add_argument("-k", type=int, default=10)
    evaluate.set_defaults(handler=_eval)

    versions = commands.add_parser("versions", help="list, promote, roll back and drop index versions")
    actions = versions.add_subparsers(dest="action", required=True)
    for name, handler, text in (
        ("list", _versions_list, "every index version; * marks the serving one"),
        ("promote", _versions_promote, "serve a version if it passes the promotion gate"),
        ("rollback", _versions_rollback, "serve the version served before the last change"),
        ("drop", _versions_drop, "remove a version that is not serving"),
    ):
        action = actions.add_parser(name, help=text)
        if name in ("promote", "drop"):
            action.add_argument("version")
        if name == "promote":
            action.add_argument("--skip-gate", action="store_true", help="serve it without the gate's checks")
            action.add_argument("--shards", type=int, default=None, help="default $EMBED_PIPELINES_SHARDS or 16")
        action.add_argument("--collection", default=None, help=COLLECTION_HELP)
        add_family_flag(action, "the index family")
        action.set_defaults(handler=handler)

    demo = commands.add_parser("demo", help="index the bundled sample corpus and ask it a question")
    demo.add_argument("question", nargs="?", default=None)
    demo.add_argument("-k", type=int, default=3)
    demo.set_defaults(handler=_demo)
    return parser


@contextmanager
def library_noise(shown: bool) -> Iterator[None]:
    """Libraries' warnings and progress bars, only when asked for: the terminal shows the project's own
    progress and results (a run's full log stays in its Dagster instance)."""
    if shown:
        yield
        return
    from transformers.utils import logging as transformers_logging

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    transformers_logging.disable_progress_bar()
    logging.getLogger("docling").setLevel(logging.CRITICAL)  # its reasons reach the run's own failure lines
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "collection" in args:
        args.collection = settings.collection_name(args.collection)
    with library_noise(args.verbose), safe_output():
        try:
            return args.handler(args)
        except (ConfigurationError, psycopg.OperationalError) as error:  # one line, no DSN (storage/connect.py)
            if args.verbose:
                raise
            print(f"embed-pipelines: {error}", file=sys.stderr)
            return REFUSED if isinstance(error, ConfigurationError) else SYNC_FAILED
        except KeyboardInterrupt:  # outside a run (a run reports its own interruption)
            print("embed-pipelines: interrupted", file=sys.stderr)
            return INTERRUPTED
        except Exception as error:
            if args.verbose or not (full := _full_disk(error)):
                raise
            print(f"embed-pipelines: {full}", file=sys.stderr)
            return SYNC_FAILED


def _full_disk(error: BaseException) -> DiskFull | None:
    """Ours names its folder. Any other is the Dagster instance's (SQLite's storage): it says "database or
    disk is full", or only "disk I/O error" where it cannot even open its journal, so that one counts when the
    instance's disk has next to nothing free."""
    found, home = disk_full(error), settings.dagster_home()
    if isinstance(found, DiskFull):
        return found
    if found or ("disk I/O error" in str(error) and free_bytes(home) < 2**20):
        return DiskFull(
            home, "free space there and run again (a run this left started is marked failed by the next sync)"
        )
    return None


if __name__ == "__main__":
    sys.exit(main())
