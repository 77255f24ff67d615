"""Active-learning request metadata: the keys, their defaults, and validation with a 400 per bad field.

Keys of ``request_metadata`` (docs/active-learning.md has the full table)::

    executable, arguments, output_json, sandbox   the decision program (arguments use %IN %OUT %ITERATION);
                                                  sandbox: an uploaded tarball or a container image
    callable                                      instead of a program: a name the operator allow-listed in
                                                  IDDS_AL_CALLABLES (never a module or class named here)
    merge                                         optional {"executable", "arguments", "output_json"} run first
    initial_parameters                            an object (one task) or a list of objects (a batch)
    timeout, memory_mb                            per step: wall-clock seconds and memory of each program run
    max_iterations, deadline_seconds              stop rules: batches run, seconds since the loop started
    target {"metric", "value", "mode"}            stop when a result's metric reaches value (mode min|max)
    plateau {"metric", "delta", "patience", "mode"}  stop when the best did not improve by > delta in patience
    max_failed_steps                              failed decision steps in a row before the loop fails
    quorum {"fraction", "grace_seconds"}          decide once a fraction of a batch reported and grace passed
    memoise                                       reuse the results of an earlier identical parameter set
    fork {"request_id", "iteration"}              start from iteration k of an earlier loop
"""

from __future__ import annotations

import math
import posixpath
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings

from requests_app import sandbox
from requests_app.errors import WorkTypeValidationError

PROGRAM_KEYS = ("executable", "arguments", "output_json", "sandbox")
MERGE_KEYS = ("executable", "arguments", "output_json")
PLACEHOLDERS = ("%IN", "%OUT", "%ITERATION")
#: (default, lowest, highest) of the integer settings.
INT_SETTINGS: dict[str, tuple[int, int, int]] = {
    "max_iterations": (100, 1, 100_000),
    "max_failed_steps": (3, 1, 100),
    "memory_mb": (1024, 16, 1_048_576),
}
#: (default, lowest, highest) of the number settings, in seconds.
FLOAT_SETTINGS: dict[str, tuple[float, float, float]] = {
    "timeout": (60.0, 0.1, 86_400.0),
}
MAX_BATCH = 1000
MODES = ("min", "max")
FIELD = "request_metadata."


@dataclass
class LoopConfig:
    """A validated active-learning request, stored back into ``request_metadata`` by ``to_metadata``."""

    program: dict[str, Any] = field(default_factory=dict)
    callable: str | None = None
    merge: dict[str, Any] | None = None
    initial_parameters: list[dict[str, Any]] = field(default_factory=list)
    timeout: float = 60.0
    memory_mb: int = 1024
    max_iterations: int = 100
    deadline_seconds: float | None = None
    target: dict[str, Any] | None = None
    plateau: dict[str, Any] | None = None
    max_failed_steps: int = 3
    quorum_fraction: float = 1.0
    quorum_grace_seconds: float = 0.0
    memoise: bool = False
    fork: dict[str, int] | None = None

    def to_metadata(self) -> dict[str, Any]:
        return {"activelearning": asdict(self)}

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> LoopConfig:
        return cls(**metadata["activelearning"])


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _int_setting(metadata: dict[str, Any], name: str, errors: dict[str, str]) -> int:
    default, low, high = INT_SETTINGS[name]
    value = metadata.get(name, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors[FIELD + name] = f"must be an integer between {low} and {high}, got {value!r}"
        return default
    return value


def _float_setting(metadata: dict[str, Any], name: str, errors: dict[str, str]) -> float:
    default, low, high = FLOAT_SETTINGS[name]
    value = metadata.get(name, default)
    if not _number(value) or not low <= value <= high:
        errors[FIELD + name] = f"must be a number of seconds between {low} and {high}, got {value!r}"
        return default
    return float(value)


def _parameter_sets(raw: Any, errors: dict[str, str], *, required: bool) -> list[dict[str, Any]]:
    where = FIELD + "initial_parameters"
    if raw is None:
        if required:
            errors[where] = "is required: the parameters of the first task (an object) or batch (a list of objects)"
        return []
    sets = [raw] if isinstance(raw, dict) else raw
    if not isinstance(sets, list) or not sets or not all(isinstance(item, dict) and item for item in sets):
        errors[where] = "must be a non-empty object or a non-empty list of non-empty objects"
        return []
    if len(sets) > MAX_BATCH:
        errors[where] = f"at most {MAX_BATCH} parameter sets"
        return []
    return sets


def _relative_path(value: str) -> bool:
    normal = posixpath.normpath(value)
    return not (posixpath.isabs(normal) or normal == ".." or normal.startswith("../"))


def _program_errors(program: dict[str, Any], prefix: str, keys: tuple[str, ...]) -> dict[str, str]:
    """Types, placeholders and output path of one program (the decision or the merge step)."""
    errors: dict[str, str] = {}
    for name in keys:
        if name in program and not isinstance(program[name], str):
            errors[prefix + name] = "must be a string"
    if errors:
        return errors
    if not program.get("executable", "").strip():
        errors[prefix + "executable"] = "is required: the program to run"
    arguments = program.get("arguments", "")
    problems = []
    if "%IN" not in arguments:
        problems.append("must contain %IN (the file the program reads the task results from)")
    output_json = program.get("output_json")
    if output_json is None and "%OUT" not in arguments:
        problems.append("must contain %OUT (where the program writes its JSON), or give output_json")
    if problems:
        # Both when both are missing: naming one, then the other after a fix, costs the user a round trip.
        errors[prefix + "arguments"] = "; ".join(problems)
    if output_json is not None and not _relative_path(output_json):
        errors[prefix + "output_json"] = "must be a path inside the program's working directory"
    return errors


def _sandbox_errors(program: dict[str, Any], owner: Any) -> dict[str, str]:
    """Whether the tarball was uploaded and whether a sandbox can run the program here at all."""
    errors: dict[str, str] = {}
    image = None
    if sandbox_option := program.get("sandbox"):
        if "://" in sandbox_option:
            # The original's client uploads to its own cache and passes the URL; here programs see no network
            # and the service fetches nothing a request names.
            errors[FIELD + "sandbox"] = (
                f"{sandbox_option!r} is a URL; the service fetches no sandbox: upload the tarball to "
                "/api/v1/activelearning/uploads/ and give the name it returns (al/<sha256>.tar.gz)"
            )
        elif sandbox.is_tarball(sandbox_option):
            try:
                sandbox.uploaded_file(sandbox_option)
            except ValueError as exc:
                errors[FIELD + "sandbox"] = str(exc)
        else:
            image = sandbox_option
    if problem := sandbox.sandbox_problem(owner, image=image):
        errors[FIELD + ("sandbox" if image else "executable")] = problem
    return errors


def _metric_rule(raw: Any, name: str, errors: dict[str, str], *, keys: dict[str, str]) -> dict[str, Any] | None:
    """A target or plateau rule: ``metric`` (a name), ``mode`` (min|max) and the numbers in ``keys``."""
    if raw is None:
        return None
    where = FIELD + name
    if not isinstance(raw, dict):
        errors[where] = "must be an object"
        return None
    unknown = set(raw) - {"metric", "mode", *keys}
    if unknown:
        errors[where] = f"unknown keys {sorted(unknown)}"
        return None
    metric, mode = raw.get("metric"), raw.get("mode", "min")
    if not isinstance(metric, str) or not metric:
        errors[f"{where}.metric"] = "is required: the name of a metric the tasks report"
    if mode not in MODES:
        errors[f"{where}.mode"] = f"must be one of {list(MODES)}"
    cleaned: dict[str, Any] = {"metric": metric, "mode": mode}
    for key, problem in keys.items():
        value = raw.get(key)
        if not _number(value) or (key in ("delta",) and value < 0) or (key == "patience" and value < 1):
            errors[f"{where}.{key}"] = problem
        cleaned[key] = value
    return cleaned


def _quorum(raw: Any, errors: dict[str, str]) -> tuple[float, float]:
    if raw is None:
        return 1.0, 0.0
    where = FIELD + "quorum"
    if not isinstance(raw, dict):
        errors[where] = "must be an object with fraction and grace_seconds"
        return 1.0, 0.0
    fraction, grace = raw.get("fraction", 1.0), raw.get("grace_seconds", 0.0)
    if not _number(fraction) or not 0 < fraction <= 1:
        errors[f"{where}.fraction"] = "must be a number in (0, 1]"
        fraction = 1.0
    if not _number(grace) or grace < 0:
        errors[f"{where}.grace_seconds"] = "must be a number of seconds >= 0"
        grace = 0.0
    return float(fraction), float(grace)


def _fork(raw: Any, errors: dict[str, str]) -> dict[str, int] | None:
    if raw is None:
        return None
    where = FIELD + "fork"
    if not isinstance(raw, dict):
        errors[where] = "must be an object with request_id and iteration"
        return None
    request_id, iteration = raw.get("request_id"), raw.get("iteration")
    for key, value in (("request_id", request_id), ("iteration", iteration)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
            errors[f"{where}.{key}"] = "must be a positive integer"
    return {"request_id": request_id, "iteration": iteration}


def _decision_program(metadata: dict[str, Any], owner: Any, errors: dict[str, str]) -> tuple[dict, str | None]:
    """The decision program, or the allow-listed callable; exactly one of them."""
    program = {k: metadata[k] for k in PROGRAM_KEYS if metadata.get(k) not in (None, "")}
    name = metadata.get("callable")
    if name is not None:
        allowed = settings.IDDS_AL_CALLABLES
        if program:
            errors[FIELD + "callable"] = "give either callable or executable, not both"
        elif not isinstance(name, str) or name not in allowed:
            errors[FIELD + "callable"] = (
                f"{name!r} is not a decision the operator allows here (IDDS_AL_CALLABLES: {sorted(allowed) or 'none'})"
            )
        return {}, name if isinstance(name, str) else None
    if not program:
        errors[FIELD + "executable"] = "is required: the decision program (or an allow-listed callable)"
        return {}, None
    found = _program_errors(program, FIELD, PROGRAM_KEYS)
    errors.update(found or _sandbox_errors(program, owner))
    return program, None


def _merge(raw: Any, has_program: bool, errors: dict[str, str]) -> dict[str, Any] | None:
    if raw is None:
        return None
    where = FIELD + "merge"
    if not isinstance(raw, dict) or set(raw) - set(MERGE_KEYS):
        errors[where] = f"must be an object with keys among {list(MERGE_KEYS)}"
        return None
    if not has_program:
        errors[where] = "a merge step runs from the decision program's sandbox: give executable and sandbox"
        return None
    errors.update(_program_errors(raw, f"{where}.", MERGE_KEYS))
    return dict(raw)


def loop_validate(metadata: Any, *, owner: Any = None) -> LoopConfig:
    """Clean active-learning metadata or raise ``WorkTypeValidationError`` naming every bad field."""
    if not isinstance(metadata, dict):
        raise WorkTypeValidationError({"request_metadata": "must be an object"})
    errors: dict[str, str] = {}
    program, callable_name = _decision_program(metadata, owner, errors)
    fork = _fork(metadata.get("fork"), errors)
    initial = _parameter_sets(metadata.get("initial_parameters"), errors, required=fork is None)
    deadline = metadata.get("deadline_seconds")
    if deadline is not None and (not _number(deadline) or deadline <= 0):
        errors[FIELD + "deadline_seconds"] = "must be a positive number of seconds"
    memoise = metadata.get("memoise", False)
    if not isinstance(memoise, bool):
        errors[FIELD + "memoise"] = "must be true or false"
    fraction, grace = _quorum(metadata.get("quorum"), errors)
    config = LoopConfig(
        program=program,
        callable=callable_name,
        merge=_merge(metadata.get("merge"), bool(program), errors),
        initial_parameters=initial,
        timeout=_float_setting(metadata, "timeout", errors),
        memory_mb=_int_setting(metadata, "memory_mb", errors),
        max_iterations=_int_setting(metadata, "max_iterations", errors),
        deadline_seconds=float(deadline) if _number(deadline) else None,
        target=_metric_rule(metadata.get("target"), "target", errors, keys={"value": "must be a number"}),
        plateau=_metric_rule(
            metadata.get("plateau"),
            "plateau",
            errors,
            keys={"delta": "must be a number >= 0", "patience": "must be an integer >= 1 (iterations)"},
        ),
        max_failed_steps=_int_setting(metadata, "max_failed_steps", errors),
        quorum_fraction=fraction,
        quorum_grace_seconds=grace,
        memoise=memoise is True,
        fork=fork,
    )
    if errors:
        raise WorkTypeValidationError(errors)
    return config
