"""Token counts from the embedding server itself: text-embeddings-inference and vLLM answer `POST /tokenize` (at
the server's root, beside /v1) with the tokens their model sees, so chunks are sized by the model's own
tokenizer without a copy of it on this machine.

The two shapes differ: TEI takes a batch (`{"inputs": [...]}`, at most its client batch size, a list of token
lists back), vLLM one prompt per request (`{"prompt": ...}`, `{"tokens": [...]}` back). Which one the server
speaks is found once, with a short text that neither refuses for its length.
Counts are remembered per text: docling's chunker asks about the same windows again and again. Chunks are
sized without special tokens (as docling counts with a local tokenizer), requests with them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Literal

from embed_pipelines.core import settings
from embed_pipelines.core.settings import ConfigurationError

if TYPE_CHECKING:
    import httpx

_REMEMBERED = 200_000  # texts whose counts are kept; past that the memory starts again
_NOT_THIS_SHAPE = frozenset({400, 404, 405, 422})
_SHAPE_PROBE = "How many tokens?"


class ServerTokenizer:
    """The `/tokenize` of the server at `base_url` (its OpenAI root, `.../v1`)."""

    def __init__(
        self, base_url: str, model: str, api_key_env: str, timeout_s: float, concurrency: int, batch_inputs: int
    ):
        self.root = base_url.rstrip("/").removesuffix("/v1")
        self.model, self.api_key_env, self.timeout_s = model, api_key_env, timeout_s
        self.concurrency, self.batch_inputs = concurrency, batch_inputs
        self.shape: Literal["tei", "vllm"] | None = None
        self._counts: dict[bool, dict[str, int]] = {True: {}, False: {}}
        self._http: httpx.Client | None = None
        self._pid = 0

    def count_tokens(self, text: str) -> int:
        """As docling's chunker counts: without special tokens."""
        return self.counts([text], special=False)[0]

    def counts(self, texts: list[str], special: bool = True) -> list[int]:
        known = self._counts[special]
        missing = [text for text in dict.fromkeys(texts) if text not in known]
        if missing:
            if len(known) > _REMEMBERED:
                known.clear()
            known.update(zip(missing, map(len, self.token_ids(missing, special)), strict=True))
        return [known[text] for text in texts]

    def token_ids(self, texts: list[str], special: bool = True) -> list[list[int]]:
        """The ids the server's tokenizer gives each text."""
        if self.shape is None:
            self.shape = self._find_shape()
        size = self.batch_inputs if self.shape == "tei" else 1
        groups = [texts[start : start + size] for start in range(0, len(texts), size)]
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="tokenize") as pool:
            return [ids for answer in pool.map(lambda group: self._ids(group, special), groups) for ids in answer]

    def _ids(self, texts: list[str], special: bool) -> list[list[int]]:
        """One request: TEI's for a group of texts, vLLM's for one."""
        if self.shape == "tei":
            answer = self._post({"inputs": texts, "add_special_tokens": special}).json()
            return [[token["id"] for token in tokens] for tokens in answer]
        return [self._post({**self._vllm_request(texts[0]), "add_special_tokens": special}).json()["tokens"]]

    def _find_shape(self) -> Literal["tei", "vllm"]:
        for shape, request in (("tei", {"inputs": [_SHAPE_PROBE]}), ("vllm", self._vllm_request(_SHAPE_PROBE))):
            answer = self._post(request, passing=_NOT_THIS_SHAPE)
            if answer.status_code not in _NOT_THIS_SHAPE:
                return shape
        raise ConfigurationError(
            f"the embedding server at {self.root} has no /tokenize that text-embeddings-inference or vLLM would "
            f"answer ({answer.status_code}): name a local tokenizer folder, or none for a character budget"
        )

    def _vllm_request(self, text: str) -> dict:
        return {"model": self.model, "prompt": text}

    def _post(self, request: dict, passing: frozenset[int] = frozenset()) -> httpx.Response:
        """The server's answer; an error answer raises unless its status is `passing`."""
        import httpx

        try:
            answer = self._client().post(f"{self.root}/tokenize", json=request)
        except httpx.HTTPError as error:
            raise ConfigurationError(f"the embedding server's /tokenize at {self.root} failed: {error}") from None
        if answer.is_error and answer.status_code not in passing:
            raise ConfigurationError(f"the embedding server's /tokenize at {self.root} answered {answer.status_code}")
        return answer

    def _client(self) -> httpx.Client:
        """One per process: a chunking worker opens its own connections."""
        import httpx

        if self._http is None or self._pid != os.getpid():
            key = settings.api_key(self.api_key_env)
            headers = {"authorization": f"Bearer {key}"} if key else {}
            transport = httpx.HTTPTransport(retries=3)
            self._http = httpx.Client(headers=headers, timeout=self.timeout_s, transport=transport)
            self._pid = os.getpid()
        return self._http
