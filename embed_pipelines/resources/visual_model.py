"""The late-interaction vision model (ColPali family, colpali-engine) as a Dagster resource: configuration
here, tensor work in visual/encoder.py."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import dagster as dg
import numpy as np
from PIL import Image
from pydantic import Field

from embed_pipelines import settings
from embed_pipelines.settings import ConfigurationError
from embed_pipelines.versions.identity import cached_facts, index_version, model_fingerprint
from embed_pipelines.visual.checkpoint import adapter_base

if TYPE_CHECKING:
    from embed_pipelines.visual.encoder import VisualEncoder

# Pages per forward pass. A ColQwen2 page is up to 768 visual tokens; CPUs gain nothing from large batches.
DEFAULT_PAGE_BATCHES = {"cpu": 4, "mps": 8, "cuda": 32}


@cache
def _load_encoder(family: str, folder: Path, base_model: str, device: str, batch_size: int) -> VisualEncoder:
    """One model per process and configuration, loaded on first use: runs over many shards reuse it. torch and
    colpali-engine are imported only here, so a sync with no page to embed never loads them."""
    from embed_pipelines.accelerator import pick_device
    from embed_pipelines.visual.encoder import VisualEncoder

    return VisualEncoder(family, folder, base_model, pick_device(device), batch_size)


class VisualEmbeddingModel(dg.ConfigurableResource):
    """A ColPali-family model: page images and questions to multi-vectors (one 128-dim vector per token)."""

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
        from embed_pipelines.accelerator import pick_device

        device = pick_device(self.device)
        batch = self.page_batch_size or DEFAULT_PAGE_BATCHES[device.type]
        encoder = _load_encoder(self.family, self.folder, self.base_model, str(device), batch)
        facts, cache_file = self.facts()
        loaded = str(encoder.model.dtype).removeprefix("torch.")
        if facts["dtype"] != loaded:  # the machine changed under the cache
            cache_file.unlink(missing_ok=True)
            raise ConfigurationError(
                f"the model computes in {loaded} here, not the {facts['dtype']} its index version was made "
                "with: sync again to use the index version of this machine"
            )
        return encoder

    def facts(self) -> tuple[dict, Path]:
        """The dtype class vectors are computed in on this machine, cached like the text model's."""

        def measure() -> dict:
            from embed_pipelines.accelerator import dtype_class

            return {"dtype": dtype_class(self.device)}

        key = {"files": self._files(), "folder": str(self.folder), **self.model_dump()}
        return cached_facts(settings.fingerprint_cache(), key, measure)

    def embed_pages(self, images: list[Image.Image]) -> list[np.ndarray]:
        return self.encoder().embed_pages(images)

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
