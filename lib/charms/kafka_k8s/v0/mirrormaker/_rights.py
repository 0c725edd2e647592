# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Rights on a Kafka cluster: ACL bindings in Kafka's names, and which binding covers another.

Kafka's authorizers grant an operation on a resource when an ALLOW binding of the principal
matches the resource and no DENY binding does. A binding matches by its pattern: a LITERAL name,
the LITERAL wildcard `*` (every resource of its type), or a PREFIXED name. Some operations imply
others (`AclEntry` in Kafka): READ, WRITE, DELETE and ALTER imply DESCRIBE, ALTER_CONFIGS implies
DESCRIBE_CONFIGS, and ALL implies every operation.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from kafka import errors as kafka_errors
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.protocol.admin.client_quotas import DescribeClientQuotasRequest
from pydantic import BaseModel, ConfigDict

from ._connections import QUERY_ERRORS, Connections
from ._names import RIGHTS_PROBE_GROUP
from ._text import plural

# The operations that imply each operation besides itself and ALL.
_IMPLIED_BY = {
    "DESCRIBE": ("READ", "WRITE", "DELETE", "ALTER"),
    "DESCRIBE_CONFIGS": ("ALTER_CONFIGS",),
}


class AclBinding(BaseModel):
    """One ACL binding, in Kafka's names: who may or may not do what on which resources.

    `resource` is Kafka's resource type (`TOPIC`, `GROUP`, `CLUSTER`, `TRANSACTIONAL_ID`, ...),
    `pattern` `LITERAL` (a name, or `*` for every resource of the type) or `PREFIXED`.
    """

    model_config = ConfigDict(frozen=True)

    principal: str
    resource: str
    name: str
    pattern: str = "LITERAL"
    operation: str
    permission: str = "ALLOW"
    host: str = "*"

    def __hash__(self) -> int:
        return hash(tuple(self.model_dump().values()))

    def covers(self, wanted: AclBinding) -> bool:
        """Whether this ALLOW binding grants all that the ALLOW binding `wanted` grants.

        The principals are not compared: the question is whether one user's right gives what
        another user had.
        """
        if "DENY" in (self.permission, wanted.permission) or self.resource != wanted.resource:
            return False
        if self.host not in ("*", wanted.host):
            return False
        operation = wanted.operation
        if self.operation not in ("ALL", operation, *_IMPLIED_BY.get(operation, ())):
            return False
        if self.pattern == "LITERAL" and self.name == "*":
            return True
        if wanted.pattern == "LITERAL" and wanted.name == "*":
            return False
        if self.pattern == "PREFIXED":
            return wanted.name.startswith(self.name)
        return (wanted.pattern, wanted.name) == ("LITERAL", self.name)

    def allows(self, resource: str, name: str, operation: str) -> bool:
        """Whether this binding allows `operation` on the resource `name` of type `resource`."""
        wanted = AclBinding(principal="", resource=resource, name=name, operation=operation)
        return self.covers(wanted)

    def text(self) -> str:
        """The binding as the operator reads it: `READ on TOPIC prefix billing.`."""
        name = f"prefix {self.name}" if self.pattern == "PREFIXED" else self.name
        deny = "DENY " if self.permission == "DENY" else ""
        host = f" from {self.host}" if self.host != "*" else ""
        return f"{deny}{self.operation} on {self.resource} {name}{host}"

    def as_json(self) -> dict[str, Any]:
        """The binding as JSON-ready data."""
        return self.model_dump(mode="json")


# A filter that matches the ACLs of no real topic: describing them probes the right alone.
_ACL_PROBE = ACLFilter(
    principal=None,
    host=None,
    operation=ACLOperation.ANY,
    permission_type=ACLPermissionType.ANY,
    resource_pattern=ResourcePatternFilter(
        ResourceType.TOPIC, "__kafka-k8s-rights-probe", ACLResourcePatternType.LITERAL
    ),
)


def _kafka_acl(binding: AclBinding) -> ACL:
    """kafka-python's ACL of a binding (Kafka's names are kafka-python's enum names)."""
    return ACL(
        principal=binding.principal,
        host=binding.host,
        operation=ACLOperation[binding.operation],
        permission_type=ACLPermissionType[binding.permission],
        resource_pattern=ResourcePattern(
            ResourceType[binding.resource],
            binding.name,
            ACLResourcePatternType[binding.pattern],
        ),
    )


class RightsQueries(Connections):
    """The queries about rights: what MirrorMaker's user lacks, ACL bindings and quotas."""

    def missing_rights(
        self, topics: Collection[str], *, groups: bool = False, acls: bool = False
    ) -> list[str]:
        """The rights MirrorMaker needs on this (the source) cluster that its user lacks.

        Args:
            topics: topics whose configs MirrorMaker reads: to create their copies (it fails
                to without) and, with `sync.topic.configs`, to copy their configs.
            groups: whether to check that the user may describe every consumer group, which
                MirrorMaker needs to find the groups and translate their offsets.
            acls: whether to check that the user may describe ACLs, to copy topic ACLs.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        user = self.cluster.principal
        missing = []
        try:
            described = (
                self._answer(lambda admin: admin.describe_topics(sorted(topics))) if topics else []
            )
            blind = sorted(
                topic["name"]
                for topic in described
                if topic.get("authorized_operations") is not None
                and "DESCRIBE_CONFIGS" not in topic["authorized_operations"]
            )
            if blind:
                named = ", ".join(blind[:3]) + (", ..." if len(blind) > 3 else "")
                missing.append(
                    f"source {user} may not describe the configs of "
                    f"{plural(len(blind), 'topic')} ({named}): MirrorMaker cannot create their "
                    "copies; grant it DESCRIBE_CONFIGS on them"
                )
            if groups:
                try:
                    probe = self._answer(lambda admin: admin.describe_groups([RIGHTS_PROBE_GROUP]))
                    refused = "GroupAuthorizationFailed" in str(
                        probe.get(RIGHTS_PROBE_GROUP, {}).get("error") or ""
                    )
                except kafka_errors.GroupAuthorizationFailedError:
                    refused = True
                except (
                    kafka_errors.CoordinatorNotAvailableError,
                    kafka_errors.CoordinatorLoadInProgressError,
                    kafka_errors.NotCoordinatorError,
                ):
                    refused = False  # answered after the authorization passed: not ready yet
                if refused:
                    missing.append(
                        f"source {user} may not describe every consumer group: no group's"
                        " offsets migrate; grant it DESCRIBE on the groups"
                    )
            if acls and not self._may_describe_acls():
                missing.append(
                    f"source {user} may not describe ACLs: no topic ACL is copied; grant it"
                    " DESCRIBE on the cluster"
                )
        except QUERY_ERRORS as error:
            raise self.unreachable(error) from None
        return missing

    def _may_describe_acls(self) -> bool:
        """Whether the user may describe ACLs: asked by describing those of no real topic.

        DescribeAcls needs DESCRIBE on the cluster, the right asked, on every Kafka since 0.11.
        (The cluster's authorized operations come from DescribeCluster, which kafka-python
        reads only in the version Kafka 3.7 introduced.) A cluster without an authorizer has
        no ACL to copy.

        Raises:
            kafka.errors.KafkaError: any other error of the cluster's.
        """
        try:
            self._answer(lambda admin: admin.describe_acls(_ACL_PROBE))
        except kafka_errors.ClusterAuthorizationFailedError:
            return False
        except kafka_errors.SecurityDisabledError:
            return True
        return True

    def acls(self) -> list[AclBinding]:
        """Every ACL binding of the cluster, of every resource type and pattern.

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or the user may not
                describe ACLs.
        """
        query = ACLFilter(
            principal=None,
            host=None,
            operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(
                ResourceType.ANY, None, ACLResourcePatternType.ANY
            ),
        )
        found, _ = self._ask(lambda admin: admin.describe_acls(query))
        return [
            AclBinding(
                principal=acl.principal,
                resource=acl.resource_pattern.resource_type.name,
                name=acl.resource_pattern.resource_name,
                pattern=acl.resource_pattern.pattern_type.name,
                operation=acl.operation.name,
                permission=acl.permission_type.name,
                host=acl.host,
            )
            for acl in found
        ]

    def create_acls(self, bindings: Sequence[AclBinding]) -> None:
        """Create ACL bindings; creating one that exists changes nothing.

        Raises:
            ClusterUnreachableError: if the cluster does not answer or refuses one.
        """
        if not bindings:
            return
        acls = [_kafka_acl(binding) for binding in bindings]
        result = self._ask(lambda admin: admin.create_acls(acls))
        if result.get("failed"):
            raise self.unreachable(f"creating ACLs: {result['failed'][0].__name__}")

    def delete_acls(self, bindings: Sequence[AclBinding]) -> None:
        """Delete exactly these ACL bindings; deleting one that is gone changes nothing.

        Raises:
            ClusterUnreachableError: if the cluster does not answer or refuses.
        """
        if not bindings:
            return
        acls = [_kafka_acl(binding) for binding in bindings]
        for _, _, error in self._ask(lambda admin: admin.delete_acls(acls)):
            if error is not kafka_errors.NoError:
                raise self.unreachable(f"deleting ACLs: {error.__name__}")

    def client_quotas(self) -> dict[str, dict[str, float]]:
        """The quotas set for each user (`User:<name>`), by quota (with its client id, if any).

        Kafka answers DescribeClientQuotas (2.6 and later) to a user that may describe the
        cluster's configs (DESCRIBE_CONFIGS on the cluster).

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or refuses.
        """
        any_user = DescribeClientQuotasRequest.ComponentData(entity_type="user", match_type=2)
        request = DescribeClientQuotasRequest(components=[any_user], strict=False)

        def query(admin: Any) -> Any:
            manager = admin._manager  # kafka-python 3.0 has no method for this request
            response = manager.run(manager.send, request)
            if response.error_code:
                raise kafka_errors.for_code(response.error_code)(response.error_message or "")
            return response

        quotas: dict[str, dict[str, float]] = {}
        for entry in self._ask(query).entries or ():
            names = {entity.entity_type: entity.entity_name for entity in entry.entity}
            if not names.get("user"):
                continue
            client = f" (client-id {names['client-id']})" if "client-id" in names else ""
            found = quotas.setdefault(f"User:{names['user']}", {})
            found.update({f"{value.key}{client}": value.value for value in entry.values})
        return quotas
