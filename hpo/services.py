"""The life of HPO points: checkout under a lease, heartbeat, report, failure, invalidation, expiry.

A point is a ``Content`` of the study's output collection; its statuses mean:

    New         free, awaiting a worker        Processing   leased to a worker
    Available   loss reported                  FinalFailed  failed more than ``point_retries`` times
    Deleted     invalidated (kept for audit, hidden from generators)

Status moves go through ``contents_apply_updates`` so collection counters and the ``file_hyperparameteropt``
messages change in the same transaction. Every change that can start a new generation or end the study
enqueues the roll-up after commit; reports, the hot path, share one roll-up per short window
(``hpo.handoffs.study_changed``).

Workers may report intermediate values while they evaluate a point (``point_intermediate``); a study with
``early_stopping`` answers each with continue or stop, and a stopped point ends as Available with
``pruned: true`` and its last value as the loss, so iDDS consumers (which know only Available and a loss)
and the generators (which see every Available point's loss) treat it as an evaluation that went badly.

Hot-path cost, pinned by tests/hpo/test_points_cost.py (auth and the study lookup included, in one query by
``hpo.callers``): a checkout is 2 queries (one statement on PostgreSQL, ``hpo.checkout_sql``), a report 3 (one
statement, ``hpo.report_sql``, then the conductor check). The one-statement report leaves the collection
counters to the study's roll-up (``WorkType.recounts_outputs``); the locked ORM path below (every other case,
and other databases) still moves them, and its counter row is written last so its lock is held only until the
commit.

Every verb acts for a ``Principal`` (a user, and the worker token used if any): a lease records the principal
that took it, and heartbeat, fail and release act only on the caller's own lease. The API checks that the
caller may work the study at all (owner, staff or a worker token of the study) before calling these.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Subquery
from django.utils import timezone

from hpo import checkout_sql, early_stopping, report_sql
from hpo.handoffs import study_changed
from hpo.models import IntermediateValue, PointLease
from hpo.study import StudyConfig
from requests_app import handoffs
from requests_app.auth.principals import Principal
from requests_app.errors import ApplicationError, ConflictError, NotFoundError
from requests_app.models import Collection, Content, Transform
from requests_app.models.errorlog import errors_appended
from requests_app.models.statuses import (
    REQUEST_TERMINAL,
    CollectionRelationType,
    ContentStatus,
    RequestType,
)
from requests_app.services.contents import contents_apply_updates
from requests_app.services.transitions import bulk_transition
from requests_app.worktypes.base import ContentUpdate
from requests_app.worktypes.registry import get_work_type

#: The HPO work type's ``request_type``.
HPO_REQUEST_TYPE = RequestType.HYPER_PARAMETER_OPT
#: Points a worker may take in one checkout.
MAX_CHECKOUT = 100
#: A worker id is echoed in leases and audit entries.
MAX_WORKER_LENGTH = 255
#: Largest step of an intermediate value (a bigint column).
MAX_STEP = 2**62


def point_path(parameters: dict[str, Any], loss: float | None) -> str:
    """The ``path`` of a point's file message: ``[{params}, loss]`` as JSON (docs/idds-reference.md §2)."""
    return json.dumps([parameters, loss])


def output_collection(transform: Transform) -> Collection:
    """The collection whose contents are the study's points."""
    collection = Collection.objects.filter(transform=transform, relation_type=CollectionRelationType.OUTPUT).first()
    if collection is None:
        raise NotFoundError(f"the study of request {transform.request_id} is not planned yet; try again shortly")
    return collection


def study_config(transform: Transform) -> StudyConfig:
    return StudyConfig.from_metadata(transform.request.request_metadata)


def points_apply_updates(transform: Transform, collection: Collection, updates: list[ContentUpdate]) -> int:
    return contents_apply_updates(
        transform=transform,
        collections={CollectionRelationType.OUTPUT: collection},
        updates=updates,
        work_type=get_work_type(HPO_REQUEST_TYPE),
    )


def _check_worker(worker: Any) -> str:
    if not isinstance(worker, str) or not worker.strip() or len(worker) > MAX_WORKER_LENGTH:
        raise ApplicationError(f"worker must be a non-empty name of at most {MAX_WORKER_LENGTH} characters")
    return worker.strip()


def _locked_point(transform: Transform, name: str) -> Content:
    """The point, locked, with its collection and its lease (if any) in the same query."""
    point = (
        Content.objects.select_for_update(of=("self",))
        .select_related("collection", "hpo_lease")
        .filter(
            collection__transform=transform, collection__relation_type=CollectionRelationType.OUTPUT, name=str(name)
        )
        .first()
    )
    if point is None:
        raise NotFoundError(f"study {transform.request_id} has no point {name!r}")
    return point


def _lease_of(point: Content) -> PointLease | None:
    """The lease read with the point (``_locked_point``), or None."""
    try:
        return point.hpo_lease
    except Content.hpo_lease.RelatedObjectDoesNotExist:
        return None


def _drop_lease(point: Content) -> None:
    """Delete the point's lease and forget it on the instance, so the caller's answer shows no holder."""
    PointLease.objects.filter(content=point).delete()
    point.hpo_lease = None


def _held_by(lease: PointLease | None, principal: Principal) -> bool:
    """Whether ``principal`` took this lease: the same user, through the same worker token (or none)."""
    return (
        lease is not None and lease.user_id == principal.user_id and lease.worker_token_id == principal.worker_token_id
    )


def _is_own_lease(lease: PointLease | None, principal: Principal, worker: str) -> bool:
    """The caller's own lease: its principal and the worker name it gave at checkout."""
    return _held_by(lease, principal) and lease.worker == worker


def study_has_ended(transform: Transform) -> bool:
    """The request or its transform reached a final status (an aborted request ends before its transform)."""
    return transform.status in REQUEST_TERMINAL or transform.request.status in REQUEST_TERMINAL


def _refuse_if_ended(transform: Transform, doing: str) -> None:
    if study_has_ended(transform):
        raise ConflictError(
            f"the study has ended ({transform.request.get_status_display()}); {doing} is refused and nothing changed"
        )


# --- checkout and heartbeat ------------------------------------------------------------------------------


def points_checkout(
    *, transform: Transform, principal: Principal, worker: str, count: int = 1, lease_seconds: int | None = None
) -> list[Content]:
    """Lease up to ``count`` free points to ``worker`` of ``principal`` (oldest first); ``[]`` when none is free.

    Never waits: concurrent workers take different points (SKIP LOCKED), a checkout with nothing free answers
    ``[]`` at once, and the roll-up refills stock ahead (``min_unevaluated_points``). An unplanned study simply
    has no free point. On PostgreSQL one statement does it all (``hpo.checkout_sql``).
    """
    worker = _check_worker(worker)
    if not 1 <= int(count) <= MAX_CHECKOUT:
        raise ApplicationError(f"count must be between 1 and {MAX_CHECKOUT}")
    if study_has_ended(transform):
        return []
    now = timezone.now()
    expires_at = now + timedelta(seconds=lease_seconds or study_config(transform).lease_seconds)
    lease = {"principal": principal, "worker": worker, "count": int(count), "now": now, "expires_at": expires_at}
    if checkout_sql.is_supported():
        return checkout_sql.lease_free_points(transform_id=transform.pk, **lease)
    with transaction.atomic():
        return _lease_free_points_orm(transform, **lease)


def _lease_free_points_orm(
    transform: Transform, *, principal: Principal, worker: str, count: int, now, expires_at
) -> list[Content]:
    """``checkout_sql.lease_free_points`` with the ORM (SQLite): lock, move, lease."""
    output = Collection.objects.filter(transform=transform, relation_type=CollectionRelationType.OUTPUT)
    free = list(
        Content.objects.filter(collection_id=Subquery(output.values("id")[:1]), status=ContentStatus.NEW)
        .order_by("id")
        .select_for_update(skip_locked=True, of=("self",))[:count]
    )
    if not free:
        return []
    # New -> Processing moves no counter and announces nothing, so it skips contents_apply_updates: that would
    # UPDATE the collection row (zero deltas) and serialise every concurrent checkout on its lock.
    bulk_transition(
        Content.objects.filter(pk__in=[p.pk for p in free]), ContentStatus.PROCESSING, status_changed_at=now
    )
    leases = [
        PointLease.granted(
            p, transform_id=transform.pk, worker=worker, principal=principal, leased_at=now, expires_at=expires_at
        )
        for p in free
    ]
    PointLease.objects.bulk_create(
        leases,
        update_conflicts=True,
        unique_fields=["content"],
        update_fields=["transform", "worker", "user", "worker_token", "leased_at", "expires_at", "heartbeats"],
    )
    for point, lease in zip(free, leases, strict=True):
        point.status = ContentStatus.PROCESSING
        point.status_changed_at = point.updated_at = now
        point.hpo_lease = lease
    return free


@transaction.atomic
def point_heartbeat(
    *, transform: Transform, principal: Principal, name: str, worker: str, lease_seconds: int | None = None
) -> PointLease:
    """Extend the caller's lease on a point; ConflictError if the lease is gone or someone else's."""
    worker = _check_worker(worker)
    _refuse_if_ended(transform, f"a heartbeat for point {name}")
    point = _locked_point(transform, name)
    lease = _lease_of(point)
    if not _is_own_lease(lease, principal, worker) or point.status != ContentStatus.PROCESSING:
        holder = "it is leased to another worker" if lease else f"it is {ContentStatus(point.status).label}"
        raise ConflictError(f"point {name} is no longer leased to {worker}: {holder}; a late report is still recorded")
    seconds = lease_seconds or study_config(transform).lease_seconds
    lease.expires_at = timezone.now() + timedelta(seconds=seconds)
    lease.heartbeats = F("heartbeats") + 1
    lease.save(update_fields=["expires_at", "heartbeats"])
    lease.refresh_from_db()
    return lease


def _extend_lease(lease: PointLease, transform: Transform) -> None:
    """An intermediate report is also a sign of life: push the lease as a heartbeat would."""
    lease.expires_at = timezone.now() + timedelta(seconds=study_config(transform).lease_seconds)
    lease.heartbeats = F("heartbeats") + 1
    lease.save(update_fields=["expires_at", "heartbeats"])


# --- reports ---------------------------------------------------------------------------------------------


def _check_loss(loss: Any) -> float:
    if isinstance(loss, bool) or not isinstance(loss, (int, float)) or not math.isfinite(loss):
        raise ApplicationError(
            f"loss must be a finite number, got {loss!r}", extra={"errors": {"loss": "not a finite number"}}
        )
    return float(loss)


def point_report(
    *,
    transform: Transform,
    principal: Principal,
    name: str,
    loss: Any,
    worker: str = "",
    metrics: dict[str, Any] | None = None,
) -> tuple[Content, bool]:
    """Record a point's loss; returns (point, changed).

    Idempotent: the same loss again changes nothing; a different loss for an evaluated point is a
    ConflictError. A late report (the lease expired and the point went back to the pool, or failed for good)
    is recorded all the same: the evaluation happened and is worth keeping. A point leased to another
    principal is theirs to report (ConflictError), and so is nothing of an ended study.

    On PostgreSQL the common case (a New or Processing point of the caller or of nobody) and the same loss
    again take one statement (``hpo.report_sql``); every other case, and other databases, the locked ORM path.
    """
    loss = _check_loss(loss)
    _refuse_if_ended(transform, f"a report for point {name}")
    if report_sql.is_supported():
        outcome = report_sql.record_loss(
            transform_id=transform.pk,
            request_id=transform.request_id,
            workload_id=transform.workload_id,
            msg_type=f"file_{get_work_type(HPO_REQUEST_TYPE).name}",
            name=name,
            principal=principal,
            worker=worker,
            loss=loss,
            metrics=metrics or {},
            now=timezone.now(),
        )
        point = outcome.point
        if outcome.moved:
            # What messages_write and _record_loss do after the ORM path, once this statement has committed.
            handoffs.messages_written()
            study_changed(transform.pk)
            return point, True
        if (
            point is not None
            and point.status == ContentStatus.AVAILABLE
            and not outcome.leased
            and point.details.get("loss") == loss
        ):
            return point, False
    return _point_report_locked(
        transform=transform, principal=principal, name=name, loss=loss, worker=worker, metrics=metrics
    )


@transaction.atomic
def _point_report_locked(
    *, transform: Transform, principal: Principal, name: str, loss: float, worker: str, metrics: dict[str, Any] | None
) -> tuple[Content, bool]:
    """``point_report`` with the point locked by the ORM: every case, with its answer or error."""
    point = _locked_point(transform, name)
    details = dict(point.details or {})
    if point.status == ContentStatus.AVAILABLE:
        if details.get("loss") == loss:
            return point, False
        raise ConflictError(
            f"point {name} already has loss {details.get('loss')}; a different loss ({loss}) is refused",
            extra={"loss": details.get("loss")},
        )
    if point.status == ContentStatus.DELETED:
        raise ConflictError(f"point {name} was invalidated; its loss is no longer accepted")
    lease = _lease_of(point)
    if lease is not None and not _held_by(lease, principal):
        raise ConflictError(f"point {name} is leased to another worker; only its holder may report it")
    now = timezone.now()
    late = lease is None or (worker and lease.worker != worker)
    details.update(
        loss=loss,
        metrics=metrics or {},
        reported_by=worker or None,
        reported_at=now.isoformat(),
        late=bool(late and point.status != ContentStatus.NEW),
    )
    _record_loss(transform, point, details)
    return point, True


def _record_loss(transform: Transform, point: Content, details: dict[str, Any]) -> None:
    """Make the (locked) point Available with ``details`` (its loss), drop its lease, schedule the roll-up."""
    if _lease_of(point) is not None:
        _drop_lease(point)
    if point.status == ContentStatus.FINAL_FAILED:
        # The table only lets a final failure restart; step through New so counters stay right.
        points_apply_updates(transform, point.collection, [ContentUpdate(name=point.name, status=ContentStatus.NEW)])
    # The loss and its path first, in one UPDATE by id: the status move after it then carries neither and takes
    # the core's one-statement path (the select + load + bulk update of a move with details cost two more).
    Content.objects.filter(pk=point.pk).update(path=point_path(details["parameters"], details["loss"]), details=details)
    # Last in the transaction: this UPDATEs the collection-counter row that every report of the study updates,
    # so its lock is held only from here to the commit. The file message takes the path stored just above.
    moved = points_apply_updates(
        transform, point.collection, [ContentUpdate(name=point.name, status=ContentStatus.AVAILABLE)]
    )
    if moved != 1:
        # The status table refused the move: undo the loss written above (the transaction rolls back).
        raise ConflictError(f"point {point.name} is {ContentStatus(point.status).label}; its loss cannot be recorded")
    study_changed(transform.pk)
    point.refresh_from_db(fields=["status", "path", "details", "status_changed_at", "updated_at"])


# --- intermediate values and early stopping --------------------------------------------------------------


def _check_step(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        raise ApplicationError(
            f"step must be an integer between 0 and {MAX_STEP}, got {step!r}",
            extra={"errors": {"step": f"an integer between 0 and {MAX_STEP}"}},
        )
    return step


def _check_value(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ApplicationError(
            f"value must be a finite number, got {value!r}", extra={"errors": {"value": "not a finite number"}}
        )
    return float(value)


def _verdict(transform: Transform, point: Content, step: int, value: float) -> early_stopping.Verdict:
    """The study's rule applied to the values recorded so far (this report's included)."""
    option = study_config(transform).early_stopping
    if not option:
        return early_stopping.CONTINUE_NO_RULE
    at_step = IntermediateValue.objects.filter(transform=transform, step=step)
    if option["rule"] == early_stopping.MEDIAN:
        own = list(IntermediateValue.objects.filter(content=point, step__lte=step).values_list("value", flat=True))
        others = list(at_step.exclude(content=point).values_list("value", flat=True))
        return early_stopping.median_verdict(step=step, own_values=own, others_at_step=others, option=option)
    if early_stopping.rung_of(step, option) is None:
        return early_stopping.Verdict(False, f"step {step} is not a rung step")
    values = list(at_step.values_list("value", flat=True))
    return early_stopping.halving_verdict(step=step, value=value, values_at_step=values, option=option)


@transaction.atomic
def point_intermediate(
    *, transform: Transform, principal: Principal, name: str, worker: str, step: Any, value: Any
) -> tuple[Content, early_stopping.Verdict]:
    """Record an intermediate value of the caller's leased point and answer continue or stop.

    The report also extends the lease. On stop the point is recorded as pruned: Available, ``pruned: true``,
    its loss the value just reported. The same (step, value) again gives the same answer; another value for
    a recorded step is a ConflictError; a point no longer leased to the caller is a ConflictError.
    """
    worker = _check_worker(worker)
    step, value = _check_step(step), _check_value(value)
    _refuse_if_ended(transform, f"an intermediate report for point {name}")
    point = _locked_point(transform, name)
    lease = _lease_of(point)
    if not _is_own_lease(lease, principal, worker) or point.status != ContentStatus.PROCESSING:
        holder = "it is leased to another worker" if lease else f"it is {ContentStatus(point.status).label}"
        raise ConflictError(f"point {name} is not leased to {worker} of this caller: {holder}; stop evaluating it")
    recorded, created = IntermediateValue.objects.get_or_create(
        content=point, step=step, defaults={"transform": transform, "value": value}
    )
    if not created and recorded.value != value:
        raise ConflictError(
            f"point {name} already has value {recorded.value} at step {step}; a different value ({value}) is refused",
            extra={"errors": {"value": f"step {step} already has {recorded.value}"}},
        )
    verdict = _verdict(transform, point, step, value)
    if not verdict.stop:
        _extend_lease(lease, transform)
        return point, verdict
    details = dict(point.details or {})
    details.update(
        loss=value,
        pruned=True,
        pruned_at_step=step,
        pruned_reason=verdict.reason,
        metrics={"step": step},
        reported_by=worker,
        reported_at=timezone.now().isoformat(),
        late=False,
    )
    _record_loss(transform, point, details)
    return point, verdict


@transaction.atomic
def point_fail(*, transform: Transform, principal: Principal, name: str, worker: str, message: str = "") -> Content:
    """The caller could not evaluate its leased point: reissue it, or fail it for good after ``point_retries``."""
    worker = _check_worker(worker)
    _refuse_if_ended(transform, f"a failure report for point {name}")
    point = _locked_point(transform, name)
    if point.status in (ContentStatus.AVAILABLE, ContentStatus.DELETED, ContentStatus.FINAL_FAILED):
        raise ConflictError(f"point {name} is {ContentStatus(point.status).label}; a failure report does not apply")
    if not _is_own_lease(_lease_of(point), principal, worker):
        raise ConflictError(f"point {name} is not leased to {worker} of this caller; only the holder may fail it")
    point.hpo_lease = None
    points_return(transform, [point], reason=f"failed on {worker}: {message}"[:2000])
    handoffs.transform_changed(transform.pk)
    point.refresh_from_db()
    return point


@transaction.atomic
def point_release(*, transform: Transform, principal: Principal, name: str, worker: str) -> Content:
    """The caller gives its leased point back unevaluated (it is shutting down): New again, no retry spent."""
    worker = _check_worker(worker)
    _refuse_if_ended(transform, f"releasing point {name}")
    point = _locked_point(transform, name)
    lease = _lease_of(point)
    if not _is_own_lease(lease, principal, worker):
        raise ConflictError(f"point {name} is not leased to {worker} of this caller; only the holder may release it")
    _drop_lease(point)
    points_apply_updates(transform, point.collection, [ContentUpdate(name=point.name, status=ContentStatus.NEW)])
    point.refresh_from_db()
    return point


@transaction.atomic
def point_invalidate(*, transform: Transform, name: str, reason: str = "") -> Content:
    """Hide a point from the generators (and the budget) while keeping it for audit; idempotent."""
    point = _locked_point(transform, name)
    if point.status == ContentStatus.DELETED:
        return point
    details = {**(point.details or {}), "invalidated": {"reason": reason[:2000], "at": timezone.now().isoformat()}}
    _drop_lease(point)
    points_apply_updates(
        transform, point.collection, [ContentUpdate(name=point.name, status=ContentStatus.DELETED, details=details)]
    )
    handoffs.transform_changed(transform.pk)
    point.refresh_from_db()
    return point


def points_return(transform: Transform, points: list[Content], *, reason: str) -> None:
    """Give points back to the pool, or fail those out of retries (inside the caller's transaction)."""
    budget = study_config(transform).point_retries
    collection = output_collection(transform)
    updates = []
    for point in points:
        attempts = point.retries + 1
        failures = errors_appended((point.details or {}).get("failures"), reason, key="reason")
        status = ContentStatus.NEW if attempts <= budget else ContentStatus.FINAL_FAILED
        updates.append(ContentUpdate(name=point.name, status=status, details={"failures": failures}))
    Content.objects.filter(pk__in=[p.pk for p in points]).update(retries=F("retries") + 1)
    points_apply_updates(transform, collection, updates)
    PointLease.objects.filter(content__in=points).delete()
