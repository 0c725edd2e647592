# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The fence: kafka-client users may not write the topics a migration copies into.

`fence` on ACLs, then kafka-k8s under ops.testing: the relation user's ACLs as the migration
starts, stops and finishes, with `FakeKafka` for the cluster and `FakeClusters` for the
migration library's queries.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import pytest
from ops import testing

from acls import reserved_denials
from admin import Acl
from charms.kafka_k8s.v0.mirrormaker import FencedTopics, TopicSelection
from client_provider import ClientGrant, client_acls, fence
from tests.unit.helpers import copied_back, failback_request, promoted_request, serving

pytestmark = pytest.mark.usefixtures("clusters")

topic = partial(Acl, resource="TOPIC", pattern="LITERAL")
prefixed = partial(Acl, resource="TOPIC", pattern="PREFIXED")
IDEMPOTENT = Acl(
    resource="CLUSTER", name="kafka-cluster", pattern="LITERAL", operation="IDEMPOTENT_WRITE"
)
# A producer's transactional ids: the fence leaves them (it withholds writes to topics).
TRANSACTIONS = {
    Acl(resource="TRANSACTIONAL_ID", name="relation-9-", pattern="PREFIXED", operation=operation)
    for operation in ("WRITE", "DESCRIBE")
}


def write_ops(acls) -> set[str]:
    """What the ACLs allow doing to topics that a fence withholds."""
    return {
        a.operation
        for a in acls
        if a.resource == "TOPIC" and a.permission == "ALLOW" and a.operation in WRITES
    }


def grant(name: str, *roles: str) -> ClientGrant:
    return ClientGrant(
        username="relation-9",
        topic=name,
        consumer_group_prefix="relation-9-",
        roles=frozenset(roles or ("producer", "consumer")),  # type: ignore[arg-type]
    )


# fence on ACLs ----------------------------------------------------------------------------------

ORDERS = FencedTopics(names=frozenset({"orders", "payments"}))
# MirrorMaker copies every topic (the default): any name may become a copy.
EVERYTHING = FencedTopics(
    names=frozenset({"orders"}), selections=(TopicSelection(include=(".*",)),)
)
ORDERS_DOT = TopicSelection(include=(r"orders\..*", "payments"))
WRITES = {"WRITE", "CREATE", "DELETE", "ALTER", "ALTER_CONFIGS"}


def denied(acls, name: str) -> set[str]:
    return {a.operation for a in acls if a.permission == "DENY" and a.name == name}


def test_nothing_is_withheld_without_a_fence():
    acls = client_acls(grant("orders"))
    assert fence(acls, FencedTopics()) == acls


def test_write_and_create_of_a_fenced_topic_are_withheld_read_stays():
    fenced = set(fence(client_acls(grant("orders")), ORDERS))
    assert fenced == {
        topic(name="orders", operation="DESCRIBE"),
        topic(name="orders", operation="READ"),
        IDEMPOTENT,
        *TRANSACTIONS,
        Acl(resource="GROUP", name="relation-9-", pattern="PREFIXED", operation="READ"),
    }


def test_a_topic_not_fenced_keeps_its_rights():
    acls = client_acls(grant("audit"))
    assert fence(acls, ORDERS) == acls


def test_a_topic_the_selection_will_copy_is_fenced_before_it_exists():
    """Issue 23: the fence covered only topics a unit had seen, one or two refreshes late."""
    fenced = FencedTopics(selections=(ORDERS_DOT,))
    assert write_ops(fence(client_acls(grant("orders.refunds")), fenced)) == set()
    assert write_ops(fence(client_acls(grant("audit")), fenced)) == {"WRITE", "CREATE"}
    # Everything is copied by default: a topic not on the source yet may be created there.
    assert write_ops(fence(client_acls(grant("refunds")), EVERYTHING)) == set()


def test_a_prefix_covering_a_fenced_topic_keeps_writing_the_others_but_not_it():
    """Issue 23: `pay*` kept CREATE on `payments` while it was fenced."""
    acls = fence(client_acls(grant("pay*", "producer")), ORDERS)
    assert prefixed(name="pay", operation="CREATE") in acls
    assert denied(acls, "payments") == {"WRITE", "CREATE"}
    assert denied(acls, "orders") == set()
    assert fence(client_acls(grant("aud*", "producer")), ORDERS) == client_acls(
        grant("aud*", "producer")
    )


def test_a_prefix_inside_a_fenced_prefix_is_withheld_whole():
    fenced = FencedTopics(selections=(ORDERS_DOT,))
    acls = fence(client_acls(grant("orders.eu*", "producer")), fenced)
    assert write_ops(acls) == set()
    assert not [a for a in acls if a.permission == "DENY"]
    # A prefix that covers a fenced prefix denies that one only.
    wider = fence(client_acls(grant("ord*", "producer")), fenced)
    assert prefixed(name="ord", operation="WRITE") in wider
    assert (
        Acl(
            resource="TOPIC",
            name="orders.",
            pattern="PREFIXED",
            operation="WRITE",
            permission="DENY",
        )
        in wider
    )


def test_a_promoted_topic_is_written_again_also_under_a_fenced_prefix():
    fenced = FencedTopics(selections=(ORDERS_DOT,), promoted=frozenset({"orders.eu"}))
    assert write_ops(fence(client_acls(grant("orders.eu")), fenced)) == {"WRITE", "CREATE"}
    # A DENY on `orders.` would close orders.eu too: the prefix grant is withheld but there.
    acls = fence(client_acls(grant("ord*", "producer")), fenced)
    assert topic(name="orders.eu", operation="WRITE") in acls
    assert prefixed(name="ord", operation="WRITE") not in acls
    assert not [a for a in acls if a.permission == "DENY"]


def test_an_admin_may_create_and_change_what_is_not_fenced_only():
    """Issue 23: an admin kept CLUSTER CREATE (which skips topic ACLs), DELETE and ALTER."""
    acls = fence(client_acls(grant("*", "admin")), FencedTopics(selections=(ORDERS_DOT,)))
    cluster_rights = {a.operation for a in acls if a.resource == "CLUSTER"}
    assert "CREATE" not in cluster_rights
    assert topic(name="*", operation="ALL") in acls
    assert denied(acls, "orders.") == WRITES
    assert denied(acls, "payments") == WRITES
    # The DENY ACLs on the reserved names stay as they are, and so do the others.
    assert set(reserved_denials()) <= set(acls)
    others = {acl for acl in client_acls(grant("*", "admin")) if acl.resource != "TOPIC"}
    assert others <= set(acls)


def test_an_admin_while_everything_is_fenced_reads_and_writes_only_promoted_topics():
    fenced = EVERYTHING.model_copy(update={"promoted": frozenset({"clicks"})})
    acls = fence(client_acls(grant("*", "admin")), fenced)
    on_every_topic = {
        a.operation
        for a in acls
        if a.resource == "TOPIC" and a.name == "*" and a.permission == "ALLOW"
    }
    assert on_every_topic == {"READ", "DESCRIBE", "DESCRIBE_CONFIGS"}
    assert {a.operation for a in acls if a.name == "clicks"} == WRITES
    assert set(reserved_denials()) <= set(acls)


# The relation user's ACLs through the migration --------------------------------------------------


def client() -> testing.Relation:
    return testing.Relation(
        "kafka-client", remote_app_name="shop", remote_app_data={"topic": "orders"}
    )


def write_rights(kafka, relation: testing.Relation) -> set[str]:
    acls = kafka.acls[f"relation-{relation.id}"]
    return {
        acl.operation
        for acl in acls
        if acl.resource == "TOPIC" and acl.operation in ("WRITE", "CREATE")
    }


def test_the_fence_withholds_writes_from_start_to_finish(ctx, kafka, clusters):
    relation = client()
    state, _ = serving(ctx)
    state = dataclasses.replace(state, relations={*state.relations, relation})

    related = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), state)
    assert write_rights(kafka, relation) == {"WRITE", "CREATE"}

    started = ctx.run(ctx.on.action("start-migration"), related)
    assert write_rights(kafka, relation) == set()
    assert "orders" in {acl.name for acl in kafka.acls[f"relation-{relation.id}"]}  # READ

    stopped = ctx.run(ctx.on.action("stop-migration"), started)
    ctx.run(ctx.on.update_status(), stopped)
    assert write_rights(kafka, relation) == set()

    clusters.in_sync()
    restarted = ctx.run(ctx.on.action("start-migration"), stopped)
    # The peers run no MirrorMaker here: force the finish.
    ctx.run(ctx.on.action("finish-migration", params={"force": True}), restarted)
    assert (ctx.action_results or {})["fence"] == "lifted from 2 topics"
    assert write_rights(kafka, relation) == {"WRITE", "CREATE"}


def test_a_relation_joining_during_the_migration_is_fenced(ctx, kafka):
    state, _ = serving(ctx)
    started = ctx.run(ctx.on.action("start-migration"), state)
    relation = client()
    with_client = dataclasses.replace(started, relations={*started.relations, relation})

    ctx.run(ctx.on.relation_changed(relation, remote_unit=0), with_client)

    assert write_rights(kafka, relation) == set()


def test_no_fence_when_the_option_is_off(ctx, kafka):
    relation = client()
    state, _ = serving(ctx, **{"mirrormaker-fence-target": False})
    state = dataclasses.replace(state, relations={*state.relations, relation})

    ctx.run(ctx.on.action("start-migration"), state)

    assert write_rights(kafka, relation) == {"WRITE", "CREATE"}


def test_a_topic_not_on_the_source_yet_is_fenced_from_the_start(ctx, kafka):
    """Issue 23: MirrorMaker copies a new source topic at once; the fence came refreshes later."""
    relation = testing.Relation(
        "kafka-client", remote_app_name="shop", remote_app_data={"topic": "refunds"}
    )
    state, _ = serving(ctx)
    started = ctx.run(ctx.on.action("start-migration"), state)
    with_client = dataclasses.replace(started, relations={*started.relations, relation})
    ctx.run(ctx.on.relation_changed(relation, remote_unit=0), with_client)
    assert write_rights(kafka, relation) == set()


def test_a_wave_lifts_the_fence_from_its_topics_and_closes_them_to_mirrormaker(
    ctx, kafka, clusters
):
    orders, payments = (
        client(),
        testing.Relation(
            "kafka-client", remote_app_name="bank", remote_app_data={"topic": "payments"}
        ),
    )
    state, _ = serving(ctx, **{"mirrormaker-topics": "orders,payments"})
    state = dataclasses.replace(state, relations={*state.relations, orders, payments})
    started = ctx.run(ctx.on.action("start-migration"), state)
    assert write_rights(kafka, orders) == write_rights(kafka, payments) == set()
    clusters.in_sync()
    clusters.members["billing"] = 0

    # The peers run no MirrorMaker here: force the wave.
    ctx.run(ctx.on.action("finish-migration", params={"topics": "orders", "force": True}), started)

    assert (ctx.action_results or {})["wave"] == "1"
    assert write_rights(kafka, orders) == {"WRITE", "CREATE"}
    assert write_rights(kafka, payments) == set()
    deny = Acl(
        resource="TOPIC", name="orders", pattern="LITERAL", operation="WRITE", permission="DENY"
    )
    assert deny in kafka.acls["mirrormaker"]


def test_a_relation_not_served_loses_what_the_fence_withholds(ctx, kafka):
    relation = client()
    state, _ = serving(ctx)
    state = dataclasses.replace(state, relations={*state.relations, relation})
    related = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), state)
    assert write_rights(kafka, relation) == {"WRITE", "CREATE"}
    # The application changes its topic: it is not served any more, and keeps its grants...
    changed = dataclasses.replace(relation, remote_app_data={"topic": "refunds"})
    related = dataclasses.replace(related, relations={*state.relations - {relation}, changed})
    # ...but not the right to write a topic a migration copies into.
    ctx.run(ctx.on.action("start-migration"), related)
    assert write_rights(kafka, relation) == set()


def test_a_failed_back_topic_is_fenced_for_relation_producers(ctx, kafka, clusters):
    # The migration promoted orders, and a failback of it runs: producers write it here.
    relation = client()
    writer = testing.Secret(tracked_content={"username": "writer", "password": "w-pw"})
    state, _ = serving(ctx, **{"mirrormaker-failback-credentials": writer.id})
    peers = state.get_relations("cluster")[0]
    data = {
        **peers.local_unit_data,
        "mirrormaker-request": promoted_request(),
        "mirrormaker-failback": failback_request(),
    }
    state = dataclasses.replace(
        state,
        relations={*(state.relations - {peers}), dataclasses.replace(peers, local_unit_data=data)},
        secrets={*state.secrets, writer},
    )
    state = dataclasses.replace(state, relations={*state.relations, relation})
    related = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), state)
    assert write_rights(kafka, relation) == {"WRITE", "CREATE"}

    copied_back(clusters)
    # The peers publish no copy back here: force the finish.
    ctx.run(ctx.on.action("finish-failback", params={"force": True}), related)
    assert (ctx.action_results or {})["state"] == "finished"
    assert write_rights(kafka, relation) == set()
    assert "orders" in {acl.name for acl in kafka.acls[f"relation-{relation.id}"]}  # READ
