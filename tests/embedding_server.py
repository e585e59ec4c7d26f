"""A real OpenAI-compatible embedding server on 127.0.0.1 (infinity-emb 0.0.78), serving a local model folder, and
a small proxy in front of it that injects the faults a served model meets (throttling, 5xx bursts, resets, slow
answers, refused inputs).

infinity-emb pins numpy<2 and sentence-transformers<4, so it lives in its own virtual environment, built once
(about 2 minutes) under EMBED_PIPELINES_TEST_CACHE (default ~/.cache/embed-pipelines-tests) and reused.
"""

from __future__ import annotations

import fcntl
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

INFINITY = "infinity-emb[server,torch]==0.0.78"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def infinity_command() -> Path:
    """The infinity_emb executable of its own virtual environment, built on first use."""
    cache = Path(os.environ.get("EMBED_PIPELINES_TEST_CACHE", "~/.cache/embed-pipelines-tests")).expanduser()
    venv = cache / "infinity-0.0.78"
    executable = venv / "bin" / "infinity_emb"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "infinity.lock").open("w") as lock:  # one build, whichever test process comes first
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not executable.exists():
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", INFINITY],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
    return executable


class EmbeddingServer:
    """infinity serving `folder` under `name` at http://127.0.0.1:<port>/v1, offline, on the CPU."""

    def __init__(self, folder: Path, name: str, port: int | None = None):
        self.folder, self.name, self.port = folder, name, port or _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"}
        command = [str(infinity_command()), "v2", "--model-id", str(folder), "--served-model-name", name]
        command += ["--url-prefix", "/v1", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--engine", "torch", "--device", "cpu", "--no-bettertransformer"]
        self.process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{self.base_url}/models", timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.process.kill()
                    raise RuntimeError(
                        f"infinity did not start: {self.process.stderr.read().decode()[-2000:]}"
                    ) from None
                time.sleep(0.3)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


class FaultProxy:
    """An HTTP proxy to `upstream` whose next requests meet the faults queued with `then`: a (status, headers,
    body) answer, "reset" (the connection closes unanswered), or a delay in seconds before forwarding. A request
    with an input holding one of `refused` (substrings) is answered 400, every time. It records every forwarded
    request's inputs and status."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.faults: list[tuple[int, dict, bytes] | str | float] = []
        self.refused: set[str] = set()
        self.forwarded: list[tuple[list[str], int]] = []  # (inputs, upstream status)
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._forward(b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = json.loads(body or b"{}")
                inputs = request.get("input") or []
                inputs = [inputs] if isinstance(inputs, str) else inputs
                if any(marker in text for marker in proxy.refused for text in inputs):
                    return self._answer(400, {}, json.dumps({"error": {"message": "input too long"}}).encode())
                with proxy.lock:
                    fault = proxy.faults.pop(0) if proxy.faults else None
                if fault == "reset":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if isinstance(fault, int | float):
                    time.sleep(fault)
                elif isinstance(fault, tuple):
                    return self._answer(*fault)
                status = self._forward(body)
                with proxy.lock:
                    proxy.forwarded.append((inputs, status))

            def _forward(self, body: bytes) -> int:
                upstream = urllib.request.Request(
                    proxy.upstream + self.path.removeprefix("/v1"),
                    data=body or None,
                    headers={"content-type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(upstream, timeout=60) as answer:
                        self._answer(answer.status, {}, answer.read())
                        return answer.status
                except urllib.error.HTTPError as error:
                    self._answer(error.code, {}, error.read())
                    return error.code

            def _answer(self, status: int, headers: dict, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def then(self, *faults) -> None:
        with self.lock:
            self.faults += list(faults)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
