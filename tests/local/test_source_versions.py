# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Issue 22, every Kafka a team may run: migrations from Kafka 2.8 and 4 (and 3.9, elsewhere).

One small migration from each: Kafka 2.8 in ZooKeeper mode, and the newest Kafka 4 on Maven
Central in KRaft mode (their jars from their own directories of the cache); Kafka 3.9 in
ZooKeeper mode is the source of the login module's migrations and every other module's. Into
one unit of the charm's Kafka, through the library's MirrorMaker service under real Pebble: the
records arrive by content, `switch-group` moves a group exactly, and `finish-migration`'s check
passes and every group moves exactly. On Kafka 4 a group of the new consumer protocol (KIP-848,
`group.protocol=consumer`) that still consumes counts as consuming: `switch-group` refuses it and
the report holds up the cutover for it; once its consumer left, it moves exactly.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from charms.kafka_k8s.v0.mirrormaker import (
    MigrationConfig,
    MirrorMakerSettings,
    SourceCluster,
    TargetCluster,
    _switch,
    migration_report,
)
from charms.kafka_k8s.v0.mirrormaker._preflight import dry_run
from substrate.migration import (
    MIGRATOR,
    MIGRATOR_PASSWORD,
    MirrorMakers,
    commit_offsets,
    finish,
    misread_partitions,
    produce,
    source_user,
    switch_groups,
    target_cluster,
    wait_copied,
)
from substrate.old_cluster import KAFKA_2_8, KAFKA_4, KafkaRelease, OldCluster
from substrate.processes import LOOPBACK, ClientConfig, wait_until
from substrate.units import NewCluster

# Kafka 3.9 in ZooKeeper mode, the main jars', is the source of every other module: of the login
# module's SCRAM-SHA-512 migration (finished as here) and of `test_exact_cutover.py`.
RELEASES = {"2.8": KAFKA_2_8, "4": KAFKA_4}
PARTITIONS = 2
RECORDS = 40
READ = {0: 11, 1: 6}
CONSUMING_READ = {0: 15, 1: 3}


@pytest.fixture(scope="module")
def new_cluster(sources_cache: Path, local_tmp: Path) -> Iterator[NewCluster]:
    """One unit of the charm's Kafka: the releases are about the source, one unit shows them."""
    tmp = Path(tempfile.mkdtemp(prefix="new-", dir=local_tmp))
    with NewCluster(tmp, cache=sources_cache, size=1) as cluster:
        yield cluster


class NewProtocolConsumer:
    """A consumer of the new group protocol (KIP-848) that commits `read` and keeps consuming."""

    def __init__(self, config: ClientConfig, group: str, topic: str, read: dict[int, int]):
        self.consumer = Consumer(
            {
                **config,
                "group.id": group,
                "group.protocol": "consumer",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self.topic, self.read = topic, read
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.committed = threading.Event()

    def __enter__(self) -> NewProtocolConsumer:
        self.consumer.subscribe([self.topic])
        self.thread.start()
        assert self.committed.wait(120), "the new-protocol consumer did not commit"
        return self

    def _run(self) -> None:
        while not self.stopped.is_set():
            self.consumer.poll(0.2)
            if not self.committed.is_set() and len(self.consumer.assignment()) == len(self.read):
                offsets = [TopicPartition(self.topic, p, o) for p, o in self.read.items()]
                self.consumer.commit(offsets=offsets, asynchronous=False)
                self.committed.set()

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)
        self.consumer.close()


@pytest.mark.parametrize("line", RELEASES)
def test_a_migration_from_each_kafka(
    line: str, new_cluster: NewCluster, sources_cache: Path, local_tmp: Path
):
    began = time.monotonic()
    release: KafkaRelease = RELEASES[line]
    topic, group, streams = (f"kafka-{line}-orders", f"billing-{line}", f"streams-{line}")
    tmp = Path(tempfile.mkdtemp(prefix=f"old-{line}-", dir=local_tmp))
    with OldCluster(tmp, cache=sources_cache, release=release) as old:
        version = release.version(sources_cache)
        source_user(old)
        old_config = old.admin_config()
        admin = AdminClient(old_config)
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(60)
        produce(old_config, topic, 0, RECORDS)
        commit_offsets(old_config, group, {(topic, p): o for p, o in READ.items()})
        source = SourceCluster(
            name=f"kafka-{version}",
            bootstrap_servers=tuple(old.bootstrap.split(",")),
            username=MIGRATOR,
            password=MIGRATOR_PASSWORD,
        )
        config = MigrationConfig.from_options(
            {
                "mirrormaker-topics": topic,
                "mirrormaker-groups": f"{group}|{streams}",
                "mirrormaker-refresh-interval": 5,
            }
        )
        target = target_cluster(new_cluster)
        # Every right MirrorMaker needs, ACLs' included: Kafka 2.8 to 3.6 answer DescribeCluster
        # in a version kafka-python cannot read; the library asks with DescribeAcls.
        every_right = config.model_copy(update={"sync_topic_acls": True})
        assert migration_report(source, target, every_right).missing_rights == []
        # start-migration dry-run=true: the preflight reads the source's release, and passes.
        checked = dry_run(
            MirrorMakerSettings(source=source, target=target, config=config, unit_host=LOOPBACK)
        )
        assert "missing-rights" not in checked, checked
        assert "release is unknown" not in json.dumps(checked), checked
        nodes = MirrorMakers.on(new_cluster, source, target, config)
        nodes.run()
        try:
            wait_copied(old_config, new_cluster.admin_config(), [topic], timeout=300)
            [switch] = switch_groups(source, target, config, [group])
            assert switch.switched and switch.exact and (switch.re_read, switch.skip) == (0, 0)
            assert (
                misread_partitions(old_config, new_cluster.admin_config(), topic, group, READ)
                == []
            )
            if release.metadata == "kraft":
                _a_consuming_new_protocol_group_is_not_switched(
                    old, source, target, config, topic, streams
                )
            switches = finish(nodes, source, target, config)
            assert all(s.exact and (s.re_read, s.skip) == (0, 0) for s in switches), switches
            finished = sorted(s.group for s in switches if s.switched)
        finally:
            nodes.stop()
        assert finished == sorted([group, streams] if release.metadata == "kraft" else [group])
        if release.metadata == "kraft":
            read = CONSUMING_READ
            assert (
                misread_partitions(old_config, new_cluster.admin_config(), topic, streams, read)
                == []
            )
    print(
        f"\nKafka {version} ({release.metadata}): migrated, switched, finished in "
        f"{time.monotonic() - began:.0f}s"
    )


def _a_consuming_new_protocol_group_is_not_switched(
    old: OldCluster,
    source: SourceCluster,
    target: TargetCluster,
    config: MigrationConfig,
    topic: str,
    group: str,
) -> None:
    """KIP-848: Kafka 4's DescribeGroups answers "not a classic group", no member, Dead."""

    def active() -> bool:
        report = migration_report(source, target, config)
        return {g.group: g.active for g in report.groups}[group]

    with NewProtocolConsumer(old.admin_config(), group, topic, CONSUMING_READ):
        report = migration_report(source, target, config)
        assert {g.group: g.active for g in report.groups}[group]
        assert f"group {group}: 1 consumer still read from the source cluster" in report.reasons
        with pytest.raises(_switch.SwitchRefusedError, match=f"group {group} has 1 member on"):
            switch_groups(source, target, config, [group])
    wait_until(lambda: not active(), timeout=60, what=f"group {group} to be empty again")
