# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Topic ACLs: which of the source's to copy, under which names, and the copy itself.

MirrorMaker 3.9 copies the source's literal topic ACLs as they are (`sync.topic.acls`), with no
way to filter them by principal. The kafka_client interface names every relation user
`relation-<relation id>`, so the ACLs of the source's `User:relation-7` would give the target's
own, unrelated `relation-7` application the same rights. The library therefore copies the
ACLs itself, with MirrorMaker's rules, and skips those principals; MirrorMaker's own sync
stays off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from . import _clients
from ._clients import CLIENT_TIMEOUT, TopicAcl
from ._clusters import KafkaCluster
from ._options import MigrationConfig, is_internal_topic, select

# The principal of a kafka_client relation user: `relation-<id>`, or `relation-<id>-<request>`.
_RELATION_PRINCIPAL = re.compile(r"User:relation-\d+(-.+)?")


def _acls_to_copy(acls: Iterable[TopicAcl], config: MigrationConfig) -> list[TopicAcl]:
    """The source ACLs to create on the target, renamed as the replication policy names topics.

    MirrorMaker's rules (`MirrorSourceConnector.syncTopicAcls`): ACLs of migrated topics only,
    no ALLOW WRITE (only MirrorMaker writes a copy), ALLOW ALL becomes ALLOW READ. And two more:
    no ACL of a kafka_client relation user, whose name means another application on the target,
    and no ACL on the wildcard topic `*`, which on the target would cover MirrorMaker's topics.
    """
    copied = set()
    for acl in acls:
        if _RELATION_PRINCIPAL.fullmatch(acl.principal) or is_internal_topic(acl.topic):
            continue
        if acl.topic == "*":  # every topic of the source: here it would reach MirrorMaker's own
            continue
        if acl.permission == "ALLOW" and acl.operation == "WRITE":
            continue
        if not select([acl.topic], config.topics, config.topics_exclude):
            continue
        operation = (
            "READ" if (acl.permission, acl.operation) == ("ALLOW", "ALL") else acl.operation
        )
        copied.add(
            acl.model_copy(
                update={"topic": config.target_topic(acl.topic), "operation": operation}
            )
        )
    return sorted(copied, key=lambda acl: (acl.topic, acl.principal, acl.operation, acl.host))


def copy_topic_acls(
    source: KafkaCluster,
    target: KafkaCluster,
    config: MigrationConfig,
    timeout: float = CLIENT_TIMEOUT,
) -> list[TopicAcl]:
    """Copy the source's topic ACLs to the target (`_acls_to_copy`); the ACLs created.

    Raises:
        ClusterUnreachableError: if a cluster does not answer, or refuses (the source user may
            not describe ACLs, the target user may not create them).
    """
    with _clients.ClusterClient(source, "source", timeout) as source_client:
        acls = _acls_to_copy(source_client.topic_acls(), config)
    with _clients.ClusterClient(target, "target", timeout) as target_client:
        target_client.create_topic_acls(acls)
    return acls
