"""Where embed-pipelines keeps its files, read from the environment at call time (never at import), and how a
collection setting is declared: once, with its YAML key (the field's name), its environment variable, its
default and its description. The YAML reader, the environment reader, the README's table and the error
messages all derive from that one declaration (see core/config.py)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

# Process-wide settings: where things live, which database, which file declares the collections.
HOME_ENV = "EMBED_PIPELINES_HOME"
STATE_DIR_ENV = "EMBED_PIPELINES_STATE_DIR"
DSN_ENV = "EMBED_PIPELINES_DSN"
CONFIG_ENV = "EMBED_PIPELINES_CONFIG"
COLLECTION_ENV = "EMBED_PIPELINES_COLLECTION"
SOURCE_ENV = "EMBED_PIPELINES_SOURCE"
GOLDEN_QUERIES_ENV = "EMBED_PIPELINES_GOLDEN_QUERIES"  # the sample corpus brings its own when unset

DEFAULT_COLLECTION = "sample"


class ConfigurationError(ValueError):
    """A setting or argument the package refuses, with what to do instead: the CLI prints it in one line."""


Parse = Callable[[Any, str], Any]  # (value as written, where it was written) -> the setting's value


@dataclass(frozen=True)
class Declared:
    """What a collection setting's field declares besides its name (its YAML key) and default."""

    description: str
    env: str  # the environment variable that sets it for the collection the environment describes; "": none
    parse: Parse  # checks the value as written, naming where it was written when it refuses it


def setting(default: Any = dataclasses.MISSING, *, doc: str, parse: Parse, env: str = "", factory=None):
    """A collection setting: a dataclass field whose metadata the readers and the docs walk."""
    metadata = {"setting": Declared(doc, env, parse)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def declared(field: dataclasses.Field) -> Declared | None:
    return field.metadata.get("setting")


# Parsers: each takes the value as YAML or the environment gives it (a string there) and where it came from.


def integer(minimum: int = 1, maximum: int | None = None) -> Parse:
    def parse(value: Any, where: str) -> int:
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit() or not minimum <= int(text) <= (maximum or int(text)):
            bounds = f"from {minimum} to {maximum}" if maximum else f"of at least {minimum}"
            raise ConfigurationError(f"{where} must be an integer {bounds}, not {value!r}")
        return int(text)

    return parse


def share(value: Any, where: str) -> float:
    try:
        if not isinstance(value, bool) and 0 <= float(value) <= 1:
            return float(value)
    except (TypeError, ValueError):
        pass
    raise ConfigurationError(f"{where} must be a share between 0 and 1, not {value!r}")


def choice(options) -> Parse:
    """One of a Literal's values."""

    def parse(value: Any, where: str) -> str:
        if value not in get_args(options):
            raise ConfigurationError(f"{where}: expected one of {get_args(options)}, not {value!r}")
        return value

    return parse


def flag(value: Any, where: str) -> bool:
    """true/false in YAML; 1/0, true/false, yes/no, on/off in the environment."""
    spelled = str(value).strip().lower()
    if isinstance(value, bool) or spelled in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        return value if isinstance(value, bool) else spelled in ("1", "true", "yes", "on")
    raise ConfigurationError(f"{where} must be true or false, not {value!r}")


def text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{where} must be text, not {value!r}")
    return value


def path(value: Any, where: str) -> Path | None:
    """A local path, `~` expanded; empty: none."""
    return Path(text(value, where)).expanduser() if value else None


# Where things live.


def home_dir() -> Path:
    """Root for everything the package writes by default: state, embedded PostgreSQL, Dagster instance."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".embed-pipelines").expanduser()


def state_root() -> str:
    """Where the Parquet state (listings, documents, chunks, vectors) lives by default: a local folder or an
    object-store URL (`s3://bucket/prefix`)."""
    return os.environ.get(STATE_DIR_ENV) or str(home_dir() / "state")


def fingerprint_cache() -> Path:
    """Model weights' content hashes, keyed by local path, size and mtime: this machine's own, never shared."""
    return home_dir() / "fingerprints"


def converted_models() -> Path:
    """Models converted for another runtime (OpenVINO), keyed by what they were converted from."""
    return home_dir() / "converted"


def dagster_home() -> Path:
    """The Dagster instance directory shared by the CLI and `dagster dev`."""
    return Path(os.environ.get("DAGSTER_HOME") or home_dir() / "dagster").expanduser()


def sample_corpus_dir() -> Path:
    return home_dir() / "sample_corpus"


def collection_name(name: str | None) -> str:
    """The collection a call means: the one named, else EMBED_PIPELINES_COLLECTION, else the sample."""
    return name or os.environ.get(COLLECTION_ENV, DEFAULT_COLLECTION)


def api_key(variable: str) -> str:
    """The key in the named variable ("" when none is named); read where a request is made, kept nowhere else
    (not in config, metadata, logs or errors)."""
    key = os.environ.get(variable, "") if variable else ""
    if variable and not key:
        raise ConfigurationError(f"the embedding server's API key is read from ${variable}, which is not set")
    return key
