# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Issue 6, TLS sources: a migration from an old cluster that only speaks SASL_SSL to it.

The old cluster has a SASL_SSL listener whose certificate a CA made by the test signed. The
source is built by the library's own functions from what Juju would hand the charm: the
content of the credentials secret (with `ca`), or a `kafka_client` response (with `tls-ca`).
MirrorMaker, run by the library's service under real Pebble, copies over TLS on both paths; a
CA that did not sign the certificate is reported as such, as the blocked status would show it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from charms.kafka_k8s.v0.mirrormaker import (
    MigrationConfig,
    SourceCluster,
    migration_report,
)
from substrate.migration import (
    MIGRATOR,
    MIGRATOR_PASSWORD,
    MirrorMakers,
    produce,
    source_user,
    target_cluster,
    wait_copied,
)
from substrate.old_cluster import OldCluster, TlsMaterial, make_ca
from substrate.units import NewCluster

TOPIC = "orders"
PARTITIONS = 3
RECORDS = 6_000


@pytest.fixture(scope="module")
def tls(local_tmp: Path) -> TlsMaterial:
    return make_ca(Path(tempfile.mkdtemp(prefix="ca-", dir=local_tmp)))


@pytest.fixture(scope="module")
def old_cluster(kafka_cache: Path, local_tmp: Path, tls: TlsMaterial) -> Iterator[OldCluster]:
    """The conftest's old cluster, with a SASL_SSL listener that presents the CA's certificate."""
    tmp = Path(tempfile.mkdtemp(prefix="old-", dir=local_tmp))
    with OldCluster(tmp, cache=kafka_cache, size=1, tls=tls) as cluster:
        source_user(cluster)
        admin = AdminClient(cluster.admin_config())
        topic = NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)
        admin.create_topics([topic])[TOPIC].result(timeout=60)
        produce(cluster.admin_config(), TOPIC, 0, RECORDS)
        yield cluster


@pytest.fixture(scope="module")
def new_cluster(kafka_cache: Path, local_tmp: Path) -> Iterator[NewCluster]:
    """One unit of the charm's Kafka: TLS is about the source, one unit shows it."""
    tmp = Path(tempfile.mkdtemp(prefix="new-", dir=local_tmp))
    with NewCluster(tmp, cache=kafka_cache, size=1) as cluster:
        yield cluster


def secret_source(old: OldCluster, ca: str) -> SourceCluster:
    """The source as the charm reads it from `mirrormaker-source-credentials`."""
    content = {
        "username": MIGRATOR,
        "password": MIGRATOR_PASSWORD,
        "security-protocol": "SASL_SSL",
        "ca": ca,
    }
    return SourceCluster.from_secret(content, old.tls_bootstrap.split(","), secret_id="secret:tls")


def source_topics(source: SourceCluster, new: NewCluster) -> dict[str, int]:
    """The records of every source topic, as the library reads them over `source`'s TLS."""
    report = migration_report(source, target_cluster(new), timeout=10)
    assert report.problems == []
    return {topic.topic: topic.source_end_offset for topic in report.topics}


def migrate(old: OldCluster, new: NewCluster, source: SourceCluster, records: int) -> int:
    """Run MirrorMaker from `source` until `records` records of the topic are on the target."""
    config = MigrationConfig.from_options({"mirrormaker-refresh-interval": 5})
    nodes = MirrorMakers.on(new, source, target_cluster(new), config)
    nodes.run()
    try:
        assert source_topics(source, new)[TOPIC] == records
        return wait_copied(old.admin_config(), new.admin_config(), [TOPIC], timeout=300)
    finally:
        nodes.stop()


def test_the_ca_from_the_credentials_secret(old_cluster: OldCluster, new_cluster, tls):
    source = secret_source(old_cluster, tls.ca)
    assert source.security_protocol == "SASL_SSL"
    assert TOPIC in source_topics(source, new_cluster)
    twice = migrate(old_cluster, new_cluster, source, RECORDS)
    print(f"\n{RECORDS} records copied over SASL_SSL with the secret's CA; {twice} twice")


def test_the_tls_ca_of_the_relation(old_cluster: OldCluster, new_cluster, tls):
    source = SourceCluster.from_relation(
        "old-kafka",
        endpoints=old_cluster.tls_bootstrap,
        username=MIGRATOR,
        password=MIGRATOR_PASSWORD,
        tls=True,
        tls_ca=tls.ca,
    )
    assert (source.security_protocol, source.ca) == ("SASL_SSL", tls.ca)
    produce(old_cluster.admin_config(), TOPIC, RECORDS, 2_000)
    twice = migrate(old_cluster, new_cluster, source, RECORDS + 2_000)
    print(f"\n2000 more records copied over SASL_SSL with the relation's tls-ca; {twice} twice")


def test_a_wrong_ca_is_reported_as_such(old_cluster: OldCluster, new_cluster, local_tmp: Path):
    other = make_ca(Path(tempfile.mkdtemp(prefix="ca-", dir=local_tmp)), name="another CA")
    source = secret_source(old_cluster, other.ca)
    report = migration_report(source, target_cluster(new_cluster), timeout=5)
    assert [problem.role for problem in report.problems] == ["source"]
    message = report.problems[0].message
    assert "TLS handshake failed" in message
    assert "`ca` of mirrormaker-source-credentials" in message
    status, shown = report.summary()
    assert status == "blocked"
    assert shown.startswith(f"source cluster at {old_cluster.tls_bootstrap}: TLS handshake failed")
    assert MIGRATOR_PASSWORD not in shown
    print(f"\nwith a CA that did not sign the certificate: {status}: {shown}")
