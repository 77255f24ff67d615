"""The real ``idds-client`` (2.6.21) against a live server: ``Client`` and ``ClientManager`` with a service token."""

from __future__ import annotations

import pytest
from idds.client.client import Client
from idds.client.clientmanager import ClientManager

from requests_app.auth.tokens import token_issue
from requests_app.errors import ApplicationError
from requests_app.models import Request
from requests_app.models.statuses import REQUEST_TERMINAL
from requests_app.services.requests import request_abort
from tests.carousel.conftest import tape_catalogue  # noqa: F401 - the fixture is used here too
from tests.conftest import wait_for

#: What the client calls its VO; the service reads no VO (one user namespace).
VO = "atlas"


@pytest.fixture(autouse=True)
def _quiet_worker_after_test(request):
    """End every request a test left running, so the worker is idle when the database is flushed
    (a TRUNCATE racing a worker's query deadlocks)."""
    yield
    if "celery_worker" not in request.fixturenames:
        return
    for live in Request.objects.exclude(status__in=REQUEST_TERMINAL):
        try:
            request_abort(request=live, actor="test teardown")
        except ApplicationError:
            pass  # it ended meanwhile
    wait_for(
        lambda: not Request.objects.exclude(status__in=REQUEST_TERMINAL).exists(),
        timeout=60,
        what="every request ended",
    )


def wire_host(live_server) -> str:
    # The client's host setting includes the /idds prefix (docs/idds-reference.md §4).
    return f"{live_server.url}/idds"


def client_for(live_server, key: str) -> Client:
    return Client(host=wire_host(live_server), auth={"auth_type": "oidc", "oidc_token": key, "vo": VO}, timeout=30)


@pytest.fixture
def idds(live_server, user) -> Client:
    """``Client`` of the test user (alice), authenticated with a token from ``token_issue``."""
    return client_for(live_server, token_issue(user=user).key)


@pytest.fixture
def other_idds(live_server, other_user) -> Client:
    return client_for(live_server, token_issue(user=other_user).key)


@pytest.fixture
def manager(live_server, user, tmp_path, monkeypatch) -> ClientManager:
    """``ClientManager`` as users run it, configured by the client's own environment variables."""
    monkeypatch.setenv("IDDS_LOCAL_CONFIG_ROOT", str(tmp_path))
    monkeypatch.setenv("IDDS_HOST", wire_host(live_server))
    monkeypatch.setenv("IDDS_AUTH_TYPE", "oidc")
    monkeypatch.setenv("IDDS_OIDC_TOKEN", token_issue(user=user).key)
    monkeypatch.setenv("IDDS_VO", VO)
    return ClientManager(host=wire_host(live_server))


def panda_stagein(scope: str, name: str, workload_id: int = 123456790, **metadata) -> dict:
    """A stage-in request exactly as PanDA builds it (docs/idds-reference.md §3)."""
    return {
        "scope": scope,
        "name": name,
        "requester": "panda",
        "request_type": 2,
        "transform_tag": 2,
        "status": 0,
        "priority": 0,
        "lifetime": 30,
        "request_metadata": {"workload_id": workload_id, "dest_rse": "SIM_DATADISK", **metadata},
    }


def panda_hpo(workload_id: int = 123456789, **metadata) -> dict:
    """An HPO request as PanDA builds it (docs/idds-reference.md §3)."""
    return {
        "requester": "panda",
        "request_type": 4,
        "transform_tag": 4,
        "status": 0,
        "priority": 0,
        "lifetime": 30,
        "request_metadata": {
            "workload_id": workload_id,
            "is_pseudo_input": True,
            "method": "random",
            "opt_space": {"lr": [0.0001, 0.1], "dropout": [0.0, 0.5]},
            "initial_points": [[{"lr": 0.01, "dropout": 0.1}, 0.3]],
            "max_points": 6,
            "num_points_per_generation": 2,
            **metadata,
        },
    }
