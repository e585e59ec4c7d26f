"""Transformer encoder -> sentence vectors: token-budget batches, named pooling and normalization steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from embed_pipelines.accelerator import pick_dtype, run_halving_on_oom
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


class TextEncoder:
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

    @property
    def dimension(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        ids, masks = encoded["input_ids"], encoded["attention_mask"]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for batch in token_budget_batches([len(i) for i in ids], self.token_budget, self.max_batch):
            features = [{"input_ids": ids[i], "attention_mask": masks[i]} for i in batch]
            out[batch] = run_halving_on_oom(self._forward, features, np.concatenate)
        return out

    @torch.inference_mode()
    def _forward(self, features: list[dict]) -> np.ndarray:
        batch = self.tokenizer.pad(features, return_tensors="pt").to(self.device)
        hidden = self.model(**batch).last_hidden_state
        vectors = pool(hidden, batch["attention_mask"], self.config.pooling)
        if self.config.normalize:
            vectors = F.normalize(vectors.float(), p=2, dim=1)
        return vectors.float().cpu().numpy()
