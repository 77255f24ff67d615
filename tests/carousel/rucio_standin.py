"""A stand-in Rucio server for tests: Rucio's real REST paths and formats, a controllable clock.

It answers what ``carousel.backends.rucio`` asks through the real ``rucio-clients``:

- ``GET /auth/userpass``: token in the ``X-Rucio-Auth-Token`` header; every other call needs it (401 otherwise).
- ``GET /dids/{scope}/{name}/files``, ``/dids/{scope}/{name}/dids``, ``/dids/{scope}/{name}/rules``,
  ``GET /rules/`` (filters in the query string), ``GET /rules/{id}/locks``: newline-delimited JSON
  (``application/x-json-stream``), as Rucio streams them.
- ``GET /dids/{scope}/{name}/meta``, ``GET /rules/{id}``: one JSON object (``application/json``).
- ``POST /rules/``: 201 and the JSON list of new rule ids, one per DID; ``PUT /rules/{id}`` (options
  ``comment``, ``lifetime``, ``source_replica_expression``); ``DELETE /rules/{id}``: 200, a soft delete
  as in Rucio (the rule stays for an hour, still a duplicate); ``GET /rules/{id}/analysis``;
  ``GET /rses/?expression=``.
- What real Rucio 41 answers with a bare 500 (no exception class): a rule filter on a key that is
  not a column (``comment``), a source expression that selects no RSE. Locks of an unknown rule
  are an empty list, as in Rucio.
- Errors as Rucio sends them: status code, ``ExceptionClass``/``ExceptionMessage`` headers and the
  same pair as a JSON body, which the client turns back into ``rucio.common.exception`` classes.

Time is the stand-in's own clock, moved by ``advance()``. A lock is REPLICATING until its file's
staging delay (deterministic per file name) has passed since the rule was created, then OK, or
STUCK when the file cannot be read from the source the rule picked (``make_stuck``). A rule is STUCK
when any lock is stuck, OK when all are OK. A rule's source is the first replica of the file that
its ``source_replica_expression`` allows, so a re-stage rule that excludes the bad tape reads from
the next one and succeeds.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

# Rucio renders datetimes in JSON as RFC 1123 strings ending in " UTC" (rucio.common.utils.DATE_FORMAT).
RUCIO_DATE_FORMAT = "%a, %d %b %Y %H:%M:%S UTC"
START_TIME = datetime(2015, 6, 1, tzinfo=UTC)
# The columns of Rucio's rules table that a rule listing may filter on (a subset).
RULE_COLUMNS = {"id", "account", "scope", "name", "state", "rse_expression", "comments", "activity", "did_type"}
# (status, content type, body, extra headers) of one reply.
Reply = tuple[int, str, str, dict[str, str]]


class RucioError(Exception):
    """A refusal sent back the way Rucio sends it: status, exception class name and message."""

    def __init__(self, status: int, exception_class: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.exception_class = exception_class
        self.message = message


def _json(value: Any) -> str:
    return json.dumps(value, default=lambda v: v.strftime(RUCIO_DATE_FORMAT) if isinstance(v, datetime) else str(v))


# -- RSE expressions ------------------------------------------------------------------------------

_RSE_TOKEN = re.compile(r"\s*(?:([()|&\\])|([^()|&\\]+))")


def resolve_rse_expression(expression: str, rses: dict[str, dict[str, str]]) -> set[str]:
    """The RSEs an expression selects: names, ``key=value`` attributes, ``*``, ``|`` ``&`` ``\\`` and
    parentheses, evaluated left to right as Rucio does. Raises InvalidRSEExpression when empty."""
    tokens = [op or term.strip() for op, term in _RSE_TOKEN.findall(expression)]
    position = 0

    def operand() -> set[str]:
        nonlocal position
        token = tokens[position] if position < len(tokens) else ""
        position += 1
        if token == "(":
            value = chain()
            position += 1  # the closing parenthesis
            return value
        if token == "*":
            return set(rses)
        if "=" in token:
            key, wanted = (part.strip().lower() for part in token.split("=", 1))
            return {rse for rse, attrs in rses.items() if str(attrs.get(key, "")).lower() == wanted}
        if token in rses:
            return {token}
        raise RucioError(409, "InvalidRSEExpression", f"RSE Expression resulted in an empty set: {expression}")

    def chain() -> set[str]:
        nonlocal position
        value = operand()
        while position < len(tokens) and tokens[position] in "|&\\":
            op = tokens[position]
            position += 1
            right = operand()
            value = value | right if op == "|" else value & right if op == "&" else value - right
        return value

    selected = chain()
    if not selected:
        raise RucioError(409, "InvalidRSEExpression", f"RSE Expression resulted in an empty set: {expression}")
    return selected


# -- the model --------------------------------------------------------------------------------------


@dataclass
class StandInFile:
    scope: str
    name: str
    bytes: int
    adler32: str
    replicas: tuple[str, ...]  # RSEs holding the file, in the order a transfer would pick its source


@dataclass
class StandInLock:
    scope: str
    name: str
    rse: str
    source: str | None
    ready_at: datetime
    outcome: str  # the state the lock reaches at ready_at: OK or STUCK

    def state(self, now: datetime) -> str:
        return self.outcome if now >= self.ready_at else "REPLICATING"


@dataclass
class StandInRule:
    id: str
    account: str
    scope: str
    name: str
    did_type: str
    rse_expression: str
    copies: int
    source_replica_expression: str | None
    grouping: str
    activity: str | None
    comment: str | None
    priority: int
    created_at: datetime
    expires_at: datetime | None
    bytes: int
    locks: list[StandInLock] = field(default_factory=list)

    def counts(self, now: datetime) -> Counter[str]:
        return Counter(lock.state(now) for lock in self.locks)

    def state(self, now: datetime) -> str:
        counts = self.counts(now)
        if counts["STUCK"]:
            return "STUCK"
        return "REPLICATING" if counts["REPLICATING"] else "OK"

    def as_json(self, now: datetime) -> dict[str, Any]:
        """The rule as Rucio's GET /rules/{id} and rule listings render it."""
        counts = self.counts(now)
        state = self.state(now)
        stuck_since = [lock.ready_at for lock in self.locks if lock.state(now) == "STUCK"]
        return {
            "id": self.id,
            "subscription_id": None,
            "account": self.account,
            "scope": self.scope,
            "name": self.name,
            "did_type": self.did_type,
            "state": state,
            "error": "transfer failed" if state == "STUCK" else None,
            "rse_expression": self.rse_expression,
            "copies": self.copies,
            "expires_at": self.expires_at,
            "weight": None,
            "locked": False,
            "locks_ok_cnt": counts["OK"],
            "locks_replicating_cnt": counts["REPLICATING"],
            "locks_stuck_cnt": counts["STUCK"],
            "source_replica_expression": self.source_replica_expression,
            "activity": self.activity,
            "grouping": self.grouping,
            "notification": "NO",
            "stuck_at": min(stuck_since) if stuck_since else None,
            "purge_replicas": False,
            "ignore_availability": False,
            "ignore_account_limit": False,
            "priority": self.priority,
            # Rucio's field is "comments" (the request parameter is "comment").
            "comments": self.comment,
            "child_rule_id": None,
            "eol_at": None,
            "split_container": False,
            "meta": None,
            "created_at": self.created_at,
            "updated_at": max([self.created_at, *(lock.ready_at for lock in self.locks if lock.ready_at <= now)]),
            "bytes": self.bytes,
        }


class RucioStandIn:
    """The server state plus an HTTP server on 127.0.0.1 (a free port) serving it from a thread.

    ``stage_seconds`` bounds the per-file staging delay: each file takes a fixed, name-derived
    number of seconds in that range after its rule is created.
    """

    def __init__(
        self,
        *,
        username: str = "idds",
        password: str = "secret",
        stage_seconds: tuple[int, int] = (600, 6 * 3600),
    ) -> None:
        self.username = username
        self.password = password
        self.stage_seconds = stage_seconds
        self.now = START_TIME
        self.rses: dict[str, dict[str, str]] = {}
        self.datasets: dict[tuple[str, str], list[StandInFile]] = {}
        self.rules: dict[str, StandInRule] = {}
        self.deleted_rule_ids: list[str] = []
        self.stuck: set[tuple[str, str]] = set()  # (file name, source RSE) pairs that fail
        self.tokens: dict[str, str] = {}  # token -> account
        self.calls: Counter[str] = Counter()  # "METHOD /first/segment" -> number of requests
        self._failures: list[tuple[int, str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- set-up and control, for the tests --------------------------------------------------------

    def add_rse(self, name: str, **attributes: str | bool) -> None:
        self.rses[name] = {"rse": name, **{key.lower(): str(value) for key, value in attributes.items()}}

    def add_dataset(
        self, scope: str, name: str, *, files: int, replicas: Iterable[str], file_bytes: int = 4_000_000_000
    ) -> list[str]:
        """A closed dataset of ``files`` files named ``<name>._<n>``, each on every RSE of ``replicas``."""
        replicas = tuple(replicas)
        self.datasets[(scope, name)] = [
            StandInFile(
                scope, f"{name}._{n:06d}", file_bytes + n, f"{zlib.adler32(f'{name}{n}'.encode()):08x}", replicas
            )
            for n in range(1, files + 1)
        ]
        return [f.name for f in self.datasets[(scope, name)]]

    def make_stuck(self, file_name: str, source: str) -> None:
        """Reading ``file_name`` from ``source`` fails for good (its lock goes STUCK)."""
        self.stuck.add((file_name, source))

    def advance(self, **delta: float) -> None:
        """Move the clock, e.g. ``advance(hours=2)``."""
        with self._lock:
            self.now += timedelta(**delta)

    def fail_next(self, count: int = 1, *, status: int = 500, exception_class: str = "DatabaseException") -> None:
        """The next ``count`` requests (after authentication) fail with this status."""
        with self._lock:
            self._failures.extend([(status, exception_class, "stand-in induced failure")] * count)

    def revoke_tokens(self) -> None:
        """Forget every token, as when tokens expire: clients must authenticate again."""
        with self._lock:
            self.tokens.clear()

    def stage_delay(self, file_name: str) -> timedelta:
        low, high = self.stage_seconds
        return timedelta(seconds=low + zlib.crc32(file_name.encode()) % (high - low + 1))

    # -- the HTTP server --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RucioStandIn:
        standin = self

        class Handler(_RucioHandler):
            server_state = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval so that stop() returns at once instead of after the default 0.5 s.
        serve = functools.partial(self._server.serve_forever, poll_interval=0.02)
        self._thread = threading.Thread(target=serve, name="rucio-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)

    def __enter__(self) -> RucioStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- request handling (called under self._lock) ----------------------------------------------

    def handle(self, method: str, segments: list[str], query: dict[str, str], headers: Any, body: bytes) -> Reply:
        """Route one request; return (status, content_type, body text, extra headers)."""
        self.calls[f"{method} /{segments[0] if segments else ''}"] += 1
        if segments == ["auth", "userpass"] and method == "GET":
            return self._authenticate(headers)
        account = self.tokens.get(headers.get("X-Rucio-Auth-Token", ""))
        if account is None:
            raise RucioError(401, "CannotAuthenticate", "Cannot authenticate with given credentials")
        if self._failures:
            raise RucioError(*self._failures.pop(0))
        match method, segments:
            case "GET", ["dids", scope, name, "files"]:
                return self._stream(self._file_row(f) for f in self._dataset(scope, name))
            case "GET", ["dids", scope, name, "dids"]:
                return self._stream({**self._file_row(f), "type": "FILE"} for f in self._dataset(scope, name))
            case "GET", ["dids", scope, name, "meta"]:
                return self._object(self._metadata(scope, name))
            case "GET", ["dids", scope, name, "rules"]:
                self._did_type(scope, name)
                return self._stream(
                    r.as_json(self.now) for r in self.rules.values() if (r.scope, r.name) == (scope, name)
                )
            case "GET", ["rules", ""]:
                rows = [r.as_json(self.now) for r in self.rules.values()]
                if any(key not in RULE_COLUMNS for key in query):
                    # Rucio maps every filter key to a column: an unknown one is an unhandled server error.
                    return 500, "text/html; charset=utf-8", "", {}
                return self._stream(row for row in rows if all(str(row.get(k)) == v for k, v in query.items()))
            case "GET", ["rses", ""]:
                selected = sorted(resolve_rse_expression(query["expression"], self.rses))
                return self._stream({"rse": rse} for rse in selected)
            case "PUT", ["rules", rule_id]:
                self._update_rule(self._rule(rule_id), json.loads(body or b"{}")["options"])
                return 200, "text/html; charset=utf-8", "", {}
            case "GET", ["rules", rule_id, "analysis"]:
                return self._stream([self._analysis(self._rule(rule_id))])
            case "POST", ["rules", ""]:
                rule_ids = self._add_rules(json.loads(body or b"{}"), account)
                # Rucio answers Response(dumps(rule_ids), status=201): Flask's default content type.
                return 201, "text/html; charset=utf-8", json.dumps(rule_ids), {}
            case "GET", ["rules", rule_id]:
                return self._object(self._rule(rule_id).as_json(self.now))
            case "DELETE", ["rules", rule_id]:
                rule = self._rule(rule_id)
                # A soft delete: Rucio's judge-cleaner removes the rule when it expires, an hour later.
                soon = self.now + timedelta(hours=1)
                rule.expires_at = min(rule.expires_at, soon) if rule.expires_at else soon
                self.deleted_rule_ids.append(rule_id)
                return 200, "text/html; charset=utf-8", "", {}
            case "GET", ["rules", rule_id, "locks"]:
                rule = self.rules.get(rule_id)
                return self._stream(self._lock_row(lock, rule_id) for lock in (rule.locks if rule else []))
        raise RucioError(
            404, "MethodNotAllowed" if segments else "NotFound", f"no route for {method} /{'/'.join(segments)}"
        )

    def _authenticate(self, headers: Any) -> Reply:
        if (headers.get("X-Rucio-Username"), headers.get("X-Rucio-Password")) != (self.username, self.password):
            raise RucioError(401, "CannotAuthenticate", "Cannot authenticate to account with given credentials")
        token = f"{headers.get('X-Rucio-Account', self.username)}-{uuid.uuid4().hex}"
        self.tokens[token] = headers.get("X-Rucio-Account") or self.username
        expires = (datetime.now(UTC) + timedelta(hours=1)).strftime(RUCIO_DATE_FORMAT)
        return 200, "text/html; charset=utf-8", "", {"X-Rucio-Auth-Token": token, "X-Rucio-Auth-Token-Expires": expires}

    @staticmethod
    def _stream(rows: Iterable[dict[str, Any]]) -> Reply:
        return 200, "application/x-json-stream", "".join(_json(row) + "\n" for row in rows), {}

    @staticmethod
    def _object(row: dict[str, Any]) -> Reply:
        return 200, "application/json", _json(row), {}

    def _lock_row(self, lock: StandInLock, rule_id: str) -> dict[str, Any]:
        rse_id = uuid.uuid5(uuid.NAMESPACE_DNS, lock.rse).hex
        state = lock.state(self.now)
        return {
            "scope": lock.scope,
            "name": lock.name,
            "rse_id": rse_id,
            "rse": lock.rse,
            "state": state,
            "rule_id": rule_id,
        }

    @staticmethod
    def _file_row(f: StandInFile) -> dict[str, Any]:
        return {"scope": f.scope, "name": f.name, "bytes": f.bytes, "adler32": f.adler32, "guid": None, "events": None}

    def _dataset(self, scope: str, name: str) -> list[StandInFile]:
        try:
            return self.datasets[(scope, name)]
        except KeyError:
            raise RucioError(404, "DataIdentifierNotFound", f"Data identifier '{scope}:{name}' not found") from None

    def _file(self, scope: str, name: str) -> StandInFile | None:
        return next((f for files in self.datasets.values() for f in files if (f.scope, f.name) == (scope, name)), None)

    def _did_type(self, scope: str, name: str) -> str:
        if (scope, name) in self.datasets:
            return "DATASET"
        if self._file(scope, name) is not None:
            return "FILE"
        raise RucioError(404, "DataIdentifierNotFound", f"Data identifier '{scope}:{name}' not found")

    def _metadata(self, scope: str, name: str) -> dict[str, Any]:
        did_type = self._did_type(scope, name)
        files = self.datasets.get((scope, name)) or [self._file(scope, name)]
        return {
            "scope": scope,
            "name": name,
            "account": "root",
            "did_type": did_type,
            "is_open": False,
            "monotonic": False,
            "hidden": False,
            "obsolete": False,
            "complete": True,
            "availability": "AVAILABLE",
            "bytes": sum(f.bytes for f in files),
            "length": len(files) if did_type == "DATASET" else None,
            "adler32": files[0].adler32 if did_type == "FILE" else None,
            "project": scope.split("_")[0],
            "datatype": "RAW",
            "created_at": START_TIME - timedelta(days=3000),
            "updated_at": START_TIME - timedelta(days=3000),
        }

    def _rule(self, rule_id: str) -> StandInRule:
        try:
            return self.rules[rule_id]
        except KeyError:
            raise RucioError(404, "RuleNotFound", f"No rule with the id {rule_id} found") from None

    def _update_rule(self, rule: StandInRule, options: dict[str, Any]) -> None:
        if "comment" in options:
            rule.comment = options["comment"]
        if "lifetime" in options:
            lifetime = options["lifetime"]
            rule.expires_at = self.now + timedelta(seconds=lifetime) if lifetime else None
        if "source_replica_expression" in options:
            rule.source_replica_expression = options["source_replica_expression"]

    def _analysis(self, rule: StandInRule) -> dict[str, Any]:
        """Rucio's examine_rule: for a STUCK rule, each stuck lock with the source of its last transfer."""
        if rule.state(self.now) != "STUCK":
            return {"rule_error": f"This replication rule is {rule.state(self.now)}", "transfers": []}
        transfers = [
            {"scope": lock.scope, "name": lock.name, "rse": lock.rse, "attempts": 1, "last_source": lock.source}
            for lock in rule.locks
            if lock.state(self.now) == "STUCK"
        ]
        return {"rule_error": "transfer failed", "transfers": transfers}

    def _add_rules(self, params: dict[str, Any], account: str) -> list[str]:
        """Validate everything first, then create one rule per DID (all or nothing, as Rucio does)."""
        account = params.get("account") or account
        destinations = sorted(resolve_rse_expression(params["rse_expression"], self.rses))
        sources = params.get("source_replica_expression")
        try:
            allowed_sources = resolve_rse_expression(sources, self.rses) if sources else set(self.rses)
        except RucioError:
            # Real Rucio does not catch this one: a bare 500.
            raise RucioError(500, "", "") from None
        copies = int(params.get("copies") or 1)
        if copies > len(destinations):
            raise RucioError(
                409, "InsufficientTargetRSEs", f"There are not enough target RSEs to fulfil {copies} copies"
            )
        dids = [(did["scope"], did["name"]) for did in params["dids"]]
        types = {did: self._did_type(*did) for did in dids}
        for scope, name in dids:
            duplicate = any(
                (r.scope, r.name, r.account, r.rse_expression, r.copies)
                == (scope, name, account, params["rse_expression"], copies)
                for r in self.rules.values()
            )
            if duplicate:
                raise RucioError(409, "DuplicateRule", f"A duplicate rule for {scope}:{name} already exists")
        lifetime = params.get("lifetime")
        rule_ids = []
        for did in dids:
            files = self.datasets[did] if types[did] == "DATASET" else [self._file(*did)]
            rule = StandInRule(
                id=uuid.uuid4().hex,
                account=account,
                scope=did[0],
                name=did[1],
                did_type=types[did],
                rse_expression=params["rse_expression"],
                copies=copies,
                source_replica_expression=sources,
                grouping=params.get("grouping") or "DATASET",
                activity=params.get("activity"),
                comment=params.get("comment"),
                priority=int(params.get("priority") or 3),
                created_at=self.now,
                expires_at=self.now + timedelta(seconds=lifetime) if lifetime else None,
                bytes=sum(f.bytes for f in files),
                locks=[self._lock_for(f, destinations[0], allowed_sources) for f in files],
            )
            self.rules[rule.id] = rule
            rule_ids.append(rule.id)
        return rule_ids

    def _lock_for(self, f: StandInFile, destination: str, allowed_sources: set[str]) -> StandInLock:
        source = next((rse for rse in f.replicas if rse in allowed_sources and rse != destination), None)
        outcome = "OK" if source is not None and (f.name, source) not in self.stuck else "STUCK"
        return StandInLock(f.scope, f.name, destination, source, self.now + self.stage_delay(f.name), outcome)


class _RucioHandler(BaseHTTPRequestHandler):
    """Parses the request as Flask would for Rucio's routes and writes the stand-in's answer."""

    server_state: RucioStandIn

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        # The client quotes scope and name with quote_plus, so split first, then unquote each segment.
        segments = [unquote_plus(segment) for segment in parts.path.split("/")[1:]]
        query = dict(parse_qsl(parts.query))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        state = self.server_state
        try:
            with state._lock:
                status, content_type, text, extra = state.handle(self.command, segments, query, self.headers, body)
        except RucioError as error:
            status, content_type = error.status, "application/octet-stream"
            text = json.dumps({"ExceptionClass": error.exception_class, "ExceptionMessage": error.message})
            extra = {"ExceptionClass": error.exception_class, "ExceptionMessage": error.message}
            if not error.exception_class:
                text, extra = "", {}
        payload = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        """Quiet: pytest shows failures, not every request."""
