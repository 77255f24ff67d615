"""The staging-backend interface: what the stage-in work type needs from a storage system.

Two implementations: the simulated tape system (embedded default, ``carousel.backends.simulator``)
and Rucio through ``rucio-clients`` (``carousel.backends.rucio``). Names follow Rucio: a rule asks
for copies of DIDs on an RSE expression; each file of a rule has a lock whose state is
REPLICATING, OK or STUCK. Every method may raise ``requests_app.errors.TransientError`` (retry
later) or ``PermanentError`` (give up with the reason).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

RULE_STATES = ("REPLICATING", "OK", "STUCK", "SUSPENDED", "WAITING_APPROVAL", "INJECT")
LOCK_STATES = ("REPLICATING", "OK", "STUCK")


# Not frozen: one is built per file of a campaign, and a frozen dataclass costs 2.5x to build.
@dataclass(slots=True)
class DatasetFile:
    scope: str
    name: str
    bytes: int
    adler32: str = ""
    # The (tape) RSE the file is staged from, when the backend knows; "" otherwise. Throttling groups by it.
    source: str = ""


@dataclass(frozen=True)
class DatasetSummary:
    """Size and source of a dataset, for throttling before its files are listed."""

    files: int
    bytes: int
    source: str = ""


@dataclass(frozen=True)
class RuleInfo:
    rule_id: str
    state: str
    locks_ok_cnt: int = 0
    locks_replicating_cnt: int = 0
    locks_stuck_cnt: int = 0
    expires_at: datetime | None = None
    # On the backend's clock (see StagingBackend.now); None when unknown.
    created_at: datetime | None = None


# Not frozen: one is built per file of a campaign, and a frozen dataclass costs 2.5x to build.
@dataclass(slots=True)
class LockInfo:
    scope: str
    name: str
    state: str
    rse: str = ""
    # When the lock reached its state, if the backend knows (the simulator does; Rucio gives updated_at).
    updated_at: datetime | None = None
    # The RSE the file is read from, when the backend knows ("" otherwise).
    source: str = ""


@dataclass(frozen=True)
class RuleRequest:
    """Parameters of a new rule (Rucio's add_replication_rule)."""

    dids: tuple[tuple[str, str], ...]  # (scope, name) pairs: a dataset, or files when re-staging
    rse_expression: str
    copies: int = 1
    source_replica_expression: str | None = None
    lifetime: int | None = None  # seconds
    grouping: str = "DATASET"
    activity: str = "Staging"
    comment: str = ""  # the service tags rules with "idds processing <id>" to adopt them after a crash


def main_source(files: Iterable[DatasetFile]) -> str:
    """The source most of the files are staged from ("" when the backend does not say)."""
    counts = Counter(f.source for f in files if f.source)
    return counts.most_common(1)[0][0] if counts else ""


class StagingBackend(ABC):
    @abstractmethod
    def list_files(self, scope: str, name: str) -> list[DatasetFile]:
        """Every file of a dataset (raise PermanentError when the dataset does not exist)."""

    @abstractmethod
    def create_rule(self, rule: RuleRequest) -> list[str]:
        """Create the rule(s) (one per DID, as Rucio does) and return their ids, or adopt an
        existing rule with the same DIDs, RSE expression and comment (idempotent submit)."""

    @abstractmethod
    def get_rule(self, rule_id: str) -> RuleInfo: ...

    @abstractmethod
    def list_locks(self, rule_id: str, *, since: datetime | None = None) -> Iterable[LockInfo]:
        """Locks of a rule. With ``since``, a backend may return only locks changed after it
        (the simulator does; Rucio returns all and the caller filters)."""

    @abstractmethod
    def delete_rule(self, rule_id: str) -> None:
        """Cancel a rule (abort); deleting a rule that is already gone is not an error."""

    def source_of(self, lock: LockInfo) -> str | None:
        """The source RSE a stuck file was being read from, when the backend knows."""
        return lock.source or None

    def restage_sources(self, avoid_source: str | None) -> str | None:
        """The source replica expression of a re-stage: anything but ``avoid_source``."""
        return f"*\\{avoid_source}" if avoid_source else None

    def restage_request(
        self,
        *,
        files: Sequence[tuple[str, str]],
        rse_expression: str,
        avoid_source: str | None,
        copies: int = 1,
        activity: str = "Staging",
        lifetime: int | None = None,
        comment: str = "",
    ) -> RuleRequest:
        """The rule that re-stages stuck ``files`` from any source but ``avoid_source`` (one rule per file)."""
        return RuleRequest(
            dids=tuple(files),
            rse_expression=rse_expression,
            copies=copies,
            source_replica_expression=self.restage_sources(avoid_source),
            lifetime=lifetime,
            grouping="NONE",
            activity=activity,
            comment=comment,
        )

    def list_locks_many(self, rule_ids: Iterable[str], *, since: datetime | None = None) -> Iterable[LockInfo]:
        """Locks of several rules (re-stage rules come one per file); backends may do it in one call."""
        for rule_id in rule_ids:
            yield from self.list_locks(rule_id, since=since)

    def dataset_summary(self, scope: str, name: str) -> DatasetSummary:
        """Number of files, bytes and source of a dataset; default: from ``list_files``."""
        files = self.list_files(scope, name)
        source = main_source(files)
        return DatasetSummary(files=len(files), bytes=sum(f.bytes for f in files), source=source)

    def next_change_at(self, rule_ids: Iterable[str], *, after: datetime | None = None) -> datetime | None:
        """When (backend clock) a lock of these rules changes next after ``after`` (the caller's cursor;
        None = ever), if the backend can tell; a time already past means "poll again now"."""
        return None

    def seconds_until(self, moment: datetime) -> float:
        """Real seconds until ``moment`` on the backend's clock (0 if it has passed)."""
        return max(0.0, (moment - self.now()).total_seconds())

    def now(self) -> datetime:
        """The backend's clock, against which ``max_waiting_time`` is measured (simulated time for the
        simulator, so waiting times scale with IDDS_TAPE_TIME_SCALE)."""
        return timezone.now()
