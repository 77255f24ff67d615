"""Resource limits of a sandboxed program, and their three spellings: setrlimit, prlimit, container flags.

A limit the kernel enforces per process (CPU seconds, address space, file size) is set with ``setrlimit``;
the process count is ``RLIMIT_NPROC``, which only holds for an unprivileged uid in its own accounting (see
``bubblewrap.py`` for how the sandbox gets one). The wall-clock limit is the runner's: it kills the whole
program, not one process.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

MB = 1024 * 1024
#: Seconds between the CPU soft limit (SIGXCPU, which says why) and the hard one (SIGKILL, for programs
#: that ignore it): with both equal the kernel sends only SIGKILL and the reason is lost.
CPU_GRACE_SECONDS = 5


@dataclass(frozen=True)
class Limits:
    """What one program run may use; every field is a hard limit."""

    #: CPU time of each process (SIGXCPU, then SIGKILL, past it).
    cpu_seconds: int = 600
    #: Address space of each process (allocations past it fail: ``MemoryError`` in Python).
    memory_mb: int = 2048
    #: Processes and threads the program may have at once.
    processes: int = 64
    #: Largest file the program may write, its captured stdout and stderr included.
    output_mb: int = 64
    #: Wall-clock time of the whole run; then everything it started is killed.
    wall_seconds: float = 600.0

    def within(self, ceiling: Limits) -> Limits:
        """These limits, none above ``ceiling`` (a user may ask for less than the operator allows, never more)."""
        return replace(self, **{f.name: min(getattr(self, f.name), getattr(ceiling, f.name)) for f in fields(self)})


def rlimits(limits: Limits, *, processes: bool = True) -> list[tuple[int, tuple[int, int]]]:
    """``(resource, (soft, hard))`` pairs for ``setrlimit``; no core files, so a crash writes nothing big."""
    pairs = [
        (resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + CPU_GRACE_SECONDS)),
        (resource.RLIMIT_AS, (limits.memory_mb * MB,) * 2),
        (resource.RLIMIT_FSIZE, (limits.output_mb * MB,) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
    ]
    if processes:
        pairs.append((resource.RLIMIT_NPROC, (limits.processes,) * 2))
    return pairs


def preexec(limits: Limits, *, processes: bool = False) -> Callable[[], None]:
    """A ``preexec_fn`` applying the limits in the child between fork and exec."""
    pairs = rlimits(limits, processes=processes)

    def apply() -> None:
        for kind, soft_hard in pairs:
            resource.setrlimit(kind, soft_hard)

    return apply


def prlimit_argv(limits: Limits) -> list[str]:
    """util-linux ``prlimit`` options setting every limit (for a wrapper run inside the sandbox)."""
    return [
        f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + CPU_GRACE_SECONDS}",
        f"--as={limits.memory_mb * MB}",
        f"--fsize={limits.output_mb * MB}",
        "--core=0",
        f"--nproc={limits.processes}",
    ]


def ulimit_script(limits: Limits) -> str:
    """A POSIX ``sh`` prologue with the same limits, for images whose only tool may be ``sh`` (apptainer)."""
    # -v counts KiB; -f counts 512-byte blocks in POSIX sh (bash outside POSIX mode reads KiB: twice the cap,
    # still bounded). dash has no -u, hence the retry without it.
    return (
        f"ulimit -t {limits.cpu_seconds} -v {limits.memory_mb * 1024} -f {limits.output_mb * 2048} -c 0 "
        f"-u {limits.processes} 2>/dev/null || ulimit -t {limits.cpu_seconds} -v {limits.memory_mb * 1024} "
        f'-f {limits.output_mb * 2048} -c 0; exec "$@"'
    )


def container_flags(limits: Limits) -> list[str]:
    """docker/podman ``run`` options for the same limits (the memory one is a cgroup limit there)."""
    return [
        f"--memory={limits.memory_mb}m",
        f"--memory-swap={limits.memory_mb}m",
        f"--pids-limit={limits.processes}",
        f"--ulimit=cpu={limits.cpu_seconds}:{limits.cpu_seconds + CPU_GRACE_SECONDS}",
        f"--ulimit=fsize={limits.output_mb * MB}:{limits.output_mb * MB}",
        "--ulimit=core=0:0",
    ]
