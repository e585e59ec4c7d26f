"""The code location `dagster dev -w workspace.yaml` loads: the collection configured by the environment."""

import dagster as dg

from embed_pipelines.collection import Collection
from embed_pipelines.factory import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Collection.from_environment())
