"""The /idds/ endpoints of the core (HPO's are in ``hpo/wire.py``): decode, call a service or selector, encode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest

from requests_app import selectors
from requests_app.auth.principals import may_change_request
from requests_app.errors import ApplicationError
from requests_app.models import Collection, Request
from requests_app.models.statuses import CollectionRelationType, ContentStatus, RequestStatus
from requests_app.services import requests as request_services

from . import rows
from .auth import Caller
from .encoding import enum_value, read_body, segment, segment_bool, segment_int
from .endpoint import wire_view
from .errors import bad_request, no_object, not_allowed
from .forms import request_create_arguments

Action = Callable[..., Request]

#: What a requested status means (``update_request`` and the ``update_request`` message command).
STATUS_ACTIONS: dict[int, Action] = {
    RequestStatus.TO_CANCEL: request_services.request_abort,
    RequestStatus.CANCELLED: request_services.request_abort,
    RequestStatus.TO_SUSPEND: request_services.request_suspend,
    RequestStatus.SUSPENDED: request_services.request_suspend,
    RequestStatus.TO_RESUME: request_services.request_resume,
    RequestStatus.TO_FINISH: request_services.request_finish,
    RequestStatus.TO_CLOSE: request_services.request_finish,
    RequestStatus.TO_FORCE_FINISH: request_services.request_finish,
}
UPDATED = {"status": 0, "message": "update successfully"}
REGISTERED = {"status": 0, "message": "Command registered successfully"}
NO_MATCH = [[-1, {"status": -1, "message": "No match requests"}]]


# --- ping ---------------------------------------------------------------------------------------------


def _ping(request: HttpRequest, caller: Caller) -> dict:
    return {"Status": "OK"}


ping = wire_view({"GET": _ping})


# --- requests -----------------------------------------------------------------------------------------


def _add_request(request: HttpRequest, caller: Caller) -> dict:
    arguments = request_create_arguments(read_body(request))
    created = request_services.request_create(owner=caller.user, **arguments)
    return {"request_id": created.pk}


def _matching(caller: Caller, request_id: int | None, workload_id: int | None) -> QuerySet[Request]:
    queryset = selectors.request_list(user=caller.user).order_by("id")
    if request_id is not None:
        queryset = queryset.filter(pk=request_id)
    if workload_id is not None:
        queryset = queryset.filter(workload_id=workload_id)
    return queryset


def _changeable(caller: Caller, request_id: int | None, workload_id: int | None) -> list[Request]:
    """The matching requests the caller may change; 403 when some match but none is the caller's."""
    if request_id is None and workload_id is None:
        raise bad_request("give a request_id or a workload_id")
    found = list(_matching(caller, request_id, workload_id))
    mine = [r for r in found if may_change_request(caller.user, caller.token, r)]
    if found and not mine:
        raise not_allowed("only the owner of a request or a staff user may change it")
    return mine


def _update_request(request: HttpRequest, caller: Caller, request_id: str) -> dict:
    parameters = read_body(request)
    if not isinstance(parameters, dict) or "status" not in parameters:
        raise bad_request('parameters must be a JSON object with "status" (ToCancel, ToSuspend, ToResume, ToFinish)')
    unknown = sorted(set(parameters) - {"status"})
    if unknown:
        raise bad_request(f"cannot update {', '.join(unknown)}: only status can be changed here")
    targets = _changeable(caller, segment_int(request_id, "request_id"), None)
    if not targets:
        raise no_object(f"no request {request_id}")
    _apply_status(caller, targets[0], parameters["status"])
    return UPDATED


def _apply_status(caller: Caller, target: Request, raw_status: Any) -> Request:
    status = enum_value(raw_status, RequestStatus, "status")
    action = STATUS_ACTIONS.get(status)
    if action is None:
        names = ", ".join(sorted({RequestStatus(s).label for s in STATUS_ACTIONS}))
        raise bad_request(f"status {RequestStatus(status).label} cannot be requested; use one of {names}")
    return action(request=target, actor=caller.user.get_username())


def _get_requests(
    request: HttpRequest,
    caller: Caller,
    request_id: str | None = None,
    workload_id: str | None = None,
    with_detail: str | None = None,
    with_metadata: str | None = None,
    with_transform: str | None = None,
    with_processing: str | None = None,
) -> list[dict]:
    queryset = _matching(caller, segment_int(request_id, "request_id"), segment_int(workload_id, "workload_id"))
    metadata = segment_bool(with_metadata, "with_metadata")
    per_transform = segment_bool(with_detail, "with_detail") or segment_bool(with_transform, "with_transform")
    per_processing = segment_bool(with_processing, "with_processing")
    if not (per_transform or per_processing):
        return [rows.request_row(r, with_metadata=metadata) for r in queryset]
    return _detail_rows(queryset, with_metadata=metadata, per_processing=per_processing)


def _detail_rows(queryset: QuerySet[Request], *, with_metadata: bool, per_processing: bool) -> list[dict]:
    """One row per transform (and per processing when asked), each carrying its request's fields."""
    requests = list(queryset.prefetch_related("transforms__processings"))
    outputs = {
        c.transform_id: c
        for c in Collection.objects.filter(request__in=requests, relation_type=CollectionRelationType.OUTPUT).order_by(
            "-id"
        )
    }
    result = []
    for req in requests:
        base = rows.request_row(req, with_metadata=with_metadata)
        transforms = sorted(req.transforms.all(), key=lambda t: t.pk)
        if not transforms:
            result.append({**base, **rows.transform_row(req, None, None)})
        for transform in transforms:
            row = {**base, **rows.transform_row(req, transform, outputs.get(transform.pk))}
            processings = sorted(transform.processings.all(), key=lambda p: p.pk) if per_processing else []
            if not processings:
                result.append(row)
            result.extend({**row, **rows.processing_row(p)} for p in processings)
    return result


def _act(action: Action) -> Callable[..., list]:
    """PUT /request/<verb>/<rid>/<wid>: one ``[code, {status, message}]`` per matched request."""

    def handler(
        request: HttpRequest, caller: Caller, request_id: str, workload_id: str | None = None, task_id=None
    ) -> list:
        targets = _changeable(caller, segment_int(request_id, "request_id"), segment_int(workload_id, "workload_id"))
        if not targets:
            return NO_MATCH
        results = []
        for target in targets:
            try:
                action(request=target, actor=caller.user.get_username())
            except ApplicationError as exc:
                results.append([-1, {"status": -1, "message": exc.message}])
            else:
                results.append([0, REGISTERED])
        return results

    return handler


def _retry_or_resume(*, request: Request, actor: str) -> Request:
    """The client's retry: a suspended request resumes, a failed or partly finished one runs again."""
    if request.status == RequestStatus.SUSPENDED:
        return request_services.request_resume(request=request, actor=actor)
    return request_services.request_retry(request=request, actor=actor)


request_create = wire_view({"POST": _add_request, "GET": _get_requests})
request_update_or_get = wire_view({"PUT": _update_request, "GET": _get_requests})
request_get = wire_view({"GET": _get_requests})
request_abort = wire_view({"PUT": _act(request_services.request_abort)})
request_close = wire_view({"PUT": _act(request_services.request_finish)})
request_retry = wire_view({"PUT": _act(_retry_or_resume)})


# --- messages -----------------------------------------------------------------------------------------

#: Most messages one GET returns (the oldest first); consumers that need more page the native API.
MAX_MESSAGES = 10_000


def _get_messages(
    request: HttpRequest, caller: Caller, request_id: str, workload_id: str, transform_id: str, internal_id: str
) -> list[Any]:
    rid, wid = segment_int(request_id, "request_id"), segment_int(workload_id, "workload_id")
    tid = segment_int(transform_id, "transform_id")
    if rid is None and wid is None:
        raise bad_request("give a request_id or a workload_id")
    visible = _matching(caller, rid, wid)
    queryset = selectors.message_list().filter(request__in=visible)
    if tid is not None:
        queryset = queryset.filter(transform_id=tid)
    return list(queryset.order_by("id").values_list("body", flat=True)[:MAX_MESSAGES])


def _send_messages(
    request: HttpRequest, caller: Caller, request_id: str, workload_id: str, transform_id: str, internal_id: str
) -> dict:
    """Only the ``update_request`` command is acted on: this service keeps no inbox of client messages."""
    messages = read_body(request)
    if isinstance(messages, dict):
        messages = [messages]
    if not isinstance(messages, list) or not messages:
        raise bad_request("the body must be a list of messages")
    commands = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("command") != "update_request":
            raise bad_request(f'message {index}: only {{"command": "update_request", "parameters": ...}} is accepted')
        parameters = message.get("parameters")
        if not isinstance(parameters, dict) or "status" not in parameters:
            raise bad_request(f'message {index}: parameters must be an object with "status"')
        commands.append(parameters["status"])
    targets = _changeable(caller, segment_int(request_id, "request_id"), segment_int(workload_id, "workload_id"))
    if not targets:
        raise no_object(f"no request matches request_id {request_id} / workload_id {workload_id}")
    for target in targets:
        for status in commands:
            target = _apply_status(caller, target, status)
    return {"request_id": request_id}


message = wire_view({"GET": _get_messages, "POST": _send_messages})


# --- catalog ------------------------------------------------------------------------------------------


def _collections_of(caller: Caller, request_id: str, transform_id: str, workload_id: str) -> QuerySet[Collection]:
    rid, tid = segment_int(request_id, "request_id"), segment_int(transform_id, "transform_id")
    wid = segment_int(workload_id, "workload_id")
    queryset = (
        selectors.collection_list()
        .filter(request__in=selectors.request_list(user=caller.user).values("pk"))
        .select_related("transform")
    )
    if rid is not None:
        queryset = queryset.filter(request_id=rid)
    if tid is not None:
        queryset = queryset.filter(transform_id=tid)
    if wid is not None:
        queryset = queryset.filter(transform__workload_id=wid)
    return queryset


def _narrow(queryset: QuerySet[Collection], scope: str, name: str, relation_type: str) -> QuerySet[Collection]:
    if segment(scope) is not None:
        queryset = queryset.filter(scope=scope)
    if segment(name) is not None:
        queryset = queryset.filter(name=name)
    if segment(relation_type) is not None:
        queryset = queryset.filter(relation_type=enum_value(relation_type, CollectionRelationType, "relation_type"))
    return queryset


def _require_filter(*values: str) -> None:
    if all(segment(v) is None for v in values):
        raise bad_request("give at least one of request_id, transform_id, workload_id, scope or name")


def _get_collections(
    request: HttpRequest,
    caller: Caller,
    request_id: str,
    transform_id: str,
    workload_id: str,
    scope: str,
    name: str,
    relation_type: str,
) -> list[dict]:
    _require_filter(request_id, transform_id, workload_id, scope, name)
    queryset = _narrow(_collections_of(caller, request_id, transform_id, workload_id), scope, name, relation_type)
    return [rows.collection_row(c) for c in queryset.order_by("id")]


def _get_contents(
    request: HttpRequest,
    caller: Caller,
    request_id: str,
    transform_id: str,
    workload_id: str,
    coll_scope: str,
    coll_name: str,
    relation_type: str,
    status: str,
) -> list[dict]:
    _require_filter(request_id, transform_id, workload_id, coll_scope, coll_name)
    collections = _narrow(
        _collections_of(caller, request_id, transform_id, workload_id), coll_scope, coll_name, relation_type
    )
    queryset = (
        selectors.content_list()
        .filter(collection__in=collections.values("pk"))
        .select_related("collection__transform")
        .order_by("id")
    )
    if segment(status) is not None:
        queryset = queryset.filter(status=enum_value(status, ContentStatus, "status"))
    return [rows.content_row(c) for c in queryset]


collections = wire_view({"GET": _get_collections})
contents = wire_view({"GET": _get_contents})
