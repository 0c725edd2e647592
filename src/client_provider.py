# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The `kafka-client` relation: one SCRAM user with ACLs per related application.

Reading and answering the relation goes through data-platform-helpers; the users and ACLs are
made by `KafkaAdmin`. `reconcile` is idempotent: it brings the cluster's relation users and the
relation responses to what the current relations ask for, and removes the users of relations
that are gone. While a migration copies into topics of this cluster, `fence` withholds the
right to write them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Literal, get_args

import ops
from data_platform_helpers.interfaces import (
    KafkaRequestModel,
    KafkaResponseModel,
    ResourceProviderEventHandler,
    SecretGroup,
)
from pydantic import BaseModel, ConfigDict, ValidationError

from admin import Acl, KafkaAdmin, Operation
from cluster import generate_password

logger = logging.getLogger(__name__)

CLIENT_RELATION = "kafka-client"
USER_PREFIX = "relation-"


Role = Literal["producer", "consumer", "admin"]


class ClientGrant(BaseModel):
    """What a `kafka-client` relation user may do."""

    model_config = ConfigDict(frozen=True)

    username: str
    topic: str
    consumer_group_prefix: str
    roles: frozenset[Role]


def parse_roles(extra_user_roles: str | None) -> frozenset[Role]:
    """Roles from the relation's `extra-user-roles`; producer and consumer when none are named.

    Raises:
        ValueError: on a role this charm does not know.
    """
    names = {role.strip().lower() for role in (extra_user_roles or "").split(",") if role.strip()}
    unknown = names - {"producer", "consumer", "admin"}
    if unknown:
        raise ValueError(f"unknown extra-user-roles {', '.join(sorted(unknown))}")
    roles: set[Role] = {role for role in ("producer", "consumer", "admin") if role in names}
    return frozenset(roles or {"producer", "consumer"})


def _topic_pattern(topic: str) -> tuple[str, Literal["LITERAL", "PREFIXED"]]:
    if topic.endswith("*"):
        return topic[:-1], "PREFIXED"
    return topic, "LITERAL"


def client_acls(grant: ClientGrant) -> list[Acl]:
    """The ACLs a client user needs for its grant.

    An `admin` gets every operation on every resource: the rights of a super-user, granted
    without restarting brokers to change `super.users`.
    """
    if "admin" in grant.roles:
        return [
            Acl(resource="CLUSTER", name="kafka-cluster", pattern="LITERAL", operation="ALL"),
            Acl(resource="TOPIC", name="*", pattern="LITERAL", operation="ALL"),
            Acl(resource="GROUP", name="*", pattern="LITERAL", operation="ALL"),
            Acl(resource="TRANSACTIONAL_ID", name="*", pattern="LITERAL", operation="ALL"),
        ]
    topic, pattern = _topic_pattern(grant.topic)
    acls = [Acl(resource="TOPIC", name=topic, pattern=pattern, operation="DESCRIBE")]
    if "producer" in grant.roles:
        acls += [
            Acl(resource="TOPIC", name=topic, pattern=pattern, operation="WRITE"),
            Acl(resource="TOPIC", name=topic, pattern=pattern, operation="CREATE"),
            Acl(
                resource="CLUSTER",
                name="kafka-cluster",
                pattern="LITERAL",
                operation="IDEMPOTENT_WRITE",
            ),
        ]
    if "consumer" in grant.roles:
        acls += [
            Acl(resource="TOPIC", name=topic, pattern=pattern, operation="READ"),
            Acl(
                resource="GROUP",
                name=grant.consumer_group_prefix,
                pattern="PREFIXED",
                operation="READ",
            ),
        ]
    return acls


# What a topic's ALL covers, but WRITE.
_TOPIC_OPERATIONS: tuple[Operation, ...] = tuple(
    operation
    for operation in get_args(Operation)
    if operation not in ("ALL", "WRITE", "IDEMPOTENT_WRITE")
)


def _covers(acl: Acl, topic: str) -> bool:
    """Whether a TOPIC ACL applies to `topic`."""
    if acl.pattern == "PREFIXED":
        return topic.startswith(acl.name)
    return acl.name in ("*", topic)


def fence(acls: list[Acl], fenced: Collection[str]) -> list[Acl]:
    """The ACLs without the right to write a fenced topic: a migration is copying into it.

    ALLOW ACLs cannot carve a topic out of a prefix or of `*`, so a WRITE that covers a fenced
    topic is withheld whole, and an ALL on topics becomes every topic operation but WRITE.
    CREATE is withheld on a fenced topic named alone (creating it before MirrorMaker does
    would give it other partitions). Reading stays allowed.
    """
    if not fenced:
        return acls
    kept: list[Acl] = []
    for acl in acls:
        covered = acl.resource == "TOPIC" and any(_covers(acl, topic) for topic in fenced)
        if not covered or acl.operation not in ("WRITE", "CREATE", "ALL"):
            kept.append(acl)
        elif acl.operation == "ALL":
            kept += [
                Acl(resource="TOPIC", name=acl.name, pattern=acl.pattern, operation=operation)
                for operation in _TOPIC_OPERATIONS
            ]
        elif acl.operation == "CREATE" and (acl.pattern == "PREFIXED" or acl.name == "*"):
            kept.append(acl)
    return kept


def relation_user(relation_id: int) -> str:
    """The SCRAM user of a `kafka-client` relation."""
    return f"{USER_PREFIX}{relation_id}"


class ClientRequestError(Exception):
    """A related application asked for something this charm cannot grant."""


class KafkaClients:
    """The provider side of `kafka-client`.

    `fenced` names the topics no client may write now (a migration copies into them).
    """

    def __init__(self, charm: ops.CharmBase, fenced: Callable[[], Collection[str]] = frozenset):
        self.charm = charm
        self.fenced = fenced
        self.handler = ResourceProviderEventHandler(charm, CLIENT_RELATION, KafkaRequestModel)

    @property
    def relations(self) -> list[ops.Relation]:
        """The live `kafka-client` relations."""
        return list(self.charm.model.relations[CLIENT_RELATION])

    def _requests(self, relation: ops.Relation) -> list[KafkaRequestModel]:
        """The requests of a relation.

        Raises:
            ClientRequestError: if the relation data cannot be read as requests.
        """
        try:
            requests = self.handler.requests(relation)
        except ValidationError:
            raise ClientRequestError("malformed request") from None
        return [
            request
            if isinstance(request, KafkaRequestModel)
            else KafkaRequestModel.model_validate(request.model_dump())
            for request in requests
        ]

    @property
    def errors(self) -> dict[int, str]:
        """Why a relation's request cannot be granted, by relation id; no cluster needed.

        Computed from the relation data on every call, so collect-status reports it on any
        event, not only after a reconcile.
        """
        errors: dict[int, str] = {}
        for relation in self.relations:
            try:
                for request in self._requests(relation):
                    self.grant_of(relation, request)
            except ClientRequestError as error:
                errors[relation.id] = str(error)
        return errors

    def grant_of(self, relation: ops.Relation, request: KafkaRequestModel) -> ClientGrant:
        """What the related application may do.

        Raises:
            ClientRequestError: if the request cannot be granted.
        """
        if not request.resource:
            raise ClientRequestError("no topic requested")
        try:
            roles = parse_roles(request.extra_user_roles)
        except ValueError as error:
            raise ClientRequestError(str(error)) from None
        username = relation_user(relation.id)
        return ClientGrant(
            username=username,
            topic=request.resource,
            consumer_group_prefix=request.consumer_group_prefix or f"{username}-",
            roles=roles,
        )

    @staticmethod
    def _is_v0(relation: ops.Relation) -> bool:
        return relation.app is None or relation.data[relation.app].get("version", "v0") == "v0"

    def _password(self, relation: ops.Relation) -> str:
        """The password already handed to this relation, or a new one.

        A v0 response is read under the label `set_response` writes it with: reading it through
        `handler.responses()` would relabel its secret (that label hashes a random salt), so the
        next `set_response` would not find it and would add new secrets on every reconcile.
        """
        if self._is_v0(relation):
            repository = self.handler.interface.repository(relation.id)
            secret = repository.get_secret(SecretGroup("user"), secret_uri=None)
            password = secret.get_content().get("password") if secret else None
            return password or generate_password()
        for response in self.handler.responses(relation, KafkaResponseModel):
            if response.password:
                return response.password
        return generate_password()

    def _secret_uris(self, relation: ops.Relation) -> dict[str, str]:
        """The secret URIs of a v0 response already written, to write back unchanged.

        `set_response` finds a v0 secret by its label, which gives no URI; without these it
        would drop the `secret-*` keys from the databag.
        """
        if not self._is_v0(relation):
            return {}
        data = relation.data[self.charm.app]
        keys = ("secret-user", "secret-tls", "secret-extra")
        return {key.replace("-", "_"): data[key] for key in keys if data.get(key)}

    def reconcile(self, admin: KafkaAdmin, endpoints: str) -> None:
        """On the leader: make relation users, ACLs and responses match the relations.

        Args:
            admin: an admin client of the running cluster.
            endpoints: the comma-separated client endpoints to hand out.
        """
        wanted: set[str] = set()
        fenced = self.fenced()
        for relation in self.relations:
            try:
                requests = self._requests(relation)
            except ClientRequestError:
                continue  # reported by `errors`
            for request in requests:
                try:
                    grant = self.grant_of(relation, request)
                except ClientRequestError:
                    continue  # reported by `errors`
                wanted.add(grant.username)
                password = self._password(relation)
                if grant.username not in admin.list_users():
                    admin.upsert_user(grant.username, password)
                admin.grant(grant.username, fence(client_acls(grant), fenced))
                response = KafkaResponseModel(
                    salt=request.salt,
                    request_id=request.request_id,
                    resource=request.resource,
                    username=grant.username,
                    password=password,
                    endpoints=endpoints,
                    consumer_group_prefix=grant.consumer_group_prefix,
                    tls=False,
                    **self._secret_uris(relation),
                )
                self.handler.set_response(relation.id, response)
        for user in admin.list_users():
            if user.startswith(USER_PREFIX) and user not in wanted:
                logger.info("removing %s: its relation is gone", user)
                admin.delete_user(user)
