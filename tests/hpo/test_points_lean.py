"""The lean checkout and report (hpo/api/lean.py, hpo/report_sql.py) answer and write what the DRF views and the
ORM path answer and write; what they do not take goes to the DRF view unchanged (real worker, PostgreSQL)."""

from __future__ import annotations

import json

import orjson
import pytest
from django.db import IntegrityError
from django.test import RequestFactory
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from hpo import report_sql, services
from hpo.api import urls as hpo_urls
from hpo.api.lean import point_json
from hpo.api.serializers import PointSerializer
from hpo.models import PointLease
from requests_app.auth.principals import principal_of
from requests_app.auth.tokens import token_issue, token_revoke
from requests_app.models import ApiToken, Collection, Content, Message, Request, Transform
from requests_app.models.statuses import CollectionRelationType, ContentStatus
from tests.conftest import wait_for
from tests.hpo.study_helpers import checkout, report, stop_live_studies, submit, wait_checkout
from tests.hpo.test_points_ownership import worker_client


@pytest.fixture(autouse=True)
def _stop_studies(celery_worker):
    yield
    stop_live_studies()


def _points(request_id: int):
    return Content.objects.filter(
        collection__request_id=request_id, collection__relation_type=CollectionRelationType.OUTPUT
    ).select_related("hpo_lease")


def _rendered(data) -> object:
    return json.loads(JSONRenderer().render(data))


def test_point_json_is_the_serializer_shape_for_every_kind_of_point(api):
    # given a study with a leased point, a reported one with metrics, a failed-once one and a free one
    request_id = submit(api, max_points=4, num_points_per_generation=4)
    leased, reported, failed = (wait_checkout(api, request_id, worker=f"w{n}") for n in range(3))
    assert report(api, request_id, reported["id"], 0.5, worker="w1").status_code == 200
    failure = api.post(
        f"/api/v1/hpo/studies/{request_id}/points/{failed['id']}/fail/",
        {"worker": "w2", "message": "oom"},
        format="json",
    )
    assert failure.status_code == 200

    # when / then each point renders the same through both
    points = list(_points(request_id))
    assert len(points) == 4
    for point in points:
        assert orjson.loads(orjson.dumps(point_json(point))) == _rendered(PointSerializer(point).data), point.name
    assert {p.name for p in points if p.details.get("failures")} == {failed["id"]}
    assert leased["worker"] == "w0"


def test_a_lean_report_writes_what_the_orm_path_writes(api, user):
    # given two points leased to the same pilot
    request_id = submit(api, max_points=2, num_points_per_generation=2)
    pilot, token = worker_client(user, request_id)
    fast, slow = wait_checkout(pilot, request_id, worker="p"), wait_checkout(pilot, request_id, worker="p")
    transform = Transform.objects.select_related("request").get(request_id=request_id)
    collection = Collection.objects.get(transform=transform, relation_type=CollectionRelationType.OUTPUT)
    metrics = {"acc": 0.9, "note": "é"}

    # when one is reported over REST (one statement) and the other by the ORM path
    response = pilot.post(
        f"/api/v1/hpo/studies/{request_id}/points/{fast['id']}/report/",
        {"worker": "p", "loss": 0.25, "metrics": metrics},
        format="json",
    )
    services._point_report_locked(
        transform=transform,
        principal=principal_of(user, token),
        name=slow["id"],
        loss=0.25,
        worker="p",
        metrics=metrics,
    )

    # then both points, their messages and their leases are alike
    assert response.status_code == 200, response.content
    rows = {p.name: p for p in _points(request_id)}
    for name in (fast["id"], slow["id"]):
        row = rows[name]
        assert row.status == ContentStatus.AVAILABLE
        assert row.path == services.point_path(row.details["parameters"], 0.25)
        assert {k: v for k, v in row.details.items() if k not in ("parameters", "provenance", "reported_at")} == {
            "loss": 0.25,
            "metrics": metrics,
            "reported_by": "p",
            "late": False,
        }
    assert not PointLease.objects.filter(transform=transform).exists()
    messages = Message.objects.filter(transform=transform, msg_type="file_hyperparameteropt", num_contents=1)
    bodies = {m.body["files"][0]["name"]: m for m in messages if m.body["files"][0]["status"] == "Available"}
    assert set(bodies) == {fast["id"], slow["id"]}
    for name, message in bodies.items():
        assert (message.collection_id, message.request_id) == (collection.pk, request_id)
        [entry] = message.body["files"]
        assert entry == {
            "scope": collection.scope,
            "name": name,
            "path": rows[name].path,
            "status": "Available",
            "map_id": rows[name].pk,
            "content_id": rows[name].pk,
            "external_coll_id": None,
            "external_content_id": None,
        }
        assert {k: v for k, v in message.body.items() if k != "files"} == {
            "msg_type": "file_hyperparameteropt",
            "workload_id": transform.workload_id,
            "request_id": request_id,
            "transform_id": transform.pk,
            "relation_type": "output",
        }
    # and the counters, which the one statement leaves to the roll-up, are recounted by it
    wait_for(
        lambda: Collection.objects.filter(pk=collection.pk, processed_files=2, total_files=2).exists(),
        what="the roll-up's recount",
    )


def test_a_report_is_all_or_nothing(api, user, monkeypatch):
    # given a leased point, and a message id that is already taken (the outbox INSERT, last, will fail)
    request_id = submit(api, max_points=2, num_points_per_generation=2)
    point = wait_checkout(api, request_id, worker="w1")["id"]
    taken = Message.objects.filter(request_id=request_id).values_list("msg_id", flat=True).first()
    monkeypatch.setattr(report_sql, "new_msg_id", lambda: taken)
    transform = Transform.objects.select_related("request").get(request_id=request_id)
    before = _points(request_id).values("name", "status", "path", "details")

    # when the report fails in its last step
    with pytest.raises(IntegrityError):
        services.point_report(
            transform=transform, principal=principal_of(user, None), name=point, loss=1.0, worker="w1"
        )

    # then nothing of it happened: the point, its lease and the outbox are as they were
    assert list(_points(request_id).values("name", "status", "path", "details")) == list(before)
    assert PointLease.objects.filter(content__name=point, transform=transform).exists()
    assert Message.objects.filter(msg_id=taken).count() == 1


#: Metrics nested deeper than serializers.MAX_METRICS_DEPTH.
DEEP: dict = {}
for _ in range(12):
    DEEP = {"x": DEEP}


def _drf_answer(name: str, path: str, body: str, content_type: str, **headers: str):
    """What the DRF view behind the lean one answers (called directly, not through the URL)."""
    drf_view = next(p.callback for p in hpo_urls.router.urls if p.name == name)
    match = next(p for p in hpo_urls.router.urls if p.name == name).pattern.regex.search(path.removeprefix("/api/v1/"))
    request = RequestFactory().post(path, body, content_type=content_type, **headers)
    return drf_view(request, **match.groupdict())


@pytest.mark.parametrize(
    ("verb", "body", "content_type", "status"),
    [
        ("report", {"worker": "", "loss": 1}, "application/json", 400),  # a blank worker
        ("report", {"worker": "w1", "loss": True}, "application/json", 400),  # a boolean is not a loss
        ("report", {"worker": "w1"}, "application/json", 400),  # no loss
        ("report", {"worker": "w1", "loss": 1, "metrics": [1]}, "application/json", 400),
        ("report", {"worker": "w1", "loss": 1, "metrics": DEEP}, "application/json", 400),
        ("checkout", {"worker": "w1", "count": 0}, "application/json", 400),
        ("checkout", {"worker": "w1", "lease_seconds": None}, "application/json", 400),
        ("checkout", {"count": 1}, "application/json", 400),
        ("checkout", "worker=w1", "application/x-www-form-urlencoded", 415),
        ("checkout", '{"worker": "w1"', "application/json", 400),
    ],
)
def test_input_the_lean_views_do_not_take_gets_the_drf_answer(api, user, verb, body, content_type, status):
    # given a pilot of a study holding a point
    request_id = submit(api, max_points=2, num_points_per_generation=2)
    key = token_issue(user=user, study=Request.objects.get(pk=request_id)).key
    pilot = APIClient()
    pilot.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    point = wait_checkout(pilot, request_id, worker="w1")["id"]
    path = f"/api/v1/hpo/studies/{request_id}/" + ("checkout/" if verb == "checkout" else f"points/{point}/report/")
    raw = body if isinstance(body, str) else json.dumps(body)

    # when the call goes through the URL (the lean view first) and straight to the DRF view
    through_url = pilot.generic("POST", path, raw, content_type=content_type)
    drf = _drf_answer(f"hpo-study-{verb}", path, raw, content_type, HTTP_AUTHORIZATION=f"Token {key}")

    # then both answer the same refusal, and the point is still leased
    drf.render()
    assert (through_url.status_code, through_url.json()) == (drf.status_code, json.loads(drf.content))
    assert through_url.status_code == status
    assert _points(request_id).get(name=point).status == ContentStatus.PROCESSING


def test_callers_the_lean_views_do_not_take_get_the_drf_answers(api, user, other_api):
    # given a study with free points, and a revoked worker token of it
    request_id = submit(api, max_points=4, num_points_per_generation=4)
    wait_checkout(api, request_id, worker="w0")
    revoked, revoked_token = worker_client(user, request_id)
    token_revoke(token=revoked_token)
    session = APIClient()
    session.force_login(user)
    path = f"/api/v1/hpo/studies/{request_id}/checkout/"

    # when / then: no credentials 401, a revoked token 401, another user 403, a study that does not exist 404
    assert APIClient().post(path, {"worker": "w"}, format="json").status_code == 401
    assert revoked.post(path, {"worker": "w"}, format="json").json() == {
        "error": "this token was revoked; ask for a new one"
    }
    assert other_api.post(path, {"worker": "w"}, format="json").status_code == 403
    assert api.post("/api/v1/hpo/studies/999999/checkout/", {"worker": "w"}, format="json").status_code == 404
    # and a session login (no token) works its own study through the DRF view, with the same answer shape
    [point] = checkout(session, request_id, worker="browser")
    assert (point["worker"], point["status"]) == ("browser", "Processing")
    assert ApiToken.objects.filter(pk=revoked_token.pk, revoked_at__isnull=False).exists()
