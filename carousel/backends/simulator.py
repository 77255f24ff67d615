"""The simulated tape system as a staging backend (the embedded default).

A thin adapter over ``carousel.tape.rules``: the state lives in the database (``carousel.models``)
and time is the shared simulated clock (``carousel.tape.clock``, ``IDDS_TAPE_TIME_SCALE``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.utils import timezone

from carousel.tape import rules
from carousel.tape.clock import current_clock

from .base import DatasetFile, DatasetSummary, LockInfo, RuleInfo, RuleRequest, StagingBackend


class SimulatorBackend(StagingBackend):
    """Tape libraries, drives and cartridges simulated in the database; see ``carousel.tape``."""

    def list_files(self, scope: str, name: str) -> list[DatasetFile]:
        return rules.files_list(scope, name)

    def dataset_summary(self, scope: str, name: str) -> DatasetSummary:
        return rules.dataset_summary(scope, name)

    def create_rule(self, rule: RuleRequest) -> list[str]:
        return rules.rule_create(rule)

    def get_rule(self, rule_id: str) -> RuleInfo:
        return rules.rule_info(rule_id)

    def list_locks(self, rule_id: str, *, since: datetime | None = None) -> Iterable[LockInfo]:
        return rules.locks_list([rule_id], since=since)

    def list_locks_many(self, rule_ids: Iterable[str], *, since: datetime | None = None) -> Iterable[LockInfo]:
        return rules.locks_list(list(rule_ids), since=since)

    def delete_rule(self, rule_id: str) -> None:
        rules.rule_delete(rule_id)

    def next_change_at(self, rule_ids: Iterable[str], *, after: datetime | None = None) -> datetime | None:
        return rules.next_event_at(list(rule_ids), after=after)

    def seconds_until(self, moment: datetime) -> float:
        clock = current_clock()
        if clock.scale == 0:
            return 0.0
        return max(0.0, (clock.real_time_of(moment) - timezone.now()).total_seconds())

    def now(self) -> datetime:
        """Simulated now; with time scale 0 the far future, so every wait has elapsed."""
        return current_clock().horizon()
