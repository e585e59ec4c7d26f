"""What the pipeline, the plan, the gate and search ask of a text model, whether it runs in this process
(local_model.py) or behind an OpenAI-compatible server (served_model.py)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.text.chunking import DocumentChunker


class InputsRefused(Exception):
    """The model refused some inputs for good (a server's 400: too long, empty ...): index -> its reason.
    `vectors` holds the others' vectors (NaN rows for the refused)."""

    def __init__(self, reasons: dict[int, str], vectors: np.ndarray):
        super().__init__(f"{len(reasons)} inputs refused")
        self.reasons, self.vectors = reasons, vectors


class TextModel(Protocol):
    @property
    def dimension(self) -> int: ...
    def versions(self) -> Versions: ...
    def index_version(self) -> str: ...
    def chunker_version(self) -> str: ...
    def chunker(self) -> DocumentChunker: ...
    def chunk_token_limit(self) -> int: ...
    def query_settings(self) -> dict:
        """What the registry keeps so that search embeds questions the way the version's documents were."""

    def verify_identity(self) -> None:
        """Once a sync: raises if the model is no longer the configured version's."""

    def trained_for_prefixes(self) -> bool:
        """Whether its vectors' first dimensions alone are meant to be used (Matryoshka training)."""

    def verify_files(self) -> None:
        """Raises, naming the file, if a file of the model cannot be read; asks no server (a plan calls it)."""

    def verify_serves(self, version: str) -> None:
        """Before search embeds a question for `version`: raises if the model no longer computes its vectors."""

    def warm(self) -> None:
        """Load what the first embed would load (live mode does it at start, so the first change waits for
        nothing)."""

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...
    def embed_query(self, question: str) -> np.ndarray: ...
    def estimate(self, texts: list[str]) -> dict[str, float]:
        """Tokens, requests, seconds and money to embed `texts`, where the model can say."""

    def within_budget(self, spent: int, texts: list[str]) -> int:
        """The tokens a sync has sent once `texts` are sent too; raises past the model's budget."""

    def usage(self) -> dict[str, float]:
        """What this process has asked of a server so far."""
