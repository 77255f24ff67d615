from __future__ import annotations

import json
import sys
import tarfile
import textwrap

import pytest

from hpo.generators.base import GeneratorError
from hpo.generators.program import ProgramGenerator
from hpo.space import parse_space

SPACE = {"lr": [0.0, 1.0], "n": {"type": "int", "low": 1, "high": 5}}

# Proposes points lr = k/10 for the next free k, echoing what it read into a side file for inspection.
GOOD = """
import json, sys
max_points, num_points, src, dst = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
doc = json.load(open(src))
json.dump({"argv": sys.argv[1:], "doc": doc}, open("seen.json", "w"))
start = len(doc["points"])
count = min(num_points, max_points - start)
json.dump([{"lr": (start + i) / 10, "n": 1 + (start + i) % 5} for i in range(count)], open(dst, "w"))
"""


def write(tmp_path, name, code):
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return path


def generator(tmp_path, script, **options):
    options = {
        "executable": f"{sys.executable} {script}",
        "arguments": "%MAX_POINTS %NUM_POINTS %IN %OUT",
        "work_root": str(tmp_path / "work"),
        "timeout": 20,
        **options,
    }
    return ProgramGenerator(parse_space(SPACE), seed=1, options=options)


def test_it_passes_history_and_space_and_reads_the_new_points(tmp_path):
    # given
    script = write(tmp_path, "gen.py", GOOD)
    history = [({"lr": 0.5, "n": 2}, 0.25), ({"lr": 0.7, "n": 3}, None)]

    # when
    points = generator(tmp_path, script, keep_workdir=True).generate(history, 2, 10)

    # then
    assert points == [{"lr": 0.2, "n": 3}, {"lr": 0.3, "n": 4}]
    (workdir,) = (tmp_path / "work").iterdir()
    seen = json.loads((workdir / "seen.json").read_text())
    assert seen["argv"][:2] == ["10", "2"]
    assert seen["doc"] == {"points": [[{"lr": 0.5, "n": 2}, 0.25], [{"lr": 0.7, "n": 3}, None]], "opt_space": SPACE}


def test_it_reads_output_json_relative_to_its_working_directory(tmp_path):
    # given
    script = write(tmp_path, "gen.py", 'import json; json.dump([{"lr": 0.1, "n": 1}], open("result/out.json", "w"))')
    tarball = tmp_path / "sandbox.tar.gz"
    (tmp_path / "result").mkdir()
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path / "result", arcname="result")

    # when
    points = generator(tmp_path, script, arguments="", output_json="result/out.json", sandbox=str(tarball)).generate(
        [], 1, 10
    )

    # then
    assert points == [{"lr": 0.1, "n": 1}]


def test_it_drops_points_already_in_the_history_and_trims_to_the_budget(tmp_path):
    # given
    script = write(
        tmp_path,
        "gen.py",
        "import json, sys\n"
        'points = [{"lr": 0.5, "n": 2}] + [{"lr": i / 10, "n": 1} for i in range(5)]\n'
        'json.dump(points, open(sys.argv[4], "w"))',
    )

    # when
    points = generator(tmp_path, script).generate([({"lr": 0.5, "n": 2}, 1.0)], 3, 10)

    # then
    assert points == [{"lr": 0.0, "n": 1}, {"lr": 0.1, "n": 1}, {"lr": 0.2, "n": 1}]


def test_an_empty_list_means_the_generator_is_done(tmp_path):
    # given
    script = write(tmp_path, "gen.py", 'import json, sys; json.dump([], open(sys.argv[4], "w"))')

    # when / then
    assert generator(tmp_path, script).generate([], 3, 10) == []


def test_it_kills_a_program_that_runs_too_long(tmp_path):
    # given a program that starts a child and both sleep
    script = write(tmp_path, "gen.py", "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)")

    # when
    with pytest.raises(GeneratorError) as caught:
        generator(tmp_path, script, timeout=1).generate([], 1, 10)

    # then
    assert "timed out after 1 s" in caught.value.reason


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
def test_it_explains_garbage_output(tmp_path, code, words):
    # given
    script = write(tmp_path, "gen.py", code)

    # when
    with pytest.raises(GeneratorError) as caught:
        generator(tmp_path, script).generate([], 1, 10)

    # then
    assert words in caught.value.reason


def test_it_keeps_the_tails_of_a_failing_program(tmp_path):
    # given
    script = write(
        tmp_path, "gen.py", "import sys; print('working...'); sys.stderr.write('x' * 10000 + 'boom'); sys.exit(3)"
    )

    # when
    with pytest.raises(GeneratorError) as caught:
        generator(tmp_path, script).generate([], 1, 10)

    # then
    assert "exited with status 3" in caught.value.reason
    assert caught.value.details["stdout_tail"] == "working...\n"
    assert caught.value.details["stderr_tail"].endswith("boom")
    assert len(caught.value.details["stderr_tail"]) == 4000


def test_it_limits_the_memory_of_the_program(tmp_path):
    # given a program that wants 1 GB under a 200 MB limit
    script = write(tmp_path, "gen.py", "blob = bytearray(1024 ** 3)")

    # when
    with pytest.raises(GeneratorError) as caught:
        generator(tmp_path, script, memory_mb=200).generate([], 1, 10)

    # then
    assert "MemoryError" in caught.value.details["stderr_tail"]


def test_it_refuses_a_container_image_without_a_runtime(tmp_path):
    # given
    script = write(tmp_path, "gen.py", GOOD)

    # when / then
    with pytest.raises(GeneratorError, match="no container runtime is configured"):
        generator(tmp_path, script, sandbox="registry.example/hpo:1").generate([], 1, 10)
    with pytest.raises(GeneratorError, match="'no-such-runtime', which is not installed"):
        generator(tmp_path, script, sandbox="registry.example/hpo:1", container_runtime="no-such-runtime").generate(
            [], 1, 10
        )


def test_it_needs_an_executable():
    # when / then
    with pytest.raises(ValueError, match="executable"):
        ProgramGenerator(parse_space(SPACE), options={})
