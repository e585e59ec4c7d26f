"""The code location `dagster dev -w workspace.yaml` loads: the collections of EMBED_PIPELINES_CONFIG, else
the one collection the other EMBED_PIPELINES_* variables describe."""

import os
from pathlib import Path

import dagster as dg

from embed_pipelines.collection import Collection
from embed_pipelines.collections_config import load_collections
from embed_pipelines.factory import build_all_definitions
from embed_pipelines.settings import CONFIG_ENV


@dg.definitions
def defs() -> dg.Definitions:
    config = os.environ.get(CONFIG_ENV)
    collections = load_collections(Path(config).expanduser()) if config else [Collection.from_environment()]
    return build_all_definitions(collections)
