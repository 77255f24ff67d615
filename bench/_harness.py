"""Shared plumbing of the benchmarks: a PostgreSQL database and Redis db of their own, and the
service's processes (gunicorn, Celery worker, beat) started and stopped by the benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import redis

from tools.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def bench_env(name: str, redis_db: int, **extra: str) -> dict[str, str]:
    """Environment of a benchmark: its own database ``idds_bench_<name>`` and Redis db."""
    env = {
        **os.environ,
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/idds_bench_{name}"),
        "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    env.pop("CELERY_BROKER_URL", None)
    return env


def reset_database(env: dict[str, str]) -> None:
    """Drop and re-create the benchmark database, migrate it, and empty its Redis db."""
    name = env["DATABASE_URL"].rsplit("/", 1)[1]
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)


class Service:
    """gunicorn + Celery worker (+ beat) for the length of a ``with`` block."""

    def __init__(
        self, env: dict[str, str], *, web: bool = True, beat: bool = True, concurrency: int = 2, queues: str = ""
    ):
        self.env = env
        self.web = web
        self.beat = beat
        self.concurrency = concurrency
        self.queues = queues
        self.port = free_port()
        self.children: list[subprocess.Popen] = []
        self.log_dir = ROOT / "var" / "bench"
        self.log_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the child
        child = subprocess.Popen(
            [PYTHON, *args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.children.append(child)
        return child

    def __enter__(self) -> Service:
        # BENCH_WORKER_LOG=INFO logs every task's receipt and run time to var/bench/worker.log.
        log_level = os.environ.get("BENCH_WORKER_LOG", "WARNING")
        worker = ["-m", "celery", "-A", "idds_site", "worker", "-l", log_level, "-c", str(self.concurrency)]
        if self.queues:
            worker += ["-Q", self.queues]
        self.worker = self._start("worker", *worker)
        if self.beat:
            schedule = self.log_dir / "celerybeat-schedule"
            self._start("beat", "-m", "celery", "-A", "idds_site", "beat", "-l", "WARNING", "-s", str(schedule))
        if self.web:
            self._start(
                "web",
                "-m",
                "gunicorn",
                "idds_site.wsgi",
                "-b",
                f"127.0.0.1:{self.port}",
                "-w",
                "2",
                "--threads",
                "4",
                "--timeout",
                "60",
            )
            deadline = time.monotonic() + 60
            while True:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start; see var/bench/web.log")
                time.sleep(0.2)
        return self

    def __exit__(self, *exc_info) -> None:
        for child in self.children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)


def issue_token(env: dict[str, str], username: str = "bench") -> str:
    output = subprocess.run(
        [PYTHON, "manage.py", "issue_token", username, "--staff"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return output.strip().splitlines()[-1]


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def wait_until_settled(*, timeout: float, messages: bool = True, what: str = "the requests") -> None:
    """Block until every request has ended (and, with ``messages``, every message is delivered);
    exit the benchmark with a clear message after ``timeout`` seconds. Needs django.setup()."""
    from requests_app.models import Message, Request
    from requests_app.models.statuses import REQUEST_TERMINAL, MessageStatus

    deadline = time.monotonic() + timeout
    while Request.objects.exclude(status__in=REQUEST_TERMINAL).exists() or (
        messages and Message.objects.exclude(status=MessageStatus.DELIVERED).exists()
    ):
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what} to finish")
        time.sleep(0.2)
