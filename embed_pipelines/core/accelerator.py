"""The accelerator: which device, which dtype, and what to do when a batch does not fit in its memory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

_log = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")


def pick_device(requested: str) -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    """Half precision where the hardware is built for it; fp32 on CPU where half is slow and lossy."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def dtype_name(device: torch.device) -> str:
    """The dtype vectors are computed in on this device, by name ("float32"): part of an index version."""
    return str(pick_dtype(device)).removeprefix("torch.")


def dtype_class(requested_device: str) -> str:
    """The dtype vectors are computed in on the device a setting picks."""
    return dtype_name(pick_device(requested_device))


def run_halving_on_oom(
    forward: Callable[[list[Item]], Result], items: list[Item], join: Callable[[list[Result]], Result]
) -> Result:
    """forward(items), or, when that runs out of accelerator memory, join() of the two halves done the same
    way: a batch too big for the device is split rather than failing a run hours in."""
    try:
        return forward(items)
    except torch.OutOfMemoryError:
        if len(items) == 1:
            raise
        torch.cuda.empty_cache()
        half = len(items) // 2
        _log.warning("Out of memory on a batch of %d; retrying as two halves", len(items))
        return join([run_halving_on_oom(forward, items[:half], join), run_halving_on_oom(forward, items[half:], join)])


def prepared_ahead(prepare: Callable[[Item], Result], items: list[Item]) -> Iterator[Result]:
    """prepare(item) for each item in order, the next one prepared by a helper thread while the caller runs
    this one on the device: host work (padding, image processing) hides behind the forward pass."""
    with ThreadPoolExecutor(1, thread_name_prefix="prepare") as helper:
        pending = helper.submit(prepare, items[0]) if items else None
        for following in [*items[1:], None]:
            ready = pending.result()
            if following is not None:
                pending = helper.submit(prepare, following)
            yield ready
