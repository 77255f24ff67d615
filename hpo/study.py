"""The HPO request metadata: validation into a ``StudyConfig`` and building the study's generator.

Accepted ``request_metadata`` (docs/idds-reference.md §3 plus this service's additions)::

    opt_space                 required; any form of hpo.space
    method                    random | grid | bayesian (default) | nevergrad; ignored when executable is given
    executable, arguments, output_json, sandbox
                              a user generator program (arguments use %MAX_POINTS %NUM_POINTS %IN %OUT and
                              must name %OUT unless output_json is given); it runs in the sandbox of
                              requests_app.sandbox, and is refused at submission where none is usable.
                              sandbox: an uploaded tarball (in IDDS_SANDBOX_UPLOAD_DIR) or a container image
    generator_options         the method's own options (e.g. {"acquisition": "ei"} for bayesian)
    max_points                budget of points (default 20)
    num_points_per_generation points per generator run (default 5)
    min_unevaluated_points    run the generator when fewer points than this await a loss (default 2)
    initial_points            [[point, loss|null], ...] or [point, ...]
    seed                      makes every generation reproducible (default: drawn once and stored)
    generator_timeout         seconds per generator run (default 600)
    max_generator_failures    consecutive failed runs before the study fails (default 3)
    lease_seconds             how long a checked-out point stays with its worker without heartbeat (default 600)
    point_retries             times a point is reissued after expired leases or failures (default 2)
    study_timeout             seconds without any loss before the study times out (default 14 days)
    early_stopping            null (default) or a rule answering intermediate reports with continue or stop:
                              {"rule": "median", ...} or {"rule": "successive_halving", ...} (hpo/early_stopping.py)
"""

from __future__ import annotations

import math
import posixpath
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from hpo.early_stopping import early_stopping_validate
from hpo.generators import GENERATORS, generator_class
from hpo.generators.base import Generator
from hpo.space import SearchSpace
from hpo.space_forms import parse_space
from requests_app import sandbox
from requests_app.errors import WorkTypeValidationError

#: (default, minimum, maximum) of the integer settings.
INT_SETTINGS: dict[str, tuple[int, int, int]] = {
    "max_points": (20, 1, 100_000),
    "num_points_per_generation": (5, 1, 10_000),
    "min_unevaluated_points": (2, 0, 10_000),
    "generator_timeout": (600, 1, 24 * 3600),
    "max_generator_failures": (3, 1, 100),
    "lease_seconds": (600, 1, 7 * 24 * 3600),
    "point_retries": (2, 0, 100),
    "study_timeout": (14 * 24 * 3600, 1, 365 * 24 * 3600),
}
PROGRAM_KEYS = ("executable", "arguments", "output_json", "sandbox")
BUILT_IN_METHODS = tuple(name for name in GENERATORS if name != "program")


@dataclass
class StudyConfig:
    """Cleaned study settings, stored as the request's metadata."""

    opt_space: Any
    method: str = "bayesian"
    generator_options: dict[str, Any] = field(default_factory=dict)
    program: dict[str, Any] = field(default_factory=dict)
    initial_points: list[list[Any]] = field(default_factory=list)
    seed: int = 0
    max_points: int = 20
    num_points_per_generation: int = 5
    min_unevaluated_points: int = 2
    generator_timeout: int = 600
    max_generator_failures: int = 3
    lease_seconds: int = 600
    point_retries: int = 2
    study_timeout: int = 14 * 24 * 3600
    early_stopping: dict[str, Any] | None = None
    #: The request's owner, set by the service (never from the request): decides where its program may run.
    owner_id: int | None = None

    def to_metadata(self) -> dict[str, Any]:
        """JSON-ready form merged back into request_metadata."""
        return asdict(self)

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> StudyConfig:
        """Rebuild from stored (already cleaned) metadata."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in metadata.items() if k in names})

    def space(self) -> SearchSpace:
        """The parsed search space."""
        return parse_space(self.opt_space)

    def generator(self) -> Generator:
        """The study's generator, seeded."""
        options = dict(self.generator_options)
        if self.method == "program":
            # Where and how the program runs is the service's choice: the owner comes from the request row.
            options = {**options, **self.program, "timeout": self.generator_timeout, "owner_id": self.owner_id}
        return generator_class(self.method)(self.space(), seed=self.seed, options=options)


def _int_setting(metadata: dict[str, Any], name: str, errors: dict[str, str]) -> int:
    default, low, high = INT_SETTINGS[name]
    value = metadata.get(name, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        errors[f"request_metadata.{name}"] = f"must be an integer, got {value!r}"
        return default
    if not low <= value <= high:
        errors[f"request_metadata.{name}"] = f"must be between {low} and {high}, got {value}"
    return value


def _initial_points(raw: Any, space: SearchSpace, errors: dict[str, str]) -> list[list[Any]]:
    if raw in (None, []):
        return []
    if not isinstance(raw, list):
        errors["request_metadata.initial_points"] = "must be a list of [point, loss] pairs or of points"
        return []
    cleaned: list[list[Any]] = []
    seen: set[tuple] = set()
    for i, item in enumerate(raw):
        where = f"request_metadata.initial_points[{i}]"
        point, loss = (item[0], item[1]) if isinstance(item, list) and len(item) == 2 else (item, None)
        try:
            point = space.validate_point(point, field_name=where)
        except WorkTypeValidationError as exc:
            errors.update(exc.errors)
            continue
        if loss is not None and (
            isinstance(loss, bool) or not isinstance(loss, (int, float)) or not math.isfinite(loss)
        ):
            errors[where] = f"the loss must be a finite number or null, got {loss!r}"
            continue
        key = space.key(point)
        if key in seen:
            errors[where] = "repeats an earlier initial point"
            continue
        seen.add(key)
        cleaned.append([point, None if loss is None else float(loss)])
    return cleaned


def _program_errors(program: dict[str, Any], owner: Any) -> dict[str, str]:
    """Problems of a user program's options, and of running it here at all (no usable sandbox)."""
    errors: dict[str, str] = {}
    for name in PROGRAM_KEYS:
        if name in program and not isinstance(program[name], str):
            errors[f"request_metadata.{name}"] = "must be a string"
    if errors:
        return errors
    output_json = program.get("output_json")
    if output_json is None and "%OUT" not in program.get("arguments", ""):
        errors["request_metadata.arguments"] = (
            "must contain %OUT (where the program writes its points), or give output_json"
        )
    if output_json is not None:
        normal = posixpath.normpath(output_json)
        if posixpath.isabs(normal) or normal == ".." or normal.startswith("../"):
            errors["request_metadata.output_json"] = "must be a path inside the program's working directory"
    image = None
    if sandbox_option := program.get("sandbox"):
        if sandbox.is_tarball(sandbox_option):
            try:
                sandbox.uploaded_file(sandbox_option)
            except ValueError as exc:
                errors["request_metadata.sandbox"] = str(exc)
        else:
            image = sandbox_option
    if problem := sandbox.sandbox_problem(owner, image=image):
        errors["request_metadata.sandbox" if image else "request_metadata.executable"] = problem
    return errors


def study_validate(metadata: dict[str, Any], *, owner: Any = None) -> StudyConfig:
    """Clean HPO request metadata or raise ``WorkTypeValidationError`` naming every bad field.

    ``owner`` (the requesting user) decides whether a program may run on the host (docs/sandbox.md).
    """
    if not isinstance(metadata, dict):
        raise WorkTypeValidationError({"request_metadata": "must be an object"})
    errors: dict[str, str] = {}
    if "opt_space" not in metadata:
        raise WorkTypeValidationError({"request_metadata.opt_space": "is required: the search space to optimise"})
    try:
        space = parse_space(metadata["opt_space"], field_name="request_metadata.opt_space")
    except WorkTypeValidationError as exc:
        raise WorkTypeValidationError(exc.errors) from None
    ints = {name: _int_setting(metadata, name, errors) for name in INT_SETTINGS}
    program = {k: metadata[k] for k in PROGRAM_KEYS if metadata.get(k) not in (None, "")}
    method = "program" if program else metadata.get("method", "bayesian")
    if program and not program.get("executable"):
        errors["request_metadata.executable"] = "a generator program needs an executable"
    elif program:
        errors.update(_program_errors(program, owner))
    if not program and method not in BUILT_IN_METHODS:
        errors["request_metadata.method"] = (
            f"unknown method {method!r}; use one of {list(BUILT_IN_METHODS)} or an executable"
        )
    options = metadata.get("generator_options", {})
    if not isinstance(options, dict):
        errors["request_metadata.generator_options"] = "must be an object"
        options = {}
    seed = metadata.get("seed")
    if seed is None:
        # Drawn once and stored, so the study stays reproducible after the fact.
        seed = secrets.randbelow(2**31)
    elif isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        errors["request_metadata.seed"] = f"must be an integer in [0, 2^32), got {seed!r}"
        seed = 0
    try:
        early_stopping = early_stopping_validate(metadata.get("early_stopping"))
    except WorkTypeValidationError as exc:
        errors.update(exc.errors)
        early_stopping = None
    config = StudyConfig(
        opt_space=metadata["opt_space"],
        early_stopping=early_stopping,
        method=method,
        generator_options=options,
        program=program,
        initial_points=_initial_points(metadata.get("initial_points"), space, errors),
        seed=seed,
        owner_id=getattr(owner, "pk", None),
        **ints,
    )
    if not errors:
        try:
            config.generator()
        except ValueError as exc:
            errors["request_metadata.generator_options"] = str(exc)
    if errors:
        raise WorkTypeValidationError(errors)
    return config
