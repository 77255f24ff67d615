"""Rules and locks of the simulated tape system (the writes and reads behind ``SimulatorBackend``).

Creating a rule schedules all its files at once on the drives (``scheduler.schedule_reads``)
under a row lock on the drives involved, and stores one ``SimLock`` per file with its event time.
Everything after that is a read: a lock is OK or STUCK once the simulated clock passed its
``event_at``. No timer, no task per file.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Q

from carousel.backends.base import DatasetFile, DatasetSummary, LockInfo, RuleInfo, RuleRequest
from carousel.models import SimDataset, SimFile, SimLock, SimRule, Tape, TapeDrive, TapeLibrary
from requests_app.errors import PermanentError
from requests_app.services.bulk import array_literal, insert_rows, text_array

from .clock import FAR_FUTURE, Clock, current_clock
from .expressions import rse_matches
from .scheduler import DriveState, ReadItem, Timing, schedule_reads

_FILE_FIELDS = ("id", "dataset_id", "scope", "name", "tape_id", "position", "copy_tape_id", "copy_position", "bytes")


def files_list(scope: str, name: str) -> list[DatasetFile]:
    """Every file of a dataset, in catalogue order."""
    dataset = SimDataset.objects.filter(scope=scope, name=name).select_related("library").first()
    if dataset is None:
        raise PermanentError(f"dataset {scope}:{name} not found in the simulated catalogue")
    source = dataset.library.name
    return [
        DatasetFile(scope=row[0], name=row[1], bytes=row[2], adler32=row[3], source=source)
        for row in SimFile.objects.filter(dataset=dataset)
        .order_by("id")
        .values_list("scope", "name", "bytes", "adler32")
    ]


def dataset_summary(scope: str, name: str) -> DatasetSummary:
    """Files, bytes and primary source of a dataset without listing its files."""
    dataset = SimDataset.objects.filter(scope=scope, name=name).select_related("library").first()
    if dataset is None:
        raise PermanentError(f"dataset {scope}:{name} not found in the simulated catalogue")
    return DatasetSummary(files=dataset.total_files, bytes=dataset.total_bytes, source=dataset.library.name)


def next_event_at(rule_ids: Sequence[str], *, after: datetime | None = None) -> datetime:
    """The first lock event of these rules after ``after`` (far future: none left).

    Measured from the caller's cursor, not from now: an event that became due between the
    caller's listing and this call comes back (in the past), so the caller polls again at once
    instead of sleeping past it.
    """
    if not rule_ids:
        return FAR_FUTURE
    locks = SimLock.objects.filter(rule_id__in=rule_ids, rule__deleted_at__isnull=True)
    if after is not None:
        locks = locks.filter(event_at__gt=after)
    return locks.order_by("event_at").values_list("event_at", flat=True).first() or FAR_FUTURE


def _ts(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else 0.0


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _resolve(dids: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[tuple]]:
    """Files of each DID (a dataset or a single file) as ``_FILE_FIELDS`` tuples plus stuck flag."""
    fields = (*_FILE_FIELDS, "stuck_on_primary")
    wanted = set(dids)
    datasets = {
        (row.scope, row.name): row.pk
        for row in SimDataset.objects.filter(name__in={name for _, name in wanted})
        if (row.scope, row.name) in wanted
    }
    resolved: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    if datasets:
        did_of = {pk: did for did, pk in datasets.items()}
        for row in SimFile.objects.filter(dataset_id__in=did_of).order_by("id").values_list(*fields):
            resolved[did_of[row[1]]].append(row)
    file_dids = wanted - set(datasets)
    if file_dids:
        # Scope and name together, so the lookup uses the (scope, name) unique index: by name alone
        # each re-stage scanned the whole catalogue (6 s of the reference campaign's 61 re-stages).
        files = SimFile.objects.filter(
            scope__in={scope for scope, _ in file_dids}, name__in={name for _, name in file_dids}
        )
        for row in files.values_list(*fields):
            if (row[2], row[3]) in file_dids:
                resolved[(row[2], row[3])].append(row)
    missing = [f"{scope}:{name}" for scope, name in dids if (scope, name) not in resolved]
    if missing:
        raise PermanentError(f"DID not found in the simulated catalogue: {', '.join(missing[:5])}")
    return resolved


def _adopt(request: RuleRequest) -> dict[tuple[str, str], str]:
    """Live rules with the same comment, RSE expression and DIDs (a repeated submit)."""
    if not request.comment:
        return {}
    wanted = set(request.dids)
    return {
        (scope, name): rule_id
        for rule_id, scope, name in SimRule.objects.filter(
            comment=request.comment, rse_expression=request.rse_expression, deleted_at__isnull=True
        ).values_list("id", "scope", "name")
        if (scope, name) in wanted
    }


def rule_create(request: RuleRequest, *, clock: Clock | None = None) -> list[str]:
    """Create one rule per DID (adopting existing ones) and schedule every file's read."""
    if not request.dids:
        raise PermanentError("a rule needs at least one DID")
    clock = clock or current_clock()
    with transaction.atomic():
        adopted = _adopt(request)
        todo = [did for did in dict.fromkeys(request.dids) if did not in adopted]
        created = _rules_schedule(request, todo, clock) if todo else {}
    ids = adopted | created
    return [ids[did] for did in dict.fromkeys(request.dids)]


def _rules_schedule(request: RuleRequest, dids: list[tuple[str, str]], clock: Clock) -> dict[tuple[str, str], str]:
    resolved = _resolve(dids)
    tapes = {
        pk: (library, capacity)
        for pk, library, capacity in Tape.objects.values_list("id", "library_id", "capacity_bytes")
    }
    libraries = {row.pk: row for row in TapeLibrary.objects.all()}
    allowed = {pk for pk, row in libraries.items() if rse_matches(request.source_replica_expression, row.name)}
    items: list[ReadItem] = []
    owner: dict[int, tuple[str, str]] = {}
    for did, rows in resolved.items():
        for file_id, _, _, _, tape, position, copy_tape, copy_position, size, stuck in rows:
            if tapes[tape][0] in allowed:
                items.append(ReadItem(file_id, tape, position, size, stuck))
            elif tapes[copy_tape][0] in allowed:
                items.append(ReadItem(file_id, copy_tape, copy_position, size, False))
            else:
                raise PermanentError(
                    f"no replica of {did[0]}:{did[1]} matches source_replica_expression "
                    f"{request.source_replica_expression!r}"
                )
            owner[file_id] = did
    used_libraries = {tapes[item.tape][0] for item in items}
    # Lock the drives (in id order, so concurrent rule creations cannot deadlock).
    drive_rows = list(TapeDrive.objects.select_for_update().filter(library_id__in=used_libraries).order_by("id"))
    if not {row.library_id for row in drive_rows} >= used_libraries:
        raise PermanentError("a tape library holding these files has no drives")
    drives = [
        DriveState(row.pk, row.library_id, _ts(row.free_at), row.mounted_tape_id, row.head_position)
        for row in drive_rows
    ]
    now = clock.sim_now()
    events = schedule_reads(
        items,
        start=now.timestamp(),
        drives=drives,
        tape_library={pk: lib for pk, (lib, _) in tapes.items()},
        tape_capacity={pk: cap for pk, (_, cap) in tapes.items()},
        timing={
            pk: Timing(row.mount_seconds, row.max_seek_seconds, row.throughput_bps) for pk, row in libraries.items()
        },
    )
    for row, state in zip(drive_rows, drives, strict=True):
        row.free_at, row.mounted_tape_id, row.head_position = _dt(state.free_at), state.tape, state.head
    TapeDrive.objects.bulk_update(drive_rows, ["free_at", "mounted_tape", "head_position"])
    rule_ids = {did: uuid.uuid4().hex for did in dids}
    SimRule.objects.bulk_create(
        [
            SimRule(
                id=rule_ids[did],
                scope=did[0],
                name=did[1],
                rse_expression=request.rse_expression,
                source_replica_expression=request.source_replica_expression or "",
                copies=request.copies,
                lifetime=request.lifetime,
                grouping=request.grouping,
                activity=request.activity,
                comment=request.comment,
                created_at=now,
            )
            for did in dids
        ]
    )
    _locks_insert([rule_ids[owner[i.key]] for i in items], items, [events[i.key] for i in items])
    return rule_ids


# One INSERT from five arrays: event times travel as epoch seconds (repr of a float) and
# PostgreSQL converts them, where formatting 400k timestamps in Python cost 2 s per campaign.
_LOCKS_INSERT = """
    INSERT INTO {table} (rule_id, file_id, source_tape_id, event_at, fails)
    SELECT rule_id, file_id, tape_id, to_timestamp(seconds), fails
    FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::float8[], %s::bool[])
        AS lock(rule_id, file_id, tape_id, seconds, fails)
"""


def _locks_insert(rule_ids: list[str], items: list[ReadItem], seconds: list[float]) -> None:
    """Store one lock per read item of a new rule."""
    if connection.vendor != "postgresql":
        rows = (
            (rule_id, i.key, i.tape, _dt(moment), i.fails)
            for rule_id, i, moment in zip(rule_ids, items, seconds, strict=True)
        )
        insert_rows(SimLock, ("rule_id", "file_id", "source_tape_id", "event_at", "fails"), rows)
        return
    arrays = [
        text_array(rule_ids),
        array_literal(str(i.key) for i in items),
        array_literal(str(i.tape) for i in items),
        array_literal(map(repr, seconds)),
        array_literal("t" if i.fails else "f" for i in items),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_LOCKS_INSERT.format(table=SimLock._meta.db_table), arrays)


def _live_rule(rule_id: str) -> SimRule:
    rule = SimRule.objects.filter(pk=rule_id, deleted_at__isnull=True).first()
    if rule is None:
        raise PermanentError(f"rule {rule_id} not found")
    return rule


def rule_info(rule_id: str, *, clock: Clock | None = None) -> RuleInfo:
    """The rule's state and lock counts at the simulated now."""
    rule = _live_rule(rule_id)
    horizon = (clock or current_clock()).horizon()
    due = Q(event_at__lte=horizon)
    counts = SimLock.objects.filter(rule_id=rule_id).aggregate(
        ok=Count("id", filter=due & Q(fails=False)),
        stuck=Count("id", filter=due & Q(fails=True)),
        total=Count("id"),
    )
    replicating = counts["total"] - counts["ok"] - counts["stuck"]
    state = "STUCK" if counts["stuck"] else "REPLICATING" if replicating else "OK"
    expires = rule.created_at + timedelta(seconds=rule.lifetime) if rule.lifetime else None
    return RuleInfo(
        rule_id=rule.pk,
        state=state,
        locks_ok_cnt=counts["ok"],
        locks_replicating_cnt=replicating,
        locks_stuck_cnt=counts["stuck"],
        expires_at=expires,
        created_at=rule.created_at,
    )


def locks_list(
    rule_ids: Sequence[str], *, since: datetime | None = None, clock: Clock | None = None
) -> Iterator[LockInfo]:
    """Locks of the rules in event order. With ``since``: only those that changed in (since, now]."""
    if not rule_ids:
        return
    rules = {
        pk: (rse, created)
        for pk, rse, created in SimRule.objects.filter(pk__in=rule_ids, deleted_at__isnull=True).values_list(
            "id", "rse_expression", "created_at"
        )
    }
    if len(rules) < len(set(rule_ids)):
        missing = sorted(set(rule_ids) - set(rules))
        raise PermanentError(f"rule {missing[0]} not found")
    horizon = (clock or current_clock()).horizon()
    sources = dict(Tape.objects.values_list("id", "library__name"))
    locks = SimLock.objects.filter(rule_id__in=rules)
    if since is not None:
        locks = locks.filter(event_at__gt=since, event_at__lte=horizon)
    rows = locks.order_by("event_at", "id").values_list(
        "rule_id", "file__scope", "file__name", "fails", "event_at", "source_tape_id"
    )
    # One plain query: a rule holds one dataset (tens of thousands of tuples, a few MB), and the
    # caller keeps every landed name anyway. A server-side cursor outside a transaction is
    # declared WITH HOLD, which made PostgreSQL copy the whole result first: twice the work.
    for rule_id, scope, name, fails, event_at, tape in rows:
        rse, created = rules[rule_id]
        if event_at <= horizon:
            state, moment = ("STUCK" if fails else "OK"), event_at
        else:
            state, moment = "REPLICATING", created
        yield LockInfo(scope=scope, name=name, state=state, rse=rse, updated_at=moment, source=sources[tape])


def rule_delete(rule_id: str, *, clock: Clock | None = None) -> None:
    """Delete a rule; reads not yet done are cancelled (their drive time is not given back)."""
    clock = clock or current_clock()
    with transaction.atomic():
        updated = SimRule.objects.filter(pk=rule_id, deleted_at__isnull=True).update(deleted_at=clock.sim_now())
        if updated:
            SimLock.objects.filter(rule_id=rule_id, event_at__gt=clock.horizon()).delete()
