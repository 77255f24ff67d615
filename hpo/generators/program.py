"""The user's own generator program, run with the iDDS %IN/%OUT JSON contract (docs/idds-reference.md §3).

The program runs in the sandbox of ``requests_app.sandbox`` (docs/sandbox.md), in a fresh working directory::

    <executable> <arguments with %MAX_POINTS %NUM_POINTS %IN %OUT replaced>

``%IN`` is a JSON file ``{"points": [[{point}, loss|null], ...], "opt_space": <the request's opt_space>}``;
the program writes a JSON list of new point dicts to ``%OUT`` (or to ``output_json``, a path relative to the
working directory), ``[]`` meaning it is done. Its limits are the sandbox's (wall-clock ``timeout``,
``memory_mb``, CPU, processes, output size), and the tails of its stdout and stderr are kept for the user.

``sandbox`` is either an uploaded tarball, unpacked into the working directory first, or a container image,
which needs ``IDDS_SANDBOX_RUNTIME`` set to a container engine.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from django.contrib.auth import get_user_model

from hpo.generators.base import Generator, GeneratorError, History
from hpo.space import Point
from requests_app import sandbox
from requests_app.errors import WorkTypeValidationError

#: The file names %IN and %OUT stand for, in the working directory.
INPUT_NAME, OUTPUT_NAME = "input.json", "output.json"


@dataclass
class ProgramSpec:
    """How to run one generator program."""

    executable: str
    arguments: str = ""
    output_json: str | None = None
    sandbox: str | None = None
    timeout: float = 600.0
    memory_mb: int | None = 2048
    #: The request's owner: decides whether the host may run the program (staff, IDDS_SANDBOX_ALLOW_HOST).
    owner_id: int | None = None
    #: The service's own program (nevergrad's runner): bubblewrap if usable, else the host; no staff rule.
    service: bool = False
    #: Host directories the program reads (nevergrad's venv); files copied into the working directory.
    read_only: tuple[Path, ...] = ()
    files: Mapping[str, Path] = field(default_factory=dict)

    def limits(self) -> sandbox.Limits:
        """The operator's ceilings, lowered to this program's timeout and memory."""
        ceiling = sandbox.default_limits()
        wanted = sandbox.Limits(
            cpu_seconds=max(1, math.ceil(self.timeout)),
            memory_mb=int(self.memory_mb or ceiling.memory_mb),
            processes=ceiling.processes,
            output_mb=ceiling.output_mb,
            wall_seconds=float(self.timeout),
        )
        return wanted.within(ceiling)

    def image(self) -> str | None:
        """The container image named by ``sandbox``, if it is not a tarball."""
        return self.sandbox if self.sandbox and not sandbox.is_tarball(self.sandbox) else None

    def runtime(self) -> sandbox.Runtime:
        """Where this program may run; ``GeneratorError`` with the operator's options when nowhere."""
        if self.service:
            return sandbox.service_runtime()
        owner = get_user_model().objects.filter(pk=self.owner_id).first() if self.owner_id else None
        try:
            return sandbox.runtime_for(owner, image=self.image())
        except sandbox.SandboxUnavailable as exc:
            raise GeneratorError(str(exc)) from None


def run_program(spec: ProgramSpec, payload: Mapping[str, Any], *, num_points: int, max_points: int) -> Any:
    """Run the program on ``payload`` and return its parsed JSON output; ``GeneratorError`` on any failure."""
    runtime = spec.runtime()
    with sandbox.work_directory() as workdir:
        _prepare(workdir, spec, payload)
        inside = Path(runtime.workdir_inside(workdir))
        substitutions = {
            "%MAX_POINTS": str(max_points),
            "%NUM_POINTS": str(num_points),
            "%IN": str(inside / INPUT_NAME),
            "%OUT": str(inside / OUTPUT_NAME),
        }
        arguments = spec.arguments
        for token, value in substitutions.items():
            arguments = arguments.replace(token, shlex.quote(value))
        argv = [*shlex.split(spec.executable), *shlex.split(arguments)]
        program = sandbox.Program(
            argv=argv, workdir=workdir, limits=spec.limits(), image=spec.image(), read_only=spec.read_only
        )
        try:
            result = sandbox.run(program, runtime=runtime)
        except sandbox.SandboxUnavailable as exc:
            raise GeneratorError(str(exc)) from None
        details = {**result.details(), "command": shlex.join(argv)}
        if not result.ok:
            raise GeneratorError(f"the generator program {result.reason}", details=details)
        name = spec.output_json or OUTPUT_NAME
        try:
            text = sandbox.read_output(workdir, name)
        except ValueError as exc:
            raise GeneratorError(f"the generator output cannot be read: {exc}", details=details) from None
    if text is None:
        raise GeneratorError(f"the generator program wrote no output file {name!r}", details=details)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GeneratorError(
            f"the generator output is not valid JSON ({exc.msg} at line {exc.lineno}): {text[:200]!r}", details=details
        ) from None


def _prepare(workdir: Path, spec: ProgramSpec, payload: Mapping[str, Any]) -> None:
    """Unpack the uploaded tarball, copy the service's files, write %IN."""
    if spec.sandbox and sandbox.is_tarball(spec.sandbox):
        try:
            sandbox.unpack_upload(spec.sandbox, workdir)
        except ValueError as exc:
            raise GeneratorError(f"the sandbox tarball cannot be used: {exc}") from None
    for name, source in spec.files.items():
        (workdir / name).write_bytes(source.read_bytes())
    (workdir / INPUT_NAME).write_text(json.dumps(payload))


class ProgramGenerator(Generator):
    """Runs the user's program (options: executable, arguments, output_json, sandbox, timeout, memory_mb)."""

    name = "program"
    version = "1"
    default_options: ClassVar[dict[str, Any]] = {
        "executable": None,
        "arguments": "",
        "output_json": None,
        "sandbox": None,
        "timeout": 600.0,
        "memory_mb": 2048,
        "owner_id": None,
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
