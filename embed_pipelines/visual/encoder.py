"""colpali-engine models -> multi-vectors: page images and questions in, one (tokens, 128) array each out.

Padding is stripped before anything leaves this module: with SDPA attention on CPU, padded positions of
ColQwen2 come out as NaN, and a zero vector at a padded position would still count in MaxSim.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from colpali_engine import models
from PIL import Image

from embed_pipelines.accelerator import pick_dtype, run_halving_on_oom
from embed_pipelines.visual.checkpoint import adapter_base

# family -> (model class, processor class) in colpali_engine.models
FAMILIES = {
    "colpali": ("ColPali", "ColPaliProcessor"),
    "colqwen2": ("ColQwen2", "ColQwen2Processor"),
    "colqwen2_5": ("ColQwen2_5", "ColQwen2_5_Processor"),
    "colidefics3": ("ColIdefics3", "ColIdefics3Processor"),  # the ColSmol checkpoints
}


PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")


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
        """One (tokens, dim) float32 array per page, in batches of `batch_size` (halved on OOM)."""
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            out += run_halving_on_oom(self._forward_images, batch, lambda parts: [v for part in parts for v in part])
        return out

    def embed_query(self, question: str) -> np.ndarray:
        return self._forward(self.processor.process_queries([question]))[0]

    def _forward_images(self, images: list[Image.Image]) -> list[np.ndarray]:
        return self._forward(self.processor.process_images(images))

    @torch.inference_mode()
    def _forward(self, batch) -> list[np.ndarray]:
        batch = batch.to(self.device)
        vectors = self.model(**batch)
        mask = batch["attention_mask"].bool()
        return [v[m].float().cpu().numpy() for v, m in zip(vectors, mask, strict=True)]
