"""Retrieval quality on a set of questions with judged answers: hit@1, hit@k, MRR@k, nDCG@k and recall@k.

A judgment names a document and, better, a span of its text. A hit answers a span judgment when it comes from
that document and shares at least half of the shorter one's word 5-grams with the span, so a judgment by span
survives re-chunking: every index version is scored on the same set. Each judgment counts once, at the first
hit that answers it; a hit gains at most 1 (one hit answering two judgments fills one rank), and a question's
ideal ranking answers one judgment at each of its first ranks.

Questions file: JSON (a list) or JSON Lines, each item `{"question": ..., "relevant": [{"path": ...,
"span": ...}, ...]}`; `"span"` may be left out (any chunk of the document answers), and `{"question": ...,
"expected": "<path>"}` (the golden questions' form) is read as one judgment by document.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from embed_pipelines.core.settings import ConfigurationError

SHINGLE = 5
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Judgment:
    path: str
    span: str | None = None

    def answered_by(self, path: str, text: str) -> bool:
        return path == self.path and (self.span is None or _overlap(self.span, text))


@dataclass(frozen=True)
class JudgedQuestion:
    question: str
    relevant: tuple[Judgment, ...]


@dataclass(frozen=True)
class Scores:
    """Means over the questions; `ranks`: each question's first relevant rank (None: not in the top k)."""

    k: int
    hit_at_1: float
    hit_at_k: float
    mrr: float
    ndcg: float
    recall: float
    ranks: tuple[int | None, ...]

    def as_metadata(self) -> dict[str, float]:
        k = self.k
        return {
            "hit@1": self.hit_at_1,
            f"hit@{k}": self.hit_at_k,
            f"mrr@{k}": self.mrr,
            f"ndcg@{k}": self.ndcg,
            f"recall@{k}": self.recall,
            "questions": len(self.ranks),
        }


def read_questions(path: Path) -> list[JudgedQuestion]:
    try:
        text = path.read_text(encoding="utf-8")
        items = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
        questions = [_judged(item) for item in items]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ConfigurationError(
            f"{path}: not a list of {{question, relevant: [{{path, span}}]}} ({type(error).__name__}: {error})"
        ) from None
    if not questions:
        raise ConfigurationError(f"{path}: no questions")
    return questions


def _judged(item: dict) -> JudgedQuestion:
    if "expected" in item:
        relevant = (Judgment(str(item["expected"])),)
    else:
        relevant = tuple(Judgment(str(j["path"]), str(j["span"]) if j.get("span") else None) for j in item["relevant"])
    if not relevant or not str(item["question"]).strip():
        raise ValueError(f"a question and at least one judgment, not {item!r}")
    return JudgedQuestion(str(item["question"]), relevant)


def gains(question: JudgedQuestion, hits: Sequence) -> list[int]:
    """Per rank, how many of the question's judgments the hit answers first (each judgment counts once)."""
    open_judgments, found = list(question.relevant), []
    for hit in hits:
        answered = [j for j in open_judgments if j.answered_by(hit.document_path, hit.text)]
        open_judgments = [j for j in open_judgments if j not in answered]
        found.append(len(answered))
    return found


def score(questions: Sequence[JudgedQuestion], search: Callable[[str], Sequence], k: int = 10) -> Scores:
    """Each question asked through `search` (its top k hits, best first), scored and averaged."""
    per_question = []
    for question in questions:
        found = gains(question, list(search(question.question))[:k])
        first = next((rank for rank, gain in enumerate(found, 1) if gain), None)
        ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(question.relevant), k) + 1))
        dcg = sum(min(gain, 1) / math.log2(rank + 1) for rank, gain in enumerate(found, 1))  # one item a rank
        per_question.append((first, dcg / ideal, sum(found) / len(question.relevant)))
    firsts = [first for first, _, _ in per_question]
    return Scores(
        k=k,
        hit_at_1=statistics.fmean(first == 1 for first in firsts),
        hit_at_k=statistics.fmean(first is not None for first in firsts),
        mrr=statistics.fmean(1 / first if first else 0.0 for first in firsts),
        ndcg=statistics.fmean(ndcg for _, ndcg, _ in per_question),
        recall=statistics.fmean(recall for _, _, recall in per_question),
        ranks=tuple(firsts),
    )


def _overlap(span: str, text: str) -> bool:
    """At least half of the shorter text's word n-grams are in the other (n = 5, or the shorter's length)."""
    span_words, text_words = _WORD.findall(span.lower()), _WORD.findall(text.lower())
    n = max(1, min(SHINGLE, len(span_words), len(text_words)))
    span_grams, text_grams = _grams(span_words, n), _grams(text_words, n)
    if not span_grams or not text_grams:
        return False
    return len(span_grams & text_grams) >= 0.5 * min(len(span_grams), len(text_grams))


def _grams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}
