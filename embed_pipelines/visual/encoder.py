"""colpali-engine models -> multi-vectors: page images and questions in, one (tokens, 128) array each out.

Padding is stripped before anything leaves this module: with SDPA attention on CPU, padded positions of
ColQwen2 come out as NaN, and a zero vector at a padded position would still count in MaxSim.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from colpali_engine import models
from PIL import Image

from embed_pipelines.core.accelerator import pick_dtype, prepared_ahead, run_halving_on_oom
from embed_pipelines.visual.checkpoint import adapter_base

# family -> (model class, processor class) in colpali_engine.models
FAMILIES = {
    "colpali": ("ColPali", "ColPaliProcessor"),
    "colqwen2": ("ColQwen2", "ColQwen2Processor"),
    "colqwen2_5": ("ColQwen2_5", "ColQwen2_5_Processor"),
    "colidefics3": ("ColIdefics3", "ColIdefics3Processor"),  # the ColSmol checkpoints
}


PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")


def _joined(parts: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    return [vectors for part in parts for vectors in part]


@dataclass(frozen=True)
class PageBatch:
    """Page images and what the processor made of them; a half of a batch too big for the device (see
    run_halving_on_oom) is processed again."""

    images: list[Image.Image]
    processed: Any = None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, rows: slice) -> PageBatch:
        return PageBatch(self.images[rows])


class VisualEncoder:
    def __init__(self, family: str, folder: Path, base_model: str, device: torch.device, batch_size: int):
        model_class, processor_class = (getattr(models, name) for name in FAMILIES[family])
        self.device, self.batch_size = device, batch_size
        dtype = pick_dtype(device)
        base = adapter_base(folder, base_model)
        # device_map places weights as they load; unused heads a checkpoint leaves out stay unmaterialized
        self.model = model_class.from_pretrained(base or folder, dtype=dtype, device_map=str(device)).eval()
        if base is not None:
            self.model.load_adapter(str(folder))
        has_processor = any((folder / name).is_file() for name in PROCESSOR_FILES)
        self.processor = processor_class.from_pretrained(folder if has_processor or base is None else base)

    def embed_pages(self, images: list[Image.Image]) -> list[np.ndarray]:
        """One (tokens, dim) float32 array per page, in batches of `batch_size` (halved on OOM). The processor
        prepares each batch (resize, normalize, patches) in a helper thread while the device runs the one
        before, and vectors stay on the device until the last batch is done."""
        batches = [images[start : start + self.batch_size] for start in range(0, len(images), self.batch_size)]
        processed = prepared_ahead(lambda batch: PageBatch(batch, self._processed(batch)), batches)
        pages = [run_halving_on_oom(self._forward_pages, batch, _joined) for batch in processed]
        return [vectors.cpu().numpy() for part in pages for vectors in part]

    def embed_query(self, question: str) -> np.ndarray:
        return self._forward(self.processor.process_queries([question]))[0].cpu().numpy()

    def _forward_pages(self, pages: PageBatch) -> list[torch.Tensor]:
        return self._forward(pages.processed if pages.processed is not None else self._processed(pages.images))

    def _processed(self, images: list[Image.Image]):
        batch = self.processor.process_images(images)
        if self.device.type == "cuda":  # page-locked: the copy to the device runs beside the compute
            batch = batch.__class__({key: value.pin_memory() for key, value in batch.items()})
        return batch

    @torch.inference_mode()
    def _forward(self, batch) -> list[torch.Tensor]:
        """Each page's token vectors without padding, still on the device."""
        batch = batch.to(self.device, non_blocking=True)
        vectors = self.model(**batch)
        mask = batch["attention_mask"].bool()
        return [v[m].float() for v, m in zip(vectors, mask, strict=True)]
