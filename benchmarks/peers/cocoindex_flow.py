"""CocoIndex's own pipeline for the sync benchmark's job, run by CocoIndex's virtual environment (see
cocoindex_sync.py): every file of the folder, CocoIndex's RecursiveSplitter at 2,000 characters with 500 of
overlap (its text-embedding example's settings), its SentenceTransformerEmbedder over all-MiniLM-L6-v2, rows
in a pgvector table. As in CocoIndex's examples, a file's processing is memoized: an unchanged file costs
nothing, an edited one is split and embedded again.

Prints how many chunks this process embedded, as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import asyncpg
import cocoindex as coco
from cocoindex.connectors import localfs, postgres
from cocoindex.ops.sentence_transformers import SentenceTransformerEmbedder
from cocoindex.ops.text import RecursiveSplitter
from cocoindex.resources.chunk import Chunk
from cocoindex.resources.file import FileLike, PatternFilePathMatcher
from cocoindex.resources.id import IdGenerator
from numpy.typing import NDArray

DATABASE = coco.ContextKey[asyncpg.Pool]("bench_db")
EMBEDDER = coco.ContextKey[SentenceTransformerEmbedder]("embedder")
splitter = RecursiveSplitter()
embedded = 0


@coco.lifespan
async def lifespan(builder: coco.EnvironmentBuilder) -> AsyncIterator[None]:
    builder.provide(EMBEDDER, SentenceTransformerEmbedder(os.environ["BENCH_MODEL"]))
    async with await asyncpg.create_pool(os.environ["BENCH_DSN"]) as pool:
        builder.provide(DATABASE, pool)
        yield


@dataclass
class ChunkRow:
    id: int
    filename: str
    text: str
    embedding: Annotated[NDArray, EMBEDDER]


@coco.fn
async def chunk_row(chunk: Chunk, filename: str, ids: IdGenerator, table: postgres.TableTarget[ChunkRow]) -> None:
    global embedded
    embedded += 1
    vector = await coco.use_context(EMBEDDER).embed(chunk.text)
    table.declare_row(
        row=ChunkRow(id=await ids.next_id(chunk.text), filename=filename, text=chunk.text, embedding=vector)
    )


@coco.fn(memo=True)
async def file_rows(file: FileLike, table: postgres.TableTarget[ChunkRow]) -> None:
    text = await file.read_text()
    chunks = splitter.split(text, chunk_size=2000, chunk_overlap=500, language="markdown")
    await coco.map(chunk_row, chunks, str(file.file_path.path), IdGenerator(), table)


@coco.fn
async def app_main(source: pathlib.Path) -> None:
    schema = await postgres.TableSchema.from_class(ChunkRow, primary_key=["id"])
    table = await postgres.mount_table_target(
        DATABASE, table_name="bench_chunks", table_schema=schema, pg_schema_name="bench"
    )
    files = localfs.walk_dir(source, recursive=True, path_matcher=PatternFilePathMatcher(included_patterns=["**/*"]))
    await coco.mount_each(file_rows, files.items(), table)


app = coco.App(coco.AppConfig(name="bench"), app_main, source=pathlib.Path(os.environ["BENCH_SOURCE"]))


async def update() -> None:
    await app.update()


if __name__ == "__main__":
    asyncio.run(update())
    print(json.dumps({"embedded": embedded}))
