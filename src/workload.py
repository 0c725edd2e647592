# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The Kafka broker workload: typed settings, rendered files, the Pebble layer, the container.

Rendering `server.properties` and building the Pebble layer are pure functions of
`BrokerSettings`. `KafkaWorkload` is the thin part that talks to the container: it pushes the
rendered files, formats the storage once, and replans. The same code runs under ops.testing,
against a real Pebble daemon in the local tier (`substrate/`), and in Juju.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Literal

import jinja2
import ops
from pydantic import BaseModel, ConfigDict, Field

from config import BrokerConfig
from files import jaas_escape, properties_escape, push_if_changed, scram_jaas
from models import (
    ADMIN_USER,
    CONTROLLER_USER,
    INTERNAL_USERS,
    MIRRORMAKER_USER,
    SCRAM_MECHANISM,
    SUPER_USERS,
    BrokerNode,
    InternalCredentials,
    Workload,
    WorkloadPaths,
)

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
        internal_jaas=properties_escape(scram_jaas(ADMIN_USER, credentials.admin_password)),
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
                "tcp": {"port": settings.node.ports.client},
            },
        },
    }


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

    def format_storage(self, settings: BrokerSettings) -> None:
        """Format the storage with the cluster id and the internal SCRAM users, once.

        Raises:
            WorkloadError: if the format command fails.
        """
        if self.is_formatted():
            return
        credentials = settings.credentials
        command = [
            f"{self.paths.bin}/kafka-storage.sh",
            "format",
            "--ignore-formatted",
            "-t",
            settings.cluster_id,
            "-c",
            str(self.paths.server_properties),
        ]
        for user in (ADMIN_USER, MIRRORMAKER_USER):
            command += [
                "--add-scram",
                f"{SCRAM_MECHANISM}=[name={user},password={credentials.password(user)}]",
            ]
        try:
            self.container.exec(
                command,
                user=self.workload.user,
                group=self.workload.group,
                environment={"KAFKA_HEAP_OPTS": "-Xmx128m"},
            ).wait_output()
        except ops.pebble.ExecError as error:
            stderr = error.stderr if isinstance(error.stderr, str) else ""
            for user in INTERNAL_USERS:
                stderr = stderr.replace(credentials.password(user), "***")
            raise WorkloadError(f"storage format failed: {stderr.strip()[-300:]}") from None
        logger.info("formatted storage for cluster %s", settings.cluster_id)

    def configure(self, settings: BrokerSettings) -> bool:
        """Write every file the broker reads.

        Returns:
            Whether `server.properties` changed (the broker must restart to read it).
        """
        paths = self.paths
        self.write(paths.broker_jmx_config, render_broker_jmx_rules())
        self.write(
            paths.client_properties,
            render_client_properties(ADMIN_USER, settings.credentials.admin_password),
            secret=True,
        )
        return self.write(paths.server_properties, render_server_properties(settings), secret=True)

    def start(self, settings: BrokerSettings, *, restart: bool) -> None:
        """Add the layer and bring the service to its planned state."""
        self.container.add_layer(KAFKA_SERVICE, kafka_layer(settings), combine=True)
        self.container.replan()
        if restart:
            self.container.restart(KAFKA_SERVICE)

    def reconcile(self, settings: BrokerSettings) -> None:
        """Make the workload match the settings: files, storage, service."""
        changed = self.configure(settings)
        self.format_storage(settings)
        was_running = self.is_running()
        self.start(settings, restart=changed and was_running)

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
