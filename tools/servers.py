"""Private PostgreSQL and Redis servers that a test or benchmark owns and may restart at will.

The machine's shared servers (5432, 6379) serve everyone: tests that stop or restart a server
start their own here, on a free port, in a directory of their own. Nothing here needs Django.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

from tools.brokers import apt_install, port_open, wait_for_port


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's programs (Debian keeps each major version apart)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_tree(root_pid: int) -> list[int]:
    """The pids of ``root_pid`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [root_pid]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def command_line(pid: int) -> list[str]:
    """The arguments ``pid`` was started with ([] once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


class PostgresCluster:
    """A PostgreSQL 15 cluster of its own (initdb into ``directory``, trust auth, fsync off).

    PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
    """

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = Path(directory)
        self.data = self.directory / "data"
        self.port = port or free_port()
        self._owner = None
        if os.geteuid() == 0:
            self._owner = pwd.getpwnam("postgres")

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(postgres_bin() / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            user=self._owner.pw_uid if self._owner else None,
            group=self._owner.pw_gid if self._owner else None,
        )

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = self.directory / "postgres.log"
        self._run("pg_ctl", action, "-D", str(self.data), "-l", str(log), "-o", options, "-w", "-t", "60", *extra)

    def start(self) -> None:
        if port_open("127.0.0.1", self.port):
            return
        if not (postgres_bin() / "initdb").exists():
            apt_install("postgresql")
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._owner is not None:
            os.chown(self.directory, self._owner.pw_uid, self._owner.pw_gid)
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._pg_ctl("start")
        wait_for_port("127.0.0.1", self.port, timeout=60)

    def stop(self) -> None:
        """A fast shutdown: open transactions are rolled back and every client is disconnected."""
        self._pg_ctl("stop", "-m", "fast")
        wait_for_port("127.0.0.1", self.port, timeout=60, closed=True)

    def restart(self) -> None:
        self.stop()
        self.start()


class RedisServer:
    """A private ``redis-server``. With ``persistent`` it keeps its data across restarts (append-only
    file, fsync always); without, a restart loses everything, as the shared set-up does."""

    def __init__(self, directory: Path, port: int | None = None, *, persistent: bool = True) -> None:
        self.port = port or free_port()
        self.directory = Path(directory)
        self.persistent = persistent
        self.process: subprocess.Popen | None = None

    def url_for(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def url(self) -> str:
        return self.url_for(0)

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        binary = shutil.which("redis-server")
        if binary is None:
            apt_install("redis-server")
            binary = shutil.which("redis-server") or "redis-server"
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", str(self.directory)]
        if self.persistent:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            command += ["--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", self.port, timeout=30, process=self.process)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        self.process.wait(timeout=30)
        self.process = None
        wait_for_port("127.0.0.1", self.port, timeout=30, closed=True)

    def restart(self) -> None:
        self.stop()
        self.start()
