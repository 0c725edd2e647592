# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The types every part of the charm shares: the workload's layout, a broker, internal users.

`Workload` describes the `kafka` container once: where the rock keeps Kafka, the user it runs
as, and the ports of the broker and of MirrorMaker. The broker is configured from it, and the
migration library's `MirrorMakerWorkload` is built from it (`Workload.mirrormaker`).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from pydantic import BaseModel, ConfigDict, Field

from charms.kafka_k8s.v0.mirrormaker import MirrorMakerWorkload

SCRAM_MECHANISM = "SCRAM-SHA-512"
ADMIN_USER = "admin"
CONTROLLER_USER = "controller"
MIRRORMAKER_USER = "mirrormaker"
INTERNAL_USERS = (ADMIN_USER, CONTROLLER_USER, MIRRORMAKER_USER)
# MirrorMaker is not one: the leader grants it only what it needs (`acls.mirrormaker_acls`).
SUPER_USERS = (ADMIN_USER, CONTROLLER_USER)


class WorkloadPaths(BaseModel):
    """Where the rock keeps Kafka. `root` moves all of it, for the local test tier."""

    model_config = ConfigDict(frozen=True)

    root: PurePosixPath = PurePosixPath("/")

    @property
    def opt(self) -> PurePosixPath:
        """Kafka's installation: `bin/`, `libs/`."""
        return self.root / "opt/kafka"

    @property
    def bin(self) -> PurePosixPath:
        """Kafka's shell scripts."""
        return self.opt / "bin"

    @property
    def etc(self) -> PurePosixPath:
        """Configuration files the workload reads."""
        return self.root / "etc/kafka"

    @property
    def data(self) -> PurePosixPath:
        """The storage mount: log directories and KRaft metadata."""
        return self.root / "var/lib/kafka"

    @property
    def logs(self) -> PurePosixPath:
        """The workload's own log files."""
        return self.root / "var/log/kafka"

    @property
    def server_properties(self) -> PurePosixPath:
        """The broker configuration."""
        return self.etc / "server.properties"

    @property
    def client_properties(self) -> PurePosixPath:
        """Admin client configuration for Kafka's bin scripts on the unit."""
        return self.etc / "client.properties"

    @property
    def jmx_exporter(self) -> PurePosixPath:
        """The Prometheus JMX exporter java agent."""
        return self.opt / "libs/jmx_prometheus_javaagent.jar"

    @property
    def broker_jmx_config(self) -> PurePosixPath:
        """JMX exporter rules for the broker."""
        return self.etc / "jmx_prometheus.yaml"

    @property
    def meta_properties(self) -> PurePosixPath:
        """Written by the storage format; its presence means the storage is formatted."""
        return self.data / "data/meta.properties"


class WorkloadPorts(BaseModel):
    """TCP ports of one unit; Canonical's ports by default."""

    model_config = ConfigDict(frozen=True)

    client: int = 9092
    internal: int = 19092
    controller: int = 9097
    broker_metrics: int = 9101
    mirrormaker_metrics: int = 9099
    mirrormaker_rest: int = 8083


class Workload(BaseModel):
    """How the workload runs: where its files are, as which user, on which ports."""

    model_config = ConfigDict(frozen=True)

    paths: WorkloadPaths = WorkloadPaths()
    user: str = "kafka"
    group: str = "kafka"
    ports: WorkloadPorts = WorkloadPorts()

    def mirrormaker(self, *, heap_mb: int = 1024, metrics_host: str = "") -> MirrorMakerWorkload:
        """The same container as the migration library describes MirrorMaker's side of it."""
        return MirrorMakerWorkload(
            root=self.paths.root,
            user=self.user,
            group=self.group,
            rest_port=self.ports.mirrormaker_rest,
            metrics_port=self.ports.mirrormaker_metrics,
            metrics_host=metrics_host,
            heap_mb=heap_mb,
        )


class BrokerNode(BaseModel):
    """One unit of the cluster as its peers see it."""

    model_config = ConfigDict(frozen=True)

    node_id: int = Field(ge=0)
    host: str
    ports: WorkloadPorts = WorkloadPorts()

    @property
    def controller_address(self) -> str:
        """`HOST:PORT` of the controller listener."""
        return f"{self.host}:{self.ports.controller}"

    @property
    def client_address(self) -> str:
        """`HOST:PORT` of the client listener."""
        return f"{self.host}:{self.ports.client}"

    @property
    def internal_address(self) -> str:
        """`HOST:PORT` of the internal (inter-broker) listener."""
        return f"{self.host}:{self.ports.internal}"


class InternalCredentials(BaseModel):
    """Passwords of the users the charm itself uses; they live in a Juju secret."""

    model_config = ConfigDict(frozen=True)

    admin_password: str = Field(min_length=1, repr=False)
    controller_password: str = Field(min_length=1, repr=False)
    mirrormaker_password: str = Field(min_length=1, repr=False)

    def password(self, user: str) -> str:
        """The password of an internal user."""
        return {
            ADMIN_USER: self.admin_password,
            CONTROLLER_USER: self.controller_password,
            MIRRORMAKER_USER: self.mirrormaker_password,
        }[user]
