# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Rights (`_rights`): which ACL binding covers another, as Kafka's authorizer decides."""

from __future__ import annotations

import pytest

from charms.kafka_k8s.v0.mirrormaker import AclBinding


def acl(text: str, **fields: str) -> AclBinding:
    """`OPERATION RESOURCE NAME`, a trailing `*` on the name for a prefix: `READ TOPIC ord*`."""
    operation, resource, name = text.split()
    prefixed = name.endswith("*") and name != "*"
    return AclBinding(
        principal="User:u",
        resource=resource,
        name=name.removesuffix("*") if prefixed else name,
        pattern="PREFIXED" if prefixed else "LITERAL",
        operation=operation,
        **fields,
    )


COVERS = [
    ("READ TOPIC orders", "READ TOPIC orders"),
    ("ALL TOPIC orders", "WRITE TOPIC orders"),
    ("READ TOPIC orders", "DESCRIBE TOPIC orders"),
    ("WRITE TOPIC orders", "DESCRIBE TOPIC orders"),
    ("ALTER_CONFIGS TOPIC orders", "DESCRIBE_CONFIGS TOPIC orders"),
    ("READ TOPIC *", "READ TOPIC orders"),
    ("READ TOPIC *", "READ TOPIC ord*"),
    ("READ TOPIC *", "READ TOPIC *"),
    ("READ TOPIC ord*", "READ TOPIC orders"),
    ("READ TOPIC ord*", "READ TOPIC orders.*"),
    ("READ GROUP billing", "READ GROUP billing"),
    ("WRITE TRANSACTIONAL_ID tx-*", "WRITE TRANSACTIONAL_ID tx-1"),
]
COVERS_NOT = [
    ("READ TOPIC orders", "WRITE TOPIC orders"),
    ("DESCRIBE TOPIC orders", "READ TOPIC orders"),
    ("READ TOPIC orders", "READ TOPIC ord*"),
    ("READ TOPIC orders.*", "READ TOPIC ord*"),
    ("READ TOPIC ord*", "READ TOPIC *"),
    ("READ TOPIC orders", "READ GROUP orders"),
    ("READ TOPIC payments", "READ TOPIC orders"),
]


@pytest.mark.parametrize(("held", "wanted"), COVERS)
def test_covers(held, wanted):
    assert acl(held).covers(acl(wanted))


@pytest.mark.parametrize(("held", "wanted"), COVERS_NOT)
def test_does_not_cover(held, wanted):
    assert not acl(held).covers(acl(wanted))


def test_a_deny_covers_nothing_and_is_not_covered():
    assert not acl("ALL TOPIC *", permission="DENY").covers(acl("READ TOPIC orders"))
    assert not acl("ALL TOPIC *").covers(acl("READ TOPIC orders", permission="DENY"))


def test_hosts():
    assert acl("READ TOPIC orders").covers(acl("READ TOPIC orders", host="10.0.0.1"))
    assert not acl("READ TOPIC orders", host="10.0.0.1").covers(acl("READ TOPIC orders"))


def test_text():
    assert acl("READ TOPIC ord*").text() == "READ on TOPIC prefix ord"
    assert acl("WRITE TOPIC *", permission="DENY").text() == "DENY WRITE on TOPIC *"
    assert acl("READ GROUP g", host="10.0.0.1").text() == "READ on GROUP g from 10.0.0.1"
