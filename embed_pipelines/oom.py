"""Out of accelerator memory on a batch: split it in two and go on, rather than fail a run hours in."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import torch

_log = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")


def run_halving_on_oom(
    forward: Callable[[list[Item]], Result], items: list[Item], join: Callable[[list[Result]], Result]
) -> Result:
    """forward(items), or, when that runs out of memory, join() of the two halves done the same way."""
    try:
        return forward(items)
    except torch.OutOfMemoryError:
        if len(items) == 1:
            raise
        torch.cuda.empty_cache()
        half = len(items) // 2
        _log.warning("Out of memory on a batch of %d; retrying as two halves", len(items))
        return join([run_halving_on_oom(forward, items[:half], join), run_halving_on_oom(forward, items[half:], join)])
