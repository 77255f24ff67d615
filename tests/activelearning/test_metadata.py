"""Bad active-learning metadata is a 400 naming the field; nothing is stored."""

from __future__ import annotations

import pytest

from requests_app.models import Request
from tests.activelearning.conftest import submit

pytestmark = pytest.mark.django_db

GOOD = {"executable": "python3 decide.py", "arguments": "%IN %OUT", "initial_parameters": {"x": 0}}


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"executable": None}, "request_metadata.executable", "is required"),
        ({"executable": 5}, "request_metadata.executable", "must be a string"),
        ({"arguments": "%OUT"}, "request_metadata.arguments", "%IN"),
        ({"arguments": "%IN"}, "request_metadata.arguments", "%OUT"),
        ({"output_json": "../../etc/passwd"}, "request_metadata.output_json", "inside the program's working"),
        ({"sandbox": "missing.tar.gz"}, "request_metadata.sandbox", "not an uploaded file"),
        ({"sandbox": "/etc/passwd.tar"}, "request_metadata.sandbox", "not an uploaded file"),
        ({"callable": "os.system"}, "request_metadata.callable", "give either callable or executable"),
        ({"initial_parameters": None}, "request_metadata.initial_parameters", "is required"),
        ({"initial_parameters": [1, 2]}, "request_metadata.initial_parameters", "non-empty object"),
        ({"initial_parameters": {}}, "request_metadata.initial_parameters", "non-empty object"),
        ({"max_iterations": 0}, "request_metadata.max_iterations", "between 1 and"),
        ({"timeout": "soon"}, "request_metadata.timeout", "number of seconds"),
        ({"memory_mb": 1}, "request_metadata.memory_mb", "between 16 and"),
        ({"deadline_seconds": -1}, "request_metadata.deadline_seconds", "positive"),
        ({"target": {"metric": "y", "mode": "up", "value": 1}}, "request_metadata.target.mode", "min"),
        ({"target": {"metric": "y"}}, "request_metadata.target.value", "number"),
        ({"plateau": {"metric": "y", "delta": -1, "patience": 2}}, "request_metadata.plateau.delta", ">= 0"),
        ({"quorum": {"fraction": 2}}, "request_metadata.quorum.fraction", "(0, 1]"),
        ({"memoise": "yes"}, "request_metadata.memoise", "true or false"),
        ({"merge": {"executable": "m"}}, "request_metadata.merge.arguments", "must contain %"),
        ({"fork": {"request_id": 999, "iteration": 1}}, "request_metadata.fork.request_id", "no active-learning loop"),
        ({"fork": {"request_id": "x", "iteration": 0}}, "request_metadata.fork.iteration", "positive integer"),
    ],
)
def test_bad_metadata_is_refused_naming_the_field(api, change, field, says):
    # given
    metadata = {k: v for k, v in {**GOOD, **change}.items() if v is not None}

    # when
    body = submit(api, metadata, expect=400)

    # then
    assert says in body["errors"][field], body
    assert not Request.objects.exists()


def test_a_callable_must_be_allow_listed_by_the_operator(api, settings):
    # given
    settings.IDDS_AL_CALLABLES = {"ok": "tests.activelearning.test_mode_b_and_audit.stop_at_three"}

    # when
    body = submit(api, {"callable": "activelearning.services.loop_end", "initial_parameters": {"x": 0}}, expect=400)

    # then
    assert "not a decision the operator allows" in body["errors"]["request_metadata.callable"]
    assert "['ok']" in body["errors"]["request_metadata.callable"]


def test_a_program_is_refused_where_no_sandbox_can_run_it(api, settings):
    # given
    settings.IDDS_SANDBOX_BINARY = "/nonexistent/bwrap"

    # when
    body = submit(api, GOOD, expect=400)

    # then
    assert "no sandbox can run user programs here" in body["errors"]["request_metadata.executable"]
