"""`embed-pipelines index|search|demo`."""

from __future__ import annotations

import argparse
import sys
import textwrap

from embed_pipelines import api, settings
from embed_pipelines.sample_corpus import sample_questions, write_sample_corpus
from embed_pipelines.vector_store import Hit


def print_hits(hits: list[Hit]) -> None:
    if not hits:
        print("No results: is the collection indexed?")
    for rank, hit in enumerate(hits, start=1):
        where = " > ".join(hit.headings)
        if hit.pages:
            where += f" (page {', '.join(map(str, hit.pages))})"
        print(f"{rank:>2}. {hit.score:.3f}  {hit.document_path}  {where}".rstrip())
        snippet = " ".join(hit.text.split())
        print(textwrap.indent(textwrap.shorten(snippet, width=200, placeholder=" ..."), "      "))


def _index(args: argparse.Namespace) -> int:
    if args.plan:
        print(api.plan(args.path, collection=args.collection, shard_count=args.shards).summary())
        return 0
    result = api.index(args.path, collection=args.collection, shard_count=args.shards)
    print(f"Run {result.run_id}: {'succeeded' if result.success else 'FAILED'}")
    return 0 if result.success else 1


def _search(args: argparse.Namespace) -> int:
    print_hits(api.search(args.question, collection=args.collection, k=args.k))
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embed-pipelines", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="sync a folder into a pgvector collection through Dagster")
    index.add_argument("path", help="source folder")
    index.add_argument("--plan", action="store_true", help="print what a sync would do; change nothing")
    index.add_argument("--collection", default=settings.DEFAULT_COLLECTION)
    index.add_argument("--shards", type=int, default=None, help=f"default ${settings.SHARDS_ENV} or 16")
    index.set_defaults(handler=_index)

    search = commands.add_parser("search", help="print the chunks nearest to a question")
    search.add_argument("question")
    search.add_argument("--collection", default=settings.DEFAULT_COLLECTION)
    search.add_argument("-k", type=int, default=5)
    search.set_defaults(handler=_search)

    demo = commands.add_parser("demo", help="index the bundled sample corpus and ask it a question")
    demo.add_argument("question", nargs="?", default=None)
    demo.add_argument("-k", type=int, default=3)
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
