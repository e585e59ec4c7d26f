"""The package's layout rule, checked on its source: its folders are floors, each importing only floors below
it (or its own); `core/` and `pipeline/` never reach Dagster, the text and visual compute never reach
PostgreSQL, storage never loads torch, and importing the collection module loads no database driver. Each
through any chain of the package's own imports, not only directly."""

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

import embed_pipelines

PACKAGE = Path(embed_pipelines.__file__).parent
# Lowest first. Folders on one floor may import each other as long as the folders form no cycle.
FLOORS = [
    ("core",),
    ("text", "visual", "audio", "storage"),
    ("sync", "versions"),
    ("pipeline",),
    ("assets", "resources"),
]
TOP = len(FLOORS)  # the top-level face: definitions, api, cli and the Dagster wiring only they use


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def folder(module: str) -> str | None:
    """The folder a module lives in; None for the top-level modules (and the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else None


def floor(module: str) -> int:
    name = folder(module)
    return TOP if name is None else next(level for level, folders in enumerate(FLOORS) if name in folders)


@cache
def direct_imports(module: str) -> frozenset[str]:
    """Top-level names of outside packages, and full names of the package's own modules, it imports."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            found.add(name if name in MODULES else name.split(".")[0])
    return frozenset(found - {"embed_pipelines"})


def reachable_imports(module: str) -> set[str]:
    """Everything the module imports, directly or through the package's own modules."""
    seen, todo = set(), [module]
    while todo:
        for name in direct_imports(todo.pop()) - seen:
            seen.add(name)
            if name in MODULES:
                todo.append(name)
    return seen


def own_imports(module: str) -> set[str]:
    return {name for name in direct_imports(module) if name in MODULES and name != "embed_pipelines"}


def in_folders(*folders: str) -> list[str]:
    return sorted(module for module in MODULES if folder(module) in folders)


def test_the_walk_sees_the_package():
    assert {"embed_pipelines.pipeline.incremental", "embed_pipelines.assets.view", "embed_pipelines.cli"} <= set(
        MODULES
    )
    assert "dagster" in reachable_imports("embed_pipelines.assets.view")
    assert "embed_pipelines.versions.lifecycle" in reachable_imports("embed_pipelines.assets.view")
    assert floor("embed_pipelines.core.collection") == 0 and floor("embed_pipelines.cli") == TOP
    assert floor("embed_pipelines.core") == 0, "a folder's __init__ lives on its folder's floor"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_floor_above_its_own(module):
    above = sorted(name for name in own_imports(module) if floor(name) > floor(module))
    assert not above, f"{module} (floor {floor(module)}) imports {above}"


def test_the_folders_form_no_cycle():
    edges = {
        (folder(module), folder(name))
        for module in MODULES
        for name in own_imports(module)
        if folder(module) and folder(name) and folder(module) != folder(name)
    }
    reach = {source: {target for s, target in edges if s == source} for source, _ in edges}
    changed = True
    while changed:  # transitive closure
        changed = False
        for targets in reach.values():
            more = set().union(*(reach.get(target, set()) for target in targets)) - targets
            if more:
                targets |= more
                changed = True
    cycles = sorted(source for source, targets in reach.items() if source in targets)
    assert not cycles, f"folders that import each other: {cycles} ({sorted(edges)})"


@pytest.mark.parametrize("module", in_folders("core", "pipeline", "sync", "versions", "text", "visual", "storage"))
def test_below_the_edge_nothing_reaches_dagster(module):
    assert "dagster" not in reachable_imports(module), f"{module} reaches dagster"


@pytest.mark.parametrize("module", in_folders("text", "visual", "core"))
def test_compute_and_core_never_reach_postgresql(module):
    reached = reachable_imports(module) & {"psycopg", "pgvector"}
    assert not reached, f"{module} reaches {reached}"


@pytest.mark.parametrize("module", in_folders("storage"))
def test_storage_modules_never_reach_torch(module):
    reached = reachable_imports(module) & {"torch", "transformers", "colpali_engine"}
    assert not reached, f"{module} reaches {reached}"


def test_only_the_edge_and_the_top_level_import_dagster():
    importers = {m for m in MODULES if "dagster" in direct_imports(m)}
    assert importers, "the walk found no Dagster import at all"
    assert all(floor(m) >= floor("embed_pipelines.assets") for m in importers), sorted(importers)


def test_importing_the_collection_loads_no_database_driver_nor_dagster():
    """In a fresh interpreter, as a user's script would: what the collection module loads."""
    code = (
        "import sys, embed_pipelines.core.collection, embed_pipelines.core.config;"
        "print(sorted(m for m in ('psycopg', 'pgvector', 'dagster', 'torch', 'openvino') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
