# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Who may do what: reserved names no `kafka-client` relation gets, and MirrorMaker's rights.

MirrorMaker keeps its connector configs, offsets and status in `mm2-*` topics on this cluster,
so no relation user may read them: a topic or prefix that names or covers a reserved name is
refused per relation, a wildcard needs a real prefix, the consumer-group prefix is always the
relation's own, and an `admin` relation user is denied the reserved names and cannot change
ACLs or users. The `mirrormaker` user is no super user: the leader grants it its ACLs.
"""

from __future__ import annotations

import json

import pytest
from ops import testing

from acls import (
    MIB,
    client_topic_problem,
    mirrormaker_acls,
    producer_rate_per_broker,
    reserved_denials,
)
from admin import Acl
from charms.kafka_k8s.v0.mirrormaker import (
    MIRRORMAKER_NAMES,
)
from tests.unit.helpers import (
    MODEL,
    cluster,
    container,
    credentials_secret,
    read,
)

RESERVED = [
    "__consumer_offsets",
    "__transaction_state",
    "mm2-configs.source.internal",
    "mm2-offsets.source.internal",
    "mm2-status.source.internal",
    "mm2-offset-syncs.source.internal",
    "source.checkpoints.internal",
    "heartbeats",
    "source.heartbeats",
    "orders.internal",
    "orders-internal",
]
REFUSED = [
    # Wildcards without a real prefix.
    ("*", "a wildcard needs a prefix of at least 3 characters"),
    ("a*", "a wildcard needs a prefix of at least 3 characters"),
    ("__*", "a wildcard needs a prefix of at least 3 characters"),
    ("ord*ers", "a wildcard needs a prefix of at least 3 characters"),
    ("or*s*", "a wildcard needs a prefix of at least 3 characters"),
    # Prefixes that cover a reserved name.
    ("mm2*", "would cover mm2-"),
    ("mm2-*", "would cover mm2-"),
    ("mm2-configs*", "would cover mm2-"),
    ("__c*", "would cover __"),
    ("hea*", "would cover heartbeats"),
    ("heartbeats*", "would cover heartbeats"),
    ("sou*", "would cover source.heartbeats"),
    ("source.*", "would cover source.heartbeats"),
    ("orders.internal*", "would cover orders.internal"),
    # Reserved names themselves.
    *((name, "is reserved") for name in RESERVED),
]
GRANTED = ["orders", "ord*", "orders-*", "heartbeat-monitor", "sources", "internal.orders"]


def client(topic: str, roles: str = "consumer", **data: str) -> testing.Relation:
    return testing.Relation(
        "kafka-client",
        remote_app_name="orders-app",
        remote_app_data={"topic": topic, "extra-user-roles": roles, **data},
    )


def serving(*relations: testing.Relation, **config: str | int | bool) -> testing.State:
    secret = credentials_secret()
    return testing.State(
        leader=True,
        model=MODEL,
        config=config,
        containers={container()},
        relations={cluster(secret), *relations},
        secrets={secret},
    )


# Topics and prefixes a relation may not get ------------------------------------------------------


@pytest.mark.parametrize(("topic", "reason"), REFUSED)
def test_reserved_or_wild_topics_are_refused_per_relation(ctx, kafka, topic, reason):
    bad, good = client(topic, "producer,consumer"), client("orders")

    out = ctx.run(ctx.on.relation_changed(bad, remote_unit=0), serving(bad, good))

    assert out.app_status.name == "blocked"
    assert out.app_status.message.startswith(f"kafka-client relation {bad.id}: topic {topic!r}")
    assert reason in out.app_status.message
    assert f"relation-{bad.id}" not in kafka.users
    assert "secret-user" not in out.get_relation(bad.id).local_app_data
    assert f"relation-{good.id}" in kafka.users


@pytest.mark.parametrize("topic", GRANTED)
def test_ordinary_topics_and_real_prefixes_are_granted(ctx, kafka, topic):
    relation = client(topic)

    out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), serving(relation))

    assert out.app_status == testing.ActiveStatus()
    names = {acl.name for acl in kafka.acls[f"relation-{relation.id}"] if acl.resource == "TOPIC"}
    assert names == {topic.removesuffix("*")}


def test_every_name_mirrormaker_uses_is_refused():
    topics = [
        *MIRRORMAKER_NAMES.topics,
        *(f"{p}x.internal" for p in MIRRORMAKER_NAMES.topic_prefixes),
    ]
    for topic in topics:
        assert client_topic_problem(topic) is not None, topic
        for length in range(3, len(topic) + 1):
            assert client_topic_problem(topic[:length] + "*") is not None, topic[:length]


# Groups: always the relation's own prefix --------------------------------------------------------


def test_the_consumer_group_prefix_is_never_the_clients_choice(ctx, kafka):
    relation = client("orders", **{"consumer-group-prefix": "source-mm2"})

    out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), serving(relation))

    own = f"relation-{relation.id}-"
    groups = {acl for acl in kafka.acls[f"relation-{relation.id}"] if acl.resource == "GROUP"}
    assert groups == {Acl(resource="GROUP", name=own, pattern="PREFIXED", operation="READ")}
    data = out.get_relation(relation.id).local_app_data
    assert out.get_secret(id=data["secret-extra"]).latest_content["consumer-group-prefix"] == own


# admin -------------------------------------------------------------------------------------------


def test_admin_reaches_every_topic_but_the_reserved_ones_and_cannot_change_acls(ctx, kafka):
    relation = client("*", "admin")

    out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), serving(relation))

    assert out.app_status == testing.ActiveStatus()
    acls = kafka.acls[f"relation-{relation.id}"]
    assert set(reserved_denials()) <= acls
    denied = {(acl.resource, acl.name) for acl in acls if acl.permission == "DENY"}
    assert ("TOPIC", "mm2-") in denied
    assert ("TOPIC", "__") in denied
    assert ("GROUP", "source-mm2") in denied
    cluster_rights = {acl.operation for acl in acls if acl.resource == "CLUSTER"}
    # CLUSTER CREATE would let it create any topic, reserved or fenced: Kafka then reads no
    # topic ACL (issue 23). Its ALL on topics creates those it may have.
    assert not cluster_rights & {"ALL", "ALTER", "ALTER_CONFIGS", "CREATE"}


# The mirrormaker user ----------------------------------------------------------------------------


def test_mirrormaker_is_no_super_user_and_the_leader_grants_its_acls(ctx, kafka):
    out = ctx.run(ctx.on.config_changed(), serving())

    assert "User:mirrormaker" not in read(ctx, out, "/etc/kafka/server.properties")
    assert kafka.acls["mirrormaker"] == set(mirrormaker_acls())
    operations = {acl.operation for acl in kafka.acls["mirrormaker"]}
    assert "ALL" not in operations
    # It deletes only its own topics (finish-migration cleanup=true), never a migrated one.
    deletable = {
        (acl.name, acl.pattern) for acl in kafka.acls["mirrormaker"] if acl.operation == "DELETE"
    }
    assert deletable == {
        ("mm2-", "PREFIXED"),
        ("heartbeats", "LITERAL"),
        ("source.heartbeats", "LITERAL"),
        ("source.checkpoints.internal", "LITERAL"),
    }
    cluster_rights = {
        acl.operation for acl in kafka.acls["mirrormaker"] if acl.resource == "CLUSTER"
    }
    assert cluster_rights == {"IDEMPOTENT_WRITE"}


def test_mirrormaker_may_not_write_a_promoted_topic():
    acls = mirrormaker_acls(promoted=["orders"])
    deny = Acl(
        resource="TOPIC", name="orders", pattern="LITERAL", operation="WRITE", permission="DENY"
    )
    assert deny in acls
    assert set(acls) - {deny} == set(mirrormaker_acls())


def test_mirrormaker_may_create_acls_only_when_it_copies_them(ctx, kafka):
    ctx.run(ctx.on.config_changed(), serving(**{"mirrormaker-sync-topic-acls": True}))
    with_sync = kafka.acls["mirrormaker"]
    ctx.run(ctx.on.config_changed(), serving())

    alter = Acl(resource="CLUSTER", name="kafka-cluster", pattern="LITERAL", operation="ALTER")
    assert alter in with_sync
    assert alter not in kafka.acls["mirrormaker"]


# The throttle: a quota on MirrorMaker's writes ---------------------------------------------------


def test_the_throttle_is_a_quota_on_mirrormakers_user_shared_by_the_brokers(ctx, kafka):
    out = ctx.run(ctx.on.config_changed(), serving(**{"mirrormaker-throttle-mb-per-second": 30}))
    brokers = len(json.loads(out.get_relations("cluster")[0].local_app_data["controller-voters"]))
    assert kafka.quotas == {"mirrormaker": 30 * MIB / brokers}
    # Applied once: an unchanged option changes nothing; 0 removes the quota.
    ctx.run(ctx.on.update_status(), serving(**{"mirrormaker-throttle-mb-per-second": 30}))
    ctx.run(ctx.on.config_changed(), serving())
    assert kafka.quota_changes == [("mirrormaker", 30 * MIB / brokers), ("mirrormaker", None)]
    assert kafka.quotas == {}


def test_an_invalid_throttle_keeps_the_quota_and_says_why(ctx, kafka):
    kafka.quotas["mirrormaker"] = 1000.0
    out = ctx.run(ctx.on.config_changed(), serving(**{"mirrormaker-throttle-mb-per-second": -5}))
    assert kafka.quota_changes == []
    assert "mirrormaker-throttle-mb-per-second" in str(out.app_status.message) + str(
        out.unit_status.message
    )


def test_the_leader_records_each_brokers_storage(ctx, kafka):
    out = ctx.run(ctx.on.config_changed(), serving())
    recorded = json.loads(out.get_relations("cluster")[0].local_app_data["storage-bytes"])
    assert recorded and set(recorded.values()) == {kafka.storage_bytes}


def test_per_broker_rate_adds_up_to_the_cap():
    assert producer_rate_per_broker(0, 3) is None
    assert producer_rate_per_broker(12, 3) == 4 * MIB
    assert producer_rate_per_broker(1, 0) == MIB
