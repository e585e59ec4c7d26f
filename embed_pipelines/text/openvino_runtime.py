"""The text model's forward pass in OpenVINO on CPU: about twice torch's speed on the same fp32 arithmetic.

The graph is converted once from the torch module the torch runtime runs (`PooledEncoder`), checked against
it on fixed texts, and kept on disk under a hash of everything it depends on, so later processes load it in a
fraction of a second. Inference precision is pinned to f32: OpenVINO would otherwise pick bf16 on CPUs that
have it, and the vectors would leave their index version's dtype.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import numpy as np
import openvino as ov  # without its telemetry: see __init__.py

from embed_pipelines.core.fingerprints import index_version, min_cosine
from embed_pipelines.text.encoder import TokenBatch
from embed_pipelines.text.model_folder import ModelFolderConfig

_log = logging.getLogger(__name__)

# The converted graph must give the torch module's vectors: fp32 rounding differences stay below 1e-6.
MIN_CONVERSION_COSINE = 0.99999
_CHECK_TEXTS = [
    "Bees keep the brood nest near 35 degrees.",
    "A queen excluder keeps the queen out of the honey supers, " * 12,
    "Ünïcödé 🐝",
]
_SETTINGS = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}


class ConversionError(RuntimeError):
    """The model could not be converted, or the converted graph computes other vectors than torch."""


class OpenVinoRuntime:
    dtype = "float32"

    def __init__(self, compiled: ov.CompiledModel):
        self.compiled = compiled
        self.dimension = compiled.output(0).get_partial_shape()[1].get_length()

    @classmethod
    def load(cls, folder: Path, config: ModelFolderConfig, files: dict[str, str], cache: Path) -> OpenVinoRuntime:
        """The model converted for this folder (converting and checking it on first use); ConversionError when
        OpenVINO cannot reproduce it, remembered so that later loads do not try again."""
        key = {"files": files, "pooling": config.pooling, "normalize": config.normalize}
        key |= {"openvino": ov.__version__, "transformers": version("transformers")}
        place = cache / index_version(key)
        refused = place / "refused.json"
        if refused.is_file():
            raise ConversionError(json.loads(refused.read_text())["reason"])
        if not (place / "model.xml").is_file():
            try:
                _convert(folder, config, place)
            except OSError:
                raise  # the disk, not the model: try again next time
            except Exception as error:  # the converter refuses what it cannot trace, each in its own way
                reason = str(error) if isinstance(error, ConversionError) else f"{type(error).__name__}: {error}"
                place.mkdir(parents=True, exist_ok=True)
                refused.write_text(json.dumps({"reason": reason}))
                raise ConversionError(reason) from error
        return cls(ov.Core().compile_model(place / "model.xml", "CPU", _SETTINGS))

    def prepare(self, batch: TokenBatch) -> TokenBatch:
        return batch

    def run(self, batch: TokenBatch) -> np.ndarray:
        # A request per batch: the compiled model is shared by threads (search), a request is not.
        return self.compiled.create_infer_request().infer([batch.ids, batch.mask])[0]

    def gather(self, outputs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(outputs)


def _convert(folder: Path, config: ModelFolderConfig, place: Path) -> None:
    """Converts the torch module, checks its vectors and moves the files into place in one rename (another
    process converting at the same time finds either nothing or the whole model)."""
    import torch

    from embed_pipelines.text.encoder import TextEncoder
    from embed_pipelines.text.torch_runtime import TorchRuntime

    reference = TextEncoder(folder, config, TorchRuntime(folder, config, torch.device("cpu")), 2048, 256)
    # A padded row in the example: a trace of unpadded rows only could drop the attention mask as a no-op.
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    with torch.inference_mode(), _tracing_quietly():
        graph = ov.convert_model(reference.runtime.model, example_input=(torch.ones_like(mask), mask))
    place.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=place.parent, prefix=".converting-"))
    try:
        ov.save_model(graph, staging / "model.xml", compress_to_fp16=False)  # the default halves the weights
        converted = OpenVinoRuntime(ov.Core().compile_model(staging / "model.xml", "CPU", _SETTINGS))
        cosine = min_cosine(reference.encode(_CHECK_TEXTS), reference.using(converted).encode(_CHECK_TEXTS))
        if cosine < MIN_CONVERSION_COSINE:
            raise ConversionError(f"the converted model's vectors differ from torch's (cosine {cosine:.6f})")
        try:
            os.replace(staging, place)
        except OSError:
            if not (place / "model.xml").is_file():  # else another process put the same model there first
                raise
        _log.info("Converted %s for OpenVINO (cosine to torch %.7f)", folder.name, cosine)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def _tracing_quietly() -> Iterator[None]:
    """Tracing touches every attribute of the model: transformers' deprecation notices and the tracer's notes
    on shape checks (constants for an encoder) are noise here."""
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers_logging.set_verbosity(verbosity)
