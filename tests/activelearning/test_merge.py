"""The optional merge step runs before the decision, in the sandbox, and computes what the decision reads."""

from __future__ import annotations

import pytest

from activelearning.models import Loop, Step
from tests.activelearning.conftest import finished, run_workload, submit
from tests.conftest import wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")

MERGE = """
import json, sys
doc = json.load(open(sys.argv[1]))
json.dump({"metrics": {"total": sum(r["results"]["n"] for r in doc["results"])}}, open(sys.argv[2], "w"))
"""
# Proposes a batch of two with x + 1 until the merged total reaches its target (the service stops it).
DECIDE = """
import json, sys
doc = json.load(open(sys.argv[1]))
x = doc["merged"]["metrics"]["total"]
json.dump([{"x": x}, {"x": x + 1}], open(sys.argv[2], "w"))
"""


def test_the_merge_output_reaches_the_decision_and_the_stop_rules(api, program):
    # given
    metadata = {
        **program(DECIDE, files={"merge.py": MERGE}),
        "merge": {"executable": "python3 merge.py", "arguments": "%IN %OUT"},
        "initial_parameters": [{"x": 1}, {"x": 2}],
        "target": {"metric": "total", "value": 20, "mode": "max"},
    }
    request_id = submit(api, metadata)

    # when
    run_workload(api, request_id, lambda p: {"n": p["x"]})

    # then: totals 3 -> batch (3, 4) -> total 7 -> (7, 8) -> 15 -> (15, 16) -> 31 >= 20
    wait_for(lambda: finished(request_id))
    steps = list(Step.objects.filter(loop__request_id=request_id).order_by("id"))
    assert [s.merge["output"]["metrics"]["total"] for s in steps] == [3, 7, 15, 31]
    assert all(s.merge["program_sha256"] == s.program_sha256 for s in steps)
    assert Loop.objects.get(request_id=request_id).stop_reason == "target met: total=31 (target max 20)"
