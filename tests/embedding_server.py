"""A real OpenAI-compatible embedding server on 127.0.0.1 (infinity-emb 0.0.78), serving a local model folder, and
a small proxy in front of it that injects the faults a served model meets (throttling, 5xx bursts, resets, slow
answers, refused inputs).

infinity-emb pins numpy<2 and sentence-transformers<4, so it lives in its own virtual environment, built once
(about 2 minutes) under EMBED_PIPELINES_TEST_CACHE (default ~/.cache/embed-pipelines-tests) and reused.
"""

from __future__ import annotations

import fcntl
import functools
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


TEI_MAX_CLIENT_BATCH = 32  # text-embeddings-inference's --max-client-batch-size default


@functools.cache
def _tokenizer(folder: Path):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_truncation()  # counts, like the servers' /tokenize
    tokenizer.no_padding()
    return tokenizer


class FaultProxy:
    """An HTTP proxy to `upstream` whose next requests meet the faults queued with `then`: a (status, headers,
    body) answer, "reset" (the connection closes unanswered), or a delay in seconds before forwarding. A request
    with an input holding one of `refused` (substrings) is answered 400, every time. It records every forwarded
    request's inputs and status.

    With `tokenize=(shape, folder)` it also answers `POST /tokenize` as text-embeddings-inference ("tei") or
    vLLM ("vllm") would, with the tokenizer of the served model's folder, and TEI's default limit of 32 inputs a
    request (413 past it). A stand-in: infinity has no
    /tokenize, and neither TEI (a Rust server) nor vLLM (CUDA builds) runs on this machine."""

    def __init__(self, upstream: str, tokenize: tuple[str, Path] | None = None):
        self.upstream = upstream.rstrip("/")
        self.tokenize_requests = 0
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
                if self.path == "/tokenize":
                    return self._answer(*tokenize_answer(request))
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

        def tokenize_answer(request: dict) -> tuple[int, dict, bytes]:
            with proxy.lock:
                proxy.tokenize_requests += 1
            if tokenize is None:
                return 404, {}, b'{"detail": "Not Found"}'
            shape, folder = tokenize
            tokenizer = _tokenizer(folder)
            special = request.get("add_special_tokens", True)
            if shape == "tei" and "inputs" in request:
                inputs = [request["inputs"]] if isinstance(request["inputs"], str) else request["inputs"]
                if len(inputs) > TEI_MAX_CLIENT_BATCH:
                    return 413, {}, b'{"error": "batch size > 32", "error_type": "validation"}'
                encodings = tokenizer.encode_batch(inputs, add_special_tokens=special)
                answer = [[{"id": token, "special": False} for token in found.ids] for found in encodings]
            elif shape == "vllm" and isinstance(request.get("prompt"), str):
                ids = tokenizer.encode(request["prompt"], add_special_tokens=special).ids
                answer = {"count": len(ids), "max_model_len": 512, "tokens": ids}
            else:
                return 422, {}, b'{"error": "unprocessable request"}'
            return 200, {}, json.dumps(answer).encode()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def then(self, *faults) -> None:
        with self.lock:
            self.faults += list(faults)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
