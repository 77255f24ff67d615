"""Start the STOMP brokers the messaging sinks talk to, for tests, CI, demos and benchmarks.

Two ways to run ActiveMQ (Debian package ``activemq`` 5.17, Java 17):

- ``ensure_activemq()``: the Debian service instance ``main``. The packaged configuration has
  only an OpenWire connector, so a STOMP connector is added to it; the instance is enabled and
  started through its init script. This is what a demo, CI or a benchmark uses.
- ``ActiveMQBroker``: a private broker in a directory of its own, on a port of its own, owned by
  the calling process. Tests use it because they stop and restart the broker on purpose, and
  they must not pull the shared one from under anybody else.

``ensure_rabbitmq_stomp()`` enables RabbitMQ's STOMP plugin on a port other than 61613 (the two
brokers would otherwise clash). Nothing here needs Django.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

logger = logging.getLogger(__name__)

ACTIVEMQ_HOME = Path("/usr/share/activemq")
ACTIVEMQ_JAR = ACTIVEMQ_HOME / "bin" / "activemq.jar"
DEBIAN_INSTANCES = Path("/etc/activemq")
DEBIAN_INIT_SCRIPT = Path("/etc/init.d/activemq")
RABBITMQ_CONF = Path("/etc/rabbitmq/rabbitmq.conf")

DEFAULT_ACTIVEMQ_STOMP_PORT = 61613
DEFAULT_RABBITMQ_STOMP_PORT = 61614
# The largest legitimate message (2000 files) is about 0.3 MB. A cap well above it keeps the broker
# safe from runaway frames and gives tests a deterministic way to make the broker refuse a message.
STOMP_MAX_FRAME_BYTES = 4 * 1024 * 1024

# Java 17 needs these to run ActiveMQ 5.17 (the same list /usr/bin/activemq passes).
_JAVA_MODULE_FLAGS = [
    "--add-reads=java.xml=java.logging",
    *(
        f"--add-opens={module}=ALL-UNNAMED"
        for module in (
            "java.base/java.security",
            "java.base/java.net",
            "java.base/java.lang",
            "java.base/java.util",
            "java.naming/javax.naming.spi",
            "java.rmi/sun.rmi.transport.tcp",
            "java.base/java.util.concurrent",
            "java.base/java.util.concurrent.atomic",
        )
    ),
]

_apt_updated = False


class BrokerError(RuntimeError):
    """A broker could not be installed, configured or started."""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str, port: int, *, timeout: float = 90.0, process: subprocess.Popen | None = None, closed: bool = False
) -> None:
    """Wait until ``host:port`` accepts connections (or refuses them, with ``closed=True``).

    Gives up early when ``process`` (the broker being started) exits, so a broken configuration
    fails fast with its exit code instead of after the whole timeout.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port) != closed:
            return
        if process is not None and process.poll() is not None and not closed:
            raise BrokerError(f"broker process exited with code {process.returncode} before {host}:{port} opened")
        time.sleep(0.2)
    state = "close" if closed else "open"
    raise BrokerError(f"{host}:{port} did not {state} within {timeout:.0f} s")


def apt_install(package: str) -> None:
    """``apt-get install -y package`` (after one ``apt-get update`` per process)."""
    global _apt_updated
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        subprocess.run(["apt-get", "update"], check=True, env=env, capture_output=True)
        _apt_updated = True
    logger.info("installing %s with apt-get", package)
    result = subprocess.run(["apt-get", "install", "-y", package], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BrokerError(f"apt-get install {package} failed: {result.stderr.strip()[-500:]}")


def install_activemq() -> None:
    """Install the Debian ``activemq`` package unless it is already there."""
    if not ACTIVEMQ_JAR.exists():
        apt_install("activemq")
    if shutil.which("java") is None:
        raise BrokerError("ActiveMQ needs a Java runtime: apt-get install -y default-jre-headless")


def stomp_connector(port: int, *, host: str = "127.0.0.1", max_frame_bytes: int = STOMP_MAX_FRAME_BYTES) -> str:
    """The ``<transportConnector>`` element of a STOMP listener on ``host:port``."""
    uri = f"stomp://{host}:{port}?transport.maxFrameSize={max_frame_bytes}"
    return f'<transportConnector name="stomp" uri="{uri}"/>'


def ensure_activemq(port: int = DEFAULT_ACTIVEMQ_STOMP_PORT, *, timeout: float = 90.0) -> bool:
    """Make the Debian ActiveMQ service answer STOMP on ``127.0.0.1:port``.

    Installs the package if missing, enables the ``main`` instance with a STOMP connector and
    starts it. Returns True when this call started it (the caller may then ``stop_activemq()``),
    False when the port already answered.
    """
    if port_open("127.0.0.1", port):
        return False
    install_activemq()
    config = _enable_debian_instance(port)
    logger.info("starting ActiveMQ (config %s)", config)
    result = subprocess.run([str(DEBIAN_INIT_SCRIPT), "start"], capture_output=True, text=True)
    if result.returncode != 0:
        raise BrokerError(f"{DEBIAN_INIT_SCRIPT} start failed: {(result.stdout + result.stderr).strip()[-500:]}")
    wait_for_port("127.0.0.1", port, timeout=timeout)
    return True


def stop_activemq(port: int = DEFAULT_ACTIVEMQ_STOMP_PORT, *, timeout: float = 60.0) -> None:
    """Stop the Debian ActiveMQ service and wait until its STOMP port is closed."""
    subprocess.run([str(DEBIAN_INIT_SCRIPT), "stop"], capture_output=True, text=True)
    wait_for_port("127.0.0.1", port, timeout=timeout, closed=True)


def _enable_debian_instance(port: int) -> Path:
    """Enable instance ``main`` and give it a STOMP connector on ``port`` if it has none."""
    available = DEBIAN_INSTANCES / "instances-available" / "main"
    enabled = DEBIAN_INSTANCES / "instances-enabled" / "main"
    config = available / "activemq.xml"
    text = config.read_text()
    if "stomp://" not in text:
        # The packaged file has exactly one </transportConnectors>; add ours beside OpenWire.
        text = text.replace("</transportConnectors>", f"    {stomp_connector(port)}\n        </transportConnectors>", 1)
        config.write_text(text)
    if not enabled.exists():
        enabled.symlink_to(available)
    return config


_PRIVATE_CONFIG = """<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans
    http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
    http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="{name}"
          dataDirectory="{data}" schedulerSupport="false">
    <persistenceAdapter><kahaDB directory="{data}/kahadb"/></persistenceAdapter>
    <transportConnectors>
      {connector}
    </transportConnectors>
  </broker>
</beans>
"""


class ActiveMQBroker:
    """A private ActiveMQ process with one STOMP connector, owned by the caller.

    Its KahaDB store lives in ``base_dir`` and survives ``stop()``/``start()``, so persistent
    messages and durable subscriptions outlive a restart, as they would on the real service.
    """

    def __init__(
        self,
        port: int,
        base_dir: Path | str,
        *,
        max_frame_bytes: int = STOMP_MAX_FRAME_BYTES,
        heap: str = "256M",
    ) -> None:
        self.port = port
        self.base_dir = Path(base_dir)
        self.max_frame_bytes = max_frame_bytes
        self.heap = heap
        self.process: subprocess.Popen | None = None

    @property
    def host_and_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, timeout: float = 90.0) -> None:
        """Start the broker (installing ActiveMQ if needed) and wait for its STOMP port."""
        if self.running:
            return
        if port_open("127.0.0.1", self.port):
            raise BrokerError(f"port {self.port} is already taken; choose another for this broker")
        install_activemq()
        config = self._write_config()
        log = (self.base_dir / "broker.log").open("ab")
        command = [
            shutil.which("java") or "java",
            "-Xms64M",
            f"-Xmx{self.heap}",
            *_JAVA_MODULE_FLAGS,
            f"-Dactivemq.home={ACTIVEMQ_HOME}",
            f"-Dactivemq.base={self.base_dir}",
            f"-Dactivemq.conf={config.parent}",
            f"-Dactivemq.data={self.base_dir / 'data'}",
            f"-Dactivemq.classpath={config.parent}",
            "-jar",
            str(ACTIVEMQ_JAR),
            "start",
            f"xbean:file:{config}",
        ]
        # Its own session: a Ctrl-C in the terminal running the tests does not kill it half-way.
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            wait_for_port("127.0.0.1", self.port, timeout=timeout, process=self.process)
        except BrokerError:
            self.stop()
            raise

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop the broker cleanly (SIGTERM runs ActiveMQ's shutdown hook), killing it if it hangs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        wait_for_port("127.0.0.1", self.port, timeout=timeout, closed=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> ActiveMQBroker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _write_config(self) -> Path:
        conf = self.base_dir / "conf"
        data = self.base_dir / "data"
        conf.mkdir(parents=True, exist_ok=True)
        data.mkdir(parents=True, exist_ok=True)
        config = conf / "activemq.xml"
        config.write_text(
            _PRIVATE_CONFIG.format(
                name=f"idds-{self.port}",
                data=data,
                connector=stomp_connector(self.port, max_frame_bytes=self.max_frame_bytes),
            )
        )
        return config


def ensure_rabbitmq_stomp(port: int = DEFAULT_RABBITMQ_STOMP_PORT, *, timeout: float = 60.0) -> bool:
    """Make RabbitMQ's STOMP plugin listen on ``127.0.0.1:port`` (not 61613, which ActiveMQ uses).

    The listener is set both in the running node (no restart, so other users of RabbitMQ are not
    disturbed) and in ``rabbitmq.conf`` (so a restarted node does not grab 61613). Installs and
    starts RabbitMQ when it is missing. Returns True when this call enabled the plugin.
    """
    if port_open("127.0.0.1", port):
        return False
    if shutil.which("rabbitmq-plugins") is None:
        apt_install("rabbitmq-server")
    _ensure_rabbitmq_running(timeout)
    listener = f"stomp.listeners.tcp.1 = 127.0.0.1:{port}"
    conf = RABBITMQ_CONF.read_text() if RABBITMQ_CONF.exists() else ""
    if "stomp.listeners.tcp" not in conf:
        RABBITMQ_CONF.write_text(conf.rstrip("\n") + f"\n{listener}\n")
    # A plugin being enabled reads its listeners when its application starts: load it, then override.
    subprocess.run(["rabbitmq-plugins", "disable", "rabbitmq_stomp"], capture_output=True, check=False)
    expression = (
        "application:load(rabbitmq_stomp), "
        f'application:set_env(rabbitmq_stomp, tcp_listeners, [{{"127.0.0.1", {port}}}]), '
        f"application:set_env(rabbitmq_stomp, max_frame_size, {STOMP_MAX_FRAME_BYTES})."
    )
    for command in (["rabbitmqctl", "eval", expression], ["rabbitmq-plugins", "enable", "rabbitmq_stomp"]):
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise BrokerError(f"{' '.join(command[:2])} failed: {(result.stdout + result.stderr).strip()[-500:]}")
    wait_for_port("127.0.0.1", port, timeout=timeout)
    return True


def _ensure_rabbitmq_running(timeout: float) -> None:
    """Start the RabbitMQ node (``rabbitmq-server -detached``) unless it answers already."""
    if subprocess.run(["rabbitmqctl", "status"], capture_output=True).returncode == 0:
        return
    subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, check=False)
    result = subprocess.run(
        ["rabbitmqctl", "await_startup", "--timeout", str(int(timeout))], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise BrokerError(f"RabbitMQ did not start: {(result.stdout + result.stderr).strip()[-500:]}")
