"""Items a batch at a time, drawn as they come: what a step holds in memory is one batch, whatever a document
(pages, pictures, a recording's segments or windows) holds. itertools.batched, on the Pythons before 3.12."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")


def batched(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
