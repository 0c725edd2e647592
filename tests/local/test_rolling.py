# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Rolling restarts on three real units, with a producer that must never see a send fail.

No Juju runs here, so no lock: each unit's turn is the charm's own lock callback routine,
`rolling.restart_in_turn`, run unit by unit in the order the leader grants the lock (the
oldest request first; every unit asked at once, by unit number), each waiting for its broker to
be back in sync the way the charm does. The changes come through the charm's code paths: new
settings reconciled by `KafkaWorkload.reconcile` (which never restarts a running broker), the
dynamic options through `rolling.apply_dynamic_options`, the rotation through
`rolling.apply_pending` and `InternalCredentials.committed`.

The producer sends with `acks=all` to a topic with replication factor 3 and
`min.insync.replicas=2`, and gives each record 15 s (`message.timeout.ms`): a record that finds
fewer than two replicas in sync for that long fails, as it would if brokers restarted together.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from admin import KafkaAdmin
from client_provider import ClientGrant, client_acls, parse_roles
from cluster import generate_password, rotation_passwords
from config import BrokerConfig
from models import ADMIN_USER
from rolling import (
    RestartOutcome,
    admin_client,
    apply_dynamic_options,
    apply_pending,
    restart_in_turn,
)
from substrate.migration import AckedWriter
from substrate.processes import ClientConfig, sasl_config, wait_until
from substrate.units import NewCluster

TOPIC = "rolling"
PARTITIONS = 6
RECORD_TIMEOUT_MS = 15_000


def _stored(config: ClientConfig) -> int:
    """How many records the topic holds (its end offsets: the producer is idempotent)."""
    consumer = Consumer({**config, "group.id": "rolling-count"})
    try:
        ends = [
            consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=30)
            for p in range(PARTITIONS)
        ]
    finally:
        consumer.close()
    return sum(high for _low, high in ends)


def _writes_everywhere(config: ClientConfig) -> bool:
    """Whether the user may write to every partition now, so to every leader.

    Brokers apply new ACLs a moment after the controller has them: a producer refused in
    between fails every later record with TOPIC_AUTHORIZATION_FAILED.
    """
    errors: list[KafkaError] = []
    producer = Producer({**config, "message.timeout.ms": 10_000, "log_level": 0})
    try:
        for partition in range(PARTITIONS):
            producer.produce(
                TOPIC,
                value=b"ready",
                partition=partition,
                on_delivery=lambda error, _: errors.append(error) if error else None,
            )
    except KafkaException:
        return False
    return producer.flush(30) == 0 and not errors


@pytest.fixture(scope="module")
def topic(new_cluster: NewCluster) -> str:
    admin = AdminClient(new_cluster.admin_config())
    new = NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})
    for future in admin.create_topics([new]).values():
        future.result(timeout=60)
    return TOPIC


@pytest.fixture(scope="module")
def client(new_cluster: NewCluster, topic: str) -> ClientConfig:
    """A kafka-client relation user that produces to the topic: no rotation touches it."""
    grant = ClientGrant(
        username="relation-50",
        topic=topic,
        consumer_group_prefix="relation-50-",
        roles=parse_roles("producer"),
    )
    password = generate_password()
    admin = _admin(new_cluster)
    admin.upsert_user(grant.username, password)
    admin.grant(grant.username, client_acls(grant))
    wait_until(
        lambda: admin.acls_of(grant.username) == set(client_acls(grant)),
        timeout=30,
        what="the producer's ACLs",
    )
    config = sasl_config(new_cluster.bootstrap, grant.username, password)
    wait_until(
        lambda: _writes_everywhere(config), timeout=60, what="the producer's ACLs on every broker"
    )
    return config


@pytest.fixture
def writer(client: ClientConfig) -> Iterator[AckedWriter]:
    running = AckedWriter(client, TOPIC, RECORD_TIMEOUT_MS).start()
    time.sleep(3)  # records flow before anything changes
    try:
        yield running
    finally:
        running.stop()


_ADMINS: list[KafkaAdmin] = []


@pytest.fixture(scope="module", autouse=True)
def _close_admins() -> Iterator[None]:
    """The admin clients of this module keep their connections until it ends."""
    yield
    while _ADMINS:
        _ADMINS.pop().close()


def _kept(admin: KafkaAdmin) -> KafkaAdmin:
    _ADMINS.append(admin)
    return admin


def _admin(cluster: NewCluster) -> KafkaAdmin:
    bootstrap = ",".join(node.internal_address for node in cluster.nodes)
    return _kept(admin_client(bootstrap, cluster.credentials))


def _logs_in(bootstrap: str, password: str, timeout: float = 15.0) -> bool:
    with KafkaAdmin(bootstrap, ADMIN_USER, password, timeout=timeout) as admin:
        return admin.can_log_in()


def _turns(cluster: NewCluster) -> list[RestartOutcome]:
    """Every unit's turn with the lock, in the order the leader grants it."""
    outcomes = []
    for unit in cluster.units:
        before = unit.broker_pid()
        outcome = restart_in_turn(unit.kafka, unit.settings, _admin(cluster), interval=2.0)
        assert unit.broker_pid() not in (None, before), f"unit {unit.index} was not restarted"
        outcomes.append(outcome)
    return outcomes


def _check(writer: AckedWriter, cluster: NewCluster, what: str) -> None:
    writer.stop()
    stored = _stored(cluster.admin_config())
    print(
        f"\n{what}: {writer.delivered} records delivered, {len(writer.failed)} failed, "
        f"slowest {writer.slowest:.1f} s; the topic holds {stored}"
    )
    assert writer.failed == []
    assert writer.delivered > 0
    assert stored >= writer.delivered


def test_a_dynamic_option_restarts_nothing(new_cluster: NewCluster, topic: str):
    # What the leader does on its first reconcile: retention as the cluster-wide default.
    first = apply_dynamic_options(_admin(new_cluster), new_cluster.units[0].settings.config)
    assert first == {"log.retention.ms": str(168 * 3_600_000)}
    pids = [unit.broker_pid() for unit in new_cluster.units]
    config = BrokerConfig.from_options(
        {"broker-heap-mb": new_cluster.heap_mb, "log-retention-hours": 24}
    )

    for unit in new_cluster.units:
        unit.settings = unit.settings.model_copy(update={"config": config})
        assert unit.kafka.reconcile(unit.settings) is False
    changed = apply_dynamic_options(_admin(new_cluster), config)

    assert changed == {"log.retention.ms": str(24 * 3_600_000)}
    # Brokers apply a dynamic config from the controller's metadata log, a moment later.
    admin = _admin(new_cluster)
    wait_until(
        lambda: admin.cluster_configs(["log.retention.ms"]) == changed,
        timeout=30,
        what="the brokers to apply the new retention",
    )
    assert [unit.broker_pid() for unit in new_cluster.units] == pids


def test_a_config_change_restarts_each_broker_in_turn_and_no_send_fails(
    new_cluster: NewCluster, writer: AckedWriter
):
    pids = [unit.broker_pid() for unit in new_cluster.units]
    heap = new_cluster.heap_mb + 16
    for unit in new_cluster.units:
        config = unit.settings.config.model_copy(update={"broker_heap_mb": heap})
        unit.settings = unit.settings.model_copy(update={"config": config})
        assert unit.kafka.reconcile(unit.settings) is True
    assert [unit.broker_pid() for unit in new_cluster.units] == pids  # none restarted yet

    assert _turns(new_cluster) == [RestartOutcome.DONE] * 3

    _check(writer, new_cluster, "broker-heap-mb changed")
    assert not [unit for unit in new_cluster.units if unit.kafka.needs_restart(unit.settings)]


def test_a_rotation_restarts_each_broker_in_turn_and_no_send_fails(
    new_cluster: NewCluster, writer: AckedWriter
):
    current = new_cluster.credentials
    old_admin = current.admin_password
    rotating = current.model_copy(update={"pending": rotation_passwords(current)})
    bootstrap = ",".join(node.internal_address for node in new_cluster.nodes)

    apply_pending(_kept(admin_client(bootstrap, rotating)), rotating)
    # Cut off here, before the secret made them current: Kafka refuses the current admin
    # password now, and the charm's admin client logs in with the pending one and goes on.
    # Brokers apply a new credential from the controller's metadata log, a moment later.
    wait_until(
        lambda: not _logs_in(bootstrap, old_admin, timeout=5),
        timeout=30,
        what="the old admin password refused",
    )
    recovered = _kept(admin_client(bootstrap, rotating))
    assert recovered.can_log_in()
    apply_pending(recovered, rotating)
    committed = rotating.committed()
    new_cluster.credentials = committed
    for unit in new_cluster.units:
        unit.settings = unit.settings.model_copy(update={"credentials": committed})
        assert unit.kafka.reconcile(unit.settings) is True

    assert committed.inter_broker_user != current.inter_broker_user
    assert _turns(new_cluster) == [RestartOutcome.DONE] * 3

    _check(writer, new_cluster, f"rotation onto {committed.inter_broker_user}")
    wait_until(
        lambda: not _logs_in(bootstrap, old_admin, timeout=5),
        timeout=30,
        what="the old admin password refused",
    )
    assert _logs_in(bootstrap, committed.admin_password)
    for unit in new_cluster.units:
        record = unit.kafka.started_with()
        assert record is not None
        assert record.inter_broker_user == committed.inter_broker_user


def test_clients_still_log_in_after_the_rolls(new_cluster: NewCluster, topic: str):
    config = sasl_config(new_cluster.bootstrap, ADMIN_USER, new_cluster.credentials.admin_password)
    assert _stored(config) > 0
