"""Where conversion and chunking workers come from: multiprocessing's fork server, a process that runs no
threads. This process runs the steps on threads (and live mode its listeners on more), and a worker copied
from it at a random instant (a plain fork) inherits every lock another thread held then, held for good: the
worker waits on it, and so does the sync, and the process's exit. The server starts once per process with
docling imported (about 5 s, in its own process); each worker after that is a copy of it (milliseconds)."""

from __future__ import annotations

import logging
import multiprocessing
import warnings
from dataclasses import dataclass

# Imported once in the server rather than in each worker (or in this process, which may never convert).
PRELOADED = [
    "embed_pipelines.text.extraction",
    "embed_pipelines.text.chunking",
    "docling_core.transforms.chunker.hybrid_chunker",
    "docling_core.transforms.chunker.tokenizer.huggingface",
]


def worker_processes() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOADED)  # read when the server starts; no effect once it runs
    return context


@dataclass(frozen=True)
class LibraryNoise:
    """What this process lets libraries say (docling's log level, the warning filters: the CLI silences both
    unless --verbose), for a worker to let them say the same: a worker starts from the server, not from this
    process, and its reasons come back as results, so a library saying them too would say them twice."""

    docling_level: int
    warning_filters: tuple

    @classmethod
    def here(cls) -> LibraryNoise:
        return cls(logging.getLogger("docling").level, tuple(warnings.filters))

    def keep(self) -> None:
        """In the worker: the process's choices, as they were when it started the worker."""
        logging.getLogger("docling").setLevel(self.docling_level)
        warnings.filters[:] = list(self.warning_filters)
