"""Fixtures for the sandbox tests: private work and upload directories, and a helper running Python code."""

from __future__ import annotations

from pathlib import Path

import pytest

from requests_app.sandbox import Limits, Program, Result, Runtime, run, work_directory

#: Small limits: each hostile program hits one of them within seconds.
SMALL = Limits(cpu_seconds=3, memory_mb=256, processes=16, output_mb=1, wall_seconds=20)


@pytest.fixture(autouse=True)
def _own_sandbox_dirs(sandbox_dirs):
    """Every test here runs with directories of its own (tests/conftest.py ``sandbox_dirs``)."""
    return sandbox_dirs


def run_python(runtime: Runtime, code: str, *, limits: Limits = SMALL) -> tuple[Result, list[str]]:
    """Run ``code`` with ``python3`` in a fresh directory; the result and the files it left there."""
    with work_directory() as workdir:
        result = run(Program(argv=["python3", "-c", code], workdir=workdir, limits=limits), runtime=runtime)
        return result, sorted(p.name for p in Path(workdir).iterdir())
