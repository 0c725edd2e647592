# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Issue 3 end to end: the migration library moves a ZooKeeper-mode cluster onto three units.

The library's own `MirrorMakerService.run` renders `mm2.properties`, pushes it (mode 0600) and
adds the `mirrormaker` layer on each unit's real Pebble; three real MirrorMaker 2 processes form
one dedicated cluster. The tests run in file order against one migration.
"""

from __future__ import annotations

import gc
import re
import stat
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from charms.kafka_k8s.v0.mirrormaker import (
    MigrationConfig,
    SourceCluster,
    TargetCluster,
    migration_report,
)
from substrate.migration import (
    MIGRATOR,
    MIGRATOR_PASSWORD,
    LiveProducer,
    MirrorMakers,
    commit_offsets,
    committed,
    produce,
    records,
    source_cluster,
    source_user,
    target_cluster,
    wait_copied,
)
from substrate.old_cluster import OldCluster
from substrate.processes import LOOPBACK, ClientConfig, find_processes, free_port, wait_until
from substrate.units import NewCluster

REFRESH = 10
# name: (partitions, records, topic configs)
TOPICS: dict[str, tuple[int, int, dict[str, str]]] = {
    "orders": (12, 60_000, {}),
    "payments": (3, 15_000, {}),
    "inventory": (
        4,
        12_000,
        {
            "cleanup.policy": "compact",
            "min.compaction.lag.ms": "3600000",
            "max.message.bytes": "2097152",
        },
    ),
    "clicks": (6, 10_000, {"retention.ms": "86400000"}),
    "audit.log": (1, 5_000, {}),
}
LIVE_TOPIC = "events"
LATE_TOPIC = "late-arrivals"
CUTOVER_GROUP = "billing"
CUTOVER_READ = 20_000


def metrics(port: int) -> str:
    url = f"http://{LOOPBACK}:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


@dataclass
class Migration:
    """The module's migration: both clusters, MirrorMaker on every unit, a live producer."""

    old: OldCluster
    new: NewCluster
    source: SourceCluster
    target: TargetCluster
    config: MigrationConfig
    nodes: MirrorMakers
    live: LiveProducer
    first_read: set[bytes]
    old_config: ClientConfig
    new_config: ClientConfig

    def mirrormaker_pids(self) -> list[int]:
        return [
            pid
            for unit in self.new.units
            for pid in find_processes("org.apache.kafka.connect.mirror.MirrorMaker", unit.marker)
        ]

    def copied(self, topics: list[str], timeout: float = 600) -> int:
        """Wait until every record of `topics` is on the target; the number copied twice."""
        return wait_copied(self.old_config, self.new_config, topics, timeout=timeout)


def _load(old_config: ClientConfig) -> None:
    admin = AdminClient(old_config)
    new_topics = [
        NewTopic(name, num_partitions=partitions, replication_factor=1, config=configs)
        for name, (partitions, _, configs) in TOPICS.items()
    ]
    new_topics.append(NewTopic(LIVE_TOPIC, num_partitions=2, replication_factor=1))
    for future in admin.create_topics(new_topics).values():
        future.result(timeout=60)
    for name, (_, count, _) in TOPICS.items():
        produce(old_config, name, 0, count)


def _consume_part(config: ClientConfig, group: str, topic: str, count: int) -> set[bytes]:
    """A consumer group reads `count` records of `topic`, commits, and leaves."""
    consumer = Consumer(
        {**config, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    consumer.subscribe([topic])
    read: set[bytes] = set()
    deadline = time.monotonic() + 120
    try:
        while len(read) < count and time.monotonic() < deadline:
            for message in consumer.consume(min(500, count - len(read)), timeout=1.0):
                if message.error():
                    raise KafkaException(message.error())
                read.add(message.value() or b"")
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    assert len(read) == count
    return read


@pytest.fixture(scope="module")
def migration(old_cluster: OldCluster, new_cluster: NewCluster) -> Iterator[Migration]:
    """The old cluster loaded with topics, records and groups; MirrorMaker started on 3 units."""
    old_config = old_cluster.admin_config()
    new_config = new_cluster.admin_config()
    source_user(old_cluster)
    _load(old_config)
    first_read = _consume_part(old_config, CUTOVER_GROUP, "orders", CUTOVER_READ)
    commit_offsets(old_config, "shipping", {("payments", p): 5000 for p in range(3)})
    commit_offsets(
        old_config,
        "analytics",
        {("clicks", p): 1000 + 100 * p for p in range(6)} | {("audit.log", 0): 4321},
    )
    source = source_cluster(old_cluster)
    target = target_cluster(new_cluster)
    config = MigrationConfig.from_options(
        {"mirrormaker-refresh-interval": REFRESH, "mirrormaker-tasks-max": 6}
    )
    nodes = MirrorMakers.on(new_cluster, source, target, config)
    live = LiveProducer(old_config, LIVE_TOPIC).start()
    run = Migration(
        old_cluster,
        new_cluster,
        source,
        target,
        config,
        nodes,
        live,
        first_read,
        old_config,
        new_config,
    )
    nodes.run()
    try:
        yield run
    finally:
        live.stop()
        nodes.stop()


def test_every_unit_runs_mirrormaker_from_the_library(migration: Migration):
    nodes = migration.nodes
    for unit, service, settings in zip(
        migration.new.units, nodes.services, nodes.settings, strict=True
    ):
        info = unit.container.get_service("mirrormaker")
        assert info.is_running()
        plan = unit.container.get_plan().services["mirrormaker"]
        assert plan.command.endswith("mm2.properties --clusters target")
        path = Path(str(service.workload.mm2_properties))
        assert path.read_text() == settings.mm2_properties()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    wait_until(
        lambda: len(migration.mirrormaker_pids()) == 3,
        timeout=60,
        what="three MirrorMaker processes",
    )


def test_every_record_is_copied_while_producers_write(migration: Migration):
    wait_until(
        lambda: migration.live.written >= 4000,
        timeout=120,
        what="the live producer to write during the migration",
    )
    twice = migration.copied(list(TOPICS), timeout=900)
    written = migration.live.stop()
    twice += migration.copied([LIVE_TOPIC], timeout=300)
    total = sum(
        len(items)
        for topic in [*TOPICS, LIVE_TOPIC]
        for items in records(migration.old_config, topic).values()
    )
    print(
        f"\ncopied {total} records over {len(TOPICS) + 1} topics, {written} written live; "
        f"{twice} copied twice (MirrorMaker copies at least once)"
    )
    assert total >= 100_000
    assert len(records(migration.new_config, "orders")) == 12


def test_topic_configs_arrive(migration: Migration):
    admin = AdminClient(migration.new_config)
    for topic, (_, _, expected) in TOPICS.items():
        if not expected:
            continue

        def synced(topic: str = topic, expected: dict[str, str] = expected) -> bool:
            resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
            configs = admin.describe_configs([resource])[resource].result(timeout=30)
            return all(configs[key].value == value for key, value in expected.items())

        wait_until(synced, timeout=4 * REFRESH + 30, what=f"the configs of {topic}")


def test_group_offsets_arrive(migration: Migration):
    """Each group's offsets arrive, and its consumers skip nothing the old cluster had left.

    Offsets are not comparable across the clusters: records MirrorMaker copied twice shift
    the target's. So each translated offset is checked by content: every record after the
    group's offset on the old cluster is after its translated offset on the new one.
    """
    migration.copied(["orders", "payments", "clicks", "audit.log"])
    for group in ("shipping", "analytics", CUTOVER_GROUP):
        source = committed(migration.old_config, group)
        wait_until(
            lambda group=group, source=source: (
                set(committed(migration.new_config, group)) >= set(source)
            ),
            timeout=6 * REFRESH + 60,
            what=f"the offsets of group {group}",
        )
        target = committed(migration.new_config, group)
        read_again = 0
        for topic in sorted({topic for topic, _ in source}):
            unread = records(
                migration.old_config, topic, {p: o for (t, p), o in source.items() if t == topic}
            )
            on_target = records(
                migration.new_config, topic, {p: o for (t, p), o in target.items() if t == topic}
            )
            for partition, items in unread.items():
                if (topic, partition) not in source:
                    continue
                missed = set(items) - set(on_target[partition])
                assert not missed, f"{group} would skip {len(missed)} records of {topic}"
                read_again += len(on_target[partition]) - len(items)
        print(f"\ngroup {group}: {len(source)} partitions, {read_again} records to read again")


def test_cutover_reads_every_record_at_least_once(migration: Migration):
    consumer = Consumer(
        {
            **migration.new_config,
            "group.id": CUTOVER_GROUP,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(["orders"])
    second_read: list[bytes] = []
    expected = TOPICS["orders"][1]
    idle_since = time.monotonic()
    try:
        while time.monotonic() - idle_since < 15:
            messages = consumer.consume(1000, timeout=1.0)
            if messages:
                idle_since = time.monotonic()
            for message in messages:
                if message.error():
                    raise KafkaException(message.error())
                second_read.append(message.value() or b"")
    finally:
        consumer.close()
    everything = {(f"orders record {i} " + "x" * (i % 97)).encode() for i in range(expected)}
    both = migration.first_read & set(second_read)
    assert migration.first_read | set(second_read) == everything
    print(
        f"\ncutover: {len(migration.first_read)} read on the old cluster, {len(second_read)} on "
        f"the new one, {len(both)} read twice ({100 * len(both) / expected:.2f}% of {expected})"
    )
    assert len(both) < CUTOVER_READ


def test_new_topic_appears_within_two_refresh_intervals(migration: Migration):
    admin = AdminClient(migration.old_config)
    admin.create_topics([NewTopic(LATE_TOPIC, num_partitions=3, replication_factor=1)])[
        LATE_TOPIC
    ].result(timeout=30)
    created = time.monotonic()
    target = AdminClient(migration.new_config)
    wait_until(
        lambda: LATE_TOPIC in target.list_topics(timeout=10).topics,
        timeout=2 * REFRESH + 30,
        interval=0.5,
        what=f"{LATE_TOPIC} on the target",
    )
    seconds = time.monotonic() - created
    print(f"\n{LATE_TOPIC} appeared on the target after {seconds:.1f}s (refresh {REFRESH}s)")
    assert seconds <= 2 * REFRESH
    produce(migration.old_config, LATE_TOPIC, 0, 3000)
    migration.copied([LATE_TOPIC], timeout=120)


def test_tasks_run_on_more_than_one_unit(migration: Migration):
    def replicating_units() -> dict[int, int]:
        counts = {}
        for unit in migration.new.units:
            text = metrics(unit.workload.ports.mirrormaker_metrics)
            lines = [
                line
                for line in text.splitlines()
                if line.startswith("kafka_connect_mirror_source_connector_record_count{")
            ]
            counts[unit.index] = len(lines)
        return counts

    wait_until(
        lambda: sum(1 for n in replicating_units().values() if n) >= 2,
        timeout=120,
        what="MirrorMaker tasks on at least two units",
    )
    print(f"\npartitions replicated per unit: {replicating_units()}")


def test_library_queries_real_clusters(migration: Migration):
    report = migration_report(migration.source, migration.target, migration.config)
    assert report.problems == []
    lags = {topic.topic: topic.lag for topic in report.topics}
    assert {*TOPICS, LIVE_TOPIC, LATE_TOPIC} <= set(lags)
    assert {"shipping", "analytics", CUTOVER_GROUP} <= {group.group for group in report.groups}
    assert {topic: lags[topic] for topic in TOPICS} == dict.fromkeys(TOPICS, 0)
    # The source gained no topic: offset syncs and heartbeats stay on the target.
    topics = AdminClient(migration.old_config).list_topics(timeout=30).topics
    assert set(topics) == {*TOPICS, LIVE_TOPIC, LATE_TOPIC, "__consumer_offsets"}

    assert _unreachable(migration, f"{LOOPBACK}:{free_port()}", "no-broker-pw-4711", 3) < 15
    assert _unreachable(migration, migration.old.bootstrap, "wrong-pw-4711", 5) < 20


def _unreachable(migration: Migration, bootstrap: str, password: str, timeout: float) -> float:
    """Seconds until the library reports a source unreachable; its clients are then dropped."""
    cluster = SourceCluster(
        name="x",
        bootstrap_servers=tuple(bootstrap.split(",")),
        username=MIGRATOR,
        password=password,
    )
    began = time.monotonic()
    report = migration_report(cluster, migration.target, timeout=timeout)
    seconds = time.monotonic() - began
    assert [problem.role for problem in report.problems] == ["source"]
    assert password not in report.problems[0].message
    del report
    gc.collect()
    return seconds


def _fragments(secret: str) -> set[bytes]:
    """What of a password survives any encoding a topic could store it in (JSON, JAAS, ...).

    The password itself, and each run of 6 or more characters that JSON, JAAS and `.properties`
    never escape (not a quote, backslash, control or non-ASCII character).
    """
    runs = re.split(r'["\\\x00-\x1f\x7f-\U0010ffff]', secret)
    return {secret.encode(), *(run.encode() for run in runs if len(run) >= 6)}


def test_no_password_in_any_mirrormaker_topic(migration: Migration):
    """Item 1 of issue 12: no secret is stored in any topic, on the target or the source.

    MirrorMaker keeps the configs of its connectors and tasks in `mm2-configs.source.internal`
    on the target. They hold `${file:...}` references to the secrets file, which Kafka's
    FileConfigProvider resolves when a client is made: the migration copying (the other tests
    of this module) shows the connectors' clients log in with them.
    """
    secrets = (
        MIGRATOR_PASSWORD,
        migration.new.credentials.mirrormaker_password,
        migration.new.admin_password,
        migration.old.admin_password,
        migration.new.credentials.controller_password,
    )
    needles = {fragment for secret in secrets for fragment in _fragments(secret)}
    searched: dict[str, int] = {}
    for name, config in (("target", migration.new_config), ("source", migration.old_config)):
        topics = AdminClient(config).list_topics(timeout=30).topics
        for topic in sorted(set(topics) - {*TOPICS, LIVE_TOPIC, LATE_TOPIC}):
            stored = [item for items in records(config, topic).values() for item in items]
            searched[f"{name}:{topic}"] = len(stored)
            found = [needle for needle in needles for item in stored if needle in item]
            assert not found, f"a password is in {topic} on the {name}"
    print(f"\nsearched, records per topic: {searched}")
    mirrormaker_topics = {
        "target:mm2-configs.source.internal",
        "target:mm2-offsets.source.internal",
        "target:mm2-status.source.internal",
        "target:mm2-offset-syncs.source.internal",
        "target:source.checkpoints.internal",
        "target:heartbeats",
    }
    assert mirrormaker_topics <= set(searched)
    assert not [topic for topic in searched if topic.startswith("source:mm2-")]
    configs = records(migration.new_config, "mm2-configs.source.internal")
    stored = b"".join(item for items in configs.values() for item in items)
    assert b"task-MirrorSourceConnector-0|" in stored  # task configs are in the topic too
    assert stored.count(b"${file:") >= 8  # both clusters' references, per connector and task


def test_mirrormaker_is_no_super_user(migration: Migration):
    """It copies with the ACLs the charm grants it (`acls.mirrormaker_acls`), nothing more.

    It may not delete a migrated topic; the unit tests check its whole grant.
    """
    for unit in migration.new.units:
        properties = Path(str(unit.paths.server_properties)).read_text()
        assert "User:mirrormaker" not in properties
    user = {**migration.new_config, "sasl.username": "mirrormaker"}
    user["sasl.password"] = migration.new.credentials.mirrormaker_password
    admin = AdminClient(user)
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        admin.delete_topics(["clicks"])["clicks"].result(timeout=30)


def test_no_secret_in_any_log(migration: Migration):
    secrets = (MIGRATOR_PASSWORD, migration.new.credentials.mirrormaker_password)
    for path in migration.new.log_files():
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"a password is in {path}"


def test_stop_leaves_no_process_and_start_resumes(migration: Migration):
    twice_before = migration.copied(list(TOPICS))
    migration.nodes.stop()
    wait_until(lambda: not migration.mirrormaker_pids(), timeout=60, what="MirrorMaker to stop")
    for unit, service in zip(migration.new.units, migration.nodes.services, strict=True):
        assert not unit.container.get_service("mirrormaker").is_running()
        assert unit.container.get_plan().services["mirrormaker"].startup == "disabled"
        assert not Path(str(service.workload.mm2_properties)).exists()
    migration.nodes.stop()

    added = 2000
    produce(migration.old_config, "payments", TOPICS["payments"][1], added)
    migration.nodes.run()
    twice = migration.copied(list(TOPICS), timeout=300) - twice_before
    total = sum(count for _, count, _ in TOPICS.values())
    print(
        f"\nrestarted: {added} new records arrived; {twice} of the {total} records copied "
        "before the stop were copied again (a restart from the beginning would copy them all)"
    )
    assert twice < total / 10
