"""Reads of active-learning state for the API and the admin (writes live in ``activelearning/services.py``)."""

from __future__ import annotations

from django.db.models import QuerySet

from activelearning.models import Loop, Step, Trial, Upload
from requests_app.errors import NotFoundError
from requests_app.models import Message, Request


def loop_for(*, user, request_id: int) -> Loop:
    """The loop of request ``request_id`` if ``user`` may see it; NotFoundError naming what is missing."""
    visible = Request.objects.visible_to(user)
    loop = Loop.objects.select_related("transform__request").filter(request__in=visible, request_id=request_id).first()
    if loop is None:
        if not visible.filter(pk=request_id).exists():
            raise NotFoundError(f"no request {request_id}")
        raise NotFoundError(f"request {request_id} has no active-learning loop (yet: try again shortly)")
    return loop


def loop_trials(*, loop: Loop, status: str | None = None, iteration: int | None = None) -> QuerySet[Trial]:
    """The loop's parameter sets, oldest first; ``status`` "new" = awaiting results, "reported" = with them."""
    trials = Trial.objects.filter(loop=loop).order_by("iteration", "content_id")
    if status == "new":
        trials = trials.filter(reported=False)
    elif status == "reported":
        trials = trials.filter(reported=True)
    if iteration is not None:
        trials = trials.filter(iteration=iteration)
    return trials


def loop_steps(*, loop: Loop) -> QuerySet[Step]:
    """The audit trail: every decision step, oldest first."""
    return Step.objects.filter(loop=loop).order_by("id")


def loop_messages(*, loop: Loop) -> QuerySet[Message]:
    """The loop's file_activelearning and collection_activelearning messages in outbox order."""
    return Message.objects.filter(request_id=loop.request_id).order_by("id")


def upload_list(*, user) -> QuerySet[Upload]:
    uploads = Upload.objects.order_by("-id")
    return uploads if user.is_staff else uploads.filter(owner=user)
