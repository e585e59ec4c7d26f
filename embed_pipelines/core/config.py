"""Collections from a YAML mapping or from the environment, by walking the settings `Collection` declares:
every key, variable, default, description and error message comes from those declarations, so a setting
added there is readable from both places, listed in the README's table and named in errors."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from embed_pipelines.core.collection import Collection
from embed_pipelines.core.settings import COLLECTION_ENV, STATE_DIR_ENV, ConfigurationError, declared

_log = logging.getLogger(__name__)
_warned: set[str] = set()

# Variables that keep their meaning beside a YAML file: the default collection a command means, and the
# default state root of collections that name none.
_APPLY_BESIDE_YAML = {COLLECTION_ENV, STATE_DIR_ENV}


def _nested(field: dataclasses.Field) -> type | None:
    """The settings class a field holds (promotion, visual), or None for a plain value."""
    parse = declared(field).parse
    return parse if dataclasses.is_dataclass(parse) else None


def from_mapping(kind: type, entry: Any, where: str):
    """`kind` (Collection or one of its nested settings) from a YAML mapping; `where` names it in errors."""
    if not isinstance(entry, Mapping):
        raise ConfigurationError(f"{where}: expected a mapping of settings, not {entry!r}")
    fields = {field.name: field for field in dataclasses.fields(kind)}
    unknown = sorted(set(entry) - set(fields))
    if unknown:
        raise ConfigurationError(f"{where}: unknown settings {unknown}; it takes {sorted(fields)}")
    values = {}
    for name, value in entry.items():
        nested = _nested(fields[name])
        if nested is not None:
            values[name] = None if value is None else from_mapping(nested, value, f"{where}: `{name}`")
        else:
            values[name] = declared(fields[name]).parse(value, f"{where}: `{name}`")
    missing = [name for name, field in fields.items() if name not in values and _required(field)]
    if missing:
        raise ConfigurationError(f"{where}: needs {', '.join(f'`{name}`' for name in missing)}")
    return kind(**values)


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def from_environment(kind: type, given: Mapping[str, Any] | None = None):
    """`kind` from the EMBED_PIPELINES_* variables, `given` values first; None when a required setting is
    in neither (a nested branch such as `visual` is then off)."""
    values = dict(given or {})
    for field in dataclasses.fields(kind):
        if field.name in values:
            continue
        nested, variable = _nested(field), declared(field).env
        if nested is not None:
            value = from_environment(nested)
            if value is not None:
                values[field.name] = value
        elif variable and os.environ.get(variable):
            values[field.name] = declared(field).parse(os.environ[variable], f"${variable}")
        elif _required(field):
            return None
    return kind(**values)


def parse_setting(kind: type, name: str, value: Any, where: str) -> Any:
    """One setting given outside YAML and the environment (a command-line flag), read by its declaration."""
    field = next(field for field in dataclasses.fields(kind) if field.name == name)
    return declared(field).parse(value, where)


def declared_settings(kind: type = Collection, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field]]:
    """(YAML key, field) of every setting, nested ones as `promotion.golden_k`."""
    for field in dataclasses.fields(kind):
        nested = _nested(field)
        if nested is not None:
            yield from declared_settings(nested, f"{prefix}{field.name}.")
        else:
            yield f"{prefix}{field.name}", field


def settings_table() -> str:
    """The README's table of collection settings, derived from the declarations."""
    lines = ["| YAML key | environment variable | default | what it sets |", "| --- | --- | --- | --- |"]
    for key, field in declared_settings():
        if field.default is not dataclasses.MISSING:
            default = f"`{field.default}`" if field.default not in ("", None) else "none"
        else:
            default = "required" if field.default_factory is dataclasses.MISSING else "see description"
        variable = f"`{declared(field).env}`" if declared(field).env else ""
        lines.append(f"| `{key}` | {variable} | {default} | {declared(field).description} |")
    return "\n".join(lines)


def warn_ignored_environment(config: str) -> None:
    """Name, once per process, each collection variable set beside a YAML file: the file's collections take
    their settings from the file alone."""
    for key, field in declared_settings():
        variable = declared(field).env
        if variable and variable not in _APPLY_BESIDE_YAML and os.environ.get(variable) and variable not in _warned:
            _warned.add(variable)
            _log.warning(
                "$%s is set, but the collections of %s take their settings from that file (YAML wins): it "
                "applies only to collections the file does not declare; set `%s` there instead",
                variable,
                config,
                key,
            )
