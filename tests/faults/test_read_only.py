"""Search needs SELECT only: a reader role searches in every mode and with every filter, and keeps reading the
view and its version (with the tables beside it) across a promotion (the swap re-grants what the view had)."""

from psycopg.conninfo import conninfo_to_dict, make_conninfo
from support import SMALL_CORPUS, run_index, served_version, write_corpus

from embed_pipelines import api
from embed_pipelines.resources import PostgresResource


def test_a_select_only_role_searches_across_a_promotion(
    tmp_path, state_dir, instance, tiny_model, wider_tiny_model, postgres, monkeypatch
):
    monkeypatch.setenv("EMBED_PIPELINES_METADATA_FROM_PATH", "{section}/**")
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "readonly", instance, tiny_model, postgres)
    with postgres.connect() as conn:  # what a DBA grants the reader (README: a reader role)
        conn.execute("DROP ROLE IF EXISTS ro_reader")
        conn.execute("CREATE ROLE ro_reader LOGIN")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO ro_reader")  # the view and what exists now
    reader_dsn = make_conninfo(**{**conninfo_to_dict(postgres.database().uri()), "user": "ro_reader"})
    monkeypatch.setenv("READER_DSN", reader_dsn)
    reader = PostgresResource(dsn_env_var="READER_DSN")

    assert api.search("how hard should I tamp?", "readonly", k=2, postgres=reader)
    run_index(source, "readonly", instance, wider_tiny_model, postgres)  # a new version is promoted
    with postgres.connect() as conn:
        (serving,) = conn.execute(
            "SELECT version FROM embed_pipelines_promotions WHERE collection = 'readonly' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert serving == served_version(wider_tiny_model)
    hits = api.search("how hard should I tamp?", "readonly", k=2, postgres=reader)
    assert len(hits) == 2
    for mode in ("keyword", "hybrid"):  # the keyword statistics beside the table are re-granted too
        assert api.search("tamp level", "readonly", k=2, postgres=reader, mode=mode)[0].document_path == (
            "guide/espresso.md"
        )
    filtered = api.search("coffee", "readonly", k=10, postgres=reader, where={"section": "guide"},
                          modified_after="2000-01-01")  # fmt: skip
    assert filtered and {hit.document_path.split("/")[0] for hit in filtered} == {"guide"}
    with reader.connect(ddl=False) as conn:
        assert conn.execute("SELECT count(*) FROM readonly").fetchone()[0] > 0, "the view's grant survived"
