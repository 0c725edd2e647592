# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
r"""Migrate an existing Kafka cluster into this one with MirrorMaker 2.

Every unit of the host charm runs one MirrorMaker 2 node (dedicated mode, KIP-710) as a Pebble
service in its Kafka workload container; together the nodes form one distributed MirrorMaker
cluster that copies topics, records, topic configs, topic ACLs and consumer-group offsets from a
source cluster into the local one, without writing to the source.

The source is either the `migration-source` relation (interface `kafka_client`, requirer side of
`data_platform_helpers.interfaces`) or any reachable Kafka named by the
`mirrormaker-source-bootstrap-servers` option plus a Juju user secret in
`mirrormaker-source-credentials` (keys `username`, `password`, optional `sasl-mechanism`,
`security-protocol`, `ca`). The actions `start-migration` (with `dry-run`), `stop-migration`,
`migration-status`, `switch-group` and `finish-migration` work from any unit: a request goes into
the acting unit's peer databag, and every unit follows the newest request it sees.

The cutover: while a migration is requested and not finished, the topics it copies into are
fenced (`fenced_topics()`: the host withholds their WRITE from its client users). The verdict
"ready for cutover" needs the target in sync by content (what a `read_committed` consumer reads)
and the source quiet. `switch-group` and `finish-migration` move consumer groups exactly: from
MirrorMaker's offset syncs, both clusters' records are matched by content, so a moved consumer
reads every record it had not read on the source and none it had. `finish-migration` stops
MirrorMaker, switches every group, lifts the fence and records the finished migration.

## Adopting it

Copy this file to `lib/charms/kafka_k8s/v0/mirrormaker.py` (it is not published on Charmhub:
the `kafka_k8s` namespace there is Canonical's charm's, so `charmcraft fetch-lib` would look in
theirs), add its `PYDEPS` to the charm's dependencies (its one Kafka client is kafka-python, pure
Python), and declare in `charmcraft.yaml` what it handles. A charm with separate files puts
`requires:` in `metadata.yaml`, the options under `options:` in `config.yaml` and the actions at
the top level of `actions.yaml`. `type: secret` needs Juju 3.1 or later; on older Juju declare
`mirrormaker-source-credentials` as `type: string` (the library reads a secret ID either
way). Whenever it makes a client, the library sets the `kafka` logger (kafka-python's) to
WARNING if it is lower: kafka-python logs the SASL password at DEBUG, and ops forwards DEBUG
records to `juju debug-log`. The workload container must be a Kafka image with
`/opt/kafka/bin/connect-mirror-maker.sh` and the JMX exporter agent at
`/opt/kafka/libs/jmx_prometheus_javaagent.jar` (the charmed-kafka rock); a peer relation must
exist (any name; `cluster` by default):

```yaml
requires:
  migration-source:
    interface: kafka_client
    limit: 1
    optional: true
config:
  options:
    mirrormaker-source-bootstrap-servers: {type: string, default: ""}
    mirrormaker-source-credentials: {type: secret}
    mirrormaker-topics: {type: string, default: ".*"}
    mirrormaker-topics-exclude: {type: string, default: ".*[\\-\\.]internal, .*\\.replica, __.*"}
    mirrormaker-groups: {type: string, default: ".*"}
    mirrormaker-groups-exclude: {type: string, default: "console-consumer-.*, connect-.*, __.*"}
    mirrormaker-tasks-max: {type: int, default: 6}
    mirrormaker-sync-group-offsets: {type: boolean, default: true}
    mirrormaker-sync-topic-configs: {type: boolean, default: true}
    mirrormaker-sync-topic-acls: {type: boolean, default: false}
    mirrormaker-exactly-once: {type: boolean, default: false}
    mirrormaker-refresh-interval: {type: int, default: 30}
    mirrormaker-replication-policy: {type: string, default: identity}
    mirrormaker-heap-mb: {type: int}
    mirrormaker-source-role: {type: string, default: consumer}
    mirrormaker-fence-target: {type: boolean, default: true}
actions:
  start-migration:
    params: {dry-run: {type: boolean, default: false}, force: {type: boolean, default: false}}
  stop-migration: {}
  migration-status:
    params:
      format: {type: string, enum: [json, table], default: json}
      topic: {type: string}
      lag-threshold: {type: integer, minimum: 0, default: 0}
      quiet-seconds: {type: integer, minimum: 1, maximum: 600, default: 10}
  switch-group:
    params: {group: {type: string}, dry-run: {type: boolean, default: false}}
    required: [group]
  finish-migration:
    params: {force: {type: boolean, default: false}, cleanup: {type: boolean, default: false}}
```

(kafka-k8s's own `charmcraft.yaml` has the same entries with their descriptions.) The host
creates a SCRAM user for MirrorMaker on its own cluster and grants it the rights MirrorMaker
needs there (kafka-k8s's `acls.mirrormaker_acls`; `MIRRORMAKER_NAMES` lists the topics, groups
and transactional ids MirrorMaker uses, which no client of the host should be granted: its
connector configs live in the `mm2-configs.*` topic), passes the library the cluster as that
user reaches it, routes its state-changing events (and `on.fence_changed`) to one reconcile,
leaves WRITE out of its client users' grants on `fenced_topics()`, and shows the library's
status in collect-status. The library never sets a status itself:

```python
from charms.kafka_k8s.v0.mirrormaker import Migration, MirrorMakerWorkload, TargetCluster


class KafkaCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.migration = Migration(
            self,
            target=self._migration_target,  # None until the broker serves
            unit_host=self._host,  # the address the other units reach this one at
            container="kafka",
            peer_relation="cluster",
            workload=MirrorMakerWorkload(rest_port=8083, metrics_port=9099),
        )
        for event in (self.on.config_changed, self.on.update_status, self.on.secret_changed,
                      self.on["migration-source"].relation_changed,
                      self.on["cluster"].relation_changed, self.on["kafka"].pebble_ready,
                      self.migration.on.fence_changed):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.collect_unit_status, self._on_collect_status)
        framework.observe(self.on.collect_app_status, self._on_collect_status)

    def _migration_target(self) -> TargetCluster | None:
        if not self.broker_ready():
            return None
        return TargetCluster(
            bootstrap_servers=self.internal_addresses(),  # ("kafka-0.kafka-endpoints:19092",)
            username="mirrormaker",
            password=self.mirrormaker_password(),
        )

    def _reconcile(self, _: ops.EventBase) -> None:
        ...  # the broker first; clients get no WRITE on self.migration.fenced_topics()
        self.migration.reconcile()

    def _on_collect_status(self, event: ops.CollectStatusEvent) -> None:
        if status := self.migration.status():
            event.add_status(status)  # before the charm's own ActiveStatus
        event.add_status(ops.ActiveStatus())
```

While MirrorMaker runs, the status says how far the migration is ("migrating from old: 5 topics,
lag 1,204 records", "in sync with old: ready for cutover") or what is wrong (a cluster that does
not answer or refuses the login, a failed MirrorMaker task). `reconcile()` computes it with
bounded queries, once per hook however often the host calls it; `status()` only reads what it
stored. The status is this unit's: add it to the unit status, and to the app status only on
the leader if at all; add it before the charm's own `ActiveStatus`, since ops keeps the first
of equal priority.

What the host's callables must do: `target` is called on every hook, collect-status included,
so it must be cheap, without side effects or network calls, and return `None` until the broker
serves and the password (and CA) exist; it is read again on every reconcile, so a new password
or CA reaches MirrorMaker at once. Its `bootstrap_servers` is a tuple of `HOST:PORT` (a
comma-separated string is accepted too). `unit_host` is an address the other units reach and
that MirrorMaker can bind its REST listener to (`listeners=http://<unit_host>:8083`).

What the library keeps in the host's model: the unit keys `mirrormaker-request`,
`mirrormaker-state` and `mirrormaker-topics` in the peer relation's unit databags, and the
StoredState handle `mirrormaker-migration`. MirrorMaker's metrics are served on
`MirrorMakerWorkload.metrics_port` (9099): add `*:9099` to the host's scrape jobs. On
Kubernetes no port needs opening for the units to reach each other.

## The public API

`__all__` is the API: `Migration` for a host charm; the cluster and option models;
`MirrorMakerWorkload` (where the container keeps Kafka, its user, MirrorMaker's ports and
heap), `MirrorMakerSettings` (everything one node's `mm2.properties` and Pebble layer are made
from) and `MirrorMakerService` (applies them to an `ops.Container`, also a real Pebble's outside
Juju); the `MigrationError` family, each error with the status that shows it; and the report:
`migration_report(source, target, config)` queries both clusters as `migration-status` does,
`MigrationReport.results()` gives the action's results and `format_table(report)` prints it.
Everything else is private and may change within `LIBAPI` 0.
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import os
import re
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any, Literal, NamedTuple, TypeVar, cast

import jinja2
import ops
from data_platform_helpers.interfaces import (
    KafkaRequestModel,
    KafkaResponseModel,
    ResourceRequirerEventHandler,
)
from kafka import KafkaAdminClient, KafkaConsumer
from kafka import errors as kafka_errors
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.structs import OffsetAndMetadata, TopicPartition
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

# The unique Charmhub library identifier, never change it
LIBID = "73df6b64b18841119bd7003567f919fd"

# Increment this major API version when introducing breaking changes
LIBAPI = 0

# Increment this PATCH version before using `charmcraft publish-lib` or reset
# to 0 if you are raising the major API version
LIBPATCH = 6

PYDEPS = [
    "pydantic>=2.7",
    "jinja2>=3.1",
    "data-platform-helpers>=1.1",
    "kafka-python>=3.0",
    # The codecs kafka-python needs to read compressed records (the cutover compares records
    # by content; MirrorMaker writes lz4 here, a source may use any): wheels, no system library.
    "lz4>=4.3",
    "zstandard>=0.23",
    "python-snappy>=0.7",
]

__all__ = [  # noqa: RUF022 - grouped by what each name is for
    # The host charm's object.
    "Migration",
    # The clusters, the options, and how the host's container runs MirrorMaker.
    "KafkaCluster",
    "SourceCluster",
    "TargetCluster",
    "MigrationConfig",
    "MirrorMakerWorkload",
    "MirrorMakerSettings",
    "MirrorMakerService",
    # What MirrorMaker uses on the target: its user's rights, and what no client may get.
    "MirrorMakerNames",
    "MIRRORMAKER_NAMES",
    # What can go wrong; each error knows the status that shows it.
    "MigrationError",
    "InvalidOptionError",
    "SourceError",
    "SourceGoneError",
    "NotReadyError",
    "ClusterUnreachableError",
    # The migration report, outside a charm too.
    "UnitState",
    "MigrationReport",
    "migration_report",
    "format_table",
]

logger = logging.getLogger(__name__)

_SERVICE = "mirrormaker"
_SOURCE_ALIAS = "source"
_TARGET_ALIAS = "target"
_REQUEST_KEY = "mirrormaker-request"
_STATE_KEY = "mirrormaker-state"
_TOPICS_KEY = "mirrormaker-topics"
_CLIENT_TIMEOUT = 10.0
_STATUS_TIMEOUT = 5.0
_MAX_LISTED = 200
_GROUP_BATCH = 50
_STATUS_READER_GROUP = "kafka-k8s-migration-status"
# A group that need not exist: describing it tells whether the user may describe every group.
_RIGHTS_PROBE_GROUP = "kafka-k8s-migration-rights-probe"
_MAX_REASONS = 20
_ERROR_CHARS = 240
_STATUS_CHARS = 120
# Seconds the source's end offsets must stay put before the migration is ready for cutover.
_QUIET_SECONDS = 10.0

_SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
_SecurityProtocol = Literal["SASL_PLAINTEXT", "SASL_SSL"]
_ExactlyOnceSupport = Literal["disabled", "preparing", "enabled"]
_RequestedState = Literal["running", "stopped", "finished"]

_SASL_MECHANISMS: tuple[str, ...] = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
_SECURITY_PROTOCOLS: tuple[str, ...] = ("SASL_PLAINTEXT", "SASL_SSL")
_SECRET_KEYS = ("username", "password", "sasl-mechanism", "security-protocol", "ca")
# Where the CA that verifies each cluster's certificate comes from, for messages.
_TLS_CA_SOURCES = {
    "source": "`ca` of mirrormaker-source-credentials, or tls-ca of migration-source",
    "target": "`ca` of the host's TargetCluster, else the system's CAs",
}
_POLICY_CLASSES = {
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


class SourceGoneError(SourceError):
    """The source, or access to it, was taken away: no source, credentials revoked or removed.

    Unlike an option with a typo, this stops a running migration on every unit: MirrorMaker
    must not keep copying with credentials it no longer has. The copied data and MirrorMaker's
    offsets stay, so `start-migration` resumes once a source is back.
    """


class NotReadyError(MigrationError):
    """Something the migration needs is not there yet; it comes without operator action."""

    waiting = True


class ClusterUnreachableError(MigrationError):
    """A cluster did not answer an admin request within the timeout, or refused it.

    `refused` is set when the cluster turned the user's login down (wrong credentials).
    """

    def __init__(self, message: str, *, refused: bool = False):
        super().__init__(message)
        self.refused = refused


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
    """Check each server is `HOST:PORT`, with no whitespace or control character anywhere.

    A line break in a host would end the `bootstrap.servers` line of `mm2.properties` early if
    it were ever written unescaped, and no host name holds one.
    """
    for server in servers:
        host, _, port = server.rpartition(":")
        printable = all(char.isprintable() and not char.isspace() for char in server)
        if (
            not host
            or not (port.isascii() and port.isdigit())
            or not 0 < int(port) < 65536
            or not printable
        ):
            raise ValueError(f"{server!r} is not HOST:PORT")
    return servers


class KafkaCluster(BaseModel):
    """How to reach and log in to a Kafka cluster."""

    model_config = ConfigDict(frozen=True)

    bootstrap_servers: tuple[str, ...] = Field(min_length=1)
    username: str = Field(min_length=1)
    password: str = Field(min_length=1, repr=False)
    sasl_mechanism: _SaslMechanism = "SCRAM-SHA-512"
    security_protocol: _SecurityProtocol = "SASL_PLAINTEXT"
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
            f'{self.login_module} required username="{_jaas_escape(self.username)}" '
            f'password="{_jaas_escape(self.password)}";'
        )


class SourceCluster(KafkaCluster):
    """The cluster to migrate from; `name` is how status messages call it."""

    name: str = Field(min_length=1)

    @classmethod
    def from_secret(
        cls,
        content: Mapping[str, str],
        bootstrap_servers: Sequence[str],
        *,
        secret_id: str,
        option: str = "mirrormaker-source-credentials",
    ) -> SourceCluster:
        """An external source from its credentials secret's content, checked key by key.

        Raises:
            SourceError: naming `option` and the key that is missing, unknown or invalid.
        """
        return _source_from_secret(content, bootstrap_servers, secret_id=secret_id, option=option)

    @classmethod
    def from_relation(
        cls,
        name: str,
        *,
        endpoints: str,
        username: str,
        password: str,
        tls: bool,
        tls_ca: str | None,
        relation_name: str = "migration-source",
    ) -> SourceCluster:
        """A related source from its `kafka_client` response, checked field by field.

        Raises:
            SourceError: if the endpoints are not `HOST:PORT` or the CA is not a PEM certificate.
        """
        return _source_from_relation(
            name,
            endpoints=endpoints,
            username=username,
            password=password,
            tls=tls,
            tls_ca=tls_ca,
            relation_name=relation_name,
        )


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
    heap_mb: int | None = Field(
        default=None, ge=256, le=65536, validation_alias="mirrormaker-heap-mb"
    )
    source_role: Literal["consumer", "admin"] = Field(
        default="consumer", validation_alias="mirrormaker-source-role"
    )
    fence_target: bool = Field(default=True, validation_alias="mirrormaker-fence-target")

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
        return topic if self.replication_policy == "identity" else f"{_SOURCE_ALIAS}.{topic}"


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

    @field_validator("root")
    @classmethod
    def _referable(cls, root: PurePosixPath) -> PurePosixPath:
        """A root `FileConfigProvider` references can name: `${file:PATH:KEY}`, a list."""
        if any(char in str(root) for char in ":}$,"):
            raise ValueError(f"{str(root)!r} holds one of ':}}$,', which config references cannot")
        return root

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
        """The MirrorMaker configuration; it refers to the passwords in `mm2_secrets`."""
        return self.etc / "mm2.properties"

    @property
    def mm2_secrets(self) -> PurePosixPath:
        """The `sasl.jaas.config` of both clusters, read through Kafka's `FileConfigProvider`."""
        return self.etc / "mm2-secrets.properties"

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
            f"--clusters {_TARGET_ALIAS}"
        )


class MirrorMakerSettings(BaseModel):
    """Everything `mm2.properties` and the Pebble layer of one unit are made from."""

    model_config = ConfigDict(frozen=True)

    source: SourceCluster
    target: TargetCluster
    config: MigrationConfig = MigrationConfig()
    unit_host: str = Field(min_length=1)
    units: int = Field(default=1, ge=1)
    exactly_once_mode: _ExactlyOnceSupport | None = None
    workload: MirrorMakerWorkload = MirrorMakerWorkload()

    @property
    def replication_factor(self) -> int:
        """Replication factor of everything MirrorMaker creates on the target."""
        return min(3, self.units)

    @property
    def exactly_once_support(self) -> _ExactlyOnceSupport:
        """The worker's `exactly.once.source.support`."""
        if self.exactly_once_mode is not None:
            return self.exactly_once_mode
        return "enabled" if self.config.exactly_once else "disabled"

    def mm2_properties(self) -> str:
        """This node's `mm2.properties`; every value is properties-escaped, no password in it."""
        return _render_mm2_properties(self)

    def mm2_secrets(self) -> str:
        """The passwords `mm2.properties` refers to (`workload.mm2_secrets`, mode 0600)."""
        return _render_mm2_secrets(self)

    def pebble_layer(self) -> ops.pebble.LayerDict:
        """The Pebble layer of this node's running `mirrormaker` service."""
        return _mirrormaker_layer(self)


class MirrorMakerNames(BaseModel):
    """The names MirrorMaker and the migration status use on the target cluster.

    The host's MirrorMaker user needs rights on them (and on the topics it copies), and no
    client of the target may be granted any: the config topic (`mm2-configs.*`) holds the
    connector configs, the offsets, status, offset-syncs and checkpoints topics drive the copy.
    """

    model_config = ConfigDict(frozen=True)

    topic_prefixes: tuple[str, ...]
    topics: tuple[str, ...]
    groups: tuple[str, ...]
    transactional_id_prefixes: tuple[str, ...]


MIRRORMAKER_NAMES = MirrorMakerNames(
    # mm2-configs., mm2-offsets., mm2-status. and mm2-offset-syncs.<source>.internal
    topic_prefixes=("mm2-",),
    # Heartbeats, the source's heartbeats under the prefixed policy, and checkpoints.
    topics=("heartbeats", f"{_SOURCE_ALIAS}.heartbeats", f"{_SOURCE_ALIAS}.checkpoints.internal"),
    # The worker group of the flow (`group.id`), and the migration status's reader.
    groups=(f"{_SOURCE_ALIAS}-mm2", _STATUS_READER_GROUP),
    # Exactly-once: the worker's and the tasks' transactional ids (KIP-618).
    transactional_id_prefixes=(f"{_SOURCE_ALIAS}-mm2", f"connect-cluster-{_SOURCE_ALIAS}-mm2"),
)


# Rendering ------------------------------------------------------------------------------------


def _jaas_escape(value: str) -> str:
    r"""Quote a value for a JAAS option between double quotes.

    Kafka parses `sasl.jaas.config` with `java.io.StreamTokenizer`: inside quotes a backslash
    escapes the next character, and a raw line break ends the string, so it becomes `\n`.
    """
    return (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )


def _properties_escape(value: str) -> str:
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
    return _properties_escape(str(value))


_MM2_TEMPLATE = """\
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

# No password is in this file: Kafka's FileConfigProvider reads them from
# {{ workload.mm2_secrets }} (mode 0600) when a client connects. The connector configs that
# MirrorMaker stores in its config topic on {{ target }} hold only these references.
config.providers=file
config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider
config.providers.file.param.allowed.paths={{ workload.mm2_secrets }}

# Every plugin on Kafka's classpath has a ServiceLoader manifest: finding them through the
# manifests, not by scanning every jar's classes (KIP-898), starts a node seconds sooner. The
# node reads it, then the worker of its flow into {{ target }}.
plugin.discovery=service_load
{{ target }}.plugin.discovery=service_load

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
{{ alias }}.sasl.jaas.config=${file:{{ workload.mm2_secrets }}:{{ alias }}.sasl.jaas.config}
{% if cluster.security_protocol == "SASL_SSL" and cluster.ca %}
{{ alias }}.ssl.truststore.type=PEM
{{ alias }}.ssl.truststore.certificates={{ cluster.ca }}
{% endif %}
{{ alias }}.consumer.isolation.level=read_committed

{% endfor %}
{{ target }}.producer.enable.idempotence=true
{{ target }}.producer.acks=all
# Throughput (README, "MirrorMaker defaults and why"; measured by `tox -e bench`). Connect sends
# with one request in flight per broker; idempotence keeps the order with five.
{{ target }}.producer.max.in.flight.requests.per.connection=5
{{ target }}.producer.batch.size=262144
{{ target }}.producer.linger.ms=20
{{ target }}.producer.compression.type=lz4
{{ source }}.consumer.fetch.min.bytes=65536
{{ source }}.consumer.fetch.max.wait.ms=200
{{ source }}.consumer.max.partition.fetch.bytes=2097152
{{ source }}.consumer.max.poll.records=2000
# A group is translated to the newest offset sync at or before its offset. A task keeps one
# pending sync per partition and drops older ones while ten are in flight, so at the default of
# one sync per 100 records a fast copy loses a partition's first syncs and an idle group committed
# before them is never translated. One sync per 1000 records, sent without linger, keeps them.
# MirrorMaker's own translation stays conservative (its checkpoints keep older syncs only at
# growing distances); switch-group and finish-migration set exact offsets from the syncs.
offset.lag.max=1000
{{ source }}->{{ target }}.target.producer.linger.ms=0
{{ target }}.exactly.once.source.support={{ settings.exactly_once_support }}
# The worker commits its source offsets every 10 s, not 60 s: a node that crashes copies at most
# 10 s of records again. A lost node's tasks go to the others after 1 minute, not 5.
{{ target }}.offset.flush.interval.ms=10000
{{ target }}.scheduled.rebalance.max.delay.ms=60000

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
# MirrorMaker cannot leave out the ACLs of kafka_client relation users (`relation-N` names
# another application here): with mirrormaker-sync-topic-acls the library copies them itself.
sync.topic.acls.enabled=false
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

_JMX_RULES = """\
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
  - pattern: 'kafka.connect<type=connect-worker-metrics, connector=(.+)><>connector-([a-z-]+)'
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
  # Records on the source not yet fetched by a replication task (Kafka writes the topic with
  # dots as underscores here). Lag as the source consumer sees it: no MirrorMaker metric says
  # how far the target trails the source.
  - pattern: 'kafka.consumer<type=consumer-fetch-manager-metrics, client-id="?[^|"]*\\|\
(Mirror[A-Za-z]+)-([0-9]+)\\|replication-consumer"?, topic=(.+), partition=([0-9]+)>\
<>(records-lag|records-lag-max)'
    name: kafka_connect_mirror_consumer_$5
    type: GAUGE
    labels: {connector: "$1", task: "$2", topic: "$3", partition: "$4"}
"""

_ENVIRONMENT = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # noqa: S701 - a .properties file: every value is properties-escaped
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    finalize=_property_value,
)


_MM2 = _ENVIRONMENT.from_string(_MM2_TEMPLATE)


def _render_mm2_secrets(settings: MirrorMakerSettings) -> str:
    """The passwords `mm2.properties` refers to, as `FileConfigProvider` reads them."""
    lines = ["# Rendered by the kafka_k8s mirrormaker charm library. Read by MirrorMaker only."]
    for alias, cluster in ((_SOURCE_ALIAS, settings.source), (_TARGET_ALIAS, settings.target)):
        lines.append(f"{alias}.sasl.jaas.config={_properties_escape(cluster.jaas_config)}")
    return "\n".join(lines) + "\n"


def _render_mm2_properties(settings: MirrorMakerSettings) -> str:
    """Render `mm2.properties` for one MirrorMaker node; every value is properties-escaped."""
    return _MM2.render(
        settings=settings,
        config=settings.config,
        workload=settings.workload,
        unit_host=settings.unit_host,
        source=_SOURCE_ALIAS,
        target=_TARGET_ALIAS,
        policy_class=_POLICY_CLASSES[settings.config.replication_policy],
        rf=settings.replication_factor,
    )


def _mirrormaker_layer(settings: MirrorMakerSettings) -> ops.pebble.LayerDict:
    """The Pebble layer of a running `mirrormaker` service.

    `MirrorMakerService.stop` overrides `startup` to `disabled` once the migration stops.
    """
    workload = settings.workload
    metrics = f"{workload.metrics_host}:" if workload.metrics_host else ""
    heap = settings.config.heap_mb or workload.heap_mb
    return {
        "summary": "MirrorMaker 2",
        "services": {
            _SERVICE: {
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


class _FinishedMigration(BaseModel):
    """What `finish-migration` recorded: when, from which source, what moved."""

    model_config = ConfigDict(frozen=True)

    at: str
    source: str
    topics: list[str] = Field(default_factory=list)
    records: int = 0
    groups: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        """One line about the finished migration."""
        return (
            f"the migration from {self.source} was finished at {self.at}: "
            f"{_count(len(self.topics), 'topic')}, {_count(self.records, 'record')}, "
            f"{_count(len(self.groups), 'group')} switched"
        )


class _MigrationRequest(BaseModel):
    """What an operator last asked for, as a unit recorded it in its peer databag.

    Requests are ordered by `seq` (one more than the newest the acting unit had seen), then by
    time and unit name, so every unit picks the same newest request. A `finished` request
    carries what `finish-migration` recorded.
    """

    model_config = ConfigDict(frozen=True)

    state: _RequestedState = "stopped"
    seq: int = 0
    at: int = 0
    by: str = ""
    # Set when a unit stopped the migration itself because its source went away.
    reason: str = ""
    finished: _FinishedMigration | None = None

    @property
    def fences(self) -> bool:
        """Whether this request fences the migrated topics: a migration not finished."""
        return self.seq > 0 and self.state != "finished"

    def order(self) -> tuple[int, int, str]:
        """The sort key: newest last."""
        return (self.seq, self.at, self.by)

    def raw(self) -> str:
        """The request as a unit records it in its databag."""
        return self.model_dump_json(exclude_none=True, exclude=None if self.reason else {"reason"})


class UnitState(BaseModel):
    """What a unit publishes about its MirrorMaker node."""

    model_config = ConfigDict(frozen=True)

    service: str = "absent"
    exactly_once: _ExactlyOnceSupport = Field(
        default="disabled",
        validation_alias=AliasChoices("exactly-once", "exactly_once"),
        serialization_alias="exactly-once",
    )


def _newest_request(requests: Iterable[_MigrationRequest]) -> _MigrationRequest:
    """The request every unit follows: the newest one, or `stopped` when there is none."""
    return max(requests, key=_MigrationRequest.order, default=_MigrationRequest())


def _exactly_once_mode(wanted: bool, peers: Iterable[UnitState]) -> _ExactlyOnceSupport:
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


def _push_if_changed(
    container: ops.Container,
    path: PurePosixPath,
    content: str,
    *,
    secret: bool,
    user: str,
    group: str,
) -> bool:
    """Write a file into the container unless it already holds `content` with the right mode.

    Files holding secrets are mode 0600; every file is owned by the workload user. A file whose
    content is right but whose mode is not is written again, with the mode.

    Returns:
        Whether the content changed (a mode put right alone is no change to act on).
    """
    mode = 0o600 if secret else 0o644
    try:
        with container.pull(path) as current:
            same = current.read() == content
    except ops.pebble.PathError:
        same = False
    if same and container.list_files(path, itself=True)[0].permissions == mode:
        return False
    container.push(path, content, make_dirs=True, permissions=mode, user=user, group=group)
    return not same


class MirrorMakerService:
    """MirrorMaker in its container: its files, its layer, its service."""

    def __init__(self, container: ops.Container, workload: MirrorMakerWorkload | None = None):
        self.container = container
        self.workload = workload or MirrorMakerWorkload()

    def _write(self, path: PurePosixPath, content: str, *, secret: bool) -> bool:
        workload = self.workload
        return _push_if_changed(
            self.container, path, content, secret=secret, user=workload.user, group=workload.group
        )

    def state(self) -> str:
        """The Pebble state of the service: active, inactive, backoff, error, or absent."""
        services = self.container.get_services(_SERVICE)
        if _SERVICE not in services:
            return "absent"
        current = services[_SERVICE].current  # "backoff" is not in ops' enum
        return current.value if isinstance(current, ops.pebble.ServiceStatus) else str(current)

    def configure(self, settings: MirrorMakerSettings) -> bool:
        """Write the files MirrorMaker reads: `mm2.properties`, its secrets, its JMX rules.

        The passwords go only into the secrets file (mode 0600); `mm2.properties` refers to them,
        so the connector configs MirrorMaker stores in a topic hold no password.

        Returns:
            Whether `mm2.properties` or the secrets changed (MirrorMaker reads both at start).
        """
        workload = self.workload
        self._write(workload.jmx_config, _JMX_RULES, secret=False)
        secrets = self._write(workload.mm2_secrets, _render_mm2_secrets(settings), secret=True)
        config = self._write(
            workload.mm2_properties, _render_mm2_properties(settings), secret=True
        )
        return secrets or config

    def run(self, settings: MirrorMakerSettings) -> None:
        """Write the files and bring the service up; restart it when its files or layer changed.

        A changed password (a rotation) changes only the secrets file: that restarts it too.

        Raises:
            ops.pebble.ChangeError: if Pebble cannot start the service.
        """
        changed = self.configure(settings)
        before = self.container.get_plan().services.get(_SERVICE)
        self.container.add_layer(_SERVICE, _mirrormaker_layer(settings), combine=True)
        after = self.container.get_plan().services.get(_SERVICE)
        layer_changed = before is None or after is None or before.to_dict() != after.to_dict()
        state = self.state()
        if state in ("active", "backoff"):
            if changed or layer_changed:
                self.container.restart(_SERVICE)
        else:
            self.container.start(_SERVICE)

    def stop(self) -> None:
        """Stop the service, keep it from starting with the container, remove its secrets."""
        if _SERVICE in self.container.get_plan().services:
            disabled: ops.pebble.LayerDict = {
                "services": {_SERVICE: {"override": "merge", "startup": "disabled"}}
            }
            self.container.add_layer(_SERVICE, disabled, combine=True)
            if self.state() in ("active", "backoff"):
                self.container.stop(_SERVICE)
        for path in (self.workload.mm2_properties, self.workload.mm2_secrets):
            if self.container.exists(path):
                self.container.remove_path(path)


# Admin queries ---------------------------------------------------------------------------------

_KAFKA_LOGGER = "kafka"


def _quiet_kafka_logs() -> None:
    """Keep kafka-python's loggers at WARNING and above, whatever the host set.

    Its DEBUG records carry the whole client configuration, the SASL password with it, and
    every request it sends, SASL exchanges and SCRAM credential changes included; its INFO
    records narrate every connection. ops forwards both to `juju debug-log`. Its WARNING and
    ERROR records say which connection failed and why, and nothing secret.
    """
    manager = logging.getLogger().manager
    for name, known in list(manager.loggerDict.items()):
        if name.startswith(f"{_KAFKA_LOGGER}.") and isinstance(known, logging.Logger):
            if logging.NOTSET < known.level < logging.WARNING:
                known.setLevel(logging.NOTSET)
    kafka_logger = logging.getLogger(_KAFKA_LOGGER)
    if kafka_logger.getEffectiveLevel() < logging.WARNING:
        kafka_logger.setLevel(logging.WARNING)


def _kafka_python_config(
    cluster: KafkaCluster,
    timeout: float = _CLIENT_TIMEOUT,
    client_id: str = "kafka-k8s-migration-status",
) -> dict[str, Any]:
    """A kafka-python configuration for a cluster, with bounded requests and bootstrap."""
    config: dict[str, Any] = {
        "bootstrap_servers": list(cluster.bootstrap_servers),
        "security_protocol": cluster.security_protocol,
        "sasl_mechanism": cluster.sasl_mechanism,
        "sasl_plain_username": cluster.username,
        "sasl_plain_password": cluster.password,
        "request_timeout_ms": int(timeout * 1000),
        "bootstrap_timeout_ms": int(timeout * 1000),
        "client_id": client_id,
    }
    if cluster.ca:
        config["ssl_context"] = ssl.create_default_context(cadata=cluster.ca)
    return config


def _commits_on(offsets: Mapping[Any, Any], topics: Collection[str]) -> _GroupCommits:
    """A group's commits (kafka-python's partition to offset map) on these topics only."""
    commits: _GroupCommits = {}
    for partition, committed in offsets.items():
        if partition.topic in topics and committed.offset >= 0:
            commits.setdefault(partition.topic, {})[partition.partition] = committed.offset
    return commits


def _is_internal_topic(topic: str) -> bool:
    """Topics MirrorMaker never replicates, whatever the filters say."""
    return topic.startswith(("__", ".")) or topic.endswith((".internal", "-internal"))


def _select(names: Iterable[str], include: Sequence[str], exclude: Sequence[str]) -> list[str]:
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


_T = TypeVar("_T")

# kafka-python's errors that say a query could not be answered: the cluster's own error codes,
# and its client's errors for connections, timeouts and the protocol.
_QUERY_ERRORS = (kafka_errors.KafkaError, OSError)
# librdkafka's names of the group states, which the report has always shown.
_GROUP_STATES = {
    "PreparingRebalance": "preparing_rebalancing",
    "CompletingRebalance": "completing_rebalancing",
}
_ERRNO_TEXT = re.compile(r"(\d+) E[A-Z]+")
_ERROR_CODE = re.compile(r"\[Error (-?\d+)\]")
_SSL_LOCATION = re.compile(r"\s*\(_ssl\.c:\d+\)$")


def _error_text(error: object) -> tuple[str, bool]:
    """What a kafka-python error says, and whether the cluster (not the network) said it."""
    if isinstance(error, kafka_errors.RequestTimedOutError | kafka_errors.KafkaTimeoutError):
        return "timed out", False
    if isinstance(error, kafka_errors.BrokerResponseError):
        # The error's name, as Kafka's documentation spells it: GROUP_AUTHORIZATION_FAILED.
        return str(error.message or type(error).__name__).replace("_", " ").lower(), True
    if isinstance(error, kafka_errors.KafkaError):
        text = str(error.args[0]) if error.args else type(error).__name__
        if errno := _ERRNO_TEXT.fullmatch(text):
            text = os.strerror(int(errno.group(1)))
        return text, False
    return str(error), False


def _tls_failure(error: BaseException) -> str | None:
    """Why a TLS handshake failed, when `error` or what it was raised from is an `ssl` error."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {seen.verify_message}"
        if isinstance(seen, ssl.SSLError):
            return _SSL_LOCATION.sub("", str(seen))
        seen = seen.__cause__ or seen.__context__
    return None


def _sasl_refusal(error: kafka_errors.SaslAuthenticationFailedError) -> str:
    """The broker's words for a refused login, without kafka-python's error names before them."""
    return str(error).rsplit("SaslAuthenticationFailedError: ", 1)[-1]


class _TopicOffsets(BaseModel):
    """Where each partition of a topic starts and ends on one cluster."""

    model_config = ConfigDict(frozen=True)

    start: tuple[int, ...]
    end: tuple[int, ...]

    def records(self, partition: int) -> int:
        """How many offsets the partition holds: its end offset minus its start offset."""
        return max(0, self.end[partition] - self.start[partition])

    @property
    def total_records(self) -> int:
        """How many offsets all partitions hold."""
        return sum(max(0, end - start) for start, end in zip(self.start, self.end, strict=True))


class _ConnectorState(BaseModel):
    """What Kafka Connect last recorded for one MirrorMaker connector (`task` None) or task."""

    model_config = ConfigDict(frozen=True)

    connector: str
    task: int | None = None
    state: str
    trace: str | None = Field(default=None, repr=False)


_GroupCommits = dict[str, dict[int, int]]
"""A consumer group's committed offsets: topic, then partition, then offset."""


def _source_from_secret(
    content: Mapping[str, str],
    bootstrap_servers: Sequence[str],
    *,
    secret_id: str,
    option: str = "mirrormaker-source-credentials",
) -> SourceCluster:
    """The external source cluster from its credentials secret's content.

    Raises:
        SourceError: naming `option` and the key that is missing, unknown or invalid.
    """
    unknown = sorted(set(content) - set(_SECRET_KEYS))
    missing = [key for key in ("username", "password") if not content.get(key)]
    if unknown or missing:
        problems = [f"missing key {', '.join(missing)}"] if missing else []
        problems += [f"unknown key {', '.join(unknown)}"] if unknown else []
        # Credentials taken out of the secret stop a running migration; an unknown key does not.
        error = SourceGoneError if missing else SourceError
        raise error(
            f"{option}: secret {secret_id} has {' and '.join(problems)} (keys: username, "
            "password, optional sasl-mechanism, security-protocol, ca)"
        )
    mechanism = content.get("sasl-mechanism", "SCRAM-SHA-512")
    protocol = content.get("security-protocol", "SASL_PLAINTEXT")
    ca = content.get("ca") or None
    if mechanism not in _SASL_MECHANISMS:
        raise SourceError(f"{option}: sasl-mechanism must be one of {', '.join(_SASL_MECHANISMS)}")
    if protocol not in _SECURITY_PROTOCOLS:
        raise SourceError(
            f"{option}: security-protocol must be one of {', '.join(_SECURITY_PROTOCOLS)}"
        )
    if ca is not None and "-----BEGIN CERTIFICATE-----" not in ca:
        raise SourceError(f"{option}: ca must be a PEM certificate")
    if ca is not None and protocol != "SASL_SSL":
        raise SourceError(f"{option}: ca is set, so security-protocol must be SASL_SSL")
    return SourceCluster.model_validate(
        {
            "name": bootstrap_servers[0],
            "bootstrap_servers": tuple(bootstrap_servers),
            "username": content["username"],
            "password": content["password"],
            "sasl_mechanism": mechanism,
            "security_protocol": protocol,
            "ca": ca,
        }
    )


def _source_from_relation(
    name: str,
    *,
    endpoints: str,
    username: str,
    password: str,
    tls: bool,
    tls_ca: str | None,
    relation_name: str = "migration-source",
) -> SourceCluster:
    """The related source cluster from its `kafka_client` response.

    Raises:
        SourceError: if the endpoints are not `HOST:PORT` or the CA is not a PEM certificate.
    """
    if tls_ca and "-----BEGIN CERTIFICATE-----" not in tls_ca:
        raise SourceError(f"{relation_name}: {name} sent a tls-ca that is not a PEM certificate")
    try:
        return SourceCluster.model_validate(
            {
                "name": name,
                "bootstrap_servers": endpoints,
                "username": username,
                "password": password,
                "security_protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
                "ca": tls_ca or None,
            }
        )
    except ValidationError:
        raise SourceError(
            f"{relation_name}: {name} sent endpoints that are not HOST:PORT"
        ) from None


class _ConnectionFailures(logging.Handler):
    """What one client's I/O thread logged about its failed connections.

    kafka-python retries a refused login and a failed TLS handshake like any failed connection
    until its bootstrap times out, and tells why only in its WARNING and ERROR records, with the
    exception among their arguments (as librdkafka told its `error_cb`). The thread is named
    after the client id, so the records of another client's thread are not taken.
    """

    def __init__(self, client_id: str):
        super().__init__(logging.WARNING)
        self.thread_name = f"kafka-io-{client_id}"
        self.refusal: str | None = None
        self.tls_failure: str | None = None
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the exceptions a record of this client's thread carries."""
        if record.threadName != self.thread_name or not isinstance(record.args, tuple):
            return
        for arg in record.args:
            if isinstance(arg, BaseException):
                self.note(arg)

    def note(self, error: BaseException) -> None:
        """Remember a refused login, a failed TLS handshake, or any other failure."""
        if isinstance(error, kafka_errors.SaslAuthenticationFailedError):
            self.refusal = _sasl_refusal(error)
        elif (failure := _tls_failure(error)) is not None:
            self.tls_failure = failure
        elif (text := _error_text(error)[0]) != "timed out" or self.last is None:
            # A timeout at the end of the retries says less than the failures before it.
            self.last = text

    @contextmanager
    def listening(self) -> Iterator[None]:
        """Listen to kafka-python's loggers while the block runs."""
        kafka_logger = logging.getLogger(_KAFKA_LOGGER)
        kafka_logger.addHandler(self)
        try:
            yield
        finally:
            kafka_logger.removeHandler(self)


class _AdminClient(KafkaAdminClient):
    """kafka-python's admin client, which also closes when it fails to reach the cluster.

    kafka-python 3.0 leaves its I/O thread running and its sockets open when the bootstrap in
    its constructor fails.
    """

    def __init__(self, **config: Any):
        try:
            super().__init__(**config)
        except BaseException:
            if hasattr(self, "_client"):
                self._closed = False
                self.close()
            raise


class _ClusterClient:
    """Read-only queries against one cluster with kafka-python, each bounded by a timeout.

    Topics and offsets come from a consumer that joins no group, the rest from the admin
    client. The client connects at its first query and keeps its connections until `close()`.
    """

    def __init__(self, cluster: KafkaCluster, role: str, timeout: float = _CLIENT_TIMEOUT):
        self.role = role
        self.cluster = cluster
        self.timeout = timeout
        self._config = _kafka_python_config(
            cluster, timeout, client_id=f"kafka-k8s-migration-status-{role}"
        )
        self._failures = _ConnectionFailures(self._config["client_id"])
        self._admin: KafkaAdminClient | None = None
        self._offsets_reader: KafkaConsumer | None = None

    def __enter__(self) -> _ClusterClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections; a later query connects again."""
        admin, self._admin = self._admin, None
        reader, self._offsets_reader = self._offsets_reader, None
        if reader is not None:
            reader.close()
        if admin is not None:
            admin.close()

    def _unreachable(self, error: object) -> ClusterUnreachableError:
        """The error that tells the operator why the cluster failed a query."""
        where = f"{self.role} cluster at {self.cluster.bootstrap}"
        reason, answered = _error_text(error)
        if isinstance(error, BaseException) and reason != "timed out":
            self._failures.note(error)
        if (refusal := self._failures.refusal) is not None:
            return ClusterUnreachableError(
                f"{where} refused the login of {self.cluster.username}: {refusal}", refused=True
            )
        if self._failures.tls_failure is not None:
            ca = _TLS_CA_SOURCES.get(self.role, "its CA")
            detail = _clip(self._failures.tls_failure, 120)
            return ClusterUnreachableError(
                f"{where}: TLS handshake failed, the CA ({ca}) did not verify its certificate: "
                f"{detail}",
                refused=True,
            )
        if answered:
            return ClusterUnreachableError(f"{where} refused the request: {reason}")
        if reason == "timed out" and self._failures.last is not None:
            reason = self._failures.last
        return ClusterUnreachableError(f"{where} did not answer: {reason or 'timed out'}")

    def _client(self) -> KafkaAdminClient:
        """The admin client, connected now if it is not yet (within the timeout)."""
        if self._admin is None:
            _quiet_kafka_logs()
            with self._failures.listening():
                try:
                    self._admin = _AdminClient(**self._config)
                except _QUERY_ERRORS as error:
                    raise self._unreachable(error) from None
        return self._admin

    def _answer(self, query: Callable[[Any], _T]) -> _T:
        """The answer to one query of the admin client, within the timeout and 5 s more.

        kafka-python bounds each request, not the retries and connections a query may need,
        so the query runs on a thread of its own; past the deadline the client is closed, which
        ends the query.

        Raises:
            ClusterUnreachableError: if the client cannot connect or the deadline passes.
            kafka.errors.KafkaError: the query's own error.
            OSError: the query's own error.
        """
        admin = self._client()
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                outcome["answer"] = query(admin)
            except BaseException as error:
                outcome["error"] = error
            finally:
                done.set()

        with self._failures.listening():
            threading.Thread(target=run, name=f"kafka-k8s-{self.role}-query", daemon=True).start()
            answered = done.wait(self.timeout + 5)
        if not answered:
            self.close()
            raise self._unreachable(kafka_errors.KafkaTimeoutError())
        if "error" in outcome:
            raise outcome["error"]
        return outcome["answer"]

    def _ask(self, query: Callable[[Any], _T], *, again: bool = False) -> _T:
        """The answer to one query of the admin client, within the timeout.

        With `again`, a query the cluster answers with a retriable error is asked again, on new
        connections, until the timeout: kafka-python caches each group's coordinator for as long
        as the client lives, so after a coordinator moved (whenever a broker starts, stops or
        restarts) only a new client finds the new one.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time, or refuses.
        """
        deadline = time.monotonic() + self.timeout + 5
        while True:
            try:
                return self._answer(query)
            except _QUERY_ERRORS as error:
                retriable = getattr(error, "retriable", False)
                if not (again and retriable) or time.monotonic() > deadline:
                    raise self._unreachable(error) from None
            self.close()
            time.sleep(0.2)

    def topics(self) -> dict[str, int]:
        """Every topic this user may describe but Kafka's own, with its number of partitions.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """

        def query(_: Any) -> dict[str, int]:
            reader = cast(Any, self._reader())
            return {name: len(reader.partitions_for_topic(name)) for name in reader.topics()}

        return self._ask(query)

    def groups(self) -> list[str]:
        """Every consumer group this user may describe.

        A broker that is still loading its share of the group offsets answers "coordinator load
        in progress" (every broker does for a while after it starts): asked again until the
        timeout.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        listed = self._ask(lambda admin: admin.list_groups(), again=True)
        return sorted({group["group_id"] for group in listed})

    def _list_offsets(
        self, topics: Mapping[str, int], *, starts: bool
    ) -> list[dict[str, list[int]]]:
        """The end offsets (last stable offsets) of these topics' partitions; first offsets too.

        With `starts`, the first offsets come first in the list. The consumer that `topics()`
        asks, not the admin client: kafka-python's admin fetches and converts the metadata of
        every partition again for each spec it lists, which costs a second of CPU per 10,000
        partitions; the consumer keeps what it learned (it asks for the metadata of all topics
        at once if it lacks any of these) and sends only ListOffsets.
        """
        partitions = [
            TopicPartition(topic, partition)
            for topic, count in topics.items()
            for partition in range(count)
        ]
        timeout_ms = int(self.timeout * 1000)

        def query(_: Any) -> list[dict[Any, int]]:
            # kafka-python 3's timeouts; the type stubs know an older release.
            reader = cast(Any, self._reader())
            for topic in topics:
                reader.partitions_for_topic(topic)
            first = [reader.beginning_offsets(partitions, timeout_ms=timeout_ms)] if starts else []
            return [*first, reader.end_offsets(partitions, timeout_ms=timeout_ms)]

        answers = []
        for answer in self._ask(query):
            offsets = {topic: [0] * count for topic, count in topics.items()}
            for partition, offset in answer.items():
                offsets[partition.topic][partition.partition] = offset
            answers.append(offsets)
        return answers

    def _reader(self) -> KafkaConsumer:
        """The consumer that lists offsets, read committed; it joins no group."""
        if self._offsets_reader is None:
            self._offsets_reader = KafkaConsumer(
                **self._config,
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
            )
        return self._offsets_reader

    def end_offsets(self, topics: Mapping[str, int]) -> dict[str, list[int]]:
        """The end offset (last stable offset) of every partition of these topics.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        if not topics:
            return {}
        return self._list_offsets(topics, starts=False)[0]

    def offsets(self, topics: Mapping[str, int]) -> dict[str, _TopicOffsets]:
        """Where every partition of these topics starts and ends; one request per leader each.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        if not topics:
            return {}
        starts, ends = self._list_offsets(topics, starts=True)
        return {
            topic: _TopicOffsets(start=tuple(starts[topic]), end=tuple(ends[topic]))
            for topic in topics
        }

    def committed_offsets(
        self, groups: Sequence[str], topics: Collection[str]
    ) -> dict[str, _GroupCommits]:
        """The committed offsets of each consumer group on these topics; absent groups have none.

        One request per group coordinator; a coordinator that moved is asked again until the
        timeout. (librdkafka's admin call for the same answer crashed the process when a
        group's coordinator moved: confluentinc/librdkafka#5040.)

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        if not groups:
            return {}
        answer = self._ask(lambda admin: admin.list_group_offsets(list(groups)), again=True)
        return {group: _commits_on(answer.get(group, {}), topics) for group in groups}

    def missing_rights(
        self, topics: Collection[str], *, groups: bool = False, acls: bool = False
    ) -> list[str]:
        """The rights MirrorMaker needs on this (the source) cluster that its user lacks.

        Args:
            topics: topics whose configs MirrorMaker reads: to create their copies (it fails
                to without) and, with `sync.topic.configs`, to copy their configs.
            groups: whether to check that the user may describe every consumer group, which
                MirrorMaker needs to find the groups and translate their offsets.
            acls: whether to check that the user may describe ACLs, to copy topic ACLs.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        user = self.cluster.username
        missing = []
        try:
            described = (
                self._answer(lambda admin: admin.describe_topics(sorted(topics))) if topics else []
            )
            blind = sorted(
                topic["name"]
                for topic in described
                if topic.get("authorized_operations") is not None
                and "DESCRIBE_CONFIGS" not in topic["authorized_operations"]
            )
            if blind:
                named = ", ".join(blind[:3]) + (", ..." if len(blind) > 3 else "")
                missing.append(
                    f"source user {user} may not describe the configs of "
                    f"{_count(len(blind), 'topic')} ({named}): MirrorMaker cannot create their "
                    "copies; grant it DESCRIBE_CONFIGS on them"
                )
            if groups:
                try:
                    probe = self._answer(
                        lambda admin: admin.describe_groups([_RIGHTS_PROBE_GROUP])
                    )
                    refused = "GroupAuthorizationFailed" in str(
                        probe.get(_RIGHTS_PROBE_GROUP, {}).get("error") or ""
                    )
                except kafka_errors.GroupAuthorizationFailedError:
                    refused = True
                except (
                    kafka_errors.CoordinatorNotAvailableError,
                    kafka_errors.CoordinatorLoadInProgressError,
                    kafka_errors.NotCoordinatorError,
                ):
                    refused = False  # answered after the authorization passed: not ready yet
                if refused:
                    missing.append(
                        f"source user {user} may not describe every consumer group: no group's"
                        " offsets migrate; grant it DESCRIBE on the groups"
                    )
            operations = (
                self._answer(lambda admin: admin.describe_cluster()).get("authorized_operations")
                if acls
                else None
            )
            if operations is not None and "DESCRIBE" not in operations:
                missing.append(
                    f"source user {user} may not describe ACLs: no topic ACL is copied; grant it"
                    " DESCRIBE on the cluster"
                )
        except _QUERY_ERRORS as error:
            raise self._unreachable(error) from None
        return missing

    def topic_acls(self) -> list[_TopicAcl]:
        """Every literal topic ACL of the cluster.

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or the user may not
                describe ACLs (`refused`).
        """
        query = ACLFilter(
            principal=None,
            host=None,
            operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(
                ResourceType.TOPIC, None, ACLResourcePatternType.LITERAL
            ),
        )
        found, _ = self._ask(lambda admin: admin.describe_acls(query))
        return [
            _TopicAcl(
                topic=acl.resource_pattern.resource_name,
                principal=acl.principal,
                host=acl.host,
                operation=acl.operation.name,
                permission=acl.permission_type.name,
            )
            for acl in found
        ]

    def create_topic_acls(self, acls: Sequence[_TopicAcl]) -> None:
        """Create literal topic ACLs; creating one that exists changes nothing.

        Raises:
            ClusterUnreachableError: if the cluster does not answer or refuses one.
        """
        if not acls:
            return
        bindings = [
            ACL(
                principal=acl.principal,
                host=acl.host,
                operation=ACLOperation[acl.operation],
                permission_type=ACLPermissionType[acl.permission],
                resource_pattern=ResourcePattern(
                    ResourceType.TOPIC, acl.topic, ACLResourcePatternType.LITERAL
                ),
            )
            for acl in acls
        ]
        result = self._ask(lambda admin: admin.create_acls(bindings))
        if result.get("failed"):
            _, error = result["failed"][0]
            raise self._unreachable(f"creating ACLs: {error}")

    def describe_groups(self, groups: Sequence[str]) -> dict[str, tuple[str, int]]:
        """The state (`stable`, `empty`, ...) and the number of members of each group.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time, or refuses a group.
        """
        if not groups:
            return {}

        def query(admin: Any) -> dict[str, Any]:
            # kafka-python puts each group's error in its answer as text: "[Error 14] ...".
            answer = admin.describe_groups(list(groups))
            for description in answer.values():
                if error := str(description.get("error") or ""):
                    code = _ERROR_CODE.match(error)
                    raise kafka_errors.for_code(int(code.group(1)) if code else -1)(error)
            return answer

        described: dict[str, tuple[str, int]] = {}
        for group, description in self._ask(query, again=True).items():
            state = str(description.get("group_state") or "unknown")
            described[group] = (
                _GROUP_STATES.get(state, state.lower()),
                len(description.get("members") or ()),
            )
        return described

    def connector_states(self, source_alias: str) -> list[_ConnectorState]:
        """The state of every MirrorMaker connector and task of the flow from `source_alias`.

        Read from Kafka Connect's own records on this (the target) cluster, as its REST API
        would: the status topic holds the state and error trace of each connector and task,
        the config topic how many tasks each connector has now (the status topic keeps the
        records of tasks a connector no longer has). This is the cluster-wide truth, readable
        from any unit through Kafka alone. The JMX metrics of a node only know its own tasks,
        carry no error trace, and vanish with the node. Dedicated MirrorMaker records the
        flow (`source->target`) as the worker of every task, so neither says which unit runs
        a task; a unit's service state comes from the peer data.

        Raises:
            ClusterUnreachableError: if the topics cannot be read in time.
        """
        configs, statuses = (
            f"mm2-configs.{source_alias}.internal",
            f"mm2-status.{source_alias}.internal",
        )
        latest = self._read_compacted((configs, statuses))
        return _connector_states(latest[configs], latest[statuses])

    def _read_compacted(self, topics: Sequence[str]) -> dict[str, dict[str, bytes | None]]:
        """The latest value of each key of compacted topics; a topic that does not exist is empty.

        All partitions are read at once, from their beginning up to the end offsets they had
        when the reading began (read committed).

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or the ends are not
                reached within the timeout.
        """
        deadline = time.monotonic() + self.timeout + 5
        latest: dict[str, dict[str, bytes | None]] = {topic: {} for topic in topics}
        described = self._ask(lambda admin: admin.describe_topics(list(topics)))
        found = {
            topic["name"]: len(topic["partitions"])
            for topic in described
            if topic["error_code"] == 0 and topic["name"] in latest
        }
        ends = self.end_offsets(found)
        pending = {
            TopicPartition(topic, partition): end
            for topic, partition_ends in ends.items()
            for partition, end in enumerate(partition_ends)
            if end > 0
        }
        if not pending:
            return latest
        config = {
            **self._config,
            "group_id": None,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "isolation_level": "read_committed",
            "fetch_max_wait_ms": 20,
        }
        with self._failures.listening():
            try:
                consumer = KafkaConsumer(**config)
            except _QUERY_ERRORS as error:
                raise self._unreachable(error) from None
            try:
                consumer.assign(list(pending))
                consumer.seek_to_beginning()
                while pending:
                    if time.monotonic() > deadline:
                        raise self._unreachable(f"timed out reading {', '.join(topics)}")
                    for partition, records in consumer.poll(timeout_ms=100).items():
                        for record in records:
                            key = (record.key or b"").decode(errors="replace")
                            latest[partition.topic][key] = record.value
                    pending = {
                        partition: end
                        for partition, end in pending.items()
                        if (consumer.position(partition, timeout_ms=0) or 0) < end
                    }
            except _QUERY_ERRORS as error:
                raise self._unreachable(error) from None
            finally:
                consumer.close(autocommit=False, timeout_ms=1000)
        return latest


def _json_object(value: bytes | None) -> dict[str, Any]:
    try:
        parsed = json.loads(value) if value else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _connector_states(
    configs: Mapping[str, bytes | None], statuses: Mapping[str, bytes | None]
) -> list[_ConnectorState]:
    """Each live connector and each of its current tasks, from Connect's config and status topics.

    Args:
        configs: the latest value of each key of the config topic; only the `connector-NAME`
            and `commit-NAME` (`{"tasks": N}`) records are read, never a connector's settings.
        statuses: the latest value of each key of the status topic (`status-connector-NAME`,
            `status-task-NAME-N`: `{"state": ..., "trace": ...}`).

    A current task without a status record yet is `UNASSIGNED`, as Connect reports it.
    """
    states = []
    for key in sorted(configs):
        if not key.startswith("connector-") or configs[key] is None:
            continue
        connector = key.removeprefix("connector-")
        recorded = _json_object(statuses.get(f"status-connector-{connector}"))
        states.append(
            _ConnectorState(
                connector=connector,
                state=str(recorded.get("state", "UNASSIGNED")),
                trace=recorded.get("trace"),
            )
        )
        tasks = _json_object(configs.get(f"commit-{connector}")).get("tasks", 0)
        for task in range(int(tasks) if isinstance(tasks, int) else 0):
            recorded = _json_object(statuses.get(f"status-task-{connector}-{task}"))
            states.append(
                _ConnectorState(
                    connector=connector,
                    task=task,
                    state=str(recorded.get("state", "UNASSIGNED")),
                    trace=recorded.get("trace"),
                )
            )
    return states


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return f"{shown}, ... ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else shown


# Topic ACLs ------------------------------------------------------------------------------------
#
# MirrorMaker 3.9 copies the source's literal topic ACLs as they are (`sync.topic.acls`), with no
# way to filter them by principal. The kafka_client interface names every relation user
# `relation-<relation id>`, so the ACLs of the source's `User:relation-7` would give the target's
# own, unrelated `relation-7` application the same rights. The library therefore copies the
# ACLs itself, with MirrorMaker's rules, and skips those principals; MirrorMaker's own sync
# stays off.


class _TopicAcl(BaseModel):
    """A literal topic ACL binding, in Kafka's names."""

    model_config = ConfigDict(frozen=True)

    topic: str
    principal: str
    host: str = "*"
    operation: str
    permission: Literal["ALLOW", "DENY"] = "ALLOW"


# The principal of a kafka_client relation user: `relation-<id>`, or `relation-<id>-<request>`.
_RELATION_PRINCIPAL = re.compile(r"User:relation-\d+(-.+)?")


def _acls_to_copy(acls: Iterable[_TopicAcl], config: MigrationConfig) -> list[_TopicAcl]:
    """The source ACLs to create on the target, renamed as the replication policy names topics.

    MirrorMaker's rules (`MirrorSourceConnector.syncTopicAcls`): ACLs of migrated topics only,
    no ALLOW WRITE (only MirrorMaker writes a copy), ALLOW ALL becomes ALLOW READ. And two more:
    no ACL of a kafka_client relation user, whose name means another application on the target,
    and no ACL on the wildcard topic `*`, which on the target would cover MirrorMaker's topics.
    """
    copied = set()
    for acl in acls:
        if _RELATION_PRINCIPAL.fullmatch(acl.principal) or _is_internal_topic(acl.topic):
            continue
        if acl.topic == "*":  # every topic of the source: here it would reach MirrorMaker's own
            continue
        if acl.permission == "ALLOW" and acl.operation == "WRITE":
            continue
        if not _select([acl.topic], config.topics, config.topics_exclude):
            continue
        operation = (
            "READ" if (acl.permission, acl.operation) == ("ALLOW", "ALL") else acl.operation
        )
        copied.add(
            acl.model_copy(
                update={"topic": config.target_topic(acl.topic), "operation": operation}
            )
        )
    return sorted(copied, key=lambda acl: (acl.topic, acl.principal, acl.operation, acl.host))


def _copy_topic_acls(
    source: KafkaCluster,
    target: KafkaCluster,
    config: MigrationConfig,
    timeout: float = _CLIENT_TIMEOUT,
) -> list[_TopicAcl]:
    """Copy the source's topic ACLs to the target (`_acls_to_copy`); the ACLs created.

    Raises:
        ClusterUnreachableError: if a cluster does not answer, or refuses (the source user may
            not describe ACLs, the target user may not create them).
    """
    with _ClusterClient(source, "source", timeout) as source_client:
        acls = _acls_to_copy(source_client.topic_acls(), config)
    with _ClusterClient(target, "target", timeout) as target_client:
        target_client.create_topic_acls(acls)
    return acls


# Records and offset syncs -----------------------------------------------------------------------
#
# MirrorMaker copies each partition in order and at least once: a task that restarts sends again
# what it had sent since its last committed source offset, so a target partition holds runs of
# the source's records, each in source order, a later run starting again before an earlier one
# ended. Records a `read_committed` consumer never sees (aborted ones, transaction markers,
# compacted-away offsets) are never copied, so offsets differ between the clusters. The offset
# syncs MirrorMaker writes on the target are exact pairs: the source record at `upstream` was
# written to the target at `downstream`. From such a pair, the records of both partitions,
# walked in step and matched by content (key, value, headers and timestamp), say which source
# record every target record copies; what a consumer switched at any offset would read follows.

_Content = tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...], int]
"""What identifies a record across clusters: key, value, headers and timestamp."""

_Partition = tuple[str, int]
"""A topic and a partition number."""

# How far one walk reads in a partition, on each cluster; what lies beyond is not looked at.
_WALK_LIMIT = 200_000
# How many records past a time `offsets_for_times` gave a content search reads at most.
_SEARCH_LIMIT = 20_000
# Partitions a record reader assigns at once.
_READ_CHUNK = 1000
# Offsets past the newest offset sync within which a partition's lag is counted record by record.
_EXACT_LAG_WINDOW = 5_000
# Records of the offset-syncs topic read at first, from its end; each further read doubles.
_SYNC_CHUNK = 2_000
_MIRRORMAKER_CONNECTOR = "MirrorSourceConnector"


class _Record(NamedTuple):
    """A record as a `read_committed` consumer reads it: its offset and its content."""

    offset: int
    content: _Content


class _OffsetSync(NamedTuple):
    """One of MirrorMaker's offset syncs: source `upstream` was copied to target `downstream`."""

    topic: str
    partition: int
    upstream: int
    downstream: int


def _offset_syncs_topic() -> str:
    """MirrorMaker's offset-syncs topic, which `offset-syncs.topic.location=target` puts here.

    Kafka names it after the cluster at the other end of the flow from where it lives
    (`MirrorSourceConfig.offsetSyncsTopic`): on the target, after the source.
    """
    return f"mm2-offset-syncs.{_SOURCE_ALIAS}.internal"


def _internal_topics(migrated: Collection[str]) -> list[str]:
    """The topics MirrorMaker made on the target for itself (`heartbeats` unless migrated)."""
    names = [
        _offset_syncs_topic(),
        f"mm2-configs.{_SOURCE_ALIAS}.internal",
        f"mm2-offsets.{_SOURCE_ALIAS}.internal",
        f"mm2-status.{_SOURCE_ALIAS}.internal",
        f"{_SOURCE_ALIAS}.checkpoints.internal",
    ]
    return names if "heartbeats" in migrated else [*names, "heartbeats"]


def _decode_offset_sync(key: bytes | None, value: bytes | None) -> _OffsetSync | None:
    """An offset-syncs record (Kafka's `OffsetSync` key and value schemas), or None if it is not.

    The key is the source topic as a string (int16 length, UTF-8) and the partition (int32); the
    value the upstream and downstream offsets (int64 each), all big-endian.
    """
    if not key or not value or len(key) < 6 or len(value) != 16:
        return None
    (length,) = struct.unpack_from(">h", key)
    if length < 0 or len(key) != 2 + length + 4:
        return None
    (partition,) = struct.unpack_from(">i", key, 2 + length)
    upstream, downstream = struct.unpack(">qq", value)
    return _OffsetSync(
        key[2 : 2 + length].decode(errors="replace"), partition, upstream, downstream
    )


def _decode_source_offset(key: bytes | None, value: bytes | None) -> tuple[_Partition, int] | None:
    """A source offset MirrorMaker committed, from Kafka Connect's offsets topic, or None.

    The key is `["MirrorSourceConnector", {"cluster": ..., "topic": ..., "partition": ...}]`, the
    value `{"offset": N}`: the offset of the last source record whose copy was acknowledged.
    """
    try:
        connector, partition = json.loads(key or b"null")
        offset = json.loads(value)["offset"] if value else None
    except (ValueError, TypeError, KeyError):
        return None
    if connector != _MIRRORMAKER_CONNECTOR or not isinstance(partition, dict):
        return None
    if partition.get("cluster") != _SOURCE_ALIAS or not isinstance(offset, int):
        return None
    topic, number = partition.get("topic"), partition.get("partition")
    if not isinstance(topic, str) or not isinstance(number, int):
        return None
    return (topic, number), offset


def _copies(source: Sequence[_Record], target: Sequence[_Record]) -> list[int | None]:
    """For each target record, the index in `source` of the record it copies; None if unknown.

    The target is walked in step with the source: a record that equals the source record after
    the one the previous target record copied continues the run. Any other record starts a new
    run (a re-send, or a gap where the target's own compaction removed records); of equal source
    records, the one nearest to where the run stood is taken. A record the source does not hold
    from the walk's first offset on (sent again from before it, or compacted away on the source
    since) copies nothing known.
    """
    where: dict[_Content, list[int]] = {}
    for index, record in enumerate(source):
        where.setdefault(record.content, []).append(index)
    copies: list[int | None] = []
    expected = 0
    for record in target:
        if expected < len(source) and source[expected].content == record.content:
            index = expected
        elif candidates := where.get(record.content):
            index = min(candidates, key=lambda candidate: (abs(candidate - expected), candidate))
        else:
            copies.append(None)
            continue
        copies.append(index)
        expected = index + 1
    return copies


class _Position(NamedTuple):
    """Where a consumer of the target resumes for a source offset, and what it then reads.

    `re_read`: target records at or after `offset` that copy a record before the source offset
    (or an unknown one); `skip`: source records at or after it whose every copy lies before.
    """

    offset: int
    re_read: int
    skip: int


@dataclass(frozen=True)
class _Walk:
    """One partition on both clusters from an anchor on, and which target record copies which.

    `source` holds the source's committed records from the anchor's upstream offset, `target`
    the target's from the anchor's downstream offset (or from earlier, to judge an offset
    there); `target_end` is the target's end offset when it was read. `complete` is whether
    both were read to their ends.
    """

    source: Sequence[_Record]
    target: Sequence[_Record]
    target_end: int
    complete: bool = True
    how: str = "offset sync"
    copies: list[int | None] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        source: Sequence[_Record],
        target: Sequence[_Record],
        target_end: int,
        *,
        complete: bool = True,
        how: str = "offset sync",
    ) -> _Walk:
        """The walk, with the copies computed."""
        return cls(source, target, target_end, complete, how, _copies(source, target))

    def _first_at_or_after(self, committed: int) -> int:
        return bisect.bisect_left([record.offset for record in self.source], committed)

    def copied_before(self, committed: int) -> bool:
        """Whether the target holds the last source record before `committed` (or needs none)."""
        first_new = self._first_at_or_after(committed)
        return first_new == 0 or (first_new - 1) in set(self.copies)

    def copied_up_to(self) -> int | None:
        """One past the source offset of the furthest record copied, if any was."""
        known = [index for index in self.copies if index is not None]
        return self.source[max(known)].offset + 1 if known else None

    def lag(self) -> int:
        """Source records after the furthest one the target holds."""
        known = [index for index in self.copies if index is not None]
        return len(self.source) - 1 - max(known) if known else len(self.source)

    def _last_copies(self, first_new: int) -> dict[int, int]:
        """For each source record from `first_new` on that was copied, its last copy's index."""
        last: dict[int, int] = {}
        for position, index in enumerate(self.copies):
            if index is not None and index >= first_new:
                last[index] = position
        return last

    def judge(self, committed: int, offset: int) -> _Position:
        """What a consumer resuming at target `offset` reads, against source offset `committed`."""
        first_new = self._first_at_or_after(committed)
        start = bisect.bisect_left([record.offset for record in self.target], offset)
        re_read = sum(1 for index in self.copies[start:] if index is None or index < first_new)
        last = self._last_copies(first_new)
        return _Position(offset, re_read, sum(1 for at in last.values() if at < start))

    def position(self, committed: int) -> _Position:
        """The target offset matching source offset `committed`: the furthest that skips nothing.

        Every source record at or after `committed` that the target holds keeps its last copy at
        or after it, so nothing is skipped; past that, each record before it would be a re-read.
        """
        last = self._last_copies(self._first_at_or_after(committed))
        first = min(last.values(), default=len(self.target))
        offset = self.target[first].offset if first < len(self.target) else self.target_end
        return self.judge(committed, offset)


def _positions(consumer: KafkaConsumer, partitions: Sequence[TopicPartition]) -> dict[Any, int]:
    """The offset the consumer reads next in each partition (0 where it has none yet).

    kafka-python 3's `KafkaConsumer.position` validates every assigned partition's position on
    each call, so asking it for each of n partitions costs n * n. One call validates them all;
    the others are then read from the state it keeps them in, and asked one by one only where
    that state is not as expected.
    """
    first = consumer.position(partitions[0]) or 0
    states = getattr(getattr(consumer, "_subscription", None), "assignment", None)
    positions = {partitions[0]: first}
    for partition in partitions[1:]:
        state = states.get(partition) if isinstance(states, Mapping) else None
        position = getattr(state, "position", None)
        offset = getattr(position, "offset", position)
        positions[partition] = (
            offset if isinstance(offset, int) else (consumer.position(partition) or 0)
        )
    return positions


class _LogClient:
    """Reads partitions record by record and commits group offsets, with kafka-python.

    Records are read as a `read_committed` consumer reads them, with no consumer group: the
    client commits nothing while it reads.
    """

    def __init__(self, cluster: KafkaCluster, role: str, timeout: float = _CLIENT_TIMEOUT):
        self.cluster = cluster
        self.role = role
        self.timeout = timeout
        self._config = _kafka_python_config(cluster, timeout)
        self._reader: KafkaConsumer | None = None
        self._admin_client: KafkaAdminClient | None = None
        _quiet_kafka_logs()  # its DEBUG records carry its configuration, the password with it

    def __enter__(self) -> _LogClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        reader, self._reader = self._reader, None
        admin, self._admin_client = self._admin_client, None
        if reader is not None:
            reader.close(autocommit=False)
        if admin is not None:
            admin.close()

    def _unreachable(self, error: object) -> ClusterUnreachableError:
        where = f"{self.role} cluster at {self.cluster.bootstrap}"
        if isinstance(error, kafka_errors.SaslAuthenticationFailedError):
            return ClusterUnreachableError(
                f"{where} refused the login of {self.cluster.username}", refused=True
            )
        if isinstance(error, kafka_errors.BrokerResponseError):
            return ClusterUnreachableError(f"{where} refused the request: {error}")
        return ClusterUnreachableError(f"{where} did not answer: {error or 'timed out'}")

    def _consumer(self) -> KafkaConsumer:
        if self._reader is None:
            try:
                self._reader = KafkaConsumer(
                    **self._config,
                    group_id=None,
                    enable_auto_commit=False,
                    isolation_level="read_committed",
                    auto_offset_reset="earliest",
                    fetch_max_wait_ms=50,
                    max_poll_records=5000,
                )
            except (kafka_errors.KafkaError, OSError) as error:
                raise self._unreachable(error) from None
        return self._reader

    def _admin(self) -> KafkaAdminClient:
        if self._admin_client is None:
            try:
                self._admin_client = _AdminClient(**self._config)
            except (kafka_errors.KafkaError, OSError) as error:
                raise self._unreachable(error) from None
        return self._admin_client

    def bounds(self, partitions: Collection[_Partition]) -> dict[_Partition, tuple[int, int]]:
        """The first offset and the end offset (last stable offset) of each partition.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        if not partitions:
            return {}
        # kafka-python 3's timeouts; the type stubs know an older release.
        consumer = cast(Any, self._consumer())
        wanted = [TopicPartition(topic, number) for topic, number in partitions]
        timeout_ms = int(self.timeout * 1000)
        try:
            starts = consumer.beginning_offsets(wanted, timeout_ms=timeout_ms)
            ends = consumer.end_offsets(wanted, timeout_ms=timeout_ms)
        except (kafka_errors.KafkaError, OSError) as error:
            raise self._unreachable(error) from None
        return {(p.topic, p.partition): (starts[p], ends[p]) for p in wanted}

    def read(
        self, ranges: Mapping[_Partition, tuple[int, int]], limit: int = _WALK_LIMIT
    ) -> dict[_Partition, tuple[list[_Record], bool]]:
        """The committed records of each partition from `start` up to `end`, at most `limit`.

        Returns, per partition, the records and whether the reading reached `end`.

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or no record arrives for
                the timeout.
        """
        read: dict[_Partition, tuple[list[_Record], bool]] = {p: ([], True) for p in ranges}
        wanted = [
            (TopicPartition(topic, number), (start, end))
            for (topic, number), (start, end) in ranges.items()
            if start < end
        ]
        if not wanted:
            return read
        consumer = self._consumer()
        try:
            # A few partitions at a time: kafka-python's `seek` and `position` each walk the
            # whole assignment, so reading n partitions at once costs n * n.
            for first in range(0, len(wanted), _READ_CHUNK):
                pending = dict(wanted[first : first + _READ_CHUNK])
                consumer.assign(list(pending))
                for partition, (start, _) in pending.items():
                    consumer.seek(partition, start)
                self._poll(consumer, pending, read, limit)
        except (kafka_errors.KafkaError, OSError) as error:
            raise self._unreachable(error) from None
        finally:
            consumer.assign([])
        return read

    def _poll(
        self,
        consumer: KafkaConsumer,
        pending: dict[TopicPartition, tuple[int, int]],
        read: dict[_Partition, tuple[list[_Record], bool]],
        limit: int,
    ) -> None:
        """Poll until every pending partition reached its end or its limit.

        A partition is done when a record at or past its end, or its limit, arrived; after a
        poll that brought nothing, when the consumer's position reached its end (past aborted
        records and transaction markers). Done partitions leave the assignment, which keeps the
        others' positions.
        """
        deadline = time.monotonic() + self.timeout
        while pending:
            if time.monotonic() > deadline:
                named = ", ".join(map(str, itertools.islice(pending, 3)))
                more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
                raise self._unreachable(f"timed out reading {named}{more}")
            done = []
            polled = consumer.poll(timeout_ms=200)
            for partition, records in polled.items():
                if partition not in pending or not records:
                    continue
                key = (partition.topic, partition.partition)
                kept = read[key][0]
                end = pending[partition][1]
                kept += [_record(record) for record in records if record.offset < end]
                deadline = time.monotonic() + self.timeout
                if len(kept) >= limit:
                    read[key] = (kept[:limit], False)
                    done.append(partition)
                elif records[-1].offset + 1 >= end:
                    done.append(partition)
            if not polled:
                positions = _positions(consumer, list(pending))
                done += [p for p, (_, end) in pending.items() if positions[p] >= end]
            if done:
                for partition in done:
                    del pending[partition]
                if pending:
                    consumer.assign(list(pending))

    def first_offsets_at(self, times: Mapping[_Partition, int]) -> dict[_Partition, int | None]:
        """The first offset of each partition whose timestamp is at or after the given one.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        wanted = {TopicPartition(t, p): at for (t, p), at in times.items()}
        try:
            found = cast(Any, self._consumer()).offsets_for_times(
                wanted, timeout_ms=int(self.timeout * 1000)
            )
        except (kafka_errors.KafkaError, OSError) as error:
            raise self._unreachable(error) from None
        return {
            (p.topic, p.partition): (found[p].offset if found.get(p) else None) for p in wanted
        }

    def offset_syncs(
        self, wanted: Mapping[_Partition, int | None]
    ) -> dict[_Partition, _OffsetSync]:
        """For each source partition, the newest offset sync at or before the given offset.

        None wants the newest sync. The topic is read back from its end, in growing chunks,
        until every partition has one or its beginning is reached.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        topic = _offset_syncs_topic()
        if not wanted or topic not in self.topics():
            return {}
        start, high = self.bounds([(topic, 0)])[(topic, 0)]
        found: dict[_Partition, _OffsetSync] = {}
        chunk = _SYNC_CHUNK
        while high > start and len(found) < len(wanted):
            low = max(start, high - chunk)
            records, _ = self.read({(topic, 0): (low, high)}, limit=high - low)[(topic, 0)]
            for record in reversed(records):
                sync = _decode_offset_sync(record.content[0], record.content[1])
                if sync is None:
                    continue
                key = (sync.topic, sync.partition)
                if key not in wanted or key in found:
                    continue
                at_most = wanted[key]
                if at_most is None or sync.upstream <= at_most:
                    found[key] = sync
            high, chunk = low, chunk * 2
        return found

    def source_offsets(self) -> dict[_Partition, int]:
        """The last source offset MirrorMaker committed per partition (Kafka Connect's record).

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        topic = f"mm2-offsets.{_SOURCE_ALIAS}.internal"
        partitions = self.topics().get(topic, 0)
        bounds = self.bounds([(topic, number) for number in range(partitions)])
        committed: dict[_Partition, int] = {}
        for records, _ in self.read(bounds, limit=sys.maxsize).values():
            for record in records:
                if decoded := _decode_source_offset(record.content[0], record.content[1]):
                    committed[decoded[0]] = decoded[1]
        return committed

    def topics(self) -> dict[str, int]:
        """Every topic, with its number of partitions.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        consumer = self._consumer()
        try:
            names = consumer.topics()
        except (kafka_errors.KafkaError, OSError) as error:
            raise self._unreachable(error) from None
        return {name: len(consumer.partitions_for_topic(name) or ()) for name in names}

    def commit(self, group: str, offsets: Mapping[_Partition, int]) -> None:
        """Commit a group's offsets; the group must have no members.

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or refuses a partition.
        """
        request = {
            TopicPartition(topic, number): OffsetAndMetadata(offset, "", -1)
            for (topic, number), offset in offsets.items()
        }
        try:
            errors = cast(Any, self._admin()).alter_group_offsets(group, request)
        except (kafka_errors.KafkaError, OSError) as error:
            raise self._unreachable(error) from None
        refused = [
            f"{p.topic}[{p.partition}]: {error.__name__}"
            for p, error in errors.items()
            if error is not kafka_errors.NoError
        ]
        if refused:
            raise self._unreachable(kafka_errors.KafkaError(", ".join(refused)))

    def delete_topics(self, names: Collection[str]) -> list[str]:
        """Delete those of these topics that exist; the ones deleted.

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or refuses.
        """
        existing = sorted(set(names) & set(self.topics()))
        if existing:
            try:
                self._admin().delete_topics(existing, timeout_ms=int(self.timeout * 1000))
            except (kafka_errors.KafkaError, OSError) as error:
                raise self._unreachable(error) from None
        return existing


def _record(record: Any) -> _Record:
    """kafka-python's consumer record as a `_Record`."""
    headers = tuple((str(name), value) for name, value in record.headers or ())
    return _Record(record.offset, (record.key, record.value, headers, record.timestamp))


# Migration status ------------------------------------------------------------------------------
#
# `migration-status`, the unit status while migrating and the demo all show a `MigrationReport`.
# `fetch_snapshot` is the thin adapter that queries both clusters; `build_report` is a pure
# function of the fetched `MigrationSnapshot`, so tests and benchmarks can call it alone.


def _hyphenated(name: str) -> str:
    return name.replace("_", "-")


class _ReportPart(BaseModel):
    """A part of the migration report; its JSON keys are hyphenated, like action results."""

    model_config = ConfigDict(frozen=True, alias_generator=_hyphenated, populate_by_name=True)

    def as_json(self) -> dict[str, Any]:
        """The part as JSON-ready data, with hyphenated keys."""
        return self.model_dump(mode="json", by_alias=True)


class _PartitionLag(_ReportPart):
    """One partition of a topic on both clusters."""

    partition: int
    source_start_offset: int
    source_end_offset: int
    target_start_offset: int | None
    target_end_offset: int | None
    lag: int


class _TopicLag(_ReportPart):
    """How far the target is behind the source on one topic.

    `lag` counts, per partition, the records a `read_committed` consumer of the source would
    read that the target does not hold yet: from MirrorMaker's newest offset sync on, the
    records of both partitions are compared by content, so aborted records, transaction
    markers, compacted-away offsets and records copied twice do not count. Where a partition
    has no offset sync yet, or more than `_EXACT_LAG_WINDOW` offsets follow it, its offsets
    are counted instead (end minus start on each cluster): an estimate while copying.
    `source-records` and `target-records` count offsets.
    """

    topic: str
    target_topic: str
    partitions: int
    source_end_offset: int
    target_end_offset: int | None
    source_records: int
    target_records: int
    lag: int


class _GroupTopicLag(_ReportPart):
    """A consumer group's committed offsets on one topic, on both clusters."""

    topic: str
    partitions: int
    source_committed: int
    target_committed: int | None
    missing_partitions: int
    lag: int


class _GroupLag(_ReportPart):
    """A consumer group, and what MirrorMaker's own offsets would make its consumers re-read.

    Per partition, `lag` is the offsets ahead of MirrorMaker's translated offset on the target
    minus those ahead of the group's committed offset on the source. MirrorMaker translates
    conservatively, and keeps older offset syncs only at growing distances, so this can be
    large; `switch-group` and `finish-migration` set exact offsets instead, so it does not
    hold up the cutover. A group with members on the source does: its consumers still read
    the old cluster.
    """

    group: str
    state: str
    members: int
    active: bool
    lag: int
    synced: bool
    topics: list[_GroupTopicLag]


class _TaskStatus(_ReportPart):
    """A connector (`task` None) or a task of MirrorMaker, as Kafka Connect records it."""

    connector: str
    task: int | None
    name: str
    state: str
    error: str | None


class _ConnectorStatus(_ReportPart):
    """A MirrorMaker connector and its tasks."""

    connector: str
    state: str
    error: str | None
    tasks: list[_TaskStatus]


class _UnitStatus(_ReportPart):
    """The MirrorMaker service of one unit, as the unit published it."""

    unit: str
    service: str
    exactly_once: str


class _ClusterProblem(_ReportPart):
    """A cluster that could not be queried: `refused` when it turned the login down."""

    role: str
    message: str
    refused: bool = False


class _GroupOffsets(BaseModel):
    """A consumer group on the source: its state, members and committed offsets."""

    model_config = ConfigDict(frozen=True)

    group: str
    state: str = "unknown"
    members: int = 0
    offsets: _GroupCommits = Field(default_factory=dict)


class _Quiet(BaseModel):
    """How long the source's end offsets were watched, and what was written meanwhile.

    `required` is how long they must stay put for the cutover, `watched` how long they did (or
    the window they were compared over), `writes` the records that arrived per topic.
    """

    model_config = ConfigDict(frozen=True)

    required: float
    watched: float
    writes: dict[str, int] = Field(default_factory=dict)


class _MigrationSnapshot(BaseModel):
    """What the migration status is computed from, as fetched from both clusters and the peers.

    `source_topics` holds the migrated topics only; `target_topics` the copies of those that
    exist, by their target names; `target_groups` the target's commits of the source groups.
    `connectors` is None when it could not be read; `units` is None outside a charm.
    `copy_lags` holds, per source topic and partition, the records counted by content that
    the target lacks (None where they could not be counted). `quiet` is None when the
    source was not watched for writes.
    """

    model_config = ConfigDict(frozen=True)

    source_topics: dict[str, _TopicOffsets] = Field(default_factory=dict)
    target_topics: dict[str, _TopicOffsets] = Field(default_factory=dict)
    source_groups: list[_GroupOffsets] = Field(default_factory=list)
    target_groups: dict[str, _GroupCommits] = Field(default_factory=dict)
    connectors: list[_ConnectorState] | None = None
    units: dict[str, UnitState] | None = None
    problems: list[_ClusterProblem] = Field(default_factory=list)
    missing_rights: list[str] = Field(default_factory=list)
    copy_lags: dict[str, list[int | None]] = Field(default_factory=dict)
    quiet: _Quiet | None = None


class _SourceWrite(_ReportPart):
    """Records written to a source topic while it was watched."""

    topic: str
    records: int


class MigrationReport(_ReportPart):
    """The whole migration status, and whether clients can be switched to the target now."""

    source: str
    lag_threshold: int
    topic: str | None
    sync_group_offsets: bool
    problems: list[_ClusterProblem]
    missing_rights: list[str] = Field(default_factory=list)
    topics: list[_TopicLag]
    partitions: list[_PartitionLag]
    groups: list[_GroupLag]
    connectors: list[_ConnectorStatus] | None
    units: list[_UnitStatus] | None
    quiet_seconds: float = 0
    source_writes: list[_SourceWrite] | None = None
    reasons: list[str]

    @property
    def lag(self) -> int:
        """Records the target still lacks, over every topic."""
        return sum(topic.lag for topic in self.topics)

    @property
    def source_records(self) -> int:
        """Records the source holds, over every migrated topic."""
        return sum(topic.source_records for topic in self.topics)

    @property
    def target_records(self) -> int:
        """Records the target holds, over every migrated topic."""
        return sum(topic.target_records for topic in self.topics)

    @property
    def ready_for_cutover(self) -> bool:
        """Whether clients can switch now: nothing lags, nothing failed, everything runs."""
        return not self.reasons

    def failed(self) -> _TaskStatus | None:
        """The first failed connector or task, if any."""
        for connector in self.connectors or ():
            for task in _with_connector(connector):
                if task.state == "FAILED":
                    return task
        return None

    def results(self, *, table: bool = False) -> dict[str, Any]:
        """The report as `migration-status` action results (see `charmcraft.yaml`)."""
        return _report_results(self, table=table)

    def summary(self) -> tuple[Literal["active", "blocked"], str]:
        """The status to show while migrating: its kind and message."""
        if self.problems:
            return "blocked", self.problems[0].message
        if self.missing_rights:
            return "blocked", self.missing_rights[0]
        if failed := self.failed():
            return "blocked", _clip(f"MirrorMaker {failed.name} failed: {failed.error}")
        if self.ready_for_cutover:
            return "active", f"in sync with {self.source}: ready for cutover"
        message = (
            f"migrating from {self.source}: {_count(len(self.topics), 'topic')}, "
            f"lag {_count(self.lag, 'record')}"
        )
        if self.lag <= self.lag_threshold:
            message += f"; {self.reasons[0]}"
        return "active", _clip(message)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _clip(text: str, limit: int = _STATUS_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_exception(line: str) -> str:
    """`a.b.SomeException: message` as `SomeException: message`."""
    name, colon, message = line.partition(":")
    return name.rsplit(".", 1)[-1] + colon + message


def _trace_summary(trace: str | None) -> str | None:
    """A Java stack trace as one line: the exception and its root cause, without packages."""
    if not trace:
        return None
    lines = [line.strip() for line in trace.strip().splitlines() if line.strip()]
    summary = _short_exception(lines[0])
    causes = [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by:")]
    if causes:
        summary += f"; caused by {_short_exception(causes[-1])}"
    return _clip(summary, _ERROR_CHARS)


def _partition_lags(
    source: _TopicOffsets,
    target: _TopicOffsets | None,
    counted: Sequence[int | None] = (),
) -> list[_PartitionLag]:
    """Per partition: the offsets on both clusters and the records the target lacks.

    `counted` holds the lags counted by content; offsets count the others.
    """
    lags = []
    for partition, (start, end) in enumerate(zip(source.start, source.end, strict=True)):
        present = target is not None and partition < len(target.end)
        copied = target.records(partition) if target is not None and present else 0
        exact = counted[partition] if partition < len(counted) else None
        lags.append(
            _PartitionLag(
                partition=partition,
                source_start_offset=start,
                source_end_offset=end,
                target_start_offset=target.start[partition] if target and present else None,
                target_end_offset=target.end[partition] if target and present else None,
                lag=exact if exact is not None else max(0, source.records(partition) - copied),
            )
        )
    return lags


_Offsets = _TopicOffsets | Sequence[int]
"""A topic's offsets, or only its end offsets (then its partitions are taken to start at 0)."""


def _offsets(offsets: _Offsets | None) -> _TopicOffsets | None:
    if offsets is None or isinstance(offsets, _TopicOffsets):
        return offsets
    return _TopicOffsets(start=(0,) * len(offsets), end=tuple(offsets))


def _topic_lags(
    source: Mapping[str, _Offsets],
    target: Mapping[str, _Offsets],
    config: MigrationConfig,
    counted: Mapping[str, Sequence[int | None]] | None = None,
) -> list[_TopicLag]:
    """Per source topic: its offsets on both clusters and the records the target lacks."""
    lags = []
    for topic, given in sorted(source.items()):
        name = config.target_topic(topic)
        offsets = cast(_TopicOffsets, _offsets(given))
        copied = _offsets(target.get(name))
        lags.append(
            _TopicLag(
                topic=topic,
                target_topic=name,
                partitions=len(offsets.end),
                source_end_offset=sum(offsets.end),
                target_end_offset=sum(copied.end) if copied is not None else None,
                source_records=offsets.total_records,
                target_records=copied.total_records if copied is not None else 0,
                lag=sum(
                    lag.lag
                    for lag in _partition_lags(offsets, copied, (counted or {}).get(topic, ()))
                ),
            )
        )
    return lags


def _group_topic_lag(
    topic: str,
    committed: Mapping[int, int],
    translated: Mapping[int, int],
    source: _TopicOffsets,
    target: _TopicOffsets | None,
) -> _GroupTopicLag:
    lag = missing = 0
    for partition, offset in committed.items():
        if partition >= len(source.end):
            continue
        if partition not in translated:
            missing += 1
        if target is None or partition >= len(target.end):
            continue
        position = translated.get(partition, target.start[partition])
        ahead_on_target = max(0, target.end[partition] - position)
        ahead_on_source = max(0, source.end[partition] - offset)
        lag += max(0, ahead_on_target - ahead_on_source)
    return _GroupTopicLag(
        topic=topic,
        partitions=len(committed),
        source_committed=sum(committed.values()),
        target_committed=sum(translated.values()) if translated else None,
        missing_partitions=missing,
        lag=lag,
    )


def _group_lag(
    group: _GroupOffsets,
    snapshot: _MigrationSnapshot,
    config: MigrationConfig,
    lag_threshold: int,
) -> _GroupLag:
    """A source group's lag on the target, over the migrated topics it committed offsets on."""
    translated = snapshot.target_groups.get(group.group, {})
    topics = []
    for topic, committed in sorted(group.offsets.items()):
        source = snapshot.source_topics.get(topic)
        if source is None:
            continue
        name = config.target_topic(topic)
        target = snapshot.target_topics.get(name)
        topics.append(_group_topic_lag(topic, committed, translated.get(name, {}), source, target))
    lag = sum(topic.lag for topic in topics)
    return _GroupLag(
        group=group.group,
        state=group.state,
        members=group.members,
        active=group.members > 0,
        lag=lag,
        synced=lag <= lag_threshold and not any(topic.missing_partitions for topic in topics),
        topics=topics,
    )


def _connector_statuses(states: Sequence[_ConnectorState]) -> list[_ConnectorStatus]:
    """The connectors with their tasks, in name order."""
    connectors = []
    for connector in sorted({state.connector for state in states}):
        own = [state for state in states if state.connector == connector]
        tasks = sorted((s for s in own if s.task is not None), key=lambda s: s.task or 0)
        level = next((s for s in own if s.task is None), None)
        connectors.append(
            _ConnectorStatus(
                connector=connector,
                state=level.state if level else "UNASSIGNED",
                error=_trace_summary(level.trace) if level else None,
                tasks=[
                    _TaskStatus(
                        connector=connector,
                        task=task.task,
                        name=f"{connector}-{task.task}",
                        state=task.state,
                        error=_trace_summary(task.trace),
                    )
                    for task in tasks
                ],
            )
        )
    return connectors


def _with_connector(connector: _ConnectorStatus) -> list[_TaskStatus]:
    """The connector itself, as a task without number, then its tasks."""
    itself = _TaskStatus(
        connector=connector.connector,
        task=None,
        name=connector.connector,
        state=connector.state,
        error=connector.error,
    )
    return [itself, *connector.tasks]


def _unit_statuses(units: Mapping[str, UnitState]) -> list[_UnitStatus]:
    """The units' published MirrorMaker states, in unit name order."""
    return [
        _UnitStatus(unit=name, service=state.service, exactly_once=state.exactly_once)
        for name, state in sorted(units.items())
    ]


def _capped(reasons: list[str]) -> list[str]:
    if len(reasons) <= _MAX_REASONS:
        return reasons
    return [*reasons[:_MAX_REASONS], f"... and {len(reasons) - _MAX_REASONS} more"]


def _worker_reasons(
    units: Sequence[_UnitStatus] | None, connectors: Sequence[_ConnectorStatus] | None
) -> list[str]:
    reasons = []
    if units is not None and not any(unit.service == "active" for unit in units):
        reasons.append("MirrorMaker runs on no unit")
    for unit in units or ():
        if unit.service != "active":
            reasons.append(f"{unit.unit}: MirrorMaker is {unit.service}")
    if connectors is not None and not connectors:
        reasons.append("MirrorMaker has not started its connectors yet")
    for connector in connectors or ():
        for task in _with_connector(connector):
            if task.state == "FAILED":
                reasons.append(f"{task.name} failed: {task.error}")
            elif task.state != "RUNNING":
                reasons.append(f"{task.name} is {task.state.lower()}")
    return reasons


def _data_reasons(
    topics: Sequence[_TopicLag], groups: Sequence[_GroupLag], lag_threshold: int
) -> list[str]:
    reasons = []
    for topic in topics:
        if topic.target_end_offset is None:
            reasons.append(f"topic {topic.topic} is not on the target yet")
        elif topic.lag > lag_threshold:
            reasons.append(f"topic {topic.topic}: {_count(topic.lag, 'record')} behind")
    for group in groups:
        if group.active:
            reasons.append(
                f"group {group.group}: {_count(group.members, 'consumer')} still read from "
                "the source cluster"
            )
    return reasons


def _source_writes(quiet: _Quiet | None) -> list[_SourceWrite] | None:
    if quiet is None:
        return None
    return [_SourceWrite(topic=t, records=n) for t, n in sorted(quiet.writes.items()) if n]


def _quiet_reasons(quiet: _Quiet | None) -> list[str]:
    """Why the source is not quiet yet: topics still written, or not watched long enough."""
    if quiet is None:
        return []
    writes = _source_writes(quiet) or []
    if writes:
        first, *others = writes
        written = ", ".join(
            [f"{first.records:,} records arrived on {first.topic}"]
            + [f"{w.records:,} on {w.topic}" for w in others[:4]]
        )
        more = f" and {len(others) - 4} more topics" if len(others) > 4 else ""
        return [
            f"the source is still written: {written}{more} in the last {quiet.watched:.0f} s; "
            "stop its producers"
        ]
    if quiet.watched < quiet.required:
        return [
            f"the source has been quiet for {quiet.watched:.0f} s of the "
            f"{quiet.required:.0f} s the cutover waits for"
        ]
    return []


def _build_report(
    snapshot: _MigrationSnapshot,
    config: MigrationConfig,
    *,
    source: str,
    lag_threshold: int = 0,
    topic: str | None = None,
) -> MigrationReport:
    """The migration report of a snapshot; a pure function.

    Args:
        snapshot: what was fetched from both clusters and the peers.
        config: the migration options (replication policy, whether group offsets are synced).
        source: how the report names the source.
        lag_threshold: records a topic or a group may lag and still be ready for cutover.
        topic: the one source topic the snapshot was fetched for, to detail its partitions.
    """
    topics = _topic_lags(
        snapshot.source_topics, snapshot.target_topics, config, snapshot.copy_lags
    )
    groups = [
        _group_lag(group, snapshot, config, lag_threshold)
        for group in sorted(snapshot.source_groups, key=lambda group: group.group)
    ]
    groups = [group for group in groups if group.topics]
    connectors = None if snapshot.connectors is None else _connector_statuses(snapshot.connectors)
    units = None if snapshot.units is None else _unit_statuses(snapshot.units)
    detailed = snapshot.source_topics.get(topic) if topic is not None else None
    partitions = []
    if topic is not None and detailed is not None:
        partitions = _partition_lags(
            detailed,
            snapshot.target_topics.get(config.target_topic(topic)),
            snapshot.copy_lags.get(topic, ()),
        )
    reasons = [problem.message for problem in snapshot.problems]
    reasons += snapshot.missing_rights
    reasons += _worker_reasons(units, connectors)
    if not topics and not any(problem.role == "source" for problem in snapshot.problems):
        reasons.append("no source topic is selected for migration")
    reasons += _data_reasons(topics, groups, lag_threshold)
    if not any(problem.role == "source" for problem in snapshot.problems):
        reasons += _quiet_reasons(snapshot.quiet)
    return MigrationReport(
        source=source,
        lag_threshold=lag_threshold,
        topic=topic,
        sync_group_offsets=config.sync_group_offsets,
        problems=snapshot.problems,
        missing_rights=snapshot.missing_rights,
        topics=topics,
        partitions=partitions,
        groups=groups,
        connectors=connectors,
        units=units,
        quiet_seconds=snapshot.quiet.watched if snapshot.quiet else 0,
        source_writes=_source_writes(snapshot.quiet),
        reasons=_capped(reasons),
    )


class _Selection(NamedTuple):
    """The source topics (with their partition counts) and groups the options migrate."""

    topics: dict[str, int]
    groups: list[str]


def _select_source(
    source: _ClusterClient, config: MigrationConfig, topic: str | None
) -> _Selection:
    """The topics and groups of the source that the options select (and `topic` narrows)."""
    partitions = source.topics()
    selected = _select(
        [name for name in partitions if not _is_internal_topic(name)],
        config.topics,
        config.topics_exclude,
    )
    if topic is not None:
        selected = [name for name in selected if name == topic]
    groups = _select(source.groups(), config.groups, config.groups_exclude)
    return _Selection({name: partitions[name] for name in selected}, groups)


def _fetch_source(
    source: _ClusterClient, selection: _Selection
) -> tuple[dict[str, _TopicOffsets], list[_GroupOffsets]]:
    """The migrated topics' offsets, and the selected groups that committed on them."""
    offsets = source.offsets(selection.topics)
    groups = selection.groups
    committed = {
        group: commits
        for group, commits in source.committed_offsets(groups, offsets.keys()).items()
        if commits
    }
    described = source.describe_groups(list(committed)) if committed else {}
    return offsets, [
        _GroupOffsets(
            group=group,
            state=described.get(group, ("unknown", 0))[0],
            members=described.get(group, ("unknown", 0))[1],
            offsets=commits,
        )
        for group, commits in committed.items()
    ]


def _fetch_target(
    target: _ClusterClient, config: MigrationConfig, selection: _Selection
) -> tuple[dict[str, _TopicOffsets], dict[str, _GroupCommits], list[_ConnectorState]]:
    """On the target: the copies' offsets, the selected groups' commits, the connectors."""
    existing = target.topics() if selection.topics else {}
    names = {config.target_topic(topic) for topic in selection.topics}
    offsets = target.offsets({name: n for name, n in existing.items() if name in names})
    commits = target.committed_offsets(selection.groups, offsets.keys())
    return offsets, commits, target.connector_states(_SOURCE_ALIAS)


def _problem(client: _ClusterClient, error: Exception) -> _ClusterProblem:
    """A failed query as a problem of the report; a raw Kafka error gets the client's wording."""
    if not isinstance(error, ClusterUnreachableError):
        error = client._unreachable(error)
    return _ClusterProblem(role=client.role, message=error.message, refused=error.refused)


def _pause(seconds: float) -> None:
    """Wait while the source is watched for writes (unit tests replace it)."""
    time.sleep(seconds)


def _now() -> float:
    """Seconds since the epoch, for how long the source stayed quiet (unit tests replace it)."""
    return time.time()


def _watch_source(
    source: _ClusterClient, topics: Mapping[str, _TopicOffsets], seconds: float
) -> tuple[dict[str, _TopicOffsets], _Quiet]:
    """The topics' offsets `seconds` later, and what was written to them meanwhile.

    Raises:
        ClusterUnreachableError: if the source does not answer in time.
    """
    _pause(seconds)
    later = source.end_offsets({name: len(offsets.end) for name, offsets in topics.items()})
    writes = {name: sum(later[name]) - sum(offsets.end) for name, offsets in topics.items()}
    offsets = {
        name: _TopicOffsets(start=offsets.start, end=tuple(later[name]))
        for name, offsets in topics.items()
    }
    return offsets, _Quiet(required=seconds, watched=seconds, writes=writes)


def _fetch_copy_lags(
    source: _ClusterClient,
    target: _ClusterClient,
    config: MigrationConfig,
    source_topics: Mapping[str, _TopicOffsets],
    target_topics: Mapping[str, _TopicOffsets],
) -> dict[str, list[int | None]]:
    """Per source topic and partition, the committed records the target lacks, by content.

    From MirrorMaker's newest offset sync of a partition (the copy of a source record), the
    records after it are compared on both clusters. When the sync is the source's last record,
    nothing is read. With more than `_EXACT_LAG_WINDOW` offsets after it, the lag is 0 if no
    committed record follows it on the source, else the offsets after it on the source minus
    those after its copy on the target, at least 1. A partition without a sync, or whose sync
    does not hold, is None: offsets count it. A partition of which the target holds nothing
    lags 0 if the source holds no committed record either (only aborted ones, say), None
    otherwise; nothing is read for a topic not on the target (not ready for cutover either way).

    Raises:
        ClusterUnreachableError: if a cluster does not answer in time.
    """
    lags: dict[str, list[int | None]] = {
        topic: [None] * len(offsets.end) for topic, offsets in source_topics.items()
    }
    held: dict[_Partition, tuple[tuple[int, int], tuple[int, int]]] = {}
    empty: dict[_Partition, tuple[int, int]] = {}
    for topic, offsets in source_topics.items():
        copy = target_topics.get(config.target_topic(topic))
        for number, (start, end) in enumerate(zip(offsets.start, offsets.end, strict=True)):
            if copy is not None and number < len(copy.end) and copy.records(number):
                held[(topic, number)] = ((start, end), (copy.start[number], copy.end[number]))
            elif copy is not None and 0 < end - start <= _EXACT_LAG_WINDOW:
                empty[(topic, number)] = (start, end)
            elif end == start:
                lags[topic][number] = 0
    with (
        _LogClient(source.cluster, "source", source.timeout) as source_logs,
        _LogClient(target.cluster, "target", target.timeout) as target_logs,
    ):
        syncs = target_logs.offset_syncs(dict.fromkeys(held))
        for (topic, number), (records, _) in source_logs.read(empty, limit=1).items():
            lags[topic][number] = None if records else 0
        plan = _LagPlan.of(held, syncs, config)
        for (topic, number), lag in plan.known.items():
            lags[topic][number] = lag
        for (topic, number), (records, _) in source_logs.read(plan.beyond, limit=1).items():
            if not records:
                lags[topic][number] = 0
        source_read = source_logs.read(plan.source, limit=_EXACT_LAG_WINDOW)
        target_read = target_logs.read(plan.target, limit=4 * _EXACT_LAG_WINDOW)
    for (topic, number), (records, _) in source_read.items():
        copied = target_read[(config.target_topic(topic), number)]
        lags[topic][number] = _counted_lag(records, copied, syncs[(topic, number)])
    return lags


@dataclass
class _LagPlan:
    """How each partition with an offset sync gets its lag counted.

    `known`: lags known without reading (0 when the sync is the source's last record; the
    offset estimate beyond `_EXACT_LAG_WINDOW`, 0 if `beyond` finds no record); `source` and
    `target`: the ranges from the sync on to compare by content.
    """

    known: dict[_Partition, int] = field(default_factory=dict)
    beyond: dict[_Partition, tuple[int, int]] = field(default_factory=dict)
    source: dict[_Partition, tuple[int, int]] = field(default_factory=dict)
    target: dict[_Partition, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        held: Mapping[_Partition, tuple[tuple[int, int], tuple[int, int]]],
        syncs: Mapping[_Partition, _OffsetSync],
        config: MigrationConfig,
    ) -> _LagPlan:
        """The plan for partitions with their bounds on both clusters and newest syncs."""
        plan = cls()
        for (topic, number), sync in syncs.items():
            (start, end), (target_start, target_end) = held[(topic, number)]
            if not (start <= sync.upstream < end and target_start <= sync.downstream < target_end):
                continue
            if sync.upstream + 1 == end:
                plan.known[(topic, number)] = 0
            elif end - sync.upstream <= _EXACT_LAG_WINDOW:
                plan.source[(topic, number)] = (sync.upstream, end)
                plan.target[(config.target_topic(topic), number)] = (sync.downstream, target_end)
            else:
                plan.beyond[(topic, number)] = (sync.upstream + 1, end)
                copied = max(0, target_end - sync.downstream - 1)
                plan.known[(topic, number)] = max(1, end - sync.upstream - 1 - copied)
        return plan


def _counted_lag(
    records: Sequence[_Record], copied: tuple[Sequence[_Record], bool], sync: _OffsetSync
) -> int | None:
    """The source records from a sync on that the target's records from it do not copy.

    None when the sync does not hold (its records differ) or the target was not read whole.
    """
    target, complete = copied
    if not (complete and records and target):
        return None
    if (records[0].offset, target[0].offset) != (sync.upstream, sync.downstream):
        return None
    if records[0].content != target[0].content:
        return None
    return _Walk.of(records, target, sync.downstream).lag()


def _fetch_snapshot(
    source: _ClusterClient,
    target: _ClusterClient,
    config: MigrationConfig,
    *,
    topic: str | None = None,
    units: Mapping[str, UnitState] | None = None,
    quiet_seconds: float = 0,
) -> _MigrationSnapshot:
    """Query both clusters for a migration report; a cluster that fails is a problem in it.

    Once the source's topic and group names are known, both clusters are asked at once, on two
    threads. With `quiet_seconds`, the source's end offsets are read again that much later, and
    what arrived meanwhile is reported. Every query is bounded by the clients' timeouts;
    nothing here raises for a cluster.
    """
    problems = []
    source_topics: dict[str, _TopicOffsets] = {}
    source_groups: list[_GroupOffsets] = []
    quiet = None
    target_topics: dict[str, _TopicOffsets] = {}
    target_groups: dict[str, _GroupCommits] = {}
    connectors = None
    try:
        selection = _select_source(source, config, topic)
    except (ClusterUnreachableError, *_QUERY_ERRORS) as error:
        problems.append(_problem(source, error))
        selection = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-k8s-target") as pool:
        target_side = pool.submit(_fetch_target, target, config, selection or _Selection({}, []))
        if selection is not None:
            try:
                source_topics, source_groups = _fetch_source(source, selection)
                if quiet_seconds > 0:
                    source_topics, quiet = _watch_source(source, source_topics, quiet_seconds)
            except (ClusterUnreachableError, *_QUERY_ERRORS) as error:
                problems.append(_problem(source, error))
        try:
            target_topics, target_groups, connectors = target_side.result()
        except (ClusterUnreachableError, *_QUERY_ERRORS) as error:
            problems.append(_problem(target, error))
    missing_rights = []
    if not any(problem.role == "source" for problem in problems):
        try:
            missing_rights = _missing_source_rights(source, config, source_topics, target_topics)
        except ClusterUnreachableError as error:
            problems.append(_problem(source, error))
    copy_lags: dict[str, list[int | None]] = {}
    if not problems:
        try:
            copy_lags = _fetch_copy_lags(source, target, config, source_topics, target_topics)
        except ClusterUnreachableError as error:
            logger.warning("lag counted by offsets: %s", error.message)
    return _MigrationSnapshot(
        source_topics=source_topics,
        target_topics=target_topics,
        source_groups=source_groups,
        target_groups=target_groups,
        connectors=connectors,
        units=None if units is None else dict(units),
        problems=problems,
        missing_rights=missing_rights,
        copy_lags=copy_lags,
        quiet=quiet,
    )


def _missing_source_rights(
    source: _ClusterClient,
    config: MigrationConfig,
    source_topics: Collection[str],
    target_topics: Collection[str],
) -> list[str]:
    """What MirrorMaker cannot do on the source with the options as they are.

    It reads a topic's configs to create its copy, and to copy them (`sync_topic_configs`);
    it describes every group to translate offsets, and ACLs to copy them.

    Raises:
        ClusterUnreachableError: if the source does not answer in time.
    """
    configs = [
        topic
        for topic in source_topics
        if config.sync_topic_configs or config.target_topic(topic) not in target_topics
    ]
    return source.missing_rights(
        configs, groups=config.sync_group_offsets, acls=config.sync_topic_acls
    )


def migration_report(
    source: KafkaCluster,
    target: KafkaCluster,
    config: MigrationConfig | None = None,
    *,
    units: Mapping[str, UnitState] | None = None,
    lag_threshold: int = 0,
    topic: str | None = None,
    timeout: float = _CLIENT_TIMEOUT,
    quiet_seconds: float = 0,
) -> MigrationReport:
    """Query both clusters and report the migration, as `migration-status` does.

    Args:
        source: the cluster migrated from; a `SourceCluster`'s name names it in messages.
        target: the cluster migrated into, with a user that may read MirrorMaker's topics.
        config: the migration options; the defaults when None.
        units: each unit's published MirrorMaker state, when there are units to report.
        lag_threshold: records a topic may lag and still be ready for cutover.
        topic: report only this source topic, with the detail of its partitions.
        timeout: seconds each query may take.
        quiet_seconds: seconds the source's end offsets must stay put for the migration to be
            ready for cutover; the report takes that long. 0 does not watch the source.
    """
    config = config or MigrationConfig()
    name = source.name if isinstance(source, SourceCluster) else source.bootstrap
    with (
        _ClusterClient(source, "source", timeout) as source_client,
        _ClusterClient(target, "target", timeout) as target_client,
    ):
        snapshot = _fetch_snapshot(
            source_client,
            target_client,
            config,
            topic=topic,
            units=units,
            quiet_seconds=quiet_seconds,
        )
    return _build_report(snapshot, config, source=name, lag_threshold=lag_threshold, topic=topic)


# Switching consumer groups -----------------------------------------------------------------------
#
# `switch-group` and `finish-migration` commit, for a group that no consumer uses on either
# cluster, the target offsets matching its source offsets exactly. Per partition, one walk from
# an anchor serves every group: the newest offset sync at or before the smallest committed
# offset, or, when there is none, the copy of a source record found by content from its
# timestamp on (`offsets_for_times`). Both partitions are read from the anchor to their ends:
# a re-send can put copies of records before a group's offset after the first copies of those
# at it. A partition that cannot be matched keeps MirrorMaker's offset; no offset is guessed.

_SwitchResult = Literal["exact", "re-reads", "kept", "not copied"]


class _SwitchRefusedError(MigrationError):
    """A group cannot be switched now; the message says why. Nothing was changed."""


class _PartitionSwitch(_ReportPart):
    """One partition of a switched group.

    `result`: `exact` (nothing re-read, nothing skipped), `re-reads` (the target offset skips
    nothing but some records before it come again later, where MirrorMaker sent them twice),
    `kept` (no match: MirrorMaker's offset, if any, stays) or `not copied` (MirrorMaker has not
    copied the partition up to the group's offset yet).
    """

    topic: str
    partition: int
    source_committed: int
    target_offset: int | None
    re_read: int | None
    skip: int | None
    result: _SwitchResult
    matched_by: str | None = None
    mirrormaker_offset: int | None = None
    mirrormaker_re_read: int | None = None
    mirrormaker_skip: int | None = None
    note: str | None = None


class _GroupSwitch(_ReportPart):
    """A consumer group and where its consumers resume on the target.

    `switched` is whether offsets were committed on the target; `note` says why a group was
    left as it was.
    """

    group: str
    switched: bool
    note: str | None = None
    partitions: list[_PartitionSwitch] = Field(default_factory=list)

    @property
    def re_read(self) -> int:
        """Records the group's consumers will read again on the target."""
        return sum(p.re_read or 0 for p in self.partitions)

    @property
    def skip(self) -> int:
        """Records the group's consumers will not read on the target."""
        return sum(p.skip or 0 for p in self.partitions)

    @property
    def exact(self) -> bool:
        """Whether every partition was matched exactly."""
        return bool(self.partitions) and all(p.result == "exact" for p in self.partitions)

    @property
    def mirrormaker_re_read(self) -> int | None:
        """What MirrorMaker's offsets would make the consumers read again, where it set them."""
        known = [
            p.mirrormaker_re_read for p in self.partitions if p.mirrormaker_re_read is not None
        ]
        return sum(known) if known else None

    def totals(self) -> dict[str, Any]:
        """The group's sums, as action results."""
        mirrormaker = self.mirrormaker_re_read
        return {
            "group": self.group,
            "switched": self.switched,
            "exact": self.exact,
            "re-read": self.re_read,
            "skip": self.skip,
            "mirrormaker-re-read": mirrormaker,
            "note": self.note,
        }


@dataclass
class _Clients:
    """The four clients a switch needs: admin queries and record reads on both clusters."""

    source: _ClusterClient
    target: _ClusterClient
    source_logs: _LogClient
    target_logs: _LogClient

    @classmethod
    def of(cls, source: KafkaCluster, target: KafkaCluster, timeout: float) -> _Clients:
        """New clients of both clusters."""
        return cls(
            _ClusterClient(source, "source", timeout),
            _ClusterClient(target, "target", timeout),
            _LogClient(source, "source", timeout),
            _LogClient(target, "target", timeout),
        )

    def close(self) -> None:
        """Close every client's connections."""
        for client in (self.source, self.target, self.source_logs, self.target_logs):
            client.close()


def _anchor_by_time(
    clients: _Clients,
    partition: _Partition,
    target_partition: _Partition,
    committed: int,
    source: tuple[int, int],
    target: tuple[int, int],
) -> tuple[int, int] | str:
    """A source record next to `committed` and its first copy, searched from its timestamp.

    The record is the last committed one before `committed`, or, if there is none, the first at
    or after it. The target's first offset at the record's timestamp comes before every copy of
    it (they all carry that timestamp), so the first record from there with the same content
    is its first copy.

    Returns:
        The pair of offsets, or why none was found.
    """
    start, end = source
    found: _Record | None = None
    width = 64
    while found is None and start < min(committed, end):
        low = max(start, committed - width)
        before, _ = clients.source_logs.read({partition: (low, min(committed, end))})[partition]
        found = before[-1] if before else None
        if low == start:
            break
        width *= 8
    if found is None:
        after, _ = clients.source_logs.read({partition: (max(start, committed), end)}, limit=1)[
            partition
        ]
        if not after:
            return "the source partition holds no record to match"
        found = after[0]
    at = clients.target_logs.first_offsets_at({target_partition: found.content[3]})
    first = at[target_partition]
    if first is None:
        return f"no target record is as recent as source offset {found.offset:,}"
    candidates, _ = clients.target_logs.read(
        {target_partition: (max(first, target[0]), target[1])}, limit=_SEARCH_LIMIT
    )[target_partition]
    for candidate in candidates:
        if candidate.content == found.content:
            return found.offset, candidate.offset
    return (
        f"no copy of source offset {found.offset:,} in {len(candidates):,} target records "
        "from its timestamp on"
    )


def _walk_from(
    clients: _Clients,
    partition: _Partition,
    target_partition: _Partition,
    anchor: tuple[int, int],
    bounds: tuple[tuple[int, int], tuple[int, int]],
    *,
    also_from: int | None,
    how: str,
) -> _Walk | None:
    """Both partitions read from an anchor to their ends; None if the anchor does not hold."""
    (_, source_end), (target_start, target_end) = bounds
    upstream, downstream = anchor
    if upstream >= source_end or not target_start <= downstream < target_end:
        return None
    begin = downstream if also_from is None else max(target_start, min(downstream, also_from))
    source, source_complete = clients.source_logs.read({partition: (upstream, source_end)})[
        partition
    ]
    target, target_complete = clients.target_logs.read({target_partition: (begin, target_end)})[
        target_partition
    ]
    at = {record.offset: record for record in target}
    if not source or source[0].offset != upstream or downstream not in at:
        return None
    if at[downstream].content != source[0].content:
        return None
    return _Walk.of(
        source, target, target_end, complete=source_complete and target_complete, how=how
    )


def _walk(
    clients: _Clients,
    partition: _Partition,
    target_partition: _Partition,
    committed: int,
    sync: _OffsetSync | None,
    bounds: tuple[tuple[int, int], tuple[int, int]],
    also_from: int | None,
) -> _Walk | str:
    """The walk of one partition for offsets from `committed` on; or why there is none."""
    (source_start, source_end), (_, target_end) = bounds
    if source_start >= source_end:
        return _Walk.of([], [], target_end, how="empty source partition")
    if sync is not None:
        anchor = (sync.upstream, sync.downstream)
        walk = _walk_from(
            clients,
            partition,
            target_partition,
            anchor,
            bounds,
            also_from=also_from,
            how="offset sync",
        )
        if walk is not None:
            return walk
    found = _anchor_by_time(clients, partition, target_partition, committed, bounds[0], bounds[1])
    if isinstance(found, str):
        return found
    walk = _walk_from(
        clients, partition, target_partition, found, bounds, also_from=also_from, how="timestamp"
    )
    return walk if walk is not None else "the record found by its timestamp did not match"


def _partition_switch(
    partition: _Partition, committed: int, walk: _Walk | str, mirrormaker: int | None
) -> _PartitionSwitch:
    """Where one partition of a group resumes, and what MirrorMaker's offset would do."""
    topic, number = partition
    common: dict[str, Any] = {
        "topic": topic,
        "partition": number,
        "source_committed": committed,
        "mirrormaker_offset": mirrormaker,
    }
    if isinstance(walk, str):
        note = f"not matched: {walk}; " + (
            f"MirrorMaker's offset {mirrormaker:,} stays"
            if mirrormaker is not None
            else "it has no offset on the target"
        )
        return _PartitionSwitch(
            **common, target_offset=mirrormaker, re_read=None, skip=None, result="kept", note=note
        )
    if not walk.copied_before(committed):
        copied = walk.copied_up_to()
        note = f"MirrorMaker has not copied it up to offset {committed:,} yet" + (
            f" (up to {copied:,})" if copied is not None else ""
        )
        return _PartitionSwitch(
            **common,
            target_offset=mirrormaker,
            re_read=None,
            skip=None,
            result="not copied",
            matched_by=walk.how,
            note=note,
        )
    position = walk.position(committed)
    judged = walk.judge(committed, mirrormaker) if mirrormaker is not None else None
    exact = walk.complete and position.re_read == 0 and position.skip == 0
    note = None
    if not walk.complete:
        note = f"compared {len(walk.target):,} target records; later ones were not read"
    elif position.re_read:
        note = "records before it come again later: MirrorMaker sent them twice"
    return _PartitionSwitch(
        **common,
        target_offset=position.offset,
        re_read=position.re_read,
        skip=position.skip,
        result="exact" if exact else "re-reads",
        matched_by=walk.how,
        mirrormaker_re_read=judged.re_read if judged else None,
        mirrormaker_skip=judged.skip if judged else None,
        note=note,
    )


def _groups_to_switch(
    clients: _Clients, config: MigrationConfig, groups: Sequence[str] | None
) -> tuple[dict[str, int], dict[str, _GroupCommits], list[_GroupSwitch]]:
    """The migrated topics, the commits of the groups that can be switched, and those left.

    Named groups that cannot be switched refuse; with `groups` None every selected group with
    commits on the migrated topics is taken, and those in use on either cluster are left.

    Raises:
        _SwitchRefusedError: naming the group and why.
    """
    partitions = clients.source.topics()
    topics = {
        name: partitions[name]
        for name in _select(
            [t for t in partitions if not _is_internal_topic(t)],
            config.topics,
            config.topics_exclude,
        )
    }
    known = clients.source.groups()
    selected = _select(known, config.groups, config.groups_exclude)
    for name in groups or ():
        if name not in known:
            raise _SwitchRefusedError(f"group {name} does not exist on the source cluster")
        if name not in selected:
            raise _SwitchRefusedError(
                f"group {name} is not migrated: mirrormaker-groups and "
                "mirrormaker-groups-exclude do not select it"
            )
    names = list(groups) if groups is not None else selected
    commits = {g: c for g, c in clients.source.committed_offsets(names, topics).items() if c}
    for name in groups or ():
        if name not in commits:
            raise _SwitchRefusedError(
                f"group {name} has no committed offsets on the migrated topics"
            )
    on_source = clients.source.describe_groups(list(commits)) if commits else {}
    on_target = clients.target.describe_groups(list(commits)) if commits else {}
    left = []
    for name in list(commits):
        members = on_source.get(name, ("", 0))[1]
        moved = on_target.get(name, ("", 0))[1]
        if members:
            why = (
                f"group {name} has {_count(members, 'member')} on the source cluster: stop its "
                "consumers there first"
            )
        elif moved:
            why = (
                f"group {name} has {_count(moved, 'member')} on the target cluster: its "
                "consumers have moved already"
            )
        else:
            continue
        if groups is not None:
            raise _SwitchRefusedError(why)
        del commits[name]
        left.append(_GroupSwitch(group=name, switched=False, note=why))
    return topics, commits, left


def _lowest(
    commits: Mapping[str, _GroupCommits], keep: Callable[[str, int], bool] = lambda *_: True
) -> dict[_Partition, int]:
    """The lowest offset any of the groups committed on each partition."""
    lowest: dict[_Partition, int] = {}
    for offsets in commits.values():
        for topic, committed in offsets.items():
            for number, offset in committed.items():
                if keep(topic, number):
                    lowest[(topic, number)] = min(lowest.get((topic, number), offset), offset)
    return lowest


def _switch_groups(
    clients: _Clients,
    config: MigrationConfig,
    groups: Sequence[str] | None = None,
    *,
    dry_run: bool = False,
    use_syncs: bool = True,
) -> list[_GroupSwitch]:
    """Commit, on the target, the offsets matching each group's source offsets exactly.

    Args:
        clients: the clients of both clusters.
        config: the migration options (selected topics and groups, replication policy).
        groups: the groups to switch; every selected group when None (`finish-migration`).
        dry_run: compute and report, commit nothing.
        use_syncs: anchor on MirrorMaker's offset syncs; without them every partition is
            anchored by a content search from a timestamp.

    Raises:
        _SwitchRefusedError: when a named group cannot be switched: nothing was committed.
        ClusterUnreachableError: when a cluster does not answer.
    """
    topics, commits, switches = _groups_to_switch(clients, config, groups)
    used = sorted({topic for offsets in commits.values() for topic in offsets})
    source_offsets = clients.source.offsets({topic: topics[topic] for topic in used})
    existing = clients.target.topics()
    names = {config.target_topic(topic): topic for topic in used}
    target_offsets = clients.target.offsets({n: existing[n] for n in names if n in existing})
    mirrormaker = clients.target.committed_offsets(list(commits), list(target_offsets))
    lowest = _lowest(
        commits,
        lambda topic, number: number < len(source_offsets[topic].end),
    )
    earliest = _lowest(
        {
            group: {names[name]: committed for name, committed in offsets.items()}
            for group, offsets in mirrormaker.items()
        }
    )
    syncs = clients.target_logs.offset_syncs(dict(lowest)) if use_syncs else {}
    walks: dict[_Partition, _Walk | str] = {}
    for (topic, number), offset in lowest.items():
        name = config.target_topic(topic)
        if name not in target_offsets or number >= len(target_offsets[name].end):
            walks[(topic, number)] = f"{name}[{number}] is not on the target"
            continue
        source, target = source_offsets[topic], target_offsets[name]
        bounds = (
            (source.start[number], source.end[number]),
            (target.start[number], target.end[number]),
        )
        walks[(topic, number)] = _walk(
            clients,
            (topic, number),
            (name, number),
            offset,
            syncs.get((topic, number)),
            bounds,
            earliest.get((topic, number)),
        )
    for group, offsets in sorted(commits.items()):
        parts = [
            _partition_switch(
                (topic, number),
                offset,
                walks.get((topic, number), "the source partition is gone"),
                mirrormaker.get(group, {}).get(config.target_topic(topic), {}).get(number),
            )
            for topic, committed in sorted(offsets.items())
            for number, offset in sorted(committed.items())
        ]
        behind = [p for p in parts if p.result == "not copied"]
        if groups is not None and behind:
            raise _SwitchRefusedError(
                f"group {group}: {behind[0].topic}[{behind[0].partition}]: {behind[0].note}; "
                "wait until migration-status shows no lag"
            )
        matched = {
            (config.target_topic(p.topic), p.partition): p.target_offset
            for p in parts
            if p.result in ("exact", "re-reads") and p.target_offset is not None
        }
        if matched and not dry_run:
            clients.target_logs.commit(group, matched)
        switches.append(
            _GroupSwitch(group=group, switched=bool(matched) and not dry_run, partitions=parts)
        )
    return sorted(switches, key=lambda switch: switch.group)


def _unsettled(clients: _Clients, topics: Mapping[str, int]) -> list[str]:
    """Source partitions with records after the last offset MirrorMaker committed as copied.

    Stopping a MirrorMaker node moves its tasks to the others, which start again from those
    offsets: records after them would be copied again, after the offsets a switch sets.
    """
    if not topics:
        return []
    ends = clients.source.offsets(dict(topics))
    committed = clients.target_logs.source_offsets()
    ranges = {}
    for topic, offsets in ends.items():
        for number, (start, end) in enumerate(zip(offsets.start, offsets.end, strict=True)):
            done = committed.get((topic, number), start - 1) + 1
            if max(start, done) < end:
                ranges[(topic, number)] = (max(start, done), end)
    after = clients.source_logs.read(ranges, limit=1)
    return sorted(f"{topic}[{number}]" for (topic, number), (found, _) in after.items() if found)


_SWITCH_HEADERS = (
    "TOPIC|PARTITION|SOURCE COMMITTED|TARGET OFFSET|RE-READ|SKIP|RESULT|MIRRORMAKER OFFSET|"
    "MIRRORMAKER RE-READ"
)
_GROUPS_HEADERS = "GROUP|SWITCHED|RE-READ|SKIP|EXACT|MIRRORMAKER RE-READ|NOTE"


def _switch_table(switch: _GroupSwitch) -> str:
    """A group's partitions as a table, with notes below."""
    rows = [
        (
            p.topic,
            p.partition,
            p.source_committed,
            _or_dash(p.target_offset),
            _or_dash(p.re_read),
            _or_dash(p.skip),
            p.result,
            _or_dash(p.mirrormaker_offset),
            _or_dash(p.mirrormaker_re_read),
        )
        for p in switch.partitions
    ]
    lines = _table(_SWITCH_HEADERS.split("|"), rows)
    lines += [f"{p.topic}[{p.partition}]: {p.note}" for p in switch.partitions if p.note]
    return "\n".join(lines)


def _groups_table(switches: Sequence[_GroupSwitch]) -> str:
    """One row per group: whether it was switched, what its consumers re-read and skip."""
    rows = [
        (
            s.group,
            _yes(s.switched),
            s.re_read,
            s.skip,
            _yes(s.exact),
            _or_dash(s.mirrormaker_re_read),
            s.note or "",
        )
        for s in switches
    ]
    return "\n".join(_table(_GROUPS_HEADERS.split("|"), rows))


# Showing the report ------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Rows under headers, in left-aligned columns two spaces apart; numbers with commas."""
    cells = [list(headers)] + [
        [
            f"{cell:,}" if isinstance(cell, int) and not isinstance(cell, bool) else str(cell)
            for cell in row
        ]
        for row in rows
    ]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _or_dash(value: object) -> object:
    return "-" if value is None else value


_Row = tuple[object, ...]


def _topic_rows(report: MigrationReport) -> list[_Row]:
    return [
        (
            t.topic,
            t.partitions,
            t.source_end_offset,
            _or_dash(t.target_end_offset),
            t.source_records,
            t.target_records,
            t.lag,
        )
        for t in report.topics
    ]


def _partition_rows(report: MigrationReport) -> list[_Row]:
    return [
        (
            p.partition,
            p.source_start_offset,
            p.source_end_offset,
            _or_dash(p.target_start_offset),
            _or_dash(p.target_end_offset),
            p.lag,
        )
        for p in report.partitions
    ]


def _group_rows(report: MigrationReport) -> list[_Row]:
    return [
        (
            g.group,
            _yes(g.active),
            g.members,
            t.topic,
            t.source_committed,
            _or_dash(t.target_committed),
            t.lag,
            _yes(g.synced and not t.missing_partitions),
        )
        for g in report.groups
        for t in g.topics
    ]


def _unit_rows(report: MigrationReport) -> list[_Row]:
    return [(u.unit, u.service, u.exactly_once) for u in report.units or ()]


def _task_rows(report: MigrationReport) -> list[_Row]:
    return [
        (t.name, t.state, t.error or "")
        for c in report.connectors or ()
        for t in _with_connector(c)
    ]


_SECTIONS: tuple[tuple[str, Callable[[MigrationReport], list[_Row]]], ...] = (
    ("TOPIC|PARTITIONS|SOURCE END|TARGET END|SOURCE RECORDS|TARGET RECORDS|LAG", _topic_rows),
    ("PARTITION|SOURCE START|SOURCE END|TARGET START|TARGET END|LAG", _partition_rows),
    ("GROUP|ACTIVE|MEMBERS|TOPIC|SOURCE COMMITTED|TARGET COMMITTED|LAG|SYNCED", _group_rows),
    ("UNIT|SERVICE|EXACTLY-ONCE", _unit_rows),
    ("CONNECTOR/TASK|STATE|ERROR", _task_rows),
)


def format_table(report: MigrationReport) -> str:
    """The report as plain text: the verdict and its reasons, then one table per section."""
    lines = [report.summary()[1], f"ready for cutover: {_yes(report.ready_for_cutover)}"]
    lines += [f"  - {reason}" for reason in report.reasons]
    for headers, rows in _SECTIONS:
        if found := rows(report):
            lines += ["", *_table(headers.split("|"), found)]
    return "\n".join(lines)


def _json(items: Iterable[_ReportPart] | None) -> str:
    return json.dumps(None if items is None else [item.as_json() for item in items])


def _unit_results(units: Iterable[_UnitStatus]) -> dict[str, dict[str, str]]:
    """Each unit's MirrorMaker state, keyed by the unit's name with `/` as `-`."""
    return {
        unit.unit.replace("/", "-"): {"service": unit.service, "exactly-once": unit.exactly_once}
        for unit in units
    }


def _unknown_results(message: str, units: Mapping[str, UnitState]) -> dict[str, Any]:
    """`migration-status` results when the migration is not configured well enough to query."""
    return {
        "summary": message,
        "ready-for-cutover": "false",
        "reasons": json.dumps([message]),
        "units": _unit_results(_unit_statuses(units)),
    }


def _report_results(report: MigrationReport, *, table: bool = False) -> dict[str, Any]:
    """The report as `migration-status` action results.

    Keys are hyphenated; lists of things named by topics, groups or connectors (names that are
    not valid result keys) are JSON strings. `charmcraft.yaml` describes the shape.
    """
    results: dict[str, Any] = {
        "summary": report.summary()[1],
        "ready-for-cutover": "true" if report.ready_for_cutover else "false",
        "reasons": json.dumps(report.reasons),
        "source": report.source,
    }
    if report.units is not None:
        results["units"] = _unit_results(report.units)
    if table:
        results["table"] = format_table(report)
        return results
    problems = {problem.role: problem.message for problem in report.problems}
    results |= {
        "clusters": {role: problems.get(role, "reachable") for role in ("source", "target")},
        "lag": str(report.lag),
        "lag-threshold": str(report.lag_threshold),
        "source-records": str(report.source_records),
        "target-records": str(report.target_records),
        "quiet-seconds": f"{report.quiet_seconds:g}",
        "source-writes": _json(report.source_writes),
        "topics": _json(report.topics),
        "groups": _json(report.groups),
        "connectors": _json(report.connectors),
    }
    if report.topic is not None:
        results["partitions"] = _json(report.partitions)
    return results


# The charm-facing object ------------------------------------------------------------------------


class _TolerantRequirer(ResourceRequirerEventHandler):
    """The `kafka_client` requirer handler, logging what it cannot read instead of raising.

    The remote application writes what this handler parses; data-platform-helpers raises on
    data that is not JSON, of an unknown version, or answering a request never made. That
    would put the unit in error: the migration's status names the relation and the problem
    instead (`Migration._related_source`).
    """

    @property
    def requests_made(self) -> list[KafkaRequestModel]:
        """The requests this side sends."""
        return list(self._requests)  # pyright: ignore[reportReturnType]

    def _on_relation_changed_event(self, event: ops.RelationChangedEvent) -> None:
        try:
            super()._on_relation_changed_event(event)
        except (ValueError, TypeError, KeyError) as error:
            logger.warning(
                "%s relation %s: data not read (%s); see the unit status",
                event.relation.name,
                event.relation.id,
                type(error).__name__,
            )


class _FenceChangedEvent(ops.EventBase):
    """The target topics fenced from client writers may have changed: grant the clients again."""


class _MigrationEvents(ops.ObjectEvents):
    """What the migration tells its host."""

    fence_changed = ops.EventSource(_FenceChangedEvent)


class Migration(ops.Object):
    """The migration of a source cluster into the host charm's cluster.

    It handles `start-migration`, `stop-migration`, `migration-status`, `switch-group` and
    `finish-migration` itself, and requests credentials on the source relation. The host calls
    `reconcile()` from its reconcile and shows `status()` in collect-status. While MirrorMaker
    runs, `reconcile()` also queries both clusters (bounded by `STATUS_TIMEOUT` per query) and
    keeps the summary in a stored state, so `status()` never queries a cluster.

    While a migration is requested and not finished, `fenced_topics()` names the target topics
    no client of the host may write: the host withholds their WRITE from its client users, and
    grants them again on `on.fence_changed`.
    """

    on = _MigrationEvents()  # pyright: ignore[reportAssignmentType]
    _stored = ops.StoredState()

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
        self._stored.set_default(summary="", source_ends="", quiet_since=0.0)
        # The status queries run once per hook, however often the host reconciles in it.
        self._refreshed = False
        self.charm = charm
        self._target = target
        self._unit_host = unit_host
        self.peer_relation = peer_relation
        self.source_relation = source_relation
        self.service = MirrorMakerService(charm.unit.get_container(container), workload)
        # The least the kafka_client interface offers that MirrorMaker needs: `consumer` on
        # every topic (read and describe them). Canonical's Kafka grants no right to describe
        # topic configs, other groups or ACLs with it; `admin` would (as a super user, with a
        # rolling restart of the source). `mirrormaker-source-role` chooses; the README says
        # what each migrates, and the status names a right MirrorMaker lacks.
        role = (
            "admin" if charm.model.config.get("mirrormaker-source-role") == "admin" else "consumer"
        )
        self.requirer = _TolerantRequirer(
            charm,
            source_relation,
            [KafkaRequestModel(resource="*", extra_user_roles=role)],
            KafkaResponseModel,
        )
        framework = charm.framework
        framework.observe(charm.on["start-migration"].action, self._on_start_migration)
        framework.observe(charm.on["stop-migration"].action, self._on_stop_migration)
        framework.observe(charm.on["migration-status"].action, self._on_migration_status)
        framework.observe(charm.on["switch-group"].action, self._on_switch_group)
        framework.observe(charm.on["finish-migration"].action, self._on_finish_migration)

    # Reading the model -------------------------------------------------------------------------

    def _target_cluster(self) -> TargetCluster | None:
        """The host's `target`, or None while it cannot describe the cluster yet.

        A host whose `target` builds a `TargetCluster` before it has every value (an empty
        password, say) is waiting, not broken: the validation error is logged, not raised.
        """
        try:
            return self._target()
        except ValidationError as error:
            logger.info("this cluster is not described yet: %s", error.error_count())
            return None

    @property
    def _peers(self) -> ops.Relation | None:
        return self.model.get_relation(self.peer_relation)

    def _unit_data(self, key: str) -> dict[ops.Unit, str]:
        relation = self._peers
        if relation is None:
            return {}
        units = [self.model.unit, *relation.units]
        return {unit: value for unit in units if (value := relation.data[unit].get(key))}

    def _requests(self) -> list[_MigrationRequest]:
        requests = []
        for raw in self._unit_data(_REQUEST_KEY).values():
            try:
                requests.append(_MigrationRequest.model_validate_json(raw))
            except ValidationError:
                continue
        return requests

    def _unit_states(self) -> dict[ops.Unit, UnitState]:
        states = {}
        for unit, raw in self._unit_data(_STATE_KEY).items():
            try:
                states[unit] = UnitState.model_validate_json(raw)
            except ValidationError:
                continue
        return states

    @property
    def requested_state(self) -> _RequestedState:
        """Whether the operator last asked for the migration to run, to stop, or finished it."""
        return _newest_request(self._requests()).state

    def _fence_on(self) -> bool:
        """Whether `mirrormaker-fence-target` fences; an invalid config fences too."""
        try:
            return MigrationConfig.from_options(self.model.config).fence_target
        except InvalidOptionError:
            return True

    def _migrated_topics(self) -> list[str]:
        """The target topics any unit last saw the migration select."""
        names: set[str] = set()
        for raw in self._unit_data(_TOPICS_KEY).values():
            try:
                listed = json.loads(raw)
            except ValueError:
                continue
            if isinstance(listed, list):
                names.update(name for name in listed if isinstance(name, str))
        return sorted(names)

    def fenced_topics(self) -> frozenset[str]:
        """The target topics no client of the host may write now.

        They are the topics the migration copies into, while it is requested (running or
        stopped) and not finished, unless `mirrormaker-fence-target` is false. Reading them
        stays allowed. Computed from peer data: it queries no cluster.
        """
        if not _newest_request(self._requests()).fences or not self._fence_on():
            return frozenset()
        return frozenset(self._migrated_topics())

    def _publish_topics(self, names: Iterable[str]) -> None:
        """Publish the target topics this unit saw the migration select (the fence's list)."""
        relation = self._peers
        if relation is None:
            return
        raw = json.dumps(sorted(set(names)))
        if relation.data[self.model.unit].get(_TOPICS_KEY) != raw:
            relation.data[self.model.unit][_TOPICS_KEY] = raw

    def _external_source(self, config: MigrationConfig) -> SourceCluster:
        option = "mirrormaker-source-credentials"
        if config.source_credentials is None:
            raise SourceGoneError(
                "mirrormaker-source-bootstrap-servers is set but mirrormaker-source-credentials"
                " is not: put username and password in a Juju secret, grant it to "
                f"{self.model.app.name} and set its ID in {option}"
            )
        secret_id = config.source_credentials
        try:
            content = self.model.get_secret(id=secret_id).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            raise SourceGoneError(
                f"{option}: secret {secret_id} not found or not granted: run "
                f"`juju grant-secret {secret_id} {self.model.app.name}`"
            ) from None
        return _source_from_secret(
            content, config.source_bootstrap_servers, secret_id=secret_id, option=option
        )

    def _related_source(self, relation: ops.Relation) -> SourceCluster:
        name = relation.app.name if relation.app else self.source_relation
        version = relation.data[relation.app].get("version") if relation.app else None
        if version not in (None, "v0", "v1"):
            raise SourceError(
                f"{self.source_relation}: {name} sent kafka_client version {version[:20]!r}, "
                "not v0 or v1"
            )
        try:
            contract = self.requirer.interface.build_model(relation.id, component=relation.app)
            answers = list(contract.requests)
        except ops.SecretNotFoundError:
            # The secret the response names cannot be read: it was revoked or removed.
            answers = []
        except (ValidationError, ValueError, ops.ModelError):
            raise SourceError(
                f"{self.source_relation}: {name} sent data that is not a kafka_client response"
            ) from None
        asked = {request.resource for request in self.requirer.requests_made}
        for answer in answers:
            if answer.resource and answer.resource not in asked:
                raise SourceError(
                    f"{self.source_relation}: {name} answered for topic {answer.resource[:60]!r}"
                    f", not the {', '.join(sorted(asked))!r} asked for"
                )
        responses = [answer for answer in answers if answer.username and answer.password]
        response = responses[0] if responses else None
        if response is None or not response.endpoints:
            if self.requested_state == "running":
                # It sent them before the migration could start: they were revoked since.
                raise SourceGoneError(
                    f"{self.source_relation}: {name} no longer sends credentials"
                )
            raise NotReadyError(f"waiting for {name} to send credentials on {relation.name}")
        return _source_from_relation(
            name,
            endpoints=response.endpoints,
            username=response.username or "",
            password=response.password or "",
            tls=bool(response.tls),
            tls_ca=response.tls_ca,
            relation_name=self.source_relation,
        )

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
            raise SourceGoneError(
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
        if source is None and self.requested_state == "running":
            raise SourceGoneError(
                f"the source is gone: the {self.source_relation} relation was removed or the "
                "mirrormaker-source-* options unset"
            )
        if source is None:
            raise self._no_source()
        target = self._target_cluster()
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
            exactly_once_mode=_exactly_once_mode(config.exactly_once, states.values()),
            workload=self.service.workload,
        )

    # Reconcile and status ----------------------------------------------------------------------

    def reconcile(self) -> None:
        """Bring this unit's MirrorMaker to the newest request, and publish its state.

        A running migration whose options turn invalid keeps running as it was; `status()` says
        what to fix. A source that is gone (no source, credentials revoked or removed) stops it:
        this unit records a stop that every unit follows, with the reason `status()` shows.
        The copied data and MirrorMaker's offsets stay; `start-migration` resumes.
        """
        if not self.service.container.can_connect():
            return
        request = self._follow_newest_request()
        settings = None
        if request.state != "running":
            self.service.stop()
        else:
            try:
                settings = self.settings()
            except SourceGoneError as error:
                logger.warning("stopping the migration: %s", error.message)
                self.service.stop()
                if self._peers is not None:
                    self._request("stopped", reason=error.message)
            except MigrationError as error:
                logger.info("migration not applied: %s", error.message)
            else:
                try:
                    self.service.run(settings)
                except ops.pebble.ChangeError:
                    logger.warning("MirrorMaker did not start; Pebble retries it")
                self._copy_topic_acls(settings)
        self._publish_state(settings.exactly_once_support if settings else None)
        self._refresh_summary(settings)

    def _copy_topic_acls(self, settings: MirrorMakerSettings) -> None:
        """On the leader, with `mirrormaker-sync-topic-acls`: copy the source's topic ACLs."""
        if not settings.config.sync_topic_acls or not self.model.unit.is_leader():
            return
        try:
            copied = _copy_topic_acls(
                settings.source, settings.target, settings.config, _STATUS_TIMEOUT
            )
        except ClusterUnreachableError as error:
            logger.warning("topic ACLs not copied: %s", error.message)
            return
        logger.info("copied %d topic ACLs from %s", len(copied), settings.source.name)

    def _refresh_summary(self, settings: MirrorMakerSettings | None) -> None:
        """Query both clusters for the status summary while this unit runs MirrorMaker.

        The source counts as quiet for as long as its end offsets have not moved between
        refreshes; the selected topics are published for the fence.
        """
        if settings is None or self.service.state() != "active":
            self._stored.summary = ""
            return
        if self._refreshed:
            return
        self._refreshed = True
        with (
            _ClusterClient(settings.source, "source", _STATUS_TIMEOUT) as source,
            _ClusterClient(settings.target, "target", _STATUS_TIMEOUT) as target,
        ):
            snapshot = _fetch_snapshot(
                source, target, settings.config, units=self._live_unit_states()
            )
        if not any(problem.role == "source" for problem in snapshot.problems):
            snapshot = snapshot.model_copy(update={"quiet": self._quiet(snapshot)})
            self._publish_topics(settings.config.target_topic(t) for t in snapshot.source_topics)
        report = _build_report(snapshot, settings.config, source=settings.source.name)
        self._stored.summary = json.dumps(report.summary())

    def _quiet(self, snapshot: _MigrationSnapshot) -> _Quiet:
        """How long the source's end offsets have stayed as they are now, across refreshes."""
        ends = {topic: sum(offsets.end) for topic, offsets in snapshot.source_topics.items()}
        now = _now()
        try:
            before = json.loads(self._stored.source_ends) if self._stored.source_ends else None
        except ValueError:
            before = None
        if before == ends:
            return _Quiet(required=_QUIET_SECONDS, watched=now - self._stored.quiet_since)
        self._stored.source_ends = json.dumps(ends)
        self._stored.quiet_since = now
        writes = {t: n - before.get(t, n) for t, n in ends.items()} if before else {}
        return _Quiet(required=_QUIET_SECONDS, watched=0, writes=writes)

    def _follow_newest_request(self) -> _MigrationRequest:
        """The newest request, copied into this unit's databag so it outlives its author."""
        request = _newest_request(self._requests())
        relation = self._peers
        if relation is not None and request.seq > 0:
            raw = request.raw()
            if relation.data[self.model.unit].get(_REQUEST_KEY) != raw:
                relation.data[self.model.unit][_REQUEST_KEY] = raw
        return request

    def _publish_state(self, mode: _ExactlyOnceSupport | None) -> None:
        relation = self._peers
        if relation is None:
            return
        previous = self._unit_states().get(self.model.unit, UnitState())
        state = UnitState(
            service=self.service.state(),
            exactly_once=mode or previous.exactly_once,
        )
        raw = state.model_dump_json(by_alias=True)
        if relation.data[self.model.unit].get(_STATE_KEY) != raw:
            relation.data[self.model.unit][_STATE_KEY] = raw

    def _fence_text(self) -> str:
        fenced = sorted(self.fenced_topics())
        return f"writes fenced on {', '.join(fenced)}" if fenced else ""

    def status(self) -> ops.StatusBase | None:
        """The status to show for the migration, or `None` when there is nothing to say."""
        newest = _newest_request(self._requests())
        if newest.state == "finished":
            return None
        if newest.state == "stopped" and newest.reason:
            return ops.BlockedStatus(
                f"MirrorMaker stopped: {newest.reason} (copied data and offsets stay; "
                "start-migration resumes, stop-migration clears this)"
            )
        running = newest.state == "running"
        try:
            config = MigrationConfig.from_options(self.model.config)
            source = self._source(config)
        except NotReadyError as error:
            return error.status() if running else None
        except MigrationError as error:
            return error.status()
        if not running:
            fence = self._fence_text()
            return ops.ActiveStatus(_clip(f"migration stopped; {fence}")) if fence else None
        if source is None:
            return self._no_source().status()
        if self._target_cluster() is None:
            return ops.WaitingStatus(f"waiting for this cluster to migrate from {source.name}")
        if not self.service.container.can_connect():
            return None
        service = self.service.state()
        if service != "active":
            return ops.MaintenanceStatus(f"starting MirrorMaker to migrate from {source.name}")
        if not self._stored.summary:
            return ops.ActiveStatus(f"migrating from {source.name}")
        kind, message = json.loads(self._stored.summary)
        if kind == "blocked":
            return ops.BlockedStatus(message)
        fence = self._fence_text()
        return ops.ActiveStatus(_clip(f"{message}; {fence}" if fence else message))

    # Actions -----------------------------------------------------------------------------------

    def _request(
        self,
        state: _RequestedState,
        reason: str = "",
        finished: _FinishedMigration | None = None,
    ) -> bool:
        """Record a request in this unit's databag, unless it is already what all follow.

        A stop the units made themselves (`reason`) is replaced by the operator's own stop.

        Returns:
            Whether a new request was recorded.
        """
        relation = self._peers
        if relation is None:
            raise NotReadyError("the peer relation is not there yet: retry in a minute")
        requests = self._requests()
        newest = _newest_request(requests)
        if newest.state == state and newest.seq > 0 and newest.reason == reason:
            return False
        request = _MigrationRequest(
            state=state,
            seq=newest.seq + 1,
            at=time.time_ns(),
            by=self.model.unit.name,
            reason=reason,
            finished=finished,
        )
        relation.data[self.model.unit][_REQUEST_KEY] = request.raw()
        return True

    def _finished(self) -> _FinishedMigration | None:
        """What the finished migration recorded, if the newest request finished it."""
        newest = _newest_request(self._requests())
        if newest.state != "finished":
            return None
        return newest.finished or _FinishedMigration(at="an unknown time", source="the source")

    def _on_start_migration(self, event: ops.ActionEvent) -> None:
        if event.params.get("dry-run", False):
            self._dry_run(event)
            return
        finished = self._finished()
        if finished is not None and not event.params.get("force", False):
            event.fail(
                f"{finished.summary()}: records written to this cluster since then would be "
                "mixed with a fresh copy of the source. Nothing was changed; run start-migration "
                "force=true to migrate again all the same"
            )
            return
        try:
            settings = self.settings()
            recorded = self._request("running")
        except MigrationError as error:
            event.fail(error.message)
            return
        if recorded:
            self._publish_selection(settings)
        self.reconcile()
        self.on.fence_changed.emit()
        event.set_results(
            {
                "state": "running",
                "source": settings.source.name,
                "this-unit": self.service.state(),
                "fenced-topics": json.dumps(sorted(self.fenced_topics())),
                "message": (
                    f"migrating from {settings.source.name}: MirrorMaker runs on "
                    f"{self.model.unit.name}, and every other unit starts it as it sees the "
                    "request"
                    if recorded
                    else f"the migration from {settings.source.name} was already requested"
                ),
            }
        )

    def _publish_selection(self, settings: MirrorMakerSettings) -> None:
        """Publish the target topics the migration selects now, so the fence starts with it.

        Best effort: while the source does not answer, the first status refresh publishes them.
        """
        config = settings.config
        try:
            with _ClusterClient(settings.source, "source") as source:
                topics = source.topics()
        except ClusterUnreachableError as error:
            logger.warning("fence waits for the source's topics: %s", error.message)
            return
        names = [t for t in topics if not _is_internal_topic(t)]
        selected = _select(names, config.topics, config.topics_exclude)
        self._publish_topics(config.target_topic(topic) for topic in selected)

    def _on_stop_migration(self, event: ops.ActionEvent) -> None:
        if (finished := self._finished()) is not None:
            event.set_results(
                {"state": "finished", "message": f"{finished.summary()}; nothing to stop"}
            )
            return
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
            config = settings.config
            with _ClusterClient(settings.source, "source") as source:
                topics = source.topics()
                groups = source.groups()
                with _ClusterClient(settings.target, "target") as target:
                    existing = target.topics()
                selected = _select(
                    [t for t in topics if not _is_internal_topic(t)],
                    config.topics,
                    config.topics_exclude,
                )
                missing = _missing_source_rights(source, config, selected, existing)
        except MigrationError as error:
            event.fail(error.message)
            return
        selected_groups = _select(groups, config.groups, config.groups_exclude)
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
        if missing:
            results["missing-rights"] = json.dumps(missing)
        if not selected:
            results["warning"] = (
                "no source topic matches mirrormaker-topics and mirrormaker-topics-exclude"
            )
        event.set_results(results)

    def _live_unit_states(self) -> dict[str, UnitState]:
        """Every unit's published MirrorMaker state, this unit's read from Pebble now.

        A peer that has published nothing yet is `absent`.
        """
        relation = self._peers
        states = self._unit_states()
        peers = relation.units if relation is not None else set()
        live = {unit: states.get(unit, UnitState()) for unit in (self.model.unit, *peers)}
        if self.service.container.can_connect():
            live[self.model.unit] = UnitState(
                service=self.service.state(), exactly_once=live[self.model.unit].exactly_once
            )
        return {unit.name: state for unit, state in sorted(live.items(), key=lambda i: i[0].name)}

    def _fence_results(self) -> dict[str, str]:
        """What the fence does now, as action results."""
        fenced = sorted(self.fenced_topics())
        if fenced:
            fence = f"writes fenced on {_count(len(fenced), 'topic')} until finish-migration"
        elif not self._fence_on():
            fence = "off: mirrormaker-fence-target is false"
        else:
            fence = "no topic fenced"
        return {"fence": fence, "fenced-topics": json.dumps(fenced)}

    def _on_migration_status(self, event: ops.ActionEvent) -> None:
        topic = event.params.get("topic") or None
        units = self._live_unit_states()
        if (finished := self._finished()) is not None:
            event.set_results(
                {
                    "requested": "finished",
                    "summary": finished.summary(),
                    "ready-for-cutover": "false",
                    "reasons": json.dumps([finished.summary()]),
                    "finished": json.dumps(finished.model_dump(mode="json")),
                    **self._fence_results(),
                }
            )
            return
        try:
            settings = self.settings()
        except MigrationError as error:
            event.set_results(
                {
                    "requested": self.requested_state,
                    **_unknown_results(error.message, units),
                    **self._fence_results(),
                }
            )
            return
        report = migration_report(
            settings.source,
            settings.target,
            settings.config,
            units=units,
            lag_threshold=int(event.params.get("lag-threshold", 0)),
            topic=topic,
            quiet_seconds=float(event.params.get("quiet-seconds", _QUIET_SECONDS)),
        )
        if topic and not report.topics and not report.problems:
            event.fail(
                f"topic {topic} is not migrated: the source has no such topic, or the "
                "mirrormaker-topics options do not select it"
            )
            return
        table = event.params.get("format") == "table"
        event.set_results(
            {
                "requested": self.requested_state,
                **_report_results(report, table=table),
                **self._fence_results(),
            }
        )

    def _on_switch_group(self, event: ops.ActionEvent) -> None:
        group = str(event.params.get("group") or "")
        dry_run = bool(event.params.get("dry-run", False))
        if not group:
            event.fail("name the consumer group to switch: group=NAME")
            return
        try:
            settings = self.settings()
            clients = _Clients.of(settings.source, settings.target, _CLIENT_TIMEOUT)
            try:
                [switch] = _switch_groups(clients, settings.config, [group], dry_run=dry_run)
            finally:
                clients.close()
        except _SwitchRefusedError as error:
            event.fail(f"{error.message}; nothing was changed")
            return
        except MigrationError as error:
            event.fail(error.message)
            return
        event.set_results(_switch_results(switch, dry_run=dry_run))

    def _on_finish_migration(self, event: ops.ActionEvent) -> None:
        force = bool(event.params.get("force", False))
        newest = _newest_request(self._requests())
        if (finished := self._finished()) is not None:
            event.fail(f"{finished.summary()}; it finishes once, nothing was changed")
            return
        if newest.seq == 0 or self._peers is None:
            event.fail("no migration to finish: start-migration was never run; nothing changed")
            return
        try:
            settings = self.settings()
        except MigrationError as error:
            event.fail(error.message)
            return
        clients = _Clients.of(settings.source, settings.target, _CLIENT_TIMEOUT)
        try:
            self._finish(event, settings, clients, force=force)
        except ClusterUnreachableError as error:
            self.reconcile()
            event.fail(
                f"{error.message}: the migration is not finished, MirrorMaker runs as requested "
                "before; run finish-migration again"
            )
        finally:
            clients.close()

    def _finish(
        self,
        event: ops.ActionEvent,
        settings: MirrorMakerSettings,
        clients: _Clients,
        *,
        force: bool,
    ) -> None:
        """Check the cutover may happen; stop MirrorMaker; switch every group; record; lift.

        A stopped migration is judged by its data alone: no MirrorMaker runs to be checked.

        Raises:
            ClusterUnreachableError: if a cluster does not answer; nothing is recorded then.
        """
        config, name = settings.config, settings.source.name
        stopped = self.requested_state == "stopped"
        snapshot = _fetch_snapshot(
            clients.source,
            clients.target,
            config,
            units=None if stopped else self._live_unit_states(),
            quiet_seconds=_QUIET_SECONDS,
        )
        if stopped:
            snapshot = snapshot.model_copy(update={"connectors": None})
        report = _build_report(snapshot, config, source=name)
        blockers = list(report.reasons)
        if not report.problems and not stopped:
            unsettled = _unsettled(clients, {t.topic: t.partitions for t in report.topics})
            if unsettled:
                blockers.append(
                    "MirrorMaker has not yet recorded the copy of the last records of "
                    f"{_listed(unsettled)} (it does every 10 s)"
                )
        if blockers and not force:
            event.fail(
                f"not ready for cutover: {'; '.join(blockers)}. Nothing was changed: wait or fix "
                "what is listed, or run finish-migration force=true"
            )
            return
        self.service.stop()
        switches = _switch_groups(clients, config)
        migrated = [topic.target_topic for topic in report.topics]
        finished = _FinishedMigration(
            at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            source=name,
            topics=migrated,
            records=report.source_records,
            groups=[switch.group for switch in switches if switch.switched],
        )
        fenced = self.fenced_topics()
        self._request("finished", finished=finished)
        self.reconcile()
        self.on.fence_changed.emit()
        results: dict[str, str] = {
            "state": "finished",
            "source": name,
            "finished-at": finished.at,
            "mirrormaker": (
                f"stopped on {self.model.unit.name}; every other unit stops it as it sees the "
                "request"
            ),
            "fence": f"lifted from {_count(len(fenced), 'topic')}" if fenced else "none was on",
            "re-read": str(sum(switch.re_read for switch in switches)),
            "skip": str(sum(switch.skip for switch in switches)),
            "groups": json.dumps(
                [
                    {**switch.totals(), "partitions": [p.as_json() for p in switch.partitions]}
                    for switch in switches
                ]
            ),
            "table": _groups_table(switches),
            "summary": finished.summary(),
        }
        if blockers:
            results["forced"] = json.dumps(blockers)
        if event.params.get("cleanup", False):
            results["cleanup"] = self._cleanup(clients, migrated)
        event.set_results(results)

    @staticmethod
    def _cleanup(clients: _Clients, migrated: Collection[str]) -> str:
        """Delete MirrorMaker's own topics on the target; what was deleted, or why not."""
        try:
            deleted = clients.target_logs.delete_topics(_internal_topics(migrated))
        except ClusterUnreachableError as error:
            return f"MirrorMaker's topics were not deleted: {error.message}"
        return f"deleted {', '.join(deleted)}" if deleted else "none of MirrorMaker's topics left"


def _switch_results(switch: _GroupSwitch, *, dry_run: bool) -> dict[str, str]:
    """A switched group as `switch-group` results."""
    kept = [p for p in switch.partitions if p.result == "kept"]
    if dry_run:
        message = "dry run: computed, nothing committed"
    elif not switch.switched:
        message = "no partition could be matched: nothing committed"
    elif switch.exact:
        message = (
            f"group {switch.group} resumes on this cluster right after the records it read on "
            "the source: 0 re-read, 0 skipped"
        )
    else:
        message = (
            f"group {switch.group} resumes on this cluster skipping nothing; "
            f"{_count(switch.re_read, 'record')} come again where MirrorMaker copied them twice"
        )
    if kept:
        message += (
            f"; {_count(len(kept), 'partition')} not matched: MirrorMaker's offsets stay there "
            "(see the notes)"
        )
    mirrormaker = switch.mirrormaker_re_read
    return {
        "group": switch.group,
        "dry-run": "true" if dry_run else "false",
        "switched": "true" if switch.switched else "false",
        "exact": "true" if switch.exact else "false",
        "re-read": str(switch.re_read),
        "skip": str(switch.skip),
        "mirrormaker-re-read": "unknown" if mirrormaker is None else str(mirrormaker),
        "partitions": _json(switch.partitions),
        "table": _switch_table(switch),
        "message": message,
    }
