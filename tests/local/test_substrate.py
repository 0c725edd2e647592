# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The old cluster the migration guide assumes: ZooKeeper-mode Kafka 3.9 with SCRAM."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

from substrate.old_cluster import OldCluster
from substrate.processes import sasl_config

pytestmark = pytest.mark.timeout(900)


def test_old_cluster_authenticates_scram_users(old_cluster: OldCluster):
    """The admin logs in, a wrong password is refused, an added user logs in."""
    admin = AdminClient(old_cluster.admin_config())
    assert len(admin.list_topics(timeout=10).brokers) == old_cluster.size

    errors: list[KafkaError] = []
    refused_config: dict[str, Any] = {
        **sasl_config(old_cluster.bootstrap, "admin", "not-the-password"),
        "error_cb": errors.append,
        "log_level": 0,
    }
    refused = AdminClient(refused_config)
    deadline = time.monotonic() + 30
    while not errors and time.monotonic() < deadline:
        refused.poll(0.5)
    assert errors, "a wrong password was not refused"
    assert errors[0].code() == KafkaError._AUTHENTICATION, errors[0]

    old_cluster.add_scram_user("alice", "alice-password")
    alice = AdminClient(sasl_config(old_cluster.bootstrap, "alice", "alice-password"))
    assert len(alice.list_topics(timeout=10).brokers) == old_cluster.size
