"""Tiny random-weight ColQwen2 and ColPali checkpoints with real processors, built locally: no hub access.

These stand in for the hub checkpoints (vidore/colqwen2-*, vidore/colpali-*), which cannot be downloaded here.
Each builder writes a folder that loads back by path exactly like a real checkpoint, with
``ColQwen2.from_pretrained(folder)`` / ``ColQwen2Processor.from_pretrained(folder)`` (resp. ColPali,
ColPaliProcessor). The weights are random, so scores are meaningless; only shapes, masks and plumbing are real.

Sizes (both models emit 128-dimensional, L2-normalised token vectors, like the real ones):

- ColQwen2: Qwen2-VL text model with hidden size 64, 2 layers, 4 heads (2 KV heads), vocab 256; vision tower with
  embed dim 32, depth 2, patch 14, spatial merge 2. The image processor keeps pages between 56*56 and 28*28*16
  pixels, so a page becomes at most 16 visual tokens (4 for a tiny image).
- ColPali: PaliGemma (Gemma text model with hidden size 64, 2 layers, 4 heads, 1 KV head, head dim 16) with a SigLIP
  vision tower of hidden size 32, 2 layers, image size 28, patch 14, so every page is 4 image tokens. The vocabulary
  covers the 1152 ``<locNNNN>``/``<segNNN>`` tokens that ``PaliGemmaProcessor`` always adds to its tokenizer.

The safetensors files are about 0.7 MB (ColQwen2, 179k parameters) and 0.8 MB (ColPali, 196k stored parameters;
its tokenizer.json adds 0.2 MB for the <loc>/<seg> tokens); loading and embedding a few pages takes well under a
second on CPU. The tokenizers are lowercasing whitespace word-level vocabularies (newlines are dropped, unknown words
map to the unk token), with the special tokens and ids laid out like the real ones where it matters.

Padding: ColQwen2 pads on the left, ColPali on the right. Both models multiply their output by ``attention_mask``, so
padded positions come out as exact zero vectors; under SDPA on CPU (float32) no NaN was seen there. Query
augmentation tokens (``<|endoftext|>`` resp. ``<pad>`` repeated 10 times) are real text, so their mask is 1.
"""

from __future__ import annotations

from pathlib import Path

import torch
from colpali_engine.models import ColPali, ColPaliProcessor, ColQwen2, ColQwen2Processor
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import (
    PaliGemmaConfig,
    PreTrainedTokenizerFast,
    Qwen2VLConfig,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
    SiglipImageProcessor,
)

WORDS = (
    "the a of and to in is it that for on with as are be this by from or at an not have which but can "
    "describe image user query question answer where what when who how table figure page chart text title "
    ". , : ; ! ? - ' ( )"
).split()
QWEN_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
PALI_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>"]


def _tokenizer(special: list[str], unk: str, **tokens: str) -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate(special + [w for w in WORDS if w not in special])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token=unk, model_max_length=512, **tokens)
    tokenizer.add_special_tokens({"additional_special_tokens": special})
    return tokenizer


# Qwen2-VL-2B's sizes, for throughput figures (benchmarks/encoders.py): 2.2 B parameters, up to 768 visual
# tokens a page (ColQwen2's max_pixels).
QWEN2_VL_2B = {
    "text": dict(
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        vocab_size=151_936,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
    ),
    "vision": dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, mlp_ratio=4),
    "max_pixels": 768 * 28 * 28,
}


def build_tiny_colqwen2(folder: Path, seed: int = 0, sizes: dict | None = None) -> Path:
    """`sizes` (like QWEN2_VL_2B) replaces the tiny sizes."""
    sizes = sizes or {}
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(QWEN_SPECIAL, "<|endoftext|>", pad_token="<|endoftext|>", eos_token="<|im_end|>")
    max_pixels = sizes.get("max_pixels", 28 * 28 * 16)
    processor = ColQwen2Processor(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=max_pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
    )
    processor.save_pretrained(folder)
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=256,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            bos_token_id=ids("<|endoftext|>"),
            eos_token_id=ids("<|im_end|>"),
            rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]},
        )
        | sizes.get("text", {}),
        vision_config=dict(
            depth=2,
            embed_dim=32,
            hidden_size=64,
            num_heads=4,
            mlp_ratio=2,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            in_channels=3,
        )
        | sizes.get("vision", {}),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    assert len(tokenizer) <= config.text_config.vocab_size
    torch.manual_seed(seed)
    ColQwen2(config).eval().save_pretrained(folder)
    return folder


def build_tiny_colpali(folder: Path, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(PALI_SPECIAL, "<unk>", pad_token="<pad>", bos_token="<bos>", eos_token="<eos>")
    image_processor = SiglipImageProcessor(size={"height": 28, "width": 28})
    image_processor.image_seq_length = (28 // 14) ** 2
    processor = ColPaliProcessor(image_processor=image_processor, tokenizer=tokenizer)  # adds <loc>/<seg> tokens
    processor.save_pretrained(folder)
    config = PaliGemmaConfig(
        text_config=dict(
            model_type="gemma",
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=16,
        ),
        vision_config=dict(
            model_type="siglip_vision_model",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=28,
            patch_size=14,
            projection_dim=64,
            vision_use_head=False,
        ),
        image_token_index=processor.image_token_id,
        projection_dim=64,
        hidden_size=64,
    )
    torch.manual_seed(seed)
    ColPali(config).eval().save_pretrained(folder)
    return folder
