"""DoclingDocument -> chunks sized for the embedding model, each with its provenance and content hash."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TYPE_CHECKING

import psutil

from embed_pipelines.core.rows import Chunk
from embed_pipelines.text.streaming import Section, split_section
from embed_pipelines.text.workers import LibraryNoise, worker_processes

if TYPE_CHECKING:
    from docling_core.types.doc import DoclingDocument
    from transformers import PreTrainedTokenizerBase


LONG_SEQUENCE_WARNING = "sequence-length-is-longer-than-the-specified-maximum"  # transformers' key for it


def storable(text: str) -> str:
    """Text as PostgreSQL can store it: without NUL characters, which a text column refuses."""
    return text.replace("\x00", "")


def chunk_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunker_settings(max_tokens: int, merge_peers: bool = True) -> dict:
    """Chunker settings that change what is embedded: part of the index version."""
    return {"chunker": "docling.HybridChunker", "max_tokens": max_tokens, "merge_peers": merge_peers}


class DocumentChunker:
    """docling's HybridChunker with the embedding model's own tokenizer and an explicit token limit
    (without both, HybridChunker reaches for the Hugging Face hub). Without a tokenizer at hand (a served
    model), `count_tokens` counts: the server's /tokenize, or a character budget."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase | None,
        max_tokens: int,
        merge_peers: bool = True,
        count_tokens: Callable[[str], int] | None = None,
    ):
        from docling_core.transforms.chunker.hybrid_chunker import HybridChunker  # seconds: only to chunk
        from docling_core.transforms.chunker.tokenizer.huggingface import HuggingFaceTokenizer

        self._made_from = (tokenizer, max_tokens, merge_peers, count_tokens)
        self.max_tokens = max_tokens
        self.merge_peers = merge_peers
        if tokenizer is None:
            self._tokenizer = _counting(max_tokens, count_tokens)
        else:
            # Whole sections are counted before they are split, so longer than the model's window by design:
            # transformers' warning that such a sequence would break the model (once per tokenizer) only alarms.
            tokenizer.deprecation_warnings[LONG_SEQUENCE_WARNING] = True
            self._tokenizer = HuggingFaceTokenizer(tokenizer=tokenizer, max_tokens=max_tokens)
        self._chunker = HybridChunker(tokenizer=self._tokenizer, merge_peers=merge_peers)

    def __reduce__(self):
        """Pickled as what it is made from: a chunking worker builds its own HybridChunker."""
        return DocumentChunker, self._made_from

    @property
    def settings(self) -> dict:
        return chunker_settings(self.max_tokens, self.merge_peers)

    def count_tokens(self, text: str) -> int:
        return self._tokenizer.count_tokens(text)

    def chunk(self, document: DoclingDocument, path: str, source_sha256: str) -> list[Chunk]:
        chunks: list[Chunk] = []
        for piece in self._chunker.chunk(dl_doc=document):
            text = storable(self._chunker.contextualize(chunk=piece))
            if not text.strip():
                continue
            headings = [storable(heading) for heading in piece.meta.headings or []]
            pages = sorted({prov.page_no for item in piece.meta.doc_items for prov in item.prov})
            tokens = self._tokenizer.count_tokens(text)
            chunks.append(chunk_row(path, source_sha256, len(chunks), (headings, text, tokens), pages))
        return chunks

    def chunk_sections(self, sections: list[Section]) -> list[Piece]:
        """A streamed file's sections (see streaming.py) as chunk texts with their headings and token counts."""
        count = self._tokenizer.count_tokens
        pieces = [piece for section in sections for piece in split_section(section, self.max_tokens, count)]
        return [(headings, storable(text), count(text)) for headings, text in pieces]


Piece = tuple[list[str], str, int]  # a chunk's headings, text and tokens


def chunk_row(path: str, source_sha256: str, ordinal: int, piece: Piece, pages: list[int] = ()) -> Chunk:
    headings, text, tokens = piece
    return Chunk(
        document_path=path,
        source_sha256=source_sha256,
        chunk_ordinal=ordinal,
        text=text,
        headings=headings,
        pages=list(pages),
        char_count=len(text),
        token_count=tokens,
        chunk_hash=chunk_hash(text),
    )


def _counting(max_tokens: int, count: Callable[[str], int]):
    """A docling tokenizer that only counts, with `count`."""
    from docling_core.transforms.chunker.tokenizer.base import BaseTokenizer

    class Counting(BaseTokenizer):
        def count_tokens(self, text: str) -> int:
            return count(text)

        def get_max_tokens(self) -> int:
            return max_tokens

        def get_tokenizer(self):
            return self.count_tokens

    return Counting()


OWNER_CHECK_S = 1.0
_worker_chunker: DocumentChunker | None = None  # in a pool's worker process: the chunker it inherited


def _adopt(chunker: DocumentChunker, pool_owner: int, noise: LibraryNoise) -> None:
    global _worker_chunker
    _worker_chunker = chunker
    noise.keep()
    threading.Thread(target=_end_with, args=(pool_owner,), daemon=True).start()


def _end_with(pool_owner: int) -> None:
    """A worker ends once the process that owns its pool is gone. Shut down, a pool tells its workers; a
    process killed outright (SIGKILL, the OOM killer) cannot, and a worker holds both ends of its own queue,
    so it would wait for work for good."""
    while psutil.pid_exists(pool_owner) and psutil.Process(pool_owner).status() != psutil.STATUS_ZOMBIE:
        time.sleep(OWNER_CHECK_S)
    os._exit(0)


def _chunk_json(docling_json: str, path: str, source_sha256: str) -> list[Chunk]:
    from docling_core.types.doc import DoclingDocument

    return _worker_chunker.chunk(DoclingDocument.model_validate_json(docling_json), path, source_sha256)


def _chunk_sections(sections: list[Section]) -> list[Piece]:
    return _worker_chunker.chunk_sections(sections)


class ChunkingPool:
    """Documents chunked in `workers` processes, each with a copy of `chunker` (sent pickled, the tokenizer
    with it): parsing a docling JSON and HybridChunker are pure Python, one core each."""

    def __init__(self, chunker: DocumentChunker, workers: int):
        adopted = (chunker, os.getpid(), LibraryNoise.here())
        context = worker_processes()
        self.executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_adopt, initargs=adopted)

    def submit(self, docling_json: str, path: str, source_sha256: str) -> Future[list[Chunk]]:
        return self.executor.submit(_chunk_json, docling_json, path, source_sha256)

    def submit_sections(self, sections: list[Section]) -> Future[list[Piece]]:
        return self.executor.submit(_chunk_sections, sections)

    def close(self) -> None:
        self.executor.shutdown(cancel_futures=True)
