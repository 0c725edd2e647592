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

from typing import Any

from pydantic import BaseModel, ConfigDict

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
