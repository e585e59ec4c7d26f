"""Shards and index versions depend only on their inputs: same on every process and machine."""

import os
import shutil
import subprocess
import sys
from collections import Counter

from embed_pipelines.core.fingerprints import index_version
from embed_pipelines.core.shards import shard_keys, shard_of
from embed_pipelines.text.local_model import TextEmbeddingModel

PROGRAM = (
    "from embed_pipelines.core.shards import shard_of;"
    "from embed_pipelines.text.local_model import TextEmbeddingModel;"
    "print([shard_of(f'dir/file-{i}.md', 16) for i in range(50)], TextEmbeddingModel(device='cpu').index_version())"
)


def test_shards_and_version_agree_across_processes_with_different_hash_seeds():
    outputs = {
        subprocess.run(
            [sys.executable, "-c", PROGRAM],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    shards, version = outputs.pop().rsplit(" ", 1)
    assert shards == str([shard_of(f"dir/file-{i}.md", 16) for i in range(50)])
    assert version.strip() == TextEmbeddingModel(device="cpu").index_version()


def test_shards_spread_paths_over_every_key():
    counts = Counter(shard_of(f"folder/{i}.md", 16) for i in range(1600))
    assert set(counts) == set(shard_keys(16))
    assert min(counts.values()) > 60  # 100 expected per shard


def test_the_version_changes_with_anything_that_changes_a_vector():
    base = {"model": "m", "pooling": "mean", "max_tokens": 254}
    assert index_version(base) == index_version(dict(reversed(base.items())))
    assert index_version(base) != index_version({**base, "max_tokens": 128})
    plain = TextEmbeddingModel(device="cpu").index_version()
    assert plain != TextEmbeddingModel(device="cpu", document_prefix="passage: ").index_version()


def test_a_model_copied_to_another_machine_keeps_its_version(tmp_path, tiny_model):
    """Another folder, another state directory (no cached fingerprints), another process: same version."""
    copy = shutil.copytree(tiny_model.folder, tmp_path / "elsewhere" / "model")
    program = (
        "import sys;"
        "from embed_pipelines.text.local_model import TextEmbeddingModel;"
        "print(TextEmbeddingModel(model=sys.argv[1], device='cpu').index_version())"
    )
    other_machine = {**os.environ, "EMBED_PIPELINES_HOME": str(tmp_path / "home"), "PYTHONHASHSEED": "3"}
    output = subprocess.run(
        [sys.executable, "-c", program, str(copy)], env=other_machine, capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == tiny_model.index_version()
