"""The late-interaction vision model (ColPali family, colpali-engine) as a plain object: its settings and
identity here, tensor work in visual/encoder.py. `PageModel` is what the pipeline and search ask of it."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from embed_pipelines.core import settings
from embed_pipelines.core.fingerprints import (
    Versions,
    cached_facts,
    check_loaded,
    index_version,
    model_fingerprint,
)
from embed_pipelines.visual.checkpoint import adapter_base, projection_dimension

if TYPE_CHECKING:
    from embed_pipelines.visual.encoder import VisualEncoder

# Pages per forward pass. A ColQwen2 page is up to 768 visual tokens; CPUs gain nothing from large batches.
DEFAULT_PAGE_BATCHES = {"cpu": 4, "mps": 8, "cuda": 32}


@cache
def _load_encoder(family: str, folder: Path, base_model: str, device: str, batch_size: int) -> VisualEncoder:
    """One model per process and configuration, loaded on first use: runs over many shards reuse it. torch and
    colpali-engine are imported only here, so a sync with no page to embed never loads them."""
    from embed_pipelines.core.accelerator import pick_device
    from embed_pipelines.visual.encoder import VisualEncoder

    return VisualEncoder(family, folder, base_model, pick_device(device), batch_size)


class PageModel(Protocol):
    """What the pipeline and search ask of a page model."""

    @property
    def dimension(self) -> int: ...
    def versions(self) -> Versions: ...
    def query_settings(self) -> dict: ...
    def verify_serves(self, version: str) -> None: ...
    def embed_pages(self, images: list[Image.Image]) -> list[np.ndarray]: ...
    def warm(self) -> None:
        """Load what the first embed would load."""

    def embed_query(self, question: str) -> np.ndarray: ...


class VisualEmbeddingModel(BaseModel):
    """A ColPali-family model: page images and questions to multi-vectors (one vector per token)."""

    model_config = ConfigDict(frozen=True, validate_default=True)  # one type per value, however it was made

    model: str = Field(description="Local folder of a colpali-engine checkpoint (full model or LoRA adapter).")
    family: Literal["colpali", "colqwen2", "colqwen2_5", "colidefics3"] = Field(
        default="colqwen2", description="Model family; colidefics3 serves the ColSmol checkpoints."
    )
    base_model: str = Field(
        default="", description="Local base model folder for an adapter checkpoint; empty: the one it names."
    )
    device: Literal["auto", "cuda", "mps", "cpu"] = Field(default="auto")
    page_batch_size: int | None = Field(
        default=None, description="Pages per forward pass (halved on out-of-memory); None picks one per device."
    )

    @property
    def folder(self) -> Path:
        return Path(self.model).expanduser().resolve()

    def encoder(self) -> VisualEncoder:
        from embed_pipelines.core.accelerator import pick_device

        device = pick_device(self.device)
        batch = self.page_batch_size or DEFAULT_PAGE_BATCHES[device.type]
        encoder = _load_encoder(self.family, self.folder, self.base_model, str(device), batch)
        loaded = {"dtype": str(encoder.model.dtype).removeprefix("torch."), "dimension": encoder.model.dim}
        check_loaded(*self.facts(), loaded)
        return encoder

    def facts(self) -> tuple[dict, Path]:
        """The dtype class vectors are computed in on this machine and their dimension, cached like the text
        model's (read from config and weight headers, without loading torch or the model)."""

        def measure() -> dict:
            from embed_pipelines.core.accelerator import dtype_class

            base = adapter_base(self.folder, self.base_model)
            folders = [self.folder] + ([base] if base is not None else [])
            return {"dtype": dtype_class(self.device), "dimension": projection_dimension(folders)}

        key = {"files": self._files(), "folder": str(self.folder), **self.model_dump(), "facts": 2}
        return cached_facts(settings.fingerprint_cache(), key, measure)

    @property
    def dimension(self) -> int:
        return self.facts()[0]["dimension"]

    def versions(self) -> Versions:
        return Versions(self.index_version())

    def warm(self) -> None:
        self.encoder()  # loaded once per process and configuration

    def embed_pages(self, images: list[Image.Image]) -> list[np.ndarray]:
        return self.encoder().embed_pages(images)

    def verify_serves(self, version: str) -> None:
        """Nothing to ask: the registry's settings name the files that made the version."""

    def embed_query(self, question: str) -> np.ndarray:
        return self.encoder().embed_query(question)

    def query_settings(self) -> dict:
        """What the registry keeps so that search embeds questions with the model that made a version."""
        base = str(Path(self.base_model).expanduser().resolve()) if self.base_model else ""
        return {"model": str(self.folder), "family": self.family, "base_model": base}

    def _files(self) -> dict[str, str]:
        """The model's (and an adapter's base model's) files, by content."""
        cache = settings.fingerprint_cache()
        files = model_fingerprint(self.folder, cache)
        base = adapter_base(self.folder, self.base_model)
        if base is not None:
            files |= {f"base/{name}": digest for name, digest in model_fingerprint(base, cache).items()}
        return files

    def index_version(self) -> str:
        """The page index version: the model's files by content, the family and the dtype class."""
        return index_version(
            {"visual_model_files": self._files(), "family": self.family, "dtype": self.facts()[0]["dtype"]}
        )
