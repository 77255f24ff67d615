"""The host runtime: the program runs as the worker's user, with a clean environment and the limits.

Not a sandbox: it sees the host's files and network. ``IDDS_SANDBOX_ALLOW_HOST`` lets staff-owned requests use
it, and the service's own helper programs fall back to it where bubblewrap is missing. No process limit here:
for root it would not hold, for a service user it would count the service's own processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .base import SYSTEM_PATH, Program, Runtime
from .limits import preexec


class Host(Runtime):
    """Runs the program directly, in its working directory, with ``BASE_ENV`` only."""

    name = "host"

    def problem(self) -> str | None:
        return None

    def workdir_inside(self, workdir: Path) -> str:
        return str(workdir)

    def command(self, program: Program, *, run_name: str, info_fd: int | None = None) -> list[str]:
        return list(program.argv)

    def popen_env(self, program: Program) -> dict[str, str]:
        path = os.pathsep.join([*(str(Path(p) / "bin") for p in program.read_only), *SYSTEM_PATH])
        return self.environment(program, home=str(program.workdir), path=path)

    def preexec(self, program: Program) -> Callable[[], None] | None:
        return preexec(program.limits)
