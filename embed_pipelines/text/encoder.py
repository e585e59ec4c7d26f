"""Texts -> sentence vectors: token-budget batches prepared ahead of a runtime that runs the model (torch on
any device, or OpenVINO on CPU)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tokenizers import Tokenizer
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from embed_pipelines.core.accelerator import prepared_ahead
from embed_pipelines.text.model_folder import ModelFolderConfig

WIDTH_STEP = 8  # padded batch widths, in tokens (see TextEncoder._padded)


def token_budget_batches(lengths: list[int], token_budget: int, max_batch: int) -> list[list[int]]:
    """Indices grouped so that (rows x longest row) stays within the budget; inputs sorted by length
    so that padding is small."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        if current and ((len(current) + 1) * longest > token_budget or len(current) >= max_batch):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


@dataclass(frozen=True)
class TokenBatch:
    """Padded token ids and attention mask of some inputs (numpy arrays, or a runtime's tensors); slicing gives
    fewer rows (an out-of-memory batch is split in halves)."""

    ids: Any
    mask: Any

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, rows: slice) -> TokenBatch:
        return TokenBatch(self.ids[rows], self.mask[rows])


class Runtime(Protocol):
    """Runs the pooled model on batches; `dtype` is what vectors are computed in (part of an index version)."""

    dtype: str
    dimension: int

    def prepare(self, batch: TokenBatch) -> Any:
        """Host-side work for one batch, done by a helper thread while the batch before runs."""

    def run(self, prepared: Any) -> Any:
        """One batch's vectors, possibly still on the device."""

    def gather(self, outputs: list[Any]) -> np.ndarray:
        """The batches' vectors, in batch order, as one float32 array in host memory."""


class TextEncoder:
    """Texts in, vectors out, the runtime kept busy: all texts are tokenized at once in the Rust tokenizer,
    each batch is padded into arrays by a helper thread while the runtime runs the one before."""

    def __init__(self, folder: Path, config: ModelFolderConfig, runtime: Runtime, token_budget: int, max_batch: int):
        self.runtime = runtime
        self.token_budget = token_budget
        self.max_batch = max_batch
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(folder)
        self._rust = Tokenizer.from_str(self.tokenizer.backend_tokenizer.to_str())  # our own truncation settings
        self.max_length = config.max_seq_length or self.tokenizer.model_max_length
        self._rust.enable_truncation(self.max_length)
        self._rust.no_padding()

    @property
    def dtype(self) -> str:
        return self.runtime.dtype

    @property
    def dimension(self) -> int:
        return self.runtime.dimension

    def using(self, runtime: Runtime) -> TextEncoder:
        """The same tokenizing and batching in front of another runtime."""
        other = copy.copy(self)
        other.runtime = runtime
        return other

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        ids = [encoding.ids for encoding in self._rust.encode_batch(texts)]
        batches = token_budget_batches([len(row) for row in ids], self.token_budget, self.max_batch)
        prepared = prepared_ahead(lambda rows: self.runtime.prepare(self._padded(ids, rows)), batches)
        done = self.runtime.gather([self.runtime.run(batch) for batch in prepared])
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        out[np.concatenate([np.asarray(rows) for rows in batches])] = done
        return out

    def _padded(self, ids: list[list[int]], rows: list[int]) -> TokenBatch:
        """Padded to a multiple of WIDTH_STEP: OpenVINO keeps compiled kernels per input shape, and a shape per
        token count made its memory grow with every call (0.26 MiB per call of 2048 texts, 1.2 GB over 10
        million chunks); with 8-token steps it grows 0.1 MiB per call, at the same speed."""
        width = min(-(-max(len(ids[row]) for row in rows) // WIDTH_STEP) * WIDTH_STEP, self.max_length)
        tokens = np.full((len(rows), width), self.tokenizer.pad_token_id or 0, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        left = self.tokenizer.padding_side == "left"
        for position, row in enumerate(rows):
            length = len(ids[row])
            span = slice(width - length, width) if left else slice(0, length)
            tokens[position, span] = ids[row]
            mask[position, span] = 1
        return TokenBatch(tokens, mask)
