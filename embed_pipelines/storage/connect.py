"""Connections that fail in bounded time and never say a secret: timeouts on connect and on statements, TCP
keepalives (a black-holed host otherwise hangs a run forever), a few retries with backoff for a server that
is restarting, and errors with the password taken out (libpq quotes a malformed DSN, password included)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict

from embed_pipelines.core.settings import ConfigurationError

KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


@dataclass(frozen=True)
class Limits:
    connect_timeout_s: int = 10
    statement_timeout_s: int = 3600  # 0: none
    connect_attempts: int = 3  # a refused or dropped connection is tried again, after 0.5 s, 1 s, 2 s ...


def redact(text: str, secrets: list[str]) -> str:
    """`text` without any of the secrets, nor any word of them (libpq quotes a DSN from where it stopped
    understanding it, which may be the middle of a password)."""
    pieces = {secret for secret in secrets if secret} | {
        word for secret in secrets for word in secret.split() if len(word) >= 3
    }
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, "***")
    return text


def connect(dsn: str, source: str, limits: Limits) -> psycopg.Connection:
    """An autocommit connection. `source` says where the DSN came from (an environment variable), for the
    messages; neither the DSN nor its password appears in them."""
    failure = None
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        failure = (
            f"the DSN in {source} cannot be parsed (percent-encode characters such as %, @ or spaces in the "
            "password); it is not shown here because it may hold a password"
        )
    if failure:  # raised outside the handler, so that no traceback carries libpq's message
        raise ConfigurationError(failure)
    secrets = [dsn, str(params.get("password") or "")]
    settings = {**KEEPALIVES, "connect_timeout": limits.connect_timeout_s, **params}
    if limits.statement_timeout_s:
        timeout = f"-c statement_timeout={limits.statement_timeout_s * 1000}"
        settings["options"] = f"{params['options']} {timeout}" if params.get("options") else timeout
    for attempt in range(limits.connect_attempts):
        if attempt:
            time.sleep(0.5 * 2 ** (attempt - 1))
        try:
            return psycopg.connect(autocommit=True, **settings)
        except psycopg.OperationalError as error:
            failure = redact(str(error), secrets).strip()
    raise psycopg.OperationalError(
        f"cannot connect to PostgreSQL ({source}) after {limits.connect_attempts} attempts: {failure}"
    )
