"""Audio files to 16 kHz mono samples, a window at a time, by PyAV (FFmpeg's own decoders and resampler, bundled
in its wheels): WAV, FLAC, MP3, M4A/AAC, Ogg and Opus alike. Memory holds one window, whatever the recording's
length."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

SAMPLE_RATE = 16_000  # what Whisper's feature extractor expects
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus"})
QUIET_FRAME_S = 0.1  # a window ends in the quietest such stretch of its last seconds


def is_audio(path: Path | str) -> bool:
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


@dataclass(frozen=True)
class Window:
    start_s: float  # where it begins in the recording
    samples: np.ndarray  # float32, mono, SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def duration_s(path: Path) -> float:
    """The recording's length as its container states it (nothing decoded); 0 where it states none."""
    try:
        with av.open(str(path)) as container:
            return (container.duration or 0) / av.time_base
    except (av.FFmpegError, OSError):
        return 0.0


def decoded_blocks(path: Path) -> Iterator[np.ndarray]:
    """The recording's samples as FFmpeg decodes them, a frame at a time. Raises ValueError naming the file when
    it holds no decodable audio."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise ValueError(f"{path.name}: not readable audio ({error})") from error
    with container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise ValueError(f"{path.name}: holds no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        decoded = 0
        try:
            for frame in container.decode(stream):
                for block in resampler.resample(frame):
                    decoded += block.samples
                    yield block.to_ndarray().reshape(-1)
            for block in resampler.resample(None):
                yield block.to_ndarray().reshape(-1)
        except av.FFmpegError as error:
            raise ValueError(f"{path.name}: damaged audio after {decoded / SAMPLE_RATE:.1f} s ({error})") from error


def windows(blocks: Iterator[np.ndarray], seconds: float, search_s: float = 2.0) -> Iterator[Window]:
    """Consecutive windows of at most `seconds`, each but the last ending in the quietest stretch of its last
    `search_s` (a pause between words, where a cut splits none): no sample is left out or repeated."""
    size, pending, held, start = int(seconds * SAMPLE_RATE), [], 0, 0
    for block in blocks:
        pending.append(block)
        held += len(block)
        if held < size:
            continue
        buffer = np.concatenate(pending)  # once per window, not per frame
        while len(buffer) >= size:
            cut = _quiet_cut(buffer[:size], search_s)
            yield Window(start / SAMPLE_RATE, buffer[:cut])
            buffer, start = buffer[cut:], start + cut
        pending, held = [buffer], len(buffer)
    if held:
        yield Window(start / SAMPLE_RATE, np.concatenate(pending))


def _quiet_cut(window: np.ndarray, search_s: float) -> int:
    frame = int(QUIET_FRAME_S * SAMPLE_RATE)
    tail = window[len(window) - int(search_s * SAMPLE_RATE) :]
    frames = tail[: len(tail) // frame * frame].reshape(-1, frame)
    quietest = int(np.argmin(np.sqrt((frames**2).mean(axis=1))))
    return len(window) - len(tail) + quietest * frame + frame // 2
