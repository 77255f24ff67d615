"""The global parser guards HPO endpoints too: unsafe values in a report's metrics never reach the database."""

from __future__ import annotations

import pytest

from requests_app.models import Content
from requests_app.models.statuses import ContentStatus
from tests.hpo.study_helpers import stop_live_studies, submit, wait_checkout


@pytest.fixture(autouse=True)
def _stop_studies(celery_worker):
    yield
    stop_live_studies()


@pytest.mark.parametrize(
    ("metrics", "words"),
    [
        ('{"acc": NaN}', "finite number, got NaN"),
        ('{"acc": 1e999}', "finite number, got 1e999"),
        ('{"note": "a\\u0000b"}', "NUL character"),
        ('{"note": "\\udc00"}', "lone UTF-16 surrogate"),
    ],
)
def test_a_report_with_unsafe_metrics_is_a_400_and_the_point_stays_leased(api, metrics, words):
    # given a point checked out by a worker
    request_id = submit(api, max_points=2, num_points_per_generation=2)
    point = wait_checkout(api, request_id, worker="w1")

    # when it reports a loss with unsafe metrics
    body = '{"worker": "w1", "loss": 0.5, "metrics": ' + metrics + "}"
    response = api.generic(
        "POST", f"/api/v1/hpo/studies/{request_id}/points/{point['id']}/report/", body, content_type="application/json"
    )

    # then nothing is recorded
    assert response.status_code == 400, response.content
    assert words in response.json()["errors"][f"metrics.{'acc' if 'acc' in metrics else 'note'}"]
    row = Content.objects.get(collection__request_id=request_id, collection__relation_type=1, name=point["id"])
    assert row.status == ContentStatus.PROCESSING
    assert row.details.get("loss") is None
    assert "metrics" not in row.details
