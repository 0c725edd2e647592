# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The access report (`_access`, `migration-status format=access`).

Per source user: its ACLs and quotas, the application and client user mapped to it, and what
that client user will lack here; what the source user could not read is said.
"""

from __future__ import annotations

import json

import pytest

from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import MigrationConfig, _access
from tests.unit.migration.host import (
    HostCharm,
    billing_access,
    binding,
    fails,
    migration_status,
    running,
)

pytestmark = pytest.mark.usefixtures("clusters")
SYNC = MigrationConfig.from_options({"mirrormaker-sync-topic-acls": True})
DEFAULTS = MigrationConfig()


def billing(name: str, operation: str, resource: str = "TOPIC", **fields: str) -> mm.AclBinding:
    return binding(resource, name, operation, principal="User:billing", **fields)


# What billing had on the source: its topics by prefix, its group, its transactions.
BILLING_ACLS = [
    billing("billing.", "READ", pattern="PREFIXED"),
    billing("billing.", "WRITE", pattern="PREFIXED"),
    billing("billing", "READ", "GROUP"),
    billing("billing-tx-", "WRITE", "TRANSACTIONAL_ID", pattern="PREFIXED"),
    billing("kafka-cluster", "IDEMPOTENT_WRITE", "CLUSTER"),
]
# What kafka-k8s grants billing-app's relation (topic billing.*, producer and consumer) and map.
RELATION = (
    binding("TOPIC", "billing.", "READ", pattern="PREFIXED"),
    binding("TOPIC", "billing.", "WRITE", pattern="PREFIXED"),
    binding("TRANSACTIONAL_ID", "billing-tx-", "WRITE", pattern="PREFIXED"),
    binding("CLUSTER", "kafka-cluster", "IDEMPOTENT_WRITE"),
)


def report(acls, access=None, config=DEFAULTS, quotas=None, **kwargs):
    return _access.build_access_report(
        "old",
        acls,
        quotas or {},
        config,
        access if access is not None else billing_access(*RELATION),
        source_user="migrator",
        target_user="mirrormaker",
        topics=["billing.invoices", "orders"],
        **kwargs,
    )


def test_a_mapped_user_with_every_right_held_lacks_nothing():
    built = report(BILLING_ACLS, quotas={"User:billing": {"producer_byte_rate": 1048576.0}})

    [principal] = built.principals
    assert (principal.principal, principal.application, principal.client_user) == (
        "User:billing",
        "billing-app",
        "relation-7",
    )
    assert principal.lacks == []
    assert principal.quotas == {"producer_byte_rate": 1048576.0}
    assert built.summary() == (
        "1 source user on old, 1 mapped to a client user here; the mapped ones lack 0 rights"
    )


def test_what_the_relation_user_lacks_is_listed_exactly():
    acls = [
        *BILLING_ACLS,
        billing("audit", "READ"),
        billing("billing-audit", "READ", "GROUP"),
        billing("kafka-cluster", "CREATE", "CLUSTER"),
    ]
    [principal] = report(acls).principals
    assert principal.lacks == [
        "READ on TOPIC audit",
        "READ on GROUP billing-audit",
        "CREATE on CLUSTER kafka-cluster",
    ]


def test_before_the_mapping_every_right_is_lacking_and_the_map_is_named():
    [principal] = report(BILLING_ACLS, access=mm.ClientAccess()).principals
    assert principal.client_user is None
    assert len(principal.lacks) == len(BILLING_ACLS)
    assert principal.note == "no application is mapped to it: map one in kafka-client-identities"


def test_copies_count_as_held_with_acl_sync():
    acls = [billing("orders", "READ")]
    assert report(acls).principals[0].lacks == ["READ on TOPIC orders"]
    assert report(acls, config=SYNC).principals[0].lacks == []
    copied = [binding("TOPIC", "orders", "READ")]
    assert report(acls, copied=copied).principals[0].lacks == []


def test_wildcard_deny_and_the_migrations_own_user():
    acls = [
        binding("TOPIC", "orders", "WRITE", principal="User:*", permission="DENY"),
        binding("TOPIC", "orders", "READ", principal="User:*"),
        binding("TOPIC", "*", "READ", principal="User:migrator"),
        billing("orders", "READ", permission="DENY"),
        billing("billing.", "READ", pattern="PREFIXED"),
        binding("TOPIC", "orders", "ALL", principal="User:mirrormaker", permission="DENY"),
    ]
    by_user = {p.principal: p for p in report(acls).principals}
    assert by_user["User:*"].note == (
        "every user of the source: not copied; a client user here holds its own"
    )
    assert by_user["User:*"].lacks == ["READ on TOPIC orders"]
    assert by_user["User:migrator"].lacks == []
    assert by_user["User:billing"].lacks == []
    assert by_user["User:billing"].note == "1 DENY binding not copied: nothing is denied here"
    assert by_user["User:mirrormaker"].note == (
        "1 DENY binding only: not copied, nothing is denied here"
    )


def test_a_mapped_application_not_related_is_named():
    access = billing_access().model_copy(update={"users": ()})
    [principal] = report(BILLING_ACLS, access=access).principals
    assert principal.note == "mapped to billing-app, which is not related: relate it"


# Through migration-status format=access, with the fake clusters -------------------------------


@pytest.fixture
def mapped(monkeypatch):
    monkeypatch.setattr(HostCharm, "access", billing_access(*RELATION))


def test_migration_status_format_access(ctx, clusters, mapped):
    clusters.acls["source"] = [*BILLING_ACLS, billing("audit", "READ")]
    clusters.quotas = {"User:billing": {"producer_byte_rate": 1048576.0}}

    _, results = migration_status(ctx, running(), format="access")

    [principal] = json.loads(results["principals"])
    assert principal["lacks"] == ["READ on TOPIC audit"]
    assert principal["client-user"] == "relation-7"
    assert principal["quotas"] == {"producer_byte_rate": 1048576.0}
    assert json.loads(results["unreadable"]) == []
    assert "User:billing  billing-app  relation-7" in results["table"]
    assert "User:billing lacks: READ on TOPIC audit" in results["table"]
    assert json.loads(results["client-identities"])[0]["client-user"] == "relation-7"


def test_what_the_source_user_may_not_read_is_said(ctx, clusters, mapped):
    clusters.acls["source"] = BILLING_ACLS
    clusters.unreadable["quotas"] = "cluster authorization failed"

    _, results = migration_status(ctx, running(), format="access")

    assert json.loads(results["unreadable"]) == [
        "quotas: source cluster at h:1 refused the request: cluster authorization failed; "
        "grant it DESCRIBE_CONFIGS on the cluster (Kafka 2.6 or later answers)"
    ]
    assert json.loads(results["principals"])[0]["lacks"] == []
    clusters.unreadable["acls"] = "cluster authorization failed"
    _, results = migration_status(ctx, running(), format="access")
    assert json.loads(results["principals"]) == []
    assert "could not read ACLs: source cluster at h:1 refused" in results["table"]


def test_an_unreachable_source_fails_the_access_report(ctx, clusters, mapped):
    clusters.unreachable.add("source")
    assert fails(ctx, running(), "migration-status", format="access") == (
        "source cluster at h:1 did not answer: timed out"
    )
