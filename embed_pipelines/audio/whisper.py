"""Whisper through transformers: windows of samples in, timed segments out.

Windows are transcribed in batches (a recording's windows share each forward pass of the decoder). Their features
are computed in line: they take milliseconds against seconds of decoding, and a helper thread preparing them
ahead (as the text and picture encoders do) made transcription 30 % slower on 2 CPU cores (35.4 s against
26.7 s for 120 s of audio, whisper-base size), whatever the helper did. Each window's timestamps are Whisper's own
(<|s.ss|> tokens around each segment, in steps of 20 ms), moved to the recording's time, kept inside the window
and in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from transformers import AutoProcessor, WhisperForConditionalGeneration

from embed_pipelines.audio.decoding import SAMPLE_RATE, Window
from embed_pipelines.core.accelerator import pick_dtype, run_halving_on_oom
from embed_pipelines.core.batches import batched

TIMESTAMP_STEP_S = 0.02


class WhisperTranscriber:
    def __init__(self, folder: Path, device: torch.device, batch_size: int):
        self.device, self.batch_size = device, batch_size
        self.dtype = pick_dtype(device)
        self.model = WhisperForConditionalGeneration.from_pretrained(
            folder, dtype=self.dtype, device_map=str(device)
        ).eval()
        self.processor = AutoProcessor.from_pretrained(folder)
        self.first_timestamp = self.model.generation_config.no_timestamps_token_id + 1
        self.special = set(self.processor.tokenizer.all_special_ids)

    def transcribe(self, windows: Iterable[Window], language: str | None) -> Iterator[tuple[float, float, str]]:
        """(start, end, text) of each segment, in the recording's seconds, in order."""
        previous_end = 0.0
        for batch in batched(windows, self.batch_size):
            features = self._features(batch)
            outputs = run_halving_on_oom(lambda part: self._generate(part, language), features, torch.cat)
            for window, tokens in zip(batch, outputs.tolist(), strict=True):
                for start, end, text in self._segments(tokens, window.duration_s):
                    start = max(window.start_s + start, previous_end)
                    end = max(window.start_s + end, start)
                    previous_end = end
                    yield start, end, text

    def _features(self, batch: list[Window]) -> torch.Tensor:
        extracted = self.processor.feature_extractor(
            [window.samples for window in batch], sampling_rate=SAMPLE_RATE, return_tensors="pt"
        )
        return extracted["input_features"]

    @torch.inference_mode()
    def _generate(self, features: torch.Tensor, language: str | None) -> torch.Tensor:
        features = features.to(self.device, dtype=self.dtype)
        generated = self.model.generate(features, return_timestamps=True, language=language, task="transcribe")
        sequences = generated if isinstance(generated, torch.Tensor) else generated["sequences"]
        width = self.model.generation_config.max_length or sequences.shape[1]  # halves join on one width
        padded = torch.full((len(sequences), width), self.processor.tokenizer.pad_token_id, dtype=sequences.dtype)
        padded[:, : min(width, sequences.shape[1])] = sequences[:, :width].cpu()
        return padded

    def _segments(self, tokens: list[int], duration_s: float) -> Iterator[tuple[float, float, str]]:
        """Segments between timestamp tokens; one left open at the window's end runs to it. Times are kept
        within the window: a model may name a time past the end of a short last window."""
        start, words = None, []
        for token in tokens:
            if token >= self.first_timestamp:
                time = min((token - self.first_timestamp) * TIMESTAMP_STEP_S, duration_s)
                if start is not None and words:
                    yield from self._segment(start, time, words)
                    start, words = None, []
                else:
                    start = time
            elif token not in self.special and start is not None:
                words.append(token)
        if start is not None and words:
            yield from self._segment(start, duration_s, words)

    def _segment(self, start: float, end: float, words: list[int]) -> Iterator[tuple[float, float, str]]:
        text = self.processor.tokenizer.decode(words, skip_special_tokens=True).strip()
        if text:
            yield start, max(start, end), text
