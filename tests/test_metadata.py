"""Document facts in the sink: format, modification time, title and metadata from front matter, office and PDF
properties, object-store user metadata and the collection's path rules; filters on them; a change of them
alone rewrites rows without a model call; a table made before them gains them at its next sync."""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from datetime import UTC, datetime

import docx
import pytest
from fpdf import FPDF
from support import latest_metadata, run_index

from embed_pipelines import api
from embed_pipelines.core.facts import facts_key
from embed_pipelines.core.paths import metadata_from_path, path_rules
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.storage.filters import Filters
from embed_pipelines.text.properties import Properties, _pdf_date, read_properties, split_front_matter

RULES = "{team}/{project}/**"
INTRO = """---
title: Ranking, an introduction
team: spoofed
tags: [bm25, rrf]
year: 2026
owner: ann
---
# Ranking

Reciprocal rank fusion merges a keyword ranking and a dense ranking by their ranks alone.
"""
JANUARY, JUNE = datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 6, 15, tzinfo=UTC)


def _write_docx(path, title: str, author: str) -> None:
    document = docx.Document()
    document.add_heading("Specification", level=1)
    document.add_paragraph("The ranking service answers within fifty milliseconds at the ninety-ninth percentile.")
    document.core_properties.title, document.core_properties.author = title, author
    document.save(path)


def _write_pdf(path, title: str, author: str) -> None:
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, "Restart the indexer after a failed deploy; the runbook lists every alert.")
    pdf.output(str(path))


@pytest.fixture
def corpus(tmp_path, state_dir, instance, tiny_model, postgres, monkeypatch):
    monkeypatch.setenv("EMBED_PIPELINES_METADATA_FROM_PATH", RULES)
    source = tmp_path / "docs"
    (source / "search/ranking").mkdir(parents=True)
    (source / "ops/oncall").mkdir(parents=True)
    (source / "search/ranking/intro.md").write_text(INTRO)
    _write_docx(source / "search/ranking/spec.docx", "Ranking service specification", "Bo Chen")
    _write_pdf(source / "ops/oncall/runbook.pdf", "On-call runbook", "Dee Ops")
    (source / "top.md").write_text("Preamble.\n\n# Top heading\n\nA file at the top has no team.")
    for name, when in (("search/ranking/intro.md", JANUARY), ("search/ranking/spec.docx", JUNE),
                       ("ops/oncall/runbook.pdf", JUNE), ("top.md", JANUARY)):  # fmt: skip
        os.utime(source / name, (when.timestamp(), when.timestamp()))
    collection = f"meta_{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]}"

    def sync() -> int:
        """Chunks the model embedded."""
        run_index(source, collection, instance, tiny_model, postgres, shard_count=2)
        return latest_metadata(instance, collection, "embeddings").get("chunks_embedded", 0)

    sync()
    return source, collection, sync


def facts(postgres, collection: str) -> dict[str, tuple]:
    with postgres.connect() as conn:
        rows = conn.execute(
            f'SELECT DISTINCT document_path, format, modified, title, metadata FROM "{collection}"'
        ).fetchall()
    return {path: tuple(rest) for path, *rest in rows}


def search(collection: str, postgres, **filters) -> set[str]:
    return {hit.document_path for hit in api.search("ranking", collection, k=10, postgres=postgres, **filters)}


def test_rows_carry_what_files_say_of_themselves_and_what_the_path_rules_derive(corpus, postgres):
    source, collection, _ = corpus
    found = facts(postgres, collection)
    assert found["search/ranking/intro.md"] == (
        "md",
        JANUARY,
        "Ranking, an introduction",
        # the path rule wins over the front matter's own `team`
        {"title": "Ranking, an introduction", "team": "search", "project": "ranking", "tags": ["bm25", "rrf"],
         "year": 2026, "owner": "ann"},
    )  # fmt: skip
    fmt, modified, title, metadata = found["search/ranking/spec.docx"]
    assert (fmt, modified, title) == ("docx", JUNE, "Ranking service specification")
    assert metadata["author"] == "Bo Chen" and metadata["team"] == "search" and "created" in metadata
    fmt, _, title, metadata = found["ops/oncall/runbook.pdf"]
    assert (fmt, title, metadata["author"], metadata["project"]) == ("pdf", "On-call runbook", "Dee Ops", "oncall")
    assert found["top.md"] == ("md", JANUARY, "Top heading", {})
    with postgres.connect() as conn:  # the front matter is metadata, not text
        texts = " ".join(text for (text,) in conn.execute(f'SELECT text FROM "{collection}"'))
    assert "owner" not in texts and "Reciprocal rank fusion" in texts
    hit = api.search("reciprocal rank fusion", collection, k=1, postgres=postgres, mode="keyword")[0]
    assert hit.title == "Ranking, an introduction"


def test_filters_on_metadata_and_modification_time(corpus, postgres):
    _, collection, _ = corpus
    assert search(collection, postgres, where={"team": "search"}) == {
        "search/ranking/intro.md",
        "search/ranking/spec.docx",
    }
    assert search(collection, postgres, where={"tags": "rrf"}) == {"search/ranking/intro.md"}, "a list holds it"
    assert search(collection, postgres, where={"year": "2026"}) == {"search/ranking/intro.md"}, "text matches 2026"
    assert search(collection, postgres, where={"team": "search", "author": "Bo Chen"}) == {"search/ranking/spec.docx"}
    assert search(collection, postgres, where={"team": "nobody"}) == set()
    assert search(collection, postgres, modified_after="2026-03-01") == {
        "search/ranking/spec.docx",
        "ops/oncall/runbook.pdf",
    }
    assert search(collection, postgres, modified_before="2026-03-01") == {"search/ranking/intro.md", "top.md"}
    for mode in ("dense", "keyword", "hybrid"):
        found = api.search("ranking", collection, k=10, postgres=postgres, mode=mode, where={"project": "ranking"},
                           modified_after=datetime(2026, 3, 1), formats="docx")  # fmt: skip
        assert {hit.document_path for hit in found} == {"search/ranking/spec.docx"}, mode
    with pytest.raises(ConfigurationError, match="ISO 8601"):
        search(collection, postgres, modified_after="last tuesday")


def test_a_metadata_only_edit_rewrites_rows_without_calling_the_model(corpus, postgres, monkeypatch):
    source, collection, sync = corpus
    intro = source / "search/ranking/intro.md"
    intro.write_text(INTRO.replace("tags: [bm25, rrf]", "tags: [bm25, rrf, fusion]"))
    assert sync() == 0
    assert "fusion" in facts(postgres, collection)["search/ranking/intro.md"][3]["tags"]
    assert search(collection, postgres, where={"tags": "fusion"}) == {"search/ranking/intro.md"}

    os.utime(intro, (JUNE.timestamp(), JUNE.timestamp()))  # touched: only its modification time changes
    assert sync() == 0
    assert facts(postgres, collection)["search/ranking/intro.md"][1] == JUNE

    monkeypatch.setenv("EMBED_PIPELINES_METADATA_FROM_PATH", "{area}/**")  # the collection's rules change
    assert sync() == 0
    assert facts(postgres, collection)["ops/oncall/runbook.pdf"][3]["area"] == "ops"
    assert search(collection, postgres, where={"area": "search"}) == {
        "search/ranking/intro.md",
        "search/ranking/spec.docx",
    }


def test_a_table_made_before_facts_gains_them_at_the_next_sync_without_model_calls(corpus, postgres):
    _, collection, sync = corpus
    with postgres.connect() as conn:
        (version,) = conn.execute(
            "SELECT version FROM embed_pipelines_versions WHERE collection = %s", (collection,)
        ).fetchone()
        table = f"{collection}__{version}"  # as indexed before facts existed (and its view with it)
        conn.execute(f'ALTER TABLE "{table}" DROP COLUMN format CASCADE, DROP COLUMN modified, DROP COLUMN title, '
                     "DROP COLUMN metadata, DROP COLUMN principals")  # fmt: skip
        conn.execute(f'CREATE VIEW "{collection}" AS SELECT * FROM "{table}"')
    assert api.search("ranking", collection, k=2, postgres=postgres)[0].title is None, "it still serves"
    with pytest.raises(ConfigurationError, match="sync the collection once"):
        search(collection, postgres, where={"team": "search"})
    assert sync() == 0
    assert search(collection, postgres, where={"team": "search"}) == {
        "search/ranking/intro.md",
        "search/ranking/spec.docx",
    }
    with postgres.connect() as conn:
        columns = [c.name for c in conn.execute(f'SELECT * FROM "{collection}" LIMIT 0').description]
    assert columns[-5:] == ["format", "modified", "title", "metadata", "principals"], "the serving view shows them"


def test_broken_front_matter_indexes_the_text_and_says_why_its_metadata_is_missing(corpus, postgres, instance):
    source, collection, sync = corpus
    (source / "search/ranking/broken.md").write_text("---\ntags: [unclosed\n---\n# Broken\n\nStill searchable text.")
    sync()
    listed = latest_metadata(instance, collection, "source_files")
    assert listed["files_without_properties"] == 1 and "broken.md" in listed["without_properties"]
    assert facts(postgres, collection)["search/ranking/broken.md"][2:] == (
        "broken",  # its file name: nothing it says of itself is taken
        {"team": "search", "project": "ranking"},
    )


def test_object_store_user_metadata_reaches_the_rows(tmp_path, s3_server, s3_bucket, state_dir, instance, tiny_model,
                                                     postgres, monkeypatch):  # fmt: skip
    import boto3

    monkeypatch.delenv("EMBED_PIPELINES_METADATA_FROM_PATH", raising=False)
    client = boto3.client("s3")
    client.put_object(Bucket=s3_bucket, Key="docs/guide.md", Body=b"# Guide\n\nHow to brew.",
                      Metadata={"team": "coffee", "reviewed": "yes"})  # fmt: skip
    client.put_object(Bucket=s3_bucket, Key="docs/other.md", Body=b"# Other\n\nHow to steep.")
    run_index(f"s3://{s3_bucket}/docs", "objects", instance, tiny_model, postgres, shard_count=1)
    found = facts(postgres, "objects")
    assert found["guide.md"][3] == {"team": "coffee", "reviewed": "yes"} and found["other.md"][3] == {}
    client.put_object(
        Bucket=s3_bucket, Key="docs/guide.md", Body=b"# Guide\n\nHow to brew.", Metadata={"team": "tea"}
    )  # fmt: skip  (same bytes, new metadata)
    run_index(f"s3://{s3_bucket}/docs", "objects", instance, tiny_model, postgres, shard_count=1)
    assert latest_metadata(instance, "objects", "embeddings").get("chunks_embedded", 0) == 0
    assert facts(postgres, "objects")["guide.md"][3] == {"team": "tea"}


def test_path_rules_capture_names_and_refuse_patterns_without_fields():
    rules = path_rules("{team}/{project}/**, archive/{year}/*.md", "metadata_from_path")
    assert metadata_from_path(rules, "search/ranking/a/b.md") == {"team": "search", "project": "ranking"}
    assert metadata_from_path(rules, "archive/2024/notes.md") == {"team": "archive", "project": "2024"}, "first wins"
    assert metadata_from_path(rules, "top.md") == {}
    with pytest.raises(ConfigurationError, match="names no field"):
        path_rules(["docs/**"], "metadata_from_path")
    with pytest.raises(ConfigurationError, match="no path pattern"):
        path_rules(["{a}/{a}/**"], "metadata_from_path")


def test_pdf_dates_become_iso_8601_and_filters_keep_json_values():
    assert _pdf_date("D:20260114093000+01'00'") == "2026-01-14T09:30:00+01:00"
    assert _pdf_date("D:2026") == "2026-01-01T00:00:00"
    assert _pdf_date("last spring") == "last spring"
    _, params = Filters(where={"year": 2026}).condition()
    assert sorted(json.dumps(value.obj) for value in params.values()) == sorted(
        ['{"year": 2026}', '{"year": [2026]}', '{"year": "2026"}', '{"year": ["2026"]}']
    )


def test_what_postgresql_cannot_hold_or_a_damaged_part_never_stops_a_file(tmp_path):
    nul = tmp_path / "nul.md"
    nul.write_text('---\ntitle: "Quarterly\\0 report"\nowner: "a\\0b"\n---\nBody.\n')
    assert read_properties(nul) == Properties("Quarterly report", {"title": "Quarterly report", "owner": "ab"})
    bom = tmp_path / "bom.md"
    bom.write_bytes("\ufeff# Real title\n\ntext\n\n# Later\n".encode())
    assert read_properties(bom).title == "Real title"
    damaged = tmp_path / "damaged.docx"  # its properties part's compressed bytes broken
    with zipfile.ZipFile(damaged, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("docProps/core.xml", "<cp:coreProperties>" + "x" * 4000 + "</cp:coreProperties>")
    data = bytearray(damaged.read_bytes())
    data[40:60] = b"\xff" * 20
    damaged.write_bytes(bytes(data))
    assert read_properties(damaged) == Properties(), "left to its conversion to say what is wrong"


def test_a_rule_then_prose_is_text_not_front_matter(tmp_path):
    ruled = b"---\nA note that starts with a rule.\n\nSetext heading\n---\n\nMore text."
    assert split_front_matter(ruled) == ruled
    assert split_front_matter(b"---\ntags: [a]\n---\n# Body") == b"# Body"
    assert split_front_matter(b"---\ntags: [unclosed\n---\n# Body").startswith(b"---"), "broken YAML stays text"


def test_facts_compare_equal_after_jsonb_and_filters_skip_what_json_cannot_hold():
    written = {"big": 1.0e20, "zero": -0.0, "list": [1, 2.5], "text": "x"}
    stored = '{"big": 100000000000000000000, "list": [1, 2.5], "text": "x", "zero": 0.0}'  # as jsonb returns it
    assert facts_key("md", None, "t", written) == facts_key("md", None, "t", stored)
    assert facts_key("md", None, "t", {"n": 1}) != facts_key("md", None, "t", {"n": "1"})
    _, params = Filters(where={"x": "NaN", "y": "1e400"}).condition()
    assert all(math.isfinite(v) for p in params.values() for v in p.obj.values() if isinstance(v, float))
