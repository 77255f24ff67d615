"""Container engines an operator may configure instead of bubblewrap: docker, podman, apptainer.

Each run gets no network, a read-only root file system, the working directory at /sandbox as its only
writable place besides a small /tmp, uid 65534, no capabilities, and the limits of ``limits.py`` (cgroup
memory and pids limits plus ulimits on docker/podman; ulimits set by ``sh`` inside the image on apptainer).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from .base import INSIDE_WORKDIR, SYSTEM_PATH, Program, Runtime
from .limits import container_flags, ulimit_script

ENGINES = ("docker", "podman", "apptainer")
#: A check that the engine answers (the docker client without its daemon does not).
_PROBES = {"docker": ["info", "--format", "{{.ServerVersion}}"], "podman": ["info"], "apptainer": ["version"]}
SELF_TEST_SECONDS = 20
SANDBOX_UID = 65534


class Container(Runtime):
    """Runs the program in ``image`` with one of ``ENGINES``."""

    def __init__(self, engine: str, *, binary: str | None = None, default_image: str = "") -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown container engine {engine!r}; use one of {list(ENGINES)}")
        self.name = engine
        self.binary = binary or engine
        self.default_image = default_image

    def problem(self) -> str | None:
        binary = shutil.which(self.binary)
        if binary is None:
            return f"the container runtime {self.name!r} ({self.binary}) is not installed"
        try:
            done = subprocess.run(
                [binary, *_PROBES[self.name]], capture_output=True, timeout=SELF_TEST_SECONDS, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"the container runtime {self.name!r} does not answer: {exc}"
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace").strip()[-300:]
            return f"the container runtime {self.name!r} does not answer (status {done.returncode}): {stderr}"
        if not self.default_image:
            return f"the container runtime {self.name!r} needs an image (set IDDS_SANDBOX_IMAGE)"
        return None

    def prepare(self, program: Program) -> None:
        """The container's uid 65534 must write the working directory."""
        if os.geteuid() == 0:
            for path in [program.workdir, *program.workdir.rglob("*")]:
                os.lchown(path, SANDBOX_UID, SANDBOX_UID)
        else:
            # The directory sits in a private (0700) parent, so opening it up reaches only the container.
            program.workdir.chmod(0o777)

    def command(self, program: Program, *, run_name: str, info_fd: int | None = None) -> list[str]:
        binary = shutil.which(self.binary) or self.binary
        image = program.image or self.default_image
        env = self.environment(program, home=INSIDE_WORKDIR, path=":".join(SYSTEM_PATH))
        if self.name == "apptainer":
            return [
                binary, "exec", "--containall", "--cleanenv", "--no-home", "--net", "--network", "none",
                "--bind", f"{program.workdir}:{INSIDE_WORKDIR}", "--pwd", INSIDE_WORKDIR,
                *(f"--env={key}={value}" for key, value in env.items()),
                image, "/bin/sh", "-c", ulimit_script(program.limits), "sh", *program.argv,
            ]  # fmt: skip
        return [
            binary, "run", "--rm", "--pull=never", "--name", run_name, "--network=none", "--read-only",
            "--tmpfs=/tmp:rw,size=64m", "--cap-drop=ALL", "--security-opt=no-new-privileges",
            f"--user={SANDBOX_UID}:{SANDBOX_UID}", *container_flags(program.limits),
            "--volume", f"{program.workdir}:{INSIDE_WORKDIR}:rw", "--workdir", INSIDE_WORKDIR,
            *(f"--env={key}={value}" for key, value in env.items()),
            image, *program.argv,
        ]  # fmt: skip

    def stop(self, run_name: str) -> None:
        """The daemon keeps running a container whose client was killed; kill it by name."""
        if self.name == "apptainer":
            return
        binary = shutil.which(self.binary) or self.binary
        subprocess.run([binary, "kill", run_name], capture_output=True, timeout=SELF_TEST_SECONDS, check=False)
