# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The preflight's queries (`_capacity`): kafka-python's answers read into what it judges.

The admin client is a stand-in that answers as kafka-python 3.0 does; the local tier
(`tests/local/test_long_migration.py`) asks real clusters.
"""

from __future__ import annotations

from typing import Any

import pytest
from kafka import errors as kafka_errors
from kafka.protocol.broker_version_data import BROKER_API_VERSIONS

from charms.kafka_k8s.v0.mirrormaker import TargetCluster, _capacity


class Admin:
    """kafka-python's admin client, answering what a test gives it."""

    def __init__(self, **answers: Any) -> None:
        self.answers = answers
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str):
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args))
            answer = self.answers[name]
            if isinstance(answer, Exception):
                raise answer
            return answer

        return call


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch):
    def make(admin: Admin) -> _capacity.CapacityClient:
        cluster = TargetCluster(bootstrap_servers=("h:1",), username="u", password="p")
        made = _capacity.CapacityClient(cluster, "source")
        monkeypatch.setattr(made, "_client", lambda: admin)
        return made

    return make


def _config(value: str, source: str) -> dict[str, object]:
    return {"value": value, "config_source": source, "read_only": False, "is_sensitive": False}


def test_topic_details_read_limits_copied_configs_replicas_and_sizes(client):
    admin = Admin(
        describe_topics=[
            {"name": "orders", "error_code": 0, "partitions": [{"replicas": [0, 1]}] * 3},
            {"name": "audit", "error_code": 0, "partitions": [{"replicas": [0]}]},
        ],
        describe_configs={
            "topic": {
                "orders": {
                    "max.message.bytes": _config("2097152", "DYNAMIC_TOPIC_CONFIG"),
                    "cleanup.policy": _config("compact", "DYNAMIC_TOPIC_CONFIG"),
                    "retention.ms": _config("604800000", "DEFAULT_CONFIG"),
                },
                "audit": {"max.message.bytes": _config("4194304", "STATIC_BROKER_CONFIG")},
            }
        },
        describe_log_dirs=[
            {
                "broker": 0,
                "log_dirs": [
                    {
                        "topics": [
                            {"name": "orders", "partitions": [{"partition_size": 600}] * 3},
                            {"name": "audit", "partitions": [{"partition_size": 50}]},
                        ]
                    }
                ],
            },
            {
                "broker": 1,
                "log_dirs": [
                    {
                        "topics": [
                            {"name": "orders", "partitions": [{"partition_size": 600}] * 3},
                        ]
                    }
                ],
            },
        ],
    )

    details = client(admin).topic_details(["orders", "audit"])

    assert details["orders"] == _capacity.TopicDetails(
        partitions=3,
        replication_factor=2,
        record_limit=2097152,
        limit_copied=True,
        configs={"max.message.bytes": "2097152", "cleanup.policy": "compact"},
        size_bytes=1800,
    )
    # The source brokers' own limit: MirrorMaker does not copy it.
    assert (details["audit"].record_limit, details["audit"].limit_copied) == (4194304, False)


def test_without_the_right_to_describe_log_dirs_sizes_and_free_bytes_are_unknown(client):
    refused = kafka_errors.ClusterAuthorizationFailedError()
    admin = Admin(
        describe_topics=[{"name": "orders", "error_code": 0, "partitions": [{"replicas": [0]}]}],
        describe_configs={"topic": {"orders": {}}},
        describe_log_dirs=refused,
        describe_cluster={"brokers": [{"broker_id": 0}, {"broker_id": 1}]},
    )

    details = client(admin).topic_details(["orders"])

    assert details["orders"].size_bytes is None
    assert details["orders"].record_limit == _capacity.DEFAULT_MESSAGE_MAX_BYTES
    assert client(admin).storage() == (2, None)


def test_free_bytes_add_up_over_every_log_dir(client):
    admin = Admin(
        describe_cluster={"brokers": [{"broker_id": 0}, {"broker_id": 1}]},
        describe_log_dirs=[
            {"broker": 0, "log_dirs": [{"error_code": 0, "usable_bytes": 700, "topics": []}]},
            {"broker": 1, "log_dirs": [{"error_code": 0, "usable_bytes": 300, "topics": []}]},
        ],
    )

    assert client(admin).storage() == (2, 1000)


def test_a_copy_made_meanwhile_gets_its_limit_raised_instead(client):
    admin = Admin(
        create_topics=kafka_errors.TopicAlreadyExistsError(),
        alter_configs={"topic": {"payments": "OK"}},
    )

    client(admin).create_topics({"payments": (3, 3, {"max.message.bytes": "4194304"})})

    (name, (resources,)) = admin.calls[-1]
    assert name == "alter_configs"
    assert [(r.name, r.configs) for r in resources] == [
        ("payments", {"max.message.bytes": "4194304"})
    ]


@pytest.mark.parametrize("release", [(2, 8), (3, 6)])
def test_an_old_kafka_release_is_told_by_the_api_versions(client, release: tuple[int, int]):
    """Kafka 2.8 to 3.6 answer DescribeCluster in a version kafka-python cannot read."""
    admin = Admin(
        api_versions=BROKER_API_VERSIONS[release],
        describe_cluster=KeyError("endpoint_type"),
    )
    assert client(admin).kafka_version() == release
