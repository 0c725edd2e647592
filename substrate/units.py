# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The charm's units on loopback: a rock-like root, a real Pebble daemon, the new cluster.

- `make_rock_root` lays out a rock-like root (`opt/kafka/bin`, `etc/kafka`, `var/lib/kafka`,
  `var/log/kafka`) in a temporary directory; its bin scripts start the cached Kafka jars.
- `PebbleDaemon` runs one real Pebble daemon and gives an `ops.Container` bound to it.
- `NewCluster` is the charm's cluster: one rock root and one Pebble per unit, configured and
  started by the charm's own `KafkaWorkload.reconcile`.

`stop()` kills every process (also those Pebble started) and removes the temporary
directories, also after a failure. Set `KAFKA_K8S_KEEP_TMP=1` to keep them for a post-mortem.
"""

from __future__ import annotations

import base64
import os
import shlex
import signal
import subprocess
import uuid
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import ops
import ops.pebble
from charmlibs.interfaces.tls_certificates import PrivateKey
from ops.jujucontext import JujuContext

from acls import grant_mirrormaker
from admin import KafkaAdmin
from charms.kafka_k8s.v0.mirrormaker import (
    MirrorMakerWorkload,
)
from config import BrokerConfig
from external import ExternalAddress
from models import (
    ADMIN_USER,
    REPLICATION_USERS,
    BrokerNode,
    InternalCredentials,
    Workload,
    WorkloadPaths,
    WorkloadPorts,
)
from rolling import admin_client, ensure_internal_users
from substrate.certificates import CertificateAuthority
from substrate.processes import (
    FETCH_SCRIPT,
    LOOPBACK,
    ClientConfig,
    Started,
    SubstrateError,
    broker_count,
    current_user,
    default_cache,
    find_processes,
    format_log_tails,
    free_port,
    java_home,
    kill_group,
    kill_processes,
    port_open,
    random_password,
    remove_tmp,
    sasl_config,
    spawn,
    tail,
    tls_config,
    wait_until,
)
from workload import BrokerSettings, KafkaWorkload

JUJU_VERSION = "3.6.4"
# The Kafka release of the pinned rock, which `runtime/pom.xml` resolves.
KAFKA_VERSION = "3.9.0"
# AF_UNIX socket paths are limited to 108 bytes on Linux.
MAX_SOCKET_PATH = 100


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


def _render_script(name: str, script: Script, root: Path, jars: Path) -> str:
    main = shlex.quote(script.main) if script.main else '"$1"; shift'
    jvm_opts = SERVER_JVM_OPTS if script.server else TOOLS_JVM_OPTS
    return f"""#!/bin/bash
# {name}: stand-in for the rock's script, running the jars cached by substrate/runtime/fetch.sh.
set -euo pipefail
root={shlex.quote(str(root))}
export LOG_DIR="${{LOG_DIR:-$root/var/log/kafka}}"
mkdir -p "$LOG_DIR"
main={main}
log4j_default="-Dlog4j.configuration=file:$root/etc/kafka/{script.log4j}"
# As in the rock, the JDK is the one JAVA_HOME names: a service or exec that does not set it fails
# here instead of finding some `java` on PATH.
java="${{JAVA_HOME:?JAVA_HOME is not set, as every service and exec of the charm must}}/bin/java"
# The *_OPTS variables hold several options each: split them on purpose.
# shellcheck disable=SC2086
exec "$java" ${{KAFKA_HEAP_OPTS:--Xmx256m}} ${{KAFKA_JVM_PERFORMANCE_OPTS:-{jvm_opts}}} \\
    ${{KAFKA_OPTS:-}} -Dkafka.logs.dir="$LOG_DIR" -Dkafka.log.file={script.log_file} \\
    ${{KAFKA_LOG4J_OPTS:-$log4j_default}} \\
    -cp {shlex.quote(str(jars))}'/*' "$main" "$@"
"""


def make_rock_root(tmp: Path, cache: Path, jars: Path | None = None) -> WorkloadPaths:
    """Lay out a rock-like root in `tmp` whose bin scripts run the cached Kafka jars.

    Args:
        tmp: an empty (or absent) directory that becomes the root.
        cache: the cache filled by `fetch.sh` (`libs/` holds the jars).
        jars: the jars the bin scripts run instead, another Kafka release's (an old cluster).

    Returns:
        The workload paths rooted at `tmp`.

    Raises:
        SubstrateError: if the cache holds no jars.
    """
    libs = cache / "libs"
    agents = sorted(libs.glob("jmx_prometheus_javaagent-*.jar"))
    if not agents or not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        raise SubstrateError(f"no Kafka jars in {libs}: run {FETCH_SCRIPT}")
    root = tmp.resolve()
    paths = WorkloadPaths(root=PurePosixPath(root))
    for directory in (paths.bin, paths.etc, paths.data, paths.logs, paths.opt / "libs"):
        Path(directory).mkdir(parents=True, exist_ok=True)
    for name, script in SCRIPTS.items():
        target = Path(paths.bin) / name
        target.write_text(_render_script(name, script, root, jars or libs))
        target.chmod(0o755)
    (Path(paths.etc) / "log4j.properties").write_text(LOG4J_SERVER)
    (Path(paths.etc) / "tools-log4j.properties").write_text(LOG4J_TOOLS)
    agent = Path(paths.jmx_exporter)
    if agent.is_symlink() or agent.exists():
        agent.unlink()
    agent.symlink_to(agents[-1])
    return paths


# Pebble ------------------------------------------------------------------------------------------


def model_backend(unit_name: str) -> ops.model._ModelBackend:  # pyright: ignore[reportPrivateUsage]
    """A model backend that only tells `ops.Container` which Juju version it runs under."""
    context = JujuContext._from_dict(  # pyright: ignore[reportPrivateUsage]
        {"JUJU_VERSION": JUJU_VERSION, "JUJU_UNIT_NAME": unit_name, "JUJU_MODEL_NAME": "local"}
    )
    return ops.model._ModelBackend(  # pyright: ignore[reportPrivateUsage]
        unit_name=unit_name, juju_context=context
    )


class PebbleDaemon(Started):
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
            # The container's environment has no JAVA_HOME: the charm's layers and execs set it.
            env={
                "PEBBLE": str(self.pebble_dir),
                "PEBBLE_SOCKET": str(self.socket_path),
                "JAVA_HOME": "",
            },
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
            self.container_name, model_backend(self.unit_name), pebble_client=client
        )
        return self

    def stop(self) -> None:
        """Kill the daemon and all processes of its services."""
        kill_group(self.process)
        if self.kill_marker:
            kill_processes(self.kill_marker)
        self._client = None
        self._container = None


# The charm's cluster -----------------------------------------------------------------------------


def random_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64, 22 characters, not led by '-'."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


@dataclass
class Unit:
    """One simulated unit: its rock root, its Pebble and the charm's workload settings."""

    index: int
    root: Path
    paths: WorkloadPaths
    workload: Workload
    settings: BrokerSettings
    pebble: PebbleDaemon
    # The unit's private key, with TLS: made on the unit, it never leaves it.
    key: PrivateKey | None = None

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
        """Where this unit's MirrorMaker runs, as the charm describes it, with a capped heap."""
        return self.workload.mirrormaker(heap_mb=heap_mb, metrics_host=LOOPBACK)

    def log_files(self) -> list[Path]:
        """The unit's log files: the workload's logs and Pebble's output."""
        return [*sorted(Path(self.paths.logs).glob("*.log")), self.pebble.log_file]


@dataclass
class NewCluster(Started):
    """N units of the charm's Kafka (KRaft, combined mode) on loopback, each under a real Pebble.

    The charm's own `KafkaWorkload.reconcile` writes the files, formats the storage and starts
    the broker on every unit; then the charm's `grant_mirrormaker` gives the `mirrormaker` user
    its ACLs, as the leader does (it is no super user).
    """

    tmp: Path
    cache: Path = field(default_factory=default_cache)
    size: int = 3
    heap_mb: int = 384
    app: str = "kafka-k8s"
    start_timeout: float = 180.0
    cluster_id: str = field(default_factory=random_cluster_id)
    # The charm's `mirrormaker-sync-topic-acls`: MirrorMaker's user may then create ACLs.
    mirrormaker_sync_topic_acls: bool = False
    credentials: InternalCredentials = field(
        default_factory=lambda: InternalCredentials(
            admin_password=random_password(),
            controller_password=random_password(),
            mirrormaker_password=random_password(),
            replication_passwords={REPLICATION_USERS[0]: random_password()},
            inter_broker_user=REPLICATION_USERS[0],
        )
    )
    units: list[Unit] = field(default_factory=list)
    # What the charm's leader does once the cluster serves: write the internal SCRAM users
    # through the admin API (`rolling.ensure_internal_users`). Off only to show why it must.
    write_internal_users: bool = True
    # With a CA, the client listeners serve SASL_SSL with a certificate it signed, as with the
    # certificates relation.
    ca: CertificateAuthority | None = None
    # With it, each broker also has the EXTERNAL listener, advertised at its own port on
    # loopback (where, in Kubernetes, a node port would forward to it).
    external: bool = False

    @property
    def nodes(self) -> tuple[BrokerNode, ...]:
        """Every unit's node; all of them are quorum voters."""
        return tuple(unit.node for unit in self.units)

    @property
    def bootstrap(self) -> str:
        """Comma-separated client addresses of all units (SASL_SSL ones with a CA)."""
        return ",".join(unit.settings.client_address for unit in self.units)

    @property
    def internal_bootstrap(self) -> str:
        """Comma-separated internal addresses: the charm's admin client and MirrorMaker's."""
        return ",".join(node.internal_address for node in self.nodes)

    @property
    def external_bootstrap(self) -> str:
        """Comma-separated addresses the brokers advertise to clients outside Kubernetes."""
        return ",".join(u.settings.external.address for u in self.units if u.settings.external)

    def client_config(
        self, username: str, password: str, *, ca: str | None = None, external: bool = False
    ) -> ClientConfig:
        """A client's configuration: SASL_SSL verifying `ca` (the cluster's own by default)."""
        bootstrap = self.external_bootstrap if external else self.bootstrap
        if self.ca is None:
            return sasl_config(bootstrap, username, password)
        return tls_config(bootstrap, username, password, ca or self.ca.pem)

    @property
    def admin_username(self) -> str:
        """The charm's internal admin user."""
        return ADMIN_USER

    @property
    def admin_password(self) -> str:
        """The admin user's password."""
        return self.credentials.admin_password

    def admin_config(self) -> ClientConfig:
        """A confluent-kafka configuration logging in as the admin user.

        With TLS it goes through the internal listener, as the charm's own admin client does.
        """
        bootstrap = self.internal_bootstrap if self.ca is not None else self.bootstrap
        return sasl_config(bootstrap, self.admin_username, self.admin_password)

    def issue_certificates(self) -> None:
        """Give every unit a new certificate from the CA, with the key it already has.

        What a renewal on the relation does to the settings: the brokers restart to serve it
        (`rolling.restart_in_turn`); nothing is restarted here.
        """
        if self.ca is None:
            return
        for unit in self.units:
            if unit.key is None:
                unit.key = PrivateKey.generate()
            tls = self.ca.issue(self.app, unit.index, "local", [LOOPBACK], unit.key)
            unit.settings = unit.settings.model_copy(update={"tls": tls})

    def settings_for(self, unit: Unit, config: BrokerConfig | None = None) -> BrokerSettings:
        """The unit's `BrokerSettings`, with another `BrokerConfig` if given."""
        return unit.settings.model_copy(update={"config": config or unit.settings.config})

    def _make_unit(self, index: int, user: str, group: str) -> Unit:
        root = self.tmp / f"u{index}"
        paths = make_rock_root(root, self.cache)
        ports = WorkloadPorts(
            client=free_port(),
            client_tls=free_port(),
            external=free_port(),
            internal=free_port(),
            controller=free_port(),
            broker_metrics=free_port(),
            mirrormaker_metrics=free_port(),
            mirrormaker_rest=free_port(),
        )
        workload = Workload(
            paths=paths, user=user, group=group, ports=ports, java_home=PurePosixPath(java_home())
        )
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
            external=ExternalAddress(host=LOOPBACK, port=ports.external)
            if self.external
            else None,
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
            self.issue_certificates()
            with ThreadPoolExecutor(max_workers=self.size) as pool:
                list(pool.map(lambda unit: unit.kafka.reconcile(unit.settings), self.units))
            self.wait_ready(timeout=self.start_timeout)
            if self.write_internal_users:
                with admin_client(self.internal_bootstrap, self.credentials) as admin:
                    ensure_internal_users(admin, self.credentials)
            self.grant_mirrormaker(self.mirrormaker_sync_topic_acls)
        except BaseException as error:
            tails = format_log_tails(self.log_files())
            self.stop()
            if isinstance(error, Exception):
                raise SubstrateError(f"new cluster did not start: {error}\n{tails}") from error
            raise
        return self

    def grant_mirrormaker(
        self, sync_topic_acls: bool = False, promoted: Collection[str] = ()
    ) -> None:
        """Give the `mirrormaker` user its ACLs with the charm's function, as the leader does.

        `promoted` are the topics waves promoted: the user may not write them any more.
        """
        with KafkaAdmin(
            self.internal_bootstrap, ADMIN_USER, self.admin_password, timeout=30.0
        ) as admin:
            grant_mirrormaker(admin, sync_topic_acls=sync_topic_acls, promoted=promoted)
        self.mirrormaker_sync_topic_acls = sync_topic_acls

    def wait_ready(self, timeout: float = 120.0, size: int | None = None) -> None:
        """Wait until every broker's client port answers and the cluster reports all brokers."""
        expected = self.size if size is None else size
        config = self.admin_config()
        wait_until(
            lambda: (
                all(port_open(unit.settings.client_port) for unit in self.units)
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
        remove_tmp(self.tmp)
