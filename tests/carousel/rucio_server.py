"""A real Rucio server (PyPI ``rucio``, the client's release) for the tests, and its test transfer tool.

``real_rucio`` (session scope) creates the server's virtual environment when missing, a fresh
PostgreSQL database ``<test database>_rucio``, starts gunicorn on a free port and the transfer tool
(tools/rucio_tool.py), and sets up through the real client what a deployment has: an ``idds``
service account (userpass, ``admin`` attribute: the generic policy lets only admins delete or
update rules), two tape RSEs and a disk RSE (``rse_type``, ``istape``, a protocol, account limits)
and a scope. Each test adds its own datasets (unique names), so tests share the server.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rucio.client import Client

from carousel.backends.rucio import RucioBackend
from tests.conftest import wait_for
from tools.rucio_server import RucioServer, ensure_rucio_venv, stop_process

SCOPE = "data15_13tev"
CERN_TAPE = "CERN-PROD_DATATAPE"
BNL_TAPE = "BNL-OSG2_DATATAPE"
DISK = "CERN-PROD_DATADISK"
OTHER_DISK = "BNL-OSG2_DATADISK"
ACCOUNT, PASSWORD = "idds", "secret"
# Simulated tape seconds per real second: a 20-file dataset lands in about two real seconds.
TEST_TIME_SCALE = 600.0
FILE_BYTES = 4_000_000_000
CHUNK = 1000
_names = itertools.count(1)


def _protocol(rse: str) -> dict[str, Any]:
    return {
        "scheme": "root",
        "hostname": f"{rse.lower()}.example.org",
        "port": 1094,
        "prefix": f"/{rse.lower()}/",
        "impl": "rucio.rse.protocols.xrootd.Default",
        "domains": {
            "lan": {"read": 1, "write": 1, "delete": 1},
            "wan": {"read": 1, "write": 1, "delete": 1, "third_party_copy_read": 1, "third_party_copy_write": 1},
        },
    }


@dataclass
class RealRucio:
    """The running server, an admin client, and the transfer tool's control and event files."""

    server: RucioServer
    root: Client
    control_path: Path
    events_path: Path
    control: dict[str, Any] = field(
        default_factory=lambda: {"fail": {}, "recover_after": {}, "skip": [], "source_order": [CERN_TAPE, BNL_TAPE]}
    )

    @property
    def url(self) -> str:
        return self.server.url

    def backend(self, **overrides: Any) -> RucioBackend:
        fields = {"rucio_host": self.url, "account": ACCOUNT, "username": ACCOUNT, "password": PASSWORD}
        return RucioBackend(**{**fields, **overrides})

    def client(self) -> Client:
        return Client(
            rucio_host=self.url,
            auth_host=self.url,
            account=ACCOUNT,
            auth_type="userpass",
            creds={"username": ACCOUNT, "password": PASSWORD},
        )

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
        self.root.add_dataset(SCOPE, name)
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            for rse in replicas:
                self.root.add_replicas(rse, chunk)
            self.root.attach_dids(SCOPE, name, [{"scope": SCOPE, "name": row["name"]} for row in chunk])
        self.root.close(SCOPE, name)
        return name, rows

    # -- the transfer tool --------------------------------------------------------------------------

    def _write_control(self) -> None:
        staging = self.control_path.with_suffix(".tmp")
        staging.write_text(json.dumps(self.control))
        os.replace(staging, self.control_path)

    def fail(self, file_name: str, source: str) -> None:
        """Transfers of ``file_name`` from ``source`` fail (the lock turns STUCK)."""
        self.control["fail"].setdefault(file_name, []).append(source)
        self._write_control()

    def recover(self, file_name: str, after_seconds: float) -> None:
        """A failed ``file_name`` lands after all, ``after_seconds`` simulated seconds after failing."""
        self.control["recover_after"][file_name] = after_seconds
        self._write_control()

    def hold_injection(self, held: bool) -> None:
        """While held, rules in INJECT stay there (no judge-injector)."""
        self.control["inject"] = not held
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


def _set_up_deployment(root: Client) -> None:
    root.add_account(ACCOUNT, "SERVICE", "idds@example.org")
    root.add_identity(ACCOUNT, ACCOUNT, "USERPASS", "idds@example.org", password=PASSWORD)
    root.add_account_attribute(ACCOUNT, "admin", "True")
    for rse, tape in ((CERN_TAPE, True), (BNL_TAPE, True), (DISK, False), (OTHER_DISK, False)):
        root.add_rse(rse, rse_type="TAPE" if tape else "DISK", deterministic=True)
        root.add_rse_attribute(rse, "istape", tape)
        root.add_protocol(rse, _protocol(rse))
        root.set_local_account_limit(ACCOUNT, rse, 10**18)
    root.add_scope("root", SCOPE)


def _rucio_database() -> str:
    project = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/idds").rsplit("/", 1)[1]
    return f"{project}_rucio"


@pytest.fixture(scope="session", name="real_rucio")
def real_rucio_server(tmp_path_factory) -> Iterator[RealRucio]:
    ensure_rucio_venv()
    directory = tmp_path_factory.mktemp("rucio-server")
    postgres_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/idds")
    server = RucioServer(directory, database=_rucio_database(), postgres_url=postgres_url)
    server.bootstrap()
    with server:
        root = Client(
            rucio_host=server.url,
            auth_host=server.url,
            account="root",
            auth_type="userpass",
            creds={"username": "root", "password": "secret"},
        )
        _set_up_deployment(root)
        rucio = RealRucio(server, root, directory / "control.json", directory / "events.jsonl")
        rucio._write_control()
        tool = server.start_transfer_tool(
            control=rucio.control_path, events=rucio.events_path, scale=TEST_TIME_SCALE, drives=1
        )
        try:
            yield rucio
        finally:
            stop_process(tool)
