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

from admin import Acl
from client_provider import ClientGrant, client_acls, fence
from tests.unit.helpers import serving

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


def grant(name: str, *roles: str) -> ClientGrant:
    return ClientGrant(
        username="relation-9",
        topic=name,
        consumer_group_prefix="relation-9-",
        roles=frozenset(roles or ("producer", "consumer")),  # type: ignore[arg-type]
    )


# fence on ACLs ----------------------------------------------------------------------------------


def test_nothing_is_withheld_without_a_fence():
    acls = client_acls(grant("orders"))
    assert fence(acls, frozenset()) == acls


def test_write_and_create_of_a_fenced_topic_are_withheld_read_stays():
    fenced = set(fence(client_acls(grant("orders")), {"orders", "payments"}))
    assert fenced == {
        topic(name="orders", operation="DESCRIBE"),
        topic(name="orders", operation="READ"),
        IDEMPOTENT,
        *TRANSACTIONS,
        Acl(resource="GROUP", name="relation-9-", pattern="PREFIXED", operation="READ"),
    }


def test_a_topic_not_fenced_keeps_its_rights():
    acls = client_acls(grant("audit"))
    assert fence(acls, {"orders"}) == acls


def test_a_prefix_covering_a_fenced_topic_loses_write_keeps_create():
    fenced = set(fence(client_acls(grant("ord*", "producer")), {"orders"}))
    assert fenced == {
        prefixed(name="ord", operation="DESCRIBE"),
        prefixed(name="ord", operation="CREATE"),
        IDEMPOTENT,
        *TRANSACTIONS,
    }
    assert fence(client_acls(grant("pay*", "producer")), {"orders"}) == client_acls(
        grant("pay*", "producer")
    )


def test_an_admin_gets_every_topic_operation_but_write():
    fenced = set(fence(client_acls(grant("*", "admin")), {"orders"}))
    topic_operations = {acl.operation for acl in fenced if acl.resource == "TOPIC"}
    assert "WRITE" not in topic_operations
    assert {"READ", "CREATE", "DELETE", "ALTER", "DESCRIBE"} <= topic_operations
    assert {
        acl.name for acl in fenced if acl.resource == "TOPIC" and acl.permission == "ALLOW"
    } == {"*"}
    # The DENY ACLs on the reserved names stay as they are.
    denials = {acl for acl in client_acls(grant("*", "admin")) if acl.permission == "DENY"}
    assert denials <= fenced
    others = {acl for acl in client_acls(grant("*", "admin")) if acl.resource != "TOPIC"}
    assert others <= fenced


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
