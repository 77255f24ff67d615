"""The user generator program: the %IN/%OUT contract, run in the sandbox, and refused where none is usable."""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from hpo.generators.base import GeneratorError
from hpo.generators.program import ProgramGenerator, ProgramSpec, run_program
from hpo.models import Generation
from hpo.space_forms import parse_space
from requests_app.models.statuses import RequestStatus
from tests.conftest import wait_for
from tests.hpo.study_helpers import finished, stop_live_studies, submit

SPACE = {"lr": [0.0, 1.0], "n": {"type": "int", "low": 1, "high": 5}}

# Proposes points lr = k/10 for the next free k; with "seen" it also returns what it was given.
GOOD = """
import json, os, sys
max_points, num_points, src, dst = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
doc = json.load(open(src))
start = len(doc["points"])
count = min(num_points, max_points - start)
points = [{"lr": (start + i) / 10, "n": 1 + (start + i) % 5} for i in range(count)]
out = {"points": points, "argv": sys.argv[1:], "doc": doc, "cwd": os.getcwd()} if "seen" in os.listdir() else points
json.dump(out, open(dst, "w"))
"""


@pytest.fixture(autouse=True)
def _own_sandbox_dirs(sandbox_dirs):
    """Every test here runs with directories of its own (tests/conftest.py ``sandbox_dirs``)."""
    return sandbox_dirs


def upload(files: dict[str, str]) -> str:
    """A tarball of ``files`` in the upload directory, as an upload would leave it; returns its name."""
    name = f"{uuid.uuid4().hex}.tar.gz"
    with tarfile.open(Path(django_settings.IDDS_SANDBOX_UPLOAD_DIR) / name, "w:gz") as tar:
        for path, text in files.items():
            data = textwrap.dedent(text).encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return name


def generator(code: str, **options) -> ProgramGenerator:
    options = {
        "executable": "python3 gen.py",
        "arguments": "%MAX_POINTS %NUM_POINTS %IN %OUT",
        "timeout": 20,
        "sandbox": upload({"gen.py": code, **options.pop("files", {})}),
        **options,
    }
    return ProgramGenerator(parse_space(SPACE), seed=1, options=options)


@pytest.mark.django_db
def test_it_passes_history_and_space_and_reads_the_new_points():
    # given
    history = [({"lr": 0.5, "n": 2}, 0.25), ({"lr": 0.7, "n": 3}, None)]
    spec = generator(GOOD, files={"seen": ""}).spec

    # when
    payload = {"points": [[point, loss] for point, loss in history], "opt_space": SPACE}
    output = run_program(spec, payload, num_points=2, max_points=10)

    # then the program saw its inputs by their paths inside the sandbox
    assert output["points"] == [{"lr": 0.2, "n": 3}, {"lr": 0.3, "n": 4}]
    assert output["argv"] == ["10", "2", "/sandbox/input.json", "/sandbox/output.json"]
    assert output["cwd"] == "/sandbox"
    assert output["doc"] == {"points": [[{"lr": 0.5, "n": 2}, 0.25], [{"lr": 0.7, "n": 3}, None]], "opt_space": SPACE}
    assert generator(GOOD).generate(history, 2, 10) == [{"lr": 0.2, "n": 3}, {"lr": 0.3, "n": 4}]


@pytest.mark.django_db
def test_it_reads_output_json_relative_to_its_working_directory():
    # given
    code = 'import json, os; os.mkdir("result"); json.dump([{"lr": 0.1, "n": 1}], open("result/out.json", "w"))'

    # when
    points = generator(code, arguments="", output_json="result/out.json").generate([], 1, 10)

    # then
    assert points == [{"lr": 0.1, "n": 1}]


@pytest.mark.django_db
def test_it_drops_points_already_in_the_history_and_trims_to_the_budget():
    # given
    code = (
        "import json, sys\n"
        'points = [{"lr": 0.5, "n": 2}] + [{"lr": i / 10, "n": 1} for i in range(5)]\n'
        'json.dump(points, open(sys.argv[4], "w"))'
    )

    # when
    points = generator(code).generate([({"lr": 0.5, "n": 2}, 1.0)], 3, 10)

    # then
    assert points == [{"lr": 0.0, "n": 1}, {"lr": 0.1, "n": 1}, {"lr": 0.2, "n": 1}]


@pytest.mark.django_db
def test_an_empty_list_means_the_generator_is_done():
    # when / then
    assert generator('import json, sys; json.dump([], open(sys.argv[4], "w"))').generate([], 3, 10) == []


@pytest.mark.django_db
def test_it_kills_a_program_that_runs_too_long():
    # given a program that starts a child and both sleep
    code = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"

    # when
    with pytest.raises(GeneratorError) as caught:
        generator(code, timeout=1).generate([], 1, 10)

    # then
    assert "exceeded its wall-clock limit of 1 s" in caught.value.reason
    assert caught.value.details["stopped"] == "wall"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("import sys; open(sys.argv[4], 'w').write('this is not json')", "not valid JSON"),
        ("import sys; open(sys.argv[4], 'w').write('{\"a\": 1}')", "must be a JSON list"),
        ("import sys; open(sys.argv[4], 'w').write('[{\"lr\": 7, \"n\": 1}]')", "output[0].lr"),
        ("import sys; open(sys.argv[4], 'w').write('[{\"lr\": 0.1}]')", "missing ['n']"),
        ("print('no output file')", "wrote no output file"),
    ],
)
def test_it_explains_garbage_output(code, words):
    # when
    with pytest.raises(GeneratorError) as caught:
        generator(code).generate([], 1, 10)

    # then
    assert words in caught.value.reason


@pytest.mark.django_db
def test_it_keeps_the_tails_of_a_failing_program():
    # given
    code = "import sys; print('working...'); sys.stderr.write('x' * 10000 + 'boom'); sys.exit(3)"

    # when
    with pytest.raises(GeneratorError) as caught:
        generator(code).generate([], 1, 10)

    # then
    assert "exited with status 3" in caught.value.reason
    assert caught.value.details["stdout_tail"] == "working...\n"
    assert caught.value.details["stderr_tail"].endswith("boom")
    assert len(caught.value.details["stderr_tail"]) == 4000


@pytest.mark.django_db
def test_it_limits_the_memory_of_the_program():
    # when
    with pytest.raises(GeneratorError) as caught:
        generator("blob = bytearray(1024 ** 3)", memory_mb=200).generate([], 1, 10)

    # then
    assert "ran out of its memory limit of 200 MB" in caught.value.reason
    assert "MemoryError" in caught.value.details["stderr_tail"]


@pytest.mark.django_db
def test_a_link_to_a_host_file_as_output_is_not_read():
    # given a program that points %OUT at a file only the worker could read
    code = "import os, sys; os.symlink('/etc/shadow', sys.argv[4])"

    # when
    with pytest.raises(GeneratorError) as caught:
        generator(code).generate([], 1, 10)

    # then
    assert "symbolic link" in caught.value.reason
    assert "root:" not in caught.value.reason


@pytest.mark.django_db
def test_it_refuses_a_tarball_that_was_not_uploaded(tmp_path):
    # given
    (tmp_path / "host.tar").write_bytes(b"")
    spec = ProgramSpec(executable="python3", arguments="%OUT", sandbox=str(tmp_path / "host.tar"))

    # when / then
    with pytest.raises(GeneratorError, match="not an uploaded file"):
        run_program(spec, {}, num_points=1, max_points=1)


@pytest.mark.django_db
def test_it_refuses_a_container_image_without_a_container_runtime():
    # given
    spec = ProgramSpec(executable="python3", arguments="%OUT", sandbox="registry.example/hpo:1")

    # when / then
    with pytest.raises(GeneratorError, match="needs a container runtime"):
        run_program(spec, {}, num_points=1, max_points=1)


def test_it_needs_an_executable():
    # when / then
    with pytest.raises(ValueError, match="executable"):
        ProgramGenerator(parse_space(SPACE), options={})


# Submission: a program is refused where it could not run, and its options are checked.


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("metadata", "field", "words"),
    [
        ({"executable": "sh", "arguments": "-c 'id > proof.txt'"}, "arguments", "must contain %OUT"),
        ({"executable": "python3", "arguments": "%OUT", "sandbox": "/etc/hosts.tar"}, "sandbox", "not an uploaded"),
        ({"executable": "python3", "arguments": "%OUT", "sandbox": "../x.tgz"}, "sandbox", "not an uploaded"),
        ({"executable": "python3", "output_json": "../../x.json"}, "output_json", "inside the program's"),
        ({"executable": "python3", "arguments": "%OUT", "sandbox": "hpo:1"}, "sandbox", "container runtime"),
    ],
)
def test_bad_program_options_are_refused_with_400(api, metadata, field, words):
    # when
    response = api.post(
        "/api/v1/requests/",
        {"request_type": 4, "request_metadata": {"opt_space": SPACE, **metadata}},
        format="json",
    )

    # then
    assert response.status_code == 400, response.content
    assert words in response.json()["errors"][f"request_metadata.{field}"]


@pytest.mark.django_db
def test_a_program_is_refused_at_submission_when_no_sandbox_is_usable(settings, api, staff_api):
    # given a configured bubblewrap that does not exist
    settings.IDDS_SANDBOX_BINARY = "/nonexistent/bwrap"
    body = {"request_type": 4, "request_metadata": {"opt_space": SPACE, "executable": "python3", "arguments": "%OUT"}}

    # when
    refused = [client.post("/api/v1/requests/", body, format="json") for client in (api, staff_api)]

    # then
    for response in refused:
        assert response.status_code == 400, response.content
        problem = response.json()["errors"]["request_metadata.executable"]
        assert "'/nonexistent/bwrap' (bubblewrap) is not installed" in problem
        assert "apt-get install bubblewrap" in problem
    # and built-in methods are not affected
    built_in = api.post("/api/v1/requests/", {**body, "request_metadata": {"opt_space": SPACE}}, format="json")
    assert built_in.status_code == 201


@pytest.mark.django_db
def test_with_the_host_allowed_only_staff_programs_are_accepted(settings, api, staff_api):
    # given
    settings.IDDS_SANDBOX_BINARY = "/nonexistent/bwrap"
    settings.IDDS_SANDBOX_ALLOW_HOST = True
    body = {"request_type": 4, "request_metadata": {"opt_space": SPACE, "executable": "python3", "arguments": "%OUT"}}

    # when
    by_user = api.post("/api/v1/requests/", body, format="json")
    by_staff = staff_api.post("/api/v1/requests/", body, format="json")

    # then
    assert by_user.status_code == 400
    assert by_staff.status_code == 201, by_staff.content


# A hostile program in a real study, run by the real worker.


def test_a_hostile_program_is_contained_and_the_study_records_why(celery_worker, settings, api):
    # given a program that looks around, tries to leave a file in the project, then forks without end
    settings.IDDS_SANDBOX_PROCESSES = 16
    marker = uuid.uuid4().hex
    proof = Path(django_settings.BASE_DIR) / f"proof-{marker}.txt"
    script = f"""
        id
        env | sort
        echo pwned > {proof} || echo "cannot write the project"
        bomb() {{ bomb | bomb & }}
        bomb
        sleep 5
        exit 3
    """
    name = upload({"hostile.sh": script})

    # when
    request_id = submit(
        api, executable="sh hostile.sh", arguments="%OUT", sandbox=name, max_generator_failures=1, generator_timeout=30
    )
    request = wait_for(lambda: finished(request_id), what="the hostile study to fail")

    # then
    try:
        assert request.status == RequestStatus.FAILED
        generation = Generation.objects.get(transform__request_id=request_id)
        stdout = generation.details["stdout_tail"]
        assert "uid=0(" not in stdout
        assert "uid=" in stdout
        assert "DATABASE_URL" not in stdout
        assert "SECRET_KEY" not in stdout
        assert "cannot write the project" in stdout
        assert not proof.exists()
        assert generation.details["stopped"] == "processes"
        assert "reached its limit of 16 processes" in generation.error
        assert "reached its limit of 16 processes" in json.dumps(request.errors)
    finally:
        stop_live_studies()
