"""What every runtime shares: the program to run, its result, and running it with the wall-clock limit.

A runtime (bubblewrap, a container engine, the host) only says how to wrap the program's argv; ``execute``
starts the wrapped command in its own session with stdout and stderr in files beside the working directory
(capped by the file-size limit), kills everything on the wall-clock limit, and explains how the run ended.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .limits import MB, Limits

#: Bytes of stdout and stderr kept in a result.
TAIL_BYTES = 4000
#: Longest wait for a killed run's processes to be gone.
GROUP_EXIT_SECONDS = 10.0
#: Where the working directory appears inside a sandbox or container.
INSIDE_WORKDIR = "/sandbox"
#: The environment every program gets; nothing of the service's (no DATABASE_URL, SECRET_KEY, tokens).
BASE_ENV = {"LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "TMPDIR": "/tmp"}

#: Where programs find commands, after the bin/ of their read-only paths.
SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
#: Words in stderr that tell which limit a program ran into when the kernel only made a call fail.
_MEMORY_WORDS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")
_PROCESS_WORDS = ("Resource temporarily unavailable", "BlockingIOError", "fork: retry", "can't fork", "Cannot fork")
_OUTPUT_WORDS = ("File too large",)


class SandboxUnavailable(Exception):
    """No way to run a program is allowed here; the message says why and what the operator can do."""


@dataclass
class Program:
    """One run: ``argv`` as the program sees it, in the fresh host directory ``workdir`` (its only writable place)."""

    argv: list[str]
    workdir: Path
    limits: Limits = field(default_factory=Limits)
    #: Container image for docker/podman/apptainer; bubblewrap and the host run the host's /usr.
    image: str | None = None
    #: Host directories the program may read (a service venv); never the project tree.
    read_only: tuple[Path, ...] = ()
    #: Extra environment on top of ``BASE_ENV`` (PATH and HOME are the runtime's).
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Result:
    """How a run ended. ``stopped`` names the limit that stopped it: wall, cpu, memory, processes, output."""

    returncode: int | None
    stdout_tail: str
    stderr_tail: str
    runtime: str
    argv: list[str]
    stopped: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        """Exited with status 0 within its limits."""
        return self.returncode == 0 and self.stopped is None

    def details(self) -> dict[str, str]:
        """What a failure record keeps for the user."""
        return {
            "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail,
            "runtime": self.runtime,
            "stopped": self.stopped or "",
        }


class Runtime(ABC):
    """A way of running programs. Subclasses wrap argv; ``execute`` does the rest."""

    name: str = ""
    #: Whether ``command`` takes ``info_fd`` and reports the sandbox init's PID there (bwrap's --info-fd).
    reports_child_pid: bool = False

    def workdir_inside(self, workdir: Path) -> str:
        """The working directory's path as the program sees it."""
        return INSIDE_WORKDIR

    @abstractmethod
    def problem(self) -> str | None:
        """Why this runtime cannot run programs here (missing, failing its self-test), or None."""

    @abstractmethod
    def command(self, program: Program, *, run_name: str, info_fd: int | None = None) -> list[str]:
        """The full host command line running ``program``."""

    def preexec(self, program: Program) -> Callable[[], None] | None:
        """Run in the child before exec (limits applied on the host side)."""
        return None

    def prepare(self, program: Program) -> None:  # noqa: B027 — optional hook
        """Make the working directory usable by the sandbox's uid."""

    def stop(self, run_name: str) -> None:  # noqa: B027 — optional hook
        """Stop what killing the process group does not reach (a container run by a daemon)."""

    def popen_env(self, program: Program) -> dict[str, str]:
        """The environment of the host command; wrappers start from nothing and set the program's inside."""
        return {}

    def environment(self, program: Program, *, home: str, path: str) -> dict[str, str]:
        """``BASE_ENV`` plus the program's extras, with PATH and HOME set by the runtime."""
        return {**BASE_ENV, **program.env, "PATH": path, "HOME": home}


def tail(path: Path) -> str:
    """The last ``TAIL_BYTES`` of a log file, decoded leniently."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - TAIL_BYTES))
            return handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _diagnose(returncode: int, stderr: str, log_sizes: tuple[int, int], limits: Limits) -> tuple[str | None, str]:
    """The limit a finished run hit, if any, and a sentence for the user."""
    # bwrap and shells report a child killed by signal N as status 128 + N.
    signum = -returncode if returncode < 0 else returncode - 128 if 128 < returncode < 160 else 0
    if signum == signal.SIGXCPU:
        return "cpu", f"exceeded its CPU time limit of {limits.cpu_seconds} s"
    cap = limits.output_mb * MB
    if signum == signal.SIGXFSZ or max(log_sizes) >= cap or any(w in stderr for w in _OUTPUT_WORDS):
        return "output", f"exceeded its output limit of {limits.output_mb} MB per file"
    if returncode != 0 and any(w in stderr for w in _MEMORY_WORDS):
        return "memory", f"ran out of its memory limit of {limits.memory_mb} MB"
    if returncode != 0 and any(w in stderr for w in _PROCESS_WORDS):
        return "processes", f"reached its limit of {limits.processes} processes"
    if signum:
        return None, f"was killed by signal {signum}"
    if returncode:
        return None, f"exited with status {returncode}"
    return None, "exited normally"


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in {"Z", "X"}


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pgid: int, child_pid: int | None) -> None:
    """Wait (bounded) until the run's process group and its namespace's init are gone; then kill what is left.

    bwrap's outer process may exit before the init of the program's PID namespace (in a session of its own)
    has killed the namespace's other processes: return only once that is done, so a run never outlives
    ``execute``.
    """
    deadline = time.monotonic() + GROUP_EXIT_SECONDS
    while time.monotonic() < deadline:
        if not _group_alive(pgid) and not (child_pid and _alive(child_pid)):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    if child_pid and _alive(child_pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child_pid, signal.SIGKILL)


def _child_pid(info: int | None) -> int | None:
    """The PID namespace's init, from what bwrap wrote to ``--info-fd`` (``{"child-pid": N}``)."""
    if info is None:
        return None
    os.set_blocking(info, False)
    try:
        text = os.read(info, 4096).decode(errors="replace")
    except BlockingIOError:
        return None
    match = re.search(r'"child-pid"\s*:\s*(\d+)', text)
    return int(match.group(1)) if match else None


def execute(runtime: Runtime, program: Program) -> Result:
    """Run ``program`` with ``runtime`` and report how it ended (never raises for the program's own failure)."""
    run_name = f"idds-sandbox-{uuid.uuid4().hex[:12]}"
    runtime.prepare(program)
    # A pipe on which the runtime reports the PID of the sandbox's init (bubblewrap only).
    info_read, info_write = os.pipe() if runtime.reports_child_pid else (None, None)
    command = runtime.command(program, run_name=run_name, info_fd=info_write)
    # Logs live beside the working directory, not in it: the program cannot replace or grow them but through
    # its own stdout and stderr, which the file-size limit caps.
    stdout_path = program.workdir.with_name(f"{program.workdir.name}.{run_name}.stdout")
    stderr_path = program.workdir.with_name(f"{program.workdir.name}.{run_name}.stderr")
    try:
        return _run(runtime, program, command, run_name, (stdout_path, stderr_path), (info_read, info_write))
    finally:
        stdout_path.unlink(missing_ok=True)
        stderr_path.unlink(missing_ok=True)
        for fd in (info_read, info_write):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _run(
    runtime: Runtime,
    program: Program,
    command: list[str],
    run_name: str,
    logs: tuple[Path, Path],
    info: tuple[int | None, int | None],
) -> Result:
    stdout_path, stderr_path = logs
    info_read, info_write = info

    def result(returncode: int | None, stopped: str | None, reason: str) -> Result:
        return Result(
            returncode=returncode,
            stdout_tail=tail(stdout_path),
            stderr_tail=tail(stderr_path),
            runtime=runtime.name,
            argv=list(program.argv),
            stopped=stopped,
            reason=reason,
        )

    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        try:
            process = subprocess.Popen(
                command,
                cwd=program.workdir,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=runtime.popen_env(program),
                # Its own session and process group: the wall-clock limit kills everything it started.
                start_new_session=True,
                preexec_fn=runtime.preexec(program),
                pass_fds=() if info_write is None else (info_write,),
            )
        except OSError as exc:
            return result(None, None, f"could not be started: {exc}")
        try:
            returncode = process.wait(timeout=program.limits.wall_seconds)
        except subprocess.TimeoutExpired:
            child_pid = _child_pid(info_read)
            os.killpg(process.pid, signal.SIGKILL)
            # Killing the init of a PID namespace kills every process in it.
            if child_pid and _alive(child_pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child_pid, signal.SIGKILL)
            runtime.stop(run_name)
            process.wait()
            _wait_gone(process.pid, child_pid)
            return result(None, "wall", f"exceeded its wall-clock limit of {program.limits.wall_seconds:g} s")
        _wait_gone(process.pid, _child_pid(info_read))
    sizes = (stdout_path.stat().st_size, stderr_path.stat().st_size)
    stopped, reason = _diagnose(returncode, tail(stderr_path), sizes, program.limits)
    return result(returncode, stopped, reason)
