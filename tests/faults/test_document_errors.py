"""One document PostgreSQL refuses fails alone: it is named with the reason, keeps its last good rows, and
every other document of every shard is written; text PostgreSQL cannot store (NUL) is made storable."""

from docling_core.types.doc import DocItemLabel, DoclingDocument
from support import indexed_rows, run_index, write_corpus

from embed_pipelines import api
from embed_pipelines.core.shards import shard_of
from embed_pipelines.text.extraction import DocumentExtractor
from embed_pipelines.text.formats import ExtractionStatus


def refuse_rows(postgres, view: str, path: str, message: str) -> str:
    """Make the served table of `view` refuse the rows of one document, as PostgreSQL refuses a bad value;
    returns the table."""
    with postgres.connect() as conn:
        (version,) = conn.execute(
            "SELECT version FROM embed_pipelines_versions WHERE collection = %s", (view,)
        ).fetchone()
        table = f"{view}__{version}"
        conn.execute(
            f"""CREATE FUNCTION "refuse_{view}"() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                  IF NEW.document_path = '{path}' THEN
                    RAISE EXCEPTION '{message}' USING ERRCODE = 'data_exception'; END IF;
                  RETURN NEW; END $$;
                CREATE TRIGGER refuse BEFORE INSERT ON "{table}" FOR EACH ROW EXECUTE FUNCTION "refuse_{view}"()"""
        )
    return table


def test_a_document_the_database_refuses_fails_alone(tmp_path, state_dir, instance, tiny_model, postgres):
    names = [f"doc-{i}.md" for i in range(40)]
    by_shard = sorted(names, key=lambda name: shard_of(name, 4))
    refused, later = by_shard[0], by_shard[-1]  # the first shard synced, and a document of the last one
    assert shard_of(refused, 4) < shard_of(later, 4)
    source = write_corpus(tmp_path / "docs", {name: f"# {name}\n\nFirst text of {name}." for name in names})
    run_index(source, "refused", instance, tiny_model, postgres)
    before = {row[0]: row[2] for row in indexed_rows(postgres, "refused")}
    refuse_rows(postgres, "refused", refused, "value refused")
    for name in (refused, later):
        (source / name).write_text(f"# {name}\n\nSecond text of {name}.")

    result = api.index(source, "refused", shard_count=4, instance=instance, text_model=tiny_model, postgres=postgres)
    assert not result.success, "the run says it left a document behind"
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert refused in failure.description and "value refused" in failure.metadata["failed_files"].value
    with postgres.connect() as conn:
        (synced,) = conn.execute(
            "SELECT synced_shards FROM embed_pipelines_versions WHERE collection = 'refused'"
        ).fetchone()
    assert shard_of(refused, 4) not in synced, "a shard with a refused document is not synced"
    assert refused in api.unfinished("refused", source, 4, {"text": tiny_model}, postgres)[shard_of(refused, 4)]
    after = {row[0]: row[2] for row in indexed_rows(postgres, "refused")}
    assert after[refused] == before[refused], "the refused document keeps its last good rows"
    assert after[later] != before[later], "documents after it are written"
    assert {name: after[name] for name in names if name not in (refused, later)} == {
        name: before[name] for name in names if name not in (refused, later)
    }


def test_html_holding_nul_bytes_is_read_as_text(tmp_path):
    page = tmp_path / "page.html"
    page.write_bytes(b"<html><body><h1>Title</h1><p>A NUL\x00 inside a paragraph</p></body></html>")
    extraction = DocumentExtractor().extract(page)
    assert extraction.status == ExtractionStatus.SUCCESS, extraction.error
    assert "A NUL inside a paragraph" in extraction.document.export_to_text()  # not UTF-16 garbage


def test_chunks_never_hold_a_nul_character(tiny_model):
    document = DoclingDocument(name="binaryish")
    document.add_heading("Head\x00ing")
    document.add_text(label=DocItemLabel.TEXT, text="Text extracted from a PDF with a NUL\x00 inside.")
    chunks = tiny_model.chunker().chunk(document, "binaryish.pdf", "sha")
    assert chunks and all("\x00" not in chunk.text and "\x00" not in "".join(chunk.headings) for chunk in chunks)
    assert "a NUL inside." in chunks[0].text


def test_a_refused_page_document_leaves_the_next_documents_pages_and_regions_intact(
    tmp_path, state_dir, instance, tiny_model, postgres
):
    from support import definitions, write_pdf
    from tiny_visual_model import build_tiny_colqwen2

    from embed_pipelines.automation import shard_range_tags
    from embed_pipelines.core.collection import Collection, VisualBranch
    from embed_pipelines.factory import index_job_name
    from embed_pipelines.visual.model import VisualEmbeddingModel

    source = tmp_path / "docs"
    source.mkdir()
    visual = VisualEmbeddingModel(model=str(build_tiny_colqwen2(tmp_path / "colqwen2")), device="cpu")
    collection = Collection("refpages", source, shards=1, visual=VisualBranch(visual.model))
    job = definitions(collection, tiny_model, postgres, visual).resolve_job_def(index_job_name(collection))

    def sync(pages_of_a: list[str], pages_of_b: list[str]):
        write_pdf(source / "a.pdf", pages_of_a)  # a.pdf is synced before b.pdf
        write_pdf(source / "b.pdf", pages_of_b)
        return job.execute_in_process(instance=instance, tags=shard_range_tags(collection), raise_on_error=False)

    assert sync(["one", "two", "three"], ["alone"]).success
    table = refuse_rows(postgres, "refpages_pages", "a.pdf", "page refused")
    result = sync(["uno", "dos", "tres"], ["solo", "duo"])
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure is not None and "a.pdf" in failure.description and "b.pdf" not in failure.description
    with postgres.connect() as conn:
        pages = conn.execute(
            f"""SELECT p.document_path, p.page_number, count(r.page_id) FROM "{table}" p
                LEFT JOIN "{table}_regions" r ON r.page_id = p.id GROUP BY 1, 2 ORDER BY 1, 2"""
        ).fetchall()
    assert [(path, number) for path, number, _ in pages] == [("a.pdf", 1), ("a.pdf", 2), ("a.pdf", 3),
                                                            ("b.pdf", 1), ("b.pdf", 2)]  # fmt: skip
    assert all(regions > 0 for *_, regions in pages), "every page has its own regions, no stale ones"
