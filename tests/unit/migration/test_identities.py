# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Client identities (`_identities`): the operator's map, checked whole, and who resumes a group.

No two applications may share a user, a group or a transactional id, nor take a group or an id
of the migration's or one under a relation user's own prefix (`relation-`).
"""

from __future__ import annotations

import json

import pytest

from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import InvalidOptionError, parse_client_identities
from tests.unit.migration.host import BILLING, billing_access, billing_user, binding

PREFIX = "invalid config kafka-client-identities: "


def test_a_map_in_yaml_or_json():
    text = "billing-app: {user: User:billing, groups: [billing], transactional-ids: billing-tx-*}"
    assert parse_client_identities(text) == (BILLING,)
    entry = {"user": "billing", "groups": ["billing"], "transactional-ids": ["billing-tx-*"]}
    as_json = json.dumps({"billing-app": entry})
    assert parse_client_identities(as_json) == (BILLING,)
    assert parse_client_identities("") == ()
    assert parse_client_identities("  ") == ()


REFUSED = [
    ("a: [b", "is not YAML or JSON"),
    ("[a, b]", "must map application names to their user, groups and transactional-ids"),
    ("a: b", "a: give user, groups and transactional-ids"),
    ("a: {group: x}", "a: unknown key group (keys: user, groups, transactional-ids)"),
    ("a: {groups: {x: 1}}", "a: groups must be a list of names"),
    ("a: {user: '*'}", "a: user '*' must be one user of the source"),
    ("a: {groups: [bill*]}", "a: group 'bill*' must be one exact name"),
    ("a: {groups: [source-mm2]}", "a: group source-mm2 is the migration's own"),
    ("a: {groups: [kafka-k8s-migration-status]}", "group kafka-k8s-migration-status is the"),
    ("a: {groups: [relation-7-x]}", "a: group relation-7-x is under the prefix of a client"),
    ("a: {transactional-ids: [tx*]}", "a: transactional id 'tx*' must be one name, or a prefix"),
    ("a: {transactional-ids: [source-mm2-1]}", "would reach source-mm2*, which is no application"),
    ("a: {transactional-ids: [conn*]}", "would reach connect-cluster-source-mm2*"),
    ("a: {transactional-ids: [relation-7-tx]}", "would reach relation-*"),
    ("a: {user: u}\nb: {user: u}", "user u is mapped to both a and b"),
    ("a: {groups: [g]}\nb: {groups: [h, g]}", "group g is mapped to both a and b"),
    ("a: {transactional-ids: [tx-*]}\nb: {transactional-ids: [tx-b]}", "tx-* and tx-b overlap"),
    ("a: {transactional-ids: [abc-1]}\nb: {transactional-ids: [abc*]}", "abc-1 and abc* overlap"),
]


@pytest.mark.parametrize(("text", "reason"), REFUSED)
def test_a_map_that_would_share_or_reserve_is_refused_whole(text, reason):
    with pytest.raises(InvalidOptionError) as refused:
        parse_client_identities(text)
    assert refused.value.message.startswith(PREFIX)
    assert reason in refused.value.message


def test_who_resumes_a_group():
    admin = mm.ClientUser(
        username="relation-9",
        application="ops-console",
        relation="kafka-client relation 9",
        rights=(binding("GROUP", "*", "ALL", principal="User:relation-9"),),
    )
    access = mm.ClientAccess(identities=(BILLING,), users=(billing_user(), admin))

    assert access.resumed_by("billing") == (
        "kafka-client relation 7 (billing-app); kafka-client relation 9 (ops-console)"
    )
    assert billing_access().resumed_by("relation-7-reports") == (
        "kafka-client relation 7 (billing-app)"
    )
    assert billing_access().resumed_by("audit") == (
        "no client user may use group audit: map it to its application in kafka-client-identities"
    )


def test_the_map_as_results_and_status():
    shipping = mm.ClientIdentity(application="shipping", user="ship")
    access = mm.ClientAccess(identities=(BILLING, shipping), users=(billing_user(),))

    assert access.mapped_users() == {"User:billing": billing_user()}
    assert [entry["client-user"] for entry in access.as_json()] == ["relation-7", None]
    assert access.summary() == (
        "identities: billing-app as billing (relation-7), shipping as ship (not related)"
    )
    assert mm.ClientAccess().summary() == ""
