"""The active-learning view: loops, iterations with inputs, outputs, durations and the stop reason, the audit
of one iteration, the JSON twin, escaping, fixed query counts, and a loop run by a real worker."""

from __future__ import annotations

import pytest
from django.test import Client

from activelearning.models import Loop
from requests_app.models import Collection
from tests.activelearning.conftest import report, submit
from tests.conftest import wait_for

from .data import HOSTILE, al_iteration, al_loop


def test_loop_list_shows_each_loop_with_its_iteration_and_stop_reason(client: Client, user):
    # given
    done = al_loop(owner=user, iterations=3)
    running = al_loop(owner=user, iterations=2, finished=False, name="still going")

    # when
    data = client.get("/active-learning/", {"format": "json"}).json()

    # then
    rows = {row["request_id"]: row for row in data["loops"]}
    assert rows[done.pk]["loop_status"] == "Finished"
    assert rows[done.pk]["iteration"] == 3
    assert rows[done.pk]["stop_reason"].startswith("the decision returned {}")
    assert rows[running.pk]["loop_status"] == "Running"
    assert rows[running.pk]["last_decision"] == {"x": 2}
    assert data["live"] is True


def test_loop_page_has_iterations_inputs_outputs_durations_and_the_stop_reason(client: Client, user):
    # given
    request = al_loop(owner=user, iterations=3, batch=2)

    # when
    data = client.get(f"/active-learning/{request.pk}/", {"format": "json"}).json()

    # then
    assert data["loop"]["loop_status"] == "Finished"
    assert HOSTILE in data["loop"]["stop_reason"]
    assert data["live"] is False
    assert [row["iteration"] for row in data["iterations"]] == [1, 2, 3]
    first = data["iterations"][0]
    assert (first["parameter_sets"], first["reported"]) == (2, 2)
    assert [trial["parameters"]["x"] for trial in first["sample"]] == [0, 0.1]
    assert [trial["metrics"]["y"] for trial in first["sample"]] == [1.0, 2.0]
    assert 1.5 <= first["task_seconds"] < 60  # first set handed out -> last result in
    assert first["decision_seconds"] == 0.25
    assert [(s["status"], s["outcome"], s["output"]) for s in first["steps"]] == [("Done", "next", {"x": 1})]
    assert data["iterations"][-1]["steps"][0]["output"] == {}
    assert data["detail"] is None


def test_one_iteration_lists_every_parameter_set_and_the_decision_audit(client: Client, user):
    # given
    request = al_loop(owner=user, iterations=2, batch=7)

    # when
    data = client.get(f"/active-learning/{request.pk}/", {"format": "json", "iteration": "2"}).json()

    # then: the table samples 5 sets per iteration, the detail lists all 7
    assert len(data["iterations"][1]["sample"]) == 5
    detail = data["detail"]
    assert detail["iteration"] == 2
    assert len(detail["trials"]) == 7
    assert detail["trials"][0]["results"] == {"note": HOSTILE}
    step = detail["steps"][0]
    assert (step["input_sha256"], step["program_sha256"], step["returncode"]) == ("a" * 64, "b" * 64, 0)
    assert step["stderr_tail"] == f"warning {HOSTILE}"


def test_hostile_strings_are_text_on_the_al_pages(client: Client, user):
    request = al_loop(owner=user, iterations=2)
    for url in ("/active-learning/", f"/active-learning/{request.pk}/", f"/active-learning/{request.pk}/?iteration=1"):
        body = client.get(url).content.decode()
        assert "<script>" not in body, url
        assert "&lt;script&gt;" in body, url


def test_unknown_or_other_type_requests_are_404(client: Client, user):
    hpo_or_other = al_loop(owner=user)
    hpo_or_other.request_type = 2
    hpo_or_other.save(update_fields=["request_type"])
    assert client.get(f"/active-learning/{hpo_or_other.pk}/").status_code == 404
    assert client.get("/active-learning/99999999/", {"format": "json"}).status_code == 404
    # A bad iteration is ignored, not an error.
    assert client.get(f"/active-learning/{al_loop(owner=user).pk}/", {"iteration": "x1"}).status_code == 200


def test_query_counts_do_not_grow_with_loops_or_iterations(client: Client, user, django_assert_num_queries):
    small = al_loop(owner=user, iterations=1, batch=1)
    with django_assert_num_queries(2):
        client.get("/active-learning/", {"format": "json"})
    # request, loop, iteration aggregates, sample parameter sets, steps
    with django_assert_num_queries(5):
        client.get(f"/active-learning/{small.pk}/")
    big = al_loop(owner=user, iterations=12, batch=4)
    for number in range(5):
        al_loop(owner=user, iterations=2, name=f"more {number}")
    with django_assert_num_queries(2):
        client.get("/active-learning/", {"format": "json"})
    with django_assert_num_queries(5):
        client.get(f"/active-learning/{big.pk}/")
    # one iteration in full: its parameter sets, its steps
    with django_assert_num_queries(7):
        client.get(f"/active-learning/{big.pk}/", {"iteration": "4"})


def test_a_running_loop_page_refreshes_and_shows_new_iterations(client: Client, user):
    request = al_loop(owner=user, iterations=1, finished=False)
    page = client.get(f"/active-learning/{request.pk}/").content.decode()
    assert 'data-live="1"' in page
    loop = Loop.objects.get(request=request)
    al_iteration(loop, Collection.objects.get(request=request), 2)
    data = client.get(f"/active-learning/{request.pk}/", {"format": "json"}).json()
    assert [row["iteration"] for row in data["iterations"]] == [1, 2]


def stepper(document: dict) -> dict:
    """The operator's decision of the worker test: x + 1 until the reported y reaches 2."""
    last = document["results"][-1]
    return {} if last["metrics"]["y"] >= 2 else {"x": last["parameters"]["x"] + 1}


@pytest.mark.usefixtures("celery_worker")
def test_a_loop_run_by_a_real_worker_shows_its_iterations(api, settings):
    # given: a loop whose decisions run in the worker (an allow-listed callable)
    settings.IDDS_AL_CALLABLES = {"stepper": f"{__name__}.stepper"}
    request_id = submit(api, {"callable": "stepper", "initial_parameters": {"x": 0}})
    client = Client()

    # when: the workload reports y = x for each parameter set until the decision stops the loop
    reported: set[str] = set()

    def play() -> bool:
        data = client.get(f"/active-learning/{request_id}/", {"format": "json"}).json()
        for row in data["iterations"]:
            for trial in row["sample"]:
                if trial["name"] not in reported and not trial["reported"]:
                    x = trial["parameters"]["x"]
                    assert report(api, request_id, trial["name"], {"y": x}, {"y": x}).status_code == 200
                    reported.add(trial["name"])
        return data["loop"]["loop_status"] == "Finished" and data

    data = wait_for(play, timeout=90, interval=0.2, what=f"loop {request_id} to finish")

    # then
    assert [row["iteration"] for row in data["iterations"]] == [1, 2, 3]
    assert [row["sample"][0]["parameters"]["x"] for row in data["iterations"]] == [0, 1, 2]
    assert [row["steps"][-1]["output"] for row in data["iterations"]] == [{"x": 1}, {"x": 2}, {}]
    assert all(row["decision_seconds"] is not None for row in data["iterations"])
    assert data["loop"]["stop_reason"]
    assert data["live"] is False
    page = client.get(f"/active-learning/{request_id}/").content.decode()
    assert "Reported metrics per iteration" in page
    assert 'data-live="0"' in page
