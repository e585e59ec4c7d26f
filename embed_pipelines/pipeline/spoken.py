"""The audio family's steps: `transcripts` (each recording's timed segments, by the speech model) and
`audio_chunks` (consecutive segments up to the text model's token budget, with the time range they cover), then
the text steps' own embedding and loading under names of their own."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from functools import cached_property

from embed_pipelines.audio.decoding import duration_s
from embed_pipelines.audio.speech_model import Segment as SpokenSegment
from embed_pipelines.audio.spoken import SpokenTextModel
from embed_pipelines.core.batches import batched
from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.core.rows import Segment, SpokenChunk
from embed_pipelines.pipeline.embed import EmbedChunks
from embed_pipelines.pipeline.incremental import Failed, Missing, Wanted
from embed_pipelines.pipeline.load_chunks import LoadChunks
from embed_pipelines.pipeline.steps import StoreSync
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.text.chunking import DocumentChunker, chunk_hash, storable
from embed_pipelines.versions.family import IndexFamily

SEGMENTS_PER_BATCH = 256  # segments written at a time: a long recording's transcript is never held whole


def _segment_batches(path: str, sha256: str, segments: Iterable[SpokenSegment]) -> Iterator[list[Segment]]:
    rows = (
        Segment(
            document_path=path,
            source_sha256=sha256,
            segment_ordinal=ordinal,
            start_s=segment.start_s,
            end_s=segment.end_s,
            text=storable(segment.text),
        )
        for ordinal, segment in enumerate(segments)
    )
    return batched(rows, SEGMENTS_PER_BATCH)


class TranscribeAudio(StoreSync):
    """A recording's transcript is current when the speech model of this version transcribed these bytes (its
    store is the speech version's: a new model or language transcribes beside the old). One that cannot be
    decoded keeps its last good transcript."""

    asset = "transcripts"

    def __init__(self, stores: Stores, family: IndexFamily, model: SpokenTextModel):
        super().__init__(stores, family.accepts, stores.transcripts(model.speech.version()))
        self.speech = model.speech

    def wanted(self, shard: str, path: str) -> Wanted:
        """A plan transcribes nothing (minutes of a GPU per hour of audio): it counts the recordings it would
        transcribe and their length, and what follows them is planned from their last transcripts."""
        sha256 = self.sources[path].sha256
        if self.stores.dry_run and self.store.made_from(shard, path) != sha256:
            with self.collection.files.local_file(path) as local:
                seconds = duration_s(local)
            self.figures.update(recordings_to_transcribe=1, audio_seconds_to_transcribe=round(seconds))
            raise Missing(f"to be transcribed: {seconds:.0f} s of audio")
        return Wanted(sha256)

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        started = time.perf_counter()
        with self.collection.files.local_file(path) as local:
            segments = _segment_batches(path, wanted.signature, self.speech.transcribe(local))
            try:
                written = self.store.write_batches(shard, path, segments, wanted.signature)
            except ValueError as error:  # undecodable: its last good transcript stays
                raise Failed(str(error)) from error
        self.figures.update(recordings_transcribed=1, segments_transcribed=written)
        self.figures["model_seconds"] += time.perf_counter() - started


def spoken_chunks(segments: list[Segment], chunker: DocumentChunker) -> Iterator[tuple[float, float, str, int]]:
    """(start, end, text, tokens) of each chunk: consecutive segments while their text fits the token budget (a
    segment alone over it is a chunk of its own, cut by the model as any long chunk is)."""
    start, end, texts, tokens = 0.0, 0.0, [], 0
    for segment in segments:
        joined = " ".join([*texts, segment.text])
        counted = chunker.count_tokens(joined)
        if texts and counted > chunker.max_tokens:
            yield start, end, " ".join(texts), tokens
            texts, joined, counted = [], segment.text, chunker.count_tokens(segment.text)
        if not texts:
            start = segment.start_s
        texts.append(segment.text)
        end, tokens = segment.end_s, counted
    if texts:
        yield start, end, " ".join(texts), tokens


class ChunkTranscripts(StoreSync):
    """A recording's chunks are current when they were made from its current transcript."""

    asset = "audio_chunks"

    def __init__(self, stores: Stores, family: IndexFamily, model: SpokenTextModel, versions: Versions):
        self.transcripts = stores.transcripts(model.speech.version())
        chunks = stores.chunks(versions.chunker, family.layout.kind)
        super().__init__(stores, family.accepts, chunks, upstream=self.transcripts)
        self.model = model

    @cached_property
    def chunker(self) -> DocumentChunker:
        """Loaded on the first transcript to chunk: the tokenizer loads only then."""
        return self.model.chunker()

    def wanted(self, shard: str, path: str) -> Wanted:
        transcribed = self.transcripts.made_from(shard, path)
        if transcribed is None:
            raise Missing("not transcribed yet")
        return Wanted(transcribed)

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        segments = self.transcripts.read(shard, path) or []
        chunks = [
            SpokenChunk(
                document_path=path,
                source_sha256=wanted.signature,
                chunk_ordinal=ordinal,
                text=text,
                headings=[],
                pages=[],
                char_count=len(text),
                token_count=tokens,
                chunk_hash=chunk_hash(text),
                start_s=start,
                end_s=end,
            )
            for ordinal, (start, end, text, tokens) in enumerate(spoken_chunks(segments, self.chunker))
        ]
        self.figures["chunks_written"] += self.store.write_batches(shard, path, [chunks], made_from=wanted.signature)


class EmbedSpokenChunks(EmbedChunks):
    asset = "audio_embeddings"


class LoadSpokenChunks(LoadChunks):
    asset = "audio_index"
