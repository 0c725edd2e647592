# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The typed inputs: the `mirrormaker-*` options, the workload, the settings of one node.

The clusters and their logins are in `_clusters`. Each is a frozen pydantic model; a value
from outside (an option, a secret's content, a relation's response) is checked when it becomes
one, and what is wrong is raised as a `MigrationError` that names the option, the key or the
relation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Literal

import ops
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._clusters import SourceCluster, TargetCluster, check_servers, split
from ._errors import InvalidOptionError, MigrationError
from ._names import SOURCE_ALIAS, TARGET_ALIAS
from ._rendering import (
    failback_layer,
    mirrormaker_layer,
    render_failback_properties,
    render_failback_secrets,
    render_mm2_properties,
    render_mm2_secrets,
)

ExactlyOnceSupport = Literal["disabled", "preparing", "enabled"]


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


class MigrationConfig(BaseModel):
    """The `mirrormaker-*` options, by their option names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    source_bootstrap_servers: tuple[str, ...] = Field(
        default=(), validation_alias="mirrormaker-source-bootstrap-servers"
    )
    source_credentials: str | None = Field(
        default=None, validation_alias="mirrormaker-source-credentials"
    )
    # The user that may write on the source cluster, for a failback only (`_failback`).
    failback_credentials: str | None = Field(
        default=None, validation_alias="mirrormaker-failback-credentials"
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
    # Not an option: the source topics promoted in waves of this migration (the peers record
    # them). MirrorMaker never copies them again, and nothing selects them any more.
    promoted: frozenset[str] = frozenset()
    # MiB/s; the host applies it as a quota on its MirrorMaker user (0: no cap).
    throttle_mb_per_second: int = Field(
        default=0, ge=0, le=1_000_000, validation_alias="mirrormaker-throttle-mb-per-second"
    )

    _split_lists = field_validator(
        "source_bootstrap_servers",
        "topics",
        "topics_exclude",
        "groups",
        "groups_exclude",
        mode="before",
    )(split)
    _valid_servers = field_validator("source_bootstrap_servers")(check_servers)
    _valid_regexes = field_validator("topics", "topics_exclude", "groups", "groups_exclude")(
        _check_regexes
    )

    @field_validator("source_credentials", "failback_credentials", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return value or None

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> MigrationConfig:
        """Validate Juju config options; other options are ignored.

        Raises:
            InvalidOptionError: naming the first option that is wrong, and why.
        """
        known = {str(f.validation_alias) for f in cls.model_fields.values() if f.validation_alias}
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

    @property
    def target_prefix(self) -> str:
        """What the replication policy puts before a source topic's name on the target."""
        return self.target_topic("")

    def select_topics(self, names: Iterable[str]) -> list[str]:
        """The source topics MirrorMaker copies of these: selected, not internal, not promoted."""
        candidates = [n for n in names if not is_internal_topic(n) and n not in self.promoted]
        return select(candidates, self.topics, self.topics_exclude)

    @property
    def copied_topics_exclude(self) -> tuple[str, ...]:
        """`topics.exclude` as MirrorMaker gets it: the option, then every promoted topic.

        Kafka's topic names hold only letters, digits, `.`, `_` and `-`: escaped, each is a
        regular expression that matches itself alone, in Java as in Python.
        """
        return (*self.topics_exclude, *(re.escape(name) for name in sorted(self.promoted)))


class MirrorMakerWorkload(BaseModel):
    """Where MirrorMaker's files are, as whom it runs, its ports and heap.

    Defaults are the charmed-kafka rock's; the local test tier moves `root` and the ports.
    """

    model_config = ConfigDict(frozen=True)

    root: PurePosixPath = PurePosixPath("/")
    user: str = "kafka"
    group: str = "kafka"
    rest_port: int = Field(default=8083, gt=0, lt=65536)
    # The REST port of the failback's copy back, a MirrorMaker of its own (`_failback`).
    failback_rest_port: int = Field(default=8084, gt=0, lt=65536)
    metrics_port: int = Field(default=9099, gt=0, lt=65536)
    metrics_host: str = ""
    heap_mb: int = Field(default=1024, ge=128)
    # The JDK MirrorMaker runs on: the charmed-kafka rock's (its own service sets JAVA_HOME; the
    # container's environment does not).
    java_home: PurePosixPath = PurePosixPath("/usr/lib/jvm/java-18-openjdk-amd64")

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
    def failback_properties(self) -> PurePosixPath:
        """The configuration of a failback's copy back; its passwords are in `failback_secrets`."""
        return self.etc / "mm2-failback.properties"

    @property
    def failback_secrets(self) -> PurePosixPath:
        """The secrets of both clusters' logins for the copy back (the failback user's)."""
        return self.etc / "mm2-failback-secrets.properties"

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

    @property
    def failback_command(self) -> str:
        """The failback's service command: the node runs only the flow back into the source."""
        return (
            f"{self.opt}/bin/connect-mirror-maker.sh {self.failback_properties} "
            f"--clusters {SOURCE_ALIAS}"
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
    # The largest record the producer sends (`max.request.size`), from the preflight of the
    # start; 0: Kafka's default.
    record_bytes: int = Field(default=0, ge=0)

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

    def mm2_properties(self) -> str:
        """This node's `mm2.properties`; every value is properties-escaped, no password in it."""
        return render_mm2_properties(self)

    def mm2_secrets(self) -> str:
        """The passwords `mm2.properties` refers to (`workload.mm2_secrets`, mode 0600)."""
        return render_mm2_secrets(self)

    def pebble_layer(self) -> ops.pebble.LayerDict:
        """The Pebble layer of this node's running `mirrormaker` service."""
        return mirrormaker_layer(self)


class FailbackSettings(BaseModel):
    """Everything one unit's copy back of a failback is made from (`mm2-failback.properties`).

    MirrorMaker copies `topics` from this cluster (`target`, as MirrorMaker's user reaches it)
    back to the cluster they were migrated from (`source`, as the failback user reaches it),
    under their own names.
    """

    model_config = ConfigDict(frozen=True)

    source: SourceCluster
    target: TargetCluster
    topics: tuple[str, ...] = Field(min_length=1)
    config: MigrationConfig = MigrationConfig()
    unit_host: str = Field(min_length=1)
    units: int = Field(default=1, ge=1)
    workload: MirrorMakerWorkload = MirrorMakerWorkload()

    def properties(self) -> str:
        """This node's `mm2-failback.properties`; no password in it."""
        return render_failback_properties(self)

    def secrets(self) -> str:
        """The passwords `mm2-failback.properties` refers to (mode 0600)."""
        return render_failback_secrets(self)

    def pebble_layer(self) -> ops.pebble.LayerDict:
        """The Pebble layer of this node's running failback service."""
        return failback_layer(self)


def is_internal_topic(topic: str) -> bool:
    """Topics MirrorMaker never replicates, whatever the filters say."""
    return topic.startswith(("__", ".")) or topic.endswith((".internal", "-internal"))


def topic_patterns(
    chosen: str, refusal: type[MigrationError]
) -> list[tuple[str, re.Pattern[str]]]:
    """Each item of an action's comma-separated `topics`, compiled as a regular expression.

    Raises:
        refusal: naming an item that is not a topic name or a valid regular expression.
    """
    patterns = []
    for item in (part.strip() for part in chosen.split(",")):
        if not item:
            continue
        try:
            patterns.append((item, re.compile(item)))
        except re.error as error:
            raise refusal(
                f"topics: {item!r} is not a topic name or a valid regular expression ({error}); "
                "nothing was changed"
            ) from None
    return patterns


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
