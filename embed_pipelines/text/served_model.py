"""An embedding server as the text model: anything that speaks OpenAI's `/v1/embeddings` (text-embeddings-
inference, vLLM, Ollama, infinity, OpenAI, Azure OpenAI, Voyage, Mistral ...), through the `openai` client.

The client does what a served model needs and is easy to get wrong by hand: retries with exponential backoff
and jitter on 408/409/429/5xx, timeouts and dropped connections, honouring `Retry-After`; no retry on a
400. Batches are cut by tokens and by inputs within the server's limits, `max_concurrency` requests in flight.
A batch the server refuses for good is split until the input it refuses is found: that input fails alone.

A served model's index version is not its name: the name the server reports, the dimension, prefixes and
normalisation, and the vectors of fixed probe texts (`PROBES`), matched within a tolerance against the probes
of versions made before. The probes are recorded in PostgreSQL, which this floor never reaches: the model is
given a `ProbeRegistry` (versions/probes.py) that identifies it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from embed_pipelines.core import settings
from embed_pipelines.core.fingerprints import Versions, cached_facts
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.text.chunking import DocumentChunker, chunker_settings
from embed_pipelines.text.local_model import _load_tokenizer
from embed_pipelines.text.model import InputsRefused
from embed_pipelines.text.server_tokenizer import ServerTokenizer

if TYPE_CHECKING:
    import httpx
    import openai


class ServerFailed(Exception):
    """The server did not answer a batch after every retry: the run fails, nothing of the batch is written."""


class BudgetExceeded(Exception):
    """A sync would send more tokens than its max_tokens_per_sync."""


PROBES = (
    "The quick brown fox jumps over the lazy dog.",
    "How do I rotate the API keys of a production database?",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "Der Vertrag kann mit einer Frist von drei Monaten gekündigt werden.",
    "Quarterly revenue grew 12 % while operating costs fell.",
    "a",
    "Beekeepers inspect the brood frames every week in spring.",
)


PROBE_CHECK_INTERVAL_S = 300  # how long a search process trusts a served model's last probe check
_probes_checked: dict[tuple[str, str], float] = {}  # (settings, version) -> when the probes last matched


class ProbeRegistry(Protocol):
    """Where the probes of earlier versions are recorded (versions/probes.py)."""

    def identify(self, model: ServedEmbeddingModel) -> dict:
        """The model's facts: its index version (recorded, or new), dimension, normalisation, reported name."""

    def check(self, model: ServedEmbeddingModel, facts: dict) -> None:
        """Raises ConfigurationError when the server no longer computes the version's probes."""

    def check_version(self, model: ServedEmbeddingModel, version: str) -> None:
        """The same, for a version known by name alone (search: read only)."""


@dataclass
class ServerCalls:
    """What a process asked of a server: the run's metadata and the plan's throughput come from here."""

    requests: int = 0  # HTTP attempts, retries included
    retries: int = 0
    throttled: int = 0  # 429 answers
    throttle_wait_s: float = 0.0  # what their Retry-After asked for
    inputs: int = 0
    tokens: int = 0  # as counted for batching (the tokenizer, or the character budget)
    seconds: float = 0.0  # wall time inside embedding calls
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def figures(self) -> dict:
        names = ("requests", "retries", "throttled", "throttle_wait_s", "inputs", "tokens", "seconds")
        return {name: round(getattr(self, name), 3) for name in names}


@dataclass(frozen=True)
class _Client:
    openai: openai.OpenAI
    calls: ServerCalls


@cache
def _client(base_url: str, api_key_env: str, timeout_s: float, max_retries: int) -> _Client:
    """One client per server and settings in a process; the key is read from the environment here and kept
    nowhere else (not in config, metadata, logs or errors)."""
    import httpx
    import openai

    calls = ServerCalls()

    def on_response(response: httpx.Response) -> None:
        with calls.lock:
            calls.requests += 1
            if response.status_code == 429:
                calls.throttled += 1
                calls.throttle_wait_s += _retry_after(response)

    def on_request(request: httpx.Request) -> None:
        if request.headers.get("x-stainless-retry-count", "0") != "0":
            with calls.lock:
                calls.retries += 1

    key = settings.api_key(api_key_env) or "not-needed"  # the client insists on one
    http = httpx.Client(event_hooks={"request": [on_request], "response": [on_response]}, timeout=timeout_s)
    client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout_s, max_retries=max_retries, http_client=http)
    return _Client(client, calls)


def _retry_after(response: httpx.Response) -> float:
    try:
        return float(response.headers.get("retry-after", 0))
    except ValueError:  # an HTTP date: counted as a throttle, its wait unknown
        return 0.0


class ServedEmbeddingModel(BaseModel):
    """A text embedding model behind an OpenAI-compatible `/v1/embeddings` endpoint."""

    model_config = ConfigDict(frozen=True, validate_default=True)  # one type per value, however it was made

    provider: Literal["openai_compatible"] = "openai_compatible"
    base_url: str = Field(description="The server's OpenAI-compatible root, e.g. http://tei:8080/v1.")
    model: str = Field(description="The model name the server serves.")
    dimensions: int | None = Field(default=None, description="Ask for shortened vectors (Matryoshka models).")
    api_key_env: str = Field(default="", description="The environment variable holding the API key, if any.")
    query_prefix: str = Field(default="", description="Prepended to questions (e.g. 'query: ').")
    document_prefix: str = Field(default="", description="Prepended to chunks (e.g. 'passage: ').")
    tokenizer: str = Field(
        default="",
        description="What sizes chunks and batches: a local tokenizer folder, 'server' for the server's own "
        "/tokenize (text-embeddings-inference, vLLM), or nothing, with chars_per_token, for a character budget.",
    )
    chunk_tokens: int = Field(default=256, description="Tokens a chunk may hold.")
    chars_per_token: float | None = Field(
        default=None,
        gt=0,
        description="Without a tokenizer, and then required: characters counted as a token (an estimate, 4 for "
        "English prose; chunks of denser text may run past the model's window, which servers cut without a word).",
    )
    max_batch_tokens: int = Field(default=8192, description="Tokens of one request, at most.")
    max_batch_inputs: int = Field(default=64, description="Inputs of one request, at most.")
    max_concurrency: int = Field(default=4, description="Requests in flight.")
    timeout_s: float = Field(default=60, description="A request that takes longer is retried.")
    max_retries: int = Field(default=5, description="Retries of a request on 429, 5xx, timeouts and resets.")
    encoding_format: Literal["base64", "float"] = Field(default="base64", description="float where base64 fails.")
    price_per_million_tokens: float | None = Field(default=None, description="For the plan's cost estimate.")
    tokens_per_second: float | None = Field(default=None, description="For the plan's time estimate.")
    max_tokens_per_sync: int | None = Field(default=None, description="A sync stops before sending more.")

    _registry: ProbeRegistry | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _counting_is_chosen(self) -> ServedEmbeddingModel:
        """How chunks are counted is a choice, not a silent default: the character estimate makes other chunks
        than the model's own tokenizer (553 against 641 for 17 tutorial pages) and may overrun its window."""
        if not self.tokenizer and self.chars_per_token is None:
            raise ValueError(
                "say how chunks are counted: `tokenizer:` (a local tokenizer folder, or 'server' for the "
                "server's /tokenize), or `chars_per_token:` (an estimate, e.g. 4 for English prose)"
            )
        if self.tokenizer and self.chars_per_token is not None:
            raise ValueError("`chars_per_token` counts only without a tokenizer: set one of the two")
        return self

    def identified_by(self, registry: ProbeRegistry) -> ServedEmbeddingModel:
        """The registry that tells which index version the server's probes reproduce."""
        self._registry = registry
        return self

    def _probes(self) -> ProbeRegistry:
        if self._registry is None:
            raise ConfigurationError(
                "a served model's index version is found by its probes, recorded in PostgreSQL: make it with "
                "embed_pipelines.pipeline.families.text_model, which gives it the registry"
            )
        return self._registry

    @property
    def calls(self) -> ServerCalls:
        return self._client().calls

    def _client(self) -> _Client:
        return _client(self.base_url, self.api_key_env, self.timeout_s, self.max_retries)

    # what the pipeline asks of a text model

    @property
    def dimension(self) -> int:
        return self.facts()[0]["dimension"]

    def normalizes(self) -> bool:
        return self.facts()[0]["normalizes"]

    def trained_for_prefixes(self) -> bool:
        """Not said by a server: ask it for shortened vectors instead (`dimensions:`, part of the version)."""
        return False

    def usage(self) -> dict[str, float]:
        """What this process has asked of the server so far (the asset reports a run's difference)."""
        return self.calls.figures()

    def estimate(self, texts: list[str]) -> dict[str, float]:
        """Tokens and requests to embed `texts`; seconds and money where a throughput and a price are set."""
        prefixed = [self.document_prefix + text for text in texts]
        counts = self.count_tokens(prefixed) if texts else []
        tokens = sum(counts)
        figures = {"tokens": tokens, "requests": len(self._cut(counts))}
        if self.tokens_per_second:
            figures["seconds"] = tokens / self.tokens_per_second
        if self.price_per_million_tokens is not None:
            figures["cost"] = tokens / 1e6 * self.price_per_million_tokens
        return figures

    def within_budget(self, spent: int, texts: list[str]) -> int:
        """The tokens a sync has sent once `texts` are sent too; raises instead when that passes
        max_tokens_per_sync, before anything is sent."""
        wanted = sum(self.count_tokens([self.document_prefix + text for text in texts]))
        if self.max_tokens_per_sync is not None and spent + wanted > self.max_tokens_per_sync:
            raise BudgetExceeded(
                f"embedding {wanted:,} more tokens would pass this sync's max_tokens_per_sync of "
                f"{self.max_tokens_per_sync:,} ({spent:,} sent so far): nothing more was sent; the documents "
                "not embedded keep their last vectors until a later sync"
            )
        return spent + wanted

    def chunk_token_limit(self) -> int:
        return self.chunk_tokens

    def chunker(self) -> DocumentChunker:
        return DocumentChunker(self._tokenizer(), self.chunk_tokens, count_tokens=self._count_one)

    def chunker_version(self) -> str:
        return self.facts()[0]["chunker_version"]

    def measure_chunker_version(self) -> str:
        """The chunker's settings and how it counts: the tokenizer's files, the token ids the server's
        /tokenize gives the probe texts, or the character budget."""
        from embed_pipelines.core.fingerprints import index_version

        return index_version({**chunker_settings(self.chunk_tokens), "tokenizer": self._counting()})

    def _counting(self) -> dict:
        if self.tokenizer == "server":
            ids = self._server_tokenizer().token_ids(list(PROBES))
            return {"server_tokenize": hashlib.sha256(json.dumps(ids).encode()).hexdigest()}
        return self._tokenizer_files() or {"chars_per_token": self.chars_per_token}

    def index_version(self) -> str:
        return self.facts()[0]["version"]

    def versions(self) -> Versions:
        return Versions(self.index_version(), self.chunker_version())

    def query_settings(self) -> dict:
        """Everything but cost figures: search embeds questions through the same server and settings."""
        return self.model_dump(exclude={"price_per_million_tokens", "tokens_per_second"})

    def embed_query(self, question: str) -> np.ndarray:
        return self._embed([self.query_prefix + question])[0]

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._embed([self.document_prefix + text for text in texts])

    def count_tokens(self, texts: list[str]) -> list[int]:
        """As batches are cut: by the tokenizer when there is one, else by the character budget."""
        if self.tokenizer == "server":
            return self._server_tokenizer().counts(texts)
        tokenizer = self._tokenizer()
        if tokenizer is None:
            return [math.ceil(len(text) / self.chars_per_token) for text in texts]
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]]

    def _count_one(self, text: str) -> int:
        """As docling's chunker counts with a local tokenizer: without special tokens."""
        if self.tokenizer == "server":
            return self._server_tokenizer().count_tokens(text)
        return self.count_tokens([text])[0]

    # identity

    def facts(self) -> tuple[dict, Path]:
        """The server's model as it says and shows itself (see versions/probes.py), cached per settings so a
        run loads without asking the server; `verify_identity` checks it before anything is embedded."""
        served = self.model_dump(exclude={"price_per_million_tokens", "tokens_per_second"})
        key = {"served": served, "facts": 2}  # 2: the facts hold the chunker's version too
        return cached_facts(settings.fingerprint_cache(), key, self._measure_facts)

    def _measure_facts(self) -> dict:
        return self._probes().identify(self)

    def verify_serves(self, version: str) -> None:
        """Before a question is embedded for `version`'s vectors: the server still computes that version's
        probes (asked once per process and settings every PROBE_CHECK_INTERVAL_S)."""
        key = (json.dumps(self.query_settings(), sort_keys=True), version)
        if time.monotonic() - _probes_checked.get(key, -math.inf) > PROBE_CHECK_INTERVAL_S:
            self._probes().check_version(self, version)
            _probes_checked[key] = time.monotonic()

    def verify_files(self) -> None:
        """No file of it is here: the server's probes (`verify_identity`) say whether it serves the version."""

    def warm(self) -> None:
        """Nothing is loaded here; the connections open on the first request."""

    def verify_identity(self) -> None:
        """Once a sync, before its first vector: the server still serves the model of the configured version."""
        facts, cache_file = self.facts()
        try:
            self._probes().check(self, facts)
        except ConfigurationError:
            cache_file.unlink(missing_ok=True)  # the next run identifies the server again
            raise

    # the requests

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Vectors of `texts` in order; raises InputsRefused (with the others' vectors) for refused inputs."""
        started = time.perf_counter()
        batches = self._batches(texts)
        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="embed") as pool:
            results = list(pool.map(lambda rows: self._embed_rows(texts, rows), batches))
        vectors: dict[int, np.ndarray] = {}
        refused: dict[int, str] = {}
        for found, reasons in results:
            vectors |= found
            refused |= reasons
        calls = self.calls
        with calls.lock:
            calls.seconds += time.perf_counter() - started
        dimension = len(next(iter(vectors.values()))) if vectors else (self.dimensions or 1)
        out = np.full((len(texts), dimension), np.nan, dtype=np.float32)
        for row, vector in vectors.items():
            out[row] = vector
        if refused:
            raise InputsRefused(refused, out)
        return out

    def _batches(self, texts: list[str]) -> list[list[int]]:
        counts = self.count_tokens(texts)
        calls = self.calls
        with calls.lock:
            calls.inputs += len(texts)
            calls.tokens += sum(counts)
        return self._cut(counts)

    def _cut(self, counts: list[int]) -> list[list[int]]:
        """Rows in order, cut where the next one would pass max_batch_tokens or max_batch_inputs."""
        batches: list[list[int]] = []
        current: list[int] = []
        tokens = 0
        for row, count in enumerate(counts):
            if current and (tokens + count > self.max_batch_tokens or len(current) >= self.max_batch_inputs):
                batches.append(current)
                current, tokens = [], 0
            current.append(row)
            tokens += count
        if current:
            batches.append(current)
        return batches

    def _embed_rows(self, texts: list[str], rows: list[int]) -> tuple[dict[int, np.ndarray], dict[int, str]]:
        """One request; a batch refused for good is split until the refused input is alone."""
        import openai

        try:
            return dict(zip(rows, self._request([texts[row] for row in rows]), strict=True)), {}
        except openai.BadRequestError as error:
            if len(rows) == 1:
                return {}, {rows[0]: f"the server refused it: {_reason(error)}"}
            half = len(rows) // 2
            first, second = self._embed_rows(texts, rows[:half]), self._embed_rows(texts, rows[half:])
            return first[0] | second[0], first[1] | second[1]

    def _request(self, inputs: list[str]) -> list[np.ndarray]:
        return self.answer(inputs)[0]

    def answer(self, inputs: list[str]) -> tuple[list[np.ndarray], str]:
        """One request: the vectors in input order, and the model name the server says made them."""
        import openai

        options = {"dimensions": self.dimensions} if self.dimensions else {}
        try:
            response = self._client().openai.embeddings.create(
                model=self.model, input=inputs, encoding_format=self.encoding_format, **options
            )
        except (openai.APIConnectionError, openai.APIStatusError) as error:
            if isinstance(error, openai.BadRequestError):
                raise
            raise ServerFailed(f"the embedding server at {self.base_url} failed: {_reason(error)}") from None
        ordered = sorted(response.data, key=lambda item: item.index)
        return [_vector(item.embedding) for item in ordered], response.model

    def _tokenizer(self):
        """The local tokenizer, where a folder is named."""
        if self.tokenizer in ("", "server"):
            return None
        return _load_tokenizer(Path(self.tokenizer).expanduser().resolve())

    def _server_tokenizer(self) -> ServerTokenizer:
        return _server_tokenizer(
            self.base_url, self.model, self.api_key_env, self.timeout_s, self.max_concurrency, self.max_batch_inputs
        )

    def _tokenizer_files(self) -> dict[str, str]:
        if self.tokenizer in ("", "server"):
            return {}
        from embed_pipelines.core.fingerprints import TOKENIZER_FILES, model_fingerprint

        files = model_fingerprint(Path(self.tokenizer).expanduser().resolve(), settings.fingerprint_cache())
        return {name: digest for name, digest in files.items() if name in TOKENIZER_FILES}


_server_tokenizer = cache(ServerTokenizer)  # one per server and settings in a process: its counts are kept


def _vector(embedding) -> np.ndarray:
    """The client hands base64 over as a string (servers differ), floats as a list."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype=np.float32).copy()
    return np.asarray(embedding, dtype=np.float32)


def _reason(error: Exception) -> str:
    """What the server said, without the request (which could carry the key in a proxy's echo)."""
    status = getattr(error, "status_code", None)
    message = getattr(error, "message", None) or type(error).__name__
    return f"{status} {message}" if status else message
