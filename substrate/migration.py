# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""A migration on the local runtime: the source user, records, offsets, MirrorMaker on every unit.

The local tier's test modules, the demo and the benchmarks build their migrations from these
pieces, and the cutover from the last ones: a `kafka-client` user whose ACLs the charm's own
code fences, the group switch that `switch-group` and `finish-migration` run, and what the
charm does once a wave of `finish-migration topics=...` is recorded; then the way back: the
user a failback writes with, and its copy back on every unit.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from kafka import KafkaAdminClient
from kafka import errors as kafka_errors
from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTopicPartition

from admin import KafkaAdmin
from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import (
    FailbackService,
    FailbackSettings,
    FencedTopics,
    MigrationConfig,
    MirrorMakerService,
    MirrorMakerSettings,
    SourceCluster,
    TargetCluster,
    TopicSelection,
    UnitState,
    Wave,
)
from client_provider import ClientGrant, library_user, parse_roles, user_acls
from cluster import generate_password
from substrate.old_cluster import OldCluster
from substrate.processes import (
    LOOPBACK,
    ClientConfig,
    free_port,
    random_password,
    sasl_config,
    wait_until,
)
from substrate.units import NewCluster

_Acl = TypeVar("_Acl", bound=AclBinding)

MIRRORMAKER_HEAP_MB = 384
MIGRATOR = "migrator"
# The source user's password holds what breaks naive rendering: quotes, backslash, =, :, #, !,
# spaces and characters outside ASCII and the BMP.
MIGRATOR_PASSWORD = 'mi "gr" \\ a=t:o#r! ünï 😀 '


def produce(config: ClientConfig, topic: str, start: int, count: int) -> None:
    """Write records `start` to `start + count` of `topic`, idempotently, and wait for them."""
    producer = Producer({**config, "acks": "all", "enable.idempotence": True, "linger.ms": 20})
    for index in range(start, start + count):
        key = f"item-{index % 2000}" if topic == "inventory" else f"{topic}-{index}"
        value = f"{topic} record {index} " + "x" * (index % 97)
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.5)
        producer.poll(0)
    assert producer.flush(120) == 0, f"records left unsent to {topic}"


def end_offsets(
    config: ClientConfig, topics: list[str], timeout: float = 120
) -> dict[str, list[int]]:
    """The high watermark of every partition of the topics that exist."""
    return _retrying(lambda: _end_offsets(config, topics), timeout)


_T = TypeVar("_T")


def _retrying(query: Callable[[], _T], timeout: float = 120) -> _T:
    """Run `query` again while a partition moves or a broker restarts, until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return query()
        except KafkaException as error:
            if not _transient(error.args[0]) or time.monotonic() > deadline:
                raise
            time.sleep(1)


# What a partition's leadership moving or a broker restarting answers for a while. librdkafka
# does not always mark these retriable: a watermark query that meets a stale leader raises
# `NOT_LEADER_FOR_PARTITION` with `retriable()` false, and one whose consumer learned of a new
# topic from a broker that has not yet (the admin client asked another) `_UNKNOWN_PARTITION`.
_TRANSIENT = {
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
}


def _transient(error: KafkaError) -> bool:
    return error.retriable() or error.code() in _TRANSIENT


def _end_offsets(config: ClientConfig, topics: list[str]) -> dict[str, list[int]]:
    admin = AdminClient(config)
    metadata = admin.list_topics(timeout=30).topics
    consumer = Consumer({**config, "group.id": "end-offsets", "enable.auto.commit": False})
    try:
        return {
            topic: [
                consumer.get_watermark_offsets(TopicPartition(topic, p), 30)[1]
                for p in sorted(metadata[topic].partitions)
            ]
            for topic in topics
            if topic in metadata
        }
    finally:
        consumer.close()


def records(
    config: ClientConfig, topic: str, since: dict[int, int] | None = None
) -> dict[int, list[bytes]]:
    """Every committed record of each partition, as `key|value`, in offset order.

    Args:
        config: the cluster and login.
        topic: the topic to read.
        since: where to start reading a partition, by partition; its first offset otherwise.
    """
    return _retrying(lambda: _records(config, topic, since or {}))


def _records(config: ClientConfig, topic: str, since: dict[int, int]) -> dict[int, list[bytes]]:
    consumer = Consumer(
        {
            **config,
            "group.id": f"reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        result: dict[int, list[bytes]] = {}
        for partition in sorted(metadata.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 30)
            position = max(low, since.get(partition, low))
            consumer.assign([TopicPartition(topic, partition, position)])
            read: list[bytes] = []
            deadline = time.monotonic() + 120
            while position < high and time.monotonic() < deadline:
                # At most the records left: consume returns once they came, not after its
                # timeout (transaction markers take offsets but come as no record).
                for message in consumer.consume(min(1000, high - position), timeout=1.0):
                    if message.error():
                        raise KafkaException(message.error())
                    read.append((message.key() or b"") + b"|" + (message.value() or b""))
                # Past the transaction markers too, which a read_committed consumer never sees.
                position = consumer.position([TopicPartition(topic, partition)])[0].offset
            assert position >= high, f"{topic}[{partition}] not read to its end"
            result[partition] = read
        return result
    finally:
        consumer.close()


def misread_partitions(
    source: ClientConfig, target: ClientConfig, topic: str, group: str, read: dict[int, int]
) -> list[int]:
    """The partitions on which `group`, resuming on the target, would not read exactly.

    On the source the group had read to `read` (by partition); on the target it resumes at its
    committed offsets. Exactly: the target's records from there, each first copy once, are the
    source's records from there, by content: none read again, none skipped.
    """
    moved = committed(target, group)
    on_source = records(source, topic, since=read)
    resumed = {partition: offset for (name, partition), offset in moved.items() if name == topic}
    on_target = records(target, topic, since=resumed)
    return [
        partition
        for partition in sorted(read)
        if partition not in resumed
        or list(dict.fromkeys(on_target[partition])) != on_source[partition]
    ]


def digest(items: list[bytes]) -> str:
    """A checksum of records in order."""
    hashed = hashlib.sha256()
    for item in items:
        hashed.update(len(item).to_bytes(4, "big") + item)
    return hashed.hexdigest()


def wait_copied(
    source: ClientConfig, target: ClientConfig, topics: list[str], timeout: float = 600
) -> int:
    """Wait until every record of `topics` is on the target; compare; count the duplicates.

    MirrorMaker 2 copies at least once: a task stopped by a rebalance or a crash sends again
    what it had sent but not yet committed. So on each partition the target's first
    occurrences, in order, must be the source's records exactly (same count, same checksum),
    and every further occurrence is a duplicate. Returns the number of duplicates.
    """
    deadline = time.monotonic() + timeout
    for topic in topics:
        expected = records(source, topic)

        def arrived(topic: str = topic, expected: dict[int, list[bytes]] = expected) -> bool:
            ends = end_offsets(target, [topic]).get(topic, [])
            counts = [len(expected[p]) for p in sorted(expected)]
            if len(ends) != len(counts) or any(e < c for e, c in zip(ends, counts, strict=True)):
                return False
            copied = records(target, topic)
            return all(set(items) <= set(copied[p]) for p, items in expected.items())

        wait_until(
            arrived,
            timeout=max(deadline - time.monotonic(), 1),
            interval=3,
            what=f"every record of {topic} on the target",
        )
    duplicates = 0
    for topic in topics:
        expected, copied = records(source, topic), records(target, topic)
        for partition, items in expected.items():
            once = list(dict.fromkeys(copied[partition]))
            assert (len(once), digest(once)) == (len(items), digest(items)), (
                f"{topic}[{partition}] differs"
            )
            duplicates += len(copied[partition]) - len(once)
    return duplicates


@dataclass
class LiveProducer:
    """Writes to the old cluster in the background, `batch` records at a time, until stopped."""

    config: ClientConfig
    topic: str
    written: int = 0
    batch: int = 200
    stopped: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    # Seconds between two batches.
    pause: float = 0.2

    def start(self) -> LiveProducer:
        """Start writing in a daemon thread."""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stopped.is_set():
            produce(self.config, self.topic, self.written, self.batch)
            self.written += self.batch
            time.sleep(self.pause)

    def stop(self) -> int:
        """Stop writing; the number of records written."""
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(timeout=120)
        return self.written


@dataclass
class AckedWriter:
    """Sends numbered records with acks=all and idempotence until stopped, as a live client does.

    Counts the records delivered, the failures, and the slowest delivery (seconds from send to
    acknowledgement). Each record has `timeout_ms` (`message.timeout.ms`) to be acknowledged.
    """

    config: ClientConfig
    topic: str
    timeout_ms: int = 15_000
    delivered: int = 0
    failed: list[str] = field(default_factory=list)
    slowest: float = 0.0
    stopped: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> AckedWriter:
        """Start sending in a daemon thread."""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        settings = {"acks": "all", "enable.idempotence": True, "linger.ms": 5}
        producer = Producer({**self.config, **settings, "message.timeout.ms": self.timeout_ms})
        sent = 0
        while not self.stopped.is_set():
            now = time.monotonic()

            def done(error: KafkaError | None, _message: object, at: float = now) -> None:
                if error is not None:
                    self.failed.append(str(error))
                    return
                self.delivered += 1
                self.slowest = max(self.slowest, time.monotonic() - at)

            producer.produce(self.topic, key=str(sent), value=f"record-{sent}", on_delivery=done)
            sent += 1
            producer.poll(0.01)
        producer.flush(self.timeout_ms / 1000 + 5)

    def stop(self) -> None:
        """Stop sending once every record sent is delivered or failed."""
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(timeout=60)


def _kafka_python(config: ClientConfig) -> dict[str, Any]:
    """The cluster and login of a librdkafka client configuration, for kafka-python."""
    return {
        "bootstrap_servers": str(config["bootstrap.servers"]).split(","),
        "security_protocol": config["security.protocol"],
        "sasl_mechanism": config["sasl.mechanism"],
        "sasl_plain_username": config["sasl.username"],
        "sasl_plain_password": config["sasl.password"],
        "request_timeout_ms": 30_000,
        "client_id": "kafka-k8s-local-runtime",
    }


def committed(
    config: ClientConfig, group: str, timeout: float = 120
) -> dict[tuple[str, int], int]:
    """A group's committed offset of each topic partition; asked again while its coordinator moves.

    kafka-python asks: librdkafka's admin client can crash the process when a group's
    coordinator moves (confluentinc/librdkafka#5040).
    """
    deadline = time.monotonic() + timeout
    admin = KafkaAdminClient(**_kafka_python(config))
    try:
        while True:
            try:
                answer = cast(Any, admin).list_group_offsets([group])
                break
            except kafka_errors.KafkaError as error:
                if not error.retriable or time.monotonic() > deadline:
                    raise
                time.sleep(1)
    finally:
        admin.close()
    return {
        (partition.topic, partition.partition): commit.offset
        for partition, commit in answer.get(group, {}).items()
        if commit.offset >= 0
    }


def commit_offsets(
    config: ClientConfig, group: str, offsets: dict[tuple[str, int], int], timeout: float = 120
) -> None:
    """Commit offsets for a group that has no members; retried while the coordinator loads.

    kafka-python commits them: librdkafka's admin client can crash the process when a group's
    coordinator moves (confluentinc/librdkafka#5040).
    """
    request = {
        KafkaTopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
        for (topic, partition), offset in offsets.items()
    }
    deadline = time.monotonic() + timeout
    admin = KafkaAdminClient(**_kafka_python(config))
    try:
        while True:
            try:
                errors = cast(Any, admin).alter_group_offsets(group, request)
                failed = [
                    f"{tp.topic}[{tp.partition}]: {error.__name__}"
                    for tp, error in errors.items()
                    if error is not kafka_errors.NoError
                ]
            except kafka_errors.KafkaError as error:
                if not error.retriable:
                    raise
                failed = [str(error)]
            if not failed:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not commit the offsets of group {group}: {failed}")
            time.sleep(1)
    finally:
        admin.close()


def set_user_quotas(config: ClientConfig, user: str, quotas: dict[str, float]) -> None:
    """Set a user's client quotas (AlterClientQuotas: librdkafka's admin client has no call)."""
    request = AlterClientQuotasRequest(
        entries=[
            AlterClientQuotasRequest.EntryData(
                entity=[
                    AlterClientQuotasRequest.EntryData.EntityData(
                        entity_type="user", entity_name=user
                    )
                ],
                ops=[
                    AlterClientQuotasRequest.EntryData.OpData(key=key, value=value, remove=False)
                    for key, value in quotas.items()
                ],
            )
        ],
        validate_only=False,
    )
    admin = KafkaAdminClient(**_kafka_python(config))
    try:
        manager = cast(Any, admin)._manager
        response = manager.run(manager.send, request)
    finally:
        admin.close()
    failed = [entry.error_message for entry in response.entries if entry.error_code]
    assert not failed, f"quotas of {user} not set: {failed}"


def topic_acl(
    kind: type[_Acl],
    topic: str,
    operation: AclOperation,
    permission: AclPermissionType,
    resource: ResourceType = ResourceType.TOPIC,
) -> _Acl:
    """An ACL binding, or binding filter, of the migration user on one topic (or resource)."""
    return kind(
        resource,
        topic,
        ResourcePatternType.LITERAL,
        f"User:{MIGRATOR}",
        "*",
        operation,
        permission,
    )


def source_user(old: OldCluster) -> None:
    """A read-only source user: read and describe topics, groups, configs, ACLs; nothing else."""
    old.add_scram_user(MIGRATOR, MIGRATOR_PASSWORD)
    old.grant_reader(f"User:{MIGRATOR}")


def source_cluster(old: OldCluster) -> SourceCluster:
    """The old cluster as the migration user reaches it."""
    return SourceCluster(
        name="old",
        bootstrap_servers=tuple(old.bootstrap.split(",")),
        username=MIGRATOR,
        password=MIGRATOR_PASSWORD,
    )


def target_cluster(new: NewCluster) -> TargetCluster:
    """The new cluster as MirrorMaker's user reaches it: on the internal listener, as in Juju."""
    return TargetCluster(
        bootstrap_servers=tuple(new.internal_bootstrap.split(",")),
        username="mirrormaker",
        password=new.credentials.mirrormaker_password,
    )


class _Runs(Protocol):
    """A MirrorMaker service of the library: the migration's or a failback's."""

    def run(self, settings: Any) -> None: ...

    def stop(self) -> None: ...

    def state(self) -> str: ...


_Service = TypeVar("_Service", bound=_Runs)
_Settings = TypeVar("_Settings")


@dataclass
class _Nodes(Generic[_Service, _Settings]):
    """One service per unit of the new cluster, with its settings."""

    new: NewCluster
    services: list[_Service]
    settings: list[_Settings]

    def run(self) -> None:
        """Render the files and start (or restart) the service on every unit."""
        for service, settings in zip(self.services, self.settings, strict=True):
            service.run(settings)

    def stop(self) -> None:
        """Stop the service on every unit."""
        for service in self.services:
            service.stop()

    def unit_states(self) -> dict[str, UnitState]:
        """What each unit would publish in its peer data: its service's Pebble state."""
        return {
            f"{self.new.app}/{unit.index}": UnitState(service=service.state())
            for unit, service in zip(self.new.units, self.services, strict=True)
        }


@dataclass
class MirrorMakers(_Nodes[MirrorMakerService, MirrorMakerSettings]):
    """One MirrorMaker node per unit of the new cluster, run by the library's own service."""

    @classmethod
    def on(
        cls,
        new: NewCluster,
        source: SourceCluster,
        target: TargetCluster,
        config: MigrationConfig,
        heap_mb: int = MIRRORMAKER_HEAP_MB,
    ) -> MirrorMakers:
        """The nodes' services and settings on every unit of `new`; nothing is started yet."""
        services, settings = [], []
        for unit in new.units:
            workload = unit.mirrormaker_workload(heap_mb=heap_mb)
            services.append(MirrorMakerService(unit.container, workload))
            settings.append(
                MirrorMakerSettings(
                    source=source,
                    target=target,
                    config=config,
                    unit_host=LOOPBACK,
                    units=len(new.units),
                    workload=workload,
                )
            )
        return cls(new, services, settings)

    def configured(self, config: MigrationConfig) -> MirrorMakers:
        """The same nodes with other options (`run` then restarts each with them)."""
        settings = [s.model_copy(update={"config": config}) for s in self.settings]
        return MirrorMakers(self.new, self.services, settings)


# The cutover ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientUser:
    """A `kafka-client` relation user of the new cluster (producer and consumer of one topic).

    `application` is the related application's name; `identity` what the operator mapped it to
    on the source (`kafka-client-identities`).
    """

    grant: ClientGrant
    password: str
    relation_id: int = 0
    application: str = "app"
    identity: mm.ClientIdentity | None = None

    def config(self, new: NewCluster) -> ClientConfig:
        """The user's client configuration."""
        return sasl_config(new.bootstrap, self.grant.username, self.password)

    def as_library_user(self) -> mm.ClientUser:
        """The user as the charm passes it to the migration library (`KafkaClients.access`)."""
        return library_user(self.relation_id, self.application, [self.grant], self.identity)


def client_user(
    new: NewCluster,
    relation_id: int,
    topic: str,
    *,
    roles: str | None = None,
    application: str = "app",
    identity: mm.ClientIdentity | None = None,
) -> ClientUser:
    """The user the charm makes for a relation asking for `topic`, with no ACLs yet."""
    username = f"relation-{relation_id}"
    grant = ClientGrant(
        username=username,
        topic=topic,
        consumer_group_prefix=f"{username}-",
        roles=parse_roles(roles),
    )
    user = ClientUser(grant, generate_password(), relation_id, application, identity)
    with KafkaAdmin(new.bootstrap, new.admin_username, new.admin_password) as admin:
        admin.upsert_user(username, user.password)
    return user


def grant_client(
    new: NewCluster,
    user: ClientUser,
    fenced: FencedTopics | Collection[str],
    copied: Collection[mm.AclBinding] = (),
) -> None:
    """Give the user the ACLs the charm computes while `fenced` is fenced; wait for them.

    A collection of names fences those topics alone. With its application's identity on the
    source, and the ACLs the migration `copied` for it.
    """
    if not isinstance(fenced, FencedTopics):
        fenced = FencedTopics(names=frozenset(fenced))
    acls = user_acls([user.grant], user.identity, copied, fenced)
    with KafkaAdmin(new.bootstrap, new.admin_username, new.admin_password) as admin:
        admin.grant(user.grant.username, acls)
        # Brokers learn of ACLs from the controller's metadata log, a moment later.
        wait_until(
            lambda: admin.acls_of(user.grant.username) == set(acls),
            timeout=30,
            what=f"the ACLs of {user.grant.username}",
        )


def produce_one(config: ClientConfig, topic: str, value: str) -> str | None:
    """Write one record; None if it was written, or the name of the error that refused it."""
    errors: list[KafkaError] = []
    producer = Producer({**config, "message.timeout.ms": 10_000, "log_level": 0})
    producer.produce(
        topic, value=value, on_delivery=lambda error, _: errors.append(error) if error else None
    )
    producer.flush(30)
    return errors[0].name() if errors else None


def fenced_topics(
    config: MigrationConfig, seen: Collection[str], waves: Sequence[Wave] = ()
) -> FencedTopics:
    """The fence as the charm computes it, from the source topics the units saw.

    Those, and every name the options' selection matches, but the topics waves promoted.
    """
    return FencedTopics(
        names=frozenset(config.target_topic(topic) for topic in seen),
        selections=(TopicSelection.of(config),),
        promoted=frozenset(topic for wave in waves for topic in wave.target_topics),
    )


def apply_wave(nodes: MirrorMakers, waves: Sequence[Wave]) -> MirrorMakers:
    """What the charm does once a wave is recorded, before it lifts the wave's fence.

    MirrorMaker's user may no longer write the promoted topics (the leader's grant), and every
    unit runs MirrorMaker again without them: it resumes the other topics from its offsets.
    """
    promoted = [topic for wave in waves for topic in wave.target_topics]
    nodes.new.grant_mirrormaker(promoted=promoted)
    config = nodes.settings[0].config
    topics = frozenset(topic for wave in waves for topic in wave.topics)
    moved = nodes.configured(config.model_copy(update={"promoted": topics}))
    moved.run()
    return moved


# Why a wave is refused for a moment while MirrorMaker catches up: it records its copy every
# 10 s, and a task handed to another node is unassigned for a moment.
_SETTLING = ("has not yet recorded the copy", "is unassigned", "records behind")


def promote_when_settled(
    source: SourceCluster,
    target: TargetCluster,
    config: MigrationConfig,
    topics: str | None,
    *,
    timeout: float = 90.0,
    **kwargs: Any,
) -> mm.Promotion:
    """Promote a wave as `finish-migration` does, asking again while MirrorMaker settles.

    Any other refusal is raised at once.

    Raises:
        CutoverRefusedError: if the wave is refused for another reason, or past `timeout`.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return mm.promote(source, target, config, topics, timeout=30.0, **kwargs)
        except mm.CutoverRefusedError as refused:
            settling = any(why in refused.message for why in _SETTLING)
            if not settling or time.monotonic() > deadline:
                raise
            time.sleep(3)


# What `switch-group` (named groups) and `finish-migration` (every group) run, with the patience
# a shared machine needs; `use_syncs=False` anchors every partition by a content search from a
# timestamp, as when MirrorMaker's offset syncs of a partition are missing.
switch_groups = functools.partial(mm.switch_groups, timeout=30.0)


def finish(
    nodes: MirrorMakers,
    source: SourceCluster,
    target: TargetCluster,
    config: MigrationConfig,
    timeout: float = 180,
) -> list[mm.GroupSwitch]:
    """`finish-migration` on its units: once ready for cutover, stop MirrorMaker, switch groups.

    Ready: the report `migration-status` gives (the target in sync by content, the source quiet
    for 10 s, no group with consumers on the source, MirrorMaker's tasks running) has no reason
    left. Every selected group is then switched, as `finish-migration` does.

    Raises:
        AssertionError: naming the reasons, if the migration is not ready within `timeout`.
    """
    deadline = time.monotonic() + timeout
    while True:
        report = mm.migration_report(
            source, target, config, units=nodes.unit_states(), quiet_seconds=10
        )
        if report.ready_for_cutover:
            break
        assert time.monotonic() < deadline, f"not ready for cutover: {report.reasons}"
    nodes.stop()
    return switch_groups(source, target, config)


# The way back ---------------------------------------------------------------------------------

FAILBACK_WRITER = "failback-writer"


def failback_user(old: OldCluster, topics: Sequence[str], groups: Sequence[str]) -> SourceCluster:
    """A user of the old cluster with the rights `mirrormaker-failback-credentials` documents.

    READ, WRITE and DESCRIBE on the topics that fail back, READ and DESCRIBE on their groups and
    the copy back's worker group, and on the copy back's own topics (named, not a prefix) what
    its Kafka Connect worker does with them: create, read, write, describe, delete.
    """
    password = random_password()
    old.add_scram_user(FAILBACK_WRITER, password)
    principal = f"User:{FAILBACK_WRITER}"
    topic_rights = (AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE)
    own_rights = (
        *topic_rights,
        AclOperation.CREATE,
        AclOperation.DESCRIBE_CONFIGS,
        AclOperation.DELETE,
    )
    group_rights = (AclOperation.READ, AclOperation.DESCRIBE)
    wanted = [
        *((ResourceType.TOPIC, topic, topic_rights) for topic in topics),
        *((ResourceType.TOPIC, topic, own_rights) for topic in mm.copy_back_topics()),
        *((ResourceType.GROUP, group, group_rights) for group in [*groups, "failback-mm2"]),
    ]
    bindings = [
        AclBinding(
            kind, name, ResourcePatternType.LITERAL, principal, "*", op, AclPermissionType.ALLOW
        )
        for kind, name, ops in wanted
        for op in ops
    ]
    admin = AdminClient(old.admin_config())
    for future in admin.create_acls(bindings).values():
        future.result(timeout=30)
    return SourceCluster(
        name="old",
        bootstrap_servers=tuple(old.bootstrap.split(",")),
        username=FAILBACK_WRITER,
        password=password,
    )


@dataclass
class CopyBack(_Nodes[FailbackService, FailbackSettings]):
    """A failback's copy back on every unit of the new cluster, run by the library's service."""

    @classmethod
    def on(
        cls,
        new: NewCluster,
        source: SourceCluster,
        target: TargetCluster,
        failback: mm.Failback,
        config: MigrationConfig,
        heap_mb: int = MIRRORMAKER_HEAP_MB,
    ) -> CopyBack:
        """The services and settings of every unit (REST ports allocated here); none started."""
        services, settings = [], []
        for unit in new.units:
            workload = unit.mirrormaker_workload(heap_mb=heap_mb)
            workload = workload.model_copy(update={"failback_rest_port": free_port()})
            services.append(FailbackService(unit.container, workload))
            settings.append(
                FailbackSettings(
                    source=source,
                    target=target,
                    topics=tuple(failback.topics),
                    config=config,
                    unit_host=LOOPBACK,
                    units=len(new.units),
                    workload=workload,
                )
            )
        return cls(new, services, settings)
