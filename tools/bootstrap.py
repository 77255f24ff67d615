#!/usr/bin/env python3
"""One entry point for a fresh machine with only Python (standard library only).

    python3 tools/bootstrap.py demo    # the service and a demo on the embedded default
    python3 tools/bootstrap.py test    # the test suite on PostgreSQL + Redis (started if needed)
    python3 tools/bootstrap.py serve   # web + worker + beat on whatever the environment says

``demo`` and ``serve`` supervise their processes: one that dies is started again, with back-off.

It creates ``.venv`` and installs the pinned requirements when they changed, so every command
works from a clean clone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
DEMO_VAR = ROOT / "var" / "demo"
TEST_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/idds"
TEST_REDIS_URL = "redis://127.0.0.1:6379/1"


def log(message: str) -> None:
    print(f"[bootstrap] {message}", flush=True)


def run(*args: str | Path, env: dict[str, str] | None = None, check: bool = True) -> int:
    return subprocess.run([str(a) for a in args], cwd=ROOT, env=env, check=check).returncode


def ensure_venv(requirements: str) -> None:
    """Create .venv and install ``requirements`` unless the same file was installed already."""
    if not PYTHON.exists():
        log("creating .venv")
        run(sys.executable, "-m", "venv", VENV)
        run(PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip")
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == requirements_digest(requirements):
        return
    # requirements-dev.txt starts with -r requirements.txt: a current dev install covers both.
    dev_stamp = VENV / ".installed-requirements-dev.txt"
    if dev_stamp.exists() and dev_stamp.read_text() == requirements_digest("requirements-dev.txt"):
        return
    log(f"installing {requirements}")
    run(PYTHON, "-m", "pip", "install", "-q", "-r", ROOT / requirements)
    stamp.write_text(requirements_digest(requirements))


def requirements_digest(requirements: str) -> str:
    """What an install of ``requirements`` (which includes requirements.txt) was made from."""
    files = [ROOT / "requirements.txt", ROOT / requirements]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_port(port: int, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if time.monotonic() > deadline:
            sys.exit(f"[bootstrap] {what} did not open port {port} within {timeout:.0f}s")
        time.sleep(0.5)


def apt_install(*packages: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"[bootstrap] please install {' '.join(packages)} (needs root and apt-get)")
    log(f"installing {' '.join(packages)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run("apt-get", "update", "-q", env=env)
    run("apt-get", "install", "-y", "-q", *packages, env=env)


def ensure_postgres() -> None:
    if port_open(5432):
        return
    if not Path("/etc/postgresql").exists():
        apt_install("postgresql")
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    log(f"starting PostgreSQL {version}")
    run("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start", check=False)
    wait_port(5432, "PostgreSQL")


def ensure_redis() -> None:
    if port_open(6379):
        return
    if not shutil.which("redis-server"):
        apt_install("redis-server")
    log("starting Redis")
    Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
    Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
    run(
        "redis-server",
        "--daemonize",
        "yes",
        "--bind",
        "127.0.0.1",
        "-::1",
        "--port",
        "6379",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        "/var/lib/redis",
        "--logfile",
        "/var/log/redis/ci.log",
    )
    wait_port(6379, "Redis")


def ensure_bubblewrap() -> None:
    """The default sandbox for user programs (docs/sandbox.md); the tests run hostile programs in it."""
    if not shutil.which("bwrap"):
        apt_install("bubblewrap")


def ensure_chromium() -> None:
    """Debian's Chromium, which the monitor's browser tests drive with Playwright (never `playwright install`)."""
    if not Path("/usr/bin/chromium").exists():
        apt_install("chromium")


def ensure_rucio_server_venv() -> None:
    """The real Rucio server the carousel tests start (tools/rucio_server.py): its own virtual environment."""
    run(PYTHON, "-m", "tools.rucio_server")


def command_test(extra: list[str]) -> int:
    ensure_venv("requirements-dev.txt")
    ensure_postgres()
    ensure_redis()
    ensure_bubblewrap()
    ensure_chromium()
    ensure_rucio_server_venv()
    env = {
        **os.environ,
        "DATABASE_URL": os.environ.get("DATABASE_URL", TEST_DATABASE_URL),
        "REDIS_URL": os.environ.get("REDIS_URL", TEST_REDIS_URL),
        "OPENBLAS_NUM_THREADS": "1",
    }
    env.pop("CELERY_BROKER_URL", None)
    run(PYTHON, "manage.py", "makemigrations", "--check", "--dry-run", env=env)
    # The architecture contracts (pyproject.toml [tool.importlinter], docs/architecture.md) and lint
    # gate the suite: a layering mistake fails here, before any test runs.
    run(VENV / "bin" / "lint-imports", env=env)
    run(PYTHON, "-m", "ruff", "check", ".", env=env)
    return run(PYTHON, "-m", "pytest", *extra, env=env, check=False)


# A child that dies is started again after a pause that doubles on every quick death, up to a
# minute; one that ran for RESTART_RESET_AFTER seconds counts as healthy again.
RESTART_FIRST_DELAY = 1.0
RESTART_MAX_DELAY = 60.0
RESTART_RESET_AFTER = 60.0


@dataclass
class Child:
    """One supervised process: its command, the running process and its restart back-off."""

    name: str
    args: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    delay: float = RESTART_FIRST_DELAY
    restart_at: float | None = None


class Processes:
    """The service's processes under a small supervisor: a child that dies is logged and started
    again with back-off (no person needed), and all are stopped together on exit or Ctrl-C."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.log_dir = Path(env.get("IDDS_VAR_DIR", ROOT / "var"))
        self.children: list[Child] = []

    def start(self, name: str, *args: str | Path) -> None:
        child = Child(name, [str(a) for a in args])
        self.children.append(child)
        self._spawn(child)

    def _spawn(self, child: Child) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{child.name}.log"
        with log_path.open("ab") as log_file:
            child.process = subprocess.Popen(child.args, cwd=ROOT, env=self.env, stdout=log_file, stderr=log_file)
        child.started_at = time.monotonic()
        child.restart_at = None
        log(f"started {child.name} (pid {child.process.pid}, log: {log_path})")

    def supervise_once(self) -> None:
        """Notice children that died and start those whose back-off has passed."""
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    self._spawn(child)
                continue
            code = child.process.poll() if child.process is not None else None
            if code is None:
                continue
            if now - child.started_at >= RESTART_RESET_AFTER:
                child.delay = RESTART_FIRST_DELAY
            log(
                f"{child.name} (pid {child.process.pid}) exited with {code}; "
                f"restarting in {child.delay:.0f}s (restart {child.restarts + 1}; see {self.log_dir / child.name}.log)"
            )
            child.restart_at = now + child.delay
            child.delay = min(child.delay * 2, RESTART_MAX_DELAY)

    def wait(self) -> None:
        """Supervise the children until Ctrl-C or SIGTERM."""

        def interrupt(signum, frame) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)
        while True:
            self.supervise_once()
            time.sleep(0.5)

    def stop(self) -> None:
        running = [c.process for c in self.children if c.process is not None and c.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def service_env(embedded: bool) -> dict[str, str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if embedded:
        for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
            env.pop(name, None)
        env.setdefault("DEBUG", "true")
        env.setdefault("IDDS_VAR_DIR", str(DEMO_VAR))
        # The scaled-down demo campaign stages in about two minutes at this speed-up.
        env.setdefault("IDDS_TAPE_TIME_SCALE", "600")
    return env


def start_service(env: dict[str, str], port: int) -> Processes:
    """Migrate, then web + worker + beat under the supervisor."""
    (ROOT / "var").mkdir(exist_ok=True)
    run(PYTHON, "manage.py", "migrate", "--noinput", "-v", "0", env=env)
    run(PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0", env=env)
    processes = Processes(env)
    processes.start(
        "web", PYTHON, "-m", "gunicorn", "idds_site.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2", "--timeout", "60"
    )
    processes.start("worker", PYTHON, "-m", "celery", "-A", "idds_site", "worker", "-l", "INFO", "-c", "2")
    var = Path(env.get("IDDS_VAR_DIR", ROOT / "var"))
    processes.start(
        "beat", PYTHON, "-m", "celery", "-A", "idds_site", "beat", "-l", "INFO", "-s", var / "celerybeat-schedule"
    )
    wait_port(port, "the web server")
    return processes


def command_demo(extra: list[str]) -> int:
    ensure_venv("requirements.txt")
    env = service_env(embedded=True)
    port = int(os.environ.get("PORT", "8000"))
    if port_open(port):
        sys.exit(f"[bootstrap] port {port} is busy; set PORT=<free port>")
    processes = start_service(env, port)
    try:
        token = (
            subprocess.run(
                [PYTHON, "manage.py", "issue_token", "demo", "--staff"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        log(f"monitor: http://127.0.0.1:{port}/  (the demo's requests appear there as they run)")
        log(f"service up: http://127.0.0.1:{port}/  API http://127.0.0.1:{port}/api/v1/  docs /api/docs/")
        log(f"API token of user 'demo': {token}")
        # The demo runs beside the supervisor, so a child dying meanwhile is restarted too.
        demo = subprocess.Popen([str(PYTHON), "manage.py", "run_demo", *extra], cwd=ROOT, env=env)
        while (code := demo.poll()) is None:
            processes.supervise_once()
            time.sleep(0.5)
        if "--exit" in extra or os.environ.get("CI"):
            return code
        log(f"demo done; its requests stay in the monitor at http://127.0.0.1:{port}/ . Ctrl-C stops the service.")
        processes.wait()
        return code
    except KeyboardInterrupt:
        return 130
    finally:
        processes.stop()


def command_serve(extra: list[str]) -> int:
    ensure_venv("requirements.txt")
    env = service_env(embedded="DATABASE_URL" not in os.environ)
    processes = start_service(env, int(os.environ.get("PORT", "8000")))
    try:
        processes.wait()
    except KeyboardInterrupt:
        pass
    finally:
        processes.stop()
    return 0


COMMANDS = {"test": command_test, "demo": command_demo, "serve": command_serve}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        return 2
    os.chdir(ROOT)
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
