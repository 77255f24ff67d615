"""The quality benchmark's own pieces (bench/hpo_quality.py): test functions, close pairs, resumable results."""

from __future__ import annotations

import json
import math

import pytest

from bench import hpo_quality
from hpo.space_forms import parse_space

#: Where each test function reaches its known minimum.
ARGMINS = {
    "branin": {"x1": math.pi, "x2": 2.275},
    "hartmann6": {f"x{i}": v for i, v in enumerate([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])},
    "mixed": {"lr": 1e-3, "layers": 3, "act": "b", "x": 0.3},
    "rosenbrock4": {f"x{i}": 1.0 for i in range(4)},
    "styblinski5": {f"x{i}": -2.903534 for i in range(5)},
    "levy5": {f"x{i}": 1.0 for i in range(5)},
    "camel6": {"x": 0.0898, "y": -0.7126},
}


@pytest.mark.parametrize("name", sorted(hpo_quality.PROBLEMS))
def test_every_function_reaches_its_stated_minimum_inside_its_space(name):
    # given
    problem = hpo_quality.PROBLEMS[name]
    point = ARGMINS[name]

    # when
    value = problem.func(parse_space(problem.space).validate_point(point))

    # then
    assert value == pytest.approx(problem.minimum, abs=1e-4)


def test_close_pairs_counts_points_closer_than_a_thousandth_of_every_range():
    # given x spans 10, y spans 1: 1e-3 of the ranges is 0.01 and 0.001
    space = parse_space({"x": [0.0, 10.0], "y": [0.0, 1.0]})
    points = [{"x": 5.0, "y": 0.5}, {"x": 5.009, "y": 0.5009}, {"x": 5.02, "y": 0.5}, {"x": 5.0, "y": 0.502}]

    # when / then only the first two are within 1e-3 of both ranges
    assert hpo_quality.close_pairs(space, points) == 1


def test_a_batch_study_of_the_bayesian_generator_has_no_close_pairs():
    # given
    problem = hpo_quality.PROBLEMS["branin"]

    # when: 25 evaluations in generations of 5, the losses told after each whole generation
    _, points = hpo_quality.run_ours("bayesian", problem, seed=0, evals=25, batch=5)

    # then
    assert len(points) == 25
    assert hpo_quality.close_pairs(parse_space(problem.space), points) == 0


def test_results_recorded_twice_count_once_and_a_torn_line_is_skipped(tmp_path):
    # given two result files with the same run and a file cut off mid-line
    row = {"generator": "random", "function": "branin", "batch": 5, "seed": 0, "evals": 50, "regret": 0.1}
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text(json.dumps(row) + "\n" + json.dumps({**row, "seed": 1}) + "\n")
    second.write_text(json.dumps({**row, "regret": 0.2}) + "\n" + '{"generator": "ran')

    # when
    rows = hpo_quality._load_results([str(first), str(second)])

    # then the later record of seed 0 wins
    assert sorted((r["seed"], r["regret"]) for r in rows) == [(0, 0.2), (1, 0.1)]
