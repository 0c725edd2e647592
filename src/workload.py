# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The Kafka broker workload: typed settings, rendered files, the Pebble layer, the container.

Rendering `server.properties` and building the Pebble layer are pure functions of
`BrokerSettings`. `KafkaWorkload` is the thin part that talks to the container: it pushes the
rendered files, formats the storage once, and replans. The same code runs under ops.testing,
against a real Pebble daemon in the local tier (`substrate/`), and in Juju.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path, PurePosixPath
from typing import Literal

import jinja2
import ops
from pydantic import BaseModel, ConfigDict, Field

from config import BrokerConfig
from external import ExternalAddress
from files import jaas_escape, properties_escape, push_if_changed, scram_jaas
from models import (
    ADMIN_USER,
    CONTROLLER_USER,
    SCRAM_MECHANISM,
    SUPER_USERS,
    BrokerNode,
    InternalCredentials,
    Workload,
    WorkloadPaths,
)
from tls import ServerTls

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
KAFKA_SERVICE = "kafka"
KAFKA_READY_CHECK = "kafka-ready"


class BrokerSettings(BaseModel):
    """Everything `server.properties` and the Pebble layer are made from."""

    model_config = ConfigDict(frozen=True)

    node: BrokerNode
    voters: tuple[BrokerNode, ...] = Field(min_length=1)
    cluster_id: str = Field(min_length=1)
    credentials: InternalCredentials
    config: BrokerConfig = BrokerConfig()
    workload: Workload = Workload()
    # The certificate of the client listeners: SASL_SSL with it, SASL_PLAINTEXT without.
    tls: ServerTls | None = None
    # The address clients outside Kubernetes reach this broker at (expose-external).
    external: ExternalAddress | None = None

    @property
    def client_protocol(self) -> Literal["SASL_SSL", "SASL_PLAINTEXT"]:
        """The security protocol of the client-facing listeners."""
        return "SASL_SSL" if self.tls is not None else "SASL_PLAINTEXT"

    @property
    def client_port(self) -> int:
        """The client listener's port: 9093 with TLS, 9092 without (Canonical's)."""
        ports = self.node.ports
        return ports.client_tls if self.tls is not None else ports.client

    @property
    def client_address(self) -> str:
        """`HOST:PORT` of this broker's client listener."""
        return f"{self.node.host}:{self.client_port}"

    @property
    def roles(self) -> Literal["broker,controller", "broker"]:
        """Combined mode for quorum voters, broker-only past them."""
        if any(voter.node_id == self.node.node_id for voter in self.voters):
            return "broker,controller"
        return "broker"

    @property
    def quorum_voters(self) -> str:
        """The `controller.quorum.voters` value."""
        return ",".join(f"{v.node_id}@{v.controller_address}" for v in self.voters)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - properties files, not HTML
    )


def render_server_properties(settings: BrokerSettings) -> str:
    """Render `server.properties` for one unit."""
    template = _environment().get_template("server.properties.j2")
    credentials = settings.credentials
    return template.render(
        settings=settings,
        node=settings.node,
        ports=settings.node.ports,
        config=settings.config,
        paths=settings.workload.paths,
        super_users=";".join(f"User:{user}" for user in SUPER_USERS),
        tls=settings.tls,
        keystore_chain=properties_escape(settings.tls.chain) if settings.tls else "",
        keystore_key=properties_escape(settings.tls.key) if settings.tls else "",
        external=settings.external,
        internal_jaas=properties_escape(
            scram_jaas(credentials.inter_broker_user, credentials.inter_broker_password)
        ),
        controller_jaas=properties_escape(
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{CONTROLLER_USER}" '
            f'password="{jaas_escape(credentials.controller_password)}" '
            f'user_{CONTROLLER_USER}="{jaas_escape(credentials.controller_password)}";'
        ),
    )


def render_client_properties(username: str, password: str) -> str:
    """Render a SASL client configuration, for Kafka's bin scripts and admin clients."""
    return (
        "security.protocol=SASL_PLAINTEXT\n"
        f"sasl.mechanism={SCRAM_MECHANISM}\n"
        f"sasl.jaas.config={properties_escape(scram_jaas(username, password))}\n"
    )


def render_broker_jmx_rules() -> str:
    """The JMX exporter rules for the broker."""
    return (TEMPLATES / "jmx_broker.yaml").read_text()


def kafka_layer(settings: BrokerSettings) -> ops.pebble.LayerDict:
    """The Pebble layer that runs the broker."""
    workload = settings.workload
    paths = workload.paths
    heap = settings.config.broker_heap_mb
    return {
        "summary": "Apache Kafka broker",
        "services": {
            KAFKA_SERVICE: {
                "override": "replace",
                "summary": "Apache Kafka broker (KRaft)",
                "command": f"{paths.bin}/kafka-server-start.sh {paths.server_properties}",
                "startup": "enabled",
                "user": workload.user,
                "group": workload.group,
                "environment": {
                    "KAFKA_HEAP_OPTS": f"-Xms{min(heap, 512)}m -Xmx{heap}m",
                    "KAFKA_OPTS": (
                        f"-javaagent:{paths.jmx_exporter}="
                        f"{settings.node.ports.broker_metrics}:{paths.broker_jmx_config}"
                    ),
                    "LOG_DIR": str(paths.logs),
                    "JAVA_HOME": str(workload.java_home),
                },
                "on-failure": "restart",
                "backoff-delay": "2s",
                "backoff-limit": "30s",
                "kill-delay": "30s",
            },
        },
        "checks": {
            KAFKA_READY_CHECK: {
                "override": "replace",
                "level": "ready",
                "period": "10s",
                "timeout": "3s",
                "threshold": 3,
                "tcp": {"port": settings.client_port},
            },
        },
    }


def restart_digest(settings: BrokerSettings) -> str:
    """A digest of what the broker reads only when it starts.

    That is its file without the dynamic options, and its Pebble layer.
    """
    static = settings.model_copy(update={"config": settings.config.static()})
    text = render_server_properties(static) + json.dumps(kafka_layer(static), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class StartRecord(BaseModel):
    """What the running broker was started with."""

    digest: str
    inter_broker_user: str
    # Whether its client listeners serve TLS.
    client_tls: bool = False


class WorkloadError(Exception):
    """The workload container refused an operation."""


class KafkaWorkload:
    """The broker in its container: files, storage format, service."""

    def __init__(self, container: ops.Container, workload: Workload | None = None):
        self.container = container
        self.workload = workload or Workload()

    @property
    def paths(self) -> WorkloadPaths:
        """Where the workload's files are."""
        return self.workload.paths

    def can_connect(self) -> bool:
        """Whether Pebble answers."""
        return self.container.can_connect()

    def write(self, path: PurePosixPath, content: str, *, secret: bool = False) -> bool:
        """Write a file if its content changed; files holding secrets are mode 0600.

        Returns:
            Whether the file changed.
        """
        workload = self.workload
        return push_if_changed(
            self.container, path, content, secret=secret, user=workload.user, group=workload.group
        )

    def is_formatted(self) -> bool:
        """Whether the storage holds a formatted KRaft log directory."""
        return self.container.exists(self.paths.meta_properties)

    def own_storage(self) -> None:
        """Give the storage mount to the workload user, as a newly attached volume is root's.

        Only the mount's own owner is checked, so the recursive `chown` runs once per attach.

        Raises:
            WorkloadError: if `chown` fails.
        """
        data = self.paths.data
        if not self.container.exists(data):
            return
        info = self.container.list_files(data, itself=True)[0]
        if info.user == self.workload.user and info.group == self.workload.group:
            return
        owner = f"{self.workload.user}:{self.workload.group}"
        try:
            self.container.exec(["chown", "-R", owner, str(data)]).wait_output()
        except ops.pebble.ExecError as error:
            stderr = error.stderr if isinstance(error.stderr, str) else ""
            raise WorkloadError(f"could not give {data} to {owner}: {stderr.strip()}") from None
        logger.info("storage %s given to %s", data, owner)

    def check_storage(self, settings: BrokerSettings) -> None:
        """Refuse storage formatted for another cluster or node, before the broker crash-loops.

        Raises:
            WorkloadError: naming the cluster and node the storage belongs to.
        """
        if not self.is_formatted():
            return
        with self.container.pull(self.paths.meta_properties) as meta:
            lines = meta.read().splitlines()
        found = dict(line.split("=", 1) for line in lines if "=" in line and line[0] != "#")
        cluster_id = found.get("cluster.id", "").strip()
        node = found.get("node.id", "").strip()
        wrong_cluster = cluster_id != settings.cluster_id
        wrong_node = node not in ("", str(settings.node.node_id))
        if wrong_cluster or wrong_node:
            raise WorkloadError(
                f"storage {self.paths.data} holds cluster {cluster_id or '?'} node {node or '?'}, "
                f"this unit is cluster {settings.cluster_id} node {settings.node.node_id}: "
                "attach this unit's own or empty storage"
            )

    def format_storage(self, settings: BrokerSettings) -> None:
        """Format the storage with the cluster id and the internal SCRAM users, once.

        The SCRAM arguments hold passwords, so they reach the tool in an argument file (mode
        0600, removed after), never in its command line.

        Raises:
            WorkloadError: if the format command fails.
        """
        if self.is_formatted():
            return
        credentials = settings.credentials
        arguments: list[str] = []
        for user, password in credentials.scram_users.items():
            arguments += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]"]
        arguments_file = self.paths.format_arguments
        self.write(arguments_file, "".join(f"{arg}\n" for arg in arguments), secret=True)
        command = [
            f"{self.paths.bin}/kafka-storage.sh",
            "format",
            "--ignore-formatted",
            # One argument: an id that begins with "-" would read as an option after "-t".
            f"--cluster-id={settings.cluster_id}",
            "-c",
            str(self.paths.server_properties),
            f"@{arguments_file}",
        ]
        try:
            self.container.exec(
                command,
                user=self.workload.user,
                group=self.workload.group,
                environment={
                    "KAFKA_HEAP_OPTS": "-Xmx128m",
                    "JAVA_HOME": str(self.workload.java_home),
                },
            ).wait_output()
        except ops.pebble.ExecError as error:
            stderr = error.stderr if isinstance(error.stderr, str) else ""
            for password in credentials.scram_users.values():
                stderr = stderr.replace(password, "***")
            raise WorkloadError(f"storage format failed: {stderr.strip()[-300:]}") from None
        finally:
            self.container.remove_path(arguments_file, recursive=True)
        logger.info("formatted storage for cluster %s", settings.cluster_id)

    def configure(self, settings: BrokerSettings) -> bool:
        """Write every file the broker reads.

        Returns:
            Whether `server.properties` changed (the broker must restart to read it).
        """
        paths = self.paths
        self.write(paths.broker_jmx_config, render_broker_jmx_rules())
        self._write_tls(settings.tls)
        self.write(
            paths.client_properties,
            render_client_properties(ADMIN_USER, settings.credentials.admin_password),
            secret=True,
        )
        return self.write(paths.server_properties, render_server_properties(settings), secret=True)

    def _write_tls(self, tls: ServerTls | None) -> None:
        """The served chain and its CA as PEM files (no key: that is only in server.properties).

        They are what Kafka's bin scripts on the unit verify with, and what the charm reads back
        while the provider signs a new request (`served_tls`).
        """
        paths = self.paths
        if tls is None:
            for path in (paths.tls_chain, paths.tls_ca):
                if self.container.exists(path):
                    self.container.remove_path(path)
            return
        self.write(paths.tls_chain, tls.chain)
        self.write(paths.tls_ca, tls.ca)

    def served_tls(self) -> tuple[str, str]:
        """The chain and CA the client listeners were last configured with (empty if none)."""
        texts = []
        for path in (self.paths.tls_chain, self.paths.tls_ca):
            try:
                with self.container.pull(path) as file:
                    texts.append(file.read())
            except (ops.pebble.PathError, ops.pebble.ConnectionError):
                texts.append("")
        return texts[0], texts[1]

    def started_with(self) -> StartRecord | None:
        """What the running broker was started with, as recorded when the charm started it.

        The record lives in the container's own filesystem, which lasts as long as the pod: a
        new pod has neither a running broker nor a record.
        """
        try:
            with self.container.pull(self.paths.start_record) as record:
                return StartRecord.model_validate_json(record.read())
        except (ops.pebble.PathError, ValueError):
            return None

    def _record_start(self, settings: BrokerSettings) -> None:
        record = StartRecord(
            digest=restart_digest(settings),
            inter_broker_user=settings.credentials.inter_broker_user,
            client_tls=settings.tls is not None,
        )
        self.write(self.paths.start_record, record.model_dump_json(), secret=True)

    def start(self, settings: BrokerSettings) -> None:
        """Start the broker with these settings, if it does not run."""
        if self.is_running():
            return
        self.container.add_layer(KAFKA_SERVICE, kafka_layer(settings), combine=True)
        self.container.replan()
        self._record_start(settings)

    def restart(self, settings: BrokerSettings) -> None:
        """Restart the broker now, with these settings: only under the rolling-restart lock."""
        self.container.add_layer(KAFKA_SERVICE, kafka_layer(settings), combine=True)
        self.container.restart(KAFKA_SERVICE)
        self._record_start(settings)

    def needs_restart(self, settings: BrokerSettings) -> bool:
        """Whether the running broker was started with other settings than these.

        The options Kafka changes at run time do not count: they are applied without a restart.
        """
        if not self.is_running():
            return False
        record = self.started_with()
        return record is None or record.digest != restart_digest(settings)

    def reconcile(self, settings: BrokerSettings) -> bool:
        """Make the workload match the settings: files, storage, and a broker that runs.

        A running broker is never restarted here: restarts go one unit at a time, through the
        rolling-restart lock (`rolling.restart_in_turn`).

        Returns:
            Whether the running broker must restart to apply the settings.
        """
        self.configure(settings)
        self.own_storage()
        self.check_storage(settings)
        self.format_storage(settings)
        self.start(settings)
        return self.needs_restart(settings)

    def is_running(self) -> bool:
        """Whether the broker service is active."""
        try:
            service = self.container.get_service(KAFKA_SERVICE)
        except ops.ModelError:
            return False
        return service.is_running()

    def is_ready(self) -> bool:
        """Whether the broker's readiness check passes."""
        checks = self.container.get_checks(KAFKA_READY_CHECK)
        check = checks.get(KAFKA_READY_CHECK)
        return check is not None and check.status == ops.pebble.CheckStatus.UP
