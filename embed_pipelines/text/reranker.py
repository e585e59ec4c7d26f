"""A second stage for search: a cross-encoder scores (question, chunk) pairs and the candidates are re-ordered.

Two forms, one method: a local folder in the sentence-transformers `CrossEncoder` layout (a sequence
classification model with one label, run here by transformers), or a served `/rerank` endpoint in the shape
text-embeddings-inference, infinity and Cohere share (`{"query", "documents"}` in; TEI answers a bare list of
`{index, score}`, infinity and Cohere `{"results": [{index, relevance_score}]}`). The API key of a served
reranker comes from the environment variable its settings name, never from the settings themselves.
"""

from __future__ import annotations

import functools
import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embed_pipelines.core.settings import ConfigurationError

BATCH = 32


@dataclass(frozen=True)
class LocalReranker:
    folder: str
    max_length: int = 512

    def scores(self, question: str, texts: list[str]) -> list[float]:
        import torch

        tokenizer, model = _load(self.folder)
        found: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(texts), BATCH):
                batch = texts[start : start + BATCH]
                inputs = tokenizer(
                    [question] * len(batch),
                    batch,
                    padding=True,
                    truncation="only_second",
                    max_length=min(self.max_length, tokenizer.model_max_length),
                    return_tensors="pt",
                )
                found += model(**inputs).logits[:, 0].float().tolist()
        return found


@functools.lru_cache(maxsize=2)
def _load(folder: str):
    """The tokenizer and model of a cross-encoder folder, loaded once per process."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not (Path(folder) / "config.json").exists():
        raise ConfigurationError(f"reranker {folder}: no config.json there (a CrossEncoder folder is wanted)")
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    if model.config.num_labels != 1:
        raise ConfigurationError(
            f"reranker {folder}: a cross-encoder scores with one label, this model has {model.config.num_labels}"
        )
    return AutoTokenizer.from_pretrained(folder), model


@dataclass(frozen=True)
class ServedReranker:
    base_url: str  # up to the endpoint: `http://host:port/v1` asks `http://host:port/v1/rerank`
    model: str = ""
    api_key_env: str = ""
    timeout_s: float = 30.0

    def scores(self, question: str, texts: list[str]) -> list[float]:
        body = json.dumps({"model": self.model, "query": question, "documents": texts, "return_documents": False})
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            if not os.environ.get(self.api_key_env):
                raise ConfigurationError(f"the reranker's key variable {self.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {os.environ[self.api_key_env]}"
        request = urllib.request.Request(f"{self.base_url.rstrip('/')}/rerank", body.encode(), headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer = json.loads(response.read())
        except (OSError, ValueError) as error:  # the URL only: a key never reaches the message
            raise ConfigurationError(f"the reranker at {self.base_url} did not answer: {error}") from None
        try:
            results = answer["results"] if isinstance(answer, dict) else answer
            scored = {int(item["index"]): float(item.get("relevance_score", item.get("score"))) for item in results}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ConfigurationError(
                f"the reranker at {self.base_url} answered in no /rerank shape this reads (TEI, infinity, Cohere)"
            ) from None
        if sorted(scored) != list(range(len(texts))):
            raise ConfigurationError(f"the reranker at {self.base_url} scored {len(scored)} of {len(texts)} texts")
        return [scored[i] for i in range(len(texts))]


def reranker_from(settings: str | dict[str, Any]) -> LocalReranker | ServedReranker:
    """A folder, or a served reranker's settings (`{base_url: ..., model: ..., api_key_env: ...}`)."""
    if isinstance(settings, dict):
        try:
            return ServedReranker(**settings)
        except TypeError as error:
            raise ConfigurationError(f"reranker: {error}") from None
    return LocalReranker(str(Path(settings).expanduser()))
