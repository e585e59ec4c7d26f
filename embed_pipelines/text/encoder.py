"""Transformer encoder -> sentence vectors: token-budget batches, named pooling and normalization steps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from embed_pipelines.accelerator import pick_dtype, prepared_ahead, run_halving_on_oom
from embed_pipelines.text.model_folder import ModelFolderConfig, Pooling


def pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor, mode: Pooling) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)
    if mode == "mean":
        return (token_embeddings * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    if mode == "cls":
        return token_embeddings[:, 0]
    if mode == "max":
        return token_embeddings.masked_fill(mask == 0, torch.finfo(token_embeddings.dtype).min).max(1).values
    # lasttoken: the last non-padding position of each row (works for left and right padding)
    last = attention_mask.shape[1] - 1 - attention_mask.flip(1).argmax(1)
    return token_embeddings[torch.arange(token_embeddings.shape[0]), last]


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
    """Padded token ids and attention mask of some inputs, in host memory (pinned for a GPU); slicing gives
    fewer rows (an out-of-memory batch is split in halves)."""

    ids: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, rows: slice) -> TokenBatch:
        return TokenBatch(self.ids[rows], self.mask[rows])


class TextEncoder:
    """Texts in, vectors out, the accelerator kept busy: all texts are tokenized at once in the Rust tokenizer,
    each batch is padded into arrays by a helper thread while the device runs the one before, copies to the
    device do not block, and vectors stay on the device until the call's last batch (one copy back)."""

    def __init__(
        self,
        folder: Path,
        config: ModelFolderConfig,
        device: torch.device,
        token_budget: int,
        max_batch: int,
    ):
        self.config = config
        self.device = device
        self.dtype = pick_dtype(device)
        self.token_budget = token_budget
        self.max_batch = max_batch
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder, dtype=self.dtype).to(device).eval()
        self.max_length = config.max_seq_length or self.tokenizer.model_max_length
        self._rust = Tokenizer.from_str(self.tokenizer.backend_tokenizer.to_str())  # our own truncation settings
        self._rust.enable_truncation(self.max_length)
        self._rust.no_padding()

    @property
    def dimension(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        ids = [encoding.ids for encoding in self._rust.encode_batch(texts)]
        batches = token_budget_batches([len(row) for row in ids], self.token_budget, self.max_batch)
        padded = prepared_ahead(lambda rows: self._padded(ids, rows), batches)
        done = [run_halving_on_oom(self._forward, batch, torch.cat) for batch in padded]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        out[np.concatenate([np.asarray(rows) for rows in batches])] = torch.cat(done).cpu().numpy()
        return out

    def _padded(self, ids: list[list[int]], rows: list[int]) -> TokenBatch:
        width = max(len(ids[row]) for row in rows)
        tokens = np.full((len(rows), width), self.tokenizer.pad_token_id or 0, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        left = self.tokenizer.padding_side == "left"
        for position, row in enumerate(rows):
            length = len(ids[row])
            span = slice(width - length, width) if left else slice(0, length)
            tokens[position, span] = ids[row]
            mask[position, span] = 1
        batch = TokenBatch(torch.from_numpy(tokens), torch.from_numpy(mask))
        if self.device.type == "cuda":  # page-locked: the copy to the device runs beside the compute
            batch = TokenBatch(batch.ids.pin_memory(), batch.mask.pin_memory())
        return batch

    @torch.inference_mode()
    def _forward(self, batch: TokenBatch) -> torch.Tensor:
        ids = batch.ids.to(self.device, non_blocking=True)
        mask = batch.mask.to(self.device, non_blocking=True)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        vectors = pool(hidden, mask, self.config.pooling)
        if self.config.normalize:
            vectors = F.normalize(vectors.float(), p=2, dim=1)
        return vectors.float()
