"""Retrieval quality and latency per search mode, on questions their corpus's authors wrote apart from the answers.

Question sets (each installable offline: `apt-get install debian-faq git-doc`):
- `debian-faq`: the Debian FAQ's questions (its section headings ending in "?"); the corpus is the FAQ with
  those headings removed, one file per chapter, so an answer must be found by what it says. The relevant span
  is the section's text.
- `gitfaq`: git's FAQ (gitfaq(7)) the same way, in a corpus of git's manual pages.
- `git-options`: exact names, the other kind: `git <command> <option>` for each option a manual page defines
  in its own text (`--onto <newbase>::`), the definition being the span. Dense search misses names most.
- `python-faq` (`--corpus python-faq`, `apt-get install python3.11-doc`): held out. The Python documentation's
  FAQ, the same way; nothing was chosen by it, it checks what the sets above chose.

Each corpus is indexed by `api.index` with the bundled all-MiniLM-L6-v2 in a fresh home, then every question
is asked in each mode through `api.evaluate` (nDCG@10, MRR@10 and the rest; versions/evaluation.py), and the same
chunks are ranked by the reference BM25 (`bm25s`, the same k1/b, Snowball English stemmer and English stop
words) for the keyword side's check. Latency: each mode's questions asked one after another, p50/p99.

    .venv/bin/pip install --isolated bm25s PyStemmer
    .venv/bin/python benchmarks/retrieval.py
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import textwrap
import time
from functools import partial
from pathlib import Path

DEBIAN_FAQ = Path("/usr/share/doc/debian/FAQ/debian-faq.en.txt.gz")
GIT_DOC = Path("/usr/share/doc/git-doc")
PYTHON_FAQ = Path("/usr/share/doc/python3.11/html/_sources/faq")
# `--name <arg>::` and the indented paragraphs under it, up to the next term or unindented paragraph
OPTION = re.compile(r"^(--[a-z][a-z0-9-]*)(?:[=\[ ][^\n]*)?::\n((?:(?!\S+.*::\n)(?!\n\n\S).*\n)+)", re.M)


def debian_faq() -> tuple[dict[str, str], dict[str, list[dict]]]:
    """Chapters as files, questions removed; each question's span is its section's text."""
    if not DEBIAN_FAQ.exists():
        sys.exit(f"{DEBIAN_FAQ} not found: apt-get install debian-faq")
    text = gzip.open(DEBIAN_FAQ, "rt", encoding="utf-8").read().replace("\xa0", " ")
    lines = text.splitlines()
    body = lines[next(i for i, line in enumerate(lines) if line.startswith("Chapter ")) :]  # after the contents
    files, questions, chapter, section = {}, [], "", None
    heading = re.compile(r"^(?:Chapter (\d+)\.|(\d+\.\d+)\.((?:\d+\.)*)) +(.*)")
    i = 0
    while i < len(body):
        match = heading.match(body[i])
        if match:
            title = match.group(4).strip()
            while i + 1 < len(body) and body[i + 1].strip() and not body[i + 1].startswith(" "):
                i += 1  # a heading wrapped onto the next line
                title += " " + body[i].strip()
            if match.group(1):
                chapter = f"{int(match.group(1)):02d}-{re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')[:40]}.md"
                files[chapter], section = f"# {title}\n\n", None
            elif not match.group(3) and title.endswith("?"):
                section = {"question": title, "relevant": [{"path": chapter, "span": ""}]}
                questions.append(section)
            else:  # a section that asks nothing, or a subsection of an answer: its heading stays
                files[chapter] += f"## {title}\n\n"
                section = None if not match.group(3) else section
        elif chapter:
            line = body[i].strip() + "\n"
            files[chapter] += line
            if section is not None:
                section["relevant"][0]["span"] += line
        i += 1
    return files, {"debian-faq": [q for q in questions if len(q["relevant"][0]["span"].split()) >= 5]}


def git_docs() -> tuple[dict[str, str], dict[str, list[dict]]]:
    """git's manual pages, and its FAQ with the questions removed; the FAQ's questions and option names."""
    if not (GIT_DOC / "gitfaq.txt").exists():
        sys.exit(f"{GIT_DOC}/gitfaq.txt not found: apt-get install git-doc")
    files, options = {}, []
    for page in sorted(GIT_DOC.glob("git-*.txt")):
        text = page.read_text(encoding="utf-8", errors="replace")
        files[page.name] = text
        command = page.stem.removeprefix("git-")
        for match in re.finditer(
            r"^(--[a-z][a-z0-9-]*)(?:[=\[ ][^\n]*)?::\n((?:(?!\S+.*::\n)(?!\n\n\S).*\n)+)", text, re.M
        ):
            span = textwrap.dedent(match.group(2)).strip()
            if len(span.split()) >= 8:
                options.append(
                    {"question": f"git {command} {match.group(1)}", "relevant": [{"path": page.name, "span": span}]}
                )
    faq, questions = [], []
    for block in re.split(r"\n(?=\[\[[a-z0-9-]+\]\]\n)", (GIT_DOC / "gitfaq.txt").read_text(encoding="utf-8")):
        match = re.match(r"\[\[[a-z0-9-]+\]\]\n(.+\?)::\n(.*)", block, re.S)
        if not match:
            faq.append(block)
            continue
        answer = match.group(2).strip()
        faq.append(answer)
        span = re.split(r"\n[A-Z][A-Za-z ]+\n-+\n", answer)[0]  # up to the next section's heading
        questions.append({"question": match.group(1), "relevant": [{"path": "gitfaq.txt", "span": span}]})
    files["gitfaq.txt"] = "\n\n".join(faq)
    seen, unique = set(), []
    for option in options:  # one question per name
        if option["question"] not in seen:
            seen.add(option["question"])
            unique.append(option)
    return files, {"gitfaq": questions, "git-options": unique[::2]}  # every other: ~140 names


def python_faq() -> tuple[dict[str, str], dict[str, list[dict]]]:
    """Held out: the Python documentation's FAQ, its question headings removed, as the FAQs above. Nothing in
    the package was chosen by it; it checks what the other sets chose."""
    folder = PYTHON_FAQ
    if not folder.is_dir():
        sys.exit(f"{folder} not found: apt-get install python3.11-doc")
    files, questions = {}, []
    for page in sorted(folder.glob("*.rst.txt")):
        lines, kept, section = page.read_text(encoding="utf-8").splitlines(), [], None
        for i, line in enumerate(lines):
            underline = i + 1 < len(lines) and re.fullmatch(r"([-=~^])\1{3,}", lines[i + 1]) is not None
            if underline and line.strip().endswith("?"):
                section = {"question": line.strip(), "relevant": [{"path": page.name, "span": ""}]}
                questions.append(section)
                continue
            if re.fullmatch(r"([-=~^])\1{3,}", line) and section and not section["relevant"][0]["span"]:
                continue  # the removed heading's underline
            if underline:
                section = None
            kept.append(line)
            if section is not None:
                section["relevant"][0]["span"] += line + "\n"
        files[page.name] = "\n".join(kept)
    return files, {"python-faq": [q for q in questions if len(q["relevant"][0]["span"].split()) >= 5]}


def bm25_reference(chunks: list[tuple[str, str]], questions: list[dict], k: int) -> float:
    """nDCG@k of bm25s over the same chunks (path, text), scored by evaluation.score."""
    import bm25s
    import Stemmer

    from embed_pipelines.storage.keywords import K1, B
    from embed_pipelines.versions.evaluation import read_questions, score

    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
    retriever.index(
        bm25s.tokenize([text for _, text in chunks], stopwords="en", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )

    class Hit:
        def __init__(self, path, text):
            self.document_path, self.text = path, text

    def search(question: str) -> list:
        tokens = bm25s.tokenize([question], stopwords="en", stemmer=stemmer, show_progress=False)
        if not tokens.vocab:
            return []
        found, _ = retriever.retrieve(tokens, k=min(k, len(chunks)), show_progress=False)
        return [Hit(*chunks[i]) for i in found[0]]

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(questions, file)
    return score(read_questions(Path(file.name)), search, k).ndcg


def measure(name: str, files: dict[str, str], sets: dict[str, list[dict]], k: int, home: Path) -> tuple[str, list]:
    """Index the corpus, print each set's figures per mode; returns the version table and the questions asked
    (embedded), for the scaled measurements."""
    from embed_pipelines import api
    from embed_pipelines.resources import PostgresResource
    from embed_pipelines.storage.chunk_search import Question
    from embed_pipelines.storage.registry import find_version, serving_version

    folder = home / name
    for relative, text in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text, encoding="utf-8")
    collection = re.sub(r"[^a-z0-9]+", "_", name)
    started = time.perf_counter()
    result = api.index(folder, collection, shard_count=4)
    assert result.success, f"indexing {name} failed"
    with PostgresResource().connect() as conn:
        record = find_version(conn, collection, serving_version(conn, collection))
        chunks = conn.execute(f'SELECT document_path, text FROM "{record.table}" ORDER BY id').fetchall()
    print(f"\n{name}: {len(files)} files, {len(chunks)} chunks, indexed in {time.perf_counter() - started:.0f} s")
    columns = ("nDCG@10", "MRR@10", "hit@1", "hit@10", "p50 ms", "p99 ms")
    print(f"{'questions':<13}{'n':>5} {'mode':<9}" + "".join(f"{c:>8}" for c in columns))
    for set_name, questions in sets.items():
        path = home / f"{set_name}.json"
        path.write_text(json.dumps(questions))
        results = api.evaluate(path, collection, k=k)
        with PostgresResource().connect() as conn:
            embed = api._embedder(api.TEXT, record)
            asked = [Question(q["question"], embed) for q in questions]
            for question in asked:
                question.vector  # noqa: B018 (embedded before the clock starts: latency is the database's)
            for (_, mode), scores in results.items():
                p50, p99 = latency(asked, partial(ask, conn, record.table, k, mode, None))
                print(
                    f"{set_name:<13}{len(questions):>5} {mode:<9}{scores.ndcg:>8.3f}{scores.mrr:>8.3f}"
                    f"{scores.hit_at_1:>8.3f}{scores.hit_at_k:>8.3f}{p50:>8.1f}{p99:>8.1f}"
                )
        try:
            print(f"{set_name:<13}{len(questions):>5} {'bm25s':<9}{bm25_reference(chunks, questions, k):>8.3f}")
        except ImportError:
            print("  (bm25s reference skipped: .venv/bin/pip install --isolated bm25s PyStemmer)")
    return record.table, asked


def latency(questions: list, ask) -> tuple[float, float]:
    """p50 and p99 milliseconds of asking each question once, one after another."""
    seconds = []
    for question in questions:
        began = time.perf_counter()
        ask(question)
        seconds.append(time.perf_counter() - began)
    return tuple(statistics.quantiles(seconds, n=100)[i] * 1000 for i in (49, 98))


def scaled(table: str, rows: int, questions: list, k: int) -> None:
    """The corpus's rows copied to `rows` (`scaled_copy`), then each mode's latency, and filtered searches with
    and without iterative scans."""
    from embed_pipelines.resources import PostgresResource
    from embed_pipelines.storage.chunk_search import SEARCH_MODES

    with PostgresResource().connect() as conn:
        copy = scaled_copy(conn, table, rows)
        for mode in SEARCH_MODES:
            p50, p99 = latency(questions, partial(ask, conn, copy, k, mode, None))
            print(f"  {mode:<8} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms")
        for share, glob in (("10 %", "b0??/**"), ("1 %", "b00?/**"), ("0.1 %", "b000/**")):
            figures = []
            for search in (partial(ask, conn, copy, k, "dense", glob), partial(plain_filtered, conn, copy, k, glob)):
                found: list[int] = []
                p50, p99 = latency(questions, lambda q, search=search, found=found: found.append(len(search(q))))
                figures.append(f"{min(found)}-{max(found)} rows, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
            print(f"  filter {share:>5}: this search {figures[0]}; plain HNSW {figures[1]}")


def scaled_copy(conn, table: str, rows: int) -> str:
    """The table's rows copied to `rows` (vectors jittered by 0.01 so that copies are not duplicates; each row
    in one of 1,000 path buckets `b000/`..`b999/` for filters of 10 %, 1 % and 0.1 %), indexed as the loader
    indexes a table. Returns the copy's name."""
    from psycopg import sql

    from embed_pipelines.storage.keywords import ensure_keywords
    from embed_pipelines.storage.tables import CHUNK_TABLE, ensure_added_columns, ensure_hnsw_index

    copy = f"{table}_x{rows}"
    dimension = conn.execute(f'SELECT vector_dims(embedding) FROM "{table}" LIMIT 1').fetchone()[0]
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(copy)))
    conn.execute(
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(sql.Identifier(copy), sql.Identifier(table))
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} DROP COLUMN keywords, DROP COLUMN keyword_tokens").format(sql.Identifier(copy))
    )
    began = time.perf_counter()
    conn.execute(
        sql.SQL(
            """INSERT INTO {copy} (id, document_path, source_sha256, chunk_ordinal, text, headings, pages,
                                   chunk_hash, shard, embedding, indexed_at)
               SELECT n, format('b%s/%s/%s', lpad((n % 1000)::text, 3, '0'), n / {size}, document_path),
                      source_sha256, chunk_ordinal, text, headings, pages, chunk_hash, shard,
                      (SELECT array_agg(x + (random()::real - 0.5) * 0.01) FROM unnest(embedding::real[]) AS x
                       WHERE n > 0)::vector({dimension}), indexed_at
               FROM (SELECT t.*, row_number() OVER () AS n
                     FROM {table} AS t CROSS JOIN generate_series(1, ceil({rows}::float / {size})::int)) AS c
               WHERE n <= {rows}"""
        ).format(
            copy=sql.Identifier(copy),
            table=sql.Identifier(table),
            dimension=sql.Literal(dimension),
            rows=sql.Literal(rows),
            size=sql.Literal(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]),
        )
    )
    conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(sql.Identifier(copy)))
    ensure_keywords(conn, copy, "english")
    ensure_added_columns(conn, copy, CHUNK_TABLE)  # and the indexes filters use, as the loader makes them
    loaded = time.perf_counter()
    ensure_hnsw_index(conn, copy)
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(copy)))
    print(
        f"\n{rows:,} rows ({dimension} dimensions): copied with keywords and statistics in "
        f"{loaded - began:.0f} s, HNSW built in {time.perf_counter() - loaded:.0f} s"
    )
    return copy


def ask(conn, table: str, k: int, mode: str, glob: str | None, question) -> list:
    """One search of `table` (a path glob where given)."""
    from embed_pipelines.storage.chunk_search import search
    from embed_pipelines.storage.filters import Filters

    return search(conn, table, question, k, mode=mode, filters=Filters(path=glob))


def plain_filtered(conn, table: str, k: int, glob: str, question) -> list:
    """A filtered search as one would write it against the view before iterative scans."""
    from psycopg import sql

    from embed_pipelines.core.paths import glob_pattern

    with conn.transaction():
        conn.execute("SET LOCAL hnsw.iterative_scan = off")
        return conn.execute(
            sql.SQL("SELECT id FROM {} WHERE document_path ~ %s ORDER BY embedding <=> %s LIMIT %s").format(
                sql.Identifier(table)
            ),
            (glob_pattern(glob), question.vector, k),
        ).fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--corpus",
        choices=("debian-faq", "git", "python-faq"),
        action="append",
        default=None,
        help="repeat for several (default: debian-faq and git; python-faq is the held-out check)",
    )
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument(
        "--scale", type=int, action="append", default=[], help="rows of a scaled copy of the last corpus (100000, ...)"
    )
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="retrieval-"))
    os.environ["EMBED_PIPELINES_HOME"] = str(home / "home")
    os.environ["DAGSTER_HOME"] = str(home / "home" / "dagster")
    corpora = {"debian-faq": debian_faq, "git": git_docs, "python-faq": python_faq}
    for name in args.corpus or ["debian-faq", "git"]:
        files, sets = corpora[name]()
        table, asked = measure(name, files, sets, args.k, home)
    for rows in args.scale:
        scaled(table, rows, asked[:100], args.k)


if __name__ == "__main__":
    main()
