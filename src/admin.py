# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Admin operations on the local cluster: SCRAM users and ACLs, with kafka-python.

`KafkaAdmin` applies users and `Acl` bindings to a running cluster with bounded timeouts; which
ACLs a relation user gets is decided by the `kafka-client` relation (`client_provider`).
kafka-python is the charm's one Kafka client library, as it is the migration library's: the
client comes from the library, which also keeps kafka-python's DEBUG records, which carry the
SASL password and every request, out of the logs.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from kafka import errors as kafka_errors

# pyright's bundled stubs describe kafka-python 2.3, which had no SCRAM credential API.
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,  # pyright: ignore[reportAttributeAccessIssue]
    UserScramCredentialDeletion,  # pyright: ignore[reportAttributeAccessIssue]
    UserScramCredentialUpsertion,  # pyright: ignore[reportAttributeAccessIssue]
)
from kafka.protocol.admin.client_quotas import (
    AlterClientQuotasRequest,
    DescribeClientQuotasRequest,
)
from kafka.protocol.admin.cluster import DescribeLogDirsRequest
from kafka.protocol.admin.configs import DescribeConfigsRequest, IncrementalAlterConfigsRequest

from charms.kafka_k8s.v0.mirrormaker import admin_client

logger = logging.getLogger(__name__)

# Kafka's resource type of a broker config, and the SET operation of IncrementalAlterConfigs.
_BROKER_RESOURCE = 4
_SET = 0
# DescribeClientQuotas: match the entity's name exactly.
_MATCH_EXACT = 0
PRODUCER_BYTE_RATE = "producer_byte_rate"

SCRAM_ITERATIONS = 8192

_T = TypeVar("_T")


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
    """One ACL binding, in Kafka's terms; ALLOW unless it says DENY."""

    resource: Literal["TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID"]
    name: str
    pattern: Literal["LITERAL", "PREFIXED"]
    operation: Operation
    permission: Literal["ALLOW", "DENY"] = "ALLOW"


def _binding(username: str, acl: Acl) -> ACL:
    return ACL(
        principal=f"User:{username}",
        host="*",
        operation=ACLOperation[acl.operation],
        permission_type=ACLPermissionType[acl.permission],
        resource_pattern=ResourcePattern(
            ResourceType[acl.resource], acl.name, ACLResourcePatternType[acl.pattern]
        ),
    )


def _acl(binding: Any) -> Acl:
    """kafka-python's ACL in this module's terms: Kafka's names are the same."""
    pattern = binding.resource_pattern
    return Acl(
        resource=pattern.resource_type.name,
        name=pattern.resource_name,
        pattern=pattern.pattern_type.name,
        operation=binding.operation.name,
        permission=binding.permission_type.name,
    )


class KafkaAdmin:
    """A SCRAM-authenticated admin client of the local cluster.

    It connects at its first request (within the timeout) and keeps its connection until
    `close()`, or the end of its `with` block. Each request is bounded by the timeout.
    """

    def __init__(self, bootstrap: str, username: str, password: str, *, timeout: float = 15.0):
        self.timeout = timeout
        self._config: dict[str, Any] = {
            "bootstrap_servers": bootstrap.split(","),
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": username,
            "sasl_plain_password": password,
            "request_timeout_ms": int(timeout * 1000),
            "bootstrap_timeout_ms": int(timeout * 1000),
            "client_id": "kafka-k8s-admin",
        }
        self._client: KafkaAdminClient | None = None

    def __enter__(self) -> KafkaAdmin:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; a later request connects again."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _request(self, what: str, request: Callable[[Any], _T]) -> _T:
        """The answer to one request, connecting first if needed.

        Raises:
            AdminError: naming `what`, if the cluster refuses or does not answer.
        """
        try:
            if self._client is None:
                self._client = admin_client(**self._config)
            return request(self._client)
        except (kafka_errors.KafkaError, OSError) as error:
            raise AdminError(f"{what}: {error}") from None

    def upsert_user(self, username: str, password: str) -> None:
        """Create a SCRAM-SHA-512 user, or set its password."""
        upsert = UserScramCredentialUpsertion(
            username, ScramMechanism.SCRAM_SHA_512, password, iterations=SCRAM_ITERATIONS
        )
        what = f"setting the credentials of {username}"
        errors = self._request(what, lambda admin: admin.alter_user_scram_credentials([upsert]))
        if errors.get(username):
            raise AdminError(f"{what}: {errors[username]}")

    def list_users(self) -> set[str]:
        """The names of every SCRAM user."""
        described = self._request(
            "listing users", lambda admin: admin.describe_user_scram_credentials()
        )
        return set(described)

    def retire_user(self, username: str) -> None:
        """Take every right and the password from a user, leaving its SCRAM credential record.

        Its ACLs are removed and its credential is overwritten with a random password that is
        never stored, so nobody can log in as it. The credential is not deleted: on Kafka 3.9
        in KRaft mode, after a SCRAM credential was deleted, a restarted broker refused every
        SCRAM login, the internal users' included (measured on the local tier, see README,
        "The broker").
        """
        self.revoke_all(username)
        self.upsert_user(username, secrets.token_urlsafe(32))

    def delete_user(self, username: str) -> None:
        """Remove a SCRAM user and every ACL naming it; nothing happens when it is gone."""
        self.revoke_all(username)
        if username not in self.list_users():
            return
        deletion = UserScramCredentialDeletion(username, ScramMechanism.SCRAM_SHA_512)
        what = f"deleting user {username}"
        errors = self._request(what, lambda admin: admin.alter_user_scram_credentials([deletion]))
        if errors.get(username):
            raise AdminError(f"{what}: {errors[username]}")

    def acls_of(self, username: str) -> set[Acl]:
        """The ACLs bound to a user, ALLOW and DENY."""
        bindings, _ = self._request(
            f"describing the ACLs of {username}",
            lambda admin: admin.describe_acls(self._filter(username)),
        )
        return {_acl(binding) for binding in bindings}

    def grant(self, username: str, acls: Iterable[Acl]) -> None:
        """Make a user's ACLs exactly these: add what is missing, remove what is not wanted."""
        wanted = set(acls)
        current = self.acls_of(username)
        missing = [_binding(username, acl) for acl in wanted - current]
        extra = [_binding(username, acl) for acl in current - wanted]
        if missing:
            what = f"granting ACLs to {username}"
            created = self._request(what, lambda admin: admin.create_acls(missing))
            if created["failed"]:
                raise AdminError(f"{what}: {created['failed'][0].__name__}")
        if extra:
            self._delete(extra, f"revoking ACLs of {username}")

    def revoke_all(self, username: str) -> None:
        """Remove every ACL naming a user."""
        self._delete([self._filter(username)], f"revoking the ACLs of {username}")

    def _delete(self, filters: Sequence[ACLFilter], what: str) -> None:
        results = self._request(what, lambda admin: admin.delete_acls(filters))
        for _, _, error in results:
            if error is not kafka_errors.NoError:
                raise AdminError(f"{what}: {error.__name__}")

    def can_log_in(self) -> bool:
        """Whether the cluster accepts this client's credentials (and answers at all).

        Asks for metadata of no topic, which any user that logs in may do: a user without
        rights on the cluster (`mirrormaker`) logs in too.
        """
        try:
            self._request("logging in", lambda admin: admin.describe_topics([]))
        except AdminError:
            return False
        return True

    def cluster_health(self) -> ClusterHealth:
        """The brokers the cluster serves with, and its under-replicated partitions."""
        cluster = self._request("reading the brokers", lambda admin: admin.describe_cluster())
        topics = self._request("reading the topics", lambda admin: admin.describe_topics())
        lagging = sorted(
            f"{topic['name']}-{partition['partition_index']}"
            for topic in topics
            for partition in topic["partitions"]
            if set(partition["replica_nodes"]) - set(partition["isr_nodes"])
        )
        brokers = frozenset(
            broker["broker_id"] for broker in cluster["brokers"] if not broker.get("is_fenced")
        )
        return ClusterHealth(brokers=brokers, under_replicated=tuple(lagging))

    def _send(self, request: Any) -> Any:
        """Send one request kafka-python's admin client has no method for, and get its answer.

        The cluster-wide broker defaults (resource name ""): kafka-python's `describe_configs`
        and `alter_configs` want a broker id for a broker resource. Client quotas: kafka-python
        3.0 has their messages but no method. The request goes out through kafka-python's
        connection manager, as its own methods send theirs.
        """

        def send(admin: KafkaAdminClient) -> Any:
            manager = cast(Any, admin)._manager  # see the docstring

            async def call() -> Any:
                return await manager.send(request)

            return manager.run(call)

        return self._request(type(request).__name__, send)

    def cluster_configs(self, names: Iterable[str]) -> dict[str, str]:
        """The cluster-wide dynamic broker defaults among `names` that are set."""
        resource = DescribeConfigsRequest.DescribeConfigsResource(
            resource_type=_BROKER_RESOURCE, resource_name="", configuration_keys=sorted(set(names))
        )
        request = DescribeConfigsRequest(resources=[resource], include_synonyms=False)
        response = self._send(request)
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
        response = self._send(request)
        for result in response.responses:
            if result.error_code:
                problem = result.error_message or result.error_code
                raise AdminError(f"setting {', '.join(sorted(configs))}: {problem}")

    def log_dir_bytes(self, brokers: Iterable[int]) -> dict[int, int]:
        """The size of each broker's log directories' volumes in bytes (KIP-827), by broker id.

        Each broker answers for its own directories; one that does not know the size (-1) is
        left out.
        """

        def ask(admin: KafkaAdminClient) -> dict[int, int]:
            manager = cast(Any, admin)._manager  # see `_send`
            sizes = {}
            for broker in brokers:

                async def call(node: int = broker) -> Any:
                    return await manager.send(DescribeLogDirsRequest(topics=[]), node_id=node)

                response = manager.run(call)
                totals = [
                    result.total_bytes for result in response.results if not result.error_code
                ]
                if totals and all(total > 0 for total in totals):
                    sizes[broker] = sum(totals)
            return sizes

        return self._request("describing the log directories", ask)

    def producer_byte_rate(self, username: str) -> float | None:
        """The `producer_byte_rate` quota of a user (bytes per second per broker); None: unset."""
        component = DescribeClientQuotasRequest.ComponentData(
            entity_type="user", match_type=_MATCH_EXACT, match=username
        )
        response = self._send(DescribeClientQuotasRequest(components=[component], strict=True))
        if response.error_code:
            problem = response.error_message or response.error_code
            raise AdminError(f"describing the quotas of {username}: {problem}")
        for entry in response.entries or ():
            for value in entry.values:
                if value.key == PRODUCER_BYTE_RATE:
                    return float(value.value)
        return None

    def set_producer_byte_rate(self, username: str, rate: float | None) -> None:
        """Set a user's `producer_byte_rate` quota (bytes per second per broker), or remove it.

        Brokers apply it at once to the user's connections: no client or broker restarts.
        """
        alter = AlterClientQuotasRequest
        entry = alter.EntryData(
            entity=[alter.EntryData.EntityData(entity_type="user", entity_name=username)],
            ops=[
                alter.EntryData.OpData(
                    key=PRODUCER_BYTE_RATE, value=float(rate or 0), remove=rate is None
                )
            ],
        )
        response = self._send(alter(entries=[entry], validate_only=False))
        for result in response.entries:
            if result.error_code:
                problem = result.error_message or result.error_code
                raise AdminError(f"setting the producer quota of {username}: {problem}")

    @staticmethod
    def _filter(username: str) -> ACLFilter:
        return ACLFilter(
            principal=f"User:{username}",
            host=None,
            operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(
                ResourceType.ANY, None, ACLResourcePatternType.ANY
            ),
        )
