"""Syncs side by side on one host, as people run them beside a test run or a demo: several homes (each with its
own embedded PostgreSQL), syncs started one at a time and in pairs, some killed with SIGKILL, some inside their
own PID namespace (`unshare --pid`, a container-like kill that takes a server started there with it). It runs
until `--seconds` pass, then prints what every sync did and whether any home folder's mode changed.

An unkilled sync must end with success or a refusal because another sync of its collection runs; anything
else is counted as a failure and its last line is printed. Run it beside `.ci/run` (SIGTERM ends
it after the round under way, with its report):

    .venv/bin/python benchmarks/side_by_side.py --seconds 7200 & loop=$!
    .ci/run; kill $loop; wait $loop
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REFUSED = "another sync"
CORPUS_FILES = 12


def write_corpus(folder: Path, round_number: int) -> None:
    """A small Markdown folder; two files change every round so that every sync has work to do."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(CORPUS_FILES):
        edition = round_number if number in (round_number % CORPUS_FILES, (round_number + 5) % CORPUS_FILES) else 0
        body = "\n\n".join(
            f"Paragraph {p} of note {number}, edition {edition}: hives, frames and queens." for p in range(6)
        )
        (folder / f"note-{number:02}.md").write_text(f"# Note {number}\n\n{body}\n")


def sync_command(source: Path, in_namespace: bool) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "embed_pipelines.cli",
        "index",
        str(source),
        "--collection",
        "side",
        "--shards",
        "2",
    ]
    if in_namespace:  # a shell is the namespace's init; killing it kills everything started inside
        return ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", '"$@"', "sh", *command]
    return command


class Home:
    def __init__(self, root: Path, number: int):
        self.folder = root / f"home-{number}"
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.source = root / f"docs-{number}"
        self.env = {**os.environ, "EMBED_PIPELINES_HOME": str(self.folder), "HF_HUB_OFFLINE": "1"}
        self.env.pop("EMBED_PIPELINES_DSN", None)
        self.env.pop("DAGSTER_HOME", None)
        self.rounds = 0

    def start(self, in_namespace: bool) -> subprocess.Popen:
        self.rounds += 1
        write_corpus(self.source, self.rounds)
        return subprocess.Popen(
            sync_command(self.source, in_namespace),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def mode(self) -> int:
        return stat.S_IMODE(self.folder.stat().st_mode)


def run_round(homes: list[Home], rng: random.Random, outcomes: Counter, failures: list[str]) -> None:
    home = rng.choice(homes)
    kind = rng.choice(["plain", "pair", "killed", "killed in a PID namespace", "pair, one killed"])
    in_namespace = "namespace" in kind or rng.random() < 0.3
    processes = [home.start(in_namespace)]
    if kind.startswith("pair"):
        processes.append(home.start(in_namespace))
    doomed = processes[-1:] if "killed" in kind else []
    if doomed:
        time.sleep(rng.uniform(1.0, 12.0))
        for process in doomed:
            os.killpg(process.pid, signal.SIGKILL)  # the whole session: the namespace's init, or the sync
    for process in processes:
        _, err = process.communicate()
        last = (err.strip().splitlines() or [""])[-1]
        if process in doomed:
            outcomes["killed"] += 1
        elif process.returncode == 0:
            outcomes["succeeded"] += 1
        elif REFUSED in err:
            outcomes["refused: another sync runs"] += 1
        else:
            outcomes["failed"] += 1
            failures.append(f"{home.folder.name} ({kind}): exit {process.returncode}: {last[:300]}")
    if home.mode() != 0o700:
        failures.append(f"{home.folder} changed mode to {oct(home.mode())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--homes", type=int, default=3)
    parser.add_argument("--root", type=Path, default=None, help="where the homes go (default: a new temp folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="side-by-side-"))
    homes = [Home(root, number) for number in range(args.homes)]
    rng = random.Random(args.seed)
    outcomes: Counter = Counter()
    failures: list[str] = []
    stopping = []  # SIGTERM: finish the round, then report
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    started = time.monotonic()
    while time.monotonic() - started < args.seconds and not stopping:
        run_round(homes, rng, outcomes, failures)
    print(
        f"side by side for {time.monotonic() - started:.0f} s under {root}: "
        + ", ".join(f"{count} {what}" for what, count in sorted(outcomes.items()))
    )
    for failure in failures:
        print("  FAILED", failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
