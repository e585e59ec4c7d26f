"""The code location `dagster dev -w workspace.yaml` loads: the collections of EMBED_PIPELINES_CONFIG, else
the one collection the other EMBED_PIPELINES_* variables describe."""

import dagster as dg

from embed_pipelines.config import configured_collections
from embed_pipelines.factory import build_all_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_all_definitions(configured_collections())
