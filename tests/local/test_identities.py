# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Issue 24 end to end: an application keeps its identity across the cutover.

On the ZooKeeper-mode old cluster, the application `billing` has its own user with prefixed topic
ACLs, its consumer group `billing`, transactional ids `billing-tx-*` and a quota; it wrote
transactions and consumed part of them. The source is then frozen for the cutover as operators
freeze it: `User:* DENY WRITE` and `User:mirrormaker DENY ALL` on its topic, beside a `User:*
ALLOW READ`. One real MirrorMaker node, run by the library under real Pebble, copies into one
unit with ACL sync on. The operator maps the application (`kafka-client-identities`); the
relation user's ACLs are the charm's own (`client_provider.user_acls`), the access report and
the ACL copy the library's. The tests run in file order.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import MigrationConfig, _acls
from substrate.migration import (
    MIGRATOR,
    ClientUser,
    MirrorMakers,
    client_user,
    committed,
    end_offsets,
    grant_client,
    produce,
    records,
    set_user_quotas,
    source_cluster,
    source_user,
    switch_groups,
    target_cluster,
    wait_copied,
)
from substrate.old_cluster import OldCluster
from substrate.processes import ClientConfig, sasl_config, wait_until
from substrate.units import NewCluster

INVOICES, LEDGER = "billing.invoices", "ledger"
MIGRATED = [INVOICES, LEDGER]
BILLING_PASSWORD = "billing-app-pw"
MAP = "billing-app: {user: billing, groups: [billing], transactional-ids: [billing-tx-*]}"
QUOTA = {"producer_byte_rate": 1048576.0}
OPERATION = {op.name: op for op in AclOperation}
RESOURCE = {kind.name: kind for kind in ResourceType}


@pytest.fixture(scope="module")
def new_cluster(kafka_cache: Path, local_tmp: Path) -> Iterator[NewCluster]:
    """One unit: enough for the grants, the copy and the switch."""
    tmp = Path(tempfile.mkdtemp(prefix="new-", dir=local_tmp))
    with NewCluster(tmp, cache=kafka_cache, size=1) as cluster:
        yield cluster


def binding(principal: str, resource: str, name: str, operation: str, **kw) -> AclBinding:
    return AclBinding(
        RESOURCE["BROKER" if resource == "CLUSTER" else resource],
        name,
        ResourcePatternType.PREFIXED if kw.get("prefixed") else ResourcePatternType.LITERAL,
        principal,
        "*",
        OPERATION[operation],
        AclPermissionType.DENY if kw.get("deny") else AclPermissionType.ALLOW,
    )


# What the application `billing` may do on the source: its topics by prefix, the ledger, its
# group, its transactions.
BILLING_ACLS = [
    binding("User:billing", "TOPIC", "billing.", operation, prefixed=True)
    for operation in ("READ", "WRITE", "DESCRIBE")
] + [
    binding("User:billing", "TOPIC", LEDGER, "READ"),
    binding("User:billing", "GROUP", "billing", "READ"),
    binding("User:billing", "TRANSACTIONAL_ID", "billing-tx-", "WRITE", prefixed=True),
    binding("User:billing", "CLUSTER", "kafka-cluster", "IDEMPOTENT_WRITE"),
]
# The source frozen for the cutover, and a right for every user of it.
FROZEN = [
    binding("User:*", "TOPIC", INVOICES, "WRITE", deny=True),
    binding("User:mirrormaker", "TOPIC", INVOICES, "ALL", deny=True),
    binding("User:*", "TOPIC", INVOICES, "READ"),
]


@dataclass
class Scenario:
    old: OldCluster
    new: NewCluster
    nodes: MirrorMakers
    config: MigrationConfig
    billing: ClientConfig
    mapped: bool = False
    relation: ClientUser | None = None
    copied: tuple[mm.AclBinding, ...] = ()

    @property
    def source(self) -> mm.SourceCluster:
        return self.nodes.settings[0].source

    @property
    def target(self) -> mm.TargetCluster:
        return self.nodes.settings[0].target

    def access(self) -> mm.ClientAccess:
        """What kafka-k8s passes the library: once mapped, the map and billing-app's user."""
        if not self.mapped:
            return mm.ClientAccess()
        users = (self.relation.as_library_user(),) if self.relation else ()
        return mm.ClientAccess(identities=mm.parse_client_identities(MAP), users=users)

    def access_report(self) -> mm.AccessReport:
        return mm.access_report(
            self.source,
            self.config,
            self.access(),
            target_user=self.target.username or "",
            copied=self.copied,
            timeout=30.0,
        )


def _create_acls(config: ClientConfig, bindings: list[AclBinding]) -> None:
    admin = AdminClient(config)  # kept until the answers: a dropped handle ends its requests
    for future in admin.create_acls(bindings).values():
        future.result(timeout=30)


def _billing_writes_and_reads(billing: ClientConfig) -> None:
    """The application's transactions on the source (one aborted), then its group reads part."""
    producer = Producer({**billing, "transactional.id": "billing-tx-0", "linger.ms": 5})
    producer.init_transactions(60)
    for batch, commit in ((0, True), (1, False), (2, True), (3, True)):
        producer.begin_transaction()
        for index in range(batch * 40, batch * 40 + 40):
            producer.produce(INVOICES, key=f"inv-{index}", value=f"invoice {index}")
        if commit:
            producer.commit_transaction(60)
        else:
            producer.abort_transaction(60)
    consumer = Consumer(
        {
            **billing,
            "group.id": "billing",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    partitions = [TopicPartition(INVOICES, p, OFFSET_BEGINNING) for p in (0, 1)]
    consumer.assign(partitions)
    read, deadline = {0: 0, 1: 0}, time.monotonic() + 120
    while min(read.values()) < 25 and time.monotonic() < deadline:
        for message in consumer.consume(10, timeout=1.0):
            if not message.error() and read[message.partition() or 0] < 25:
                read[message.partition() or 0] += 1
                consumer.commit(message=message, asynchronous=False)
    consumer.close()
    assert min(read.values()) >= 25, f"the application read too little of the source: {read}"


@pytest.fixture(scope="module")
def scenario(old_cluster: OldCluster, new_cluster: NewCluster) -> Iterator[Scenario]:
    admin_config = old_cluster.admin_config()
    source_user(old_cluster)
    old_cluster.add_scram_user("billing", BILLING_PASSWORD)
    topics = [NewTopic(INVOICES, num_partitions=2), NewTopic(LEDGER, num_partitions=1)]
    admin = AdminClient(admin_config)
    for future in admin.create_topics(topics).values():
        future.result(timeout=60)
    _create_acls(admin_config, BILLING_ACLS)
    set_user_quotas(admin_config, "billing", QUOTA)
    billing = sasl_config(old_cluster.bootstrap, "billing", BILLING_PASSWORD)
    _billing_writes_and_reads(billing)
    produce(admin_config, LEDGER, 0, 20)
    _create_acls(admin_config, FROZEN)
    new_cluster.grant_mirrormaker(sync_topic_acls=True)
    config = MigrationConfig.from_options(
        {
            "mirrormaker-topics": r"billing\..*, ledger",
            "mirrormaker-sync-topic-acls": True,
            "mirrormaker-refresh-interval": 5,
            "mirrormaker-tasks-max": 2,
        }
    )
    nodes = MirrorMakers.on(
        new_cluster, source_cluster(old_cluster), target_cluster(new_cluster), config
    )
    nodes.run()
    try:
        wait_copied(admin_config, new_cluster.admin_config(), MIGRATED, timeout=300)
        yield Scenario(old_cluster, new_cluster, nodes, config, billing)
    finally:
        nodes.stop()


def _principal(report: mm.AccessReport, principal: str):
    return next(p for p in report.principals if p.principal == principal)


def test_the_access_report_lists_the_source_users_rights_and_what_it_could_not_read(
    scenario: Scenario,
):
    blind = scenario.access_report()
    assert [part.split(":")[0] for part in blind.unreadable] == ["quotas"]
    print(f"\nas the migration's source user may read:\n{mm.format_access_table(blind)}")

    # DescribeClientQuotas needs DESCRIBE_CONFIGS on the cluster.
    grant = binding(f"User:{MIGRATOR}", "CLUSTER", "kafka-cluster", "DESCRIBE_CONFIGS")
    _create_acls(scenario.old.admin_config(), [grant])
    wait_until(lambda: not scenario.access_report().unreadable, timeout=30, what="quotas readable")
    report = scenario.access_report()
    print(f"\nbefore the mapping:\n{mm.format_access_table(report)}")
    billing = _principal(report, "User:billing")
    assert {acl.text() for acl in billing.acls} == {
        "READ on TOPIC prefix billing.",
        "WRITE on TOPIC prefix billing.",
        "DESCRIBE on TOPIC prefix billing.",
        "READ on TOPIC ledger",
        "READ on GROUP billing",
        "WRITE on TRANSACTIONAL_ID prefix billing-tx-",
        "IDEMPOTENT_WRITE on CLUSTER kafka-cluster",
    }
    assert billing.quotas == QUOTA
    assert (billing.application, billing.client_user) == (None, None)
    assert billing.note == "no application is mapped to it: map one in kafka-client-identities"
    assert len(billing.lacks) == 7
    assert _principal(report, "User:*").note == (
        "every user of the source: not copied; a client user here holds its own"
    )
    mirrormaker = _principal(report, "User:mirrormaker")
    assert [acl.text() for acl in mirrormaker.acls] == ["DENY ALL on TOPIC billing.invoices"]
    assert mirrormaker.note == "1 DENY binding only: not copied, nothing is denied here"
    assert _principal(report, f"User:{MIGRATOR}").lacks == []


def test_mapped_its_relation_user_lacks_nothing_and_only_its_acls_are_copied(
    scenario: Scenario,
):
    identity = mm.parse_client_identities(MAP)[0]
    scenario.mapped = True
    scenario.relation = client_user(
        scenario.new,
        7,
        "billing.*",
        roles="producer,consumer",
        application="billing-app",
        identity=identity,
    )
    copied = _acls.copy_acls(scenario.source, scenario.target, scenario.config, scenario.access())
    scenario.copied = tuple(copied)
    # Of billing's ACLs only READ on ledger is not the relation's own: copied under its name.
    assert [(acl.principal, acl.text()) for acl in copied] == [
        ("User:relation-7", "READ on TOPIC ledger")
    ]
    grant_client(scenario.new, scenario.relation, fenced=set(MIGRATED), copied=copied)

    report = scenario.access_report()
    print(f"\nafter the mapping:\n{mm.format_access_table(report)}")
    billing = _principal(report, "User:billing")
    assert (billing.client_user, billing.lacks) == ("relation-7", [])

    every = AclBindingFilter(
        ResourceType.ANY,
        None,  # pyright: ignore[reportArgumentType] - None matches any name
        ResourcePatternType.ANY,
        None,  # pyright: ignore[reportArgumentType] - None matches any principal
        None,  # pyright: ignore[reportArgumentType] - None matches any host
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    admin = AdminClient(scenario.new.admin_config())
    on_target = admin.describe_acls(every).result(timeout=30)
    principals = {acl.principal for acl in on_target}
    assert principals == {"User:mirrormaker", "User:relation-7"}
    assert not [acl for acl in on_target if acl.permission_type == AclPermissionType.DENY]


def test_mirrormaker_keeps_copying_past_the_frozen_sources_denies(scenario: Scenario):
    produce(scenario.old.admin_config(), INVOICES, 1000, 30)
    wait_copied(scenario.old.admin_config(), scenario.new.admin_config(), MIGRATED, timeout=120)

    # `User:* ALLOW READ` was not copied: another relation user may not read the topic.
    other = client_user(scenario.new, 8, "audit", roles="consumer")
    grant_client(scenario.new, other, fenced=())
    reader = Consumer(
        {**other.config(scenario.new), "group.id": "relation-8-a", "auto.offset.reset": "earliest"}
    )
    try:
        reader.subscribe([INVOICES])
        errors: list[str] = []
        deadline = time.monotonic() + 30
        while not errors and time.monotonic() < deadline:
            failed = [m.error() for m in reader.consume(10, timeout=1.0)]
            errors = [error.name() for error in failed if error is not None]
    finally:
        reader.close()
    assert errors and errors[0] == "TOPIC_AUTHORIZATION_FAILED"


def _resume(config: ClientConfig, admin: ClientConfig) -> dict[int, list[bytes]]:
    """What a consumer of group `billing` reads from its committed offsets to the end."""
    ends = end_offsets(admin, [INVOICES])[INVOICES]
    consumer = Consumer(
        {
            **config,
            "group.id": "billing",
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
            "isolation.level": "read_committed",
        }
    )
    read: dict[int, list[bytes]] = {p: [] for p in range(len(ends))}
    try:
        consumer.subscribe([INVOICES])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=1.0):
                if message.error():
                    raise KafkaException(message.error())
                read[message.partition() or 0].append(
                    (message.key() or b"") + b"|" + (message.value() or b"")
                )
            assigned = consumer.assignment()
            if len(assigned) == len(ends):
                positions = consumer.position(assigned)
                if all(p.offset >= ends[p.partition] for p in positions):
                    break
    finally:
        consumer.close()
    return read


def test_after_the_switch_it_resumes_billing_and_commits_a_transaction(scenario: Scenario):
    relation = scenario.relation
    assert relation is not None
    [switch] = switch_groups(
        scenario.source, scenario.target, scenario.config, ["billing"], access=scenario.access()
    )
    assert (switch.switched, switch.exact) == (True, True)
    assert switch.resumed_by == "kafka-client relation 7 (billing-app)"
    # The cutover lifts the fence; the copied ACLs stay until finish-migration cleanup=true.
    grant_client(scenario.new, relation, fenced=(), copied=scenario.copied)

    source_offsets = committed(scenario.old.admin_config(), "billing")
    since = {p: offset for (topic, p), offset in source_offsets.items() if topic == INVOICES}
    expected = records(scenario.old.admin_config(), INVOICES, since)
    resumed = _resume(relation.config(scenario.new), scenario.new.admin_config())
    print(
        f"\nbilling resumed as relation-7 from {since}: read "
        f"{ {p: len(items) for p, items in resumed.items()} }, expected "
        f"{ {p: len(items) for p, items in expected.items()} }"
    )
    assert resumed == expected  # 0 re-read, 0 skipped, by content

    producer = Producer({**relation.config(scenario.new), "transactional.id": "billing-tx-1"})
    producer.init_transactions(60)
    producer.begin_transaction()
    producer.produce(INVOICES, key="inv-new", value="written on the new cluster")
    producer.commit_transaction(60)
    outsider = Producer({**relation.config(scenario.new), "transactional.id": "payments-tx-1"})
    with pytest.raises(KafkaException, match="TRANSACTIONAL_ID_AUTHORIZATION_FAILED"):
        outsider.init_transactions(30)
