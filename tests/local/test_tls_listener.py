# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Issue 13, TLS on the new cluster: three units whose client listeners serve SASL_SSL.

A CA made by the test signs each unit's request, built by the charm's own `certificate_request`
and turned into the broker's keystore by the charm's own `server_tls`, the code that handles a
certificate from the `certificates` relation (`substrate.certificates`). Each broker also has
the EXTERNAL listener, with TLS, advertised where outside clients reach it. Clients verify the
CA and the brokers' names; a renewal rolls the brokers one at a time under a producer that sends
with acks=all; and a migration into this cluster (MirrorMaker on the internal listener, as in
Juju) copies every record, which a client then reads over TLS.
"""

from __future__ import annotations

import socket
import ssl
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from cryptography import x509

from charms.kafka_k8s.v0.mirrormaker import (
    MigrationConfig,
)
from client_provider import ClientGrant, client_acls, parse_roles
from cluster import generate_password
from rolling import RestartOutcome, admin_client, restart_in_turn
from substrate.certificates import CertificateAuthority
from substrate.migration import (
    AckedWriter,
    MirrorMakers,
    produce,
    source_cluster,
    source_user,
    target_cluster,
    wait_copied,
)
from substrate.old_cluster import OldCluster
from substrate.processes import LOOPBACK, ClientConfig, broker_count, wait_until
from substrate.units import NewCluster

TOPIC = "secure"
PARTITIONS = 6
RECORD_TIMEOUT_MS = 15_000
MIGRATED = "orders"
MIGRATED_RECORDS = 5_000


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


@pytest.fixture(scope="module")
def new_cluster(
    kafka_cache: Path, local_tmp: Path, ca: CertificateAuthority
) -> Iterator[NewCluster]:
    """Three units with TLS and the external listener: the target of this module."""
    tmp = Path(tempfile.mkdtemp(prefix="new-", dir=local_tmp))
    with NewCluster(tmp, cache=kafka_cache, size=3, ca=ca, external=True) as cluster:
        admin = AdminClient(cluster.admin_config())
        topic = NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})
        admin.create_topics([topic])[TOPIC].result(timeout=60)
        yield cluster


@dataclass(frozen=True)
class User:
    username: str
    password: str


@pytest.fixture(scope="module")
def client(new_cluster: NewCluster) -> User:
    """A kafka-client relation user that produces and consumes the topic."""
    grant = ClientGrant(
        username="relation-13",
        topic=TOPIC,
        consumer_group_prefix="relation-13-",
        roles=parse_roles("producer,consumer"),
    )
    user = User(grant.username, generate_password())
    admin = admin_client(new_cluster.internal_bootstrap, new_cluster.credentials)
    admin.upsert_user(user.username, user.password)
    admin.grant(user.username, client_acls(grant))
    wait_until(
        lambda: admin.acls_of(user.username) == set(client_acls(grant)),
        timeout=30,
        what="the client's ACLs",
    )
    return user


def served_certificate(port: int, ca: str) -> x509.Certificate:
    """The certificate a listener presents, verified against `ca` with the name 127.0.0.1."""
    context = ssl.create_default_context(cadata=ca)
    with (
        socket.create_connection((LOOPBACK, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=LOOPBACK) as wrapped,
    ):
        der = wrapped.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def round_trip(config: ClientConfig, count: int, group: str) -> list[bytes]:
    """Produce `count` numbered records and read them back with a new consumer group."""
    marker = f"{group}-{time.monotonic_ns()}"
    producer = Producer({**config, "acks": "all", "enable.idempotence": True})
    for index in range(count):
        producer.produce(TOPIC, key=marker, value=f"{marker} {index}")
    assert producer.flush(60) == 0
    consumer = Consumer(
        {**config, "group.id": f"relation-13-{group}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([TOPIC])
    found: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(found) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            if message.key() == marker.encode():
                found.append(message.value() or b"")
    finally:
        consumer.close()
    return found


def test_a_client_that_trusts_the_ca_produces_and_consumes_over_sasl_ssl(
    new_cluster: NewCluster, client: User, ca: CertificateAuthority
):
    for unit in new_cluster.units:
        certificate = served_certificate(unit.settings.client_port, ca.pem)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert f"{new_cluster.app}-{unit.index}" in names.value.get_values_for_type(x509.DNSName)

    inside = new_cluster.client_config(client.username, client.password)
    outside = new_cluster.client_config(client.username, client.password, external=True)

    assert inside["security.protocol"] == "SASL_SSL"
    assert len(round_trip(inside, 200, "inside")) == 200
    assert len(round_trip(outside, 200, "outside")) == 200
    print(f"\n200 records each way over SASL_SSL: {new_cluster.bootstrap} and, as from outside,")
    print(f"through the EXTERNAL listeners {new_cluster.external_bootstrap}")


def test_a_client_with_another_ca_is_refused(new_cluster: NewCluster, client: User):
    other = CertificateAuthority(name="another CA")
    errors: list[str] = []
    config = {
        **new_cluster.client_config(client.username, client.password, ca=other.pem),
        "error_cb": lambda error: errors.append(str(error)),
    }

    assert broker_count(config, timeout=20) == 0
    # librdkafka calls error_cb from poll(): a producer polls until the handshake's error comes.
    producer = Producer(config)
    deadline = time.monotonic() + 60
    refused = "certificate verify failed"
    while not any(refused in e for e in errors) and time.monotonic() < deadline:
        producer.poll(1)
    assert any("certificate verify failed" in error for error in errors), errors
    with pytest.raises(ssl.SSLCertVerificationError):
        served_certificate(new_cluster.units[0].settings.client_port, other.pem)
    print(f"\nwith another CA: {errors[0]}")


def test_a_renewal_rolls_the_brokers_without_a_failed_send(
    new_cluster: NewCluster, client: User, ca: CertificateAuthority
):
    before = [served_certificate(u.settings.client_port, ca.pem) for u in new_cluster.units]
    config = new_cluster.client_config(client.username, client.password)
    writer = AckedWriter(config, TOPIC, RECORD_TIMEOUT_MS).start()
    time.sleep(3)
    try:
        new_cluster.issue_certificates()  # the provider renewed every unit's certificate
        for unit in new_cluster.units:
            assert unit.kafka.reconcile(unit.settings) is True  # files written, no restart
        outcomes = []
        for unit in new_cluster.units:  # each unit's turn with the lock, as the leader grants
            pid = unit.broker_pid()
            admin = admin_client(new_cluster.internal_bootstrap, new_cluster.credentials)
            outcomes.append(restart_in_turn(unit.kafka, unit.settings, admin, interval=2.0))
            assert unit.broker_pid() not in (None, pid), f"unit {unit.index} did not restart"
    finally:
        writer.stop()

    assert outcomes == [RestartOutcome.DONE] * 3
    after = [served_certificate(u.settings.client_port, ca.pem) for u in new_cluster.units]
    assert [a.serial_number != b.serial_number for a, b in zip(after, before, strict=True)] == [
        True
    ] * 3
    print(f"\nrenewal rolled 3 brokers: {writer.delivered} records delivered with acks=all,")
    print(f"{len(writer.failed)} failed")
    assert writer.failed == []
    assert writer.delivered > 0


@pytest.fixture(scope="module")
def old_cluster(kafka_cache: Path, local_tmp: Path) -> Iterator[OldCluster]:
    """The source: the conftest's old cluster, with a topic and records."""
    tmp = Path(tempfile.mkdtemp(prefix="old-", dir=local_tmp))
    with OldCluster(tmp, cache=kafka_cache, size=1) as cluster:
        source_user(cluster)
        admin = AdminClient(cluster.admin_config())
        admin.create_topics([NewTopic(MIGRATED, 3, 1)])[MIGRATED].result(timeout=60)
        produce(cluster.admin_config(), MIGRATED, 0, MIGRATED_RECORDS)
        yield cluster


def test_a_migration_into_the_tls_cluster_copies_everything(
    old_cluster: OldCluster, new_cluster: NewCluster
):
    config = MigrationConfig.from_options({"mirrormaker-refresh-interval": 5})
    nodes = MirrorMakers.on(
        new_cluster, source_cluster(old_cluster), target_cluster(new_cluster), config
    )
    nodes.run()
    try:
        twice = wait_copied(
            old_cluster.admin_config(), new_cluster.admin_config(), [MIGRATED], timeout=300
        )
    finally:
        nodes.stop()

    # What the clients that switch over read: the same records, over TLS.
    admin = new_cluster.client_config(
        new_cluster.admin_username, new_cluster.admin_password, external=True
    )
    consumer = Consumer({**admin, "group.id": "tls-reader", "auto.offset.reset": "earliest"})
    consumer.subscribe([MIGRATED])
    read = 0
    deadline = time.monotonic() + 60
    try:
        while read < MIGRATED_RECORDS and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and not message.error():
                read += 1
    finally:
        consumer.close()
    assert read >= MIGRATED_RECORDS
    print(f"\n{MIGRATED_RECORDS} records migrated into the TLS cluster ({twice} copied twice),")
    print(f"{read} read back over SASL_SSL through the EXTERNAL listeners")
