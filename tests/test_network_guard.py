"""The guard in conftest.py really catches a connection to another machine (and lets local ones through)."""

import socket

import pytest


def test_a_remote_connection_is_caught(no_network):
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("192.0.2.1", 443), timeout=0.5)  # TEST-NET-1: never routable
    with pytest.raises(ConnectionRefusedError):
        socket.getaddrinfo("huggingface.co", 443)
    assert len(no_network.attempts) == 2
    no_network.attempts.clear()  # the guard did its job; do not fail this test for it


def test_local_postgres_is_allowed(postgres, no_network):
    with postgres.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert no_network.attempts == []
