"""PostgreSQL with pgvector: a server named by a DSN in the environment, else an embedded one."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import psycopg
from pgvector.psycopg import register_vector
from pydantic import Field

from embed_pipelines.settings import DSN_ENV, home_dir
from embed_pipelines.storage.connect import Limits, connect
from embed_pipelines.storage.embedded_server import embedded_server_uri
from embed_pipelines.storage.registry import ensure_registry

# Databases this process has given pgvector and the registry (kept in memory only: a DSN may hold a secret).
_PREPARED: set[str] = set()


class PostgresResource(dg.ConfigurableResource):
    """Connections with pgvector types registered.

    The DSN is read from the environment when a connection opens, so it never enters Dagster config,
    logs or metadata.
    """

    dsn_env_var: str = Field(
        default=DSN_ENV, description="Environment variable holding the DSN of a PostgreSQL server."
    )
    embedded_data_dir: str = Field(
        default="",
        description="Data directory of the embedded server used when the DSN is unset; "
        "empty means <EMBED_PIPELINES_HOME>/pgdata.",
    )
    connect_timeout_s: int = Field(default=Limits.connect_timeout_s, description="Seconds a connection may take.")
    statement_timeout_s: int = Field(
        default=Limits.statement_timeout_s,
        description="Seconds a statement may run (an HNSW build is one); 0: no limit.",
    )
    connect_attempts: int = Field(
        default=Limits.connect_attempts, description="Tries to connect (with backoff) before a run fails."
    )

    def _uri(self) -> str:
        dsn = os.environ.get(self.dsn_env_var)
        if dsn:
            return dsn
        return embedded_server_uri(Path(self.embedded_data_dir or home_dir() / "pgdata").expanduser())

    def connect(self, ddl: bool = True) -> psycopg.Connection:
        """A connection to a database that has pgvector and the version registry. Without `ddl` (search,
        listing versions) nothing is created, so a role with SELECT only can read."""
        uri = self._uri()
        limits = Limits(self.connect_timeout_s, self.statement_timeout_s, self.connect_attempts)
        source = f"${self.dsn_env_var}" if os.environ.get(self.dsn_env_var) else "the embedded server"
        conn = connect(uri, source, limits)
        if ddl and uri not in _PREPARED:  # DDL once per process and database, not on every search
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            ensure_registry(conn)
            _PREPARED.add(uri)
        register_vector(conn)
        return conn
