"""Fixtures for the carousel tests: a small simulated tape catalogue and stage-in submission."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from carousel.tape.catalogue import DatasetSpec, TapeConfig, catalogue_create

# Registered here, once: a session fixture imported into two test modules is two fixtures, and two
# Rucio deployments on one database each drop the other's and run a transfer tool that completes
# the other's transfers without its failures (tests/carousel/rucio_server.py).
from tests.carousel.rucio_server import real_rucio_server  # noqa: F401 - the fixture

FILE_BYTES = 2_000_000_000


@pytest.fixture
def tape_catalogue(settings) -> Callable[..., list[DatasetSpec]]:
    """Create datasets ``sim:ds.<n>`` on a two-library simulated tape system; return their specs."""

    def create(*, datasets: int = 1, files: int = 20, stuck_fraction: float = 0.0, prefix: str = "ds", **config):
        specs = [DatasetSpec("sim", f"{prefix}.{n}", files, files * FILE_BYTES) for n in range(datasets)]
        tape = TapeConfig(**{"libraries": 2, "drives_per_library": 1, "stuck_fraction": stuck_fraction, **config})
        catalogue_create(specs, config=tape, seed=7)
        return specs

    return create


def stagein_body(spec: DatasetSpec, **metadata) -> dict:
    """The JSON a workload system posts for a stage-in request of ``spec``."""
    return {
        "request_type": 2,
        "scope": spec.scope,
        "name": spec.name,
        "requester": "panda",
        "request_metadata": {"workload_id": 4242, "dest_rse": "SIM_DATADISK", **metadata},
    }


@pytest.fixture
def submit_stagein(api) -> Callable[..., int]:
    """POST a stage-in request through the REST API and return its id."""

    def submit(spec: DatasetSpec, **metadata) -> int:
        response = api.post("/api/v1/requests/", stagein_body(spec, **metadata), format="json")
        assert response.status_code == 201, response.content
        return response.json()["request_id"]

    return submit
