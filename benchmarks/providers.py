"""A served model against the in-process one: chunks/s of all-MiniLM-L6-v2 through an OpenAI-compatible server
(infinity-emb on 127.0.0.1, CPU, its own virtual environment: see tests/embedding_server.py) at 1, 4 and 16
requests in flight, and of the project's in-process encoder, on the same texts (Python documentation
paragraphs when Debian's python3.11-doc is installed, else generated sentences of the same length). Also what
the served runs recorded: tokens, requests, retries, throttling.

On one machine the server and the client share the cores, so this measures the protocol's overhead and what
concurrency buys, not a GPU server's speed.

    .venv/bin/python benchmarks/providers.py [--chunks 512]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from embedding_server import EmbeddingServer  # noqa: E402
from encoders import texts  # noqa: E402

from embed_pipelines.text.local_model import (
    TextEmbeddingModel,  # noqa: E402
    bundled_model_folder,  # noqa: E402
)
from embed_pipelines.text.served_model import ServedEmbeddingModel


def timed(embed, corpus: list[str]) -> float:
    """Chunks/s of embed(corpus) after a warm-up on a few."""
    embed(corpus[:8])
    started = time.perf_counter()
    embed(corpus)
    return len(corpus) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=512)
    args = parser.parse_args()
    corpus = texts(args.chunks)
    local = TextEmbeddingModel(device="cpu")
    rows = [("in-process encoder", timed(local.embed_documents, corpus), {})]
    server = EmbeddingServer(bundled_model_folder(), "minilm")
    try:
        for concurrency in (1, 4, 16):
            model = ServedEmbeddingModel(
                base_url=server.base_url,
                model="minilm",
                tokenizer=str(bundled_model_folder()),
                max_batch_inputs=32,
                max_concurrency=concurrency,
            )
            before = model.usage()
            rate = timed(model.embed_documents, corpus)
            recorded = {name: value - before[name] for name, value in model.usage().items()}
            rows.append((f"served, {concurrency} in flight", rate, recorded))
    finally:
        server.stop()
    print(f"{len(corpus)} chunks, all-MiniLM-L6-v2 on this CPU; chunks/s (the served rows' figures cover the warm-up)")
    print(f"{'contender':24}{'chunks/s':>10}{'tokens':>10}{'requests':>10}{'retries':>9}{'throttled':>10}")
    for name, rate, recorded in rows:
        figures = "".join(
            f"{recorded.get(key, 0):>{width},.0f}" if recorded else f"{'-':>{width}}"
            for key, width in (("tokens", 10), ("requests", 10), ("retries", 9), ("throttled", 10))
        )
        print(f"{name:24}{rate:10.1f}{figures}")


if __name__ == "__main__":
    main()
