# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The `kafka-client` relation: one SCRAM user with ACLs per related application.

Reading and answering the relation goes through data-platform-helpers; the users and ACLs are
made by `KafkaAdmin`. `reconcile` is idempotent: it brings the cluster's relation users and the
relation responses to what the current relations ask for, and removes the users of relations
that are gone. Each request of a relation is granted or refused on its own, and nothing a related
application writes stops the others from being served. While a migration copies into topics of
this cluster, `fence` withholds the right to write them. An application the operator mapped to its
identity on the source (`identities`) also gets its migrated groups and transactional ids, and
the topic ACLs the migration copied for it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Literal, NamedTuple

import ops
from data_platform_helpers.interfaces import (
    KafkaRequestModel,
    KafkaResponseModel,
    ResourceProviderEventHandler,
    SecretGroup,
)
from data_platform_helpers.interfaces.utils import gen_hash, get_encoded_dict
from pydantic import BaseModel, ConfigDict, ValidationError

from acls import client_topic_problem, reserved_denials
from admin import Acl, AdminError, KafkaAdmin, Operation
from charms.kafka_k8s.v0.mirrormaker import (
    AclBinding,
    ClientAccess,
    ClientIdentity,
    ClientUser,
    FencedTopics,
)
from cluster import generate_password
from identities import Identities, as_bindings, copied_acls, identity_acls

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

    A producer may write its topic and use transactional ids under its own prefix
    (`relation-<id>-`); a consumer may read its topic and use groups under that prefix.

    An `admin` gets every operation on every topic, group and transactional id, and may
    describe the cluster, granted without restarting brokers to change `super.users`; it is
    denied everything on the reserved names (`acls`). It gets no CLUSTER CREATE: Kafka lets a
    principal with it create any topic without looking at topic ACLs, so the DENY on the
    reserved names (and on fenced topics) would not hold; its ALL on topics lets it create
    them. Nor CLUSTER ALTER, with which it could change ACLs and users (its own denials,
    MirrorMaker's password).
    """
    if "admin" in grant.roles:
        return [
            *(
                Acl(resource="CLUSTER", name="kafka-cluster", pattern="LITERAL", operation=op)
                for op in ("DESCRIBE", "DESCRIBE_CONFIGS", "IDEMPOTENT_WRITE")
            ),
            Acl(resource="TOPIC", name="*", pattern="LITERAL", operation="ALL"),
            Acl(resource="GROUP", name="*", pattern="LITERAL", operation="ALL"),
            Acl(resource="TRANSACTIONAL_ID", name="*", pattern="LITERAL", operation="ALL"),
            *reserved_denials(),
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
            # Transactions (exactly-once producers, Kafka Streams, Flink) under its own prefix.
            *(
                Acl(
                    resource="TRANSACTIONAL_ID",
                    name=f"{grant.username}-",
                    pattern="PREFIXED",
                    operation=operation,
                )
                for operation in ("WRITE", "DESCRIBE")
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


# What a fence withholds on a topic: writing it, and making, removing or changing it.
FENCED_OPERATIONS: tuple[Operation, ...] = ("WRITE", "CREATE", "DELETE", "ALTER", "ALTER_CONFIGS")
# What a topic's ALL covers besides.
_OPEN_OPERATIONS: tuple[Operation, ...] = ("READ", "DESCRIBE", "DESCRIBE_CONFIGS")


def _covers(acl: Acl, topic: str) -> bool:
    """Whether a TOPIC ACL applies to `topic`."""
    if acl.pattern == "PREFIXED":
        return topic.startswith(acl.name)
    return acl.name in ("*", topic)


_Pattern = Literal["LITERAL", "PREFIXED"]


def _fenced_within(acl: Acl, fenced: FencedTopics) -> list[tuple[_Pattern, str]] | None:
    """The fenced part of what an ALLOW TOPIC ACL covers, as (pattern, name) to deny.

    None when it cannot be denied apart: all of it is fenced (a literal fenced topic, a
    prefix inside a fenced prefix, any name when the selection has no literal beginning), or
    a fenced prefix inside it also covers a promoted topic, which a DENY would close too.
    """
    if acl.pattern == "LITERAL" and acl.name != "*":
        return None if fenced.covers(acl.name) else []
    region = "" if acl.name == "*" else acl.name
    literals, prefixes = fenced.acl_patterns()
    denials: list[tuple[_Pattern, str]] = []
    for prefix in sorted(prefixes):
        if region.startswith(prefix):
            return None
        if not prefix.startswith(region):
            continue
        if any(topic.startswith(prefix) for topic in fenced.promoted):
            return None
        denials.append(("PREFIXED", prefix))
    for name in sorted(literals):
        if name.startswith(region):
            denials.append(("LITERAL", name))
    return denials


def fence(acls: list[Acl], fenced: FencedTopics) -> list[Acl]:
    """The ACLs without the rights a fence withholds: a migration copies into those topics.

    No client may write, create, delete or alter a fenced topic (`FENCED_OPERATIONS`), nor a
    topic that MirrorMaker's topic selection would copy into once it exists. Where an ALLOW
    covers fenced topics and others (a prefix, or `*`), the fenced ones get DENY ACLs, which
    Kafka checks first; where it cannot be told apart (`_fenced_within`), the rights are
    withheld whole, but on each promoted topic it covers. Reading stays allowed.
    """
    if fenced.empty:
        return acls
    kept: list[Acl] = []
    for acl in acls:
        if (
            acl.resource != "TOPIC"
            or acl.permission == "DENY"
            or acl.operation not in (*FENCED_OPERATIONS, "ALL")
        ):
            kept.append(acl)
            continue
        operations = FENCED_OPERATIONS if acl.operation == "ALL" else (acl.operation,)
        denials = _fenced_within(acl, fenced)
        if denials is None:
            if acl.operation == "ALL":
                kept += [dataclasses.replace(acl, operation=op) for op in _OPEN_OPERATIONS]
            kept += [
                Acl(resource="TOPIC", name=topic, pattern="LITERAL", operation=op)
                for topic in sorted(fenced.promoted)
                if _covers(acl, topic)
                for op in operations
            ]
            continue
        kept.append(acl)
        kept += [
            Acl(resource="TOPIC", name=name, pattern=pattern, operation=op, permission="DENY")
            for pattern, name in denials
            for op in operations
        ]
    return list(dict.fromkeys(kept))


def user_acls(
    grants: Sequence[ClientGrant],
    identity: ClientIdentity | None = None,
    copied: Collection[AclBinding] = (),
    fenced: FencedTopics | None = None,
) -> list[Acl]:
    """Everything a relation user may do, without what the fence withholds (`fence`).

    Each of its granted requests' ACLs (`client_acls`), its application's migrated groups and
    transactional ids (`identity`), and the topic ACLs the migration copied for it (`copied`).
    """
    if not grants:
        return []
    acls = [acl for grant in grants for acl in client_acls(grant)]
    if identity is not None:
        producer = any("producer" in grant.roles for grant in grants)
        acls += identity_acls(identity, producer=producer)
    acls += copied_acls(grants[0].username, copied)
    return fence(list(dict.fromkeys(acls)), fenced or FencedTopics())


def relation_user(relation_id: int) -> str:
    """The SCRAM user of a `kafka-client` relation."""
    return f"{USER_PREFIX}{relation_id}"


def library_user(
    relation_id: int,
    application: str,
    grants: Sequence[ClientGrant],
    identity: ClientIdentity | None = None,
) -> ClientUser:
    """A relation user as the migration library knows it: its rights once no fence holds."""
    username = relation_user(relation_id)
    allowed = [acl for acl in user_acls(grants, identity) if acl.permission == "ALLOW"]
    return ClientUser(
        username=username,
        application=application,
        relation=f"{CLIENT_RELATION} relation {relation_id}",
        rights=as_bindings(username, allowed),
    )


class ClientRequestError(Exception):
    """A related application asked for something this charm cannot grant."""


class EndpointsUnavailableError(Exception):
    """The endpoints a relation asks for are not there (yet); the message says why."""


class ClientEndpoints(BaseModel):
    """What a client is told to connect to: inside Kubernetes, or from outside, and with what CA.

    `external` is empty while the brokers have no external address; `external_unavailable`
    says why.
    """

    model_config = ConfigDict(frozen=True)

    internal: str
    external: str = ""
    external_unavailable: str = "expose-external is false: set it to nodeport or loadbalancer"
    tls_ca: str | None = None

    @property
    def tls(self) -> bool:
        """Whether the client-facing listeners serve TLS."""
        return self.tls_ca is not None

    def pick(self, external: bool) -> str:
        """The endpoints for a request, which asks for external ones or not.

        Raises:
            EndpointsUnavailableError: if it asks for external endpoints and there are none.
        """
        if not external:
            return self.internal
        if not self.external:
            raise EndpointsUnavailableError(
                f"asks for external endpoints: {self.external_unavailable}"
            )
        return self.external


# What a requirer may not change once a relation is made: data-platform-helpers refuses it too.
_FIXED = {"resource": "topic", "extra-user-roles": "extra-user-roles"}


def _change(before: Mapping[str, object] | None, request: KafkaRequestModel) -> str | None:
    """What changed in a request that may not change after the relation was made, or None."""
    if not before:
        return None
    now = request.model_dump(mode="json", by_alias=True, exclude_none=True)
    for key, name in _FIXED.items():
        if key in before and before[key] != now.get(key):
            return (
                f"{name} changed from {str(before[key])[:40]!r} to {str(now.get(key))[:40]!r} "
                "after the relation was made: remove the relation and relate again"
            )
    return None


# What reading hostile relation data can raise: pydantic's and JSON's errors are ValueErrors, a
# secret the charm may not read a ModelError.
UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, ops.ModelError)
ERRORS_KEY = "kafka-client-errors"
RETIRED_KEY = "kafka-client-retired-users"


class _TolerantProvider(ResourceProviderEventHandler):
    """The provider handler, which never raises on what a related application wrote.

    `check` names what is wrong with a relation's data; such a relation is left to the
    charm's status, and nothing of it is stored by the handler. What the handler still cannot
    read is logged, not raised: a raising hook would put the unit in error.
    """

    def __init__(self, charm: ops.CharmBase, check):
        super().__init__(charm, CLIENT_RELATION, KafkaRequestModel)
        self._check = check

    def _on_relation_changed_event(self, event: ops.RelationChangedEvent) -> None:
        if not self.charm.unit.is_leader():
            return
        try:
            self._check(event.relation)
            super()._on_relation_changed_event(event)
        except (ClientRequestError, *UNREADABLE) as error:
            logger.warning(
                "kafka-client relation %s not handled: %s", event.relation.id, _reason(error)
            )


def _secret_uris_in(data: ops.RelationDataContent) -> set[str]:
    """The secret URIs in this charm's data of a relation: v0 keys, or in v1 responses."""
    found = {value for key, value in data.items() if key.startswith("secret-") and value}
    try:
        responses = json.loads(data.get("requests") or "[]")
    except ValueError:
        responses = []
    for response in responses if isinstance(responses, list) else []:
        if isinstance(response, dict):
            found |= {
                str(value)
                for key, value in response.items()
                if str(key).startswith("secret-") and value
            }
    return {uri for uri in found if uri.startswith("secret:")}


def _reason(error: Exception) -> str:
    if isinstance(error, ClientRequestError):
        return str(error)
    return f"unreadable data ({type(error).__name__})"


def _malformed(error: Exception) -> str:
    """What is wrong with a request that does not validate, without its values."""
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "request"
        return f"malformed request ({where}: {first['msg'][:80]})"
    return f"malformed request ({type(error).__name__})"


class _Request(NamedTuple):
    """One request of a relation: how messages name it, its grant, or why it is refused.

    `kept` is what a refused change keeps: the grant of the request as it was first made.
    """

    name: str
    request: KafkaRequestModel | None = None
    grant: ClientGrant | None = None
    error: str | None = None
    kept: ClientGrant | None = None

    @property
    def held(self) -> ClientGrant | None:
        """What the relation user holds for this request."""
        return self.grant or self.kept


class KafkaClients(ops.Object):
    """The provider side of `kafka-client`.

    `fenced` says which topics no client may write now (a migration copies into them).
    """

    def __init__(
        self,
        charm: ops.CharmBase,
        fenced: Callable[[], FencedTopics] = FencedTopics,
        copied: Callable[[], Collection[AclBinding]] = tuple,
    ):
        super().__init__(charm, "kafka-clients")
        self.charm = charm
        self.fenced = fenced
        self.copied = copied
        self.identities = Identities(charm)
        self.handler = _TolerantProvider(charm, self._check)
        self.framework.observe(charm.on[CLIENT_RELATION].relation_broken, self._on_broken)

    def _on_broken(self, event: ops.RelationBrokenEvent) -> None:
        """On the leader: remove the secrets this charm shared on the relation that went."""
        if not self.charm.unit.is_leader():
            return
        for uri in _secret_uris_in(event.relation.data[self.charm.app]):
            try:
                self.charm.model.get_secret(id=uri).remove_all_revisions()
            except (ops.SecretNotFoundError, ops.ModelError):
                continue
            logger.info("removed secret %s of kafka-client relation %s", uri, event.relation.id)

    @property
    def relations(self) -> list[ops.Relation]:
        """The live `kafka-client` relations."""
        return list(self.charm.model.relations[CLIENT_RELATION])

    def _raw_requests(self, relation: ops.Relation) -> list[object]:
        """The requests in the relation data, unchecked: one in v0, a JSON list in v1.

        Raises:
            ClientRequestError: if the data is no request at all.
        """
        try:
            remote = dict(relation.data[relation.app]) if relation.app else {}
        except UNREADABLE as error:
            raise ClientRequestError(f"unreadable data ({type(error).__name__})") from None
        remote.pop("data", None)
        version = remote.get("version", "v0")
        if version not in ("v0", "v1"):
            raise ClientRequestError(f"unknown interface version {version[:20]!r}")
        if version == "v0":
            return [remote] if remote else []
        try:
            raw = json.loads(remote.get("requests") or "[]")
        except ValueError:
            raise ClientRequestError("requests is not JSON") from None
        if not isinstance(raw, list):
            raise ClientRequestError("requests is not a JSON list")
        return raw

    def _requests(self, relation: ops.Relation) -> list[_Request]:
        """Each request of a relation, granted or refused on its own.

        A request is read without the secrets it names (the charm needs none of them), so a
        request naming a secret the charm cannot read is refused, not raised.

        Raises:
            ClientRequestError: if the relation data is no request at all.
        """
        raws = self._raw_requests(relation)
        v1 = not self._is_v0(relation)
        requests = []
        for index, raw in enumerate(raws, start=1):
            name = ""
            if v1:
                given = raw.get("request-id") if isinstance(raw, dict) else None
                name = f"request {str(given)[:20] if given else index}: "
            try:
                if not isinstance(raw, dict):
                    raise TypeError("not a JSON object")
                request = KafkaRequestModel.model_validate(raw)
                if v1 and not request.request_id:
                    if "salt" not in raw:
                        raise ClientRequestError("malformed request (no request-id nor salt)")
                    request.request_id = gen_hash(request.resource, request.salt)
            except ClientRequestError as error:
                requests.append(_Request(name, error=str(error)))
                continue
            except UNREADABLE as error:
                requests.append(_Request(name, error=_malformed(error)))
                continue
            requests.append(self._checked(relation, name, request))
        return requests

    def _checked(self, relation: ops.Relation, name: str, request: KafkaRequestModel) -> _Request:
        """A readable request, granted or refused."""
        try:
            self._readable_secrets(request)
            before = self._first_made(relation, request)
            if (change := _change(before, request)) is not None:
                return _Request(name, request, error=change, kept=self._kept(relation, before))
            return _Request(name, request, grant=self.grant_of(relation, request))
        except ClientRequestError as error:
            return _Request(name, request, error=str(error))
        except UNREADABLE as error:
            return _Request(name, request, error=_malformed(error))

    def _readable_secrets(self, request: KafkaRequestModel) -> None:
        """Refuse a request naming a secret (`secret-mtls`) the charm cannot read.

        Raises:
            ClientRequestError: naming the key.
        """
        uri = request.secret_mtls
        if not uri:
            return
        try:
            self.charm.model.get_secret(id=str(uri)).get_content()
        except (ops.SecretNotFoundError, ops.ModelError):
            raise ClientRequestError(
                "secret-mtls names a secret kafka-k8s cannot read (removed, or not granted): "
                "grant it, or leave secret-mtls out (mTLS is not offered)"
            ) from None

    def _first_made(
        self, relation: ops.Relation, request: KafkaRequestModel
    ) -> Mapping[str, object] | None:
        """The request as data-platform-helpers stored it when first served, if it did.

        Only the leader reads it: another unit may not read this application's data.
        """
        if not self.charm.unit.is_leader():
            return None
        try:
            stored = get_encoded_dict(relation, self.charm.app, "data") or {}
        except (ValueError, ops.ModelError):
            return None
        before = stored.get(request.request_id) if request.request_id else stored
        return before if isinstance(before, dict) and before else None

    def _kept(
        self, relation: ops.Relation, before: Mapping[str, object] | None
    ) -> ClientGrant | None:
        """The grant of a request as first made, which a refused change keeps."""
        try:
            return self.grant_of(relation, KafkaRequestModel.model_validate(dict(before or {})))
        except (ClientRequestError, *UNREADABLE):
            return None

    def _check(self, relation: ops.Relation) -> None:
        """Refuse a relation with a request that cannot be granted.

        data-platform-helpers then stores none of its requests.

        Raises:
            ClientRequestError: naming the first refused request.
        """
        for request in self._requests(relation):
            if request.error is not None:
                raise ClientRequestError(f"{request.name}{request.error}")

    def _stored_errors(self) -> dict[int, str]:
        relation = self.charm.model.get_relation("cluster")
        if relation is None:
            return {}
        try:
            raw = json.loads(relation.data[self.charm.app].get(ERRORS_KEY) or "{}")
        except ValueError:
            return {}
        live = {relation.id for relation in self.relations}
        return {int(k): str(v) for k, v in raw.items() if k.isdigit() and int(k) in live}

    def _retired_users(self) -> set[str]:
        """The users of relations that are gone, already without rights and password."""
        relation = self.charm.model.get_relation("cluster")
        raw = relation.data[self.charm.app].get(RETIRED_KEY) if relation else None
        try:
            users = json.loads(raw or "[]")
        except ValueError:
            return set()
        return {str(user) for user in users} if isinstance(users, list) else set()

    def _store_retired_users(self, users: set[str]) -> None:
        relation = self.charm.model.get_relation("cluster")
        if relation is not None:
            raw = json.dumps(sorted(users)) if users else ""
            if relation.data[self.charm.app].get(RETIRED_KEY, "") != raw:
                relation.data[self.charm.app][RETIRED_KEY] = raw

    def _store_errors(self, errors: dict[int, str]) -> None:
        relation = self.charm.model.get_relation("cluster")
        if relation is not None:
            relation.data[self.charm.app][ERRORS_KEY] = json.dumps(errors) if errors else ""

    @property
    def errors(self) -> dict[int, str]:
        """Why a relation, or some of its requests, is not served, by relation id.

        What the relation data alone shows is computed on every call, so collect-status reports
        it on any event; what the cluster refused is what the last reconcile recorded.
        """
        errors = self._stored_errors()
        for relation in self.relations:
            try:
                refused = [f"{r.name}{r.error}" for r in self._requests(relation) if r.error]
            except ClientRequestError as error:
                refused = [str(error)]
            if refused:
                errors[relation.id] = "; ".join(filter(None, [*refused, errors.get(relation.id)]))
        return errors

    @property
    def identities_problem(self) -> str | None:
        """Why `kafka-client-identities` is not applied as it is set, or None."""
        return self.identities.current()[1]

    def _identity(
        self, relation: ops.Relation, identities: Iterable[ClientIdentity]
    ) -> ClientIdentity | None:
        application = relation.app.name if relation.app else None
        return next((i for i in identities if i.application == application), None)

    def access(self) -> ClientAccess:
        """The relation users, what each is granted (unfenced), and the operator's map.

        For the migration library: from the relation data and the option, no cluster asked.
        """
        identities, problem = self.identities.current()
        users = []
        for relation in self.relations:
            try:
                grants = [r.held for r in self._requests(relation) if r.held]
            except ClientRequestError:
                continue
            if not grants or relation.app is None:
                continue
            identity = self._identity(relation, identities)
            users.append(library_user(relation.id, relation.app.name, grants, identity))
        return ClientAccess(identities=identities, users=tuple(users), problem=problem)

    def grant_of(self, relation: ops.Relation, request: KafkaRequestModel) -> ClientGrant:
        """What the related application may do.

        The consumer-group prefix is always the relation's own (`relation-<id>-`), whatever
        the request asks: the response tells the client which it got.

        Raises:
            ClientRequestError: if the request cannot be granted: no topic, an unknown role,
                a wildcard without a real prefix, or a topic reserved for Kafka and the
                migration (`acls`). An `admin` gets every topic but the reserved ones.
        """
        if not request.resource:
            raise ClientRequestError("no topic requested")
        try:
            roles = parse_roles(request.extra_user_roles)
        except ValueError as error:
            raise ClientRequestError(str(error)) from None
        problem = client_topic_problem(request.resource)
        if problem is not None and "admin" not in roles:
            raise ClientRequestError(problem)
        username = relation_user(relation.id)
        if request.consumer_group_prefix not in (None, "", f"{username}-"):
            logger.info(
                "relation %s asked for consumer-group prefix %r; it gets %r",
                relation.id,
                request.consumer_group_prefix,
                f"{username}-",
            )
        return ClientGrant(
            username=username,
            topic=request.resource,
            consumer_group_prefix=f"{username}-",
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

    def _serve(
        self,
        admin: KafkaAdmin,
        relation: ops.Relation,
        endpoints: ClientEndpoints,
        users: set[str],
        fenced: FencedTopics,
    ) -> None:
        """Make one relation's user, ACLs and responses; no WRITE on the `fenced` topics.

        The user gets what every granted request asks (and what a refused change keeps); each
        granted request gets its response.

        Raises:
            ClientRequestError: if the relation data is no request at all.
            EndpointsUnavailableError: if a request asks for external endpoints and there are
                none.
            AdminError: if the cluster refuses a request.
        """
        requests = self._requests(relation)
        served, unavailable = [], []
        for request in requests:
            if request.grant is None or request.request is None:
                continue
            external = request.request.external_node_connectivity
            try:
                served.append((request, endpoints.pick(external)))
            except EndpointsUnavailableError as error:
                unavailable.append(f"{request.name}{error}")
        grants = [r.grant for r, _ in served if r.grant] + [r.kept for r in requests if r.kept]
        if grants:
            username = relation_user(relation.id)
            password = self._password(relation)
            if username not in users:
                admin.upsert_user(username, password)
            identities, _ = self.identities.current()
            identity = self._identity(relation, identities)
            admin.grant(username, user_acls(grants, identity, self.copied(), fenced))
            for request, addresses in served:
                self._respond(relation, request, username, password, addresses, endpoints)
        if unavailable:
            raise EndpointsUnavailableError("; ".join(unavailable))

    def _respond(
        self,
        relation: ops.Relation,
        served: _Request,
        username: str,
        password: str,
        addresses: str,
        endpoints: ClientEndpoints,
    ) -> None:
        """Answer one granted request with its user, endpoints and CA."""
        request, grant = served.request, served.grant
        if request is None or grant is None:
            return
        response = KafkaResponseModel(
            salt=request.salt,
            request_id=request.request_id,
            resource=request.resource,
            username=username,
            password=password,
            endpoints=addresses,
            consumer_group_prefix=grant.consumer_group_prefix,
            tls=endpoints.tls,
            tls_ca=endpoints.tls_ca,
            **self._secret_uris(relation),
        )
        self.handler.set_response(relation.id, response)

    def reconcile(self, admin: KafkaAdmin, endpoints: ClientEndpoints) -> bool:
        """On the leader: make relation users, ACLs and responses match the relations.

        Each relation is served or refused on its own: what one relation asks for, or what the
        cluster refuses it, never stops the others, and the users of relations that are gone
        are removed in any case. A relation not served keeps what it was granted before, but
        never the rights the fence withholds.

        Args:
            admin: an admin client of the running cluster.
            endpoints: the client endpoints to hand out, and the CA with TLS.

        Returns:
            Whether every relation user's ACLs are fenced now.

        Raises:
            AdminError: if the cluster does not answer.
        """
        users = admin.list_users()
        refused: dict[int, str] = {}
        fenced = self.fenced()
        applied = True
        self.identities.keep()
        for relation in self.relations:
            try:
                self._serve(admin, relation, endpoints, users, fenced)
                continue
            except ClientRequestError:
                pass  # reported by `errors`, from the relation data
            except EndpointsUnavailableError as error:
                refused[relation.id] = str(error)
            except AdminError as error:
                logger.warning("kafka-client relation %s not served: %s", relation.id, error)
                refused[relation.id] = f"the cluster refused it: {error}"
            except UNREADABLE as error:
                reason = _reason(error)
                logger.warning("kafka-client relation %s not served: %s", relation.id, reason)
                refused[relation.id] = reason
            applied &= self._fence_unserved(admin, relation_user(relation.id), users, fenced)
        self._store_errors(refused)
        # A relation's user stays while the relation does, served or not: a refused change
        # leaves what was granted before.
        wanted = {relation_user(relation.id) for relation in self.relations}
        retired = self._retired_users()
        for user in sorted(users):
            if user.startswith(USER_PREFIX) and user not in wanted | retired:
                logger.info("retiring %s: its relation is gone", user)
                try:
                    admin.retire_user(user)
                except AdminError as error:
                    logger.warning("%s not retired yet: %s", user, error)
                    continue
                retired.add(user)
        self._store_retired_users(retired)
        return applied

    @staticmethod
    def _fence_unserved(
        admin: KafkaAdmin, user: str, users: set[str], fenced: FencedTopics
    ) -> bool:
        """Fence what a relation not served holds; whether its ACLs are fenced now."""
        if fenced.empty or user not in users:
            return True
        try:
            held = sorted(admin.acls_of(user), key=repr)
            if set(withheld := fence(held, fenced)) != set(held):
                admin.grant(user, withheld)
        except AdminError as error:
            logger.warning("%s not fenced: %s", user, error)
            return False
        return True
