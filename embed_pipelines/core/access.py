"""Who may read a document: its principals, the PostgreSQL roles whose members may read its rows (`public`: every
reader), from the sources a collection's `access` settings name, combined as they say.

Fail closed: a document whose permissions no named source can tell (no rule covers it, its metadata names none)
gets no principals, so nobody reads it, and is reported; nothing is public unless a source says so.
"""

from __future__ import annotations

import json
import re
import stat
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from embed_pipelines.core.paths import glob_pattern
from embed_pipelines.core.rows import SourceFile
from embed_pipelines.core.settings import ConfigurationError, choice, setting, text

PUBLIC = "public"  # every reader: PostgreSQL reserves the name, so no role can be called so
AccessSource = Literal["rules", "posix", "metadata"]
Combine = Literal["first", "union", "all"]
_SOURCES = ("rules", "posix", "metadata")
_MAX_ROLE_NAME = 63  # PostgreSQL's identifier length


@dataclass(frozen=True)
class AccessRule:
    path: str  # a glob over the document's path (core/paths.py)
    principals: tuple[str, ...]

    def covers(self, path: str) -> bool:
        return _compiled(self.path).match(path) is not None


@lru_cache(maxsize=256)
def _compiled(glob: str) -> re.Pattern:
    """A rule's glob compiled once: it is asked of every document a load looks at."""
    return re.compile(glob_pattern(glob))


def principal_names(value: Any, where: str) -> tuple[str, ...]:
    """Role names as a list, or as text separated by commas or spaces; each at most 63 bytes."""
    names = value.replace(",", " ").split() if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(isinstance(name, str) and name.strip() for name in names):
        raise ConfigurationError(f"{where}: expected a list of role names (principals), not {value!r}")
    names = tuple(sorted({name.strip() for name in names}))
    too_long = [name for name in names if len(name.encode()) > _MAX_ROLE_NAME]
    if too_long:
        raise ConfigurationError(f"{where}: {too_long[0]!r} is longer than a PostgreSQL role name may be (63 bytes)")
    return names


def access_rules(value: Any, where: str) -> tuple[AccessRule, ...]:
    """`[{path: GLOB, principals: [ROLE, ...]}, ...]` as YAML lists them; in the environment `GLOB=ROLE,ROLE;
    GLOB=ROLE`."""
    if isinstance(value, str):
        value = [dict(zip(("path", "principals"), rule.split("=", 1), strict=False)) for rule in value.split(";")]
    if not isinstance(value, list | tuple):
        raise ConfigurationError(f"{where}: expected a list of rules such as {{path: 'hr/**', principals: [hr]}}")
    rules = []
    for number, rule in enumerate(value, 1):
        if not isinstance(rule, dict) or set(rule) != {"path", "principals"}:
            raise ConfigurationError(f"{where}: rule {number} must have `path` and `principals`, not {rule!r}")
        path = text(rule["path"], f"{where}: rule {number}: `path`").strip()
        rules.append(AccessRule(path, principal_names(rule["principals"], f"{where}: rule {number}: `principals`")))
    return tuple(rules)


def access_sources(value: Any, where: str) -> tuple[str, ...]:
    """The sources in the order they are asked: a list, or text separated by commas."""
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not names or not set(map(str, names)) <= set(_SOURCES):
        raise ConfigurationError(f"{where}: expected a list of {', '.join(_SOURCES)}, not {value!r}")
    return tuple(str(name).strip() for name in names)


@dataclass(frozen=True)
class AccessPolicy:
    """Per-document permissions: each row carries its document's principals, and PostgreSQL's row-level
    security shows a reader only the rows of roles it holds (storage/access.py)."""

    sources: tuple[str, ...] = setting(
        parse=access_sources,
        env="EMBED_PIPELINES_ACCESS",
        doc="where permissions come from, in the order asked: `rules` (below), `posix` (a local file's owner, group "
        "and mode: the owner if it may read, the group if it may, `public` if others may) and `metadata` (the "
        "field `metadata_field` of the object's user metadata or the file's properties): turns permissions on",
    )
    combine: Combine = setting(
        "first",
        parse=choice(Combine),
        env="EMBED_PIPELINES_ACCESS_COMBINE",
        doc="`first`: the first source that knows decides; `union`: every source that knows adds its principals; "
        "`all`: every source must know, and a reader needs to be admitted by each (their intersection)",
    )
    rules: tuple[AccessRule, ...] = setting(
        (),
        parse=access_rules,
        env="EMBED_PIPELINES_ACCESS_RULES",
        doc="`[{path: 'hr/**', principals: [hr]}, ...]`, the first whose glob matches decides (environment: "
        "`hr/**=hr;pub/**=public`)",
    )
    metadata_field: str = setting(
        "principals",
        parse=text,
        env="EMBED_PIPELINES_ACCESS_METADATA_FIELD",
        doc="the metadata field that lists a document's principals (for `metadata`: on a bucket, the object's "
        "`x-amz-meta-principals`), a list or text separated by commas",
    )

    def __post_init__(self) -> None:
        if "rules" in self.sources and not self.rules:
            raise ConfigurationError("access: `sources` names `rules`, but no `rules` are declared")

    @property
    def reads_posix(self) -> bool:
        return "posix" in self.sources

    def describe(self) -> str:
        """What the permissions are made from: a change of it makes every document's principals asked again."""
        rules = [(rule.path, rule.principals) for rule in self.rules]
        return json.dumps([self.sources, self.combine, rules, self.metadata_field])


@dataclass(frozen=True)
class Permissions:
    """A document's principals, or why they are unknown (then it has none: readable by nobody)."""

    principals: tuple[str, ...]
    unknown: str | None = None


def permissions_of(file: SourceFile, access: AccessPolicy) -> Permissions:
    """The document's principals by each source `access` names, combined as it says."""
    answers, reasons = [], []
    for source in access.sources:
        found = _ASKED[source](file, access)
        if isinstance(found, str):
            reasons.append(found)
        else:
            answers.append(set(found))
        if access.combine == "first" and answers:
            break
    if not answers or (access.combine == "all" and reasons):
        return Permissions((), "; ".join(reasons))
    combined = set.intersection(*answers) if access.combine == "all" else set.union(*answers)
    return Permissions(tuple(sorted(combined)))


def _by_rules(file: SourceFile, access: AccessPolicy) -> tuple[str, ...] | str:
    rule = next((rule for rule in access.rules if rule.covers(file.path)), None)
    return rule.principals if rule else "no access rule covers it"


def _by_posix(file: SourceFile, access: AccessPolicy) -> tuple[str, ...] | str:
    if file.permissions is None:
        return "it has no POSIX owner and mode (not a local file)"
    owner, group, mode = file.permissions.rsplit(":", 2)
    mode = int(mode, 8)
    readers = [(stat.S_IRUSR, owner), (stat.S_IRGRP, group), (stat.S_IROTH, PUBLIC)]
    return tuple(name for bit, name in readers if mode & bit and not name.isdigit())  # an unnamed id is no role


def _by_metadata(file: SourceFile, access: AccessPolicy) -> tuple[str, ...] | str:
    value = json.loads(file.metadata or "{}").get(access.metadata_field)
    if value is None:
        return f"its metadata has no `{access.metadata_field}`"
    try:
        return principal_names(value, f"its metadata's `{access.metadata_field}`")
    except ConfigurationError as error:
        return str(error)


_ASKED = {"rules": _by_rules, "posix": _by_posix, "metadata": _by_metadata}
