"""The command line as a user runs it: default resources, the Dagster instance in DAGSTER_HOME."""

import re

import dagster as dg
import pytest
from support import SMALL_CORPUS, write_corpus, write_pdf

from embed_pipelines import cli


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBED_PIPELINES_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EMBED_PIPELINES_STATE_DIR", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))  # restored after the test
    return tmp_path / "home"


def test_index_plan_and_search_from_the_command_line(tmp_path, home, capsys, monkeypatch):
    monkeypatch.setenv("EMBED_PIPELINES_METADATA_FROM_PATH", "{section}/**")
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    assert cli.main(["index", str(source), "--collection", "cli", "--plan"]) == 0
    assert "5 added" in capsys.readouterr().out

    assert cli.main(["index", str(source), "--collection", "cli", "--shards", "2"]) == 0
    assert "succeeded" in capsys.readouterr().out
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        assert len(instance.get_runs()) == 1, "the run is recorded where `dagster dev` looks"

    assert cli.main(["search", "how hard should I tamp the coffee?", "--collection", "cli", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(" 1. ") and "guide/espresso.md" in lines[0] and "Tamping" in lines[0]

    filtered = ["search", "degrees", "--collection", "cli", "--mode", "keyword", "--path", "manuals/**"]
    assert cli.main([*filtered, "--format", "pdf"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line[:3].strip(" .").isdigit()]
    assert len(lines) == 1 and "manuals/roasting.pdf" in lines[0]  # milk.html says degrees too, outside the glob
    by_metadata = ["search", "degrees", "--collection", "cli", "--mode", "keyword", "--where", "section=guide"]
    assert cli.main([*by_metadata, "--modified-after", "2000-01-01", "--modified-before", "2100-01-01"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line[:3].strip(" .").isdigit()]
    assert len(lines) == 1 and "guide/milk.html - Milk" in lines[0], "its path rule's section, and its <title>"
    assert cli.main([*by_metadata, "--modified-after", "2100-01-01"]) == 0
    assert "No results" in capsys.readouterr().out
    assert cli.main([*by_metadata, "--where", "section"]) == 2
    assert "expected FIELD=VALUE" in capsys.readouterr().err
    assert cli.main(["search", "degrees", "--collection", "cli", "--family", "pages", "--mode", "keyword"]) == 2
    assert "leave out --family pages" in capsys.readouterr().err


def test_versions_list_rollback_search_by_version_and_drop(
    tmp_path, home, capsys, monkeypatch, tiny_model, wider_tiny_model
):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    for model in (tiny_model, wider_tiny_model):  # a model upgrade, configured by the environment
        monkeypatch.setenv("EMBED_PIPELINES_MODEL", model.model)
        assert cli.main(["index", str(source), "--collection", "cli", "--shards", "2"]) == 0
    capsys.readouterr()

    assert cli.main(["versions", "list", "--collection", "cli"]) == 0
    newest, newest_storage, oldest, oldest_storage = capsys.readouterr().out.splitlines()
    assert newest.startswith("* ") and "48 dims" in newest and "gate passed" in newest and "serving" in newest
    assert oldest.startswith("  ") and "32 dims" in oldest
    for storage in (newest_storage, oldest_storage):  # under each version: its table's tier, size and recall
        assert storage.split()[:3] == ["halfvec", "6", "rows"] and "B/row" in storage and "recall@10 1.000" in storage
    new, old = newest.split()[1], oldest.split()[0]

    assert cli.main(["versions", "rollback", "--collection", "cli"]) == 0
    assert "rolled back" in capsys.readouterr().out
    assert cli.main(["versions", "list", "--collection", "cli"]) == 0
    newest, _, oldest, _ = capsys.readouterr().out.splitlines()
    assert "rolled back" in newest and oldest.startswith(f"* {old}")

    assert cli.main(["search", "how hard should I tamp?", "--collection", "cli", "--version", new, "-k", "1"]) == 0
    assert capsys.readouterr().out.startswith(" 1. ")
    assert cli.main(["versions", "drop", old, "--collection", "cli"]) == 1
    assert "serving version" in capsys.readouterr().err
    assert cli.main(["versions", "drop", new, "--collection", "cli"]) == 0
    assert cli.main(["search", "tamp", "--collection", "cli", "--version", new]) == 1
    assert f"no index version {new!r}" in capsys.readouterr().err


def test_visual_search_from_the_command_line(tmp_path, home, capsys, monkeypatch, tiny_model):
    from tiny_visual_model import build_tiny_colqwen2

    source = tmp_path / "docs"
    source.mkdir()
    write_pdf(source / "slides.pdf", ["Revenue by quarter", "Team photo"])
    monkeypatch.setenv("EMBED_PIPELINES_MODEL", tiny_model.model)
    monkeypatch.setenv("EMBED_PIPELINES_VISUAL_MODEL", str(build_tiny_colqwen2(tmp_path / "colqwen2")))
    assert cli.main(["index", str(source), "--collection", "slides", "--shards", "2"]) == 0
    capsys.readouterr()

    assert cli.main(["search", "--family", "pages", "revenue chart", "--collection", "slides", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("slides.pdf  page " in line for line in lines)
    assert cli.main(["search", "--family", "pages", "revenue", "--collection", "cli", "--exact"]) == 1
    assert "serves no pages index yet" in capsys.readouterr().err


def test_pictures_and_recordings_from_the_command_line(tmp_path, home, capsys, monkeypatch):
    """The families configured by the environment alone: planned, indexed, and searched with --family."""
    from test_audio import write_recording
    from test_images import drawing
    from tiny_picture_model import build_tiny_clip
    from tiny_speech_model import build_tiny_whisper

    monkeypatch.setenv("EMBED_PIPELINES_IMAGES_MODEL", str(build_tiny_clip(tmp_path / "clip")))
    monkeypatch.setenv("EMBED_PIPELINES_AUDIO_MODEL", str(build_tiny_whisper(tmp_path / "whisper")))
    monkeypatch.setenv("EMBED_PIPELINES_AUDIO_LANGUAGE", "en")
    source = tmp_path / "field"
    source.mkdir()
    drawing(1).save(source / "hive.jpg")
    drawing(2).save(source / "swarm.png")
    write_recording(source / "meeting.m4a", 40.0)
    (source / "notes.md").write_text("# Notes\n\nThe inspection found a laying queen.")

    assert cli.main(["index", str(source), "--collection", "field", "--plan"]) == 0
    planned = capsys.readouterr().out
    assert "images/EmbedPictures" in planned and "pictures_embedded 2" in planned
    assert "audio/TranscribeAudio" in planned and "recordings_to_transcribe 1" in planned
    assert cli.main(["index", str(source), "--collection", "field", "--shards", "2"]) == 0
    assert "succeeded" in capsys.readouterr().out

    like = ["search", "--family", "images", "--like", str(source / "hive.jpg"), "--collection", "field", "-k", "1"]
    assert cli.main(like) == 0
    assert capsys.readouterr().out.startswith(" 1. 1.000  hive.jpg")
    assert cli.main(["search", "--family", "audio", "the meeting", "--collection", "field", "--mode", "dense"]) == 0
    assert re.search(r"meeting\.m4a  00:00:\d\d–00:00:\d\d", capsys.readouterr().out)
    assert cli.main(["search", "--like", str(source / "hive.jpg"), "--collection", "field"]) == 2
    assert "--like finds pictures like an example picture: add --family images" in capsys.readouterr().err
