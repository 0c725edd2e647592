# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The operator's map of kafka-client applications to the identities they had on the source.

`kafka-client-identities` maps an application, by its name, to the user it was on the source
cluster, its consumer groups and its transactional ids (checked by the migration library's
`parse_client_identities`: no two applications share one, none is MirrorMaker's or under a
relation user's prefix). Its relation user gets READ on exactly those groups and, as a producer,
WRITE on those transactional ids, beside its own. The leader keeps the last valid map in the peer
application data: while the option is invalid a blocked status names it and that map stays
applied, so a typo never takes a running application's groups away.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection

import ops
from pydantic import TypeAdapter, ValidationError

from admin import Acl
from charms.kafka_k8s.v0.mirrormaker import (
    AclBinding,
    ClientIdentity,
    InvalidOptionError,
    parse_client_identities,
)

logger = logging.getLogger(__name__)

OPTION = "kafka-client-identities"
APPLIED_KEY = "kafka-client-identities-applied"
_STORED = TypeAdapter(tuple[ClientIdentity, ...])


class Identities:
    """The map as the option sets it, or, while the option is invalid, the last valid one."""

    def __init__(self, charm: ops.CharmBase, peer_relation: str = "cluster"):
        self.charm = charm
        self.peer_relation = peer_relation

    def _relation(self) -> ops.Relation | None:
        return self.charm.model.get_relation(self.peer_relation)

    def _applied(self) -> tuple[ClientIdentity, ...]:
        relation = self._relation()
        raw = relation.data[self.charm.app].get(APPLIED_KEY) if relation else None
        try:
            return _STORED.validate_json(raw) if raw else ()
        except ValidationError:
            return ()

    def current(self) -> tuple[tuple[ClientIdentity, ...], str | None]:
        """The map to apply, and why the option is not applied as set (None when it is)."""
        try:
            return parse_client_identities(self.charm.config.get(OPTION), OPTION), None
        except InvalidOptionError as error:
            return self._applied(), f"{error.message}; the last valid map stays applied"

    def keep(self) -> None:
        """On the leader: store the option's map while it is valid, for when it is not."""
        identities, problem = self.current()
        relation = self._relation()
        if problem is not None or relation is None or not self.charm.unit.is_leader():
            return
        raw = _STORED.dump_json(identities).decode() if identities else ""
        if relation.data[self.charm.app].get(APPLIED_KEY, "") != raw:
            relation.data[self.charm.app][APPLIED_KEY] = raw


def identity_acls(identity: ClientIdentity, *, producer: bool) -> list[Acl]:
    """What a relation user gets for its application's identity on the source.

    READ on each of its consumer groups, exactly (consumers resume them, and a transactional
    producer commits their offsets); as a producer, WRITE and DESCRIBE on its transactional
    ids (a final `*` makes a prefix).
    """
    acls = [
        Acl(resource="GROUP", name=group, pattern="LITERAL", operation="READ")
        for group in identity.groups
    ]
    if producer:
        acls += [
            Acl(
                resource="TRANSACTIONAL_ID",
                name=name.removesuffix("*"),
                pattern="PREFIXED" if name.endswith("*") else "LITERAL",
                operation=operation,
            )
            for name in identity.transactional_ids
            for operation in ("WRITE", "DESCRIBE")
        ]
    return acls


def as_bindings(username: str, acls: Collection[Acl]) -> tuple[AclBinding, ...]:
    """A user's ACLs as the migration library names bindings."""
    return tuple(
        sorted(
            (
                AclBinding(
                    principal=f"User:{username}",
                    resource=acl.resource,
                    name=acl.name,
                    pattern=acl.pattern,
                    operation=acl.operation,
                    permission=acl.permission,
                )
                for acl in acls
            ),
            key=lambda binding: json.dumps(binding.as_json(), sort_keys=True),
        )
    )


_GRANTABLE = TypeAdapter(Acl)


def copied_acls(username: str, copied: Collection[AclBinding]) -> list[Acl]:
    """The ACLs the migration copied for a user, as this charm grants them (for every host)."""
    acls = []
    for binding in copied:
        if binding.principal != f"User:{username}" or binding.host != "*":
            continue
        try:
            acls.append(
                _GRANTABLE.validate_python(
                    {
                        "resource": binding.resource,
                        "name": binding.name,
                        "pattern": binding.pattern,
                        "operation": binding.operation,
                        "permission": binding.permission,
                    }
                )
            )
        except ValidationError:
            logger.warning("copied ACL %s of %s not granted: unknown here", binding, username)
    return acls
