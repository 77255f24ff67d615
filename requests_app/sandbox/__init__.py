"""Running user programs: one module for every work type that runs code a user supplied (docs/sandbox.md).

Use::

    runtime = runtime_for(owner)                       # or SandboxUnavailable with the reason
    with work_directory() as workdir:                  # fresh, private, removed afterwards
        ...write inputs into workdir...
        inside = runtime.workdir_inside(workdir)       # the same directory as the program sees it
        result = run(Program(argv=[...], workdir=workdir, limits=limits_for(...)), runtime=runtime)
        data = read_output(workdir, "output.json")     # refuses links and paths out of the directory

``sandbox_problem(owner)`` answers at submission whether a program of this owner could run at all.
The runtime is ``IDDS_SANDBOX_RUNTIME`` (bubblewrap by default; docker, podman or apptainer); the host only
when ``IDDS_SANDBOX_ALLOW_HOST`` is set, and then only for staff. Nothing here imports a work type.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings

from .base import INSIDE_WORKDIR, Program, Result, Runtime, SandboxUnavailable, execute
from .bubblewrap import Bubblewrap
from .container import ENGINES, Container
from .host import Host
from .limits import Limits

__all__ = [
    "INSIDE_WORKDIR",
    "Limits",
    "Program",
    "Result",
    "Runtime",
    "SandboxUnavailable",
    "default_limits",
    "is_tarball",
    "read_output",
    "run",
    "runtime_for",
    "sandbox_problem",
    "service_runtime",
    "unpack_upload",
    "uploaded_file",
    "work_directory",
]

RUNTIMES = ("bubblewrap", *ENGINES, "host")
#: A self-test spawns a process; submissions within this many seconds reuse its answer.
PROBLEM_CACHE_SECONDS = 30.0
#: Largest result file read back from a program.
MAX_OUTPUT_READ = 16 * 1024 * 1024
TARBALL_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
#: An uploaded tarball unpacks to at most this many members and bytes (a small archive can expand to fill the
#: disk before the program even starts).
MAX_UNPACKED_MEMBERS = 10_000
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024

_cache: dict[tuple[Any, ...], tuple[float, str | None]] = {}
_cache_lock = threading.Lock()


def default_limits() -> Limits:
    """The operator's limits (``IDDS_SANDBOX_*``); a program may ask for less, never more."""
    return Limits(
        cpu_seconds=settings.IDDS_SANDBOX_CPU_SECONDS,
        memory_mb=settings.IDDS_SANDBOX_MEMORY_MB,
        processes=settings.IDDS_SANDBOX_PROCESSES,
        output_mb=settings.IDDS_SANDBOX_OUTPUT_MB,
        wall_seconds=float(settings.IDDS_SANDBOX_WALL_SECONDS),
    )


def configured_runtime() -> Runtime:
    """The runtime ``IDDS_SANDBOX_RUNTIME`` names, built from the settings."""
    name = settings.IDDS_SANDBOX_RUNTIME
    binary = settings.IDDS_SANDBOX_BINARY or None
    if name == "bubblewrap":
        return Bubblewrap(
            binary=binary or "bwrap", read_only=_read_only_setting(), uid_base=settings.IDDS_SANDBOX_UID_BASE
        )
    if name == "host":
        return Host()
    return Container(name, binary=binary, default_image=settings.IDDS_SANDBOX_IMAGE)


def _read_only_setting() -> tuple[Path, ...]:
    return visible_paths(Path(p) for p in settings.IDDS_SANDBOX_READ_ONLY_PATHS)


def visible_paths(paths: Iterable[Path]) -> tuple[Path, ...]:
    """``paths`` resolved, or ``SandboxUnavailable`` for one that would show the project or its var/ directory."""
    hidden = [Path(settings.BASE_DIR).resolve(), Path(settings.VAR_DIR).resolve()]
    resolved = tuple(Path(p).resolve() for p in paths)
    for path in resolved:
        if any(path == secret or path in secret.parents for secret in hidden):
            raise SandboxUnavailable(f"{path} would show the service's own files to programs; bind a subdirectory")
    return resolved


def _problem(runtime: Runtime) -> str | None:
    """``runtime.problem()``, remembered for a short while."""
    key = (
        runtime.name,
        getattr(runtime, "binary", ""),
        getattr(runtime, "read_only", ()),
        getattr(runtime, "default_image", ""),
    )
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(key)
        if cached and now - cached[0] < PROBLEM_CACHE_SECONDS:
            return cached[1]
    problem = runtime.problem()
    with _cache_lock:
        _cache[key] = (now, problem)
    return problem


def host_allowed(owner: Any) -> bool:
    """Only staff, and only where the operator set ``IDDS_SANDBOX_ALLOW_HOST``."""
    is_staff = bool(getattr(owner, "is_staff", False) or getattr(owner, "is_superuser", False))
    return bool(settings.IDDS_SANDBOX_ALLOW_HOST) and is_staff


def runtime_for(owner: Any, *, image: str | None = None) -> Runtime:
    """How ``owner``'s program runs, or ``SandboxUnavailable`` saying why it cannot and what to do."""
    runtime = configured_runtime()
    if isinstance(runtime, Host):
        if host_allowed(owner):
            return runtime
        raise SandboxUnavailable(
            "IDDS_SANDBOX_RUNTIME=host runs programs without a sandbox, which only staff may do, and only with "
            "IDDS_SANDBOX_ALLOW_HOST=true; the operator can set IDDS_SANDBOX_RUNTIME=bubblewrap"
        )
    if image and not isinstance(runtime, Container):
        raise SandboxUnavailable(
            f"a container image ({image!r}) needs a container runtime, but IDDS_SANDBOX_RUNTIME={runtime.name}; "
            "give a tarball instead, or the operator can set IDDS_SANDBOX_RUNTIME to docker, podman or apptainer"
        )
    problem = _problem(runtime)
    if problem is None:
        return runtime
    if host_allowed(owner):
        return Host()
    raise SandboxUnavailable(
        f"no sandbox can run user programs here: {problem}. The operator can install bubblewrap "
        "(apt-get install bubblewrap) or set IDDS_SANDBOX_RUNTIME to a working docker, podman or apptainer"
    )


def sandbox_problem(owner: Any, *, image: str | None = None) -> str | None:
    """Why ``owner``'s program could not run here, or None; asked at submission."""
    try:
        runtime_for(owner, image=image)
    except SandboxUnavailable as exc:
        return str(exc)
    return None


def service_runtime() -> Runtime:
    """For the service's own helper programs (a generator in its own venv): bubblewrap if usable, else the host.

    They are not user code, so no staff rule applies; the sandbox still keeps their environment clean.
    """
    runtime = Bubblewrap(uid_base=settings.IDDS_SANDBOX_UID_BASE)
    return runtime if _problem(runtime) is None else Host()


def run(program: Program, *, runtime: Runtime) -> Result:
    """Run ``program`` with ``runtime`` (from ``runtime_for`` or ``service_runtime``) and report how it ended."""
    program.read_only = visible_paths(program.read_only)
    return execute(runtime, program)


def is_tarball(name: str) -> bool:
    """Whether a sandbox option names a tarball (else it is a container image)."""
    return name.endswith(TARBALL_SUFFIXES)


def uploaded_file(name: str) -> Path:
    """The file ``name`` (relative to, or absolute under, ``IDDS_SANDBOX_UPLOAD_DIR``); ``ValueError`` for any
    other host path: a request may only use what was uploaded to the service, never name a file of the host."""
    root = Path(settings.IDDS_SANDBOX_UPLOAD_DIR).resolve()
    path = (root / name).resolve()
    if root not in path.parents:
        raise ValueError(f"{name!r} is not an uploaded file (uploads live in IDDS_SANDBOX_UPLOAD_DIR)")
    if not path.is_file():
        raise ValueError(f"{name!r} is not an uploaded file: no such file in the upload directory")
    return path


@contextmanager
def work_directory() -> Iterator[Path]:
    """A fresh working directory under ``IDDS_SANDBOX_WORK_DIR``, removed with everything in it afterwards."""
    root = Path(settings.IDDS_SANDBOX_WORK_DIR)
    root.mkdir(parents=True, exist_ok=True)
    # A private parent: logs live there, and the work directory may be opened up to a container's uid.
    parent = Path(tempfile.mkdtemp(prefix="run-", dir=root))
    workdir = parent / "work"
    workdir.mkdir()
    try:
        yield workdir
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def unpack_upload(name: str, workdir: Path) -> None:
    """Unpack the uploaded tarball ``name`` into ``workdir``; ``ValueError`` saying why it cannot be used."""
    path = uploaded_file(name)
    try:
        with tarfile.open(path) as tar:
            members = tar.getmembers()
            if len(members) > MAX_UNPACKED_MEMBERS or sum(m.size for m in members) > MAX_UNPACKED_BYTES:
                raise ValueError(
                    f"{name!r} unpacks to more than {MAX_UNPACKED_MEMBERS} files or {MAX_UNPACKED_BYTES // 2**20} MB"
                )
            # The "data" filter refuses absolute paths, links out of the tree, device files and set-uid bits.
            tar.extractall(workdir, members=members, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ValueError(f"{name!r} cannot be unpacked: {exc}") from None


def read_output(workdir: Path, relative: str) -> str | None:
    """The text of ``relative`` under ``workdir``; None when missing. ``ValueError`` for a path out of the
    directory, a symbolic link or anything but a regular file: the service reads it with its own rights."""
    target = Path(os.path.normpath(workdir / relative))
    if workdir != target and workdir not in target.parents:
        raise ValueError(f"{relative!r} is outside the working directory")
    for path in [*reversed(target.parents[: len(target.parents) - len(workdir.parents) - 1]), target]:
        if path.is_symlink():
            raise ValueError(f"{relative!r} is a symbolic link")
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"{relative!r} cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        # A FIFO or device would block or never end.
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ValueError(f"{relative!r} is not a regular file")
        return handle.read(MAX_OUTPUT_READ).decode("utf-8", "replace")
