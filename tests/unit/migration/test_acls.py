# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Topic ACLs (`_acls`): which of the source's are copied, under which names, and by whom.

The rules are pure functions; under ops.testing in `host.HostCharm`, the leader copies them.
"""

from __future__ import annotations

import pytest

from charms.kafka_k8s.v0.mirrormaker import MigrationConfig, _acls, _clients
from tests.unit.migration.host import credentials, external, start, state

pytestmark = pytest.mark.usefixtures("clusters")


def acl(topic: str, principal: str, operation: str = "READ", permission: str = "ALLOW"):
    return _clients.TopicAcl.model_validate(
        {"topic": topic, "principal": principal, "operation": operation, "permission": permission}
    )


def test_acls_of_relation_users_are_never_copied():
    """`User:relation-7` on the source is another application than `relation-7` here."""
    source = [
        acl("orders", "User:alice"),
        acl("orders", "User:relation-7"),
        acl("orders", "User:relation-12-abc"),
        acl("orders", "User:relation-ship"),
    ]
    copied = _acls._acls_to_copy(source, MigrationConfig())
    assert {a.principal for a in copied} == {"User:alice", "User:relation-ship"}


def test_acls_are_copied_by_mirrormakers_rules():
    config = MigrationConfig.from_options(
        {"mirrormaker-topics": "orders, payments", "mirrormaker-replication-policy": "prefixed"}
    )
    source = [
        acl("orders", "User:alice", "ALL"),
        acl("orders", "User:bob", "WRITE"),
        acl("orders", "User:eve", "READ", "DENY"),
        acl("payments", "User:bob", "DESCRIBE"),
        acl("clicks", "User:alice"),
        acl("__consumer_offsets", "User:alice"),
        acl("*", "User:alice"),  # every topic there; here it would reach mm2-configs.*
    ]
    assert _acls._acls_to_copy(source, config) == [
        acl("source.orders", "User:alice", "READ"),
        acl("source.orders", "User:eve", "READ", "DENY"),
        acl("source.payments", "User:bob", "DESCRIBE"),
    ]


@pytest.mark.parametrize("leader", [True, False])
def test_the_leader_copies_topic_acls_but_not_those_of_relation_users(ctx, clusters, leader):
    clusters.acls["source"] = [
        _clients.TopicAcl(topic="orders", principal="User:alice", operation="READ"),
        _clients.TopicAcl(topic="orders", principal="User:relation-7", operation="READ"),
    ]
    secret = credentials()
    config = external(secret, **{"mirrormaker-sync-topic-acls": True})

    start(ctx, state(config=config, secrets=(secret,), leader=leader))

    copied = [a.principal for a in clusters.acls["target"]]
    assert copied == (["User:alice"] if leader else [])
