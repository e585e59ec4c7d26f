"""`eval`: judged questions scored per mode and version; the figures agree with an independent computation
from the same ranked hits, and a judgment by span does not depend on how the text was chunked."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pytest
from support import run_index, write_corpus

from embed_pipelines import api, cli
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.versions.evaluation import JudgedQuestion, Judgment, gains, read_questions, score

CORPUS = {
    "brewing.md": "# Brewing\n\n## Espresso\n\nEspresso is brewed at nine bar for about 25 seconds from a fine "
    "grind.\n\n## Filter\n\nFilter coffee drips through paper for four minutes from a medium grind.",
    "tea.md": "# Tea\n\nGreen tea steeps at 80 degrees for two minutes; black tea at 95 degrees for four.",
    "milk.md": "# Milk\n\nSteam milk to 60 degrees until it looks like wet paint.",
}
ESPRESSO_SPAN = "Espresso is brewed at nine bar for about 25 seconds from a fine grind."


def judged(question: str, path: str, span: str | None = None) -> dict:
    return {"question": question, "relevant": [{"path": path} | ({"span": span} if span else {})]}


QUESTIONS = [
    judged("how long is an espresso shot?", "brewing.md", ESPRESSO_SPAN),
    judged("green tea temperature", "tea.md", "Green tea steeps at 80 degrees"),
    judged("wet paint", "milk.md"),
    judged("paper filter time", "brewing.md", "drips through paper for four minutes"),
]


@dataclass(frozen=True)
class FakeHit:  # only the fields a judgment reads
    document_path: str
    text: str


def independent_ndcg(relevant_ranks: list[list[int]], k: int) -> float:
    """nDCG@k with binary gains, one relevant item per question, from 1-based ranks: numpy, not evaluation.py."""
    values = []
    for ranks in relevant_ranks:
        gains_at = np.zeros(k)
        gains_at[[r - 1 for r in ranks if r <= k][:1]] = 1.0
        discounts = 1 / np.log2(np.arange(2, k + 2))
        values.append(float(gains_at @ discounts))  # ideal DCG of one relevant item is 1
    return float(np.mean(values))


def test_eval_scores_equal_an_independent_computation_from_the_same_ranks(
    tmp_path, state_dir, instance, tiny_model, postgres
):
    source = write_corpus(tmp_path / "docs", CORPUS)
    collection = f"ev_{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]}"
    run_index(source, collection, instance, tiny_model, postgres, shard_count=1)
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in QUESTIONS))

    results = api.evaluate(questions, collection, k=3, postgres=postgres)
    assert {mode for _, mode in results} == {"dense", "keyword", "hybrid"}
    for (_, mode), scores in results.items():
        relevant_ranks = []
        for item in QUESTIONS:
            hits = api.search(item["question"], collection, k=3, postgres=postgres, mode=mode)
            judgment = item["relevant"][0]
            relevant_ranks.append(
                [
                    rank
                    for rank, hit in enumerate(hits, 1)
                    if hit.document_path == judgment["path"] and judgment.get("span", "") in hit.text
                ]
            )
        assert scores.ndcg == pytest.approx(independent_ndcg(relevant_ranks, 3)), mode
        assert scores.hit_at_1 == pytest.approx(np.mean([1 in ranks for ranks in relevant_ranks])), mode
        assert scores.mrr == pytest.approx(np.mean([1 / ranks[0] if ranks else 0 for ranks in relevant_ranks]))
    assert results[(next(iter(results))[0], "keyword")].hit_at_1 == 1.0  # each question shares words with its span


def test_a_span_judgment_is_answered_alike_however_the_text_was_chunked():
    section = " ".join(f"word{i}" for i in range(60))
    question = JudgedQuestion("q", (Judgment("a.md", section),))
    whole = [FakeHit("a.md", "Heading\n" + section + " and the next section")]
    halves = [FakeHit("b.md", section), FakeHit("a.md", section[:200]), FakeHit("a.md", section[200:])]
    other = [FakeHit("a.md", " ".join(f"other{i}" for i in range(60)))]
    assert gains(question, whole) == [1]
    assert gains(question, halves) == [0, 1, 0]  # answered once, by its first chunk from the right document
    assert gains(question, other) == [0]
    scores = score([question, question], lambda _: halves, k=10)
    assert scores.ranks == (2, 2) and scores.mrr == 0.5 and scores.hit_at_1 == 0.0


def test_two_judgments_count_each_once_in_ndcg_and_recall():
    question = JudgedQuestion("q", (Judgment("a.md"), Judgment("b.md")))
    hits = [FakeHit("c.md", "x"), FakeHit("a.md", "x"), FakeHit("a.md", "y")]
    scores = score([question], lambda _: hits, k=3)
    ideal = 1 + 1 / np.log2(3)
    assert scores.ndcg == pytest.approx((1 / np.log2(3)) / ideal)
    assert scores.recall == 0.5


def test_a_bad_questions_file_is_refused_by_name(tmp_path):
    bad = tmp_path / "questions.json"
    bad.write_text('[{"question": "no judgment"}]')
    with pytest.raises(ConfigurationError, match="questions.json: not a list"):
        read_questions(bad)


def test_the_eval_command_prints_each_mode(tmp_path, state_dir, instance, tiny_model, postgres, capsys, monkeypatch):
    source = write_corpus(tmp_path / "docs", CORPUS)
    run_index(source, "ev_cli", instance, tiny_model, postgres, shard_count=1)
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps(QUESTIONS))
    monkeypatch.setattr(api, "PostgresResource", lambda: postgres)
    assert cli.main(["eval", str(questions), "--collection", "ev_cli", "--mode", "keyword", "--mode", "dense"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["version", "mode", "hit@1", "hit@10", "MRR@10", "nDCG@10", "recall@10"]
    assert [line.split()[1] for line in lines[1:3]] == ["keyword", "dense"]
    assert lines[-1] == "(4 questions)"


def test_one_hit_answering_two_judgments_fills_one_rank():
    question = JudgedQuestion("q", (Judgment("a.md", "alpha beta gamma delta epsilon"), Judgment("a.md")))
    scores = score([question], lambda _: [FakeHit("a.md", "alpha beta gamma delta epsilon zeta")], k=10)
    assert scores.recall == 1.0
    assert scores.ndcg == pytest.approx(1 / (1 + 1 / np.log2(3)))  # the second judgment had no rank of its own
