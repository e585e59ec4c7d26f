"""What the command line tells a user when something is wrong: one line that names the file or setting, the
reason and what to do, and an exit code that says whether everything was indexed; nothing it prints can act
on the terminal."""

import os
import random
import shutil
import subprocess
import sys
import textwrap

import pytest
from support import write_corpus

from embed_pipelines import cli
from embed_pipelines.config import load_collections
from embed_pipelines.core.settings import ConfigurationError


@pytest.fixture
def cli_env(tmp_path, monkeypatch, postgres, tiny_model):
    """The CLI as a user runs it, on the session's server and the tiny model (fast, random vectors)."""
    monkeypatch.setenv("EMBED_PIPELINES_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EMBED_PIPELINES_STATE_DIR", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    monkeypatch.setenv("EMBED_PIPELINES_DSN", postgres.database().uri())
    monkeypatch.setenv("EMBED_PIPELINES_MODEL", tiny_model.model)
    return tmp_path


def exit_code(arguments: list[str]) -> int:
    """The exit code of the command line, usage errors (which argparse ends with SystemExit) included."""
    try:
        return cli.main(arguments)
    except SystemExit as exit:
        return exit.code


def test_control_characters_in_names_and_text_reach_the_terminal_escaped(cli_env, capsys):
    hostile = "x\x1b]0;OWNED\x07\x1b[2J\x1b[31mFAKE\u202e"
    source = write_corpus(cli_env / "docs", {f"{hostile}.md": f"# Title {hostile}\n\nCoffee {hostile} notes."})
    assert cli.main(["index", str(source), "--collection", "hostile", "--shards", "1"]) == 0
    assert cli.main(["search", "coffee", "--collection", "hostile", "-k", "1"]) == 0
    printed = capsys.readouterr()
    terminal = printed.out + printed.err
    assert not any(character in terminal for character in "\x1b\x07\u202e")
    assert "x\\x1b]0;OWNED\\x07\\x1b[2J\\x1b[31mFAKE\\u202e.md" in printed.out  # the name, shown escaped


@pytest.mark.parametrize("name", ["_x", "pg_class", "embed_pipelines_versions"])
def test_a_name_that_would_fail_at_the_last_step_is_refused_up_front(cli_env, capsys, name):
    source = write_corpus(cli_env / "docs", {"a.md": "# A\n\nText."})
    assert cli.main(["index", str(source), "--collection", name]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"Invalid collection name {name!r}" in line


@pytest.mark.parametrize(
    "arguments, reason",
    [
        (["search", "coffee", "-k", "-1"], "must be 1 to 1000, not -1"),
        (["search", "coffee", "-k", "0"], "must be 1 to 1000, not 0"),
        (["search", "coffee", "-k", "many"], "invalid int value: 'many'"),
        (["search", "   ", "-k", "3"], "the question is empty"),
        (["search", "caf\udcff", "-k", "3"], "not UTF-8"),
        (["versions", "drop", "000000000000"], "000000000000"),
        (["versions", "promote", "000000000000"], "000000000000"),
        (["versions", "rollback"], "no earlier version to roll back to"),
    ],
)
def test_search_and_version_misuse_is_one_line(cli_env, capsys, arguments, reason):
    source = write_corpus(cli_env / "docs", {"a.md": "# Coffee\n\nGrind fine, tamp level."})
    assert cli.main(["index", str(source), "--collection", "misuse", "--shards", "1"]) == 0
    capsys.readouterr()
    assert exit_code([*arguments, "--collection", "misuse"]) != 0
    printed = capsys.readouterr()
    assert printed.out == ""
    (line,) = printed.err.splitlines()
    assert reason in line and "Error" not in line, line


def test_index_exits_3_when_files_failed_and_names_each(cli_env, capsys):
    source = write_corpus(cli_env / "docs", {"good.md": "# Good\n\nCoffee notes.", "broken.docx": "not a zip at all"})
    assert exit_code(["index", str(source), "--collection", "partly", "--shards", "1"]) == 3
    printed = capsys.readouterr()
    assert any("broken.docx" in line for line in printed.err.splitlines()), printed.err
    assert "succeeded, but files failed (documents: 1)" in printed.out
    assert "Traceback" not in printed.err
    # nothing changed: the file is not converted again, and the sync still says it fails
    assert exit_code(["index", str(source), "--collection", "partly", "--shards", "1"]) == 3
    again = capsys.readouterr().err.splitlines()
    assert any(line.startswith("documents: Still failing broken.docx: ") for line in again), again
    assert "documents: unchanged 1, failed 1, failed_before 1" in again


INTERRUPTED = textwrap.dedent(
    """
    import os, signal, sys
    from embed_pipelines import cli
    from embed_pipelines.sync import refresh

    original = refresh.write_listing

    def then_interrupt(*args, **kwargs):  # Ctrl-C once the listing is written, mid-run
        original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)

    refresh.write_listing = then_interrupt
    sys.exit(cli.main(["index", sys.argv[1], "--collection", "interrupted", "--shards", "2"]))
    """
)


def test_ctrl_c_during_index_is_one_line_and_loses_nothing(cli_env):
    source = write_corpus(cli_env / "docs", {"a.md": "# A\n\nCoffee.", "b.md": "# B\n\nTea."})
    ran = subprocess.run([sys.executable, "-c", INTERRUPTED, str(source)], capture_output=True, text=True,
                         env=os.environ)  # fmt: skip
    assert ran.returncode == 130, ran.stderr[-3000:]
    assert "Traceback" not in ran.stderr and "KeyboardInterrupt" not in ran.stderr, ran.stderr[-3000:]
    assert [line for line in ran.stderr.splitlines() if "interrupted" in line][0].endswith(": failed: interrupted")
    assert ran.stdout.splitlines()[0].endswith(": interrupted")
    assert "nothing indexed is lost" in ran.stdout


@pytest.mark.parametrize("shards", ["0", "-1", "100000"])
def test_a_shard_count_out_of_range_is_refused_in_one_line(cli_env, capsys, shards):
    source = write_corpus(cli_env / "docs", {"a.md": "# A\n\nText."})
    assert exit_code(["index", str(source), "--collection", "sharded", "--shards", shards]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"--shards must be an integer from 1 to 4096, not {shards}" in line


def test_counting_a_long_section_before_it_is_split_raises_no_alarm(text_model, capfd):
    """The chunker counts a whole section before it splits it: transformers' 'will result in indexing errors'
    warning about sequences beyond the model's window does not apply, and is not printed."""
    assert text_model.chunker()._tokenizer.count_tokens("word " * 3000) == 3000
    assert "longer than the specified maximum" not in capfd.readouterr().err


QUIET = textwrap.dedent(
    """
    import sys
    from embed_pipelines.storage.database import Database
    import embed_pipelines.text.openvino_runtime
    from openvino.tools.ovc import convert_impl

    with Database(embedded_data_dir=sys.argv[1]).connect() as conn:
        conn.execute("SELECT 1")
    print(convert_impl.tm.__name__)
    """
)


def test_nothing_phones_home_and_no_library_warns(tmp_path):
    """OpenVINO's converter uses its no-op telemetry stub; starting the embedded server prints nothing (the
    server wheel's Python layer warns about XDG_RUNTIME_DIR as it loads)."""
    env = {name: value for name, value in os.environ.items() if name != "XDG_RUNTIME_DIR"}
    ran = subprocess.run([sys.executable, "-c", QUIET, str(tmp_path / "pgdata")], capture_output=True, text=True,
                         env=env)  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.split() == ["openvino.tools.ovc.telemetry_stub"]
    assert ran.stderr == ""


def test_a_truncated_model_file_is_named_in_one_line(cli_env, capsys, monkeypatch, tiny_model):
    model = cli_env / "model"
    shutil.copytree(tiny_model.model, model)
    source = write_corpus(cli_env / "docs", {"a.md": "# Coffee\n\nGrind fine, tamp level."})
    monkeypatch.setenv("EMBED_PIPELINES_MODEL", str(model))
    assert exit_code(["index", str(source), "--collection", "damaged", "--shards", "1"]) == 0
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a download cut short

    def command(*arguments: str) -> subprocess.CompletedProcess:  # a new process, as a user runs each command
        cli_module = [sys.executable, "-m", "embed_pipelines.cli"]
        return subprocess.run([*cli_module, *arguments], capture_output=True, text=True, env=os.environ)

    search = command("search", "coffee", "--collection", "damaged")  # the serving version's model
    assert search.returncode == 2
    (line,) = search.stderr.splitlines()
    assert f"{weights}: cannot be read as safetensors" in line and "download the model again" in line

    plan = command("index", str(source), "--collection", "damaged", "--shards", "1", "--plan")
    assert plan.returncode == 2 and plan.stderr.splitlines() == [line], plan.stderr

    (source / "b.md").write_text("# Tea\n\nSteep four minutes.")  # something to embed
    index = command("index", str(source), "--collection", "damaged", "--shards", "1")
    assert index.returncode == 1
    failed = [line for line in index.stderr.splitlines() if "failed" in line][0]
    assert "cannot be read as safetensors" in failed and "Traceback" not in index.stderr, index.stderr


def test_a_served_model_must_say_how_its_chunks_are_counted(tmp_path):
    config = tmp_path / "collections.yaml"
    served = "{provider: openai_compatible, base_url: 'http://127.0.0.1:9/v1', model: m}"
    config.write_text(f"collections:\n  - name: served\n    source: {tmp_path}\n    model: {served}\n")
    with pytest.raises(ConfigurationError, match="say how chunks are counted: `tokenizer:`"):
        load_collections(config)


def test_an_encrypted_pdf_is_called_encrypted(tmp_path):
    from fpdf import FPDF

    from embed_pipelines.text.extraction import DocumentExtractor

    pdf = FPDF(format="A4")
    pdf.set_font("helvetica", size=24)
    pdf.add_page()
    pdf.multi_cell(0, 12, text="Secret coffee notes")
    pdf.set_encryption(owner_password="owner", user_password="user")
    pdf.output(str(tmp_path / "secret.pdf"))
    extraction = DocumentExtractor().extract(tmp_path / "secret.pdf")
    assert extraction.error == "the PDF is encrypted (it needs a password): decrypt it, or leave it out of the folder"


def test_a_failed_conversion_is_said_once_by_the_run_not_by_docling(cli_env):
    source = write_corpus(cli_env / "docs", {"a.md": "# A\n\nCoffee.", "broken.docx": "not a zip at all"})
    index = [sys.executable, "-m", "embed_pipelines.cli", "index", str(source), "--collection", "quiet"]
    ran = subprocess.run(index, capture_output=True, text=True, env=os.environ)
    assert ran.returncode == 3, ran.stderr[-2000:]
    assert "Input document" not in ran.stderr  # docling's own log line about the same file
    assert [line for line in ran.stderr.splitlines() if "broken.docx" in line][0].startswith("documents: ")


def test_the_plan_for_a_new_model_counts_every_chunk_it_embeds(cli_env, capsys, monkeypatch, tiny_model):
    from tiny_model import build_tiny_model

    source = write_corpus(cli_env / "docs", {"a.md": "# Coffee\n\nGrind fine.", "b.md": "# Tea\n\nSteep well."})
    assert exit_code(["index", str(source), "--collection", "newmodel", "--shards", "1"]) == 0
    monkeypatch.setenv("EMBED_PIPELINES_MODEL", str(build_tiny_model(cli_env / "other", hidden_size=48, seed=1)))
    capsys.readouterr()
    assert exit_code(["index", str(source), "--collection", "newmodel", "--shards", "1", "--plan"]) == 0
    (embedding,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("text/EmbedChunks")]
    assert "chunks_embedded 2" in embedding


def test_binary_bytes_under_a_text_suffix_are_called_not_text(tmp_path):
    from embed_pipelines.text.extraction import DocumentExtractor

    binary = tmp_path / "random.md"
    binary.write_bytes(random.Random(0).randbytes(65536))
    extraction = DocumentExtractor().extract(binary)
    assert extraction.error == "not text in UTF-8 or cp1252 (binary data, or another encoding): save it as UTF-8"
