"""Shared fixtures: API clients with tokens, and a real Celery worker on Redis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from celery.contrib.testing.worker import start_worker
from django.contrib.auth import get_user_model
from django.core.management.commands import flush
from django.db import OperationalError
from rest_framework.test import APIClient

from idds_site.celery import app as celery_app
from requests_app.auth.tokens import token_issue

FLUSH_TRIES = 5


@pytest.fixture(scope="session", autouse=True)
def flush_retried_on_deadlock() -> Iterator[None]:
    """The test worker may still be finishing a task (a roll-up, a poll, the conductor's last
    delivery) when a test's database is flushed; its row locks against the flush's TRUNCATE are a
    deadlock that PostgreSQL resolves by aborting the flush. The flush then simply runs again:
    the worker's transaction has committed by then, and TRUNCATE leaves nothing it wrote."""
    handle = flush.Command.handle

    def handle_retried(self, **options):
        for attempt in range(1, FLUSH_TRIES + 1):
            try:
                return handle(self, **options)
            except Exception as exc:  # noqa: BLE001 - Django wraps the deadlock in CommandError
                cause = exc.__cause__ or exc
                if attempt == FLUSH_TRIES or not isinstance(cause, OperationalError) or "deadlock" not in str(cause):
                    raise
                time.sleep(0.2 * attempt)
        return None

    flush.Command.handle = handle_retried
    yield
    flush.Command.handle = handle


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user(username="alice", password="pw-alice-123")


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user(username="bob", password="pw-bob-123")


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user(username="root", password="pw-root-123", is_staff=True)


def _client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_issue(user=user).key}")
    return client


@pytest.fixture
def api(user) -> APIClient:
    return _client_for(user)


@pytest.fixture
def other_api(other_user) -> APIClient:
    return _client_for(other_user)


@pytest.fixture
def staff_api(staff_user) -> APIClient:
    return _client_for(staff_user)


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()


@pytest.fixture(scope="session")
def celery_worker_session(django_db_setup, django_db_blocker) -> Iterator[object]:
    """One real Celery worker (solo pool, in a thread) consuming every declared queue on Redis."""
    celery_app.conf.task_always_eager = False
    with django_db_blocker.unblock():
        celery_app.control.purge()
        with start_worker(celery_app, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30) as worker:
            yield worker
        _end_other_sessions()


def _end_other_sessions() -> None:
    """End the stopped worker thread's database sessions, so the test database can be dropped.

    Workers keep their connections between tasks (CONN_MAX_AGE), and Django's connections are
    per thread: a finished thread's are never closed by anyone else.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def celery_worker(celery_worker_session, transactional_db) -> object:
    """A test that uses the worker runs in a committed (transactional) database."""
    celery_app.control.purge()
    return celery_worker_session


def wait_for(
    predicate: Callable[[], object], *, timeout: float = 60.0, interval: float = 0.1, what: str = ""
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` on time-out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


@pytest.fixture
def sandbox_dirs(settings, tmp_path):
    """Sandbox work and upload directories of this test only, and the default runtime (bubblewrap)."""
    settings.IDDS_SANDBOX_WORK_DIR = str(tmp_path / "work")
    settings.IDDS_SANDBOX_UPLOAD_DIR = str(tmp_path / "uploads")
    settings.IDDS_SANDBOX_RUNTIME = "bubblewrap"
    settings.IDDS_SANDBOX_BINARY = ""
    settings.IDDS_SANDBOX_ALLOW_HOST = False
    (tmp_path / "uploads").mkdir()
    return tmp_path
