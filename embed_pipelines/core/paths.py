"""Globs over a document's path, and the collection's rules that derive metadata from it.

One translation of globs (`**` any folders, `*` and `?` within one name) serves both the search filters (as
a PostgreSQL regular expression) and the rules (as Python's), where `{name}` also captures one folder or file
name: `{team}/{project}/**` gives `guides/search/intro.md` the metadata `{"team": "guides", "project":
"search"}`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from embed_pipelines.core.settings import ConfigurationError

_PARTS = re.compile(r"(\*\*/?|\*|\?|\{[A-Za-z_][A-Za-z0-9_]*\})")
_GLOB = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}


def glob_pattern(glob: str, captures: bool = False) -> str:
    """A path glob as an anchored regular expression; with `captures`, `{name}` is a named group of one
    name (Python's syntax; PostgreSQL's patterns have no named groups)."""

    def translated(part: str) -> str:
        if part in _GLOB:
            return _GLOB[part]
        if captures and part.startswith("{") and part.endswith("}") and _PARTS.fullmatch(part):
            return f"(?P<{part[1:-1]}>[^/]+)"
        return re.escape(part)

    return "^" + "".join(translated(part) for part in _PARTS.split(glob)) + "$"


def literal_prefix(glob: str) -> str:
    """What every path the glob matches starts with: the text before its first wildcard."""
    return _PARTS.split(glob, maxsplit=1)[0]


def path_rules(value: Any, where: str) -> tuple[str, ...]:
    """Rules as YAML lists them, or as the environment gives them (separated by commas); each a glob with at
    least one `{name}`, no name twice."""
    rules = value.split(",") if isinstance(value, str) else value
    if not isinstance(rules, list | tuple) or not all(isinstance(rule, str) for rule in rules):
        raise ConfigurationError(f"{where}: expected a list of path patterns such as '{{team}}/{{project}}/**'")
    rules = tuple(rule.strip() for rule in rules if rule.strip())
    for rule in rules:
        try:
            names = _rule_pattern(rule).groupindex
        except re.error as error:  # a name given twice
            raise ConfigurationError(f"{where}: {rule!r} is no path pattern: {error}") from None
        if not names:
            raise ConfigurationError(f"{where}: {rule!r} names no field: write `{{name}}` where a folder names one")
    return rules


def metadata_from_path(rules: tuple[str, ...], path: str) -> dict[str, str]:
    """The fields the first rule that matches `path` captures; none when no rule matches."""
    for rule in rules:
        found = _rule_pattern(rule).match(path)
        if found:
            return found.groupdict()
    return {}


@lru_cache(maxsize=64)
def _rule_pattern(rule: str) -> re.Pattern:
    """A rule compiled once: it is asked of every document a load looks at."""
    return re.compile(glob_pattern(rule, captures=True))
