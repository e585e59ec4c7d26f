"""A dual-encoder image model (CLIP and SigLIP families, through transformers) as a plain object: pictures and
questions into one space. Its settings and identity here, tensor work in visual/picture_encoder.py."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from embed_pipelines.core import settings
from embed_pipelines.core.fingerprints import Versions, cached_facts, check_loaded, index_version, model_fingerprint
from embed_pipelines.core.settings import ConfigurationError

if TYPE_CHECKING:
    from embed_pipelines.visual.picture_encoder import PictureEncoder

# Pictures per forward pass: a ViT-B/32 picture is 50 tokens, so GPUs take many.
DEFAULT_PICTURE_BATCHES = {"cpu": 16, "mps": 64, "cuda": 256}
DUAL_ENCODERS = ("clip", "siglip", "siglip2")  # config.json `model_type`s with image and text towers


@cache
def _load_encoder(folder: Path, device: str, batch_size: int) -> PictureEncoder:
    """One model per process and configuration, loaded on first use; torch is imported only here."""
    from embed_pipelines.core.accelerator import pick_device
    from embed_pipelines.visual.picture_encoder import PictureEncoder

    return PictureEncoder(folder, pick_device(device), batch_size)


class PictureModel(Protocol):
    """What the pipeline and search ask of a picture model."""

    @property
    def dimension(self) -> int: ...
    def versions(self) -> Versions: ...
    def query_settings(self) -> dict: ...
    def verify_serves(self, version: str) -> None: ...
    def normalizes(self) -> bool: ...
    def embed_pictures(self, images: list[Image.Image]) -> np.ndarray: ...
    def embed_query(self, question: str) -> np.ndarray: ...
    def warm(self) -> None: ...


def _embedding_dimension(folder: Path) -> int:
    """The shared space's dimension from config.json: CLIP projects both towers to `projection_dim`; SigLIP
    has no projection, its towers share their hidden size."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"{folder}: no readable config.json for an image model ({error})") from None
    model_type = config.get("model_type")
    if model_type not in DUAL_ENCODERS:
        raise ConfigurationError(
            f"{folder}: a {model_type!r} model; the image family embeds with a dual encoder: {', '.join(DUAL_ENCODERS)}"
        )
    if model_type == "clip":
        return int(config.get("projection_dim", 512))
    return int(config.get("text_config", {}).get("hidden_size", 768))


class PictureEmbeddingModel(BaseModel):
    """Pictures and questions to unit vectors in one space, cosine-compared."""

    model_config = ConfigDict(frozen=True, validate_default=True)

    model: str = Field(description="Local folder of a CLIP or SigLIP checkpoint (transformers format).")
    device: Literal["auto", "cuda", "mps", "cpu"] = Field(default="auto")
    picture_batch_size: int | None = Field(
        default=None, description="Pictures per forward pass (halved on out-of-memory); None picks one per device."
    )

    @property
    def folder(self) -> Path:
        return Path(self.model).expanduser().resolve()

    def encoder(self) -> PictureEncoder:
        from embed_pipelines.core.accelerator import pick_device

        device = pick_device(self.device)
        batch = self.picture_batch_size or DEFAULT_PICTURE_BATCHES[device.type]
        encoder = _load_encoder(self.folder, str(device), batch)
        check_loaded(*self.facts(), {"dtype": encoder.dtype, "dimension": encoder.dimension})
        return encoder

    def facts(self) -> tuple[dict, Path]:
        """The dtype class vectors are computed in on this machine and their dimension, read from the config
        without loading torch or the model."""

        def measure() -> dict:
            from embed_pipelines.core.accelerator import dtype_class

            return {"dtype": dtype_class(self.device), "dimension": _embedding_dimension(self.folder)}

        key = {"files": self._files(), "folder": str(self.folder), **self.model_dump(), "facts": 1}
        return cached_facts(settings.fingerprint_cache(), key, measure)

    @property
    def dimension(self) -> int:
        return self.facts()[0]["dimension"]

    def normalizes(self) -> bool:
        return True

    def versions(self) -> Versions:
        return Versions(self.index_version())

    def warm(self) -> None:
        self.encoder()

    def embed_pictures(self, images: list[Image.Image]) -> np.ndarray:
        return self.encoder().embed_pictures(images)

    def embed_query(self, question: str) -> np.ndarray:
        return self.encoder().embed_texts([question])[0]

    def verify_serves(self, version: str) -> None:
        """Nothing to ask: the registry's settings name the files that made the version."""

    def query_settings(self) -> dict:
        return {"model": str(self.folder)}

    def _files(self) -> dict[str, str]:
        return model_fingerprint(self.folder, settings.fingerprint_cache())

    def index_version(self) -> str:
        """The picture index version: the model's files by content (weights, processor, tokenizer) and the
        dtype class."""
        return index_version({"picture_model_files": self._files(), "dtype": self.facts()[0]["dtype"]})
