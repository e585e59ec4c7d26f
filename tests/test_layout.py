"""The package's layout rule, checked on its source: Dagster stays at the edges (top-level modules, assets/,
resources/), the text and visual compute never reach PostgreSQL, and storage never loads torch; each
through any chain of the package's own imports, not only directly."""

import ast
from functools import cache
from pathlib import Path

import pytest

import embed_pipelines

PACKAGE = Path(embed_pipelines.__file__).parent
DOMAINS = ("sync", "text", "visual", "storage", "versions")
EDGES = ("assets", "resources")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


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


def in_folder(module: str, folders: tuple[str, ...]) -> bool:
    parts = module.split(".")
    return len(parts) > 2 and parts[1] in folders


def test_the_walk_sees_the_package():
    assert {"embed_pipelines.sync.incremental", "embed_pipelines.assets.view", "embed_pipelines.api"} <= set(MODULES)
    assert "dagster" in reachable_imports("embed_pipelines.assets.view")
    assert "embed_pipelines.versions.lifecycle" in reachable_imports("embed_pipelines.assets.view")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if in_folder(m, DOMAINS)))
def test_domain_modules_never_reach_dagster(module):
    assert "dagster" not in reachable_imports(module), f"{module} reaches dagster"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if in_folder(m, ("text", "visual"))))
def test_compute_modules_never_reach_postgresql(module):
    reached = reachable_imports(module) & {"psycopg", "pgvector"}
    assert not reached, f"{module} reaches {reached}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if in_folder(m, ("storage",))))
def test_storage_modules_never_reach_torch(module):
    reached = reachable_imports(module) & {"torch", "transformers", "colpali_engine"}
    assert not reached, f"{module} reaches {reached}"


def test_only_top_level_modules_assets_and_resources_import_dagster():
    importers = {m for m in MODULES if "dagster" in direct_imports(m)}
    assert importers, "the walk found no Dagster import at all"
    assert all(not in_folder(m, DOMAINS) for m in importers), sorted(m for m in importers if in_folder(m, DOMAINS))
