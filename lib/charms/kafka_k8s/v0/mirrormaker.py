# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Migrate an existing Kafka cluster into this one with MirrorMaker 2.

Every unit of the host charm runs one MirrorMaker 2 node (dedicated mode, KIP-710) as a Pebble
service in the workload container; together the nodes form one distributed MirrorMaker cluster
that copies topics, records, topic configs, topic ACLs and consumer-group offsets from a source
cluster into the local one, without writing to the source.

The source is either the `migration-source` relation (interface `kafka_client`, requirer side of
`data_platform_helpers.interfaces`) or any reachable Kafka named by the
`mirrormaker-source-bootstrap-servers` option plus a Juju user secret in
`mirrormaker-source-credentials` (keys `username`, `password`, optional `sasl-mechanism`,
`security-protocol`, `ca`). The actions `start-migration` (with `dry-run`), `stop-migration` and
`migration-status` work from any unit: a request goes into the acting unit's peer databag, and
every unit follows the newest request it sees.

The host charm declares the `mirrormaker-*` options, the three actions and the
`migration-source` relation (see this project's `charmcraft.yaml`), creates a SCRAM user for
MirrorMaker on its own cluster, routes its state-changing events to one reconcile, and shows the
library's status in collect-status. The library never sets a status itself:

```python
from charms.kafka_k8s.v0.mirrormaker import Migration, TargetCluster


class KafkaCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.migration = Migration(self, target=self._migration_target, unit_host=self._host)
        framework.observe(self.on.config_changed, self._reconcile)
        framework.observe(self.on["migration-source"].relation_changed, self._reconcile)
        ...  # peer relation, secret-changed, update-status, pebble-ready: also _reconcile
        framework.observe(self.on.collect_unit_status, self._on_collect_unit_status)

    def _migration_target(self) -> TargetCluster | None:
        if not self.broker_ready():
            return None
        return TargetCluster(
            bootstrap_servers=self.internal_addresses(),
            username="mirrormaker",
            password=self.mirrormaker_password(),
        )

    def _reconcile(self, _: ops.EventBase) -> None:
        ...  # the broker first
        self.migration.reconcile()

    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if status := self.migration.status():
            event.add_status(status)  # before the charm's own ActiveStatus
        event.add_status(ops.ActiveStatus())
```

`render_mm2_properties` and `mirrormaker_layer` are pure functions of `MirrorMakerSettings`;
`MirrorMakerService` applies them to an `ops.Container`. Both run unchanged against a real Pebble.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeoutError
from pathlib import PurePosixPath
from typing import Any, Literal, cast

import jinja2
import ops
from confluent_kafka import IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from data_platform_helpers.interfaces import (
    KafkaRequestModel,
    KafkaResponseModel,
    ResourceRequirerEventHandler,
)
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

# The unique Charmhub library identifier, never change it
LIBID = "73df6b64b18841119bd7003567f919fd"

# Increment this major API version when introducing breaking changes
LIBAPI = 0

# Increment this PATCH version before using `charmcraft publish-lib` or reset
# to 0 if you are raising the major API version
LIBPATCH = 1

PYDEPS = [
    "pydantic>=2.7",
    "jinja2>=3.1",
    "data-platform-helpers>=1.1",
    "confluent-kafka>=2.6",
]

logger = logging.getLogger(__name__)

SERVICE = "mirrormaker"
SOURCE_ALIAS = "source"
TARGET_ALIAS = "target"
REQUEST_KEY = "mirrormaker-request"
STATE_KEY = "mirrormaker-state"
CLIENT_TIMEOUT = 10.0
MAX_LISTED = 200

SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
SecurityProtocol = Literal["SASL_PLAINTEXT", "SASL_SSL"]
ExactlyOnceSupport = Literal["disabled", "preparing", "enabled"]
RequestedState = Literal["running", "stopped"]

SASL_MECHANISMS: tuple[str, ...] = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
SECURITY_PROTOCOLS: tuple[str, ...] = ("SASL_PLAINTEXT", "SASL_SSL")
SECRET_KEYS = ("username", "password", "sasl-mechanism", "security-protocol", "ca")
POLICY_CLASSES = {
    "identity": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
    "prefixed": "org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
}


# Errors ----------------------------------------------------------------------------------------


class MigrationError(Exception):
    """Why the migration cannot run as configured; the message tells the operator what to do."""

    waiting = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def status(self) -> ops.StatusBase:
        """The status that shows this problem."""
        if self.waiting:
            return ops.WaitingStatus(self.message)
        return ops.BlockedStatus(self.message)


class InvalidOptionError(MigrationError):
    """A `mirrormaker-*` option holds a value the migration cannot use."""

    def __init__(self, option: str, reason: str):
        super().__init__(f"invalid config {option}: {reason}")
        self.option = option
        self.reason = reason


class SourceError(MigrationError):
    """The source cluster is not configured, configured twice, or its credentials are wrong."""


class NotReadyError(MigrationError):
    """Something the migration needs is not there yet; it comes without operator action."""

    waiting = True


class ClusterUnreachableError(MigrationError):
    """A cluster did not answer an admin request within the timeout, or refused it."""


# Typed inputs ----------------------------------------------------------------------------------


def _split(value: object) -> object:
    """Split a comma-separated option into its stripped, non-empty items."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


_JAVA_BRACE = re.compile(r"\\.|\[(?:\\.|[^\]])*\]|\{(?!\d+(?:,\d*)?\})")


def _check_regexes(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """Check each pattern compiles, and that Java would take it too.

    MirrorMaker compiles the patterns with `java.util.regex`, which, unlike Python, refuses a
    `{` that does not open a `{n}`, `{n,}` or `{n,m}` quantifier. The list is split on commas
    (by MirrorMaker too), so `{n,m}` itself cannot be used.
    """
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"{pattern!r} is not a valid regular expression ({error})") from None
        if any(match.group() == "{" for match in _JAVA_BRACE.finditer(pattern)):
            raise ValueError(
                f"{pattern!r} is not a valid regular expression (a '{{' must open a {{n}} or "
                "{n,} quantifier; commas separate expressions)"
            )
    return patterns


def _check_servers(servers: tuple[str, ...]) -> tuple[str, ...]:
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or " " in server:
            raise ValueError(f"{server!r} is not HOST:PORT")
    return servers


class KafkaCluster(BaseModel):
    """How to reach and log in to a Kafka cluster."""

    model_config = ConfigDict(frozen=True)

    bootstrap_servers: tuple[str, ...] = Field(min_length=1)
    username: str = Field(min_length=1)
    password: str = Field(min_length=1, repr=False)
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    security_protocol: SecurityProtocol = "SASL_PLAINTEXT"
    ca: str | None = Field(default=None, repr=False)

    _split_servers = field_validator("bootstrap_servers", mode="before")(_split)
    _valid_servers = field_validator("bootstrap_servers")(_check_servers)

    @property
    def bootstrap(self) -> str:
        """The `bootstrap.servers` value."""
        return ",".join(self.bootstrap_servers)

    @property
    def login_module(self) -> str:
        """The JAAS login module of the SASL mechanism."""
        if self.sasl_mechanism == "PLAIN":
            return "org.apache.kafka.common.security.plain.PlainLoginModule"
        return "org.apache.kafka.common.security.scram.ScramLoginModule"

    @property
    def jaas_config(self) -> str:
        """The `sasl.jaas.config` value, quoted for the JAAS parser."""
        return (
            f'{self.login_module} required username="{jaas_escape(self.username)}" '
            f'password="{jaas_escape(self.password)}";'
        )


class SourceCluster(KafkaCluster):
    """The cluster to migrate from; `name` is how status messages call it."""

    name: str = Field(min_length=1)


class TargetCluster(KafkaCluster):
    """The local cluster, reached with the host charm's MirrorMaker user."""


class MigrationConfig(BaseModel):
    """The `mirrormaker-*` options, by their option names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    source_bootstrap_servers: tuple[str, ...] = Field(
        default=(), validation_alias="mirrormaker-source-bootstrap-servers"
    )
    source_credentials: str | None = Field(
        default=None, validation_alias="mirrormaker-source-credentials"
    )
    topics: tuple[str, ...] = Field(
        default=(".*",), min_length=1, validation_alias="mirrormaker-topics"
    )
    topics_exclude: tuple[str, ...] = Field(
        default=(r".*[\-\.]internal", r".*\.replica", "__.*"),
        validation_alias="mirrormaker-topics-exclude",
    )
    groups: tuple[str, ...] = Field(
        default=(".*",), min_length=1, validation_alias="mirrormaker-groups"
    )
    groups_exclude: tuple[str, ...] = Field(
        default=("console-consumer-.*", "connect-.*", "__.*"),
        validation_alias="mirrormaker-groups-exclude",
    )
    tasks_max: int = Field(default=6, ge=1, le=1000, validation_alias="mirrormaker-tasks-max")
    sync_group_offsets: bool = Field(
        default=True, validation_alias="mirrormaker-sync-group-offsets"
    )
    sync_topic_configs: bool = Field(
        default=True, validation_alias="mirrormaker-sync-topic-configs"
    )
    sync_topic_acls: bool = Field(default=False, validation_alias="mirrormaker-sync-topic-acls")
    exactly_once: bool = Field(default=False, validation_alias="mirrormaker-exactly-once")
    refresh_interval: int = Field(
        default=30, ge=5, le=86400, validation_alias="mirrormaker-refresh-interval"
    )
    replication_policy: Literal["identity", "prefixed"] = Field(
        default="identity", validation_alias="mirrormaker-replication-policy"
    )

    _split_lists = field_validator(
        "source_bootstrap_servers",
        "topics",
        "topics_exclude",
        "groups",
        "groups_exclude",
        mode="before",
    )(_split)
    _valid_servers = field_validator("source_bootstrap_servers")(_check_servers)
    _valid_regexes = field_validator("topics", "topics_exclude", "groups", "groups_exclude")(
        _check_regexes
    )

    @field_validator("source_credentials", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return value or None

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> MigrationConfig:
        """Validate Juju config options; other options are ignored.

        Raises:
            InvalidOptionError: naming the first option that is wrong, and why.
        """
        known = {str(field.validation_alias) for field in cls.model_fields.values()}
        try:
            return cls.model_validate({k: v for k, v in options.items() if k in known})
        except ValidationError as error:
            first = error.errors()[0]
            option = str(first["loc"][0]) if first["loc"] else "mirrormaker"
            reason = first["msg"].removeprefix("Value error, ")
            if first["type"] == "too_short":
                reason = "needs at least one regular expression"
            raise InvalidOptionError(option, reason[:1].lower() + reason[1:]) from None

    def target_topic(self, topic: str) -> str:
        """The name a source topic gets on the target under the replication policy."""
        return topic if self.replication_policy == "identity" else f"{SOURCE_ALIAS}.{topic}"


class MirrorMakerWorkload(BaseModel):
    """Where MirrorMaker's files are, as whom it runs, its ports and heap.

    Defaults are the charmed-kafka rock's; the local test tier moves `root` and the ports.
    """

    model_config = ConfigDict(frozen=True)

    root: PurePosixPath = PurePosixPath("/")
    user: str = "kafka"
    group: str = "kafka"
    rest_port: int = Field(default=8083, gt=0, lt=65536)
    metrics_port: int = Field(default=9099, gt=0, lt=65536)
    metrics_host: str = ""
    heap_mb: int = Field(default=1024, ge=128)

    @property
    def opt(self) -> PurePosixPath:
        """Kafka's installation."""
        return self.root / "opt/kafka"

    @property
    def etc(self) -> PurePosixPath:
        """Configuration files the workload reads."""
        return self.root / "etc/kafka"

    @property
    def logs(self) -> PurePosixPath:
        """The workload's log directory."""
        return self.root / "var/log/kafka"

    @property
    def mm2_properties(self) -> PurePosixPath:
        """The MirrorMaker configuration; it holds passwords."""
        return self.etc / "mm2.properties"

    @property
    def jmx_config(self) -> PurePosixPath:
        """JMX exporter rules for MirrorMaker."""
        return self.etc / "jmx_mirrormaker.yaml"

    @property
    def jmx_agent(self) -> PurePosixPath:
        """The Prometheus JMX exporter java agent."""
        return self.opt / "libs/jmx_prometheus_javaagent.jar"

    @property
    def command(self) -> str:
        """The service command: this node runs only the flows into the target."""
        return (
            f"{self.opt}/bin/connect-mirror-maker.sh {self.mm2_properties} "
            f"--clusters {TARGET_ALIAS}"
        )


class MirrorMakerSettings(BaseModel):
    """Everything `mm2.properties` and the Pebble layer of one unit are made from."""

    model_config = ConfigDict(frozen=True)

    source: SourceCluster
    target: TargetCluster
    config: MigrationConfig = MigrationConfig()
    unit_host: str = Field(min_length=1)
    units: int = Field(default=1, ge=1)
    exactly_once_mode: ExactlyOnceSupport | None = None
    workload: MirrorMakerWorkload = MirrorMakerWorkload()

    @property
    def replication_factor(self) -> int:
        """Replication factor of everything MirrorMaker creates on the target."""
        return min(3, self.units)

    @property
    def exactly_once_support(self) -> ExactlyOnceSupport:
        """The worker's `exactly.once.source.support`."""
        if self.exactly_once_mode is not None:
            return self.exactly_once_mode
        return "enabled" if self.config.exactly_once else "disabled"


# Rendering ------------------------------------------------------------------------------------


def jaas_escape(value: str) -> str:
    r"""Quote a value for a JAAS option between double quotes.

    Kafka parses `sasl.jaas.config` with `java.io.StreamTokenizer`: inside quotes a backslash
    escapes the next character, and a raw line break ends the string, so it becomes `\n`.
    """
    return (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )


def properties_escape(value: str) -> str:
    r"""Escape the value of a `key=value` line so `java.util.Properties.load` reads it intact.

    After the separator only backslashes, line breaks and leading blanks are special. The file
    stays ASCII (Properties reads ISO 8859-1): other characters become `\uXXXX`, outside the
    BMP as a UTF-16 surrogate pair.
    """
    escaped = []
    for index, char in enumerate(value):
        code = ord(char)
        if char == "\\":
            escaped.append("\\\\")
        elif char in "\n\r\t\f":
            escaped.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}[char])
        elif char == " " and index == 0:
            escaped.append("\\ ")
        elif code > 0xFFFF:
            code -= 0x10000
            escaped.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        elif code > 0x7E or code < 0x20:
            escaped.append(f"\\u{code:04x}")
        else:
            escaped.append(char)
    return "".join(escaped)


def _property_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return properties_escape(str(value))


MM2_TEMPLATE = """\
# Rendered by the kafka_k8s mirrormaker charm library. Changes made by hand are overwritten.
# One node of a dedicated MirrorMaker 2 cluster, started with `--clusters {{ target }}`: it
# runs only the flow into {{ target }}, and writes nothing to {{ source }}.

clusters={{ source }},{{ target }}
{{ source }}->{{ target }}.enabled=true
{{ target }}->{{ source }}.enabled=false
# Heartbeats go to the target only; no herder emits them into the source (KAFKA-10710).
{{ source }}->{{ target }}.emit.heartbeats.enabled=true
{{ target }}->{{ source }}.emit.heartbeats.enabled=false
# Offset syncs live on the target, not on the source (KIP-716).
offset-syncs.topic.location=target
replication.policy.class={{ policy_class }}

# The nodes form one cluster through their internal REST servers (KIP-710).
dedicated.mode.enable.internal.rest=true
listeners=http://{{ unit_host }}:{{ workload.rest_port }}
rest.advertised.listener=http
rest.advertised.host.name={{ unit_host }}
rest.advertised.port={{ workload.rest_port }}

{% for alias, cluster in (source, settings.source), (target, settings.target) %}
{{ alias }}.bootstrap.servers={{ cluster.bootstrap }}
{{ alias }}.security.protocol={{ cluster.security_protocol }}
{{ alias }}.sasl.mechanism={{ cluster.sasl_mechanism }}
{{ alias }}.sasl.jaas.config={{ cluster.jaas_config }}
{% if cluster.security_protocol == "SASL_SSL" and cluster.ca %}
{{ alias }}.ssl.truststore.type=PEM
{{ alias }}.ssl.truststore.certificates={{ cluster.ca }}
{% endif %}
{{ alias }}.consumer.isolation.level=read_committed

{% endfor %}
{{ target }}.producer.enable.idempotence=true
{{ target }}.producer.acks=all
{{ target }}.exactly.once.source.support={{ settings.exactly_once_support }}

topics={{ config.topics | join(",") }}
topics.exclude={{ config.topics_exclude | join(",") }}
groups={{ config.groups | join(",") }}
groups.exclude={{ config.groups_exclude | join(",") }}
tasks.max={{ config.tasks_max }}

refresh.topics.enabled=true
refresh.topics.interval.seconds={{ config.refresh_interval }}
refresh.groups.enabled=true
refresh.groups.interval.seconds={{ config.refresh_interval }}
sync.topic.configs.enabled={{ config.sync_topic_configs }}
sync.topic.configs.interval.seconds={{ config.refresh_interval }}
sync.topic.acls.enabled={{ config.sync_topic_acls }}
sync.topic.acls.interval.seconds={{ config.refresh_interval }}
emit.checkpoints.enabled=true
emit.checkpoints.interval.seconds={{ config.refresh_interval }}
sync.group.offsets.enabled={{ config.sync_group_offsets }}
sync.group.offsets.interval.seconds={{ config.refresh_interval }}

replication.factor={{ rf }}
checkpoints.topic.replication.factor={{ rf }}
heartbeats.topic.replication.factor={{ rf }}
offset-syncs.topic.replication.factor={{ rf }}
config.storage.replication.factor={{ rf }}
offset.storage.replication.factor={{ rf }}
status.storage.replication.factor={{ rf }}
"""

JMX_RULES = """\
# Prometheus JMX exporter rules for MirrorMaker 2, rendered by the kafka_k8s mirrormaker library.
lowercaseOutputName: true
lowercaseOutputLabelNames: true
rules:
  - pattern: 'kafka.connect.mirror<type=MirrorSourceConnector, target=(.+), topic=(.+), \
partition=([0-9]+)><>([a-z-]+)'
    name: kafka_connect_mirror_source_connector_$4
    type: GAUGE
    labels: {target: "$1", topic: "$2", partition: "$3"}
  - pattern: 'kafka.connect.mirror<type=MirrorCheckpointConnector, source=(.+), target=(.+), \
group=(.+), topic=(.+), partition=([0-9]+)><>([a-z-]+)'
    name: kafka_connect_mirror_checkpoint_connector_$6
    type: GAUGE
    labels: {source: "$1", target: "$2", group: "$3", topic: "$4", partition: "$5"}
  - pattern: 'kafka.connect<type=connector-metrics, connector=(.+)><>status: ([a-z-]+)'
    name: kafka_connect_connector_status
    value: 1
    type: GAUGE
    labels: {connector: "$1", status: "$2"}
  - pattern: 'kafka.connect<type=connector-task-metrics, connector=(.+), task=(.+)><>status: \
([a-z-]+)'
    name: kafka_connect_connector_task_status
    value: 1
    type: GAUGE
    labels: {connector: "$1", task: "$2", status: "$3"}
  - pattern: 'kafka.connect<type=(source-task|connector-task|task-error)-metrics, \
connector=(.+), task=(.+)><>([a-z-]+)'
    name: kafka_connect_$1_$4
    type: GAUGE
    labels: {connector: "$2", task: "$3"}
  - pattern: 'kafka.connect<type=connect-worker-metrics, connector=(.+)><>([a-z-]+)'
    name: kafka_connect_worker_connector_$2
    type: GAUGE
    labels: {connector: "$1"}
  - pattern: 'kafka.connect<type=(connect-worker|connect-worker-rebalance|connect-coordinator)\
-metrics(, client-id=(.+))?><>([a-z-]+)'
    name: kafka_connect_$1_$4
    type: GAUGE
  - pattern: 'kafka.(producer|consumer)<type=(producer|consumer)-metrics, client-id=(.+)>\
<>([a-z-]+)'
    name: kafka_$1_$4
    type: GAUGE
    labels: {client_id: "$3"}
"""

_ENVIRONMENT = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # noqa: S701 - a .properties file: every value is properties-escaped
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    finalize=_property_value,
)


_MM2 = _ENVIRONMENT.from_string(MM2_TEMPLATE)


def render_mm2_properties(settings: MirrorMakerSettings) -> str:
    """Render `mm2.properties` for one MirrorMaker node; every value is properties-escaped."""
    return _MM2.render(
        settings=settings,
        config=settings.config,
        workload=settings.workload,
        unit_host=settings.unit_host,
        source=SOURCE_ALIAS,
        target=TARGET_ALIAS,
        policy_class=POLICY_CLASSES[settings.config.replication_policy],
        rf=settings.replication_factor,
    )


def mirrormaker_layer(settings: MirrorMakerSettings) -> ops.pebble.LayerDict:
    """The Pebble layer of a running `mirrormaker` service.

    `MirrorMakerService.stop` overrides `startup` to `disabled` once the migration stops.
    """
    workload = settings.workload
    metrics = f"{workload.metrics_host}:" if workload.metrics_host else ""
    heap = workload.heap_mb
    return {
        "summary": "MirrorMaker 2",
        "services": {
            SERVICE: {
                "override": "replace",
                "summary": "MirrorMaker 2 node migrating the source cluster into this one",
                "command": workload.command,
                "startup": "enabled",
                "user": workload.user,
                "group": workload.group,
                "environment": {
                    "KAFKA_HEAP_OPTS": f"-Xms{min(heap, 256)}m -Xmx{heap}m",
                    "KAFKA_OPTS": (
                        f"-javaagent:{workload.jmx_agent}="
                        f"{metrics}{workload.metrics_port}:{workload.jmx_config}"
                    ),
                    "LOG_DIR": str(workload.logs),
                },
                "on-success": "restart",
                "on-failure": "restart",
                "backoff-delay": "5s",
                "backoff-limit": "60s",
                "kill-delay": "20s",
            },
        },
    }


# Peer state ------------------------------------------------------------------------------------


class MigrationRequest(BaseModel):
    """What an operator last asked for, as a unit recorded it in its peer databag.

    Requests are ordered by `seq` (one more than the newest the acting unit had seen), then by
    time and unit name, so every unit picks the same newest request.
    """

    model_config = ConfigDict(frozen=True)

    state: RequestedState = "stopped"
    seq: int = 0
    at: int = 0
    by: str = ""

    def order(self) -> tuple[int, int, str]:
        """The sort key: newest last."""
        return (self.seq, self.at, self.by)


class UnitState(BaseModel):
    """What a unit publishes about its MirrorMaker node."""

    model_config = ConfigDict(frozen=True)

    service: str = "absent"
    exactly_once: ExactlyOnceSupport = Field(
        default="disabled",
        validation_alias=AliasChoices("exactly-once", "exactly_once"),
        serialization_alias="exactly-once",
    )


def newest_request(requests: Iterable[MigrationRequest]) -> MigrationRequest:
    """The request every unit follows: the newest one, or `stopped` when there is none."""
    return max(requests, key=MigrationRequest.order, default=MigrationRequest())


def exactly_once_mode(wanted: bool, peers: Iterable[UnitState]) -> ExactlyOnceSupport:
    """The exactly-once support this node may run with.

    An existing MirrorMaker cluster must go through `preparing` on every node before any node
    runs `enabled` (KIP-618): while a peer still runs with it disabled, this node prepares.
    """
    if not wanted:
        return "disabled"
    if any(p.service == "active" and p.exactly_once == "disabled" for p in peers):
        return "preparing"
    return "enabled"


# The workload ---------------------------------------------------------------------------------


class MirrorMakerService:
    """MirrorMaker in its container: its files, its layer, its service."""

    def __init__(self, container: ops.Container, workload: MirrorMakerWorkload | None = None):
        self.container = container
        self.workload = workload or MirrorMakerWorkload()

    def _write(self, path: PurePosixPath, content: str, *, secret: bool) -> bool:
        try:
            with self.container.pull(path) as current:
                if current.read() == content:
                    return False
        except ops.pebble.PathError:
            pass
        self.container.push(
            path,
            content,
            make_dirs=True,
            permissions=0o600 if secret else 0o644,
            user=self.workload.user,
            group=self.workload.group,
        )
        return True

    def state(self) -> str:
        """The Pebble state of the service: active, inactive, backoff, error, or absent."""
        services = self.container.get_services(SERVICE)
        if SERVICE not in services:
            return "absent"
        current = services[SERVICE].current  # "backoff" is not in ops' enum
        return current.value if isinstance(current, ops.pebble.ServiceStatus) else str(current)

    def run(self, settings: MirrorMakerSettings) -> None:
        """Write the files and bring the service up; restart it when its files or layer changed.

        Raises:
            ops.pebble.ChangeError: if Pebble cannot start the service.
        """
        self._write(self.workload.jmx_config, JMX_RULES, secret=False)
        changed = self._write(
            self.workload.mm2_properties, render_mm2_properties(settings), secret=True
        )
        before = self.container.get_plan().services.get(SERVICE)
        self.container.add_layer(SERVICE, mirrormaker_layer(settings), combine=True)
        after = self.container.get_plan().services.get(SERVICE)
        layer_changed = before is None or after is None or before.to_dict() != after.to_dict()
        state = self.state()
        if state in ("active", "backoff"):
            if changed or layer_changed:
                self.container.restart(SERVICE)
        else:
            self.container.start(SERVICE)

    def stop(self) -> None:
        """Stop the service, keep it from starting with the container, remove its secrets."""
        if SERVICE in self.container.get_plan().services:
            disabled: ops.pebble.LayerDict = {
                "services": {SERVICE: {"override": "merge", "startup": "disabled"}}
            }
            self.container.add_layer(SERVICE, disabled, combine=True)
            if self.state() in ("active", "backoff"):
                self.container.stop(SERVICE)
        if self.container.exists(self.workload.mm2_properties):
            self.container.remove_path(self.workload.mm2_properties)


# Admin queries ---------------------------------------------------------------------------------


def client_config(cluster: KafkaCluster, timeout: float = CLIENT_TIMEOUT) -> dict[str, Any]:
    """A confluent-kafka configuration for a cluster, with bounded socket timeouts."""
    config: dict[str, Any] = {
        "bootstrap.servers": cluster.bootstrap,
        "security.protocol": cluster.security_protocol,
        "sasl.mechanism": cluster.sasl_mechanism,
        "sasl.username": cluster.username,
        "sasl.password": cluster.password,
        "socket.timeout.ms": int(timeout * 1000),
        "socket.connection.setup.timeout.ms": int(timeout * 1000),
        "logger": logger,
    }
    if cluster.ca:
        config["ssl.ca.pem"] = cluster.ca
    return config


def is_internal_topic(topic: str) -> bool:
    """Topics MirrorMaker never replicates, whatever the filters say."""
    return topic.startswith(("__", ".")) or topic.endswith((".internal", "-internal"))


def select(names: Iterable[str], include: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """The names the include patterns match in full and the exclude patterns do not, sorted."""
    included = re.compile("|".join(f"(?:{p})" for p in include)) if include else None
    excluded = re.compile("|".join(f"(?:{p})" for p in exclude)) if exclude else None
    return sorted(
        name
        for name in names
        if included is not None
        and included.fullmatch(name)
        and not (excluded is not None and excluded.fullmatch(name))
    )


class ClusterClient:
    """Read-only admin queries against one cluster, each bounded by a timeout."""

    def __init__(self, cluster: KafkaCluster, role: str, timeout: float = CLIENT_TIMEOUT):
        self.role = role
        self.cluster = cluster
        self.timeout = timeout
        self._admin = AdminClient(client_config(cluster, timeout))

    def _unreachable(self, error: Exception) -> ClusterUnreachableError:
        reason = str(error)
        if error.args and isinstance(error.args[0], KafkaError):
            reason = error.args[0].str()
        return ClusterUnreachableError(
            f"{self.role} cluster at {self.cluster.bootstrap} did not answer: "
            f"{reason or 'timed out'}"
        )

    def topics(self) -> dict[str, int]:
        """Every topic this user may describe, with its number of partitions.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        try:
            metadata = self._admin.list_topics(timeout=self.timeout)
        except KafkaException as error:
            raise self._unreachable(error) from None
        return {
            name: len(topic.partitions)
            for name, topic in metadata.topics.items()
            if topic.error is None
        }

    def groups(self) -> list[str]:
        """Every consumer group this user may describe.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        future = self._admin.list_consumer_groups(request_timeout=self.timeout)
        try:
            result = future.result(timeout=self.timeout + 5)
        except (KafkaException, FutureTimeoutError) as error:
            raise self._unreachable(error) from None
        return sorted(group.group_id for group in result.valid)

    def end_offsets(self, topics: Mapping[str, int]) -> dict[str, list[int]]:
        """The end offset (last stable offset) of every partition of these topics.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        if not topics:
            return {}
        latest = cast(OffsetSpec, OffsetSpec.latest())
        request = {
            TopicPartition(topic, partition): latest
            for topic, count in topics.items()
            for partition in range(count)
        }
        futures = self._admin.list_offsets(
            request,
            isolation_level=IsolationLevel.READ_COMMITTED,
            request_timeout=self.timeout,
        )
        offsets: dict[str, list[int]] = {topic: [0] * count for topic, count in topics.items()}
        try:
            for partition, future in futures.items():
                offsets[partition.topic][partition.partition] = future.result(
                    timeout=self.timeout + 5
                ).offset
        except (KafkaException, FutureTimeoutError) as error:
            raise self._unreachable(error) from None
        return offsets


class TopicLag(BaseModel):
    """How far the target is behind the source on one topic."""

    topic: str
    target_topic: str
    partitions: int
    source_end_offset: int
    target_end_offset: int | None
    lag: int


def topic_lags(
    source: Mapping[str, list[int]], target: Mapping[str, list[int]], config: MigrationConfig
) -> list[TopicLag]:
    """Per topic: the sum of source end offsets minus the sum of target end offsets.

    Offsets differ where the source has transaction markers, compaction or deleted records, so
    this is the number of records still to copy only for plain topics.
    """
    lags = []
    for topic, offsets in sorted(source.items()):
        name = config.target_topic(topic)
        copied = target.get(name)
        source_end = sum(offsets)
        target_end = sum(copied) if copied is not None else None
        lags.append(
            TopicLag(
                topic=topic,
                target_topic=name,
                partitions=len(offsets),
                source_end_offset=source_end,
                target_end_offset=target_end,
                lag=max(0, source_end - (target_end or 0)),
            )
        )
    return lags


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return f"{shown}, ... ({len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else shown


# The charm-facing object ------------------------------------------------------------------------


class Migration(ops.Object):
    """The migration of a source cluster into the host charm's cluster.

    It handles `start-migration`, `stop-migration` and `migration-status` itself, and requests
    credentials on the source relation. The host calls `reconcile()` from its reconcile and shows
    `status()` in collect-status.
    """

    def __init__(
        self,
        charm: ops.CharmBase,
        *,
        target: Callable[[], TargetCluster | None],
        unit_host: Callable[[], str],
        container: str = "kafka",
        peer_relation: str = "cluster",
        source_relation: str = "migration-source",
        workload: MirrorMakerWorkload | None = None,
    ):
        """Wire the migration into the host charm.

        Args:
            charm: the host charm.
            target: the local cluster as MirrorMaker's user reaches it; `None` until it serves.
            unit_host: the address of this unit the other units reach (its MirrorMaker REST).
            container: the workload container that has Kafka's `bin/connect-mirror-maker.sh`.
            peer_relation: the host's peer relation.
            source_relation: the `kafka_client` requirer endpoint for a Juju-managed source.
            workload: paths, user, ports and heap of MirrorMaker; the rock's by default.
        """
        super().__init__(charm, "mirrormaker-migration")
        self.charm = charm
        self._target = target
        self._unit_host = unit_host
        self.peer_relation = peer_relation
        self.source_relation = source_relation
        self.service = MirrorMakerService(charm.unit.get_container(container), workload)
        # The kafka_client interface has no read-only role: `consumer` is scoped to one topic
        # and one group prefix, while MirrorMaker must describe and read every topic, every
        # group's offsets, topic configs and ACLs. `admin` on all topics is the only grant the
        # providers give that covers it. MirrorMaker itself only reads from the source.
        self.requirer = ResourceRequirerEventHandler(
            charm,
            source_relation,
            [KafkaRequestModel(resource="*", extra_user_roles="admin")],
            KafkaResponseModel,
        )
        framework = charm.framework
        framework.observe(charm.on["start-migration"].action, self._on_start_migration)
        framework.observe(charm.on["stop-migration"].action, self._on_stop_migration)
        framework.observe(charm.on["migration-status"].action, self._on_migration_status)

    # Reading the model -------------------------------------------------------------------------

    @property
    def _peers(self) -> ops.Relation | None:
        return self.model.get_relation(self.peer_relation)

    def _unit_data(self, key: str) -> dict[ops.Unit, str]:
        relation = self._peers
        if relation is None:
            return {}
        units = [self.model.unit, *relation.units]
        return {unit: value for unit in units if (value := relation.data[unit].get(key))}

    def _requests(self) -> list[MigrationRequest]:
        requests = []
        for raw in self._unit_data(REQUEST_KEY).values():
            try:
                requests.append(MigrationRequest.model_validate_json(raw))
            except ValidationError:
                continue
        return requests

    def _unit_states(self) -> dict[ops.Unit, UnitState]:
        states = {}
        for unit, raw in self._unit_data(STATE_KEY).items():
            try:
                states[unit] = UnitState.model_validate_json(raw)
            except ValidationError:
                continue
        return states

    @property
    def requested_state(self) -> RequestedState:
        """Whether the operator last asked for the migration to run or to stop."""
        return newest_request(self._requests()).state

    def _external_source(self, config: MigrationConfig) -> SourceCluster:
        option = "mirrormaker-source-credentials"
        if config.source_credentials is None:
            raise SourceError(
                "mirrormaker-source-bootstrap-servers is set but mirrormaker-source-credentials"
                " is not: put username and password in a Juju secret, grant it to "
                f"{self.model.app.name} and set its ID in {option}"
            )
        secret_id = config.source_credentials
        try:
            content = self.model.get_secret(id=secret_id).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            raise SourceError(
                f"{option}: secret {secret_id} not found or not granted: run "
                f"`juju grant-secret {secret_id} {self.model.app.name}`"
            ) from None
        unknown = sorted(set(content) - set(SECRET_KEYS))
        missing = [key for key in ("username", "password") if not content.get(key)]
        if unknown or missing:
            problems = [f"missing key {', '.join(missing)}"] if missing else []
            problems += [f"unknown key {', '.join(unknown)}"] if unknown else []
            raise SourceError(
                f"{option}: secret {secret_id} has {' and '.join(problems)} (keys: username, "
                "password, optional sasl-mechanism, security-protocol, ca)"
            )
        mechanism = content.get("sasl-mechanism", "SCRAM-SHA-512")
        protocol = content.get("security-protocol", "SASL_PLAINTEXT")
        ca = content.get("ca") or None
        if mechanism not in SASL_MECHANISMS:
            raise SourceError(
                f"{option}: sasl-mechanism must be one of {', '.join(SASL_MECHANISMS)}"
            )
        if protocol not in SECURITY_PROTOCOLS:
            raise SourceError(
                f"{option}: security-protocol must be one of {', '.join(SECURITY_PROTOCOLS)}"
            )
        if ca is not None and "-----BEGIN CERTIFICATE-----" not in ca:
            raise SourceError(f"{option}: ca must be a PEM certificate")
        if ca is not None and protocol != "SASL_SSL":
            raise SourceError(f"{option}: ca is set, so security-protocol must be SASL_SSL")
        return SourceCluster.model_validate(
            {
                "name": config.source_bootstrap_servers[0],
                "bootstrap_servers": config.source_bootstrap_servers,
                "username": content["username"],
                "password": content["password"],
                "sasl_mechanism": mechanism,
                "security_protocol": protocol,
                "ca": ca,
            }
        )

    def _related_source(self, relation: ops.Relation) -> SourceCluster:
        name = relation.app.name if relation.app else self.source_relation
        try:
            contract = self.requirer.interface.build_model(relation.id, component=relation.app)
            responses = [r for r in contract.requests if r.username and r.password]
        except (ValidationError, ValueError, ops.ModelError):
            raise SourceError(
                f"{self.source_relation}: {name} sent data that is not a kafka_client response"
            ) from None
        if not responses or not responses[0].endpoints:
            raise NotReadyError(f"waiting for {name} to send credentials on {relation.name}")
        response = responses[0]
        tls = bool(response.tls)
        try:
            return SourceCluster.model_validate(
                {
                    "name": name,
                    "bootstrap_servers": response.endpoints,
                    "username": response.username,
                    "password": response.password,
                    "security_protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
                    "ca": response.tls_ca or None,
                }
            )
        except ValidationError:
            raise SourceError(
                f"{self.source_relation}: {name} sent endpoints that are not HOST:PORT"
            ) from None

    def _source(self, config: MigrationConfig) -> SourceCluster | None:
        """The source cluster, or `None` when none is configured.

        Raises:
            SourceError: if both or half a source are configured, or credentials are wrong.
            NotReadyError: while the related source has not answered yet.
        """
        relation = self.model.get_relation(self.source_relation)
        if relation is not None and config.source_bootstrap_servers:
            raise SourceError(
                f"two sources: remove the {self.source_relation} relation or unset "
                "mirrormaker-source-bootstrap-servers"
            )
        if relation is not None:
            return self._related_source(relation)
        if config.source_bootstrap_servers:
            return self._external_source(config)
        if config.source_credentials is not None:
            raise SourceError(
                "mirrormaker-source-credentials is set but mirrormaker-source-bootstrap-servers"
                " is empty: set the source's HOST:PORT list"
            )
        return None

    def _no_source(self) -> SourceError:
        return SourceError(
            f"no source cluster to migrate from: relate {self.source_relation} to a Kafka "
            "application, or set mirrormaker-source-bootstrap-servers and "
            "mirrormaker-source-credentials"
        )

    def settings(self) -> MirrorMakerSettings:
        """This unit's MirrorMaker settings from config, source, target and peers.

        Raises:
            MigrationError: saying what is wrong or missing.
        """
        config = MigrationConfig.from_options(self.model.config)
        source = self._source(config)
        if source is None:
            raise self._no_source()
        target = self._target()
        if target is None:
            raise NotReadyError("waiting for this cluster to serve before migrating into it")
        peers = self._peers
        states = self._unit_states()
        states.pop(self.model.unit, None)
        return MirrorMakerSettings(
            source=source,
            target=target,
            config=config,
            unit_host=self._unit_host(),
            units=1 + (len(peers.units) if peers else 0),
            exactly_once_mode=exactly_once_mode(config.exactly_once, states.values()),
            workload=self.service.workload,
        )

    # Reconcile and status ----------------------------------------------------------------------

    def reconcile(self) -> None:
        """Bring this unit's MirrorMaker to the newest request, and publish its state.

        A running migration whose inputs turn invalid keeps running as it was; `status()` says
        what to fix.
        """
        if not self.service.container.can_connect():
            return
        request = self._follow_newest_request()
        mode = None
        if request.state == "stopped":
            self.service.stop()
        else:
            try:
                settings = self.settings()
            except MigrationError as error:
                logger.info("migration not applied: %s", error.message)
            else:
                mode = settings.exactly_once_support
                try:
                    self.service.run(settings)
                except ops.pebble.ChangeError:
                    logger.warning("MirrorMaker did not start; Pebble retries it")
        self._publish_state(mode)

    def _follow_newest_request(self) -> MigrationRequest:
        """The newest request, copied into this unit's databag so it outlives its author."""
        request = newest_request(self._requests())
        relation = self._peers
        if relation is not None and request.seq > 0:
            raw = request.model_dump_json()
            if relation.data[self.model.unit].get(REQUEST_KEY) != raw:
                relation.data[self.model.unit][REQUEST_KEY] = raw
        return request

    def _publish_state(self, mode: ExactlyOnceSupport | None) -> None:
        relation = self._peers
        if relation is None:
            return
        previous = self._unit_states().get(self.model.unit, UnitState())
        state = UnitState(
            service=self.service.state(),
            exactly_once=mode or previous.exactly_once,
        )
        raw = state.model_dump_json(by_alias=True)
        if relation.data[self.model.unit].get(STATE_KEY) != raw:
            relation.data[self.model.unit][STATE_KEY] = raw

    def status(self) -> ops.StatusBase | None:
        """The status to show for the migration, or `None` when there is nothing to say."""
        running = self.requested_state == "running"
        try:
            config = MigrationConfig.from_options(self.model.config)
            source = self._source(config)
        except NotReadyError as error:
            return error.status() if running else None
        except MigrationError as error:
            return error.status()
        if not running:
            return None
        if source is None:
            return self._no_source().status()
        if self._target() is None:
            return ops.WaitingStatus(f"waiting for this cluster to migrate from {source.name}")
        if not self.service.container.can_connect():
            return None
        service = self.service.state()
        if service != "active":
            return ops.MaintenanceStatus(f"starting MirrorMaker to migrate from {source.name}")
        return ops.ActiveStatus(f"migrating from {source.name}")

    # Actions -----------------------------------------------------------------------------------

    def _request(self, state: RequestedState) -> bool:
        """Record a request in this unit's databag, unless it is already what all follow.

        Returns:
            Whether a new request was recorded.
        """
        relation = self._peers
        if relation is None:
            raise NotReadyError("the peer relation is not there yet: retry in a minute")
        requests = self._requests()
        newest = newest_request(requests)
        if newest.state == state and newest.seq > 0:
            return False
        request = MigrationRequest(
            state=state, seq=newest.seq + 1, at=time.time_ns(), by=self.model.unit.name
        )
        relation.data[self.model.unit][REQUEST_KEY] = request.model_dump_json()
        return True

    def _on_start_migration(self, event: ops.ActionEvent) -> None:
        if event.params.get("dry-run", False):
            self._dry_run(event)
            return
        try:
            settings = self.settings()
            recorded = self._request("running")
        except MigrationError as error:
            event.fail(error.message)
            return
        self.reconcile()
        event.set_results(
            {
                "state": "running",
                "source": settings.source.name,
                "this-unit": self.service.state(),
                "message": (
                    f"migrating from {settings.source.name}: MirrorMaker runs on "
                    f"{self.model.unit.name}, and every other unit starts it as it sees the "
                    "request"
                    if recorded
                    else f"the migration from {settings.source.name} was already requested"
                ),
            }
        )

    def _on_stop_migration(self, event: ops.ActionEvent) -> None:
        try:
            recorded = self._request("stopped")
        except MigrationError as error:
            event.fail(error.message)
            return
        self.reconcile()
        event.set_results(
            {
                "state": "stopped",
                "this-unit": self.service.state(),
                "message": (
                    f"MirrorMaker stopped on {self.model.unit.name}; every other unit stops it "
                    "as it sees the request; migrated data stays"
                    if recorded
                    else "the migration was already stopped"
                ),
            }
        )

    def _dry_run(self, event: ops.ActionEvent) -> None:
        try:
            settings = self.settings()
            source = ClusterClient(settings.source, "source")
            topics = source.topics()
            groups = source.groups()
            ClusterClient(settings.target, "target").topics()
        except MigrationError as error:
            event.fail(error.message)
            return
        config = settings.config
        selected = select(
            [t for t in topics if not is_internal_topic(t)], config.topics, config.topics_exclude
        )
        selected_groups = select(groups, config.groups, config.groups_exclude)
        results: dict[str, object] = {
            "dry-run": "nothing was started",
            "source": f"{settings.source.name}: reachable, {len(topics)} topics, "
            f"{len(groups)} groups",
            "target": "reachable",
            "topic-count": str(len(selected)),
            "topics": _listed(selected),
            "partitions": str(sum(topics[t] for t in selected)),
            "group-count": str(len(selected_groups)),
            "groups": _listed(selected_groups),
        }
        if not selected:
            results["warning"] = (
                "no source topic matches mirrormaker-topics and mirrormaker-topics-exclude"
            )
        event.set_results(results)

    def _on_migration_status(self, event: ops.ActionEvent) -> None:
        states = self._unit_states()
        if self.service.container.can_connect():
            states[self.model.unit] = UnitState(
                service=self.service.state(),
                exactly_once=states.get(self.model.unit, UnitState()).exactly_once,
            )
        results: dict[str, object] = {
            "requested": self.requested_state,
            "units": {
                unit.name.replace("/", "-"): {
                    "service": state.service,
                    "exactly-once": state.exactly_once,
                }
                for unit, state in sorted(states.items(), key=lambda item: item[0].name)
            },
        }
        try:
            settings = self.settings()
        except MigrationError as error:
            results["lag"] = f"unknown: {error.message}"
            event.set_results(results)
            return
        results["source"] = settings.source.name
        try:
            results.update(self._lag_results(settings, event.params.get("topic")))
        except MigrationError as error:
            results["lag"] = f"unknown: {error.message}"
        event.set_results(results)

    def _lag_results(self, settings: MirrorMakerSettings, topic: str | None) -> dict[str, object]:
        config = settings.config
        source = ClusterClient(settings.source, "source")
        target = ClusterClient(settings.target, "target")
        source_topics = source.topics()
        selected = select(
            [t for t in source_topics if not is_internal_topic(t)],
            config.topics,
            config.topics_exclude,
        )
        if topic is not None:
            selected = [t for t in selected if t == topic]
        target_topics = target.topics()
        source_offsets = source.end_offsets({t: source_topics[t] for t in selected})
        names = {config.target_topic(t) for t in selected}
        target_offsets = target.end_offsets({t: n for t, n in target_topics.items() if t in names})
        lags = topic_lags(source_offsets, target_offsets, config)
        results: dict[str, object] = {
            "total-lag": str(sum(lag.lag for lag in lags)),
            "topics": json.dumps([lag.model_dump() for lag in lags]),
        }
        if topic is not None:
            results["partitions"] = json.dumps(
                {
                    "source-end-offsets": source_offsets.get(topic, []),
                    "target-end-offsets": target_offsets.get(config.target_topic(topic), []),
                }
            )
        return results
