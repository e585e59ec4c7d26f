"""PostgreSQL with pgvector: a server named by a DSN in the environment, else an embedded one. The DSN is read
from the environment when a connection opens, so it never enters config, logs or metadata."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from pgvector.psycopg import register_vector

from embed_pipelines.core.settings import DSN_ENV, home_dir
from embed_pipelines.storage.connect import Limits, connect
from embed_pipelines.storage.embedded_server import embedded_server_uri
from embed_pipelines.storage.registry import ensure_registry

# Databases this process has given pgvector and the registry (kept in memory only: a DSN may hold a secret).
_PREPARED: set[str] = set()


@dataclass(frozen=True)
class Database:
    dsn_env_var: str = DSN_ENV
    embedded_data_dir: str = ""  # empty: <EMBED_PIPELINES_HOME>/pgdata
    limits: Limits = field(default_factory=Limits)

    def uri(self) -> str:
        dsn = os.environ.get(self.dsn_env_var)
        if dsn:
            return dsn
        return embedded_server_uri(Path(self.embedded_data_dir or home_dir() / "pgdata").expanduser())

    def connect(self, ddl: bool = True) -> psycopg.Connection:
        """A connection to a database that has pgvector and the version registry. Without `ddl` (search,
        listing versions) nothing is created, so a role with SELECT only can read."""
        uri = self.uri()
        source = f"${self.dsn_env_var}" if os.environ.get(self.dsn_env_var) else "the embedded server"
        conn = connect(uri, source, self.limits)
        if ddl and uri not in _PREPARED:  # DDL once per process and database, not on every search
            with conn.transaction():  # two first syncs at once: one creates the extension, the other waits
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('embed_pipelines_setup'))")
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            ensure_registry(conn)
            _PREPARED.add(uri)
        register_vector(conn)
        return conn
