"""Tiny random-weight CLIP and SigLIP checkpoints built from configs, loadable by path like real ones: no hub
access. The bundled all-MiniLM-L6-v2 tokenizer stands in for their own (which cannot be downloaded here), the
text tower's vocabulary sized to it. Vision towers see 32x32 pictures in 8x8 patches; both embed into 32
dimensions. Weights are random (seeded), so scores mean nothing, but the same picture always gives the same
vector and different pictures different ones: enough to find a picture by itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    SiglipConfig,
    SiglipImageProcessor,
    SiglipModel,
)

from embed_pipelines.text.local_model import bundled_model_folder

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
VOCABULARY = 30522  # the MiniLM tokenizer's
TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
TINY_CLIP = dict(text=TOWER, vision=dict(**TOWER, image_size=32, patch_size=8), projection_dim=32)
# Real sizes, for throughput (benchmarks/encoders.py)
CLIP_VIT_B32 = dict(
    text=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
    vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                image_size=224, patch_size=32),
    projection_dim=512,
)  # fmt: skip
CLIP_VIT_L14 = dict(
    text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
    vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                image_size=224, patch_size=14),
    projection_dim=768,
)  # fmt: skip


def _tokenizer_into(folder: Path) -> None:
    for name in TOKENIZER_FILES:
        if (bundled_model_folder() / name).is_file():
            shutil.copy(bundled_model_folder() / name, folder / name)


def build_tiny_clip(folder: Path, sizes: dict = TINY_CLIP) -> Path:
    """The tiny CLIP of the tests, or (`sizes`: CLIP_VIT_B32 ...) one of a real CLIP's size."""
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(**sizes["text"], vocab_size=VOCABULARY, max_position_embeddings=64, pad_token_id=0,
                         bos_token_id=101, eos_token_id=102),
        vision_config=sizes["vision"],
        projection_dim=sizes["projection_dim"],
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    CLIPModel(config).save_pretrained(folder)
    side = sizes["vision"]["image_size"]
    CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side}).save_pretrained(folder)
    _tokenizer_into(folder)
    return folder


def build_tiny_siglip(folder: Path) -> Path:
    torch.manual_seed(0)
    config = SiglipConfig(
        text_config=dict(**TOWER, vocab_size=VOCABULARY, max_position_embeddings=16),
        vision_config=dict(**TOWER, image_size=32, patch_size=8),
    )
    folder.mkdir(parents=True, exist_ok=True)
    SiglipModel(config).save_pretrained(folder)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    _tokenizer_into(folder)
    return folder
