"""Which runtime runs a program, and when none may: the staff rule, missing runtimes, container command lines."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from requests_app.sandbox import (
    INSIDE_WORKDIR,
    Limits,
    Program,
    SandboxUnavailable,
    read_output,
    runtime_for,
    sandbox_problem,
    service_runtime,
    unpack_upload,
    uploaded_file,
)
from requests_app.sandbox.container import Container
from tests.sandbox.conftest import run_python

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user(username="alice")


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_user(username="admin", is_staff=True)


def test_bubblewrap_is_usable_here_for_everyone(alice):
    # when / then
    assert sandbox_problem(alice) is None
    assert runtime_for(alice).name == "bubblewrap"


def test_a_missing_runtime_is_refused_with_what_the_operator_can_do(settings, alice, admin):
    # given
    settings.IDDS_SANDBOX_BINARY = "/nonexistent/bwrap"

    # when
    problem = sandbox_problem(alice)

    # then
    assert "'/nonexistent/bwrap' (bubblewrap) is not installed" in problem
    assert "apt-get install bubblewrap" in problem
    assert sandbox_problem(admin) == problem  # staff too, while the host is not allowed
    with pytest.raises(SandboxUnavailable):
        runtime_for(None)


def test_only_staff_fall_back_to_the_host_and_only_when_allowed(settings, alice, admin):
    # given
    settings.IDDS_SANDBOX_BINARY = "/nonexistent/bwrap"
    settings.IDDS_SANDBOX_ALLOW_HOST = True

    # when / then
    assert runtime_for(admin).name == "host"
    assert sandbox_problem(admin) is None
    assert "is not installed" in sandbox_problem(alice)
    assert "is not installed" in sandbox_problem(None)


def test_the_host_runtime_is_for_staff_only(settings, alice, admin):
    # given
    settings.IDDS_SANDBOX_RUNTIME = "host"
    settings.IDDS_SANDBOX_ALLOW_HOST = True

    # when / then
    assert runtime_for(admin).name == "host"
    assert "only staff may do" in sandbox_problem(alice)


def test_the_host_runtime_still_gives_a_clean_environment_and_limits(settings, admin, monkeypatch):
    # given
    settings.IDDS_SANDBOX_RUNTIME = "host"
    settings.IDDS_SANDBOX_ALLOW_HOST = True
    monkeypatch.setenv("SECRET_KEY", "s3cret-key")

    # when
    result, _ = run_python(runtime_for(admin), "import os; print(sorted(os.environ)); bytearray(2 * 1024 ** 3)")

    # then
    assert "SECRET_KEY" not in result.stdout_tail
    assert "DATABASE_URL" not in result.stdout_tail
    assert result.stopped == "memory", result


def test_a_container_image_needs_a_container_runtime(alice):
    # when
    problem = sandbox_problem(alice, image="registry.example/hpo:1")

    # then
    assert "needs a container runtime, but IDDS_SANDBOX_RUNTIME=bubblewrap" in problem


def test_a_container_runtime_that_does_not_answer_is_refused(settings, alice):
    # given the docker client without a daemon (as on this machine), or no client at all
    settings.IDDS_SANDBOX_RUNTIME = "docker"
    settings.IDDS_SANDBOX_BINARY = "/nonexistent/docker"

    # when / then
    assert "the container runtime 'docker' (/nonexistent/docker) is not installed" in sandbox_problem(alice)


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_docker_and_podman_run_without_network_read_only_and_limited(engine, tmp_path):
    # given
    program = Program(
        argv=["python3", "gen.py"],
        workdir=tmp_path,
        limits=Limits(cpu_seconds=7, memory_mb=300, processes=9, output_mb=2, wall_seconds=5),
        env={"EXTRA": "1"},
    )

    # when
    argv = Container(engine, default_image="python:3.11-slim").command(program, run_name="run-1")

    # then
    assert argv[1:5] == ["run", "--rm", "--pull=never", "--name"]
    for flag in ["--network=none", "--read-only", "--cap-drop=ALL", "--user=65534:65534", "--memory=300m"]:
        assert flag in argv
    assert "--pids-limit=9" in argv
    assert "--ulimit=cpu=7:12" in argv
    assert f"--ulimit=fsize={2 * 1024 * 1024}:" in " ".join(argv)
    assert f"{tmp_path}:{INSIDE_WORKDIR}:rw" in argv
    assert argv[-3:] == ["python:3.11-slim", "python3", "gen.py"]
    assert not any(arg.startswith("--env=DATABASE_URL") for arg in argv)


def test_apptainer_runs_without_network_and_sets_the_limits_inside(tmp_path):
    # given
    program = Program(argv=["./gen"], workdir=tmp_path, limits=Limits(cpu_seconds=7, memory_mb=300, processes=9))

    # when
    argv = Container("apptainer", default_image="hpo.sif").command(program, run_name="run-1")

    # then
    assert ["--network", "none"] == argv[argv.index("--network") : argv.index("--network") + 2]
    assert "--containall" in argv
    assert "--cleanenv" in argv
    script = argv[argv.index("-c") + 1]
    assert "ulimit -t 7 -v 307200" in script
    assert "-u 9" in script
    assert argv[-2:] == ["sh", "./gen"]


def test_service_programs_use_bubblewrap_when_it_works():
    # when / then
    assert service_runtime().name == "bubblewrap"


def test_it_reads_output_only_from_regular_files_inside_the_directory(tmp_path):
    # given
    workdir = tmp_path / "work"
    (workdir / "sub").mkdir(parents=True)
    (workdir / "out.json").write_text("[]")
    (workdir / "link.json").symlink_to("/etc/passwd")
    (workdir / "sublink").symlink_to("/etc")
    os.mkfifo(workdir / "fifo")

    # when / then
    assert read_output(workdir, "out.json") == "[]"
    assert read_output(workdir, "missing.json") is None
    for name, words in [
        ("link.json", "symbolic link"),
        ("sublink/passwd", "symbolic link"),
        ("../secret", "outside"),
        ("/etc/passwd", "outside"),
        ("fifo", "not a regular file"),
    ]:
        with pytest.raises(ValueError, match=words):
            read_output(workdir, name)


def test_only_uploaded_files_may_be_named(settings, tmp_path):
    # given
    uploads = Path(settings.IDDS_SANDBOX_UPLOAD_DIR)
    (uploads / "mine.tar.gz").write_bytes(b"x")
    (tmp_path / "host.tar.gz").write_bytes(b"x")

    # when / then
    assert uploaded_file("mine.tar.gz") == (uploads / "mine.tar.gz").resolve()
    assert uploaded_file(str(uploads / "mine.tar.gz")) == (uploads / "mine.tar.gz").resolve()
    for name in [str(tmp_path / "host.tar.gz"), "../host.tar.gz", "/etc/passwd", "absent.tar"]:
        with pytest.raises(ValueError, match="not an uploaded file"):
            uploaded_file(name)


def test_an_upload_is_unpacked_without_escaping_the_directory(settings, tmp_path):
    # given a tarball with a good file and one that climbs out
    uploads = Path(settings.IDDS_SANDBOX_UPLOAD_DIR)
    with tarfile.open(uploads / "good.tar", "w") as tar:
        tar.add(__file__, arcname="gen.py")
    with tarfile.open(uploads / "evil.tar", "w") as tar:
        tar.add(__file__, arcname="../escaped.py")
    (uploads / "broken.tar").write_bytes(b"not a tarball")
    workdir = tmp_path / "unpacked"
    workdir.mkdir()

    # when
    unpack_upload("good.tar", workdir)

    # then
    assert (workdir / "gen.py").read_text() == Path(__file__).read_text()
    with pytest.raises(ValueError, match="cannot be unpacked"):
        unpack_upload("evil.tar", workdir)
    assert not (tmp_path / "escaped.py").exists()
    with pytest.raises(ValueError, match="cannot be unpacked"):
        unpack_upload("broken.tar", workdir)


def test_it_refuses_to_show_the_project_to_programs(settings, tmp_path):
    # given
    settings.IDDS_SANDBOX_READ_ONLY_PATHS = [str(settings.BASE_DIR)]

    # when / then
    assert "would show the service's own files" in sandbox_problem(None)
