"""The PostgreSQL resource: the database's settings as Dagster config, and connections (storage/database.py)."""

from __future__ import annotations

import dagster as dg
import psycopg
from pydantic import Field

from embed_pipelines.core.settings import DSN_ENV
from embed_pipelines.storage.connect import Limits
from embed_pipelines.storage.database import Database


class PostgresResource(dg.ConfigurableResource):
    """Connections with pgvector types registered; the DSN is read from the named variable when one opens."""

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

    def database(self) -> Database:
        limits = Limits(self.connect_timeout_s, self.statement_timeout_s, self.connect_attempts)
        return Database(self.dsn_env_var, self.embedded_data_dir, limits)

    def connect(self, ddl: bool = True) -> psycopg.Connection:
        return self.database().connect(ddl)
