"""A Whisper-family speech model (through transformers, from a local folder) as a plain object: its settings and
identity here, tensor work in audio/whisper.py. What it makes of a recording are timed segments of text."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from embed_pipelines.audio.decoding import decoded_blocks, windows
from embed_pipelines.core import settings
from embed_pipelines.core.fingerprints import cached_facts, index_version, model_fingerprint

if TYPE_CHECKING:
    from embed_pipelines.audio.whisper import WhisperTranscriber

# 30-second windows transcribed per forward pass: the decoder's steps dominate, and batches share them.
DEFAULT_WINDOW_BATCHES = {"cpu": 4, "mps": 8, "cuda": 32}
WINDOW_S = 30.0  # Whisper's own: its encoder sees 30 s


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    text: str


@cache
def _load_transcriber(folder: Path, device: str, batch_size: int) -> WhisperTranscriber:
    """One model per process and configuration, loaded on first use: torch is imported only here, so a sync
    with no recording to transcribe never loads it."""
    from embed_pipelines.audio.whisper import WhisperTranscriber
    from embed_pipelines.core.accelerator import pick_device

    return WhisperTranscriber(folder, pick_device(device), batch_size)


class SpeechModel(BaseModel):
    """Recordings to timed segments of text, in the configured language or the one Whisper hears."""

    model_config = ConfigDict(frozen=True, validate_default=True)

    model: str = Field(description="Local folder of a Whisper-family checkpoint (transformers format).")
    language: str = Field(default="auto", description="The spoken language's code (en, de, ...), or auto.")
    device: Literal["auto", "cuda", "mps", "cpu"] = Field(default="auto")
    window_batch_size: int | None = Field(
        default=None, description="30-second windows per forward pass (halved on out-of-memory); None: per device."
    )

    @property
    def folder(self) -> Path:
        return Path(self.model).expanduser().resolve()

    def transcriber(self) -> WhisperTranscriber:
        from embed_pipelines.core.accelerator import pick_device

        device = pick_device(self.device)
        batch = self.window_batch_size or DEFAULT_WINDOW_BATCHES[device.type]
        return _load_transcriber(self.folder, str(device), batch)

    def transcribe(self, path: Path) -> Iterator[Segment]:
        """The recording's segments in order, a batch of windows at a time. Raises ValueError naming the file
        when it cannot be decoded."""
        language = None if self.language == "auto" else self.language
        for start_s, end_s, text in self.transcriber().transcribe(windows(decoded_blocks(path), WINDOW_S), language):
            yield Segment(start_s, end_s, text)

    def warm(self) -> None:
        self.transcriber()

    def version(self) -> str:
        """What changes a transcript: the model's files by content, the language asked and the dtype class."""
        dtype = cached_facts(settings.fingerprint_cache(), {"files": self._files(), "device": self.device}, self._dtype)
        return index_version({"speech_model_files": self._files(), "language": self.language, **dtype[0]})

    def _dtype(self) -> dict:
        from embed_pipelines.core.accelerator import dtype_class

        return {"dtype": dtype_class(self.device)}

    def _files(self) -> dict[str, str]:
        return model_fingerprint(self.folder, settings.fingerprint_cache())
