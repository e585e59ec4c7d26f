"""Which folders a colpali-engine checkpoint consists of: read from its config files alone, so that the index
version is known without loading torch or colpali-engine."""

from __future__ import annotations

import json
from pathlib import Path


def adapter_base(folder: Path, base_model: str) -> Path | None:
    """For a LoRA adapter checkpoint (adapter_config.json, no config.json): the local base model folder,
    `base_model` when given, else the one the adapter names, which must then be a local folder."""
    if (folder / "config.json").is_file() or not (folder / "adapter_config.json").is_file():
        return None
    named = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path", "")
    base = Path(base_model or named).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(
            f"{folder} is an adapter for {named!r}, which is not a local folder: set the visual model's "
            "base_model to a local copy of the base model"
        )
    return base


def projection_dimension(folders: list[Path]) -> int:
    """The size of the token vectors a checkpoint computes: the rows of its `custom_text_proj` weight, read
    from the safetensors headers alone (every colpali-engine model ends in that projection)."""
    from safetensors import safe_open

    for folder in folders:
        for weights in sorted(folder.glob("*.safetensors")):
            with safe_open(str(weights), framework="numpy") as handle:
                for name in handle.keys():  # noqa: SIM118 (a safetensors handle is not a mapping)
                    if name.endswith("custom_text_proj.weight"):
                        return handle.get_slice(name).get_shape()[0]
    raise FileNotFoundError(f"no custom_text_proj weight in {', '.join(map(str, folders))}: not a ColPali-family model")
