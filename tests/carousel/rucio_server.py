"""A real Rucio server (PyPI ``rucio``, the client's release) for the tests, and its test transfer tool.

``real_rucio`` (session scope) runs a ``tools.rucio_deployment.RucioDeployment`` on a fresh
PostgreSQL database ``<test database>_rucio``: the server, the deployment set up through the real
client (service account ``idds``, two tape and two disk RSEs, a scope) and the transfer tool. Each
test adds its own datasets (unique names), so tests share the server.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rucio.client import Client

from carousel.backends.rucio import RucioBackend
from tests.conftest import wait_for
from tools.rucio_deployment import (
    ACCOUNT,
    BNL_TAPE,
    CERN_TAPE,
    DISK,
    OTHER_DISK,
    PASSWORD,
    RucioDeployment,
    client,
    register_dataset,
)

__all__ = ["BNL_TAPE", "CERN_TAPE", "DISK", "OTHER_DISK", "SCOPE", "RealRucio", "real_rucio_server"]

SCOPE = "data15_13tev"
# Simulated tape seconds per real second: a 20-file dataset lands in about two real seconds.
TEST_TIME_SCALE = 600.0
FILE_BYTES = 4_000_000_000
_names = itertools.count(1)


@dataclass
class RealRucio:
    """The running deployment, an admin client, and the transfer tool's control and event files."""

    deployment: RucioDeployment
    root: Client

    @property
    def url(self) -> str:
        return self.deployment.url

    @property
    def control(self) -> dict[str, Any]:
        return self.deployment.control

    @property
    def events_path(self) -> Path:
        return self.deployment.events_path

    def backend(self, **overrides: Any) -> RucioBackend:
        fields = {"rucio_host": self.url, "account": ACCOUNT, "username": ACCOUNT, "password": PASSWORD}
        return RucioBackend(**{**fields, **overrides})

    def client(self) -> Client:
        return client(self.url)

    def configure(self, settings: Any, *, staging: bool = True, **overrides: Any) -> None:
        """Point the Django settings at this server as the service account (``staging``: and stage
        through it, polling at least every second); ``overrides`` are more settings."""
        settings.IDDS_RUCIO_HOST = self.url
        settings.IDDS_RUCIO_AUTH_HOST = self.url
        settings.IDDS_RUCIO_ACCOUNT = ACCOUNT
        settings.IDDS_RUCIO_AUTH_TYPE = "userpass"
        settings.IDDS_RUCIO_USERNAME = ACCOUNT
        settings.IDDS_RUCIO_PASSWORD = PASSWORD
        if staging:
            settings.IDDS_STAGING_BACKEND = "rucio"
            settings.IDDS_POLL_MAX_SECONDS = 1.0
        for key, value in overrides.items():
            setattr(settings, key, value)

    # -- data -------------------------------------------------------------------------------------

    def add_dataset(
        self, *, files: int, replicas: tuple[str, ...] = (CERN_TAPE, BNL_TAPE), prefix: str = "physics_main"
    ) -> tuple[str, list[dict[str, Any]]]:
        """A closed dataset of ``files`` files with replicas on ``replicas``; returns (name, files)."""
        name = f"{SCOPE}.{next(_names):08d}.{prefix}.{uuid.uuid4().hex[:6]}.daq.raw"
        rows = [
            {"scope": SCOPE, "name": f"{name}._{n:06d}", "bytes": FILE_BYTES + n, "adler32": f"{n:08x}"}
            for n in range(1, files + 1)
        ]
        register_dataset(self.root, SCOPE, name, rows, replicas=replicas)
        return name, rows

    # -- the transfer tool --------------------------------------------------------------------------

    def _write_control(self) -> None:
        self.deployment.write_control()

    def fail(self, file_name: str, source: str) -> None:
        """Transfers of ``file_name`` from ``source`` fail (the lock turns STUCK)."""
        self.control["fail"].setdefault(file_name, []).append(source)
        self._write_control()

    def recover(self, file_name: str, after_seconds: float) -> None:
        """A failed ``file_name`` lands after all, ``after_seconds`` simulated seconds after failing."""
        self.control["recover_after"][file_name] = after_seconds
        self._write_control()

    def hold_injection(self, name: str) -> None:
        """Rules on the dataset ``name`` stay in INJECT (no judge-injector for them); other tests'
        rules are injected as before (the server is shared)."""
        self.control["hold"].append(name)
        self._write_control()

    def skip_dataset(self, name: str) -> None:
        """Transfers of this dataset's files stay QUEUED (for rules too big to transfer in a test)."""
        self.control["skip"].append(name)
        self._write_control()

    def events(self, names: set[str] | None = None) -> list[dict[str, Any]]:
        """The tool's completions so far, in order (only of ``names`` when given)."""
        if not self.events_path.exists():
            return []
        rows = [json.loads(line) for line in self.events_path.read_text().splitlines() if line]
        return [row for row in rows if names is None or row["name"] in names]

    def wait_rule(self, rule_id: str, *, state: str, timeout: float = 60) -> dict[str, Any]:
        return wait_for(
            lambda: (row := self.root.get_replication_rule(rule_id))["state"] == state and row,
            timeout=timeout,
            what=f"Rucio rule {rule_id} {state}",
        )


def _rucio_database() -> str:
    project = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/idds").rsplit("/", 1)[1]
    return f"{project}_rucio"


@pytest.fixture(scope="session", name="real_rucio")
def real_rucio_server(tmp_path_factory) -> Iterator[RealRucio]:
    deployment = RucioDeployment(
        tmp_path_factory.mktemp("rucio-server"),
        database=_rucio_database(),
        postgres_url=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/idds"),
        scopes=[SCOPE],
        scale=TEST_TIME_SCALE,
        drives=1,
    )
    with deployment:
        yield RealRucio(deployment, deployment.root)
