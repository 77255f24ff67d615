"""Every agent task run twice (as a redelivered message would) leaves the same end state,
and a claim left by a dead worker is taken again once it expires."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from requests_app import tasks
from requests_app.handoffs import TaskName
from requests_app.models import Collection, Content, Event, Message, Processing, Request, Transform
from requests_app.models.statuses import ContentStatus, MessageStatus, ProcessingStatus, RequestStatus
from requests_app.services.claims import worker_name
from requests_app.services.requests import request_abort
from requests_app.services.watchdog import watchdog_sweep
from requests_app.worktypes.registry import get_work_type
from tests.broker import purge_queues, queued_tasks
from tests.factories import ProcessingFactory, RequestFactory

pytestmark = pytest.mark.django_db


def snapshot(request_id: int) -> dict:
    return {
        "request": Request.objects.get(pk=request_id).status,
        "transforms": list(Transform.objects.filter(request_id=request_id).values_list("status", flat=True)),
        "collections": list(Collection.objects.filter(request_id=request_id).values_list("status", "processed_files")),
        "contents": Content.objects.filter(collection__request_id=request_id).count(),
        "processings": list(Processing.objects.filter(request_id=request_id).values_list("status", flat=True)),
        "messages": Message.objects.filter(request_id=request_id).count(),
        "events": Event.objects.filter(request_id=request_id).count(),
    }


def run_twice(task, *args) -> tuple[object, object]:
    return task.run(*args), task.run(*args)


def test_each_agent_task_is_idempotent_along_the_whole_pipeline():
    # given
    request = RequestFactory(request_metadata={"files": 4, "files_per_poll": 10, "fail_files": []})

    # when / then: clerk
    first, second = run_twice(tasks.request_process, request.pk)
    assert len(first) == 1
    assert second == []
    transform_id = first[0]
    after_clerk = snapshot(request.pk)
    assert after_clerk["request"] == RequestStatus.TRANSFORMING

    # transformer
    first, second = run_twice(tasks.transform_plan, transform_id)
    assert len(first) == 1
    assert second == []
    processing_id = first[0]
    assert snapshot(request.pk)["contents"] == 4

    # carrier submit and poll
    assert run_twice(tasks.processing_submit, processing_id) == ("submitted", "not claimable")
    assert Processing.objects.get(pk=processing_id).status == ProcessingStatus.SUBMITTED
    assert run_twice(tasks.processing_poll, processing_id) == ("changed 4", "not claimable")
    after_poll = snapshot(request.pk)

    # roll-up
    first, second = run_twice(tasks.transform_rollup, transform_id)
    assert (first, second) == ("finished Finished", "nothing to do")
    after_rollup = snapshot(request.pk)
    assert after_rollup["request"] == RequestStatus.FINISHED
    assert after_rollup["messages"] == after_poll["messages"] + 1  # one collection message, not two

    # conductor
    first, second = run_twice(tasks.messages_deliver)
    assert first == after_rollup["messages"]
    assert second == 0
    assert not Message.objects.exclude(status=MessageStatus.DELIVERED).exists()
    assert snapshot(request.pk) == after_rollup


def test_control_task_twice_cancels_once():
    request = RequestFactory()
    tasks.request_process.run(request.pk)
    request_abort(request=request)

    assert run_twice(tasks.request_control, request.pk) == ("done", "nothing to do")
    assert Request.objects.get(pk=request.pk).status == RequestStatus.CANCELLED
    assert Event.objects.filter(entity="request", entity_id=request.pk, new_status=RequestStatus.CANCELLED).count() == 1


def test_a_claim_left_by_a_dead_worker_is_taken_again_after_it_expires():
    # given: a processing claimed by a worker that died a while ago, and one claimed just now
    request = RequestFactory(status=RequestStatus.TRANSFORMING, request_metadata={"files": 0, "files_per_poll": 1})
    expired = ProcessingFactory(
        request=request,
        transform__request=request,
        status=ProcessingStatus.SUBMITTED,
        claimed_by="dead-host:1",
        claimed_until=timezone.now() - timedelta(seconds=1),
    )
    held = ProcessingFactory(
        request=request,
        transform__request=request,
        status=ProcessingStatus.SUBMITTED,
        claimed_by="live-host:2",
        claimed_until=timezone.now() + timedelta(minutes=5),
    )

    # when
    taken = tasks.processing_poll.run(expired.pk)
    refused = tasks.processing_poll.run(held.pk)

    # then
    assert taken.startswith("changed")
    assert refused == "not claimable"
    expired.refresh_from_db()
    assert expired.claimed_by == ""
    assert expired.poll_count == 1
    assert Processing.objects.get(pk=held.pk).claimed_by == "live-host:2"


def test_a_task_retried_by_celery_in_the_same_worker_takes_up_its_own_claim_at_once():
    # given: this worker claimed the processing, then the commit failed (PostgreSQL restarted) and
    # Celery retries the task in the same process, long before the claim would expire
    request = RequestFactory(status=RequestStatus.TRANSFORMING)
    processing = ProcessingFactory(
        request=request,
        transform__request=request,
        status=ProcessingStatus.SUBMITTING,
        claimed_by=worker_name(),
        claimed_until=timezone.now() + timedelta(minutes=5),
    )

    # when
    outcome = tasks.processing_submit.run(processing.pk)

    # then
    assert outcome == "submitted"
    processing.refresh_from_db()
    assert processing.status == ProcessingStatus.SUBMITTED
    assert processing.claimed_by == ""


def test_a_submit_interrupted_after_the_outside_call_is_submitted_again_once_its_claim_expires():
    request = RequestFactory(status=RequestStatus.TRANSFORMING)
    processing = ProcessingFactory(
        request=request,
        transform__request=request,
        status=ProcessingStatus.SUBMITTING,
        claimed_by="dead-host:1",
        claimed_until=timezone.now() - timedelta(seconds=1),
    )

    assert tasks.processing_submit.run(processing.pk) == "submitted"
    processing.refresh_from_db()
    assert processing.status == ProcessingStatus.SUBMITTED
    assert processing.external_id == f"countdown-{processing.pk}"


def test_the_watchdog_finds_work_whose_hand_off_was_lost(django_capture_on_commit_callbacks):
    # given: a request left New and a processing left New, both for a while, and empty queues
    request = RequestFactory()
    processing = ProcessingFactory(request__status=RequestStatus.TRANSFORMING)
    old = timezone.now() - timedelta(minutes=5)
    Request.objects.filter(pk__in=[request.pk]).update(updated_at=old)
    Processing.objects.filter(pk=processing.pk).update(updated_at=old)
    purge_queues()

    # when (hand-offs leave once the sweep's stamps are committed)
    with django_capture_on_commit_callbacks(execute=True):
        counts = watchdog_sweep(stale_seconds=60)
        again = watchdog_sweep(stale_seconds=60)

    # then: each is on the broker once, in its agent's queue (the submit in its work type's queue);
    # the next sweep leaves them alone for another stale period (no flood)
    assert queued_tasks("clerk") == [(TaskName.REQUEST_PROCESS, (request.pk,))]
    assert queued_tasks(get_work_type(processing.transform.transform_type).queue) == [
        (TaskName.PROCESSING_SUBMIT, (processing.pk,))
    ]
    assert counts["requests"] == 1
    assert counts["submits"] == 1
    assert again["requests"] == 0
    assert again["submits"] == 0

    # when they are still stuck a stale period later, they are found again
    Request.objects.filter(pk=request.pk).update(updated_at=old)
    assert watchdog_sweep(stale_seconds=60)["requests"] == 1


def test_a_permanent_submit_refusal_fails_the_processing_and_the_request_with_the_reason():
    request = RequestFactory(request_metadata={"files": 2, "files_per_poll": 1, "permanent_submit": True})
    transform_id = tasks.request_process.run(request.pk)[0]
    processing_id = tasks.transform_plan.run(transform_id)[0]

    assert tasks.processing_submit.run(processing_id) == "failed"
    tasks.transform_rollup.run(transform_id)

    processing = Processing.objects.get(pk=processing_id)
    assert processing.status == ProcessingStatus.FAILED
    assert "refuse the submit" in processing.errors[-1]["error"]
    assert Request.objects.get(pk=request.pk).status == RequestStatus.FAILED


def test_a_transient_planning_failure_is_counted_on_the_transform_and_retried():
    from requests_app.errors import TransientError

    request = RequestFactory(request_metadata={"files": 2, "files_per_poll": 2, "transient_plans": 1})
    transform_id = tasks.request_process.run(request.pk)[0]

    with pytest.raises(TransientError):
        tasks.transform_plan.run(transform_id)
    transform = Transform.objects.get(pk=transform_id)
    assert transform.retries == 1
    assert "listing outage 1" in transform.errors[-1]["error"]

    assert len(tasks.transform_plan.run(transform_id)) == 1
    assert Transform.objects.get(pk=transform_id).status == RequestStatus.TRANSFORMING


def test_a_refused_plan_fails_the_request_and_says_why_on_the_request():
    request = RequestFactory(request_metadata={"files": 2, "files_per_poll": 2, "refuse_plan": True})
    transform_id = tasks.request_process.run(request.pk)[0]

    assert tasks.transform_plan.run(transform_id) == []

    request.refresh_from_db()
    assert request.status == RequestStatus.FAILED
    assert "refuse the plan" in request.errors["transforms"][str(transform_id)]


def test_a_polls_after_commit_hand_offs_run_once_its_changes_are_committed(
    monkeypatch, django_capture_on_commit_callbacks
):
    from tests.worktypes import CountdownWorkType

    # given: a work type whose poll asks for a hand-off, and a submitted processing
    calls: list[int] = []
    original_poll = CountdownWorkType.poll

    def poll_with_hand_off(self, processing):
        result = original_poll(self, processing)
        result.after_commit.append(lambda: calls.append(Content.objects.filter(status=ContentStatus.AVAILABLE).count()))
        return result

    monkeypatch.setattr(CountdownWorkType, "poll", poll_with_hand_off)
    request = RequestFactory(request_metadata={"files": 3, "files_per_poll": 10, "fail_files": []})
    (transform_id,) = tasks.request_process.run(request.pk)
    (processing_id,) = tasks.transform_plan.run(transform_id)
    tasks.processing_submit.run(processing_id)

    # when the poll runs / then the hand-off waits for the commit, and sees the landed files
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.processing_poll.run(processing_id) == "changed 3"
        assert calls == []
    assert calls == [3]
