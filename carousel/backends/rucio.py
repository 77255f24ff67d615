"""Staging through a real Rucio with ``rucio-clients``.

A stage-in is a Rucio replication rule from tape to disk: one rule on the dataset, whose replica
locks say, file by file, whether the copy landed (OK), is on its way (REPLICATING) or failed for
good (STUCK). Stuck files get a new rule on the file DIDs that reads from any tape except the one
that failed (``source_replica_expression``). Every Rucio failure leaves this module as
``PermanentError`` (a refusal no retry changes: unknown dataset or rule, bad RSE expression, quota)
or ``TransientError`` (connection refused, timeout, 5xx, a failed token request).

The client is built without a ``rucio.cfg``: host, auth host, account, auth type and credentials
are passed explicitly (Django settings ``IDDS_RUCIO_*`` or constructor arguments). rucio-clients 41
only reads the config file for options it can do without (trace host, retries, token file path),
and a config file, if one exists (``$RUCIO_CONFIG``, ``$VIRTUAL_ENV/etc/rucio.cfg``), is still honoured
for those.

What a real Rucio server (release 41) does, and how this module meets it (docs/rucio.md):

* a rule's tag is its ``comments`` field; rules are adopted after a crash by it;
* some wrong inputs are answered 500 without a cause (a source expression that selects no RSE, a
  filter on an unknown column, a malformed rule id): they are checked before the call and refused;
* DELETE only shortens a rule's lifetime to an hour, and an identical rule is ``DuplicateRule``
  until the judge-cleaner removes it: a rule this service deleted is marked in its comment and
  revived by a resubmission; a re-stage of files that already have a re-stage rule varies the
  RSE expression (one more pair of parentheses: the same RSEs, a new unique key);
* the locks of an unknown rule are an empty list, and a rule of >= 10,000 files starts in INJECT
  with no locks yet: an empty listing is checked against the rule;
* locks do not say where a file was read from: the stuck files' sources come from the rule
  analysis (``GET /rules/{id}/analysis``, the request history), so a re-stage avoids them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rucio.client import Client
from rucio.common import exception as rucio_errors

from carousel.backends.base import DatasetFile, LockInfo, RuleInfo, RuleRequest, StagingBackend
from requests_app.errors import PermanentError, TransientError

logger = logging.getLogger(__name__)

# Refusals that a retry cannot change. Anything else from Rucio (DatabaseException, the bare
# RucioException the client raises for a 5xx without details, ServerConnectionException,
# CannotAuthenticate, which the client also raises when the auth server answers 5xx) is transient.
PERMANENT_RUCIO_ERRORS: tuple[type[Exception], ...] = (
    rucio_errors.DataIdentifierNotFound,
    rucio_errors.RuleNotFound,
    rucio_errors.ScopeNotFound,
    rucio_errors.RSENotFound,
    rucio_errors.InvalidRSEExpression,
    rucio_errors.InvalidReplicationRule,
    rucio_errors.InvalidRuleWeight,
    rucio_errors.InvalidObject,
    rucio_errors.InvalidValueForKey,
    rucio_errors.InputValidationError,
    rucio_errors.InsufficientTargetRSEs,
    rucio_errors.InsufficientAccountLimit,
    rucio_errors.StagingAreaRuleRequiresLifetime,
    rucio_errors.ManualRuleApprovalBlocked,
    rucio_errors.DuplicateRule,
    rucio_errors.AccessDenied,
    rucio_errors.UnsupportedOperation,
    # Client-side configuration mistakes: no retry fixes a missing password or a bad URL scheme.
    rucio_errors.MissingClientParameter,
    rucio_errors.NoAuthInformation,
    rucio_errors.ClientProtocolNotFound,
    rucio_errors.ClientProtocolNotSupported,
)
NOT_FOUND_ERRORS = (rucio_errors.DataIdentifierNotFound, rucio_errors.RuleNotFound, rucio_errors.ScopeNotFound)

# Connect and read timeouts (seconds) for every call. The read timeout bounds the gap between two
# chunks, not the whole reply, so listing a 100,000-file dataset as a stream is not cut short. It
# must exceed a rule creation: Rucio 41 created a 9,999-file rule (the largest it makes at once;
# from 10,000 it injects later) in 64 s on a test machine. A create cut short is retried and adopts
# the rule it made (by comments).
DEFAULT_TIMEOUT = (5, 180)
# The tape RSEs of a deployment. ``istape=True`` is a convention (an attribute the operators set, as
# ATLAS does); every Rucio also knows ``rse_type=TAPE``. The re-stage source is "any tape but the bad one".
DEFAULT_TAPE_EXPRESSION = "istape=True"
# Rucio rule ids are UUIDs, sent as 32 hex digits; anything else is a 500 ("Badly formatted rule id").
RULE_ID = re.compile(r"^[0-9a-fA-F]{32}$|^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
# A rule this service deleted keeps answering for an hour (soft delete); its comment says so, so a
# resubmission of the same rule revives it instead of failing with DuplicateRule.
DELETED_MARK = "[deleted] "
# Re-stage rules of the same files get one more pair of parentheses around the RSE expression per
# attempt (Rucio's unique key is scope, name, account, RSE expression, copies).
MAX_EXPRESSION_VARIANTS = 8
# Rucio answers these inputs with a 500 whose details name the cause: the input is wrong, no retry helps.
BAD_INPUT_DETAILS = ("Badly formatted",)


def _reason(error: BaseException) -> str:
    """One line of the error: RucioException's text is "<summary>\\nDetails: <server message>"."""
    return " ".join(str(error).split()) or error.__class__.__name__


def _grouped(expression: str) -> str:
    """An RSE expression safe to use as one operand of ``\\``, ``|`` or ``&``."""
    return f"({expression})" if any(op in expression for op in "|&\\") else expression


def restage_source_expression(avoid_source: str | None, *, tape_expression: str = DEFAULT_TAPE_EXPRESSION) -> str:
    """The ``source_replica_expression`` of a re-stage rule: any tape except the source that failed.

    >>> restage_source_expression("CERN-PROD_DATATAPE")
    'istape=True\\\\CERN-PROD_DATATAPE'
    """
    if not avoid_source:
        return tape_expression
    return f"{_grouped(tape_expression)}\\{_grouped(avoid_source)}"


def _unwrapped(expression: str) -> str:
    """The RSE expression without the parentheses a re-stage variant added around all of it."""
    while expression.startswith("(") and expression.endswith(")") and _balanced(expression[1:-1]):
        expression = expression[1:-1]
    return expression


def _balanced(expression: str) -> bool:
    depth = 0
    for char in expression:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def credentials_from_settings(auth_type: str) -> dict[str, Any]:
    """The ``creds`` rucio-clients takes for ``auth_type``, from the ``IDDS_RUCIO_*`` settings.

    userpass: username and password (given separately); x509: ``client_cert`` and ``client_key``;
    x509_proxy: ``client_proxy``; oidc: ``oidc_scope``, ``oidc_audience``, ``oidc_issuer`` (the
    token itself is read from the client's token file, see docs/rucio.md).
    """
    chosen = {
        "x509": {"client_cert": settings.IDDS_RUCIO_CLIENT_CERT, "client_key": settings.IDDS_RUCIO_CLIENT_KEY},
        "x509_proxy": {"client_proxy": settings.IDDS_RUCIO_CLIENT_PROXY},
        "oidc": {
            "oidc_scope": settings.IDDS_RUCIO_OIDC_SCOPE,
            "oidc_audience": settings.IDDS_RUCIO_OIDC_AUDIENCE,
            "oidc_issuer": settings.IDDS_RUCIO_OIDC_ISSUER,
        },
    }.get(auth_type, {})
    # Empty settings are left out, so the client falls back to its own (rucio.cfg, RUCIO_CLIENT_CERT, ...).
    return {key: value for key, value in chosen.items() if value}


def _aware(value: Any) -> datetime | None:
    """Rucio sends naive UTC datetimes (its JSON dates end in " UTC"); the project uses aware ones."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return None


class RucioBackend(StagingBackend):
    """The staging backend of a real Rucio, reached through ``rucio.client.Client``.

    The client authenticates when it is built, so it is built on first use: constructing the
    backend never touches the network and never fails because Rucio is down.
    """

    def __init__(
        self,
        *,
        rucio_host: str,
        auth_host: str | None = None,
        account: str,
        auth_type: str = "userpass",
        username: str | None = None,
        password: str | None = None,
        creds: dict[str, Any] | None = None,
        ca_cert: str | None = None,
        timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
        tape_expression: str = DEFAULT_TAPE_EXPRESSION,
        transfer_events: bool = False,
    ) -> None:
        if not rucio_host:
            raise ImproperlyConfigured("rucio_host is empty: give the URL of the Rucio server")
        if not account:
            raise ImproperlyConfigured("account is empty: give the Rucio account that owns the staging rules")
        self.rucio_host = rucio_host.rstrip("/")
        self.auth_host = (auth_host or rucio_host).rstrip("/")
        self.account = account
        self.auth_type = auth_type
        self.creds = dict(creds or {})
        if auth_type == "userpass":
            self.creds.setdefault("username", username)
            self.creds.setdefault("password", password)
        self.ca_cert = ca_cert
        self.timeout = timeout
        self.tape_expression = tape_expression
        # Polls take landed files from Rucio's transfer-done messages (carousel.rucio_events) and list
        # a rule's locks only when its counters disagree; without it every poll lists every lock.
        self.transfer_events = transfer_events
        self._client: Client | None = None
        # Source expressions Rucio resolved to at least one RSE (checked once per backend).
        self._good_expressions: set[str] = set()

    @classmethod
    def from_settings(cls) -> RucioBackend:
        """The backend configured by the ``IDDS_RUCIO_*`` Django settings."""
        if not settings.IDDS_RUCIO_HOST:
            raise ImproperlyConfigured(
                "IDDS_RUCIO_HOST is empty: set it to the Rucio server URL to stage through Rucio"
            )
        return cls(
            rucio_host=settings.IDDS_RUCIO_HOST,
            auth_host=settings.IDDS_RUCIO_AUTH_HOST or None,
            account=settings.IDDS_RUCIO_ACCOUNT,
            auth_type=settings.IDDS_RUCIO_AUTH_TYPE,
            username=settings.IDDS_RUCIO_USERNAME or None,
            password=settings.IDDS_RUCIO_PASSWORD or None,
            creds=credentials_from_settings(settings.IDDS_RUCIO_AUTH_TYPE),
            ca_cert=settings.IDDS_RUCIO_CA_CERT or None,
            tape_expression=settings.IDDS_RUCIO_TAPE_EXPRESSION,
            transfer_events=settings.IDDS_RUCIO_EVENTS,
        )

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The authenticated client, built on first use (call it inside ``_calling``)."""
        if self._client is None:
            self._client = Client(
                rucio_host=self.rucio_host,
                auth_host=self.auth_host,
                account=self.account,
                auth_type=self.auth_type,
                creds=dict(self.creds),
                ca_cert=self.ca_cert,
                timeout=self.timeout,
                logger=logger,
            )
        return self._client

    @contextmanager
    def _calling(self, action: str, *, not_found: str | None = None) -> Iterator[None]:
        """Run Rucio calls, turning their failures into Permanent/TransientError that say ``action``."""
        try:
            yield
        except NOT_FOUND_ERRORS as error:
            raise PermanentError(f"{not_found or action}: {_reason(error)}") from error
        except PERMANENT_RUCIO_ERRORS as error:
            raise PermanentError(f"Rucio refused {action}: {_reason(error)}") from error
        except rucio_errors.RucioException as error:
            if any(cause in str(error) for cause in BAD_INPUT_DETAILS):
                raise PermanentError(f"Rucio refused {action}: {_reason(error)}") from error
            raise TransientError(f"Rucio failed {action} (will retry): {_reason(error)}") from error
        except (requests.RequestException, OSError) as error:
            raise TransientError(f"Rucio failed {action} (will retry): {_reason(error)}") from error

    # -- datasets -------------------------------------------------------------------------------

    def list_files(self, scope: str, name: str) -> list[DatasetFile]:
        """Every file of a dataset or container, in Rucio's order (one streamed request)."""
        with self._calling(f"listing the files of {scope}:{name}", not_found=f"dataset {scope}:{name} not found"):
            return [
                DatasetFile(
                    scope=row["scope"], name=row["name"], bytes=int(row["bytes"] or 0), adler32=row["adler32"] or ""
                )
                for row in self.client.list_files(scope, name)
            ]

    def get_dataset_metadata(self, scope: str, name: str) -> dict[str, Any]:
        """Rucio's metadata of a DID (``did_type``, ``bytes``, ``length``, ``is_open``, ...), dates made aware."""
        with self._calling(f"reading the metadata of {scope}:{name}", not_found=f"dataset {scope}:{name} not found"):
            meta = self.client.get_metadata(scope, name)
        return {key: _aware(value) or value for key, value in meta.items()}

    # -- rules ----------------------------------------------------------------------------------

    def create_rule(self, rule: RuleRequest) -> list[str]:
        """Create one rule per DID, or adopt the account's live rules with the same DID, RSE
        expression and (non-empty) ``comments``, so a submit repeated after a crash stages nothing twice.

        A rule this service deleted (soft-deleted, still there for an hour) is revived; a re-stage of
        files that already have a rule to the same RSE expression varies the expression (see the module doc).
        """
        wanted = list(rule.dids)
        with self._calling(f"creating a rule to {rule.rse_expression} for {len(wanted)} DID(s)"):
            self._check_source_expression(rule.source_replica_expression)
            existing = self._rules_with_comment(rule) if rule.comment else {}
            missing = [did for did in wanted if did not in existing]
            created = self._add_rules(rule, missing) if missing else {}
        if existing:
            logger.info("adopted %d existing Rucio rule(s) tagged %r", len(existing), rule.comment)
        return [existing.get(did) or created[did] for did in wanted]

    def _add_rules(self, rule: RuleRequest, dids: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """(scope, name) -> new rule id; on DuplicateRule, revive our deleted rule or vary the expression."""
        expression = rule.rse_expression
        for _ in range(MAX_EXPRESSION_VARIANTS):
            try:
                rule_ids = self.client.add_replication_rule(
                    dids=[{"scope": scope, "name": name} for scope, name in dids],
                    copies=rule.copies,
                    rse_expression=expression,
                    source_replica_expression=rule.source_replica_expression,
                    lifetime=rule.lifetime,
                    grouping=rule.grouping,
                    activity=rule.activity,
                    comment=rule.comment or None,
                    account=self.account,
                )
                # Rucio creates the rules in the order of the DIDs it was given.
                return dict(zip(dids, rule_ids, strict=True))
            except rucio_errors.DuplicateRule:
                if len(dids) == 1:
                    return {dids[0]: self._revive(rule, dids[0])}
                # Several file DIDs (a re-stage): the same RSEs under a new key.
                expression = f"({expression})"
        raise PermanentError(
            f"Rucio refused creating a rule to {rule.rse_expression}: rules to {MAX_EXPRESSION_VARIANTS} variants "
            "of this RSE expression exist already for these files"
        )

    def _revive(self, rule: RuleRequest, did: tuple[str, str]) -> str:
        """The rule that holds this DID's unique key: ours (same comment) is adopted; ours deleted
        within the hour is revived (lifetime, source and comment of the new request); anyone else's
        is a refusal naming it."""
        holder = next(
            (
                row
                for row in self.client.list_did_rules(*did)
                if row.get("account") == self.account
                and row.get("rse_expression") == rule.rse_expression
                and int(row.get("copies") or 1) == rule.copies
            ),
            None,
        )
        if holder is None:
            raise PermanentError(f"Rucio refused a rule for {did[0]}:{did[1]} as a duplicate, but lists no such rule")
        if rule.comment and holder.get("comments") == rule.comment:
            # Our own rule, committed while we were not looking (a create that timed out and was retried).
            return holder["id"]
        if not (holder.get("comments") or "").startswith(DELETED_MARK):
            raise PermanentError(
                f"Rucio rule {holder['id']} of account {self.account} already stages {did[0]}:{did[1]} to "
                f"{rule.rse_expression} (comment {holder.get('comments')!r}); give its id as rule_id to adopt it"
            )
        options: dict[str, Any] = {"lifetime": rule.lifetime, "comment": rule.comment or None}
        if rule.source_replica_expression:
            options["source_replica_expression"] = rule.source_replica_expression
        self.client.update_replication_rule(holder["id"], options)
        logger.info("revived deleted Rucio rule %s for %s:%s", holder["id"], *did)
        return holder["id"]

    def _check_source_expression(self, expression: str | None) -> None:
        """Rucio answers a source expression that selects no RSE with a bare 500: ask it first."""
        if not expression or expression in self._good_expressions:
            return
        try:
            if not list(self.client.list_rses(expression)):
                raise rucio_errors.InvalidRSEExpression("RSE Expression resulted in an empty set.")
        except rucio_errors.InvalidRSEExpression as error:
            raise PermanentError(
                f"source_replica_expression {expression!r} is invalid: it selects no Rucio RSE ({_reason(error)})"
            ) from error
        self._good_expressions.add(expression)

    def _rules_with_comment(self, rule: RuleRequest) -> dict[tuple[str, str], str]:
        """(scope, name) -> id of this account's live rules that match ``rule``'s DIDs, RSE expression and
        ``comments`` (Rucio's name of the field; a re-stage variant's extra parentheses do not count)."""
        if len(rule.dids) == 1:
            # The usual dataset rule: Rucio lists a DID's rules from an index on (scope, name).
            rows = self.client.list_did_rules(*rule.dids[0])
        else:
            # Many file DIDs (a re-stage): one filtered listing instead of one request per file. Every
            # filter key is a column: "comments" works, "comment" is a server error.
            rows = self.client.list_replication_rules(filters={"account": self.account, "comments": rule.comment})
        wanted = set(rule.dids)
        expression = _unwrapped(rule.rse_expression)
        return {
            (row["scope"], row["name"]): row["id"]
            for row in rows
            if (row["scope"], row["name"]) in wanted
            and row.get("comments") == rule.comment
            and _unwrapped(row.get("rse_expression") or "") == expression
            and row.get("account") == self.account
        }

    def _rule_row(self, rule_id: str) -> dict[str, Any]:
        _check_rule_id(rule_id)
        with self._calling(f"reading rule {rule_id}", not_found=f"Rucio rule {rule_id} not found"):
            return self.client.get_replication_rule(rule_id)

    def get_rule(self, rule_id: str) -> RuleInfo:
        """State and lock counts of a rule (PermanentError when it does not exist)."""
        return self._rule_info(self._rule_row(rule_id))

    def adopt_rule(self, rule_id: str, *, scope: str, name: str) -> RuleInfo:
        """Check that an existing rule (given by the requester) stages dataset ``scope:name``, and return it."""
        row = self._rule_row(rule_id)
        if (row["scope"], row["name"]) != (scope, name):
            raise PermanentError(f"Rucio rule {rule_id} is for {row['scope']}:{row['name']}, not for {scope}:{name}")
        return self._rule_info(row)

    @staticmethod
    def _rule_info(row: dict[str, Any]) -> RuleInfo:
        return RuleInfo(
            rule_id=row["id"],
            state=row["state"],
            locks_ok_cnt=row.get("locks_ok_cnt") or 0,
            locks_replicating_cnt=row.get("locks_replicating_cnt") or 0,
            locks_stuck_cnt=row.get("locks_stuck_cnt") or 0,
            expires_at=_aware(row.get("expires_at")),
            created_at=_aware(row.get("created_at")),
        )

    def list_locks(self, rule_id: str, *, since: datetime | None = None) -> Iterator[LockInfo]:
        """Every lock of the rule, streamed as Rucio sends it; ``since`` is ignored (Rucio has no such filter).

        Rucio lists no locks for an unknown rule, and none yet for a rule in INJECT: an empty listing
        is checked against the rule (PermanentError when it is gone). Stuck locks get their source
        from the rule analysis. A generator: a failure in the middle of the stream raises from the
        caller's loop.
        """
        _check_rule_id(rule_id)
        stuck: list[LockInfo] = []
        listed = 0
        with self._calling(f"listing the locks of rule {rule_id}", not_found=f"Rucio rule {rule_id} not found"):
            for row in self.client.list_replica_locks(rule_id):
                listed += 1
                lock = LockInfo(scope=row["scope"], name=row["name"], state=row["state"], rse=row.get("rse") or "")
                if lock.state == "STUCK":
                    stuck.append(lock)
                else:
                    yield lock
        if not listed:
            self.get_rule(rule_id)
        if stuck:
            sources = self.failed_sources(rule_id)
            for lock in stuck:
                lock.source = sources.get((lock.scope, lock.name), "")
            yield from stuck

    def failed_sources(self, rule_id: str) -> dict[tuple[str, str], str]:
        """(scope, name) -> the RSE the last failed transfer of each stuck file read from, from
        Rucio's rule analysis (``GET /rules/{id}/analysis``, built from the request history)."""
        with self._calling(f"analysing rule {rule_id}", not_found=f"Rucio rule {rule_id} not found"):
            analysis = self.client.examine_replication_rule(rule_id)
        return {
            (row["scope"], row["name"]): row["last_source"]
            for row in analysis.get("transfers") or []
            if row.get("last_source")
        }

    def delete_rule(self, rule_id: str) -> None:
        """Delete the rule; a rule already gone is fine (abort may run twice).

        Rucio only shortens the rule's lifetime to an hour: the comment is marked first, so that a
        resubmission of the same rule within that hour revives it instead of failing with DuplicateRule.
        """
        _check_rule_id(rule_id)
        with self._calling(f"deleting rule {rule_id}"):
            try:
                comment = self.client.get_replication_rule(rule_id).get("comments") or ""
                if not comment.startswith(DELETED_MARK):
                    self.client.update_replication_rule(rule_id, {"comment": f"{DELETED_MARK}{comment}"[:255]})
                self.client.delete_replication_rule(rule_id)
            except rucio_errors.RuleNotFound:
                logger.info("Rucio rule %s was already gone", rule_id)

    def restage(
        self,
        *,
        rule_id: str,
        files: Sequence[tuple[str, str]],
        avoid_source: str | None = None,
        lifetime: int | None = None,
        comment: str = "",
    ) -> list[str]:
        """New rules on the stuck ``files`` of ``rule_id``: same destination, read from any tape but
        ``avoid_source`` (default: the source the rule analysis says the files failed from). One rule
        per file, as Rucio does for a list of DIDs.
        """
        if not files:
            return []
        original = self._rule_row(rule_id)
        if avoid_source is None:
            failed = self.failed_sources(rule_id)
            avoid_source = next((failed[f] for f in files if f in failed), None)
        request = self.restage_request(
            files=files,
            rse_expression=original["rse_expression"],
            avoid_source=avoid_source,
            copies=original.get("copies") or 1,
            activity=original.get("activity") or "Staging",
            lifetime=lifetime,
            comment=comment,
        )
        return self.create_rule(request)

    def restage_sources(self, avoid_source: str | None) -> str | None:
        """Rucio re-stages from the other tape RSEs: ``<tape expression>\\<bad source>``."""
        return restage_source_expression(avoid_source, tape_expression=self.tape_expression)


def _check_rule_id(rule_id: str) -> None:
    """Refuse what Rucio would answer with a 500 ("Badly formatted rule id") or a database error."""
    if not RULE_ID.match(rule_id or ""):
        raise PermanentError(f"Rucio rule id {rule_id!r} is malformed: Rucio rule ids are 32 hexadecimal digits")
