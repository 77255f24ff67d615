"""Runs INSIDE the Rucio server's virtual environment (tools/rucio_server.py starts it), with the
server's ``RUCIO_CONFIG``: what the test Rucio needs besides its web server.

    python tools/rucio_tool.py bootstrap --admin-url postgresql+psycopg://postgres@127.0.0.1/postgres --database D
    python tools/rucio_tool.py transfer --control control.json --events events.jsonl [--scale S] [--drives N]

``bootstrap`` creates the database (dropped first if it exists), Rucio's schema, the root account and
the ``vos`` row the bootstrap leaves out.

``transfer`` plays the Rucio daemons a stage-in needs, through Rucio's own core calls:

* judge-injector: rules in state INJECT (>= 10,000 files) get their locks (``inject_rule``);
* conveyor-submitter: each QUEUED transfer request gets a source (a replica the rule's
  ``source_replica_expression`` allows) and is SUBMITTED; its completion time comes from the tape
  simulator's drive schedule (``carousel.tape.scheduler``), so files land in tape order;
* conveyor-finisher: at that time the destination replica turns AVAILABLE (``update_replicas_states``
  -> ``lock.successful_transfer``: locks OK) or, for a file the control file says fails from that
  source, UNAVAILABLE (-> ``lock.failed_transfer``: locks STUCK); the request is archived into the
  request history, which ``GET /rules/{id}/analysis`` reads for the source that failed;
  with the conveyor's ``transfer-done`` / ``transfer-failed`` message (``add_monitor_message``) in
  Rucio's ``messages`` table, which Hermes (``RucioServer.start_hermes``) sends to a STOMP broker;
* judge-repairer (``recover_after``): a failed file later lands after all, turning STUCK locks OK.

The control file (JSON, re-read every step) holds ``fail`` ({file name: [source RSEs]}),
``recover_after`` ({file name: simulated seconds}), ``hold`` (dataset names whose INJECT rules stay
there), ``skip`` (dataset names whose transfers are parked, never done) and ``source_order`` (the
preferred sources first, as Rucio's distance ranking would).
Each completion is appended to the events file as one JSON line (name, dest, source, state, at).
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from rucio.core import request as request_core
from rucio.core import rule as rule_core
from rucio.core.replica import update_replicas_states
from rucio.core.rse import get_rse_name
from rucio.core.rse_expression_parser import parse_expression
from rucio.db.sqla import models
from rucio.db.sqla.constants import ReplicaState, RequestState, RequestType, RuleState
from rucio.db.sqla.session import get_session
from rucio.db.sqla.util import build_database, create_root_account
from sqlalchemy import select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The tape simulator's scheduler is pure Python (no Django): the same drive model as the simulator.
from carousel.tape.scheduler import DriveState, ReadItem, Timing, schedule_reads  # noqa: E402

# A tape library behind each tape RSE: mount, positioning and read speed as in the simulator's defaults.
TAPE_TIMING = Timing(mount_seconds=90.0, max_seek_seconds=100.0, throughput_bps=400e6)
TAPE_CAPACITY = 20_000_000_000_000
# Each dataset is written on this many cartridges per tape RSE.
CARTRIDGES_PER_DATASET = 2
BATCH = 500


@contextmanager
def db_session() -> Iterator[Any]:
    """One transaction on Rucio's database, committed on success; the connection goes back to the pool."""
    session = get_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def command_bootstrap(args: argparse.Namespace) -> int:
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{args.database}"')
    build_database()
    create_root_account()
    with db_session() as session:
        session.execute(
            text(
                "INSERT INTO vos (vo, description, email, created_at, updated_at) "
                "VALUES ('def', 'default', 'root@localhost', now(), now()) ON CONFLICT DO NOTHING"
            )
        )
    return 0


@dataclass(order=True)
class Completion:
    """A transfer that ends at ``due`` (monotonic seconds)."""

    due: float
    order: int
    scope: Any = field(compare=False)
    name: str = field(compare=False)
    dest_rse_id: str = field(compare=False)
    source: str = field(compare=False)
    fails: bool = field(compare=False)
    request_id: str | None = field(compare=False, default=None)


class TransferTool:
    def __init__(self, *, control: Path, events: Path, scale: float, drives: int) -> None:
        self.control_path = control
        self.events_path = events
        self.scale = scale
        self.drives = drives
        self.control: dict[str, Any] = {}
        self.pending: list[Completion] = []
        self.counter = 0
        self.drive_states: dict[str, list[DriveState]] = {}
        self.library_ids: dict[str, int] = {}
        self.expressions: dict[str, set[str]] = {}
        self.rse_names: dict[str, str] = {}
        self.started = time.monotonic()

    # -- control ------------------------------------------------------------------------------

    def read_control(self) -> None:
        """Re-read the control file (small; read every step: two writes can share an mtime)."""
        try:
            self.control = json.loads(self.control_path.read_text() or "{}")
        except (OSError, ValueError):
            return

    def sim_now(self) -> float:
        return (time.monotonic() - self.started) * (self.scale or 1.0)

    def due_at(self, sim_seconds: float) -> float:
        """Monotonic time of a simulated moment (scale 0: every moment is now)."""
        if self.scale == 0:
            return 0.0
        return self.started + sim_seconds / self.scale

    def rse_name(self, session: Any, rse_id: str) -> str:
        if rse_id not in self.rse_names:
            self.rse_names[rse_id] = get_rse_name(rse_id=rse_id, session=session)
        return self.rse_names[rse_id]

    def allowed(self, session: Any, expression: str | None) -> set[str] | None:
        if not expression:
            return None
        if expression not in self.expressions:
            self.expressions[expression] = {rse["id"] for rse in parse_expression(expression, session=session)}
        return self.expressions[expression]

    # -- the daemons ---------------------------------------------------------------------------

    def inject(self) -> int:
        held = self.control.get("hold", [])
        with db_session() as session:
            rule_ids = list(
                session.execute(
                    select(models.ReplicationRule.id).where(
                        models.ReplicationRule.state == RuleState.INJECT, models.ReplicationRule.name.not_in(held)
                    )
                ).scalars()
            )
        for rule_id in rule_ids:
            with db_session() as session:
                rule_core.inject_rule(rule_id=rule_id, session=session)
        return len(rule_ids)

    def submit(self) -> int:
        """Give QUEUED transfer requests a source and a completion time from the drive schedule."""
        with db_session() as session:
            return self._submit(session)

    def _submit(self, session: Any) -> int:
        queued = (
            session.execute(
                select(models.Request)
                .where(models.Request.state == RequestState.QUEUED, models.Request.request_type == RequestType.TRANSFER)
                .limit(50_000)
            )
            .scalars()
            .all()
        )
        if not queued:
            return 0
        by_source: dict[str, list[tuple[int, Any]]] = {}
        for number, request in enumerate(queued):
            attributes = request.attributes if isinstance(request.attributes, dict) else json.loads(request.attributes)
            if attributes.get("ds_name") in self.control.get("skip", []):
                # Parked: out of the QUEUED set, never transferred.
                request.state = RequestState.WAITING
                continue
            allowed = self.allowed(session, attributes.get("source_replica_expression"))
            replicas = session.execute(
                select(models.RSEFileAssociation.rse_id).where(
                    models.RSEFileAssociation.scope == request.scope,
                    models.RSEFileAssociation.name == request.name,
                    models.RSEFileAssociation.state == ReplicaState.AVAILABLE,
                    models.RSEFileAssociation.rse_id != request.dest_rse_id,
                )
            ).scalars()
            # Rucio ranks sources by distance; here the control file's ``source_order`` ranks them.
            order = self.control.get("source_order", [])
            candidates = sorted(
                (self.rse_name(session, rse_id) for rse_id in replicas if allowed is None or rse_id in allowed),
                key=lambda rse: (order.index(rse) if rse in order else len(order), rse),
            )
            if not candidates:
                request.state = RequestState.NO_SOURCES
                continue
            source = candidates[0]
            request.source_rse_id = next(k for k, v in self.rse_names.items() if v == source)
            request.state = RequestState.SUBMITTED
            request.external_host = "idds-test-transfer-tool"
            by_source.setdefault(source, []).append((number, request, attributes))
        session.flush()
        now = self.sim_now()
        for source, entries in by_source.items():
            library = self.library_ids.setdefault(source, len(self.library_ids) + 1)
            fresh = [DriveState(library * 100 + n, library, free_at=now) for n in range(self.drives)]
            drives = self.drive_states.setdefault(source, fresh)
            items, tapes = [], {}
            for number, request, attributes in entries:
                dataset = attributes.get("ds_name") or request.name
                cartridge = zlib.crc32(request.name.encode()) % CARTRIDGES_PER_DATASET
                tape = zlib.crc32(f"{source}:{dataset}:{cartridge}".encode()) & 0x7FFFFFFF
                tapes[tape] = library
                position = zlib.crc32(f"{request.name}:{source}".encode()) * 4096
                items.append(ReadItem(key=number, tape=tape, position=position, bytes=int(request.bytes or 0)))
            events = schedule_reads(
                items,
                start=now,
                drives=drives,
                tape_library=tapes,
                tape_capacity=dict.fromkeys(tapes, TAPE_CAPACITY * 8192),
                timing={library: TAPE_TIMING},
            )
            failing = self.control.get("fail", {})
            for number, request, _ in entries:
                self.counter += 1
                heapq.heappush(
                    self.pending,
                    Completion(
                        due=self.due_at(events[number]),
                        order=self.counter,
                        scope=request.scope,
                        name=request.name,
                        dest_rse_id=request.dest_rse_id,
                        source=source,
                        fails=source in failing.get(request.name, []),
                        request_id=request.id,
                    ),
                )
        return len(queued)

    def finish(self) -> int:
        """Complete every transfer whose time has come, as the conveyor-finisher does."""
        with db_session() as session:
            events = self._finish(session)
        if events:
            with self.events_path.open("a") as out:
                out.writelines(json.dumps(event) + "\n" for event in events)
        return len(events)

    def _finish(self, session: Any) -> list[dict[str, Any]]:
        now = time.monotonic()
        due: list[Completion] = []
        while self.pending and self.pending[0].due <= now and len(due) < BATCH:
            due.append(heapq.heappop(self.pending))
        if not due:
            return []
        try:
            # The whole batch at once, as the finisher updates replicas in bulk...
            with session.begin_nested():
                self._complete(due, session)
            completed = due
        except Exception:
            # ... and one savepoint per transfer when that fails: a file whose replica is gone does
            # not undo the others.
            completed = []
            for item in due:
                try:
                    with session.begin_nested():
                        self._complete([item], session)
                    completed.append(item)
                except Exception:
                    logging.exception("transfer of %s could not be completed", item.name)
        events = []
        for item in completed:
            recover = self.control.get("recover_after", {}).get(item.name)
            if item.fails and recover is not None:
                self.counter += 1
                heapq.heappush(
                    self.pending,
                    Completion(
                        due=self.due_at(self.sim_now() + float(recover)),
                        order=self.counter,
                        scope=item.scope,
                        name=item.name,
                        dest_rse_id=item.dest_rse_id,
                        source=item.source,
                        fails=False,
                    ),
                )
            events.append(
                {
                    "name": item.name,
                    "dest": self.rse_name(session, item.dest_rse_id),
                    "source": item.source,
                    "state": "STUCK" if item.fails else "OK",
                    "at": time.time(),
                }
            )
        return events

    @staticmethod
    def _complete(items: list[Completion], session: Any) -> None:
        """The destination replicas AVAILABLE (or UNAVAILABLE: the transfer failed), which turns the
        locks OK (or STUCK); each request DONE (or FAILED) with the conveyor's message, then archived."""
        replicas = []
        for item in items:
            replica = {
                "scope": item.scope,
                "name": item.name,
                "rse_id": item.dest_rse_id,
                "state": ReplicaState.UNAVAILABLE if item.fails else ReplicaState.AVAILABLE,
            }
            if item.fails:
                replica["error_message"] = f"transfer from {item.source} failed: tape read error"
            replicas.append(replica)
        update_replicas_states(replicas, nowait=False, session=session)
        for item, replica in zip(items, replicas, strict=True):
            if item.request_id is None:
                continue
            outcome = RequestState.FAILED if item.fails else RequestState.DONE
            request_core.transition_request_state(
                item.request_id, state=outcome, err_msg="tape read error" if item.fails else None, session=session
            )
            # The conveyor's message (transfer-done / transfer-failed) for Hermes to send on, in the
            # same transaction as the state change, as the conveyor-poller does.
            request = request_core.get_request(item.request_id, session=session)
            request_core.add_monitor_message(
                new_state=outcome,
                request=request,
                additional_fields={"src-rse": item.source, "reason": replica.get("error_message")},
                session=session,
            )
            request_core.archive_request(item.request_id, session=session)

    def run(self, interval: float) -> None:
        while True:
            self.read_control()
            try:
                worked = self.inject() + self.submit() + self.finish()
            except Exception:
                # A daemon: log, wait, try again (Rucio's daemons do the same).
                logging.exception("transfer tool step failed")
                worked = 0
            if not worked:
                time.sleep(interval)


def command_transfer(args: argparse.Namespace) -> int:
    tool = TransferTool(control=args.control, events=args.events, scale=args.scale, drives=args.drives)
    tool.run(args.interval)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    bootstrap = commands.add_parser("bootstrap")
    bootstrap.add_argument("--admin-url", required=True)
    bootstrap.add_argument("--database", required=True)
    transfer = commands.add_parser("transfer")
    transfer.add_argument("--control", type=Path, required=True)
    transfer.add_argument("--events", type=Path, required=True)
    transfer.add_argument("--scale", type=float, default=0.0, help="simulated seconds per real second (0: instant)")
    transfer.add_argument("--drives", type=int, default=2, help="drives per tape RSE")
    transfer.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()
    return {"bootstrap": command_bootstrap, "transfer": command_transfer}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
