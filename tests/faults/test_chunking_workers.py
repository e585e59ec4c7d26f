"""Chunking workers start clean however busy the syncing process is. The steps run on threads (and live mode's
listeners on more), so a worker that is a copy of this process taken at a random instant inherits the locks
other threads held then, held forever. Here a thread holds a lock the chunker needs while the pool starts: a
worker copied from this process would wait on it for good; one started clean chunks at once."""

import multiprocessing
import subprocess
import sys
import threading
import time
from concurrent.futures import TimeoutError as Unfinished

import psutil
import pytest

from embed_pipelines.text.chunking import ChunkingPool, DocumentChunker
from embed_pipelines.text.streaming import Section

COUNTING = threading.Lock()  # stands for any lock in a library the chunker calls (a tokenizer's, an import's)


def words_counted_under_the_lock(text: str) -> int:
    with COUNTING:
        return len(text.split())


def test_a_worker_started_while_another_thread_holds_a_lock_is_not_stuck_on_it():
    chunker = DocumentChunker(None, 8, count_tokens=words_counted_under_the_lock)
    holding, release = threading.Event(), threading.Event()

    def busy_elsewhere() -> None:  # another step's thread, inside the library at the wrong moment
        with COUNTING:
            holding.set()
            release.wait()

    thread = threading.Thread(target=busy_elsewhere)
    thread.start()
    holding.wait()
    pool = ChunkingPool(chunker, 1)
    try:
        words = "one two three four five six seven eight nine ten eleven twelve"
        pieces = pool.submit_sections([Section(("Beans",), words)])
        release.set()
        thread.join()
        chunked = pieces.result(timeout=60)
        assert " ".join(text.removeprefix("Beans\n") for _, text, _ in chunked) == words
        assert len(chunked) > 1 and all(tokens <= 8 for _, _, tokens in chunked)
    except Unfinished:
        pytest.fail("the chunking worker is stuck on a lock held by another thread when it started")
    finally:
        release.set()
        for worker in multiprocessing.active_children():  # a stuck worker would keep the pool, and the exit, waiting
            worker.kill()
        pool.close()


SYNC_WITH_A_POOL = """
import os, sys
from embed_pipelines.text.chunking import ChunkingPool, DocumentChunker
from embed_pipelines.text.streaming import Section
pool = ChunkingPool(DocumentChunker(None, 8, count_tokens=len), 2)
futures = [pool.submit_sections([Section((), "one two three")]) for _ in range(4)]
[future.result() for future in futures]
print(*[child.pid for child in __import__("multiprocessing").active_children()], flush=True)
sys.stdin.read()  # until killed
"""


def test_the_workers_of_a_killed_sync_end():
    """A sync killed with SIGKILL (the OOM killer, a node going away) cannot shut its pool down: each worker
    holds both ends of its own queue, so it would wait for work for good, a tokenizer in memory."""
    sync = subprocess.Popen(
        [sys.executable, "-c", SYNC_WITH_A_POOL], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    workers = [int(pid) for pid in sync.stdout.readline().split()]
    assert len(workers) == 2
    sync.kill()
    sync.wait()
    deadline = time.monotonic() + 30
    while alive := [pid for pid in workers if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]:
        assert time.monotonic() < deadline, f"workers {alive} outlived their killed sync by 30 s"
        time.sleep(0.2)
