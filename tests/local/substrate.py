"""The local test substrate: real Kafka, ZooKeeper and Pebble processes on loopback.

Nothing here mocks Kafka, Pebble or the network. The jars and the Pebble binary come from the
cache that `tests/local/runtime/fetch.sh` fills.

- `make_rock_root` lays out a rock-like root (`opt/kafka/bin`, `etc/kafka`, `var/lib/kafka`,
  `var/log/kafka`) in a temporary directory; its bin scripts start the cached Kafka jars.
- `PebbleDaemon` runs one real Pebble daemon and gives an `ops.Container` bound to it.
- `NewCluster` is the charm's cluster: one rock root and one Pebble per unit, configured and
  started by the charm's own `KafkaWorkload.reconcile`.
- `OldCluster` is the foreign cluster the migration guide assumes: ZooKeeper-mode Kafka 3.9
  with SASL_PLAINTEXT and SCRAM-SHA-512, started as plain subprocesses.

Every process runs in its own process group with a capped heap; `stop()` kills all of them
(also those Pebble started) and removes the temporary directories, also after a failure. Set
`KAFKA_K8S_KEEP_TMP=1` to keep the directories for a post-mortem.
"""

from __future__ import annotations

import base64
import contextlib
import grp
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import cast

import ops
import ops.pebble
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from ops.jujucontext import JujuContext

REPO = Path(__file__).resolve().parents[2]
for _path in (REPO / "src", REPO / "lib"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from charms.kafka_k8s.v0.mirrormaker import MirrorMakerWorkload  # noqa: E402
from config import BrokerConfig  # noqa: E402
from workload import (  # noqa: E402
    ADMIN_USER,
    SCRAM_MECHANISM,
    BrokerNode,
    BrokerSettings,
    InternalCredentials,
    KafkaWorkload,
    Workload,
    WorkloadPaths,
    WorkloadPorts,
    properties_escape,
    scram_jaas,
)

FETCH_SCRIPT = Path(__file__).resolve().parent / "runtime" / "fetch.sh"
PEBBLE_VERSION = "v1.32.1"
JUJU_VERSION = "3.6.4"
LOOPBACK = "127.0.0.1"
TAIL_LINES = 80
# AF_UNIX socket paths are limited to 108 bytes on Linux.
MAX_SOCKET_PATH = 100


def default_cache() -> Path:
    """The cache directory `fetch.sh` fills: `$KAFKA_K8S_CACHE` or `~/.cache/kafka-k8s-test`."""
    env = os.environ.get("KAFKA_K8S_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kafka-k8s-test"


def keep_tmp() -> bool:
    """Whether to keep temporary directories after stopping (`KAFKA_K8S_KEEP_TMP=1`)."""
    return os.environ.get("KAFKA_K8S_KEEP_TMP", "") not in ("", "0", "false")


class SubstrateError(Exception):
    """A process of the substrate did not start or answer in time."""


# ---------------------------------------------------------------------------------------------
# ports, processes, logs


_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 that this process has not handed out before.

    Raises:
        SubstrateError: if no new free port turns up.
    """
    with _ports_lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((LOOPBACK, 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise SubstrateError("no free TCP port on 127.0.0.1")


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _proc_text(pid: int, name: str) -> str:
    try:
        raw = Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def find_processes(*needles: str, environ: bool = False) -> list[int]:
    """Pids of live processes whose command line contains every one of `needles`.

    Args:
        needles: strings that must all occur.
        environ: also match processes whose environment holds every needle (Pebble's own
            command line does not name its directory; its `PEBBLE` variable does).
    """
    own = {os.getpid(), os.getppid()}
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in own:
            continue
        texts = [_proc_text(pid, "cmdline")]
        if environ:
            texts.append(_proc_text(pid, "environ"))
        if any(text and all(needle in text for needle in needles) for text in texts):
            pids.append(pid)
    return pids


def kill_processes(*needles: str, timeout: float = 15.0) -> list[int]:
    """SIGKILL every process whose command line or environment holds all `needles`.

    Repeats until none is left (a supervisor may restart a child in between) or `timeout`.

    Returns:
        The pids that were killed.
    """
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while pids := find_processes(*needles, environ=True):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return killed


def kill_group(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGKILL a process started with `start_new_session=True`, its group, and reap it."""
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)


def spawn(
    command: list[str],
    *,
    log_file: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a process in its own session and process group, output appended to `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last `lines` lines of a text file, or a note that it is missing."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 256 * lines))
            text = handle.read().decode(errors="replace")
    except OSError as error:
        return f"({error.strerror})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def format_log_tails(files: Iterable[Path], lines: int = TAIL_LINES) -> str:
    """Each file's tail under a header naming it."""
    sections = [f"----- {path} (last {lines} lines) -----\n{tail(path, lines)}" for path in files]
    return "\n".join(sections)


def wait_until(
    condition: Callable[[], bool], *, timeout: float, interval: float = 0.5, what: str
) -> None:
    """Poll `condition` until it holds.

    Raises:
        SubstrateError: naming `what` if it does not hold within `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise SubstrateError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Kafka clients


ClientConfig = dict[str, str | int | float | bool]
"""A confluent-kafka client configuration, typed as confluent-kafka's constructors take it."""


def sasl_config(bootstrap: str, username: str, password: str) -> ClientConfig:
    """A confluent-kafka client configuration for SASL_PLAINTEXT with SCRAM-SHA-512."""
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": SCRAM_MECHANISM,
        "sasl.username": username,
        "sasl.password": password,
    }


def broker_count(config: ClientConfig, timeout: float = 5.0) -> int:
    """How many brokers the cluster reports, or 0 when it does not answer."""
    admin = AdminClient({**config, "log_level": 3})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return 0
    return len(metadata.brokers)


# ---------------------------------------------------------------------------------------------
# the rock-like root


@dataclass(frozen=True)
class Script:
    """One bin script of the rock-like root."""

    main: str | None  # None: the first argument names the class (kafka-run-class.sh)
    log4j: str = "tools-log4j.properties"
    log_file: str = "tools.log"
    server: bool = False


SCRIPTS: dict[str, Script] = {
    "kafka-server-start.sh": Script("kafka.Kafka", "log4j.properties", "server.log", True),
    "zookeeper-server-start.sh": Script(
        "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        "log4j.properties",
        "zookeeper.log",
        True,
    ),
    "connect-mirror-maker.sh": Script(
        "org.apache.kafka.connect.mirror.MirrorMaker",
        "log4j.properties",
        "mirrormaker.log",
        True,
    ),
    "kafka-run-class.sh": Script(None),
    "kafka-storage.sh": Script("kafka.tools.StorageTool"),
    "kafka-topics.sh": Script("org.apache.kafka.tools.TopicCommand"),
    "kafka-configs.sh": Script("kafka.admin.ConfigCommand"),
    "kafka-acls.sh": Script("kafka.admin.AclCommand"),
    "kafka-consumer-groups.sh": Script(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
    ),
    "kafka-get-offsets.sh": Script("org.apache.kafka.tools.GetOffsetShell"),
    "kafka-metadata-quorum.sh": Script("org.apache.kafka.tools.MetadataQuorumCommand"),
    "kafka-producer-perf-test.sh": Script("org.apache.kafka.tools.ProducerPerformance"),
    "kafka-consumer-perf-test.sh": Script("org.apache.kafka.tools.ConsumerPerformance"),
    "kafka-console-producer.sh": Script("kafka.tools.ConsoleProducer"),
    "kafka-console-consumer.sh": Script("org.apache.kafka.tools.consumer.ConsoleConsumer"),
}

SERVER_JVM_OPTS = "-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true"
TOOLS_JVM_OPTS = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true"

LOG4J_SERVER = """\
# Local test tier: INFO to stdout and to $LOG_DIR/<script's log file>.
log4j.rootLogger=INFO, stdout, file
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${kafka.logs.dir}/${kafka.log.file}
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel$=WARN
log4j.logger.org.apache.kafka.clients.NetworkClient=WARN
log4j.logger.org.reflections=ERROR
log4j.logger.org.apache.zookeeper=INFO
log4j.logger.org.apache.kafka.connect.mirror.OffsetSyncStore=DEBUG
log4j.logger.org.apache.kafka.connect.mirror.CheckpointStore=DEBUG
log4j.logger.org.apache.kafka.connect.mirror.MirrorCheckpointTask=DEBUG
"""

LOG4J_TOOLS = """\
# Local test tier: command-line tools warn on stderr and keep stdout for their output.
log4j.rootLogger=WARN, stderr, file
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${kafka.logs.dir}/${kafka.log.file}
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


def _render_script(name: str, script: Script, root: Path, cache: Path) -> str:
    main = shlex.quote(script.main) if script.main else '"$1"; shift'
    jvm_opts = SERVER_JVM_OPTS if script.server else TOOLS_JVM_OPTS
    return f"""#!/bin/bash
# {name}: stand-in for the rock's script, running the jars cached by tests/local/runtime/fetch.sh.
set -euo pipefail
root={shlex.quote(str(root))}
export LOG_DIR="${{LOG_DIR:-$root/var/log/kafka}}"
mkdir -p "$LOG_DIR"
main={main}
log4j_default="-Dlog4j.configuration=file:$root/etc/kafka/{script.log4j}"
# The *_OPTS variables hold several options each: split them on purpose.
# shellcheck disable=SC2086
exec java ${{KAFKA_HEAP_OPTS:--Xmx256m}} ${{KAFKA_JVM_PERFORMANCE_OPTS:-{jvm_opts}}} \\
    ${{KAFKA_OPTS:-}} -Dkafka.logs.dir="$LOG_DIR" -Dkafka.log.file={script.log_file} \\
    ${{KAFKA_LOG4J_OPTS:-$log4j_default}} \\
    -cp {shlex.quote(str(cache / "libs"))}'/*' "$main" "$@"
"""


def make_rock_root(tmp: Path, cache: Path) -> WorkloadPaths:
    """Lay out a rock-like root in `tmp` whose bin scripts run the cached Kafka jars.

    Args:
        tmp: an empty (or absent) directory that becomes the root.
        cache: the cache filled by `fetch.sh` (`libs/` holds the jars).

    Returns:
        The workload paths rooted at `tmp`.

    Raises:
        SubstrateError: if the cache holds no jars.
    """
    libs = cache / "libs"
    agents = sorted(libs.glob("jmx_prometheus_javaagent-*.jar"))
    if not agents or not (libs / "kafka_2.13-3.9.1.jar").exists():
        raise SubstrateError(f"no Kafka jars in {libs}: run {FETCH_SCRIPT}")
    root = tmp.resolve()
    paths = WorkloadPaths(root=PurePosixPath(root))
    for directory in (paths.bin, paths.etc, paths.data, paths.logs, paths.opt / "libs"):
        Path(directory).mkdir(parents=True, exist_ok=True)
    for name, script in SCRIPTS.items():
        target = Path(paths.bin) / name
        target.write_text(_render_script(name, script, root, cache))
        target.chmod(0o755)
    (Path(paths.etc) / "log4j.properties").write_text(LOG4J_SERVER)
    (Path(paths.etc) / "tools-log4j.properties").write_text(LOG4J_TOOLS)
    agent = Path(paths.jmx_exporter)
    if agent.is_symlink() or agent.exists():
        agent.unlink()
    agent.symlink_to(agents[-1])
    return paths


# ---------------------------------------------------------------------------------------------
# Pebble


def _model_backend(unit_name: str) -> ops.model._ModelBackend:  # pyright: ignore[reportPrivateUsage]
    """A model backend that only tells `ops.Container` which Juju version it runs under."""
    context = JujuContext._from_dict(  # pyright: ignore[reportPrivateUsage]
        {"JUJU_VERSION": JUJU_VERSION, "JUJU_UNIT_NAME": unit_name, "JUJU_MODEL_NAME": "local"}
    )
    return ops.model._ModelBackend(  # pyright: ignore[reportPrivateUsage]
        unit_name=unit_name, juju_context=context
    )


class PebbleDaemon:
    """A real Pebble daemon (`pebble run --create-dirs`) and an `ops.Container` bound to it.

    Use it as a context manager: leaving it kills Pebble, every service process it started
    (found by `kill_marker` in their command lines) and reaps them, also on errors.
    """

    def __init__(
        self,
        pebble_dir: Path,
        *,
        cache: Path,
        log_file: Path,
        kill_marker: str | None = None,
        container_name: str = "kafka",
        unit_name: str = "kafka-k8s/0",
        start_timeout: float = 30.0,
    ):
        self.pebble_dir = pebble_dir.resolve()
        self.binary = cache / "bin" / "pebble"
        self.log_file = log_file
        self.kill_marker = kill_marker
        self.container_name = container_name
        self.unit_name = unit_name
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._client: ops.pebble.Client | None = None
        self._container: ops.Container | None = None

    @property
    def socket_path(self) -> Path:
        """The daemon's API socket."""
        return self.pebble_dir / ".pebble.socket"

    @property
    def client(self) -> ops.pebble.Client:
        """The ops Pebble client of the running daemon."""
        if self._client is None:
            raise SubstrateError("pebble is not running")
        return self._client

    @property
    def container(self) -> ops.Container:
        """An `ops.Container` that talks to this daemon, as the charm's would."""
        if self._container is None:
            raise SubstrateError("pebble is not running")
        return self._container

    def start(self) -> PebbleDaemon:
        """Start the daemon and wait until its API answers.

        Raises:
            SubstrateError: if the binary is missing or the daemon does not come up.
        """
        if not self.binary.exists():
            raise SubstrateError(f"no pebble binary at {self.binary}: run {FETCH_SCRIPT}")
        if len(str(self.socket_path)) > MAX_SOCKET_PATH:
            raise SubstrateError(f"socket path too long for AF_UNIX: {self.socket_path}")
        self.process = spawn(
            [str(self.binary), "run", "--create-dirs", "--verbose"],
            log_file=self.log_file,
            env={"PEBBLE": str(self.pebble_dir), "PEBBLE_SOCKET": str(self.socket_path)},
        )
        client = ops.pebble.Client(socket_path=str(self.socket_path))

        def answers() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise SubstrateError(
                    f"pebble exited with {self.process.returncode}:\n{tail(self.log_file)}"
                )
            if not self.socket_path.exists():
                return False
            try:
                client.get_system_info()
            except (ops.pebble.ConnectionError, ops.pebble.APIError):
                return False
            return True

        try:
            wait_until(answers, timeout=self.start_timeout, interval=0.1, what="pebble's API")
        except BaseException:
            self.stop()
            raise
        self._client = client
        self._container = ops.Container(
            self.container_name, _model_backend(self.unit_name), pebble_client=client
        )
        return self

    def stop(self) -> None:
        """Kill the daemon and all processes of its services."""
        kill_group(self.process)
        if self.kill_marker:
            kill_processes(self.kill_marker)
        self._client = None
        self._container = None

    def __enter__(self) -> PebbleDaemon:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# the charm's cluster


def random_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64, 22 characters, not led by '-'."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


def random_password() -> str:
    """A random password like the charm would generate."""
    return secrets.token_urlsafe(24)


def current_user() -> tuple[str, str]:
    """The user and group names this process runs as (the workload runs as them too)."""
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


@dataclass
class Unit:
    """One simulated unit: its rock root, its Pebble and the charm's workload settings."""

    index: int
    root: Path
    paths: WorkloadPaths
    workload: Workload
    settings: BrokerSettings
    pebble: PebbleDaemon

    @property
    def node(self) -> BrokerNode:
        """How peers see this unit."""
        return self.settings.node

    @property
    def container(self) -> ops.Container:
        """The unit's workload container (a real Pebble)."""
        return self.pebble.container

    @property
    def kafka(self) -> KafkaWorkload:
        """The charm's workload object for this unit."""
        return KafkaWorkload(self.container, self.workload)

    @property
    def marker(self) -> str:
        """A string only this unit's processes have in their command lines."""
        return f"{self.root}/"

    def broker_pid(self) -> int | None:
        """The pid of this unit's broker JVM, if one runs."""
        pids = find_processes(" kafka.Kafka ", self.marker)
        return pids[0] if pids else None

    def mirrormaker_workload(self, heap_mb: int = 384) -> MirrorMakerWorkload:
        """Where this unit's MirrorMaker runs: the unit's root, user, ports, a capped heap."""
        return MirrorMakerWorkload(
            root=self.paths.root,
            user=self.workload.user,
            group=self.workload.group,
            rest_port=self.workload.ports.mirrormaker_rest,
            metrics_port=self.workload.ports.mirrormaker_metrics,
            metrics_host=LOOPBACK,
            heap_mb=heap_mb,
        )

    def log_files(self) -> list[Path]:
        """The unit's log files: the workload's logs and Pebble's output."""
        return [*sorted(Path(self.paths.logs).glob("*.log")), self.pebble.log_file]


@dataclass
class NewCluster:
    """N units of the charm's Kafka (KRaft, combined mode) on loopback, each under a real Pebble.

    The charm's own `KafkaWorkload.reconcile` writes the files, formats the storage and starts
    the broker on every unit.
    """

    tmp: Path
    cache: Path = field(default_factory=default_cache)
    size: int = 3
    heap_mb: int = 384
    app: str = "kafka-k8s"
    start_timeout: float = 180.0
    cluster_id: str = field(default_factory=random_cluster_id)
    credentials: InternalCredentials = field(
        default_factory=lambda: InternalCredentials(
            admin_password=random_password(),
            controller_password=random_password(),
            mirrormaker_password=random_password(),
        )
    )
    units: list[Unit] = field(default_factory=list)

    @property
    def nodes(self) -> tuple[BrokerNode, ...]:
        """Every unit's node; all of them are quorum voters."""
        return tuple(unit.node for unit in self.units)

    @property
    def bootstrap(self) -> str:
        """Comma-separated client addresses of all units."""
        return ",".join(node.client_address for node in self.nodes)

    @property
    def admin_username(self) -> str:
        """The charm's internal admin user."""
        return ADMIN_USER

    @property
    def admin_password(self) -> str:
        """The admin user's password."""
        return self.credentials.admin_password

    def admin_config(self) -> ClientConfig:
        """A confluent-kafka configuration logging in as the admin user."""
        return sasl_config(self.bootstrap, self.admin_username, self.admin_password)

    def settings_for(self, unit: Unit, config: BrokerConfig | None = None) -> BrokerSettings:
        """The unit's `BrokerSettings`, with another `BrokerConfig` if given."""
        return unit.settings.model_copy(update={"config": config or unit.settings.config})

    def _make_unit(self, index: int, user: str, group: str) -> Unit:
        root = self.tmp / f"u{index}"
        paths = make_rock_root(root, self.cache)
        ports = WorkloadPorts(
            client=free_port(),
            internal=free_port(),
            controller=free_port(),
            broker_metrics=free_port(),
            mirrormaker_metrics=free_port(),
            mirrormaker_rest=free_port(),
        )
        workload = Workload(paths=paths, user=user, group=group, ports=ports)
        node = BrokerNode(node_id=index, host=LOOPBACK, ports=ports)
        pebble = PebbleDaemon(
            root / "pebble",
            cache=self.cache,
            log_file=Path(paths.logs) / "pebble.log",
            kill_marker=f"{root.resolve()}/",
            unit_name=f"{self.app}/{index}",
        )
        settings = BrokerSettings(
            node=node,
            voters=(node,),  # replaced once every unit's ports are known
            cluster_id=self.cluster_id,
            credentials=self.credentials,
            config=BrokerConfig.from_options({"broker-heap-mb": self.heap_mb}),
            workload=workload,
        )
        return Unit(index, root.resolve(), paths, workload, settings, pebble)

    def start(self) -> NewCluster:
        """Create the units, reconcile each with the charm's code, wait for all brokers.

        Raises:
            SubstrateError: with every unit's log tails, if the cluster does not come up.
        """
        user, group = current_user()
        self.tmp.mkdir(parents=True, exist_ok=True)
        try:
            self.units = [self._make_unit(index, user, group) for index in range(self.size)]
            voters = self.nodes
            for unit in self.units:
                unit.settings = unit.settings.model_copy(update={"voters": voters})
                unit.pebble.start()
            with ThreadPoolExecutor(max_workers=self.size) as pool:
                list(pool.map(lambda unit: unit.kafka.reconcile(unit.settings), self.units))
            self.wait_ready(timeout=self.start_timeout)
        except BaseException as error:
            tails = format_log_tails(self.log_files())
            self.stop()
            if isinstance(error, Exception):
                raise SubstrateError(f"new cluster did not start: {error}\n{tails}") from error
            raise
        return self

    def wait_ready(self, timeout: float = 120.0, size: int | None = None) -> None:
        """Wait until every broker's client port answers and the cluster reports all brokers."""
        expected = self.size if size is None else size
        config = self.admin_config()
        wait_until(
            lambda: (
                all(port_open(node.ports.client) for node in self.nodes)
                and broker_count(config) >= expected
            ),
            timeout=timeout,
            interval=1.0,
            what=f"{expected} brokers of the new cluster",
        )

    def kill_broker(self, index: int, sig: int = signal.SIGKILL) -> int:
        """Send `sig` to unit `index`'s broker JVM; Pebble restarts it after a failure.

        Returns:
            The pid signalled.

        Raises:
            SubstrateError: if the unit runs no broker.
        """
        pid = self.units[index].broker_pid()
        if pid is None:
            raise SubstrateError(f"unit {index} runs no broker")
        os.kill(pid, sig)
        return pid

    def log_files(self) -> list[Path]:
        """Every log file of every unit."""
        return [path for unit in self.units for path in unit.log_files()]

    def stop(self) -> None:
        """Kill every unit's Pebble and processes, then remove the temporary directory."""
        for unit in self.units:
            unit.pebble.stop()
        kill_processes(f"{self.tmp.resolve()}/")
        if not keep_tmp():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> NewCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# TLS material


@dataclass(frozen=True)
class TlsMaterial:
    """A CA the test made, and a broker certificate it signed for 127.0.0.1 and localhost."""

    ca: str
    certificate: str
    key: str


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise SubstrateError("openssl is not installed: the TLS tests generate a CA with it")
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise SubstrateError(f"openssl {args[0]} failed: {result.stderr[-1000:]}")


def make_ca(directory: Path, name: str = "kafka-k8s test CA") -> TlsMaterial:
    """A new CA, and a broker certificate it signed (PKCS#8 key, no passphrase)."""
    directory.mkdir(parents=True, exist_ok=True)
    days = "2"
    _openssl(
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", days),
        *("-keyout", "ca.key", "-out", "ca.pem", "-subj", f"/CN={name}"),
        *("-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        cwd=directory,
    )
    _openssl(
        *("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key"),
        *("-out", "broker.csr", "-subj", "/CN=localhost"),
        cwd=directory,
    )
    (directory / "broker.ext").write_text(f"subjectAltName=IP:{LOOPBACK},DNS:localhost\n")
    _openssl(
        *("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key"),
        *("-CAcreateserial", "-days", days, "-out", "broker.pem", "-extfile", "broker.ext"),
        cwd=directory,
    )
    for path in directory.iterdir():
        path.chmod(0o600)
    return TlsMaterial(
        ca=(directory / "ca.pem").read_text(),
        certificate=(directory / "broker.pem").read_text(),
        key=(directory / "broker.key").read_text(),
    )


# ---------------------------------------------------------------------------------------------
# the old (ZooKeeper-mode) cluster


@dataclass
class OldBroker:
    """One broker of the old cluster."""

    broker_id: int
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    # A second SASL_PLAINTEXT listener, ROUTED, bound here and advertising another port (a
    # proxy's): clients that bootstrap through the proxy keep going through it.
    routed_port: int = 0
    routed_advertised_port: int = 0
    # A SASL_SSL listener, TLS, when the cluster has TLS material.
    tls_port: int = 0

    @property
    def tls_address(self) -> str:
        """`HOST:PORT` of its SASL_SSL listener."""
        return f"{LOOPBACK}:{self.tls_port}"

    @property
    def routed_address(self) -> str:
        """`HOST:PORT` the ROUTED listener binds."""
        return f"{LOOPBACK}:{self.routed_port}"

    @property
    def address(self) -> str:
        """`HOST:PORT` of its SASL_PLAINTEXT listener."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def log_dir(self) -> Path:
        """Where its log files go."""
        return self.directory / "logs"


@dataclass
class OldCluster:
    """A ZooKeeper-mode Kafka 3.9 cluster with SASL_PLAINTEXT, SCRAM-SHA-512 and ACLs.

    The foreign cluster of the migration guide: one ZooKeeper and `size` brokers, started as
    plain subprocesses (not under Pebble). The `admin` super-user exists before the brokers
    start; everyone else needs ACLs (`allow.everyone.if.no.acl.found=false`).
    """

    tmp: Path
    cache: Path = field(default_factory=default_cache)
    size: int = 1
    heap_mb: int = 256
    admin_username: str = ADMIN_USER
    admin_password: str = field(default_factory=random_password)
    start_timeout: float = 120.0
    zk_port: int = 0
    # Per broker, the port its ROUTED listener advertises; empty: no ROUTED listener.
    routed_ports: tuple[int, ...] = ()
    # With TLS material, every broker also has a SASL_SSL listener with its certificate.
    tls: TlsMaterial | None = None
    brokers: list[OldBroker] = field(default_factory=list)
    zookeeper: subprocess.Popen[bytes] | None = None
    paths: WorkloadPaths | None = None

    @property
    def bin(self) -> Path:
        """The bin scripts this cluster runs."""
        if self.paths is None:
            raise SubstrateError("old cluster is not set up")
        return Path(self.paths.bin)

    @property
    def zk_connect(self) -> str:
        """ZooKeeper's `HOST:PORT`."""
        return f"{LOOPBACK}:{self.zk_port}"

    @property
    def bootstrap(self) -> str:
        """Comma-separated addresses of all brokers."""
        return ",".join(broker.address for broker in self.brokers)

    @property
    def tls_bootstrap(self) -> str:
        """Comma-separated addresses of the brokers' SASL_SSL listeners."""
        return ",".join(broker.tls_address for broker in self.brokers)

    def admin_config(self) -> ClientConfig:
        """A confluent-kafka configuration logging in as the admin user."""
        return sasl_config(self.bootstrap, self.admin_username, self.admin_password)

    def _env(self, log_dir: Path) -> dict[str, str]:
        return {
            "LOG_DIR": str(log_dir),
            "KAFKA_HEAP_OPTS": f"-Xms64m -Xmx{self.heap_mb}m",
            "KAFKA_OPTS": "-Dzookeeper.sasl.client=false -Dzookeeper.admin.enableServer=false",
        }

    def _start_zookeeper(self) -> None:
        directory = self.tmp / "zk"
        (directory / "data").mkdir(parents=True, exist_ok=True)
        self.zk_port = free_port()
        config = directory / "zoo.cfg"
        config.write_text(
            f"dataDir={directory / 'data'}\n"
            f"clientPort={self.zk_port}\n"
            f"clientPortAddress={LOOPBACK}\n"
            "tickTime=2000\ninitLimit=5\nsyncLimit=2\nmaxClientCnxns=0\n"
            "admin.enableServer=false\n"
            "4lw.commands.whitelist=srvr,ruok\n"
        )
        self.zookeeper = spawn(
            [str(self.bin / "zookeeper-server-start.sh"), str(config)],
            log_file=directory / "logs" / "zookeeper.out",
            env=self._env(directory / "logs"),
        )

        def serving() -> bool:
            if self.zookeeper is not None and self.zookeeper.poll() is not None:
                raise SubstrateError(f"zookeeper exited with {self.zookeeper.returncode}")
            try:
                with socket.create_connection((LOOPBACK, self.zk_port), timeout=1) as sock:
                    sock.sendall(b"srvr")
                    return b"Mode:" in sock.recv(4096)
            except OSError:
                return False

        wait_until(serving, timeout=60, what="zookeeper")

    def _create_admin(self) -> None:
        log_dir = self.tmp / "zk" / "logs"
        command = [
            str(self.bin / "kafka-configs.sh"),
            "--zookeeper",
            self.zk_connect,
            "--alter",
            "--add-config",
            f"{SCRAM_MECHANISM}=[password={self.admin_password}]",
            "--entity-type",
            "users",
            "--entity-name",
            self.admin_username,
        ]
        env = {**os.environ, **self._env(log_dir), "KAFKA_HEAP_OPTS": "-Xmx128m"}
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).replace(self.admin_password, "***")
            raise SubstrateError(f"creating the admin SCRAM user failed:\n{output[-2000:]}")

    def _server_properties(self, broker: OldBroker) -> str:
        replication = min(self.size, 3)
        jaas = properties_escape(scram_jaas(self.admin_username, self.admin_password))
        listeners = [f"SASL_PLAINTEXT://{broker.address}"]
        advertised = list(listeners)
        protocols = ["SASL_PLAINTEXT:SASL_PLAINTEXT"]
        extra = []
        if broker.routed_advertised_port:
            listeners.append(f"ROUTED://{broker.routed_address}")
            advertised.append(f"ROUTED://{LOOPBACK}:{broker.routed_advertised_port}")
            protocols.append("ROUTED:SASL_PLAINTEXT")
            extra.append(f"listener.name.routed.scram-sha-512.sasl.jaas.config={jaas}")
        if self.tls is not None:
            listeners.append(f"TLS://{broker.tls_address}")
            advertised.append(f"TLS://{broker.tls_address}")
            protocols.append("TLS:SASL_SSL")
            extra += [
                f"listener.name.tls.scram-sha-512.sasl.jaas.config={jaas}",
                "listener.name.tls.ssl.keystore.type=PEM",
                "listener.name.tls.ssl.keystore.certificate.chain="
                + properties_escape(self.tls.certificate),
                f"listener.name.tls.ssl.keystore.key={properties_escape(self.tls.key)}",
            ]
        return "\n".join(
            [
                f"broker.id={broker.broker_id}",
                f"listeners={','.join(listeners)}",
                f"advertised.listeners={','.join(advertised)}",
                f"listener.security.protocol.map={','.join(protocols)}",
                *extra,
                "security.inter.broker.protocol=SASL_PLAINTEXT",
                f"sasl.mechanism.inter.broker.protocol={SCRAM_MECHANISM}",
                f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
                f"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={jaas}",
                "authorizer.class.name=kafka.security.authorizer.AclAuthorizer",
                f"super.users=User:{self.admin_username}",
                "allow.everyone.if.no.acl.found=false",
                f"zookeeper.connect={self.zk_connect}",
                "zookeeper.set.acl=false",
                "zookeeper.connection.timeout.ms=30000",
                f"log.dirs={broker.directory / 'data'}",
                "num.partitions=1",
                f"default.replication.factor={replication}",
                f"offsets.topic.replication.factor={replication}",
                f"transaction.state.log.replication.factor={replication}",
                f"transaction.state.log.min.isr={min(replication, 2)}",
                "group.initial.rebalance.delay.ms=0",
                "",
            ]
        )

    def _start_broker(self, broker: OldBroker) -> None:
        (broker.directory / "data").mkdir(parents=True, exist_ok=True)
        properties = broker.directory / "server.properties"
        properties.write_text(self._server_properties(broker))
        properties.chmod(0o600)
        broker.process = spawn(
            [str(self.bin / "kafka-server-start.sh"), str(properties)],
            log_file=broker.log_dir / "server.out",
            env=self._env(broker.log_dir),
        )

    def start(self) -> OldCluster:
        """Start ZooKeeper, create the admin user, start the brokers and wait for them.

        Raises:
            SubstrateError: with the log tails, if the cluster does not come up.
        """
        self.tmp.mkdir(parents=True, exist_ok=True)
        try:
            self.paths = make_rock_root(self.tmp / "rock", self.cache)
            self._start_zookeeper()
            self._create_admin()
            self.brokers = [
                OldBroker(index, free_port(), self.tmp / f"b{index}") for index in range(self.size)
            ]
            for broker, port in zip(self.brokers, self.routed_ports, strict=False):
                broker.routed_port, broker.routed_advertised_port = free_port(), port
            if self.tls is not None:
                for broker in self.brokers:
                    broker.tls_port = free_port()
            for broker in self.brokers:
                self._start_broker(broker)
            self.wait_ready(timeout=self.start_timeout)
        except BaseException as error:
            tails = format_log_tails(self.log_files())
            self.stop()
            if isinstance(error, Exception):
                raise SubstrateError(f"old cluster did not start: {error}\n{tails}") from error
            raise
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until every broker answers the admin and the cluster reports all of them."""
        config = self.admin_config()

        def ready() -> bool:
            for broker in self.brokers:
                if broker.process is not None and broker.process.poll() is not None:
                    raise SubstrateError(
                        f"old broker {broker.broker_id} exited with {broker.process.returncode}"
                    )
            return all(port_open(b.port) for b in self.brokers) and broker_count(config) >= len(
                self.brokers
            )

        wait_until(ready, timeout=timeout, interval=1.0, what="the old cluster's brokers")

    def add_scram_user(self, name: str, password: str, timeout: float = 30.0) -> None:
        """Create (or update) a SCRAM-SHA-512 user and wait until every broker accepts it.

        Raises:
            SubstrateError: if a broker still refuses the login after `timeout` seconds.
        """
        admin = AdminClient({**self.admin_config(), "log_level": 3})
        upsert = UserScramCredentialUpsertion(
            name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), password.encode()
        )
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout)
        for broker in self.brokers:
            config = sasl_config(broker.address, name, password)
            wait_until(
                lambda config=config: broker_count(config, timeout=3.0) > 0,
                timeout=timeout,
                what=f"broker {broker.broker_id} to accept user {name}",
            )

    def log_files(self) -> list[Path]:
        """ZooKeeper's and every broker's log files."""
        files = sorted((self.tmp / "zk" / "logs").glob("*"))
        for broker in self.brokers:
            files += sorted(broker.log_dir.glob("*"))
        return [path for path in files if path.suffix in (".log", ".out")]

    def stop(self) -> None:
        """Kill every process of the cluster and remove its temporary directory."""
        for broker in self.brokers:
            kill_group(broker.process)
        kill_group(self.zookeeper)
        kill_processes(f"{self.tmp.resolve()}/")
        if not keep_tmp():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> OldCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def iter_log_files(objects: Iterable[object]) -> Iterator[Path]:
    """The log files of every cluster-like object (anything with `log_files()`) in `objects`."""
    seen: set[Path] = set()
    for obj in objects:
        method = getattr(obj, "log_files", None)
        if not callable(method):
            continue
        for path in cast("Iterable[Path]", method()):
            if path not in seen:
                seen.add(path)
                yield path
