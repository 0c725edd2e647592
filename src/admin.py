# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Admin operations on the local cluster: SCRAM users and ACLs, with confluent-kafka.

`KafkaAdmin` applies users and `Acl` bindings to a running cluster with bounded timeouts; which
ACLs a relation user gets is decided by the `kafka-client` relation (`client_provider`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal, cast

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

logger = logging.getLogger(__name__)

SCRAM_ITERATIONS = 8192


class AdminError(Exception):
    """The cluster refused or did not answer an admin request."""


Operation = Literal[
    "ALL",
    "READ",
    "WRITE",
    "CREATE",
    "DELETE",
    "ALTER",
    "DESCRIBE",
    "DESCRIBE_CONFIGS",
    "ALTER_CONFIGS",
    "IDEMPOTENT_WRITE",
]


@dataclass(frozen=True)
class Acl:
    """One ALLOW ACL binding, in Kafka's terms."""

    resource: Literal["TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID"]
    name: str
    pattern: Literal["LITERAL", "PREFIXED"]
    operation: Operation


# librdkafka calls Kafka's CLUSTER resource type BROKER.
_RESOURCE_TYPES = {
    "TOPIC": ResourceType.TOPIC,
    "GROUP": ResourceType.GROUP,
    "CLUSTER": ResourceType.BROKER,
    "TRANSACTIONAL_ID": ResourceType.TRANSACTIONAL_ID,
}
_RESOURCE_NAMES = {kind: name for name, kind in _RESOURCE_TYPES.items()}


def _binding(username: str, acl: Acl) -> AclBinding:
    return AclBinding(
        _RESOURCE_TYPES[acl.resource],
        acl.name,
        ResourcePatternType[acl.pattern],
        f"User:{username}",
        "*",
        AclOperation[acl.operation],
        AclPermissionType.ALLOW,
    )


class KafkaAdmin:
    """A SCRAM-authenticated admin client of the local cluster."""

    def __init__(self, bootstrap: str, username: str, password: str, *, timeout: float = 15.0):
        self.timeout = timeout
        self._client = AdminClient(
            {
                "bootstrap.servers": bootstrap,
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": username,
                "sasl.password": password,
                "socket.timeout.ms": int(timeout * 1000),
            }
        )

    def _wait(self, futures: Iterable, what: str) -> None:
        try:
            for future in futures:
                future.result(timeout=self.timeout)
        except (KafkaException, TimeoutError) as error:
            raise AdminError(f"{what}: {error}") from None

    def upsert_user(self, username: str, password: str) -> None:
        """Create a SCRAM-SHA-512 user, or set its password."""
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
        upsert = UserScramCredentialUpsertion(username, info, password.encode())
        futures = self._client.alter_user_scram_credentials([upsert], request_timeout=self.timeout)
        self._wait(futures.values(), f"setting the credentials of {username}")

    def list_users(self) -> set[str]:
        """The names of every SCRAM user."""
        # Asked for no user in particular, the client answers with one future of every user.
        future = cast(
            Future, self._client.describe_user_scram_credentials(request_timeout=self.timeout)
        )
        try:
            return set(future.result(timeout=self.timeout))
        except (KafkaException, TimeoutError) as error:
            raise AdminError(f"listing users: {error}") from None

    def delete_user(self, username: str) -> None:
        """Remove a SCRAM user and every ACL naming it; nothing happens when it is gone."""
        self.revoke_all(username)
        if username not in self.list_users():
            return
        deletion = UserScramCredentialDeletion(username, ScramMechanism.SCRAM_SHA_512)
        futures = self._client.alter_user_scram_credentials(
            [deletion], request_timeout=self.timeout
        )
        self._wait(futures.values(), f"deleting user {username}")

    def acls_of(self, username: str) -> set[Acl]:
        """The ALLOW ACLs bound to a user."""
        future = self._client.describe_acls(self._filter(username), request_timeout=self.timeout)
        try:
            bindings = future.result(timeout=self.timeout)
        except (KafkaException, TimeoutError) as error:
            raise AdminError(f"describing the ACLs of {username}: {error}") from None
        return {
            Acl(
                resource=_RESOURCE_NAMES[binding.restype],  # type: ignore[arg-type]
                name=binding.name,
                pattern=binding.resource_pattern_type.name,  # type: ignore[arg-type]
                operation=binding.operation.name,  # type: ignore[arg-type]
            )
            for binding in bindings
        }

    def grant(self, username: str, acls: Iterable[Acl]) -> None:
        """Make a user's ACLs exactly these: add what is missing, remove what is not wanted."""
        wanted = set(acls)
        current = self.acls_of(username)
        missing = [_binding(username, acl) for acl in wanted - current]
        extra = [
            AclBindingFilter(
                _RESOURCE_TYPES[acl.resource],
                acl.name,
                ResourcePatternType[acl.pattern],
                f"User:{username}",
                "*",
                AclOperation[acl.operation],
                AclPermissionType.ALLOW,
            )
            for acl in current - wanted
        ]
        if missing:
            futures = self._client.create_acls(missing, request_timeout=self.timeout)
            self._wait(futures.values(), f"granting ACLs to {username}")
        if extra:
            futures = self._client.delete_acls(extra, request_timeout=self.timeout)
            self._wait(futures.values(), f"revoking ACLs of {username}")

    def revoke_all(self, username: str) -> None:
        """Remove every ACL naming a user."""
        futures = self._client.delete_acls([self._filter(username)], request_timeout=self.timeout)
        self._wait(futures.values(), f"revoking the ACLs of {username}")

    @staticmethod
    def _filter(username: str) -> AclBindingFilter:
        return AclBindingFilter(
            ResourceType.ANY,
            None,  # pyright: ignore[reportArgumentType] - None matches any name
            ResourcePatternType.ANY,
            f"User:{username}",
            None,  # pyright: ignore[reportArgumentType] - None matches any host
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
