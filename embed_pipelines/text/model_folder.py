"""What a sentence-transformers model folder declares: pooling, normalization, length, prompts.

Read from the folder's own config files (as sentence-transformers does) rather than hard-coded, so that a
vector made here equals `SentenceTransformer(folder).encode(..., normalize_embeddings=True)`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from embed_pipelines.core.settings import ConfigurationError

_log = logging.getLogger(__name__)

Pooling = Literal["mean", "cls", "lasttoken", "max"]
POOLING_MODES: tuple[str, ...] = ("mean", "cls", "lasttoken", "max")

# 1_Pooling/config.json flag -> our pooling name
_POOLING_FLAGS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_lasttoken": "lasttoken",
    "pooling_mode_max_tokens": "max",
}


@dataclass(frozen=True)
class ModelFolderConfig:
    pooling: Pooling
    normalize: bool
    max_seq_length: int | None
    query_prefix: str
    document_prefix: str


def _read_json(path: Path) -> dict | list | None:
    return json.loads(path.read_text()) if path.is_file() else None


def read_model_folder(folder: Path) -> ModelFolderConfig:
    modules = _read_json(folder / "modules.json") or []
    if not modules:
        _log.info("No modules.json in %s: mean pooling, no normalization", folder)
    pooling: Pooling = "mean"
    normalize = False
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        if kind == "Pooling":
            pooling = _pooling_from(_read_json(folder / module["path"] / "config.json") or {})
        elif kind == "Normalize":
            normalize = True
        elif kind != "Transformer":
            raise ValueError(
                f"{folder}: sentence-transformers module {kind!r} is not supported "
                "(supported: Transformer, Pooling, Normalize)"
            )
    st_config = _read_json(folder / "sentence_bert_config.json") or {}
    prompts = (_read_json(folder / "config_sentence_transformers.json") or {}).get("prompts", {})
    return ModelFolderConfig(
        pooling=pooling,
        normalize=normalize,
        max_seq_length=st_config.get("max_seq_length"),
        query_prefix=prompts.get("query", ""),
        document_prefix=prompts.get("document", prompts.get("passage", "")),
    )


def _pooling_from(config: dict) -> Pooling:
    enabled = [name for flag, name in _POOLING_FLAGS.items() if config.get(flag)]
    if len(enabled) != 1:
        raise ValueError(f"Unsupported pooling configuration {config}: exactly one of {POOLING_MODES} must be enabled.")
    return enabled[0]  # type: ignore[return-value]


def check_weights(folder: Path) -> None:
    """Every safetensors file of the model opens (its header, and as many bytes as the header declares): a
    truncated or damaged download is named here, in one line, instead of failing deep inside transformers."""
    from safetensors import SafetensorError, safe_open

    for file in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(file, framework="numpy"):
                pass
        except (SafetensorError, OSError) as error:
            raise ConfigurationError(
                f"{file}: cannot be read as safetensors ({error}): the file is damaged or incomplete; copy or "
                "download the model again"
            ) from None


# The losses that train a vector's first dimensions to stand alone, as sentence-transformers tags a model card.
MATRYOSHKA_LOSSES = frozenset({"loss:MatryoshkaLoss", "loss:Matryoshka2dLoss"})


def trained_for_prefixes(folder: Path) -> bool:
    """Whether the folder's model card (README.md) says the model was trained with a Matryoshka loss: the one
    place a model folder says so (sentence-transformers lists `loss:<name>` among the card's tags)."""
    import yaml
    from huggingface_hub import ModelCard

    card = folder / "README.md"
    if not card.is_file():
        return False
    try:
        tags = ModelCard.load(card).data.tags or []
    except (yaml.YAMLError, ValueError) as error:  # a damaged front matter, bytes that are not UTF-8
        raise ConfigurationError(f"{card}: the model card cannot be read ({error})") from None
    return bool(MATRYOSHKA_LOSSES & set(tags))
