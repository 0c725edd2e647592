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
# The brokers authenticate to each other as one of two users, in turn: a rotation sets a new
# password on the one no broker uses, and the brokers move onto it one restart at a time, while
# those not restarted yet still log in as the other (see README, "The broker").
REPLICATION_USERS = ("replication-a", "replication-b")
INTERNAL_USERS = (ADMIN_USER, CONTROLLER_USER, MIRRORMAKER_USER, *REPLICATION_USERS)
# MirrorMaker is not one: the leader grants it only what it needs (`acls.mirrormaker_acls`).
SUPER_USERS = (ADMIN_USER, CONTROLLER_USER, *REPLICATION_USERS)


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
    def tls_chain(self) -> PurePosixPath:
        """The certificate chain the client listeners serve (PEM), while TLS is on."""
        return self.etc / "tls-chain.pem"

    @property
    def tls_ca(self) -> PurePosixPath:
        """The CA of that chain (PEM): what clients, also Kafka's bin scripts, verify with."""
        return self.etc / "tls-ca.pem"

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
    def start_record(self) -> PurePosixPath:
        """What the running broker was started with (a digest, its inter-broker user)."""
        return self.etc / "broker-started.json"

    @property
    def format_arguments(self) -> PurePosixPath:
        """The storage format's argument file, holding the SCRAM passwords while it runs."""
        return self.etc / "format-arguments"

    @property
    def meta_properties(self) -> PurePosixPath:
        """Written by the storage format; its presence means the storage is formatted."""
        return self.data / "data/meta.properties"


class WorkloadPorts(BaseModel):
    """TCP ports of one unit; Canonical's ports by default."""

    model_config = ConfigDict(frozen=True)

    client: int = 9092
    # The client listener with TLS (SASL_SSL), instead of `client`, while a certificate is set.
    client_tls: int = 9093
    internal: int = 19092
    # The listener that clients outside Kubernetes reach through a Service (expose-external).
    external: int = 29092
    controller: int = 9097
    broker_metrics: int = 9101
    mirrormaker_metrics: int = 9099
    mirrormaker_rest: int = 8083


# The JDK of the pinned charmed-kafka rock. Its own `kafka` service sets JAVA_HOME to it, and so
# does Canonical's Pebble layer at that digest: the container's environment does not, so every
# service and exec that runs Java sets it (README, "The broker").
ROCK_JAVA_HOME = PurePosixPath("/usr/lib/jvm/java-18-openjdk-amd64")


class Workload(BaseModel):
    """How the workload runs: where its files are, as which user, on which ports, which JDK."""

    model_config = ConfigDict(frozen=True)

    paths: WorkloadPaths = WorkloadPaths()
    user: str = "kafka"
    group: str = "kafka"
    ports: WorkloadPorts = WorkloadPorts()
    java_home: PurePosixPath = ROCK_JAVA_HOME

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
            java_home=self.java_home,
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
    def client_tls_address(self) -> str:
        """`HOST:PORT` of the client listener with TLS."""
        return f"{self.host}:{self.ports.client_tls}"

    @property
    def internal_address(self) -> str:
        """`HOST:PORT` of the internal (inter-broker) listener."""
        return f"{self.host}:{self.ports.internal}"


class InternalCredentials(BaseModel):
    """Passwords of the users the charm itself uses; they live in a Juju secret.

    `pending` holds the passwords of a rotation under way, by user: stored before any of them is
    set in Kafka, so a rotation that stops anywhere is finished by running it again.
    """

    model_config = ConfigDict(frozen=True)

    admin_password: str = Field(min_length=1, repr=False)
    controller_password: str = Field(min_length=1, repr=False)
    mirrormaker_password: str = Field(min_length=1, repr=False)
    replication_passwords: dict[str, str] = Field(default_factory=dict, repr=False)
    # `admin` on clusters made before the replication users existed.
    inter_broker_user: str = ADMIN_USER
    pending: dict[str, str] = Field(default_factory=dict, repr=False)

    def password(self, user: str) -> str:
        """The current password of an internal user."""
        if user in self.replication_passwords:
            return self.replication_passwords[user]
        return {
            ADMIN_USER: self.admin_password,
            CONTROLLER_USER: self.controller_password,
            MIRRORMAKER_USER: self.mirrormaker_password,
        }[user]

    @property
    def inter_broker_password(self) -> str:
        """The password the brokers log in to each other with."""
        return self.password(self.inter_broker_user)

    @property
    def next_inter_broker_user(self) -> str:
        """The replication user no broker uses: the one a rotation moves the brokers onto."""
        current = self.inter_broker_user
        return REPLICATION_USERS[1] if current == REPLICATION_USERS[0] else REPLICATION_USERS[0]

    @property
    def scram_users(self) -> dict[str, str]:
        """Every internal SCRAM user with its current password."""
        users = {
            ADMIN_USER: self.admin_password,
            MIRRORMAKER_USER: self.mirrormaker_password,
            **self.replication_passwords,
        }
        return users

    def admin_passwords(self) -> list[str]:
        """The admin passwords Kafka may hold: the current one, then a pending one."""
        pending = self.pending.get(ADMIN_USER)
        return [self.admin_password, *([pending] if pending else [])]

    def committed(self) -> InternalCredentials:
        """The credentials once every pending password is set in Kafka.

        A pending replication user becomes the brokers' inter-broker user.
        """
        pending = self.pending
        replication = {**self.replication_passwords}
        inter_broker = self.inter_broker_user
        for user in REPLICATION_USERS:
            if user in pending:
                replication[user] = pending[user]
                inter_broker = user
        return self.model_copy(
            update={
                "admin_password": pending.get(ADMIN_USER, self.admin_password),
                "mirrormaker_password": pending.get(MIRRORMAKER_USER, self.mirrormaker_password),
                "replication_passwords": replication,
                "inter_broker_user": inter_broker,
                "pending": {},
            }
        )
