"""A real Rucio deployment for tests and benchmarks: the server (tools/rucio_server.py), what a
deployment sets up through the real client, and the test transfer tool, started and stopped together.

``RucioDeployment`` (a context manager) creates the server's virtual environment when missing, a
fresh PostgreSQL database, starts gunicorn on a free port, sets up through ``rucio.client`` what a
deployment has (an ``idds`` service account, userpass, ``admin`` attribute: the generic policy lets
only admins delete or update rules; two tape RSEs and two disk RSEs with ``rse_type``, ``istape``,
a protocol and account limits; scopes) and starts the transfer tool (tools/rucio_tool.py) with a
control file. The test fixture ``real_rucio`` (tests/carousel/rucio_server.py) and
``bench/carousel.py --backend rucio`` both use it.

Runs in the project's environment (``rucio-clients``); the server runs in its own.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rucio.client import Client

from tools.rucio_server import ROOT_PASSWORD, RucioServer, ensure_rucio_venv, stop_process

CERN_TAPE = "CERN-PROD_DATATAPE"
BNL_TAPE = "BNL-OSG2_DATATAPE"
DISK = "CERN-PROD_DATADISK"
OTHER_DISK = "BNL-OSG2_DATADISK"
TAPES = (CERN_TAPE, BNL_TAPE)
ACCOUNT, PASSWORD = "idds", "secret"
# Files registered per client call (Rucio's own tools register in chunks of this order).
CHUNK = 1000


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


def client(url: str, *, account: str = ACCOUNT, password: str = PASSWORD) -> Client:
    """A userpass client of ``account`` on the server at ``url`` (``root``'s password is the bootstrap's)."""
    return Client(
        rucio_host=url,
        auth_host=url,
        account=account,
        auth_type="userpass",
        creds={"username": account, "password": password},
    )


def set_up_deployment(root: Client, *, scopes: Iterable[str]) -> None:
    """What an operator sets up: the service account, tape and disk RSEs, limits, scopes."""
    root.add_account(ACCOUNT, "SERVICE", "idds@example.org")
    root.add_identity(ACCOUNT, ACCOUNT, "USERPASS", "idds@example.org", password=PASSWORD)
    root.add_account_attribute(ACCOUNT, "admin", "True")
    for rse, tape in ((CERN_TAPE, True), (BNL_TAPE, True), (DISK, False), (OTHER_DISK, False)):
        root.add_rse(rse, rse_type="TAPE" if tape else "DISK", deterministic=True)
        root.add_rse_attribute(rse, "istape", tape)
        root.add_protocol(rse, _protocol(rse))
        root.set_local_account_limit(ACCOUNT, rse, 10**18)
    for scope in scopes:
        root.add_scope("root", scope)


def register_dataset(
    root: Client, scope: str, name: str, files: Sequence[dict[str, Any]], *, replicas: Sequence[str]
) -> None:
    """A closed dataset of ``files`` (scope, name, bytes, adler32) with a replica of each on ``replicas``."""
    root.add_dataset(scope, name)
    for start in range(0, len(files), CHUNK):
        chunk = files[start : start + CHUNK]
        for rse in replicas:
            root.add_replicas(rse, chunk)
        root.attach_dids(scope, name, [{"scope": row["scope"], "name": row["name"]} for row in chunk])
    root.close(scope, name)


class RucioDeployment:
    """Server + deployment + transfer tool for the length of a ``with`` block.

    ``scale`` is the transfer tool's simulated seconds per real second (0: transfers end as soon
    as they are submitted); ``drives`` the drives per tape RSE.
    """

    def __init__(
        self,
        directory: Path,
        *,
        database: str,
        postgres_url: str,
        scopes: Iterable[str],
        scale: float = 0.0,
        drives: int = 2,
        access_log: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.server = RucioServer(self.directory, database=database, postgres_url=postgres_url, access_log=access_log)
        self.scopes = tuple(scopes)
        self.scale = scale
        self.drives = drives
        self.control_path = self.directory / "control.json"
        self.events_path = self.directory / "events.jsonl"
        self.control: dict[str, Any] = {
            "fail": {},
            "recover_after": {},
            "skip": [],
            "hold": [],
            "source_order": list(TAPES),
        }
        self.root: Client | None = None
        self.tool: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def write_control(self) -> None:
        """Replace the control file in one step (the tool re-reads it every step)."""
        staging = self.control_path.with_suffix(".tmp")
        staging.write_text(json.dumps(self.control))
        os.replace(staging, self.control_path)

    def start(self) -> RucioDeployment:
        ensure_rucio_venv()
        self.server.bootstrap()
        self.server.start()
        try:
            self.root = client(self.url, account="root", password=ROOT_PASSWORD)
            set_up_deployment(self.root, scopes=self.scopes)
            self.write_control()
            self.tool = self.server.start_transfer_tool(
                control=self.control_path, events=self.events_path, scale=self.scale, drives=self.drives
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.tool is not None:
            stop_process(self.tool)
            self.tool = None
        self.server.stop()

    def __enter__(self) -> RucioDeployment:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
