"""Real text files are indexed by their suffix: docling's content sniffing must not call prose or
tab-separated results CSV and refuse them ("File format not allowed"); CSV and TSV files are indexed."""

import pytest

from embed_pipelines.text.extraction import DocumentExtractor
from embed_pipelines.text.formats import ExtractionStatus

FILES = {  # name: (content, a word the converted text must hold)
    # a comma on every line: docling's sniffing took files like this for CSV and refused them
    "minutes.txt": (
        "We met on Monday, and agreed on three points.\nFirst, the build stays green.\n"
        "Second, releases ship on Fridays.\nThird, nobody deploys at night.\n",
        "Fridays",
    ),
    "results.txt": ("run\ttime\tscore\n1\t10.2\t0.91\n2\t9.8\t0.93\n", "score"),
    "changes.rst": ("Changes, in short\n=================\n\nAdded foo, bar.\nFixed baz, qux.\n", "baz"),
    "table.md": ("| city | people |\n| --- | --- |\n| Paris, France | 2,100,000 |\n", "Paris"),
    "stations.csv": ("station,river,level_cm\nBasel,Rhine,312\nCologne,Rhine,455\n", "Cologne"),
    "stations.tsv": ("station\triver\tlevel_cm\nPassau\tDanube\t602\nVienna\tDanube\t388\n", "Passau"),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_text_files_convert_by_their_suffix(tmp_path, name):
    content, word = FILES[name]
    path = tmp_path / name
    path.write_text(content)
    extraction = DocumentExtractor().extract(path)
    assert extraction.status == ExtractionStatus.SUCCESS, extraction.error
    assert word in extraction.document.export_to_text()
