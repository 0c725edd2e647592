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
from typing import Any, Literal, cast

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
from kafka import KafkaAdminClient
from kafka import errors as kafka_errors
from kafka.protocol.admin.configs import DescribeConfigsRequest, IncrementalAlterConfigsRequest

logger = logging.getLogger(__name__)

# Kafka's resource type of a broker config, and the SET operation of IncrementalAlterConfigs.
_BROKER_RESOURCE = 4
_SET = 0

SCRAM_ITERATIONS = 8192


class AdminError(Exception):
    """The cluster refused or did not answer an admin request."""


@dataclass(frozen=True)
class ClusterHealth:
    """Which brokers serve, and which partitions lack an in-sync replica."""

    brokers: frozenset[int]
    under_replicated: tuple[str, ...]

    @property
    def in_sync(self) -> bool:
        """Whether every replica of every partition is in sync."""
        return not self.under_replicated


@dataclass(frozen=True)
class Acl:
    """One ALLOW ACL binding, in Kafka's terms."""

    resource: Literal["TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID"]
    name: str
    pattern: Literal["LITERAL", "PREFIXED"]
    operation: Literal["ALL", "READ", "WRITE", "CREATE", "DESCRIBE", "IDEMPOTENT_WRITE"]


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
        self._bootstrap = bootstrap
        self._username = username
        self._password = password
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

    def can_log_in(self) -> bool:
        """Whether the cluster accepts this client's credentials (and answers at all)."""
        try:
            self.list_users()
        except AdminError:
            return False
        return True

    def cluster_health(self) -> ClusterHealth:
        """The brokers the cluster serves with, and its under-replicated partitions."""
        try:
            metadata = self._client.list_topics(timeout=self.timeout)
        except KafkaException as error:
            raise AdminError(f"reading the cluster's metadata: {error}") from None
        lagging = sorted(
            f"{topic.topic}-{partition.id}"
            for topic in metadata.topics.values()
            for partition in topic.partitions.values()
            if set(partition.replicas) - set(partition.isrs)
        )
        return ClusterHealth(brokers=frozenset(metadata.brokers), under_replicated=tuple(lagging))

    def _default_broker_request(self, request: Any) -> Any:
        """Send one request about the cluster-wide broker defaults (resource name "").

        librdkafka refuses a broker resource without a broker id, and kafka-python's
        `describe_configs` and `alter_configs` want one too, so the request goes out through
        kafka-python's connection manager as those methods send theirs.
        """
        try:
            client = KafkaAdminClient(
                bootstrap_servers=self._bootstrap.split(","),
                security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="SCRAM-SHA-512",
                sasl_plain_username=self._username,
                sasl_plain_password=self._password,
                request_timeout_ms=int(self.timeout * 1000),
                client_id="kafka-k8s-charm",
            )
        except kafka_errors.KafkaError as error:
            raise AdminError(f"{type(request).__name__}: {error}") from None
        manager = cast(Any, client)._manager  # see the docstring

        async def send() -> Any:
            return await manager.send(request)

        try:
            return manager.run(send)
        except kafka_errors.KafkaError as error:
            raise AdminError(f"{type(request).__name__}: {error}") from None
        finally:
            client.close()

    def cluster_configs(self, names: Iterable[str]) -> dict[str, str]:
        """The cluster-wide dynamic broker defaults among `names` that are set."""
        resource = DescribeConfigsRequest.DescribeConfigsResource(
            resource_type=_BROKER_RESOURCE, resource_name="", configuration_keys=sorted(set(names))
        )
        request = DescribeConfigsRequest(resources=[resource], include_synonyms=False)
        response = self._default_broker_request(request)
        configs: dict[str, str] = {}
        for result in response.results:
            if result.error_code:
                raise AdminError(f"describing the cluster's broker defaults: {result.error_code}")
            for entry in result.configs:
                config = entry.to_dict()
                if config.get("value") is not None and not config.get("is_default", False):
                    configs[config["name"]] = str(config["value"])
        return configs

    def set_cluster_configs(self, configs: dict[str, str]) -> None:
        """Set cluster-wide dynamic broker defaults (IncrementalAlterConfigs), no restart."""
        resource_type = IncrementalAlterConfigsRequest.AlterConfigsResource
        entries = [
            resource_type.AlterableConfig(name=name, config_operation=_SET, value=value)
            for name, value in sorted(configs.items())
        ]
        resource = resource_type(resource_type=_BROKER_RESOURCE, resource_name="", configs=entries)
        request = IncrementalAlterConfigsRequest(resources=[resource], validate_only=False)
        response = self._default_broker_request(request)
        for result in response.responses:
            if result.error_code:
                problem = result.error_message or result.error_code
                raise AdminError(f"setting {', '.join(sorted(configs))}: {problem}")

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
