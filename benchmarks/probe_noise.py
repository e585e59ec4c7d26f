"""How far a served model's probe vectors move without the model changing, and how far they move when it does:
the measurement behind versions/probes.py's MIN_PROBE_COSINE.

Same model: the probes asked again, in batches of 1, 2 and 4 instead of 8, among 56 longer paragraphs (other
padding), through infinity-emb on 127.0.0.1 (tests/embedding_server.py), and the in-process encoder; bf16
weights stand for a GPU server's reduced precision. Another model: the same weights with small Gaussian
noise added (what a light fine-tune moves). Normalisation and dimension are part of the identity itself, so
models that differ there never reach the probe comparison.

    .venv/bin/python benchmarks/probe_noise.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from embedding_server import EmbeddingServer  # noqa: E402
from encoders import texts  # noqa: E402

from embed_pipelines.cli import library_noise  # noqa: E402
from embed_pipelines.text.local_model import (
    TextEmbeddingModel,  # noqa: E402
    bundled_model_folder,  # noqa: E402
)
from embed_pipelines.text.served_model import PROBES, ServedEmbeddingModel
from embed_pipelines.versions.probes import MIN_PROBE_COSINE  # noqa: E402

REPEATS = 10


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def sentence_transformer_probes(folder: Path, **model_kwargs) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", model_kwargs=model_kwargs)
    return model.encode(list(PROBES), convert_to_numpy=True).astype(np.float32)


def perturbed_copy(folder: Path, scale: float, into: Path) -> Path:
    """`folder` with N(0, scale) noise on every weight: another model of the same shape."""
    import torch
    from safetensors.torch import load_file, save_file

    copy = into / f"noise-{scale}"
    shutil.copytree(folder, copy)
    generator = torch.Generator().manual_seed(0)
    weights = copy / "model.safetensors"
    tensors = {name: t + scale * torch.randn(t.shape, generator=generator) for name, t in load_file(weights).items()}
    save_file(tensors, weights)
    return copy


def main() -> None:
    with library_noise(shown=False):
        measure()


def measure() -> None:
    import torch

    folder = bundled_model_folder()
    server = EmbeddingServer(folder, "minilm")
    try:
        model = ServedEmbeddingModel(base_url=server.base_url, model="minilm", tokenizer=str(folder))

        def ask(inputs: list[str]) -> np.ndarray:
            return np.asarray(model.answer(inputs)[0], dtype=np.float32)

        reference = ask(list(PROBES))
        again = min(min_cosine(reference, ask(list(PROBES))) for _ in range(REPEATS))
        same = {f"asked again ({REPEATS} times), batch of 8": again}
        for size in (1, 2, 4):
            batches = [ask(list(PROBES[i : i + size])) for i in range(0, len(PROBES), size)]
            same[f"batches of {size}"] = min_cosine(reference, np.concatenate(batches))
        neighbours = texts(7 * len(PROBES))  # each probe followed by 7 paragraphs, in one request
        mixed = [text for i, probe in enumerate(PROBES) for text in (probe, *neighbours[7 * i : 7 * i + 7])]
        same["among 56 paragraphs, one request"] = min_cosine(reference, ask(mixed)[::8])
    finally:
        server.stop()
    in_process = TextEmbeddingModel(device="cpu").embed_documents(list(PROBES))
    same["in-process encoder (fp32)"] = min_cosine(reference, in_process)
    same["bf16 weights (a GPU server's precision)"] = min_cosine(
        reference, sentence_transformer_probes(folder, torch_dtype=torch.bfloat16)
    )
    other = {}
    with tempfile.TemporaryDirectory(prefix="probe-noise-") as tmp:
        for scale in (0.002, 0.01, 0.05):
            copy = perturbed_copy(folder, scale, Path(tmp))
            other[f"weights + N(0, {scale})"] = min_cosine(reference, sentence_transformer_probes(copy))

    print(f"all-MiniLM-L6-v2, {len(PROBES)} probe texts; min cosine to the probes served in one batch of 8")
    print(f"(a version matches when every probe is at least {MIN_PROBE_COSINE})\n")
    for title, rows in (("same model", same), ("another model", other)):
        print(title)
        for name, cosine in rows.items():
            verdict = "same version" if cosine >= MIN_PROBE_COSINE else "new version"
            print(f"  {name:44}{cosine:12.7f}   1 - cos {1 - cosine:9.2e}   {verdict}")


if __name__ == "__main__":
    main()
