"""Campaigns: many stage-in requests at once, and their progress (for ``carousel_campaign``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Sum

from carousel.models import SimDataset, SimLock
from carousel.tape.clock import stored_clock
from requests_app.models import Collection, Processing, Request
from requests_app.models.statuses import REQUEST_TERMINAL, CollectionRelationType, RequestStatus, RequestType
from requests_app.services.requests import request_create

CAMPAIGN_KEY = "campaign"


def campaign_submit(
    *,
    datasets: Sequence[SimDataset],
    campaign: str,
    workload_id: int,
    dest_rse: str,
    max_waiting_time: float | None = None,
    owner=None,
) -> list[Request]:
    """Submit one stage-in request per dataset (workload ids ``workload_id``, +1, ...)."""
    requests = []
    for offset, dataset in enumerate(datasets):
        metadata = {"workload_id": workload_id + offset, "dest_rse": dest_rse, CAMPAIGN_KEY: campaign}
        if max_waiting_time is not None:
            metadata["max_waiting_time"] = max_waiting_time
        requests.append(
            request_create(
                request_type=RequestType.STAGE_IN,
                metadata=metadata,
                owner=owner,
                scope=dataset.scope,
                name=dataset.name,
                requester="carousel_campaign",
                workload_id=workload_id + offset,
            )
        )
    return requests


@dataclass(frozen=True)
class CampaignProgress:
    """Where a campaign stands: files on disk (simulator), released (announced), stuck, requests done."""

    total_files: int
    staged: int
    released: int
    failed: int
    stuck: int
    requests: int
    requests_done: int
    throttled: int

    @property
    def done(self) -> bool:
        return self.requests_done == self.requests


def campaign_progress(*, campaign: str, total_files: int, dataset_ids: Sequence[int]) -> CampaignProgress:
    """A handful of aggregate queries, whatever the campaign's size."""
    in_campaign = {f"request_metadata__{CAMPAIGN_KEY}": campaign}
    requests = Request.objects.filter(request_type=RequestType.STAGE_IN, **in_campaign)
    statuses = list(requests.values_list("status", flat=True))
    counters = Collection.objects.filter(request__in=requests, relation_type=CollectionRelationType.OUTPUT).aggregate(
        released=Sum("processed_files"), failed=Sum("failed_files")
    )
    stuck = sum(
        value
        for value in Processing.objects.filter(request__in=requests).values_list(
            "processing_metadata__stuck_count", flat=True
        )
        if isinstance(value, int)
    )
    staged = (
        SimLock.objects.filter(file__dataset_id__in=dataset_ids, fails=False, event_at__lte=stored_clock().horizon())
        .values("file_id")
        .distinct()
        .count()
    )
    return CampaignProgress(
        total_files=total_files,
        staged=staged,
        released=counters["released"] or 0,
        failed=counters["failed"] or 0,
        stuck=stuck,
        requests=len(statuses),
        requests_done=sum(1 for status in statuses if status in REQUEST_TERMINAL),
        throttled=sum(1 for status in statuses if status == RequestStatus.THROTTLING),
    )
