# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Applications keep their identity across the cutover: kafka-k8s's side, under ops.testing.

`kafka-client-identities` maps an application to what it was on the source: its relation user
gets READ on exactly its migrated groups and, as a producer, WRITE on its transactional ids (and
every producer may use transactional ids under its own prefix); the fence still withholds WRITE
on the migrated topics. An invalid map blocks with the option's name and the last valid one stays.
The topic ACLs the migration copied are part of the relation user's grant until the cleanup.
Each request of a relation is granted or refused on its own, and what a related application
writes never stops the others from being served.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from ops import testing

from admin import Acl
from charms.kafka_k8s.v0 import mirrormaker as mm
from identities import APPLIED_KEY
from tests.unit.helpers import serving

pytestmark = pytest.mark.usefixtures("clusters")

MAP = "billing-app: {user: billing, groups: [billing], transactional-ids: [billing-tx-*]}"


def client(app: str = "billing-app", roles: str = "producer,consumer", **data) -> testing.Relation:
    data = {"topic": "billing.*", "extra-user-roles": roles, **data}
    return testing.Relation("kafka-client", remote_app_name=app, remote_app_data=data)


def with_relations(state: testing.State, *relations: testing.Relation, **config) -> testing.State:
    return dataclasses.replace(
        state, relations={*state.relations, *relations}, config={**state.config, **config}
    )


def acls_of(kafka, relation: testing.Relation) -> set[Acl]:
    return kafka.acls.get(f"relation-{relation.id}", set())


def named(kafka, relation, resource: str) -> set[tuple[str, str, str]]:
    return {
        (acl.name, acl.pattern, acl.operation)
        for acl in acls_of(kafka, relation)
        if acl.resource == resource
    }


def test_the_mapped_application_gets_its_groups_and_transactional_ids(ctx, kafka):
    billing, other = client(), client("audit-app", roles="consumer", topic="audit")
    state = with_relations(serving(ctx)[0], billing, other, **{"kafka-client-identities": MAP})

    out = ctx.run(ctx.on.relation_changed(billing, remote_unit=0), state)

    own = f"relation-{billing.id}-"
    assert named(kafka, billing, "GROUP") == {
        (own, "PREFIXED", "READ"),
        ("billing", "LITERAL", "READ"),
    }
    assert named(kafka, billing, "TRANSACTIONAL_ID") == {
        (own, "PREFIXED", "WRITE"),
        (own, "PREFIXED", "DESCRIBE"),
        ("billing-tx-", "PREFIXED", "WRITE"),
        ("billing-tx-", "PREFIXED", "DESCRIBE"),
    }
    # Another relation gets neither; a consumer gets no transactional id at all.
    assert named(kafka, other, "GROUP") == {(f"relation-{other.id}-", "PREFIXED", "READ")}
    assert named(kafka, other, "TRANSACTIONAL_ID") == set()
    assert out.app_status == testing.ActiveStatus(
        f"identities: billing-app as billing (relation-{billing.id})"
    )


def test_a_consumer_gets_its_groups_but_no_transactional_ids(ctx, kafka):
    billing = client(roles="consumer")
    state = with_relations(serving(ctx)[0], billing, **{"kafka-client-identities": MAP})

    ctx.run(ctx.on.relation_changed(billing, remote_unit=0), state)

    assert ("billing", "LITERAL", "READ") in named(kafka, billing, "GROUP")
    assert named(kafka, billing, "TRANSACTIONAL_ID") == set()


def test_the_fence_still_withholds_writes_but_not_transactions(ctx, kafka):
    billing = client(topic="orders")
    state = with_relations(serving(ctx)[0], billing, **{"kafka-client-identities": MAP})
    related = ctx.run(ctx.on.relation_changed(billing, remote_unit=0), state)

    ctx.run(ctx.on.action("start-migration"), related)

    topic_operations = {op for _, _, op in named(kafka, billing, "TOPIC")}
    assert "WRITE" not in topic_operations
    assert ("billing-tx-", "PREFIXED", "WRITE") in named(kafka, billing, "TRANSACTIONAL_ID")
    assert ("billing", "LITERAL", "READ") in named(kafka, billing, "GROUP")


def test_an_invalid_map_blocks_naming_the_option_and_the_last_valid_one_stays(ctx, kafka):
    billing = client()
    state = with_relations(serving(ctx)[0], billing, **{"kafka-client-identities": MAP})
    mapped = ctx.run(ctx.on.relation_changed(billing, remote_unit=0), state)
    assert APPLIED_KEY in mapped.get_relations("cluster")[0].local_app_data
    granted = acls_of(kafka, billing)

    typo = dataclasses.replace(
        mapped, config={**mapped.config, "kafka-client-identities": "billing-app: {group: x}"}
    )
    out = ctx.run(ctx.on.config_changed(), typo)

    message = (
        "invalid config kafka-client-identities: billing-app: unknown key group (keys: user, "
        "groups, transactional-ids); the last valid map stays applied"
    )
    assert out.unit_status == testing.BlockedStatus(message)
    assert out.app_status == testing.BlockedStatus(message)
    assert acls_of(kafka, billing) == granted


def test_kafka_k8s_passes_its_relation_users_to_the_migration(ctx, clusters):
    billing = client()
    state = with_relations(serving(ctx)[0], billing, **{"kafka-client-identities": MAP})
    clusters.members["billing"] = 0

    ctx.run(ctx.on.action("switch-group", params={"group": "billing", "dry-run": True}), state)
    assert (ctx.action_results or {})["resumed-by"] == (
        f"kafka-client relation {billing.id} (billing-app)"
    )
    ctx.run(ctx.on.action("migration-status"), state)
    [mapped] = json.loads((ctx.action_results or {})["client-identities"])
    assert mapped["client-user"] == f"relation-{billing.id}"


def test_any_unit_names_the_relation_that_resumes_a_group(ctx, clusters):
    billing = client()
    state = with_relations(serving(ctx)[0], billing, **{"kafka-client-identities": MAP})
    clusters.members["billing"] = 0

    params = {"group": "billing", "dry-run": True}
    ctx.run(ctx.on.action("switch-group", params=params), dataclasses.replace(state, leader=False))

    assert (ctx.action_results or {})["resumed-by"] == (
        f"kafka-client relation {billing.id} (billing-app)"
    )


COPIED = {
    "acl": mm.AclBinding(
        principal="User:relation-{id}", resource="TOPIC", name="audit", operation="READ"
    ).as_json(),
    "seq": 1,
}


def test_copied_acls_stay_granted_until_the_cleanup_removes_them(ctx, kafka):
    billing = client()
    state = with_relations(serving(ctx)[0], billing, **{"kafka-client-identities": MAP})
    copy = json.loads(json.dumps(COPIED).replace("{id}", str(billing.id)))
    peers = state.get_relations("cluster")[0]
    recorded = dataclasses.replace(
        peers, peers_data={1: {"mirrormaker-copied-acls": json.dumps([copy])}, 2: {}}
    )
    state = dataclasses.replace(state, relations={*(state.relations - {peers}), recorded})
    audit = Acl(resource="TOPIC", name="audit", pattern="LITERAL", operation="READ")

    ctx.run(ctx.on.update_status(), state)
    assert audit in acls_of(kafka, billing)

    removed = dataclasses.replace(
        recorded,
        peers_data={
            1: {"mirrormaker-copied-acls": json.dumps([copy])},
            2: {"mirrormaker-copied-acls-removed": "2"},
        },
    )
    relations = {*(state.relations - {recorded}), removed}
    ctx.run(ctx.on.update_status(), dataclasses.replace(state, relations=relations))
    assert audit not in acls_of(kafka, billing)


# Each request on its own; hostile data never stops the leader ----------------------------------


def v1(*requests: object) -> dict[str, str]:
    return {"version": "v1", "requests": json.dumps(list(requests))}


def test_several_requests_of_one_relation_are_each_granted(ctx, kafka):
    """Issue 24: both were compared with one stored request ("topic changed")."""
    both = client(**v1({"resource": "audit", "salt": "s1"}, {"resource": "orders", "salt": "s2"}))
    state = with_relations(serving(ctx)[0], both)

    out = ctx.run(ctx.on.relation_changed(both, remote_unit=0), state)

    assert {name for name, _, _ in named(kafka, both, "TOPIC")} == {"audit", "orders"}
    assert out.app_status == testing.ActiveStatus()
    responses = json.loads(out.get_relation(both.id).local_app_data["requests"])
    assert sorted(r["resource"] for r in responses) == ["audit", "orders"]


def test_one_refused_request_leaves_the_others_granted(ctx, kafka):
    both = client(
        **v1(
            {"resource": "orders", "request-id": "a", "salt": "s1"},
            {"resource": "__consumer_offsets", "request-id": "b", "salt": "s2"},
        )
    )
    state = with_relations(serving(ctx)[0], both)

    out = ctx.run(ctx.on.relation_changed(both, remote_unit=0), state)

    assert {name for name, _, _ in named(kafka, both, "TOPIC")} == {"orders"}
    assert out.app_status.name == "blocked"
    assert out.app_status.message.startswith(
        f"kafka-client relation {both.id}: request b: topic '__consumer_offsets' is reserved"
    )


HOSTILE = [
    pytest.param({"topic": "orders", "consumer-group-prefix": "*"}, "malformed request", id="*"),
    pytest.param(
        {"topic": "orders", "secret-mtls": "secret:d0000000000000000000"},
        "secret-mtls names a secret kafka-k8s cannot read",
        id="secret-mtls",
    ),
    pytest.param(v1([1, 2]), "request 1: malformed request", id="a list"),
    pytest.param(v1("orders"), "request 1: malformed request", id="a string"),
    pytest.param(
        v1({"resource": "orders", "extra-user-roles": 7, "salt": "x"}),
        "malformed request (extra-user-roles",
        id="roles",
    ),
    pytest.param(v1({"resource": "orders"}), "no request-id nor salt", id="no id"),
]


@pytest.mark.parametrize(("data", "reason"), HOSTILE)
@pytest.mark.parametrize("event", ["relation_changed", "update_status"])
def test_hostile_data_is_named_and_every_other_relation_is_served(ctx, kafka, data, reason, event):
    bad = testing.Relation("kafka-client", remote_app_name="evil", remote_app_data=data)
    good = client("audit-app", roles="consumer", topic="audit")
    state = with_relations(serving(ctx)[0], bad, good)

    run = getattr(ctx.on, event)
    out = ctx.run(run(bad, remote_unit=0) if event == "relation_changed" else run(), state)

    assert out.app_status.name == "blocked"
    assert out.app_status.message.startswith(f"kafka-client relation {bad.id}: ")
    assert reason in out.app_status.message
    assert ("audit", "LITERAL", "READ") in named(kafka, good, "TOPIC")
    assert f"relation-{bad.id}" not in kafka.users


def test_a_refused_change_keeps_what_was_granted_before(ctx, kafka):
    stored = {"data": json.dumps({"resource": "orders", "extra-user-roles": "consumer"})}
    changed = testing.Relation(
        "kafka-client",
        remote_app_name="orders-app",
        remote_app_data={"topic": "payments", "extra-user-roles": "consumer"},
        local_app_data=stored,
    )
    state = with_relations(serving(ctx)[0], changed)

    out = ctx.run(ctx.on.update_status(), state)

    assert out.app_status.message.startswith(
        f"kafka-client relation {changed.id}: topic changed from 'orders' to 'payments'"
    )
    assert {name for name, _, _ in named(kafka, changed, "TOPIC")} == {"orders"}
