# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Topic ACLs (`_acls`): which of the source's are copied, under which names, and their record.

Only the ALLOW topic bindings of source users the operator mapped to a client user of the host
are copied, under that user's name; never a DENY, `User:*`, an unmapped user, or MirrorMaker's.
The rules are pure functions; under ops.testing in `host.HostCharm` the leader copies, records
(`copied_acls()`, `migration-status`'s `copied-acls`) and `finish-migration cleanup=true`
removes what it copied.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import MigrationConfig, _acls
from tests.unit.migration.host import (
    HostCharm,
    billing_access,
    binding,
    credentials,
    external,
    migration_status,
    peers,
    request,
    running,
    start,
    state,
    switchable,
)

pytestmark = pytest.mark.usefixtures("clusters")
TOPICS = ["billing.invoices", "billing.refunds", "orders", "payments"]
DEFAULTS = MigrationConfig()
# What the migration copies for billing-app, whose relation user is relation-7.
COPIED = binding("TOPIC", "billing.", "READ", pattern="PREFIXED")


def source(name: str, operation: str = "READ", principal: str = "User:billing", **fields: str):
    return binding("TOPIC", name, operation, principal=principal, **fields)


def to_copy(acls, config=DEFAULTS, access=None, topics=TOPICS):
    access = access or billing_access()
    return _acls.acls_to_copy(acls, config, access, topics, target_user="mirrormaker")


def test_only_mapped_users_allow_bindings_are_copied_under_their_relation_users_name():
    acls = [
        source("billing.", pattern="PREFIXED"),
        source("orders", principal="User:alice"),  # no application is mapped to alice
        source("orders", principal="User:relation-3"),  # the source's relation 3: another app
        source("orders", principal="User:*"),  # every user of the source
        source("orders", "WRITE", principal="User:*", permission="DENY"),  # a frozen source
        source("orders", "ALL", principal="User:mirrormaker", permission="DENY"),
        source("payments", permission="DENY"),
    ]
    assert to_copy(acls) == [COPIED]


def test_mirrormakers_rules_no_write_and_all_becomes_read():
    acls = [
        source("orders", "ALL"),
        source("orders", "WRITE"),
        source("payments", "DESCRIBE_CONFIGS"),
        source("clicks"),  # not migrated
        source("__consumer_offsets"),
        source("*"),  # every topic there; here it would reach mm2-configs.*
        source("mm", pattern="PREFIXED"),  # would reach mm2-*
        source("sou", pattern="PREFIXED"),  # would reach source.checkpoints.internal
        source("pay", pattern="PREFIXED", host="10.0.0.7"),  # a host of the source's network
        source("zzz", pattern="PREFIXED"),  # no migrated topic under it
    ]
    assert to_copy(acls) == [
        binding("TOPIC", "orders", "READ"),
        binding("TOPIC", "payments", "DESCRIBE_CONFIGS"),
    ]


def test_copies_are_named_as_the_replication_policy_names_topics():
    config = MigrationConfig.from_options({"mirrormaker-replication-policy": "prefixed"})
    acls = [source("orders"), source("billing.", pattern="PREFIXED")]
    assert to_copy(acls, config) == [
        binding("TOPIC", "source.billing.", "READ", pattern="PREFIXED"),
        binding("TOPIC", "source.orders", "READ"),
    ]


def test_what_the_relation_user_holds_already_is_not_copied():
    access = billing_access(binding("TOPIC", "billing.", "ALL", pattern="PREFIXED"))
    acls = [source("billing.invoices"), source("billing.", "DESCRIBE", pattern="PREFIXED")]
    assert to_copy(acls, access=access) == []


def test_nothing_is_copied_for_mirrormakers_own_user_nor_an_application_not_related():
    mirrormaker = mm.ClientUser(
        username="mirrormaker", application="billing-app", relation="kafka-client relation 7"
    )
    access = billing_access().model_copy(update={"users": (mirrormaker,)})
    assert to_copy([source("orders")], access=access) == []
    unrelated = billing_access().model_copy(update={"users": ()})
    assert to_copy([source("orders")], access=unrelated) == []


# The leader copies, records and lists; cleanup removes ----------------------------------------


@pytest.fixture
def mapped(monkeypatch):
    monkeypatch.setattr(HostCharm, "access", billing_access())


@pytest.mark.parametrize("leader", [True, False])
def test_the_leader_copies_and_records_what_it_copied(ctx, clusters, mapped, leader):
    clusters.topics["source"]["billing.invoices"] = [10]
    clusters.acls["source"] = [
        source("billing.", pattern="PREFIXED"),
        source("orders", principal="User:alice"),
    ]
    secret = credentials()
    config = external(secret, **{"mirrormaker-sync-topic-acls": True})

    out = start(ctx, state(config=config, secrets=(secret,), leader=leader))

    assert clusters.acls["target"] == ([COPIED] if leader else [])
    recorded = out.get_relations("cluster")[0].local_unit_data.get(_acls.COPIED_KEY)
    assert (json.loads(recorded) if recorded else []) == (
        [{"acl": COPIED.as_json(), "seq": 1}] if leader else []
    )
    _, results = migration_status(ctx, out)
    assert json.loads(results["copied-acls"]) == ([COPIED.as_json()] if leader else [])
    assert json.loads(results["client-identities"]) == [
        {
            "application": "billing-app",
            "user": "billing",
            "groups": ["billing"],
            "transactional-ids": ["billing-tx-*"],
            "client-user": "relation-7",
        }
    ]


def copied_by_a_peer():
    """A running migration whose leader (a peer) recorded one copy under request 1."""
    copy = json.dumps([{"acl": COPIED.as_json(), "seq": 1}])
    active = json.dumps({"service": "active", "exactly-once": "disabled"})
    cluster = peers(
        {_acls.COPIED_KEY: copy, "mirrormaker-state": active},
        {"mirrormaker-state": active},
        local={
            "mirrormaker-request": request("running", 1),
            "mirrormaker-topics": json.dumps(["orders", "payments"]),
        },
    )
    return dataclasses.replace(running(), relations={cluster})


def test_finish_with_cleanup_removes_the_copied_acls(ctx, clusters, mapped):
    clusters.in_sync()
    switchable(clusters)
    clusters.acls["target"] = [COPIED]

    out = ctx.run(ctx.on.action("finish-migration", params={"cleanup": True}), copied_by_a_peer())

    assert (ctx.action_results or {})["copied-acls"] == "removed 1"
    assert clusters.acls["target"] == []
    _, results = migration_status(ctx, out)
    assert json.loads(results["copied-acls"]) == []


def test_a_cleanup_mirrormaker_may_not_do_leaves_the_host_to_revoke(ctx, clusters, mapped):
    clusters.in_sync()
    switchable(clusters)
    clusters.unreadable["delete_acls"] = "cluster authorization failed"

    ctx.run(ctx.on.action("finish-migration", params={"cleanup": True}), copied_by_a_peer())

    assert (ctx.action_results or {})["copied-acls"].startswith(
        "1 no longer granted; MirrorMaker's user did not delete them (target cluster at h:1 "
        "refused the request: cluster authorization failed): the host revokes them"
    )


def test_a_finish_without_cleanup_keeps_the_copies(ctx, clusters, mapped):
    clusters.in_sync()
    switchable(clusters)

    out = ctx.run(ctx.on.action("finish-migration"), copied_by_a_peer())

    assert "copied-acls" not in (ctx.action_results or {})
    assert json.loads(migration_status(ctx, out)[1]["copied-acls"]) == [COPIED.as_json()]


def test_copies_of_a_later_migration_are_listed_after_a_cleanup():
    class Peers:
        def __init__(self):
            self.data: dict[str, str] = {}
            self.model = type("Model", (), {"unit": "unit-0"})()

        def unit_values(self, key):
            return {"unit-0": self.data[key]} if key in self.data else {}

        def write(self, key, raw):
            self.data[key] = raw

    copies = _acls.AclCopies(Peers())  # type: ignore[arg-type]
    copies.record([COPIED], seq=1)
    assert copies.remove(seq=2) == [COPIED]
    assert copies.listed() == []
    again = binding("TOPIC", "orders", "READ")
    copies.record([again], seq=3)
    assert copies.listed() == [again]
