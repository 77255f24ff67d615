"""A real Rucio server for tests and benchmarks: its virtual environment, config, database and process.

The server is PyPI ``rucio`` (the release of the ``rucio-clients`` the service uses) in a virtual
environment of its own, since it pins SQLAlchemy 2.0 and Flask. The environment is created once per
machine (``IDDS_RUCIO_SERVER_VENV``, default ``~/.cache/idds-rucio-server/rucio-<release>``) by
``ensure_rucio_venv`` (``tools/bootstrap.py test`` calls it). Each ``RucioServer`` has a directory
(its ``rucio.cfg``, ``alembic.ini`` and logs), a PostgreSQL database built from scratch, and a
gunicorn on a free port; ``start_transfer_tool`` runs tools/rucio_tool.py's transfer tool beside it.

Standard library only: the project's processes import this without Rucio's server packages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from tools.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
RUCIO_SERVER_RELEASE = "41.5.1"
RUCIO_SERVER_PACKAGES = (f"rucio=={RUCIO_SERVER_RELEASE}", "psycopg[binary]~=3.3", "gunicorn~=27.0")
DEFAULT_VENV = Path.home() / ".cache" / "idds-rucio-server" / f"rucio-{RUCIO_SERVER_RELEASE}"
TOOL = ROOT / "tools" / "rucio_tool.py"
ROOT_PASSWORD = "secret"  # noqa: S105 - a throw-away test server on 127.0.0.1
API_ENDPOINTS = (
    "accountlimits, accounts, dids, identities, lifetime_exceptions, locks, ping, replicas, requests, rses, rules, "
    "scopes, auth"
)
STARTUP_SECONDS = 60


def rucio_venv() -> Path:
    return Path(os.environ.get("IDDS_RUCIO_SERVER_VENV") or DEFAULT_VENV)


def rucio_python() -> Path:
    return rucio_venv() / "bin" / "python"


def ensure_rucio_venv() -> Path:
    """The Rucio server's virtual environment, created and installed unless it already is."""
    venv = rucio_venv()
    stamp = venv / ".installed"
    wanted = " ".join(RUCIO_SERVER_PACKAGES)
    if stamp.exists() and stamp.read_text() == wanted:
        return venv
    sys.stderr.write(f"[rucio-server] installing {wanted} into {venv}\n")
    venv.parent.mkdir(parents=True, exist_ok=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *RUCIO_SERVER_PACKAGES], check=True)
    stamp.write_text(wanted)
    return venv


def _migrate_repo() -> Path:
    """The installed ``rucio/db/sqla/migrate_repo`` of the server's environment."""
    found = sorted(rucio_venv().glob("lib/python3*/site-packages/rucio/db/sqla/migrate_repo"))
    if not found:
        raise FileNotFoundError(f"rucio is not installed in {rucio_venv()}: call ensure_rucio_venv() first")
    return found[-1]


def sqlalchemy_url(database_url: str, database: str) -> str:
    """``postgres://user@host:port/x`` -> ``postgresql+psycopg://user@host:port/<database>``."""
    parts = urlsplit(database_url)
    return f"postgresql+psycopg://{parts.netloc}/{database}"


class RucioServer:
    """One Rucio server: ``bootstrap()`` its database, ``start()``/``stop()`` its web process."""

    def __init__(
        self, directory: Path, *, database: str, postgres_url: str, port: int | None = None, access_log: bool = False
    ) -> None:
        self.directory = Path(directory)
        # With ``access_log``, gunicorn writes "<method> <path> <status> <microseconds>" per request to
        # logs/access.log (the benchmark reads the lock listings' server time from it).
        self.access_log = access_log
        self.database = database
        self.postgres_url = postgres_url
        self.port = port or free_port()
        self.config = self.directory / "rucio.cfg"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment of any process that uses Rucio's server code with this server's config."""
        return {**os.environ, "RUCIO_CONFIG": str(self.config), "PYTHONPATH": str(ROOT)}

    def write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        logs = self.directory / "logs"
        (logs / "trace").mkdir(parents=True, exist_ok=True)
        alembic = self.directory / "alembic.ini"
        alembic.write_text(
            "[alembic]\n"
            f"script_location = {_migrate_repo()}\n"
            f"sqlalchemy.url = {sqlalchemy_url(self.postgres_url, self.database)}\n"
            "version_table_schema = public\n\n"
            "[loggers]\nkeys = root\n[handlers]\nkeys = console\n[formatters]\nkeys = generic\n"
            "[logger_root]\nlevel = WARN\nhandlers = console\n"
            "[handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nlevel = NOTSET\nformatter = generic\n"
            "[formatter_generic]\nformat = %(levelname)s %(message)s\n"
        )
        self.config.write_text(
            "[common]\n"
            f"logdir = {logs}\nloglevel = WARNING\n\n"
            "[database]\n"
            f"default = {sqlalchemy_url(self.postgres_url, self.database)}\n"
            "schema = public\npool_size = 5\nmax_overflow = 5\n\n"
            "[bootstrap]\n"
            f"userpass_identity = root\nuserpass_pwd = {ROOT_PASSWORD}\nuserpass_email = root@localhost\n\n"
            "[policy]\n"
            "permission = generic\nschema = generic\nlfn2pfn_algorithm_default = hash\n"
            "support = root@localhost\nsupport_rucio = https://github.com/rucio/rucio/issues\n\n"
            f"[api]\nendpoints = {API_ENDPOINTS}\n\n"
            f"[alembic]\ncfg = {alembic}\n\n"
            f"[trace]\ntracedir = {logs / 'trace'}\n"
        )
        # Rucio's trace endpoint module writes here at import time, whatever the config says.
        Path("/var/log/rucio/trace").mkdir(parents=True, exist_ok=True)

    def bootstrap(self) -> None:
        """A fresh database: schema, root account (userpass root/secret), the default VO."""
        self.write_config()
        admin_url = urlsplit(self.postgres_url)
        subprocess.run(
            [
                str(rucio_python()),
                str(TOOL),
                "bootstrap",
                "--admin-url",
                f"postgresql://{admin_url.netloc}/postgres",
                "--database",
                self.database,
            ],
            env=self.env,
            check=True,
        )

    @property
    def access_log_path(self) -> Path:
        return self.directory / "logs" / "access.log"

    def start(self) -> RucioServer:
        log = (self.directory / "logs" / "server.log").open("ab")
        logging = ["--access-logfile", str(self.access_log_path), "--access-logformat", "%(m)s %(U)s %(s)s %(D)s"]
        self.process = subprocess.Popen(
            [
                str(rucio_venv() / "bin" / "gunicorn"),
                *(logging if self.access_log else []),
                "rucio.web.rest.flaskapi.v1.main:application",
                "-b",
                f"127.0.0.1:{self.port}",
                "-w",
                "2",
                "--threads",
                "4",
                "--timeout",
                "300",
            ],
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as reply:
                    json.loads(reply.read())
                return self
            except (urllib.error.URLError, OSError, ValueError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the Rucio server did not start; see {self.directory / 'logs'}") from None
                time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def __enter__(self) -> RucioServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start_transfer_tool(
        self, *, control: Path, events: Path, scale: float = 0.0, drives: int = 2
    ) -> subprocess.Popen:
        """The test transfer tool (tools/rucio_tool.py transfer) on this server's database."""
        log = (self.directory / "logs" / "transfer-tool.log").open("ab")
        return subprocess.Popen(
            [
                str(rucio_python()),
                str(TOOL),
                "transfer",
                "--control",
                str(control),
                "--events",
                str(events),
                "--scale",
                str(scale),
                "--drives",
                str(drives),
            ],
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )


def start_hermes(server: RucioServer, *, broker: str, destination: str) -> subprocess.Popen:
    """Rucio's Hermes daemon on ``server``'s database, sending its messages (``transfer-done`` ...)
    to the STOMP broker ``host:port`` (no TLS; ActiveMQ's default admin/admin) at ``destination``.

    Hermes reads its own copy of the config (``hermes.cfg``: rucio.cfg plus the messaging
    sections), so the web server and the transfer tool need no broker. It runs every second.
    """
    host, port = broker.rsplit(":", 1)
    config = server.directory / "hermes.cfg"
    config.write_text(
        server.config.read_text() + "\n[hermes]\nservices_list = activemq\n\n"
        "[messaging-hermes]\n"
        f"brokers = {host}\nport = {port}\nnonssl_port = {port}\nuse_ssl = False\n"
        f"username = admin\npassword = admin\ndestination = {destination}\n"
    )
    log = (server.directory / "logs" / "hermes.log").open("ab")
    return subprocess.Popen(
        [str(rucio_venv() / "bin" / "rucio-hermes"), "--sleep-time", "1", "--bulk", "1000"],
        env={**server.env, "RUCIO_CONFIG": str(config)},
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen) -> None:
    """Stop a process started with ``start_new_session`` (and its children)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


if __name__ == "__main__":
    sys.stdout.write(f"{ensure_rucio_venv()}\n")
