"""The text model's forward pass in torch: pooled, normalized sentence vectors on any torch device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModel

from embed_pipelines.core.accelerator import dtype_name, pick_dtype, run_halving_on_oom
from embed_pipelines.text.encoder import TokenBatch
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


class PooledEncoder(torch.nn.Module):
    """Token ids and mask in, the folder's sentence vectors out: one module, so that another runtime can be
    converted from exactly this computation."""

    def __init__(self, transformer: torch.nn.Module, config: ModelFolderConfig):
        super().__init__()
        self.transformer = transformer
        self.pooling = config.pooling
        self.normalize = config.normalize

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        vectors = pool(hidden, attention_mask, self.pooling).float()
        return F.normalize(vectors, p=2, dim=1) if self.normalize else vectors


def load_pooled_encoder(folder: Path, config: ModelFolderConfig, device: torch.device) -> PooledEncoder:
    transformer = AutoModel.from_pretrained(folder, dtype=pick_dtype(device))
    return PooledEncoder(transformer, config).to(device).eval()


class TorchRuntime:
    """Batches copied to the device without blocking (from page-locked memory on CUDA), vectors kept there
    until the call's last batch, and a batch too big for the device's memory split in halves."""

    def __init__(self, folder: Path, config: ModelFolderConfig, device: torch.device):
        self.device = device
        self.model = load_pooled_encoder(folder, config, device)
        self.dtype = dtype_name(device)
        self.dimension = int(self.model.transformer.config.hidden_size)

    def prepare(self, batch: TokenBatch) -> TokenBatch:
        tensors = TokenBatch(torch.from_numpy(batch.ids), torch.from_numpy(batch.mask))
        if self.device.type == "cuda":  # page-locked: the copy to the device runs beside the compute
            tensors = TokenBatch(tensors.ids.pin_memory(), tensors.mask.pin_memory())
        return tensors

    def run(self, batch: TokenBatch) -> torch.Tensor:
        return run_halving_on_oom(self._forward, batch, torch.cat)

    def gather(self, outputs: list[torch.Tensor]) -> np.ndarray:
        return torch.cat(outputs).cpu().numpy()

    @torch.inference_mode()
    def _forward(self, batch: TokenBatch) -> torch.Tensor:
        ids = batch.ids.to(self.device, non_blocking=True)
        mask = batch.mask.to(self.device, non_blocking=True)
        return self.model(ids, mask)
