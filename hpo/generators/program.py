"""The user's own generator program, run with the iDDS %IN/%OUT JSON contract (IDDS_REFERENCE.md §3).

The program runs as a subprocess in a fresh working directory of its own::

    <executable> <arguments with %MAX_POINTS %NUM_POINTS %IN %OUT replaced>

``%IN`` is a JSON file ``{"points": [[{point}, loss|null], ...], "opt_space": <the request's opt_space>}``;
the program writes a JSON list of new point dicts to ``%OUT`` (or to ``output_json``, a path relative to the
working directory), ``[]`` meaning it is done. It gets a wall-clock ``timeout`` (its whole process group is
killed), an address-space limit of ``memory_mb`` set with ``setrlimit`` before ``exec``, and the tails of its
stdout and stderr are kept for the user.

``sandbox`` is either a local tarball, unpacked into the working directory first, or a container image, run
with the configured container runtime (docker, podman or apptainer) when that runtime is installed; an image
without a usable runtime is a clear error rather than a silent run on the host.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from hpo.generators.base import Generator, GeneratorError, History
from hpo.space import Point
from requests_app.errors import WorkTypeValidationError

#: Characters of stdout and stderr kept on the processing.
TAIL_CHARS = 4000
CONTAINER_RUNTIMES = ("docker", "podman", "apptainer")
#: Where the working directory appears inside a container.
CONTAINER_WORKDIR = "/work"
_TARBALL_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


@dataclass
class ProgramSpec:
    """How to run one generator program."""

    executable: str
    arguments: str = ""
    output_json: str | None = None
    sandbox: str | None = None
    timeout: float = 600.0
    memory_mb: int | None = 2048
    container_runtime: str | None = None
    work_root: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    keep_workdir: bool = False


def _tail(path: Path) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - TAIL_CHARS))
        return handle.read().decode("utf-8", "replace")


def _limit_memory(memory_mb: int | None):
    """A preexec function: cap the child's address space (runs in the child between fork and exec)."""

    def apply() -> None:
        if memory_mb:
            limit = int(memory_mb) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def _is_tarball(sandbox: str) -> bool:
    return sandbox.endswith(_TARBALL_SUFFIXES) and Path(sandbox).is_file()


def _container_command(spec: ProgramSpec, command: list[str], workdir: Path) -> list[str]:
    """Wrap ``command`` in the configured runtime, or explain why the image cannot run."""
    runtime = spec.container_runtime
    if not runtime:
        raise GeneratorError(
            f"sandbox {spec.sandbox!r} is a container image but no container runtime is configured "
            f"(set HPO_CONTAINER_RUNTIME to one of {list(CONTAINER_RUNTIMES)})"
        )
    binary = shutil.which(runtime)
    if binary is None:
        raise GeneratorError(
            f"sandbox {spec.sandbox!r} needs the container runtime {runtime!r}, which is not installed"
        )
    if runtime == "apptainer":
        return [
            binary,
            "exec",
            "--bind",
            f"{workdir}:{CONTAINER_WORKDIR}",
            "--pwd",
            CONTAINER_WORKDIR,
            spec.sandbox,
            *command,
        ]
    memory = [f"--memory={spec.memory_mb}m"] if spec.memory_mb else []
    return [
        binary, "run", "--rm", "--network=none", *memory,
        "-v", f"{workdir}:{CONTAINER_WORKDIR}", "-w", CONTAINER_WORKDIR, spec.sandbox, *command,
    ]  # fmt: skip


def run_program(spec: ProgramSpec, payload: Mapping[str, Any], *, num_points: int, max_points: int) -> Any:
    """Run the program on ``payload`` and return its parsed JSON output; ``GeneratorError`` on any failure."""
    root = Path(spec.work_root or Path(tempfile.gettempdir()) / "idds-hpo")
    root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="generation-", dir=root))
    try:
        return _run_in(workdir, spec, payload, num_points=num_points, max_points=max_points)
    finally:
        if not spec.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _run_in(workdir: Path, spec: ProgramSpec, payload: Mapping[str, Any], *, num_points: int, max_points: int) -> Any:
    containerised = bool(spec.sandbox) and not _is_tarball(spec.sandbox)
    if spec.sandbox and not containerised:
        with tarfile.open(spec.sandbox) as tar:
            # The "data" filter refuses absolute paths, links out of the tree and device files.
            tar.extractall(workdir, filter="data")
    # Inside a container the working directory is mounted at /work.
    base = Path(CONTAINER_WORKDIR) if containerised else workdir
    in_path, out_path = workdir / "input.json", workdir / "output.json"
    in_path.write_text(json.dumps(payload))
    substitutions = {
        "%MAX_POINTS": str(max_points),
        "%NUM_POINTS": str(num_points),
        "%IN": str(base / in_path.name),
        "%OUT": str(base / out_path.name),
    }
    arguments = spec.arguments
    for token, value in substitutions.items():
        arguments = arguments.replace(token, shlex.quote(value))
    command = [*shlex.split(spec.executable), *shlex.split(arguments)]
    if containerised:
        command = _container_command(spec, command, workdir)
    stdout_path, stderr_path = workdir / ".stdout", workdir / ".stderr"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", **spec.env}

    def tails() -> dict[str, str]:
        return {"stdout_tail": _tail(stdout_path), "stderr_tail": _tail(stderr_path), "command": shlex.join(command)}

    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        try:
            process = subprocess.Popen(
                command, cwd=workdir, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env,
                # Its own session, so a timeout kills everything the program started.
                start_new_session=True, preexec_fn=None if containerised else _limit_memory(spec.memory_mb),
            )  # fmt: skip
        except OSError as exc:
            raise GeneratorError(f"cannot start the generator program: {exc}", details={"command": command}) from exc
        try:
            returncode = process.wait(timeout=spec.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise GeneratorError(f"the generator program timed out after {spec.timeout:g} s", details=tails()) from None
    if returncode != 0:
        reason = f"the generator program exited with status {returncode}"
        if returncode < 0:
            reason = f"the generator program was killed by signal {-returncode}"
        raise GeneratorError(reason, details=tails())
    result_path = workdir / spec.output_json if spec.output_json else out_path
    if not result_path.is_file():
        raise GeneratorError(f"the generator program wrote no output file {result_path.name!r}", details=tails())
    text = result_path.read_text(errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GeneratorError(
            f"the generator output is not valid JSON ({exc.msg} at line {exc.lineno}): {text[:200]!r}", details=tails()
        ) from None


class ProgramGenerator(Generator):
    """Runs the user's program (options: executable, arguments, output_json, sandbox, timeout, memory_mb, ...)."""

    name = "program"
    version = "1"
    default_options: ClassVar[dict[str, Any]] = {
        "executable": None,
        "arguments": "",
        "output_json": None,
        "sandbox": None,
        "timeout": 600.0,
        "memory_mb": 2048,
        "container_runtime": None,
        "work_root": None,
        "env": {},
        "keep_workdir": False,
    }

    def __init__(self, space, *, seed: int = 0, options=None) -> None:
        super().__init__(space, seed=seed, options=options)
        if not self.options["executable"]:
            raise ValueError("a generator program needs an executable")
        self.spec = ProgramSpec(**self.options)

    def payload(self, history: History) -> dict[str, Any]:
        """The %IN document: every point with its loss (null = pending) and the space as the user gave it."""
        return {"points": [[point, loss] for point, loss in history], "opt_space": self.space.source}

    def generate(self, history: History, num_points: int, max_points: int) -> list[Point]:
        """Run the program once; validate, de-duplicate and trim what it proposes."""
        wanted = self.budget(history, num_points, max_points)
        if wanted == 0:
            return []
        output = run_program(self.spec, self.payload(history), num_points=wanted, max_points=max_points)
        return self.accept_output(output, history, wanted)

    def accept_output(self, output: Any, history: History, wanted: int) -> list[Point]:
        """Valid new points from a program's output, at most ``wanted``; ``GeneratorError`` on a malformed one."""
        if isinstance(output, dict) and "points" in output:
            output = output["points"]
        if not isinstance(output, Sequence) or isinstance(output, str):
            raise GeneratorError(f"the generator output must be a JSON list of points, got {type(output).__name__}")
        taken = self.taken_keys(history)
        points: list[Point] = []
        for i, raw in enumerate(output):
            try:
                point = self.space.validate_point(raw, field_name=f"output[{i}]")
            except WorkTypeValidationError as exc:
                raise GeneratorError(f"the generator proposed an invalid point: {exc.message}") from None
            key = self.space.key(point)
            # A repeat of a known point would be evaluated twice; drop it, the study asks again if needed.
            if key in taken:
                continue
            taken.add(key)
            points.append(point)
        return points[:wanted]
