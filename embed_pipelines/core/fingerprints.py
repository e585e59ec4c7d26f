"""The index version: a short hash of everything that changes a vector.

It names the embeddings folder and the pgvector table, so a model or chunker change can never mix vectors
from two configurations. Weights are fingerprinted by content (cached by size and mtime), so a fine-tuned
checkpoint with the same architecture still gets a new version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embed_pipelines.core.location import Location
from embed_pipelines.core.settings import ConfigurationError

_SHA256 = re.compile(r"[0-9a-f]{64}")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "merges.txt", "vocab.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")
_CONFIG_FILES = (
    "config.json",
    *TOKENIZER_FILES,
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
    "preprocessor_config.json",  # image resolution of vision models
    "processor_config.json",
    "adapter_config.json",
)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(4 * 2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cached_sha256(path: Path, cache_dir: Path) -> str:
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    cache_file = cache_dir / f"{key}.sha256"
    cached = cache_file.read_text().strip() if cache_file.is_file() else ""
    if _SHA256.fullmatch(cached):  # anything else (a file a crash cut short) is computed again
        return cached
    value = _sha256_file(path)
    Location.of(cache_file).write_text(value)
    return value


def model_fingerprint(folder: Path, cache_dir: Path) -> dict[str, str]:
    """Content hashes of the files that define a model's behaviour, keyed by their path in the folder."""
    files = [folder / name for name in _CONFIG_FILES if (folder / name).is_file()]
    files += sorted(p for p in folder.rglob("*") if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
    return {str(p.relative_to(folder)): _cached_sha256(p, cache_dir) for p in files}


def cached_facts(cache_dir: Path, key: dict, measure: Callable[[], dict]) -> tuple[dict, Path]:
    """measure(), kept under a hash of `key` (what the facts depend on): a model's dimension, token limits
    and dtype class come from transformers and torch, seconds of imports on every run that has nothing to
    embed. Returns the facts and their cache file, which a caller that finds them wrong deletes."""
    cache_file = cache_dir / f"{index_version(key)}.facts.json"
    try:
        return json.loads(cache_file.read_text()), cache_file
    except (OSError, ValueError):  # none yet, or a file a crash cut short
        facts = measure()
        Location.of(cache_file).write_text(json.dumps(facts))
        return facts, cache_file


def check_loaded(facts: dict, cache_file: Path, loaded: dict) -> None:
    """The facts a model shows once loaded (dtype, dimension) against those cached for its index version: a
    machine that changed under the cache (another device, another dtype) deletes it and fails the load."""
    if {name: facts[name] for name in loaded} != loaded:
        cache_file.unlink(missing_ok=True)
        raise ConfigurationError(
            f"the model computes {loaded} here, not the {facts} its index version was made with: "
            "sync again to use the index version of this machine"
        )


@dataclass(frozen=True)
class Versions:
    """What a family's assets are built with: the index version (vectors, tables) and, for families that
    chunk, the chunker version (chunks)."""

    index: str
    chunker: str = ""
    vectors: str = ""  # the version whose stored vectors its tables are made from, where not `index` itself

    @property
    def stored_vectors(self) -> str:
        return self.vectors or self.index

    def stored_in(self, tier: str, prefix: int = 0) -> Versions:
        """The versions of a table storing these vectors in `tier`, its index on their first `prefix` dimensions
        (0: all): float32 over all is the vectors' own version; any other is an index version of its own (a
        table, gated, promoted, rolled back) over the same vectors."""
        if tier == "float32" and not prefix:
            return self
        table = {"vectors": self.index, "tier": tier, **({"prefix": prefix} if prefix else {})}
        return dataclasses.replace(self, index=index_version(table), vectors=self.index)


def index_version(settings: dict) -> str:
    """12 hex characters of a canonical JSON hash: same settings, same version, on any machine."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The lowest cosine between matching rows of two sets of vectors: how far a model strayed from a record
    of itself (its probes, or the torch module another runtime was converted from)."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return float((a * b).sum(axis=1).min())
