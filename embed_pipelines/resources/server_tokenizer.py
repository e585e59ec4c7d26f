"""Token counts from the embedding server itself: text-embeddings-inference and vLLM answer `POST /tokenize` (at
the server's root, beside /v1) with the tokens their model sees, so chunks are sized by the model's own
tokenizer without a copy of it on this machine.

The two shapes differ: TEI takes a batch (`{"inputs": [...]}`, a list of token lists back), vLLM one prompt
per request (`{"prompt": ...}`, `{"tokens": [...]}` back). The first answer says which one the server speaks.
Counts are remembered per text: docling's chunker asks about the same windows again and again. Chunks are
sized without special tokens (as docling counts with a local tokenizer), requests with them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Literal

from embed_pipelines.settings import ConfigurationError

if TYPE_CHECKING:
    import httpx

_REMEMBERED = 200_000  # texts whose counts are kept; past that the memory starts again
_NOT_THIS_SHAPE = {400, 404, 405, 422}


class ServerTokenizer:
    """The `/tokenize` of the server at `base_url` (its OpenAI root, `.../v1`)."""

    def __init__(self, base_url: str, model: str, api_key_env: str, timeout_s: float, concurrency: int):
        self.root = base_url.rstrip("/").removesuffix("/v1")
        self.model, self.api_key_env, self.timeout_s, self.concurrency = model, api_key_env, timeout_s, concurrency
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
            self.shape = self._find_shape(texts[0])
        if self.shape == "tei":
            answer = self._post({"inputs": texts, "add_special_tokens": special}).json()
            return [[token["id"] for token in tokens] for tokens in answer]

        def vllm_ids(text: str) -> list[int]:
            return self._post({**self._vllm_request(text), "add_special_tokens": special}).json()["tokens"]

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="tokenize") as pool:
            return list(pool.map(vllm_ids, texts))

    def _find_shape(self, text: str) -> Literal["tei", "vllm"]:
        for shape, request in (("tei", {"inputs": [text]}), ("vllm", self._vllm_request(text))):
            answer = self._post(request, check=False)
            if answer.status_code not in _NOT_THIS_SHAPE:
                answer.raise_for_status()
                return shape
        raise ConfigurationError(
            f"the embedding server at {self.root} has no /tokenize that text-embeddings-inference or vLLM would "
            f"answer ({answer.status_code}): name a local tokenizer folder, or none for a character budget"
        )

    def _vllm_request(self, text: str) -> dict:
        return {"model": self.model, "prompt": text}

    def _post(self, request: dict, check: bool = True) -> httpx.Response:
        import httpx

        try:
            answer = self._client().post(f"{self.root}/tokenize", json=request)
        except httpx.HTTPError as error:
            raise ConfigurationError(f"the embedding server's /tokenize at {self.root} failed: {error}") from None
        if check and answer.is_error:
            raise ConfigurationError(f"the embedding server's /tokenize at {self.root} answered {answer.status_code}")
        return answer

    def _client(self) -> httpx.Client:
        """One per process: a forked chunking worker must not share its parent's connections."""
        import httpx

        if self._http is None or self._pid != os.getpid():
            key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
            headers = {"authorization": f"Bearer {key}"} if key else {}
            transport = httpx.HTTPTransport(retries=3)
            self._http = httpx.Client(headers=headers, timeout=self.timeout_s, transport=transport)
            self._pid = os.getpid()
        return self._http
