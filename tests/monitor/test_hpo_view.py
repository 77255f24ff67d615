"""The HPO study view on a real study: points, best highlighted, loss and parameter plots."""

from __future__ import annotations

from django.test import Client

from requests_app.models import Request
from tests.conftest import wait_for
from tests.hpo.study_helpers import report, submit, wait_checkout

from .data import HOSTILE


def test_study_view_shows_points_best_and_plots(celery_worker, api):
    request_id = submit(api, max_points=6, num_points_per_generation=3)
    Request.objects.filter(pk=request_id).update(name=HOSTILE)
    losses = [0.5, 0.2, 0.9]
    for number, loss in enumerate(losses):
        point = wait_checkout(api, request_id, worker=f"w{number}")
        assert report(api, request_id, point["id"], loss, worker=f"w{number}").status_code == 200
    client = Client()
    data = wait_for(
        lambda: (body := client.get(f"/hpo/{request_id}/", {"format": "json"}).json())["best"] and body,
        what="a scored point",
    )
    assert data["best"]["loss"] == 0.2
    scored = [point["loss"] for point in data["points"] if point["loss"] is not None]
    assert sorted(scored) == sorted(losses)
    assert {"x", "n"} <= set(data["points"][0]["parameters"])
    page = client.get(f"/hpo/{request_id}/").content.decode()
    assert 'class="best"' in page
    assert "x vs loss" in page
    assert "Loss per evaluation" in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
    listing = client.get("/hpo/", {"format": "json"}).json()
    assert request_id in [row["request_id"] for row in listing["studies"]]
