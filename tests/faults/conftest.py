"""The fault suite's world: servers of its own, the service under its supervisor, a real consumer.

Nothing here touches the machine's shared servers: the suite starts its own PostgreSQL cluster,
its own Redis (the Celery broker, without persistence, as the shared set-up runs it: a restart
loses every queued task) and its own ActiveMQ, and restarts those. The service runs exactly as
the README says (``python3 tools/bootstrap.py serve``: web, worker and beat under the
supervisor), on the simulated tape (``IDDS_TAPE_TIME_SCALE=0``), announcing over STOMP to the
reference consumer (``python -m tools.consumer``) in a process of its own.

``IDDS_FAULT_FILES`` sets the campaign size: small by default so the suite fits in CI,
``make faults`` runs 50,000 files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tools.brokers import ActiveMQBroker
from tools.servers import PostgresCluster, RedisServer, command_line, free_port, process_tree

ROOT = Path(__file__).resolve().parents[2]
FAULT_FILES = int(os.environ.get("IDDS_FAULT_FILES", "5000"))
# The service's claim lease (IDDS_CLAIM_SECONDS, 300 s by default). A task that claimed a
# processing just before PostgreSQL went away and was retried finds its own claim and leaves
# the row alone ("not claimable"), so the row waits for the claim to expire: the suite runs with a
# shorter lease so that wait stays well inside its bound.
CLAIM_SECONDS = 60
FIGURES: list[dict[str, Any]] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures per fault, after the run (they are also appended to var/faults/figures.jsonl)."""
    if not FIGURES:
        return
    terminalreporter.section("fault suite figures")
    for figures in FIGURES:
        terminalreporter.write_line(json.dumps(figures))


def record_figures(figures: dict[str, Any]) -> None:
    FIGURES.append(figures)
    out = ROOT / "var" / "faults"
    out.mkdir(parents=True, exist_ok=True)
    with (out / "figures.jsonl").open("a") as sink:
        sink.write(json.dumps(figures) + "\n")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    # Not under pytest's tmp_path: its parents are private to root, and the cluster runs as postgres.
    directory = Path(tempfile.mkdtemp(prefix="idds-faults-pg-"))
    cluster = PostgresCluster(directory)
    cluster.start()
    yield cluster
    cluster.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated_template(postgres_cluster: PostgresCluster) -> str:
    """A database migrated once; each test's database is a copy of it (seconds instead of a migrate)."""
    name = "faults_template"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "idds_site.settings", "DATABASE_URL": postgres_cluster.url(name)}
    _admin_sql(postgres_cluster, f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    return name


def _admin_sql(cluster: PostgresCluster, sql: str) -> None:
    admin = psycopg2.connect(cluster.url("postgres"))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(sql)
    admin.close()


@pytest.fixture(scope="session")
def broker_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("faults-redis"), persistent=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stomp_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActiveMQBroker]:
    broker = ActiveMQBroker(free_port(), tmp_path_factory.mktemp("faults-activemq"))
    broker.start()
    yield broker
    broker.stop()


class Database:
    """Plain SQL on the service's database (the test process keeps its own Django settings)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        # A fresh connection per query: the server may have been restarted since the last one.
        connection = psycopg2.connect(self.url, connect_timeout=5)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        finally:
            connection.close()

    def value(self, sql: str, params: tuple = ()) -> Any:
        return self.rows(sql, params)[0][0]


@dataclass
class Service:
    """``tools/bootstrap.py serve`` (web + worker + beat under the supervisor) on private servers."""

    env: dict[str, str]
    var_dir: Path
    process: subprocess.Popen | None = None
    children: list[int] = field(default_factory=list)

    def start(self) -> None:
        log = (self.var_dir / "serve.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "tools/bootstrap.py", "serve"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def worker_pids(self) -> list[int]:
        """The Celery worker's main process(es): the supervisor's children running ``celery worker``."""
        assert self.process is not None
        return [
            pid
            for pid in process_tree(self.process.pid)
            if _parent(pid) == self.process.pid and {"celery", "worker"} <= set(command_line(pid))
        ]

    def log_text(self, name: str) -> str:
        path = self.var_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the session (a pool process orphaned by kill -9, say) goes too.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


@dataclass
class Consumer:
    """The reference consumer as its own process, on a durable subscription, recording to JSONL."""

    process: subprocess.Popen
    jsonl: Path
    summary: dict[str, Any] | None = None

    def messages(self) -> list[dict[str, Any]]:
        if not self.jsonl.exists():
            return []
        return [json.loads(line) for line in self.jsonl.read_text().splitlines() if line.strip()]

    def files_announced(self) -> list[str]:
        """``scope:name`` of every file in every file message, repeats by message id already dropped."""
        return [
            f"{item['scope']}:{item['name']}"
            for message in self.messages()
            if message["msg_type"] == "file_stagein"
            for item in message["body"].get("files") or []
        ]

    def stop(self) -> dict[str, Any]:
        if self.summary is None:
            self.process.send_signal(signal.SIGTERM)
            output, _ = self.process.communicate(timeout=60)
            self.summary = json.loads(output.strip().splitlines()[-1])
        return self.summary


@dataclass
class World:
    """Everything one fault test needs: the servers, the database, the service and the consumer."""

    postgres: PostgresCluster
    redis: RedisServer
    stomp: ActiveMQBroker
    db: Database
    service: Service
    consumer: Consumer
    env: dict[str, str]

    def state(self) -> dict[str, Any]:
        """Where the work stands (for failure messages): rows per status, files announced."""
        tables = ("request", "transform", "processing", "message")
        state: dict[str, Any] = {
            table: dict(self.db.rows(f"SELECT status, count(*) FROM requests_app_{table} GROUP BY status"))
            for table in tables
        }
        state["files_announced"] = len(set(self.consumer.files_announced()))
        return state

    def submit_campaign(self, files: int) -> int:
        """Submit the reference campaign scaled to ``files``; return its exact file count."""
        command = [sys.executable, "manage.py", "carousel_campaign", "--preset", "reference"]
        command += ["--files", str(files), "--campaign", "faults", "--no-wait"]
        subprocess.run(command, cwd=ROOT, env=self.env, check=True, capture_output=True)
        return self.db.value("SELECT COALESCE(SUM(total_files), 0) FROM carousel_simdataset")


@pytest.fixture
def world(
    postgres_cluster: PostgresCluster,
    migrated_template: str,
    broker_redis: RedisServer,
    stomp_broker: ActiveMQBroker,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[World]:
    """A fresh database and broker db, the service started and ready, and a consumer subscribed."""
    # A previous test may have left a server stopped by failing half-way.
    postgres_cluster.start()
    broker_redis.start()
    stomp_broker.start()
    name = f"faults_{uuid.uuid4().hex[:8]}"
    _admin_sql(postgres_cluster, f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    redis_url = broker_redis.url_for(0)
    subprocess.run(["redis-cli", "-p", str(broker_redis.port), "FLUSHALL"], check=True, capture_output=True)
    destination = f"/topic/idds.faults.{uuid.uuid4().hex[:8]}"
    # Logs kept under the checkout's var/ (pytest's temporary directories are pruned), one
    # directory per test, replaced by the next run.
    var_dir = ROOT / "var" / "faults" / request.node.name
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "idds_site.settings",
        "DATABASE_URL": postgres_cluster.url(name),
        "REDIS_URL": redis_url,
        "IDDS_VAR_DIR": str(var_dir),
        "IDDS_TAPE_TIME_SCALE": "0",
        "IDDS_CLAIM_SECONDS": str(CLAIM_SECONDS),
        "IDDS_MESSAGE_SINKS": "stomp",
        "IDDS_STOMP_HOSTS": stomp_broker.host_and_port,
        "IDDS_STOMP_DESTINATION": destination,
        "PORT": str(free_port()),
        "LOG_LEVEL": "WARNING",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    for inherited in ("CELERY_BROKER_URL", "IDDS_STREAM_REDIS_URL"):
        env.pop(inherited, None)

    jsonl = tmp_path / "consumer.jsonl"
    with (tmp_path / "consumer.err").open("wb") as consumer_errors:
        consumer_process = subprocess.Popen(
            [sys.executable, "-m", "tools.consumer", "--stomp", stomp_broker.host_and_port]
            + ["--destination", destination, "--durable", f"faults-{uuid.uuid4().hex[:8]}"]
            + ["--jsonl", str(jsonl), "--quiet"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=consumer_errors,
            text=True,
        )
    consumer = Consumer(consumer_process, jsonl)
    service = Service(env, var_dir)
    service.start()
    world = World(postgres_cluster, broker_redis, stomp_broker, Database(env["DATABASE_URL"]), service, consumer, env)
    wait_until(lambda: "ready." in service.log_text("worker"), timeout=180, what="the Celery worker ready")
    wait_until(lambda: service.log_text("beat") != "", timeout=60, what="beat started")
    yield world
    service.stop()
    if consumer.summary is None and consumer.process.poll() is None:
        consumer.process.kill()
        consumer.process.wait()


def wait_until(predicate: Any, *, timeout: float, what: str, interval: float = 0.2) -> float:
    """Poll ``predicate`` until truthy; return when it became so (monotonic clock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
