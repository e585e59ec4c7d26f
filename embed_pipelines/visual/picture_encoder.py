"""CLIP/SigLIP through transformers: pictures and texts in, unit float32 vectors out.

The image processor prepares the next batch in a helper thread while the device runs this one; vectors are
normalized on the device and copied to the host once per call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

from embed_pipelines.core.accelerator import pick_dtype, prepared_ahead, run_halving_on_oom


class PictureEncoder:
    def __init__(self, folder: Path, device: torch.device, batch_size: int):
        self.device, self.batch_size = device, batch_size
        self.model = AutoModel.from_pretrained(folder, dtype=pick_dtype(device), device_map=str(device)).eval()
        self.processor = AutoImageProcessor.from_pretrained(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        # SigLIP was trained on texts padded to its full length; CLIP on texts padded to the batch's longest
        self.text_padding = "max_length" if "siglip" in self.model.config.model_type else "longest"
        self.max_text_tokens = self.model.config.text_config.max_position_embeddings
        self.dtype = str(self.model.dtype).removeprefix("torch.")
        config = self.model.config
        self.dimension = int(getattr(config, "projection_dim", 0) or config.text_config.hidden_size)

    def embed_pictures(self, images: list[Image.Image]) -> np.ndarray:
        """(pictures, dim) unit vectors, in batches of `batch_size` (halved on out-of-memory)."""
        batches = [images[start : start + self.batch_size] for start in range(0, len(images), self.batch_size)]
        prepared = prepared_ahead(self._pixels, batches)
        parts = [run_halving_on_oom(self._forward_pixels, pixels, torch.cat) for pixels in prepared]
        return torch.cat(parts).float().cpu().numpy() if parts else np.zeros((0, self.dimension), np.float32)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(
            texts, padding=self.text_padding, truncation=True, max_length=self.max_text_tokens, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            features = self.model.get_text_features(**tokens).pooler_output
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()

    def _pixels(self, images: list[Image.Image]) -> torch.Tensor:
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        return pixels.pin_memory() if self.device.type == "cuda" else pixels

    @torch.inference_mode()
    def _forward_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = pixels.to(self.device, dtype=self.model.dtype, non_blocking=True)
        return torch.nn.functional.normalize(self.model.get_image_features(pixel_values=pixels).pooler_output, dim=-1)
