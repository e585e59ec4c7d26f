"""CocoIndex on sync.py's job: the same files, the same churn (5 edited, 5 deleted, 5 added), each sync its own
process, wall time including process start and imports; the figures to set beside `sync.py`'s.

CocoIndex 1.0 pins its own dependencies, so it runs from its own virtual environment (torch from the same
local wheel as ours):

    python3 -m venv /tmp/cocoindex-venv
    /tmp/cocoindex-venv/bin/pip install --isolated 'cocoindex[sentence-transformers]==1.0.26' 'torch==2.13.0' \\
        asyncpg pgvector
    .venv/bin/python benchmarks/cocoindex_sync.py --python /tmp/cocoindex-venv/bin/python --sources --limit 100

Its pipeline is peers/cocoindex_flow.py (CocoIndex's documented text-embedding shape). The PostgreSQL is the
embedded one, started once by this script and kept up for all three syncs (ours starts it in each sync's
process, inside its figure).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from python_docs import DEFAULT_CORPUS, copy_pages, documentation
from sync import churn

FLOW = Path(__file__).resolve().parent / "peers" / "cocoindex_flow.py"


def timed_sync(python: str, env: dict) -> dict:
    started = time.perf_counter()
    done = subprocess.run([python, str(FLOW)], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"CocoIndex failed:\n{done.stderr[-3000:]}")
    return {"wall_s": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def rows(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as connection:
        return connection.execute("SELECT count(*) FROM bench.bench_chunks").fetchone()[0]


def cut_by_the_model(dsn: str, model: Path) -> int:
    """Chunks longer than the model's 256 tokens: the model embeds their first 256 tokens only."""
    import psycopg
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
    tokenizer.no_truncation()
    with psycopg.connect(dsn) as connection:
        texts = [text for (text,) in connection.execute("SELECT text FROM bench.bench_chunks")]
    return sum(len(encoding.ids) > 256 for encoding in tokenizer.encode_batch(texts))


def main() -> None:
    from embed_pipelines.storage.embedded_server import embedded_server_uri
    from embed_pipelines.text.local_model import bundled_model_folder

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", required=True, help="the python of a virtual environment with cocoindex")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--sources", action="store_true", help="the .rst sources instead of the HTML pages")
    args = parser.parse_args()
    folder, pages = documentation(args.corpus, args.sources)
    home = Path(tempfile.mkdtemp(prefix="embed-cocoindex-"))
    atexit.register(shutil.rmtree, home, True)  # after the embedded server's own stop (atexit runs last first)
    copy_pages(pages[: args.limit], folder, home / "corpus")
    dsn = embedded_server_uri(home / "pgdata")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "COCOINDEX_DB": str(home / "cocoindex.db"),
        "BENCH_DSN": dsn,
        "BENCH_SOURCE": str(home / "corpus"),
        "BENCH_MODEL": str(bundled_model_folder()),
    }
    results = {"initial": timed_sync(args.python, env)}
    results["initial"]["rows"] = rows(dsn)
    cut = cut_by_the_model(dsn, bundled_model_folder())
    churn(home / "corpus", pages[args.limit :], folder)
    for phase in ("incremental", "no-op"):
        results[phase] = timed_sync(args.python, env)
        results[phase]["rows"] = rows(dsn)
    print(f"CocoIndex, {args.limit} files; churn: 5 edited, 5 deleted, 5 added")
    print(f"{'sync':12}{'wall s':>9}{'chunks embedded':>17}{'rows':>8}")
    for name, r in results.items():
        print(f"{name:12}{r['wall_s']:9.1f}{r['embedded']:17}{r['rows']:8}")
    print(f"chunks longer than the model's 256 tokens after the initial sync: {cut} of {results['initial']['rows']}")


if __name__ == "__main__":
    main()
