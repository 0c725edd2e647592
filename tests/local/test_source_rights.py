# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Item 8 of issue 12: a source user with only what Canonical's Kafka grants a `consumer`.

kafka-k8s asks the `migration-source` provider for `consumer` on topic `*`. Canonical's Kafka
then grants READ and DESCRIBE on every topic and READ on the groups prefixed `relation-<id>-`,
and nothing else: no DESCRIBE_CONFIGS on topics and no DESCRIBE on other groups. This module
gives the source user exactly that, and shows what the README says: MirrorMaker cannot create
the topics' copies (it reads their configs first) and no group's offsets migrate, the status
names both missing rights, and once an operator grants them on the source by hand, a restart
of the migration (stop-migration, start-migration) copies topics, records and group offsets.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from charms.kafka_k8s.v0.mirrormaker import (
    MigrationConfig,
    SourceCluster,
    migration_report,
)
from substrate.migration import (
    MirrorMakers,
    commit_offsets,
    committed,
    produce,
    target_cluster,
    wait_copied,
)
from substrate.old_cluster import OldCluster
from substrate.processes import wait_until
from substrate.units import NewCluster

USER = "relation-9"
PASSWORD = "relation-9-pw-2718"
TOPIC = "orders"
GROUP = "billing"
RECORDS = 3_000
REFRESH = 5


@pytest.fixture(scope="module")
def new_cluster(kafka_cache: Path, local_tmp: Path) -> Iterator[NewCluster]:
    """One unit of the charm's Kafka: the rights are about the source, one unit shows it."""
    tmp = Path(tempfile.mkdtemp(prefix="new-", dir=local_tmp))
    with NewCluster(tmp, cache=kafka_cache, size=1) as cluster:
        yield cluster


def grant(old: OldCluster, *rights: tuple[ResourceType, str, ResourcePatternType, AclOperation]):
    admin = AdminClient(old.admin_config())
    bindings = [
        AclBinding(kind, name, pattern, f"User:{USER}", "*", operation, AclPermissionType.ALLOW)
        for kind, name, pattern, operation in rights
    ]
    for future in admin.create_acls(bindings).values():
        future.result(timeout=30)


@pytest.fixture(scope="module")
def source(old_cluster: OldCluster) -> SourceCluster:
    """The source user as Canonical's Kafka makes it for `consumer` on topic `*`."""
    old_cluster.add_scram_user(USER, PASSWORD)
    literal, prefixed = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    grant(
        old_cluster,
        (ResourceType.TOPIC, "*", literal, AclOperation.READ),
        (ResourceType.TOPIC, "*", literal, AclOperation.DESCRIBE),
        (ResourceType.GROUP, f"{USER}-", prefixed, AclOperation.READ),
    )
    admin = AdminClient(old_cluster.admin_config())
    admin.create_topics([NewTopic(TOPIC, 3, 1)])[TOPIC].result(timeout=60)
    produce(old_cluster.admin_config(), TOPIC, 0, RECORDS)
    commit_offsets(old_cluster.admin_config(), GROUP, {(TOPIC, p): 500 for p in range(3)})
    return SourceCluster(
        name="old-kafka",
        bootstrap_servers=tuple(old_cluster.bootstrap.split(",")),
        username=USER,
        password=PASSWORD,
    )


def test_consumer_rights_copy_nothing_and_the_status_says_why(
    old_cluster: OldCluster, new_cluster: NewCluster, source: SourceCluster
):
    config = MigrationConfig.from_options({"mirrormaker-refresh-interval": REFRESH})
    target = target_cluster(new_cluster)
    nodes = MirrorMakers.on(new_cluster, source, target, config)
    nodes.run()
    try:
        report = migration_report(source, target, config)
        assert len(report.missing_rights) == 2, report.missing_rights
        configs, groups = report.missing_rights
        assert configs.startswith(f"source user {USER} may not describe the configs of 1 topic")
        assert "MirrorMaker cannot create their copies" in configs
        assert groups.startswith(f"source user {USER} may not describe every consumer group")
        assert report.summary() == ("blocked", configs)
        assert not report.ready_for_cutover
        wait_until(
            lambda: bool(migration_report(source, target, config).connectors),
            timeout=180,
            what="MirrorMaker's connectors",
        )
        time.sleep(4 * REFRESH)  # several refreshes: MirrorMaker tried to create the copy
        topics = AdminClient(new_cluster.admin_config()).list_topics(timeout=30).topics
        assert TOPIC not in topics
        print(f"\nwith consumer rights only: {report.summary()[1]}")

        # The operator's remedy: grant the two rights on the source, restart the migration.
        grant(
            old_cluster,
            (ResourceType.TOPIC, "*", ResourcePatternType.LITERAL, AclOperation.DESCRIBE_CONFIGS),
            (ResourceType.GROUP, "*", ResourcePatternType.LITERAL, AclOperation.DESCRIBE),
        )
        assert migration_report(source, target, config).missing_rights == []
        nodes.stop()
        nodes.run()
        wait_copied(old_cluster.admin_config(), new_cluster.admin_config(), [TOPIC], timeout=300)
        wait_until(
            lambda: committed(new_cluster.admin_config(), GROUP, timeout=30) != {},
            timeout=6 * REFRESH + 120,
            what=f"the offsets of group {GROUP} on the target",
        )
    finally:
        nodes.stop()
