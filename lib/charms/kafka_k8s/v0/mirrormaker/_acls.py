# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Topic ACLs: which of the source's to copy, under which names, the copy, and its record.

MirrorMaker 3.9 copies the source's literal topic ACLs as they are (`sync.topic.acls`), under the
source's principals, which name nobody on the target: its client users are the host's relation
users (`relation-<id>`). It also copies DENY bindings, which can stop MirrorMaker's own writes
(it is no super user) or every relation user's. MirrorMaker's own sync therefore stays off, and
the library copies only the ALLOW topic bindings of source users the operator mapped to a
relation user (`ClientAccess`), under that user's name; never a DENY, never `User:*`, never for
MirrorMaker's own user. What it copied is recorded in the copying unit's peer data: the host
keeps granting it to its users, `migration-status` lists it, and `finish-migration cleanup=true`
removes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, ValidationError

from . import _clients
from ._clusters import KafkaCluster
from ._connections import CLIENT_TIMEOUT
from ._identities import ClientAccess
from ._names import MIRRORMAKER_NAMES
from ._options import MigrationConfig, is_internal_topic, select
from ._peers import PeerData
from ._rights import AclBinding

COPIED_KEY = "mirrormaker-copied-acls"
REMOVED_KEY = "mirrormaker-copied-acls-removed"
# Topic names no copied ACL may reach: Kafka's and the migration's own.
_RESERVED_PREFIXES = ("__", *MIRRORMAKER_NAMES.topic_prefixes)


def _reaches_reserved(prefix: str) -> bool:
    """Whether a topic prefix names or covers a topic of Kafka's or of the migration."""
    return (
        is_internal_topic(prefix)
        or any(p.startswith(prefix) or prefix.startswith(p) for p in _RESERVED_PREFIXES)
        or any(topic.startswith(prefix) for topic in MIRRORMAKER_NAMES.topics)
    )


def _migrated(acl: AclBinding, topics: Sequence[str]) -> bool:
    """Whether a topic binding names a migrated topic, or a prefix of one, and nothing reserved.

    `topics` are the source's topics the options select.
    """
    if acl.pattern == "PREFIXED":
        return not _reaches_reserved(acl.name) and any(t.startswith(acl.name) for t in topics)
    return acl.name in topics


def acls_to_copy(
    acls: Iterable[AclBinding],
    config: MigrationConfig,
    access: ClientAccess,
    topics: Sequence[str],
    *,
    target_user: str,
) -> list[AclBinding]:
    """The source's topic ACLs to create on the target, under the mapped relation users' names.

    Of each source user mapped to a related application (`access`): its ALLOW bindings on
    migrated topics (`topics`, the selected source topics) or prefixes of them, for every host,
    renamed as the replication policy names topics; with MirrorMaker's rules (no WRITE: only
    MirrorMaker writes a copy; ALL becomes READ). Not copied: DENY bindings, `User:*`, anything
    of MirrorMaker's user here (`target_user`), anything reaching Kafka's or the migration's
    topics, and what the relation user's own rights already cover.
    """
    users = access.mapped_users()
    copied: set[AclBinding] = set()
    for acl in acls:
        user = users.get(acl.principal)
        if (
            user is None
            or acl.principal == "User:*"
            or user.username == target_user
            or (acl.resource, acl.permission, acl.host) != ("TOPIC", "ALLOW", "*")
            or acl.operation == "WRITE"
            or acl.pattern not in ("LITERAL", "PREFIXED")
            or not _migrated(acl, topics)
        ):
            continue
        binding = acl.model_copy(
            update={
                "principal": f"User:{user.username}",
                "name": config.target_topic(acl.name),
                "operation": "READ" if acl.operation == "ALL" else acl.operation,
            }
        )
        if not any(right.covers(binding) for right in user.rights):
            copied.add(binding)
    return sorted(copied, key=lambda a: (a.principal, a.name, a.pattern, a.operation))


def selected_topics(topics: Iterable[str], config: MigrationConfig) -> list[str]:
    """The source topics the options select (internal topics never are)."""
    names = [topic for topic in topics if not is_internal_topic(topic)]
    return select(names, config.topics, config.topics_exclude)


def copy_acls(
    source: KafkaCluster,
    target: KafkaCluster,
    config: MigrationConfig,
    access: ClientAccess,
    timeout: float = CLIENT_TIMEOUT,
) -> list[AclBinding]:
    """Copy the mapped source users' topic ACLs to the target (`acls_to_copy`); those copied.

    Raises:
        ClusterUnreachableError: if a cluster does not answer, or refuses (the source user may
            not describe ACLs, the target user may not create them).
    """
    if not access.mapped_users():
        return []
    with _clients.ClusterClient(source, "source", timeout) as source_client:
        topics = selected_topics(source_client.topics(), config)
        acls = acls_to_copy(
            source_client.acls(), config, access, topics, target_user=target.username or ""
        )
    with _clients.ClusterClient(target, "target", timeout) as target_client:
        target_client.create_acls(acls)
    return acls


class _Copy(BaseModel):
    """A copied binding, and the migration request it was copied under."""

    model_config = ConfigDict(frozen=True)

    acl: AclBinding
    seq: int


class AclCopies:
    """The record of the ACLs the library copied, in the peer data of the unit that copied them.

    Each copy carries the `seq` of the request it was copied under; `remove(seq)` records, in
    the acting unit's data, that every copy up to that request is removed, and each unit then
    drops those from its own record.
    """

    def __init__(self, peers: PeerData):
        self.peers = peers

    def _removed_up_to(self) -> int:
        marks = self.peers.unit_values(REMOVED_KEY).values()
        return max((int(mark) for mark in marks if mark.isdigit()), default=0)

    def _copies(self, raw: str) -> list[_Copy]:
        try:
            items = json.loads(raw)
            return [_Copy.model_validate(i) for i in items] if isinstance(items, list) else []
        except (ValueError, ValidationError):
            return []

    def _own(self) -> list[_Copy]:
        return self._copies(self.peers.unit_values(COPIED_KEY).get(self.peers.model.unit, "[]"))

    def _write(self, copies: Iterable[_Copy]) -> None:
        unique = {copy.acl: copy for copy in sorted(copies, key=lambda c: c.seq)}
        listed = sorted(unique.values(), key=lambda c: (c.acl.principal, c.acl.name, c.seq))
        self.peers.write(COPIED_KEY, json.dumps([c.model_dump(mode="json") for c in listed]))

    def listed(self) -> list[AclBinding]:
        """Every binding any unit copied and that was not removed since."""
        removed = self._removed_up_to()
        found = {
            copy.acl
            for raw in self.peers.unit_values(COPIED_KEY).values()
            for copy in self._copies(raw)
            if copy.seq > removed
        }
        return sorted(found, key=lambda a: (a.principal, a.name, a.pattern, a.operation))

    def record(self, copied: Sequence[AclBinding], seq: int) -> None:
        """Record in this unit's data that these bindings were copied under request `seq`."""
        removed = self._removed_up_to()
        kept = [copy for copy in self._own() if copy.seq > removed]
        self._write([*kept, *(_Copy(acl=acl, seq=seq) for acl in copied)])

    def prune(self) -> None:
        """Drop from this unit's record what was removed."""
        removed = self._removed_up_to()
        own = self._own()
        if any(copy.seq <= removed for copy in own):
            self._write(copy for copy in own if copy.seq > removed)

    def remove(self, seq: int) -> list[AclBinding]:
        """Record that every copy up to request `seq` is removed; the bindings it removes."""
        removed = self.listed()
        self.peers.write(REMOVED_KEY, str(max(seq, self._removed_up_to())))
        self.prune()
        return removed
