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
"""

from __future__ import annotations

import logging
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
# chunks, not the whole reply, so listing a 100,000-file dataset as a stream is not cut short.
DEFAULT_TIMEOUT = (5, 30)
# Rucio gives every tape RSE the attribute istape=True; the re-stage source is "any tape but the bad one".
DEFAULT_TAPE_EXPRESSION = "istape=True"


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
        self._client: Client | None = None

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
        except (rucio_errors.RucioException, requests.RequestException, OSError) as error:
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
        expression and (non-empty) comment, so a submit repeated after a crash stages nothing twice."""
        wanted = list(rule.dids)
        with self._calling(f"creating a rule to {rule.rse_expression} for {len(wanted)} DID(s)"):
            existing = self._rules_with_comment(rule) if rule.comment else {}
            missing = [did for did in wanted if did not in existing]
            created: dict[tuple[str, str], str] = {}
            if missing:
                rule_ids = self.client.add_replication_rule(
                    dids=[{"scope": scope, "name": name} for scope, name in missing],
                    copies=rule.copies,
                    rse_expression=rule.rse_expression,
                    source_replica_expression=rule.source_replica_expression,
                    lifetime=rule.lifetime,
                    grouping=rule.grouping,
                    activity=rule.activity,
                    comment=rule.comment or None,
                    account=self.account,
                )
                # Rucio creates the rules in the order of the DIDs it was given.
                created = dict(zip(missing, rule_ids, strict=True))
        if existing:
            logger.info("adopted %d existing Rucio rule(s) tagged %r", len(existing), rule.comment)
        return [existing.get(did) or created[did] for did in wanted]

    def _rules_with_comment(self, rule: RuleRequest) -> dict[tuple[str, str], str]:
        """(scope, name) -> id of this account's live rules that match ``rule``'s DIDs, RSE expression and comment."""
        if len(rule.dids) == 1:
            # The usual dataset rule: Rucio lists a DID's rules from an index on (scope, name).
            rows = self.client.list_did_rules(*rule.dids[0])
        else:
            # Many file DIDs (a re-stage): one filtered listing instead of one request per file.
            rows = self.client.list_replication_rules(filters={"account": self.account, "comment": rule.comment})
        wanted = set(rule.dids)
        return {
            (row["scope"], row["name"]): row["id"]
            for row in rows
            if (row["scope"], row["name"]) in wanted
            and row.get("comment") == rule.comment
            and row.get("rse_expression") == rule.rse_expression
            and row.get("account") == self.account
        }

    def get_rule(self, rule_id: str) -> RuleInfo:
        """State and lock counts of a rule (PermanentError when it does not exist)."""
        with self._calling(f"reading rule {rule_id}", not_found=f"Rucio rule {rule_id} not found"):
            row = self.client.get_replication_rule(rule_id)
        return self._rule_info(row)

    def adopt_rule(self, rule_id: str, *, scope: str, name: str) -> RuleInfo:
        """Check that an existing rule (given by the requester) stages dataset ``scope:name``, and return it."""
        with self._calling(f"reading rule {rule_id}", not_found=f"Rucio rule {rule_id} not found"):
            row = self.client.get_replication_rule(rule_id)
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
        )

    def list_locks(self, rule_id: str, *, since: datetime | None = None) -> Iterator[LockInfo]:
        """Every lock of the rule, streamed as Rucio sends it; ``since`` is ignored (Rucio has no such filter).

        A generator: a failure in the middle of the stream raises from the caller's loop.
        """
        with self._calling(f"listing the locks of rule {rule_id}", not_found=f"Rucio rule {rule_id} not found"):
            for row in self.client.list_replica_locks(rule_id):
                yield LockInfo(scope=row["scope"], name=row["name"], state=row["state"], rse=row.get("rse") or "")

    def delete_rule(self, rule_id: str) -> None:
        """Delete the rule; a rule already gone is fine (abort may run twice)."""
        with self._calling(f"deleting rule {rule_id}"):
            try:
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
        ``avoid_source`` (default: the original rule's source expression). One rule per file, as Rucio
        does for a list of DIDs. Delete the previous re-stage rules of the same files first, since
        Rucio refuses a second rule with the same DID, account and RSE expression (DuplicateRule).
        """
        if not files:
            return []
        with self._calling(f"reading rule {rule_id}", not_found=f"Rucio rule {rule_id} not found"):
            original = self.client.get_replication_rule(rule_id)
        bad_source = avoid_source or original.get("source_replica_expression")
        request = self.restage_request(
            files=files,
            rse_expression=original["rse_expression"],
            avoid_source=bad_source,
            copies=original.get("copies") or 1,
            activity=original.get("activity") or "Staging",
            lifetime=lifetime,
            comment=comment,
        )
        return self.create_rule(request)

    def restage_sources(self, avoid_source: str | None) -> str | None:
        """Rucio re-stages from the other tape RSEs: ``<tape expression>\\<bad source>``."""
        return restage_source_expression(avoid_source, tape_expression=self.tape_expression)
