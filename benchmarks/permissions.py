"""What per-document permissions cost: search beside row-level security, and a change of permissions alone.

Search: the Debian FAQ (its authors' 100 questions) indexed with the bundled all-MiniLM-L6-v2, its rows copied
to 100,000 (benchmarks/retrieval.py's `scaled_copy`), and the copy given principals as a collection with
`access` gives them: 1 % of the rows (paths `b000/` to `b009/`) to `hr`, the rest to `eng`. The same searches
run as the tables' owner (no policy applies: what search costs without permissions), as a reader in `eng`
(99 % of the rows) and as a reader in `hr` (1 %); rows returned and p50/p99 per mode, the plan of a dense
search for each (the policy leaves the HNSW index in use), and the time of the probe a sync runs.

Permission change: 1,000 small Markdown files indexed under `access: {sources: [rules]}` with every file
given to `team_a` (the first sync's time is what re-indexing them costs), then the rules change every
document's principals (half to `team_b`, half to `team_a` and `team_c`): the sync's seconds, chunks the model
embedded, rows written, deleted and given principals.

    .venv/bin/python benchmarks/permissions.py
    .venv/bin/python benchmarks/permissions.py --rows 100000 --documents 1000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from retrieval import debian_faq, latency, scaled_copy

READERS = {"bench_hr_reader": "hr", "bench_eng_reader": "eng"}


def search_beside_policies(home: Path, rows: int, k: int) -> None:
    from psycopg import sql

    from embed_pipelines import api
    from embed_pipelines.resources import PostgresResource
    from embed_pipelines.storage.access import ensure_row_security, set_principals
    from embed_pipelines.storage.chunk_search import Question, search
    from embed_pipelines.storage.registry import find_version, serving_version
    from embed_pipelines.storage.tables import CHUNK_TABLE
    from embed_pipelines.versions.gate import leak_check

    files, sets = debian_faq()
    folder = home / "debian-faq"
    for relative, text in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text, encoding="utf-8")
    assert api.index(folder, "debian_faq", shard_count=4).success
    with PostgresResource().connect() as conn:
        record = find_version(conn, "debian_faq", serving_version(conn, "debian_faq"))
        copy = scaled_copy(conn, record.table, rows)
        paths = [path for (path,) in conn.execute(sql.SQL("SELECT DISTINCT document_path FROM {}").format(
            sql.Identifier(copy)))]  # fmt: skip
        began = time.perf_counter()
        given = set_principals(conn, copy, {path: ["hr" if path < "b010/" else "eng"] for path in paths})
        ensure_row_security(conn, copy, CHUNK_TABLE, enforced=True)
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(copy)))
        print(
            f"principals given to {given:,} rows and row-level security enabled in {time.perf_counter() - began:.1f} s"
        )
        for reader, group in READERS.items():
            for role in (group, reader):
                if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(reader)))
            tables = sql.SQL(", ").join(map(sql.Identifier, CHUNK_TABLE.tables(copy)))
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(tables, sql.Identifier(reader)))
        embed = api._embedder(api.TEXT, record)
        questions = [Question(q["question"], embed) for q in sets["debian-faq"]][:100]
        for question in questions:
            question.vector  # noqa: B018 (embedded before the clock starts: latency is the database's)
        print(f"\n{'reader':<26}{'mode':<8}{'rows':>8}{'p50 ms':>9}{'p99 ms':>9}")
        for reader in ("owner (no policy)", "eng reader (99 %)", "hr reader (1 %)"):
            role = {"eng reader (99 %)": "bench_eng_reader", "hr reader (1 %)": "bench_hr_reader"}.get(reader)
            for mode in ("dense", "hybrid"):
                found: list[int] = []

                def ask(question, role=role, mode=mode, found=found):
                    with conn.transaction():
                        if role:
                            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                        found.append(len(search(conn, copy, question, k, mode=mode)))

                p50, p99 = latency(questions, ask)
                print(f"{reader:<26}{mode:<8}{min(found):>4}-{max(found):<3}{p50:>9.1f}{p99:>9.1f}")
        for role in (None, "bench_eng_reader", "bench_hr_reader"):
            print(f"\nplan of a dense search as {role or 'the owner'}:")
            with conn.transaction():
                if role:
                    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                plan = conn.execute(
                    sql.SQL(
                        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT id FROM {} "
                        "ORDER BY embedding <=> %s LIMIT %s"
                    ).format(sql.Identifier(copy)),  # fmt: skip
                    (questions[0].vector, k),
                ).fetchall()
            print("\n".join(f"  {line[:160]}" for (line,) in plan if "Buffers" not in line))
        began = time.perf_counter()
        probed = leak_check(conn, [copy])
        print(f"\nthe probe after a sync: {probed.summary} in {time.perf_counter() - began:.2f} s")


def permission_change(home: Path, documents: int) -> None:
    from embed_pipelines import api
    from embed_pipelines.resources import PostgresResource

    folder = home / "team-docs"
    for number in range(documents):
        part = folder / f"part{number % 2}"
        part.mkdir(parents=True, exist_ok=True)
        (part / f"note{number:04d}.md").write_text(
            f"# Note {number}\n\nMeeting note {number}: the team agreed on item {number * 7 % 101} and will "
            f"review it again in week {number % 52}.\n",
            encoding="utf-8",
        )
    os.environ["EMBED_PIPELINES_ACCESS"] = "rules"
    os.environ["EMBED_PIPELINES_ACCESS_RULES"] = "**=team_a"
    began = time.perf_counter()
    first = api.index(folder, "team_docs", shard_count=16)
    indexed = time.perf_counter() - began
    assert first.success
    os.environ["EMBED_PIPELINES_ACCESS_RULES"] = "part1/**=team_b;**=team_a,team_c"
    began = time.perf_counter()
    changed = api.index(folder, "team_docs", shard_count=16)
    seconds = time.perf_counter() - began
    assert changed.success
    figures = _figures(changed)
    with PostgresResource().connect() as conn:
        counts = dict(conn.execute("SELECT array_to_string(principals, '+'), count(*) FROM team_docs GROUP BY 1"))
    print(f"\n{documents:,} documents: first sync (what re-indexing them costs) {indexed:.1f} s")
    print(
        f"permission change of {documents:,} documents: {seconds:.1f} s; chunks embedded "
        f"{figures.get('chunks_embedded', 0)}, rows written {figures.get('rows_written', 0)}, deleted "
        f"{figures.get('rows_deleted', 0)}, given principals {figures.get('rows_given_principals', 0)} "
        f"({figures.get('documents_given_principals', 0)} documents); rows by principal now {counts}"
    )


def _figures(result) -> dict:
    """The numbers the run's steps report (each step's materializations of its shards carry the run's figures)."""
    by_asset = {event.asset_key: event.materialization.metadata for event in result.get_asset_materialization_events()}
    return {
        name: value.value
        for metadata in by_asset.values()
        for name, value in metadata.items()
        if isinstance(getattr(value, "value", None), int) and not isinstance(value.value, bool)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--documents", type=int, default=1_000)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="permissions-"))
    os.environ["EMBED_PIPELINES_HOME"] = str(home / "home")
    os.environ["DAGSTER_HOME"] = str(home / "home" / "dagster")
    search_beside_policies(home, args.rows, args.k)
    permission_change(home, args.documents)


if __name__ == "__main__":
    main()
