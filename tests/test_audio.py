"""The audio family: recordings decoded by PyAV, transcribed by a Whisper-family model (a tiny random-weight one
built from its config, tests/tiny_speech_model.py) into timed segments, chunked and embedded by the text model.
The recordings are made here: tones that come and go (speech-like pauses), encoded by PyAV's own FFmpeg."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest
from support import definitions
from tiny_speech_model import build_tiny_whisper

from embed_pipelines import api, cli
from embed_pipelines.assets.common import asset_key
from embed_pipelines.audio.decoding import SAMPLE_RATE, decoded_blocks, windows
from embed_pipelines.audio.speech_model import SpeechModel
from embed_pipelines.audio.spoken import SpokenTextModel
from embed_pipelines.automation import shard_range_tags
from embed_pipelines.core.collection import AudioBranch, Collection
from embed_pipelines.factory import index_job_name
from embed_pipelines.pipeline.families import accepted_by, configured_models
from embed_pipelines.pipeline.plan import plan_sync

CODECS = {
    ".wav": "pcm_s16le",
    ".flac": "flac",
    ".mp3": "libmp3lame",
    ".m4a": "aac",
    ".ogg": "libopus",
    ".opus": "libopus",
}


def write_recording(path: Path, seconds: float, pitch: float = 220.0) -> Path:
    """`seconds` of a tone sounding half of each second (pauses between 'words'), in the suffix's codec."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    samples = (0.3 * np.sin(2 * np.pi * pitch * t) * (np.sin(2 * np.pi * t) > 0)).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            CODECS[path.suffix], rate=48_000 if "opus" in CODECS[path.suffix] else SAMPLE_RATE
        )
        stream.layout = "mono"
        context = stream.codec_context
        resampler = av.AudioResampler(format=context.format, layout="mono", rate=context.sample_rate)
        for converted in [*resampler.resample(frame), *resampler.resample(None)]:
            container.mux(stream.encode(converted))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def whisper_folder(tmp_path_factory) -> Path:
    return build_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper"))


@pytest.fixture
def audio_model(whisper_folder, tiny_model) -> SpokenTextModel:
    return SpokenTextModel(SpeechModel(model=str(whisper_folder), language="en", device="cpu"), tiny_model)


def index(collection: Collection, tiny_model, audio_model, postgres, instance):
    defs = definitions(collection, tiny_model, postgres, audio_model=audio_model)
    result = defs.resolve_job_def(index_job_name(collection)).execute_in_process(
        instance=instance, tags=shard_range_tags(collection), raise_on_error=False
    )
    assert result.success, "the index run failed"
    return result


def metadata(result, collection: Collection, asset: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == asset_key(collection, asset)]
    return {key: value.value for key, value in events[0].materialization.metadata.items()}


def audio_rows(postgres, view: str) -> list[tuple]:
    with postgres.connect() as conn:
        return conn.execute(
            f"SELECT document_path, chunk_ordinal, start_s, end_s, chunk_hash, id FROM {view} ORDER BY 1, 2"
        ).fetchall()


DURATIONS = {"meeting.m4a": 75.0, "note.wav": 8.0, "podcast.mp3": 40.0, "talk.flac": 12.0, "voice.ogg": 6.0,
             "memo.opus": 5.0}  # fmt: skip


@pytest.fixture
def recordings(tmp_path) -> Path:
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name, seconds in DURATIONS.items():
        write_recording(folder / name, seconds)
    (folder / "broken.mp3").write_bytes(b"ID3 this was never an MP3 " * 20)
    (folder / "agenda.md").write_text("# Agenda\n\nThe text family indexes this; the audio family leaves it.")
    return folder


def test_recordings_are_transcribed_in_timed_chunks_and_found_with_when(
    recordings, state_dir, instance, postgres, tiny_model, audio_model, capsys
):
    collection = Collection("talks", recordings, shards=2, audio=AudioBranch(audio_model.speech.model, "en"))

    result = index(collection, tiny_model, audio_model, postgres, instance)

    rows = audio_rows(postgres, "talks_audio")
    assert {row[0] for row in rows} == set(DURATIONS), "every recording, and nothing else"
    for name, seconds in DURATIONS.items():
        times = [(start, end) for path, _, start, end, *_ in rows if path == name]
        assert all(0 <= start <= end <= seconds + 0.1 for start, end in times), (name, times)
        assert all(end <= following for (_, end), (following, _) in zip(times, times[1:], strict=False)), "in order"
    assert max(end for path, _, _, end, *_ in rows if path == "meeting.m4a") > 60, "past the first windows"
    transcribed = metadata(result, collection, "transcripts")
    assert transcribed["documents_failed"] == 1 and "broken.mp3" in transcribed["failed_files"]
    with postgres.connect() as conn:
        (text,) = conn.execute("SELECT text FROM talks_audio WHERE document_path = 'podcast.mp3' LIMIT 1").fetchone()

    hits = api.search(text, "talks", k=3, family="audio", mode="dense", postgres=postgres)
    assert hits[0].document_path == "podcast.mp3" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].start_s is not None and hits[0].end_s >= hits[0].start_s
    cli.print_hits(hits[:1])
    assert re.search(r"podcast\.mp3  \d\d:\d\d:\d\d–\d\d:\d\d:\d\d", capsys.readouterr().out)
    hybrid = api.search(text, "talks", k=3, family="audio", postgres=postgres)
    assert hybrid and all(hit.start_s is not None for hit in hybrid), "keyword and hybrid search as for text"


def test_an_edited_recording_alone_is_transcribed_again(
    recordings, state_dir, instance, postgres, tiny_model, audio_model
):
    collection = Collection("talks_edit", recordings, shards=2, audio=AudioBranch(audio_model.speech.model, "en"))
    index(collection, tiny_model, audio_model, postgres, instance)
    before = audio_rows(postgres, "talks_edit_audio")

    write_recording(recordings / "note.wav", 9.0, pitch=330.0)
    models = configured_models(collection, {"text": tiny_model, "audio": audio_model})
    with postgres.connect() as conn:
        plan = plan_sync(collection, accepted_by(collection), models, conn)
    transcribing = plan.steps["audio/TranscribeAudio"].figures
    # note.wav, and broken.mp3, which every sync tries again (its container states no length)
    assert (transcribing["recordings_to_transcribe"], transcribing["audio_seconds_to_transcribe"]) == (2, 9)
    assert plan.figure("chunks_embedded") == 0, "what follows is planned from its last transcript"
    assert audio_rows(postgres, "talks_edit_audio") == before
    edited = index(collection, tiny_model, audio_model, postgres, instance)

    assert metadata(edited, collection, "transcripts")["recordings_transcribed"] == 1
    after = audio_rows(postgres, "talks_edit_audio")
    assert [row for row in after if row[0] != "note.wav"] == [row for row in before if row[0] != "note.wav"]
    assert max(end for path, _, _, end, *_ in after if path == "note.wav") <= 9.1


def test_the_language_and_the_speech_model_are_part_of_the_version(whisper_folder, tiny_model, tmp_path):
    english = SpokenTextModel(SpeechModel(model=str(whisper_folder), language="en"), tiny_model)
    german = SpokenTextModel(SpeechModel(model=str(whisper_folder), language="de"), tiny_model)
    assert english.index_version() != german.index_version() != tiny_model.index_version()
    assert english.chunker_version() != german.chunker_version()


def test_a_long_recording_is_read_a_window_at_a_time(tmp_path):
    """Ten minutes decoded lazily: no window over 30 s, none held before it is asked for, no sample lost."""
    drawn = []

    def blocks():
        for _ in range(600):  # a second at a time
            drawn.append(SAMPLE_RATE)
            yield np.random.default_rng(len(drawn)).normal(0, 0.1, SAMPLE_RATE).astype(np.float32)

    stream = windows(blocks(), 30.0)
    first = next(stream)
    assert sum(drawn) <= 31 * SAMPLE_RATE, "the first window came before the rest was decoded"
    rest = list(stream)
    lengths = [len(window.samples) for window in [first, *rest]]
    assert max(lengths) <= 30 * SAMPLE_RATE and sum(lengths) == 600 * SAMPLE_RATE
    starts = [window.start_s for window in [first, *rest]]
    assert starts == sorted(starts) and starts[0] == 0.0
    recording = write_recording(tmp_path / "two.flac", 2.0)
    assert sum(len(block) for block in decoded_blocks(recording)) == pytest.approx(2 * SAMPLE_RATE, abs=200)
