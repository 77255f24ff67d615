"""Run a decision or merge program in the sandbox (docs/sandbox.md), or an operator's allow-listed callable.

The program runs in a fresh working directory with the uploaded tarball unpacked into it::

    <executable> <arguments with %IN %OUT %ITERATION replaced>

``%IN`` is a JSON file with the step's input document; the program writes JSON to ``%OUT`` (or to
``output_json``). Every run returns a ``ProgramRun``: never an exception, since a failing user program is an
outcome the step records (reason, exit status, which limit stopped it, stdout/stderr tails).
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from requests_app import sandbox

INPUT_NAME, OUTPUT_NAME = "input.json", "output.json"
#: Raw output kept in the audit record when it cannot be parsed.
OUTPUT_TEXT_KEPT = 4000


@dataclass
class ProgramRun:
    """How one program run ended, and everything the audit trail keeps of it."""

    ok: bool
    output: Any = None
    output_text: str = ""
    error: str = ""
    returncode: int | None = None
    stopped: str = ""
    stdout_tail: str = ""
    stderr_tail: str = ""
    runtime: str = ""
    duration_seconds: float = 0.0
    program: dict[str, Any] = field(default_factory=dict)
    program_sha256: str = ""

    def record(self) -> dict[str, Any]:
        """The run as a JSON-able dict (the merge step's audit record)."""
        return {
            "ok": self.ok,
            "output": self.output,
            "error": self.error,
            "returncode": self.returncode,
            "stopped": self.stopped,
            "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail,
            "runtime": self.runtime,
            "duration_seconds": self.duration_seconds,
            "program": self.program,
            "program_sha256": self.program_sha256,
        }


@dataclass
class ProgramSpec:
    """One program of a loop: its command, its sandbox and its per-step limits."""

    executable: str
    arguments: str
    output_json: str | None
    sandbox: str | None
    timeout: float
    memory_mb: int
    #: The request's owner (a user, or None): where the program may run depends on it (docs/sandbox.md).
    owner: Any

    def describe(self) -> dict[str, Any]:
        return {
            "executable": self.executable,
            "arguments": self.arguments,
            "output_json": self.output_json,
            "sandbox": self.sandbox,
        }

    def image(self) -> str | None:
        return self.sandbox if self.sandbox and not sandbox.is_tarball(self.sandbox) else None

    def limits(self) -> sandbox.Limits:
        """The operator's ceilings lowered to the request's per-step timeout and memory."""
        ceiling = sandbox.default_limits()
        wanted = sandbox.Limits(
            cpu_seconds=max(1, math.ceil(self.timeout)),
            memory_mb=self.memory_mb,
            processes=ceiling.processes,
            output_mb=ceiling.output_mb,
            wall_seconds=self.timeout,
        )
        return wanted.within(ceiling)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def program_checksum(spec: ProgramSpec) -> str:
    """The tarball's sha256, or the image name's: what exactly ran is part of the audit record."""
    if spec.sandbox and sandbox.is_tarball(spec.sandbox):
        try:
            return file_sha256(sandbox.uploaded_file(spec.sandbox))
        except (ValueError, OSError):
            return ""
    return hashlib.sha256((spec.sandbox or spec.executable).encode()).hexdigest()


def program_run(spec: ProgramSpec, document: dict[str, Any], *, iteration: int) -> ProgramRun:
    """Run ``spec`` on ``document`` in the sandbox and parse its JSON output."""
    started = time.perf_counter()
    run = ProgramRun(ok=False, program=spec.describe(), program_sha256=program_checksum(spec))
    try:
        runtime = sandbox.runtime_for(spec.owner, image=spec.image())
    except sandbox.SandboxUnavailable as exc:
        run.error = str(exc)
        return run
    with sandbox.work_directory() as workdir:
        text = _run_in(workdir, spec, document, iteration, runtime, run)
    run.duration_seconds = time.perf_counter() - started
    if text is not None:
        _parse(text, run)
    return run


def _run_in(
    workdir: Path, spec: ProgramSpec, document: dict[str, Any], iteration: int, runtime, run: ProgramRun
) -> str | None:
    """Prepare the working directory, run, and return the output text (None with ``run.error`` set)."""
    if spec.sandbox and sandbox.is_tarball(spec.sandbox):
        try:
            sandbox.unpack_upload(spec.sandbox, workdir)
        except ValueError as exc:
            run.error = f"the sandbox tarball cannot be used: {exc}"
            return None
    (workdir / INPUT_NAME).write_text(json.dumps(document))
    inside = Path(runtime.workdir_inside(workdir))
    arguments = spec.arguments
    for token, value in (
        ("%IN", str(inside / INPUT_NAME)),
        ("%OUT", str(inside / OUTPUT_NAME)),
        ("%ITERATION", str(iteration)),
    ):
        arguments = arguments.replace(token, shlex.quote(value))
    argv = [*shlex.split(spec.executable), *shlex.split(arguments)]
    program = sandbox.Program(argv=argv, workdir=workdir, limits=spec.limits(), image=spec.image())
    try:
        result = sandbox.run(program, runtime=runtime)
    except sandbox.SandboxUnavailable as exc:
        run.error = str(exc)
        return None
    run.returncode, run.stopped, run.runtime = result.returncode, result.stopped or "", result.runtime
    run.stdout_tail, run.stderr_tail = result.stdout_tail, result.stderr_tail
    if not result.ok:
        run.error = f"the program {result.reason}"
        return None
    name = spec.output_json or OUTPUT_NAME
    try:
        text = sandbox.read_output(workdir, name)
    except ValueError as exc:
        run.error = f"the program's output cannot be read: {exc}"
        return None
    if text is None:
        run.error = f"the program wrote no output file {name!r}"
    return text


def _parse(text: str, run: ProgramRun) -> None:
    run.output_text = text[:OUTPUT_TEXT_KEPT]
    try:
        run.output = json.loads(text)
    except json.JSONDecodeError as exc:
        run.error = f"the output is not valid JSON ({exc.msg} at line {exc.lineno}): {text[:200]!r}"
        return
    run.ok = True


def callable_run(name: str, document: dict[str, Any]) -> ProgramRun:
    """Call the operator's allow-listed decision ``name`` (IDDS_AL_CALLABLES) in the worker process.

    Only the operator's settings name the module: the request names a key of that list, nothing else.
    """
    started = time.perf_counter()
    path = settings.IDDS_AL_CALLABLES.get(name)
    run = ProgramRun(ok=False, program={"callable": name, "path": path}, runtime="in-process")
    run.program_sha256 = hashlib.sha256(f"{name}={path}".encode()).hexdigest()
    if path is None:
        run.error = f"the decision {name!r} is no longer allowed by the operator (IDDS_AL_CALLABLES)"
        return run
    try:
        output = import_string(path)(document)
        text = json.dumps(output)
    except Exception as exc:  # noqa: BLE001 - a failing decision is an outcome the step records
        run.error = f"the decision {name!r} raised {type(exc).__name__}: {exc}"
        run.duration_seconds = time.perf_counter() - started
        return run
    run.duration_seconds = time.perf_counter() - started
    _parse(text, run)
    return run
