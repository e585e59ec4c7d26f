"""Faults injected into real syncs, and what they cost: rows lost, stale rows, duplicate rows, time to converge.

Each fault runs against the bundled sample corpus (plus one edit, one deletion and one new file, so there is
work to lose), the bundled all-MiniLM-L6-v2 and the embedded PostgreSQL. A sync killed at a boundary is a
child process that sends itself SIGKILL there (the fault is injected by wrapping one function of the package
in the child). After the fault, normal syncs run (as the change sensor would request them) until the
collection's serving rows equal a from-scratch index of the same folder and nothing of a dropped version is
left (its tables, its vectors folder, or a version beyond `keep_versions`), at most three. Target: 0 on every
count.

    .venv/bin/python benchmarks/faults.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

FAULTS = {
    "killed after the listing": "after_listing",
    "killed mid-document swap": "mid_swap",
    "killed after the view swap": "after_view_swap",
    "killed mid-retention drop": "mid_drop",
    "database unreachable mid-run": "unreachable",
    "source folder emptied (unmounted)": "emptied",
    "two syncs at once": "concurrent",
}


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def inject(fault: str) -> None:
    """Wrap the function at the fault's boundary so that the child dies there (SIGKILL: no cleanup runs)."""
    from embed_pipelines.core.location import Location
    from embed_pipelines.pipeline import table_load
    from embed_pipelines.sync import refresh
    from embed_pipelines.versions import lifecycle

    def after(module, name):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            result = original(*args, **kwargs)
            die()
            return result

        setattr(module, name, wrapper)

    if fault == "after_listing":
        after(refresh, "write_listing")
    elif fault == "mid_swap":  # the document's rows are copied; its transaction is still open
        after(table_load, "replace_document")
    elif fault == "after_view_swap":
        after(lifecycle, "point_view")
    elif fault == "mid_drop":  # the version's vectors folder is gone, its tables and registry entry not yet
        after(Location, "delete_tree")


def child(fault: str, source: Path, collection: str) -> None:
    from embed_pipelines import api

    inject(fault)
    result = api.index(source, collection, shard_count=4)
    sys.exit(0 if result.success else 1)


def sync(source: Path, collection: str, fault: str = "none", env: dict | None = None) -> int:
    done = subprocess.run(
        [sys.executable, __file__, "--child", fault, str(source), collection],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
    )
    return done.returncode


def rows(collection: str) -> list[tuple]:
    from embed_pipelines.resources import PostgresResource

    with PostgresResource().connect(ddl=False) as conn:
        found = conn.execute(f'SELECT document_path, chunk_ordinal, chunk_hash FROM "{collection}"').fetchall()
    return found


def compare(collection: str, reference: str) -> tuple[int, int, int]:
    """(rows lost, stale rows, duplicate rows) of the collection's serving rows against the reference."""
    actual, expected = Counter(rows(collection)), Counter(rows(reference))
    keys = Counter((path, ordinal) for path, ordinal, _ in actual.elements())
    lost = sum((expected - actual).values())
    stale = sum((actual - expected).values())
    duplicates = sum(count - 1 for count in keys.values() if count > 1)
    return lost, stale, duplicates


def leftovers(collection: str, keep: int) -> int:
    """Tables and vectors folders of versions the registry no longer lists, and versions beyond `keep`: what a
    drop cut short leaves behind."""
    import pyarrow.fs as pafs

    from embed_pipelines.core.location import Location
    from embed_pipelines.core.settings import state_root
    from embed_pipelines.resources import PostgresResource
    from embed_pipelines.storage.registry import list_versions

    prefix = f"{collection}__"
    with PostgresResource().connect(ddl=False) as conn:
        listed = {record.version for record in list_versions(conn, collection)}
        tables = conn.execute("SELECT relname FROM pg_class WHERE relkind = 'r' AND starts_with(relname, %s)", [prefix])
        table_versions = [name.removeprefix(prefix) for (name,) in tables]
    vectors = Location.of(state_root()) / collection / "embeddings"
    found = vectors.fs.get_file_info(pafs.FileSelector(vectors.path, allow_not_found=True))
    folder_versions = [info.base_name for info in found if info.type == pafs.FileType.Directory]
    unlisted = [version for version in table_versions + folder_versions if version not in listed]
    return len(unlisted) + max(len(listed) - keep, 0)


def churn(source: Path) -> None:
    (source / "varroa-mites.md").write_text((source / "varroa-mites.md").read_text() + "\n\nEdited for a fault.\n")
    (source / "swarm-control.md").unlink()
    (source / "new-note.md").write_text("# Feeding\n\nFeed sugar syrup in autumn when stores run low.\n")


def upgraded_model(home: Path) -> Path:
    """The bundled model with a document prefix: a new index version (the prefix is part of it)."""
    import json

    from embed_pipelines.text.local_model import bundled_model_folder

    folder = home / "model-with-prefix"
    shutil.copytree(bundled_model_folder(), folder)
    config = folder / "config_sentence_transformers.json"
    settings = json.loads(config.read_text()) if config.exists() else {}
    config.write_text(json.dumps({**settings, "prompts": {"query": "", "document": "passage: "}}))
    return folder


def run_fault(name: str, fault: str, home: Path, number: int, upgrade: dict) -> dict:
    """`upgrade`: the environment of a model upgrade, for the faults at a promotion."""
    from embed_pipelines.sample_corpus import write_sample_corpus

    collection = f"fault{number}"
    source = write_sample_corpus(home / collection)
    assert sync(source, collection) == 0, "the first sync failed"
    churn(source)
    env = upgrade if fault in ("after_view_swap", "mid_drop") else {}
    keep = int(env.get("EMBED_PIPELINES_KEEP_VERSIONS", 2))
    expected = reference(source, home, number, env)
    runs = 1
    started = time.perf_counter()
    if fault == "unreachable":
        ended = sync(source, collection, env={"EMBED_PIPELINES_DSN": "postgresql://nobody@127.0.0.1:9/none"})
    elif fault == "emptied":
        hidden = home / f"{collection}-unmounted"
        source.rename(hidden)
        source.mkdir()
        ended = sync(source, collection)  # refused: nothing is written
        source.rmdir()
        hidden.rename(source)
    elif fault == "concurrent":
        first = subprocess.Popen([sys.executable, __file__, "--child", "none", str(source), collection])
        ended = sync(source, collection)  # refused while the first runs, or runs after it
        first.wait()
        runs += 1
    else:
        ended = sync(source, collection, fault, env)
    converged = float("nan")
    for _ in range(3):
        runs += 1
        synced = sync(source, collection, env=env) == 0
        if synced and compare(collection, expected) == (0, 0, 0) and leftovers(collection, keep) == 0:
            converged = time.perf_counter() - started
            break
    lost, stale, duplicates = compare(collection, expected)
    outcome = {-signal.SIGKILL: "killed", 0: "succeeded"}.get(ended, "failed")
    return {
        "fault": name,
        "faulty run": outcome,
        "runs": runs,
        "lost": lost,
        "stale": stale,
        "duplicates": duplicates,
        "leftovers": leftovers(collection, keep),
        "s": converged,
    }


def reference(source: Path, home: Path, number: int, env: dict) -> str:
    """A from-scratch index of the folder as it is now, in a collection of its own."""
    collection = f"reference{number}"
    copy = home / collection
    shutil.copytree(source, copy)
    assert sync(copy, collection, env=env) == 0, "the reference index failed"
    return collection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        fault, source, collection = args.child
        child(fault, Path(source), collection)
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    with tempfile.TemporaryDirectory(prefix="embed-faults-") as tmp:
        home = Path(tmp)
        os.environ["EMBED_PIPELINES_HOME"] = str(home)
        os.environ["DAGSTER_HOME"] = str(home / "dagster")
        upgrade = {"EMBED_PIPELINES_MODEL": str(upgraded_model(home)), "EMBED_PIPELINES_KEEP_VERSIONS": "1"}
        results = [run_fault(name, fault, home, number, upgrade) for number, (name, fault) in enumerate(FAULTS.items())]
    header = f"{'fault':36}{'faulty run':>12}{'runs':>6}{'rows lost':>11}{'stale rows':>12}{'duplicate rows':>16}"
    print(header + f"{'leftovers':>11}{'converged in s':>16}")
    for r in results:
        print(
            f"{r['fault']:36}{r['faulty run']:>12}{r['runs']:6}{r['lost']:11}{r['stale']:12}{r['duplicates']:16}"
            f"{r['leftovers']:11}{r['s']:16.1f}"
        )


if __name__ == "__main__":
    main()
