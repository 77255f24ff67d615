"""Operations whose fuzz test is known to fail for a reason another branch fixes: strict expected failures.

Strict, so the test turns red as soon as the fix is merged: then delete the entry. Nothing is skipped.
"""

from __future__ import annotations

import pytest

LIVE_STUDY_TEST = "test_hpo_operations_on_a_live_study_answer_as_documented"

# "METHOD /path" -> why it fails and where it is fixed.
KNOWN_ELSEWHERE: dict[str, str] = {
    "GET /api/v1/hpo/studies/{request_id}/points/": (
        "hpo/api (auth branch): answers a bare list where the schema says a paginated object, and a "
        "`status` outside the documented names is a 400 where the schema says any string"
    ),
    "POST /api/v1/hpo/studies/{request_id}/checkout/": (
        "hpo/api (auth branch): answers a bare list where the schema says a paginated object"
    ),
}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if getattr(item, "originalname", "") != LIVE_STUDY_TEST:
            continue
        for label, reason in KNOWN_ELSEWHERE.items():
            if f"[{label}]" in item.name:
                item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
