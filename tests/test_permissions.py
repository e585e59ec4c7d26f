"""Per-document permissions, enforced by PostgreSQL's row-level security for real roles in the embedded server:
each reader sees exactly the rows its roles admit, through `search` and through a plain SELECT on the view,
before and after a promotion and a rollback; a document no rule covers is hidden and named; a change of
permissions alone updates principals in place (no model call, no row written anew); a broken policy fails the
probe that guards promotion."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd

import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from support import definitions, latest_metadata, run_index, served_version, write_corpus, write_pdf
from tiny_visual_model import build_tiny_colqwen2

from embed_pipelines import api, cli
from embed_pipelines.assets.common import asset_key
from embed_pipelines.assets.reporting import failure_reason
from embed_pipelines.automation import shard_range_tags
from embed_pipelines.config import resolve_collection
from embed_pipelines.core.access import AccessPolicy, AccessRule, permissions_of
from embed_pipelines.core.collection import Collection, VisualBranch
from embed_pipelines.core.rows import SourceFile
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.factory import index_job_name
from embed_pipelines.pipeline.families import accepted_by
from embed_pipelines.resources import PostgresResource
from embed_pipelines.storage.registry import serving_version
from embed_pipelines.sync.pending import pending_sync
from embed_pipelines.versions.gate import leak_check
from embed_pipelines.visual.model import VisualEmbeddingModel

CORPUS = {
    "hr/salaries.md": "# Salaries\n\nThe salary bands of every team are reviewed each spring by the people team.",
    "eng/deploys.md": "# Deploys\n\nDeploys go out on Tuesdays after the canary has run for an hour.",
    "both/offsites.md": "# Offsites\n\nThe offsite budget covers travel and two nights of lodging for each team.",
    "pub/handbook.md": "# Handbook\n\nThe office opens at eight and the coffee machine is cleaned every Friday.",
    "loose/notes.md": "# Notes\n\nA file in a folder that no access rule covers.",
}
RULES = "hr/**=perm_hr;eng/**=perm_eng;both/**=perm_hr,perm_eng;pub/**=public"
READERS = {  # login role -> the group roles it is a member of
    "perm_alice": ["perm_hr"],
    "perm_bob": ["perm_eng"],
    "perm_carol": ["perm_hr", "perm_eng"],
    "perm_dave": [],
}
ADMITTED = {
    "perm_alice": {"hr/salaries.md", "both/offsites.md", "pub/handbook.md"},
    "perm_bob": {"eng/deploys.md", "both/offsites.md", "pub/handbook.md"},
    "perm_carol": {"hr/salaries.md", "eng/deploys.md", "both/offsites.md", "pub/handbook.md"},
    "perm_dave": {"pub/handbook.md"},
}


def _make_roles(postgres: PostgresResource) -> None:
    """Groups, members, and a pooled application role that may act as alice or bob but holds neither's rows."""
    with postgres.connect() as conn:
        for role in ("perm_hr", "perm_eng", *READERS, "perm_app"):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(role), sql.SQL(
                    "NOLOGIN" if role in ("perm_hr", "perm_eng") else "LOGIN")))  # fmt: skip
        for reader, groups in READERS.items():
            for group in groups:
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(reader)))
            conn.execute(sql.SQL("GRANT {} TO perm_app WITH INHERIT FALSE").format(sql.Identifier(reader)))
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO perm_app, " + ", ".join(READERS))


def _as(postgres: PostgresResource, role: str, monkeypatch) -> PostgresResource:
    variable = f"DSN_{role.upper()}"
    monkeypatch.setenv(variable, make_conninfo(**{**conninfo_to_dict(postgres.database().uri()), "user": role}))
    return PostgresResource(dsn_env_var=variable)


@pytest.fixture
def protected(tmp_path, state_dir, instance, tiny_model, postgres, monkeypatch):
    monkeypatch.setenv("EMBED_PIPELINES_ACCESS", "rules")
    monkeypatch.setenv("EMBED_PIPELINES_ACCESS_RULES", RULES)
    source = write_corpus(tmp_path / "docs", CORPUS)
    collection = f"perm_{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]}"
    result = run_index(source, collection, instance, tiny_model, postgres, shard_count=2)
    _make_roles(postgres)
    return source, collection, result


def _seen(collection: str, postgres: PostgresResource, monkeypatch, role: str) -> tuple[set, set, set]:
    """What `role` finds: by search as itself, by search through the pooled role, and by a plain SELECT."""
    reader = _as(postgres, role, monkeypatch)
    searched = {hit.document_path for hit in api.search("team", collection, k=20, postgres=reader, mode="dense")}
    pooled = _as(postgres, "perm_app", monkeypatch)
    through_pool = {hit.document_path for hit in api.search("team", collection, k=20, postgres=pooled, role=role)}
    with reader.connect(ddl=False) as conn:
        selected = {path for (path,) in conn.execute(sql.SQL("SELECT document_path FROM {}").format(
            sql.Identifier(collection)))}  # fmt: skip
    return searched, through_pool, selected


def _everyone_sees_exactly_their_rows(collection, postgres, monkeypatch) -> None:
    for role, admitted in ADMITTED.items():
        searched, through_pool, selected = _seen(collection, postgres, monkeypatch, role)
        assert searched == through_pool == selected == admitted, role


def test_each_reader_sees_exactly_its_documents_across_a_promotion_and_a_rollback(
    protected, instance, wider_tiny_model, postgres, monkeypatch
):
    source, collection, result = protected
    _everyone_sees_exactly_their_rows(collection, postgres, monkeypatch)

    said = [record.user_message for record in instance.all_logs(result.run_id)]
    assert any("loose/notes.md: no access rule covers it" in message for message in said)
    assert latest_metadata(instance, collection, "vector_index")["documents_readable_by_nobody"] == 1
    with postgres.connect() as conn:  # the pipeline's own role (the tables' owner) still holds the hidden row
        assert conn.execute(sql.SQL("SELECT principals FROM {} WHERE document_path = 'loose/notes.md'").format(
            sql.Identifier(collection))).fetchone()[0] == []  # fmt: skip
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["readers_see_only_their_rows"] is True

    promoted = run_index(source, collection, instance, wider_tiny_model, postgres, shard_count=2)
    with postgres.connect() as conn:
        assert serving_version(conn, collection) == served_version(wider_tiny_model)
    gate_checks = {e.check_name: e.passed for e in promoted.get_asset_check_evaluations()}
    assert gate_checks["gate_readers_see_only_their_rows"] is True
    _everyone_sees_exactly_their_rows(collection, postgres, monkeypatch)

    assert api.rollback(collection, instance=instance, postgres=postgres).success
    with postgres.connect() as conn:
        assert serving_version(conn, collection) != served_version(wider_tiny_model)
    _everyone_sees_exactly_their_rows(collection, postgres, monkeypatch)


def test_the_pooled_role_alone_sees_only_public_rows_and_cannot_act_as_a_stranger(protected, postgres, monkeypatch):
    _, collection, _ = protected
    pooled = _as(postgres, "perm_app", monkeypatch)
    alone = {hit.document_path for hit in api.search("team", collection, k=20, postgres=pooled, mode="dense")}
    assert alone == {"pub/handbook.md"}  # its memberships carry no rights until it sets the role
    with postgres.connect() as conn:
        conn.execute("DROP ROLE IF EXISTS perm_stranger")
        conn.execute("CREATE ROLE perm_stranger")
    with pytest.raises(Exception, match="permission denied to set role"):
        api.search("team", collection, k=20, postgres=pooled, role="perm_stranger")


def test_a_permission_change_updates_principals_in_place_without_the_model(
    protected, instance, tiny_model, postgres, monkeypatch
):
    source, collection, _ = protected
    with postgres.connect() as conn:
        before = conn.execute(sql.SQL("SELECT id, document_path FROM {} ORDER BY id").format(
            sql.Identifier(collection))).fetchall()  # fmt: skip
    monkeypatch.setenv("EMBED_PIPELINES_ACCESS_RULES", RULES.replace("hr/**=perm_hr", "hr/**=perm_eng"))
    run_index(source, collection, instance, tiny_model, postgres, shard_count=2)

    assert latest_metadata(instance, collection, "embeddings").get("chunks_embedded", 0) == 0
    loaded = latest_metadata(instance, collection, "vector_index")
    assert loaded.get("rows_written", 0) == loaded.get("rows_deleted", 0) == 0
    assert loaded["documents_given_principals"] == 1
    with postgres.connect() as conn:
        after = conn.execute(sql.SQL("SELECT id, document_path FROM {} ORDER BY id").format(
            sql.Identifier(collection))).fetchall()  # fmt: skip
    assert after == before, "the same rows, updated in place"
    searched, _, selected = _seen(collection, postgres, monkeypatch, "perm_bob")
    assert "hr/salaries.md" in searched and "hr/salaries.md" in selected
    searched, _, selected = _seen(collection, postgres, monkeypatch, "perm_alice")
    assert "hr/salaries.md" not in searched | selected


def test_a_file_mode_change_alone_is_noticed_and_changes_who_reads_it(
    tmp_path, state_dir, instance, tiny_model, postgres, monkeypatch
):
    group = grp.getgrgid(os.getgid()).gr_name
    monkeypatch.setenv("EMBED_PIPELINES_ACCESS", "posix")
    source = write_corpus(tmp_path / "docs", {"a.md": CORPUS["hr/salaries.md"], "b.md": CORPUS["eng/deploys.md"]})
    (source / "a.md").chmod(0o640)
    (source / "b.md").chmod(0o644)
    collection = f"mode_{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]}"
    run_index(source, collection, instance, tiny_model, postgres, shard_count=1)
    _make_roles(postgres)
    with postgres.connect() as conn:
        principals = dict(conn.execute(sql.SQL("SELECT DISTINCT document_path, principals FROM {}").format(
            sql.Identifier(collection))).fetchall())  # fmt: skip
    owner = pwd.getpwuid(os.getuid()).pw_name
    assert principals == {"a.md": sorted({owner, group}), "b.md": sorted({owner, group, "public"})}

    spec = resolve_collection(collection, source, 1)
    assert not pending_sync(spec, accepted_by(spec))
    (source / "b.md").chmod(0o600)  # a mode change alters no modification time
    assert pending_sync(spec, accepted_by(spec)).shards == {"0"}, "the sensor asks for its shard"
    run_index(source, collection, instance, tiny_model, postgres, shard_count=1)
    assert latest_metadata(instance, collection, "embeddings").get("chunks_embedded", 0) == 0
    searched, _, selected = _seen(collection, postgres, monkeypatch, "perm_dave")
    assert searched == selected == set(), "b.md is no longer readable by others"


def test_a_policy_that_admits_too_much_fails_the_probe(protected, postgres):
    _, collection, _ = protected
    with postgres.connect() as conn:
        table = f"{collection}__{serving_version(conn, collection)}"
        assert leak_check(conn, [collection, table]).passed
        conn.execute(sql.SQL("CREATE POLICY wide_open ON {} FOR SELECT USING (true)").format(sql.Identifier(table)))
        found = leak_check(conn, [collection, table])
        conn.execute(sql.SQL("DROP POLICY wide_open ON {}").format(sql.Identifier(table)))
    assert not found.passed
    assert found.figures["rows_leaked"] > 0 and "perm_hr" in found.summary


def test_where_permissions_come_from_and_how_sources_combine():
    def file(path, permissions=None, metadata="{}"):
        return SourceFile(path=path, size=1, mtime_ns=1, sha256="x", title=None, metadata=metadata,
                          permissions=permissions)  # fmt: skip

    rules = (AccessRule("hr/**", ("hr",)),)
    first = AccessPolicy(sources=("rules", "posix"), rules=rules)
    assert permissions_of(file("hr/a.md", "ann:staff:0600"), first).principals == ("hr",)
    assert permissions_of(file("x/a.md", "ann:staff:0644"), first).principals == ("ann", "public", "staff")
    assert permissions_of(file("x/a.md", "1234:5678:0640"), first).principals == ()  # unnamed ids are no roles
    union = AccessPolicy(sources=("rules", "posix"), rules=rules, combine="union")
    assert permissions_of(file("hr/a.md", "ann:staff:0600"), union).principals == ("ann", "hr")
    strict = AccessPolicy(sources=("rules", "metadata"), rules=rules, combine="all")
    unknown = permissions_of(file("hr/a.md"), strict)
    assert unknown.principals == () and "metadata has no `principals`" in unknown.unknown
    both = permissions_of(file("hr/a.md", metadata='{"principals": "hr, legal"}'), strict)
    assert both.principals == ("hr",)
    by_metadata = AccessPolicy(sources=("metadata",))
    assert permissions_of(file("a.md", metadata='{"principals": ["legal"]}'), by_metadata).principals == ("legal",)
    nothing = permissions_of(file("elsewhere/a.md"), AccessPolicy(sources=("rules",), rules=rules))
    assert nothing.principals == () and nothing.unknown == "no access rule covers it"
    with pytest.raises(ConfigurationError, match="no `rules`"):
        AccessPolicy(sources=("rules",))


def test_pages_and_their_regions_are_read_by_their_documents_principals(
    tmp_path, state_dir, instance, postgres, tiny_model, monkeypatch
):
    source = tmp_path / "docs"
    for folder in ("hr", "pub"):
        (source / folder).mkdir(parents=True)
    write_pdf(source / "hr" / "review.pdf", ["Performance review", "Salary band"])
    write_pdf(source / "pub" / "menu.pdf", ["Canteen menu"])
    visual = build_tiny_colqwen2(tmp_path / "tiny-colqwen2")
    access = AccessPolicy(sources=("rules",), rules=(AccessRule("hr/**", ("perm_hr",)), AccessRule("**", ("public",))))
    collection = Collection("permpg", source, shards=2, visual=VisualBranch(str(visual), "colqwen2"), access=access)
    model = VisualEmbeddingModel(model=str(visual), family="colqwen2", device="cpu")
    job = definitions(collection, tiny_model, postgres, model).resolve_job_def(index_job_name(collection))
    result = job.execute_in_process(instance=instance, tags=shard_range_tags(collection), raise_on_error=False)
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert "readers_see_only_their_rows" in {
        e.check_name for e in result.get_asset_check_evaluations() if e.asset_key == asset_key(collection, "page_index")
    }
    _make_roles(postgres)
    with postgres.connect() as conn:
        table = f"permpg_pages__{serving_version(conn, 'permpg_pages')}"
    for role, admitted in (("perm_dave", {"pub/menu.pdf"}), ("perm_alice", {"hr/review.pdf", "pub/menu.pdf"})):
        reader = _as(postgres, role, monkeypatch)
        hits = api.search("salary", "permpg", k=10, family="pages", postgres=reader)
        assert {hit.document_path for hit in hits} == admitted, role
        with reader.connect(ddl=False) as conn:
            pages = conn.execute("SELECT document_path, id FROM permpg_pages").fetchall()
            regions = conn.execute(sql.SQL("SELECT DISTINCT page_id FROM {}").format(
                sql.Identifier(f"{table}_regions"))).fetchall()  # fmt: skip
        assert {path for path, _ in pages} == admitted, role
        assert {page for (page,) in regions} == {page for _, page in pages}, "regions only of the pages it reads"


def test_versions_built_before_access_are_guarded_at_its_first_sync_and_never_served_unguarded(
    tmp_path, state_dir, instance, tiny_model, wider_tiny_model, postgres, monkeypatch
):
    source = write_corpus(tmp_path / "docs", CORPUS)
    collection = f"late_{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]}"
    run_index(source, collection, instance, tiny_model, postgres, shard_count=2)  # no access yet: every row open
    run_index(source, collection, instance, wider_tiny_model, postgres, shard_count=2)
    _make_roles(postgres)  # readers keep grants on both versions' tables (each served once)
    monkeypatch.setenv("EMBED_PIPELINES_ACCESS", "rules")
    monkeypatch.setenv("EMBED_PIPELINES_ACCESS_RULES", RULES)

    refused = api.rollback(collection, instance=instance, postgres=postgres)  # before any sync with access
    assert not refused.success
    (failure,) = [event for event in refused.all_events if event.is_step_failure]
    assert "was built without `access`" in failure_reason(failure.step_failure_data.error)

    run_index(source, collection, instance, wider_tiny_model, postgres, shard_count=2)
    older = f"{collection}__{served_version(tiny_model)}"
    with _as(postgres, "perm_dave", monkeypatch).connect(ddl=False) as conn:  # the older table, read directly
        assert {path for (path,) in conn.execute(f'SELECT DISTINCT document_path FROM "{older}"')} == {
            "pub/handbook.md"
        }
    assert api.rollback(collection, instance=instance, postgres=postgres).success
    with postgres.connect() as conn:
        assert serving_version(conn, collection) == served_version(tiny_model)
    _everyone_sees_exactly_their_rows(collection, postgres, monkeypatch)


def test_keyword_search_finds_through_its_index_only_what_the_reader_may_read(protected, postgres, monkeypatch):
    _, collection, _ = protected
    for role, admitted in ADMITTED.items():
        reader = _as(postgres, role, monkeypatch)
        found = {hit.document_path for hit in api.search("team", collection, k=20, postgres=reader, mode="keyword")}
        assert found == {path for path in admitted if "team" in CORPUS[path]}, role
    with postgres.connect() as conn:
        table = f"{collection}__{serving_version(conn, collection)}"
        conn.execute("DROP ROLE IF EXISTS perm_provisioner")  # a member of alice who may not become her
        conn.execute("CREATE ROLE perm_provisioner LOGIN")
        conn.execute("GRANT perm_alice TO perm_provisioner WITH INHERIT FALSE, SET FALSE")
    with _as(postgres, "perm_provisioner", monkeypatch).connect(ddl=False) as conn:
        with pytest.raises(Exception, match="may not read"):
            conn.execute("SELECT embed_pipelines_term_rows(%s::regclass, 'salari', 'perm_alice')", (table,))
    with _as(postgres, "perm_dave", monkeypatch).connect(ddl=False) as conn:
        for word in ("office", "salary"):  # the handbook's, the salary bands' (which dave may not read)
            matched = conn.execute(
                "SELECT id FROM embed_pipelines_matching(%s::regclass, to_tsquery('english', %s), current_user)",
                (table, word),
            )
            visible = conn.execute(f"SELECT id FROM \"{table}\" WHERE keywords @@ to_tsquery('english', %s)", (word,))
            assert {id for (id,) in matched} == {id for (id,) in visible}, word
        assert visible.rowcount == 0
        with pytest.raises(Exception, match="may not read"):  # another reader's rows, by naming that reader
            conn.execute("SELECT embed_pipelines_matching(%s::regclass, 'salari', 'perm_alice')", (table,))
        conn.rollback()
        assert conn.execute(f'SELECT count(*) FROM "{table}_terms"').fetchone()[0] == 0, "every word: not for readers"
        # a table of its own making, with a policy of its own: nothing of it runs as the function's owner
        conn.execute("CREATE TEMP TABLE mine (id bigint, keywords tsvector, keyword_tokens int, principals text[])")
        conn.execute("CREATE POLICY embed_pipelines_readers ON mine USING (true)")
        conn.execute("ALTER TABLE mine ENABLE ROW LEVEL SECURITY")
        with pytest.raises(Exception, match="may not read"):
            conn.execute("SELECT embed_pipelines_matching('mine'::regclass, 'team', current_user)")
        conn.rollback()
        # a view of its own named pg_roles, which would claim every role, is not what decides
        conn.execute(
            "CREATE TEMP VIEW pg_roles AS SELECT r.rolname, me.oid FROM pg_catalog.pg_roles AS r, "
            "pg_catalog.pg_roles AS me WHERE me.rolname = current_user"
        )
        seen = {path for (path,) in conn.execute(sql.SQL("SELECT document_path FROM {}").format(
            sql.Identifier(collection)))}  # fmt: skip
        assert seen == {"pub/handbook.md"}


def test_search_from_the_command_line_as_a_role(protected, postgres, monkeypatch, capsys):
    _, collection, _ = protected
    monkeypatch.setenv("EMBED_PIPELINES_DSN", postgres.database().uri())  # the pipeline's own role, which sets it
    capsys.readouterr()
    question = ["search", "team office", "--collection", collection, "-k", "20", "--mode", "dense"]
    assert cli.main([*question, "--role", "perm_dave"]) == 0
    shown = capsys.readouterr().out
    assert "pub/handbook.md" in shown and "hr/salaries.md" not in shown and "eng/deploys.md" not in shown
    assert cli.main(question) == 0
    assert "hr/salaries.md" in capsys.readouterr().out, "without a role: the owner's view, every row"
