"""Hostile programs in the default sandbox (bubblewrap): each is contained and the reason is reported."""

from __future__ import annotations

import json
import os
import socket
import sys
import sysconfig
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from requests_app.sandbox import runtime_for
from tests.sandbox.conftest import SMALL, run_python

pytestmark = pytest.mark.django_db


@pytest.fixture
def bubblewrap():
    runtime = runtime_for(None)
    assert runtime.name == "bubblewrap"
    return runtime


def processes_with(marker: str) -> list[int]:
    """Host pids whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_it_sees_nothing_of_the_service_environment_or_files(bubblewrap, monkeypatch):
    # given secrets in the worker's environment and the project's files on disk
    monkeypatch.setenv("SECRET_KEY", "s3cret-key")
    monkeypatch.setenv("IDDS_API_TOKEN", "t0ken")
    assert os.environ["DATABASE_URL"]
    project = Path(django_settings.BASE_DIR)
    targets = [project / "idds_site" / "settings.py", project / ".env", project / "manage.py"]
    assert targets[0].is_file()
    code = f"""
import json, os
seen = {{}}
for path in {[str(t) for t in targets]!r} + ["/etc/passwd", "/root"]:
    try:
        open(path).read(1)
        seen[path] = "READ"
    except OSError as exc:
        seen[path] = type(exc).__name__
print(json.dumps({{"env": dict(os.environ), "files": seen, "uid": os.getuid()}}))
"""

    # when
    result, _ = run_python(bubblewrap, code)

    # then
    assert result.ok, result
    seen = json.loads(result.stdout_tail)
    service = {"DATABASE_URL", "SECRET_KEY", "IDDS_API_TOKEN", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    assert not service & set(seen["env"])
    assert set(seen["env"]) <= {"PATH", "HOME", "LANG", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "TMPDIR", "PWD"}
    assert "s3cret" not in result.stdout_tail
    assert "t0ken" not in result.stdout_tail
    assert "READ" not in seen["files"].values(), seen["files"]
    assert seen["uid"] != 0


def test_it_writes_only_in_its_own_directory(bubblewrap, tmp_path):
    # given host places the program tries to write
    marker = uuid.uuid4().hex
    project = Path(django_settings.BASE_DIR)
    outside = [tmp_path / f"escape-{marker}", project / f"proof-{marker}.txt", Path("/tmp") / marker]
    code = f"""
for path in {[str(p) for p in outside]!r} + ["/usr/{marker}", "own.txt"]:
    try:
        open(path, "w").write("x")
        print("wrote", path)
    except OSError as exc:
        print("refused", path, type(exc).__name__)
"""

    # when
    result, left = run_python(bubblewrap, code)

    # then
    assert result.ok, result
    assert not any(path.exists() for path in outside)
    assert not Path(f"/usr/{marker}").exists()
    assert left == ["own.txt"]
    assert "wrote own.txt" in result.stdout_tail


def test_it_sees_none_of_the_packages_installed_into_the_service_interpreter(bubblewrap):
    # given the interpreter the sandbox binds, with packages (and .pth start-up hooks) pip-installed into it
    prefix = {"base": sys.base_prefix, "platbase": sys.base_prefix}
    site_packages = Path(sysconfig.get_path("purelib", "posix_prefix", vars=prefix))
    assert any(site_packages.iterdir())
    code = f"""
import json, os, sys
print(json.dumps({{"listing": os.listdir({str(site_packages)!r}), "modules": sorted(sys.modules)}}))
"""

    # when
    result, _ = run_python(bubblewrap, code)

    # then: the directory is there but empty, and no start-up hook ran (the standard library still works)
    assert result.ok, result
    seen = json.loads(result.stdout_tail)
    assert seen["listing"] == []
    assert "json" in seen["modules"]
    assert not [name for name in seen["modules"] if name.split(".")[0] in {"certifi", "_distutils_hack"}]


def test_it_cannot_reach_postgresql(bubblewrap):
    # given PostgreSQL listening on the host
    with socket.create_connection(("127.0.0.1", 5432), timeout=5):
        pass
    code = """
import socket
try:
    socket.create_connection(("127.0.0.1", 5432), timeout=5)
    print("CONNECTED")
except OSError as exc:
    print("refused", exc)
"""

    # when
    result, _ = run_python(bubblewrap, code)

    # then
    assert result.ok, result
    assert "CONNECTED" not in result.stdout_tail
    assert "refused" in result.stdout_tail


def test_a_fork_bomb_stops_at_its_process_limit_and_leaves_nothing(bubblewrap):
    # given
    marker = f"forkbomb-{uuid.uuid4().hex}"
    code = f"""
import os, time
# {marker}
children = 0
while True:
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
    children += 1
"""

    # when
    result, _ = run_python(bubblewrap, code)

    # then
    assert result.stopped == "processes", result
    assert f"limit of {SMALL.processes} processes" in result.reason
    assert processes_with(marker) == []


def test_it_stops_at_its_memory_limit(bubblewrap):
    # when
    result, _ = run_python(bubblewrap, "blob = bytearray(2 * 1024 ** 3)")

    # then
    assert result.stopped == "memory", result
    assert "MemoryError" in result.stderr_tail
    assert f"memory limit of {SMALL.memory_mb} MB" in result.reason


def test_printing_gigabytes_stops_at_the_output_limit(bubblewrap, settings):
    # given a program that tries to print 4 GB and counts what it got out
    code = """
import sys
written = 0
try:
    for _ in range(4 * 1024):
        sys.stdout.write("x" * 1024 * 1024)
        sys.stdout.flush()
        written += 1024 * 1024
except OSError as exc:
    sys.stderr.write(f"stopped after {written} bytes: {exc}")
    sys.exit(1)
"""

    # when
    result, _ = run_python(bubblewrap, code)

    # then
    assert result.stopped == "output", result
    written = int(result.stderr_tail.split("stopped after ")[1].split(" bytes")[0])
    assert written <= SMALL.output_mb * 1024 * 1024
    assert len(result.stdout_tail) <= 4000
    # and nothing of the run is left in the work directory
    assert list(Path(settings.IDDS_SANDBOX_WORK_DIR).iterdir()) == []


def test_a_program_that_never_exits_is_killed_with_everything_it_started(bubblewrap):
    # given
    marker = f"sleeper-{uuid.uuid4().hex}"
    code = f"import subprocess, time; subprocess.Popen(['sh', '-c', 'sleep 300 # {marker}']); time.sleep(300)"
    limits = replace(SMALL, wall_seconds=2)

    # when
    result, _ = run_python(bubblewrap, code, limits=limits)

    # then
    assert result.stopped == "wall", result
    assert "wall-clock limit of 2 s" in result.reason
    assert processes_with(marker) == []


def test_it_stops_at_its_cpu_limit(bubblewrap):
    # when
    result, _ = run_python(bubblewrap, "while True: pass")

    # then
    assert result.stopped == "cpu", result
    assert f"CPU time limit of {SMALL.cpu_seconds} s" in result.reason
