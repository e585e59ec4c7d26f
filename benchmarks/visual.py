"""The visual branch: rendering, embedding, loading and late-interaction search of page images.

    .venv/bin/python benchmarks/visual.py [--pages 10000] [--tokens 300] [--queries 20]

1. Rendering: pages/s of a generated 100-page PDF at 144 DPI (pypdfium2).
2. Embedding: pages/s of a tiny random-weight ColQwen2 on this CPU (tests/tiny_visual_model.py: no hub here,
   so the figure measures the pipeline around the model, not a real model's compute).
3. Storage and search, synthetic: `--pages` pages of `--tokens` token vectors (128 dims, clustered like real
   page embeddings: each page has a few parts, each part a blend of a shared topic and its own content),
   loaded into a page table by binary COPY (rows/s, MB), then questions made from one page's tokens plus
   noise. Latency of HNSW candidates + exact MaxSim re-rank
   vs exact MaxSim over every page (SQL), and recall@10 of the former against exact MaxSim (numpy).
4. Bounded memory: the visual branch of the index job over one 50-page and one 500-page PDF (render, embed,
   load), each in its own process: peak RSS should not grow with the page count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tiny random-weight models the tests build

DIMENSION = 128
PAGES_PER_DOCUMENT = 10


def write_pdf(path: Path, pages: int) -> Path:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_font("helvetica", size=14)
    for number in range(1, pages + 1):
        pdf.add_page()
        pdf.multi_cell(0, 8, text=f"Page {number}. " + "Bees build comb of hexagonal wax cells. " * 40)
    pdf.output(str(path))
    return path


def rendering(folder: Path) -> None:
    from embed_pipelines.visual.rendering import render_pages

    pdf = write_pdf(folder / "hundred.pdf", 100)
    started = time.perf_counter()
    pages = sum(1 for _ in render_pages(pdf, 144))
    print(f"rendering: {pages / (time.perf_counter() - started):.1f} pages/s (A4 at 144 DPI, PNG)")


def embedding(folder: Path) -> None:
    from tiny_visual_model import build_tiny_colqwen2

    from embed_pipelines.visual.model import VisualEmbeddingModel
    from embed_pipelines.visual.rendering import render_pages

    model = VisualEmbeddingModel(model=str(build_tiny_colqwen2(folder / "colqwen2")), family="colqwen2", device="cpu")
    images = [page.image() for page in render_pages(write_pdf(folder / "forty.pdf", 40), 144)]
    model.embed_pages(images[:4])  # load and warm
    started = time.perf_counter()
    vectors = model.embed_pages(images)
    seconds = time.perf_counter() - started
    tokens = statistics.mean(len(v) for v in vectors)
    print(f"embedding: {len(images) / seconds:.1f} pages/s, tiny ColQwen2 on CPU ({tokens:.0f} tokens per page)")


def synthetic_pages(count: int, tokens: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Pages made of 6 parts (a paragraph, a table, a figure...), each part a blend of one of 200 shared topics
    and something of its own; a token is its part plus noise. Many pages share topics, no two share a part."""
    topics = rng.normal(size=(200, DIMENSION))
    pages = []
    for _ in range(count):
        parts = 0.6 * topics[rng.choice(len(topics), size=6)] + 0.8 * rng.normal(size=(6, DIMENSION))
        pages.append(unit(parts[rng.integers(6, size=tokens)] + 0.4 * rng.normal(size=(tokens, DIMENSION))))
    return pages


def unit(vectors: np.ndarray) -> np.ndarray:
    """Unit rows in half precision, as the page table stores them."""
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float16).astype(np.float32)


def exact_top(pages: list[np.ndarray], query: np.ndarray, k: int) -> list[int]:
    scores = np.array([(query @ page.T).max(axis=1).sum() for page in pages])
    return list(np.argsort(-scores)[:k])


def latency(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"p50 {statistics.median(ordered) * 1000:8.1f} ms  p95 {p95 * 1000:8.1f} ms"


def storage_and_search(count: int, tokens: int, queries: int) -> None:
    from embed_pipelines.core.rows import Page
    from embed_pipelines.resources import PostgresResource
    from embed_pipelines.storage.page_tables import (
        as_halfvecs,
        ensure_page_search,
        regions_table,
        search_pages,
        write_regions,
    )
    from embed_pipelines.storage.tables import PAGE_TABLE, ensure_hnsw_index, ensure_table, replace_document
    from embed_pipelines.visual.regions import regions_of

    rng = np.random.default_rng(0)
    pages = synthetic_pages(count, tokens, rng)
    started = time.perf_counter()
    regions = [regions_of(page) for page in pages]  # done by page_embeddings, once per page image
    print(f"region clustering: {count / (time.perf_counter() - started):.0f} pages/s")
    with PostgresResource().connect() as conn:
        table = ensure_table(conn, "visual_bench_pages", "v1", DIMENSION, PAGE_TABLE)
        ensure_page_search(conn, table, DIMENSION)
        started = time.perf_counter()
        for first in range(0, count, PAGES_PER_DOCUMENT):  # one transaction per document, as page_index does
            path = f"doc-{first // PAGES_PER_DOCUMENT}.pdf"
            numbers = range(first, min(first + PAGES_PER_DOCUMENT, count))
            rows = [
                Page(
                    document_path=path,
                    page_number=n,
                    shard="0",
                    width=1000,
                    height=1400,
                    image_sha256=str(n),
                    source_sha256="s",
                    png=None,
                    tokens=as_halfvecs(pages[n]),
                )
                for n in numbers
            ]
            with conn.transaction():
                replace_document(conn, table, path, rows, PAGE_TABLE)
                write_regions(conn, table, path, {n: regions[n] for n in numbers})
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        ensure_hnsw_index(conn, table, PAGE_TABLE)
        hnsw_s = time.perf_counter() - started
        size = sum(
            conn.execute("SELECT pg_total_relation_size(%s)", (name,)).fetchone()[0]
            for name in (table, regions_table(table))
        )
        print(
            f"storage: {count:,} pages x {tokens} tokens loaded at {count / load_s:.0f} pages/s "
            f"({count * tokens / load_s:,.0f} token vectors/s, regions included); HNSW on the regions "
            f"{hnsw_s:.1f} s; {size / 2**20:,.0f} MiB ({size / count / 1024:.0f} KiB per page)"
        )
        questions, targets = [], []
        for _ in range(queries):  # a question about one page: some of its tokens, plus noise
            targets.append(int(rng.integers(count)))
            noise = 0.08 * rng.normal(size=(20, DIMENSION))  # about as long as the unit token: cos ~0.75
            questions.append(unit(pages[targets[-1]][rng.integers(tokens, size=20)] + noise))
        truths = [{(f"doc-{i // PAGES_PER_DOCUMENT}.pdf", i) for i in exact_top(pages, q, 10)} for q in questions]
        exact_s = []
        for question in questions[:3]:  # exact MaxSim over every page is slow: a few are enough to time it
            started = time.perf_counter()
            search_pages(conn, table, question, 10, exact=True)
            exact_s.append(time.perf_counter() - started)
        print(f"search, exact MaxSim over every page (SQL): {latency(exact_s)}  (n={len(exact_s)})")
        for per_token in (20, 64):
            seconds, recalls, firsts = [], [], []
            for question, truth, target in zip(questions, truths, targets, strict=True):
                started = time.perf_counter()
                hits = search_pages(conn, table, question, 10, candidates_per_token=per_token)
                seconds.append(time.perf_counter() - started)
                recalls.append(len(truth & {(hit.document_path, hit.page_number) for hit in hits}) / 10)
                firsts.append(hits[0].page_number == target)
            print(
                f"search, {per_token} nearest regions per query token + MaxSim re-rank: {latency(seconds)}  "
                f"recall@10 against exact MaxSim {statistics.mean(recalls):.3f}, the asked-about page first "
                f"{statistics.mean(firsts):.2f}  (n={len(seconds)})"
            )
        conn.execute(f'DROP TABLE "{regions_table(table)}", "{table}"')


def memory_child(pdf_pages: int, home: Path) -> None:
    """Index one PDF of `pdf_pages` pages through the visual branch of the index job; print peak RSS as JSON."""
    import dagster as dg
    from tiny_visual_model import build_tiny_colqwen2

    from embed_pipelines.assets.common import asset_key
    from embed_pipelines.automation import shard_range_tags
    from embed_pipelines.core.collection import Collection, VisualBranch
    from embed_pipelines.factory import build_definitions, index_job_name

    source = home / f"pdf-{pdf_pages}"
    source.mkdir()
    write_pdf(source / "long.pdf", pdf_pages)
    model = build_tiny_colqwen2(home / f"colqwen2-{pdf_pages}")
    collection = Collection(f"mem{pdf_pages}", source, shards=1, visual=VisualBranch(str(model)))
    visual_branch = {
        asset_key(collection, name) for name in ("source_files", "page_images", "page_embeddings", "page_index")
    }
    job = (
        build_definitions(collection)
        .resolve_job_def(index_job_name(collection))
        .get_subset(asset_selection=visual_branch)
    )
    started = time.perf_counter()
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), tags=shard_range_tags(collection))
    assert result.success
    figures = {
        "seconds": time.perf_counter() - started,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(figures))


def bounded_memory(home: Path) -> None:
    for pages in (50, 500):
        done = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(pages), str(home)],
            env={**os.environ},
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"index job, one {pages}-page PDF: {figures['seconds']:.0f} s "
            f"({pages / figures['seconds']:.1f} pages/s end to end), peak RSS {figures['peak_rss_mib']:,.0f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    if args.memory_child:
        memory_child(int(args.memory_child[0]), Path(args.memory_child[1]))
        return
    with tempfile.TemporaryDirectory(prefix="embed-visual-") as tmp:
        home = Path(tmp)
        os.environ["EMBED_PIPELINES_HOME"] = str(home)
        rendering(home)
        embedding(home)
        storage_and_search(args.pages, args.tokens, args.queries)
        bounded_memory(home)


if __name__ == "__main__":
    main()
