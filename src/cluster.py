# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The cluster as the peer relation records it: cluster id, controller quorum, internal users.

The leader decides what must be decided once (the KRaft cluster id, the quorum voters, the
internal passwords) and records it in the peer relation's application data and a Juju secret;
every unit reads it from there.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import uuid

import ops

from models import (
    ADMIN_USER,
    MIRRORMAKER_USER,
    REPLICATION_USERS,
    BrokerNode,
    InternalCredentials,
)

PEER_RELATION = "cluster"
CLUSTER_ID_KEY = "cluster-id"
VOTERS_KEY = "controller-voters"
CREDENTIALS_KEY = "internal-credentials"
CREDENTIALS_LABEL = "internal-credentials"
MAX_VOTERS = 3
# In each unit's peer data: the inter-broker user its running broker logs in with.
INTER_BROKER_KEY = "broker-inter-broker-user"
# In each unit's peer data: `HOST:PORT` its broker advertises to clients outside Kubernetes.
EXTERNAL_ADDRESS_KEY = "external-address"
# In the application's peer data: whether the leader made external Services (expose-external).
EXTERNAL_SERVICES_KEY = "external-services"
# Unit data: when the certificate this unit's broker serves expires (seconds since the epoch).
CERTIFICATE_EXPIRY_KEY = "certificate-expiry"
# Application data: each broker's data volume in bytes, by node id (JSON), as the leader measured.
STORAGE_BYTES_KEY = "storage-bytes"


def generate_password(length: int = 32) -> str:
    """A random password of letters and digits."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def generate_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding.

    Never one that begins with "-", as Kafka's own `Uuid.randomUuid` (1 in 64 would): tools
    would read it as an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def node_id(unit: ops.Unit) -> int:
    """The KRaft node id of a unit: its unit number."""
    return int(unit.name.split("/")[1])


def unit_host(app: str, number: int) -> str:
    """The stable DNS name of a unit's pod, as the rock's own charm names it.

    `<app>-<n>.<app>-endpoints`, the pod's name under Juju's headless service.

    The pod's DNS search path (`<model>.svc.<cluster domain>`) completes it, so a cluster whose
    DNS domain is not `cluster.local` resolves it too.
    """
    return f"{app}-{number}.{app}-endpoints"


def rotation_passwords(current: InternalCredentials) -> dict[str, str]:
    """New passwords for a rotation: admin, mirrormaker and the replication user no broker uses."""
    return {
        ADMIN_USER: generate_password(),
        MIRRORMAKER_USER: generate_password(),
        current.next_inter_broker_user: generate_password(),
    }


def credentials_content(credentials: InternalCredentials) -> dict[str, str]:
    """The internal credentials as the secret's content."""
    content = {
        "admin-password": credentials.admin_password,
        "controller-password": credentials.controller_password,
        "mirrormaker-password": credentials.mirrormaker_password,
        "inter-broker-user": credentials.inter_broker_user,
    }
    for user, password in credentials.replication_passwords.items():
        content[f"{user}-password"] = password
    for user, password in credentials.pending.items():
        content[f"pending-{user}-password"] = password
    return content


def credentials_from_content(content: dict[str, str]) -> InternalCredentials:
    """The internal credentials from the secret's content."""
    return InternalCredentials(
        admin_password=content["admin-password"],
        controller_password=content["controller-password"],
        mirrormaker_password=content["mirrormaker-password"],
        replication_passwords={
            user: content[f"{user}-password"]
            for user in REPLICATION_USERS
            if content.get(f"{user}-password")
        },
        inter_broker_user=content.get("inter-broker-user") or ADMIN_USER,
        pending={
            key[len("pending-") : -len("-password")]: value
            for key, value in content.items()
            if key.startswith("pending-") and key.endswith("-password") and value
        },
    )


def choose_voters(node_ids: list[int], planned_units: int) -> list[int] | None:
    """The controller quorum, once enough units have joined; `None` while waiting for them.

    The first `min(3, planned units)` units are voters; later units are broker-only.
    """
    wanted = max(1, min(MAX_VOTERS, planned_units))
    if len(node_ids) < wanted:
        return None
    return sorted(node_ids)[:wanted]


class ClusterState:
    """Reads and, on the leader, writes what the peer relation records."""

    def __init__(self, charm: ops.CharmBase):
        self.model = charm.model
        self.app = charm.app
        self.unit = charm.unit

    @property
    def relation(self) -> ops.Relation | None:
        """The peer relation, once Juju has created it."""
        return self.model.get_relation(PEER_RELATION)

    @property
    def units(self) -> list[ops.Unit]:
        """This unit and every peer."""
        relation = self.relation
        peers = list(relation.units) if relation else []
        return [self.unit, *peers]

    def node(self, number: int) -> BrokerNode:
        """The unit with this number as a broker of the cluster."""
        return BrokerNode(node_id=number, host=unit_host(self.app.name, number))

    @property
    def this_node(self) -> BrokerNode:
        """This unit as a broker."""
        return self.node(node_id(self.unit))

    @property
    def nodes(self) -> list[BrokerNode]:
        """Every unit as a broker, by node id."""
        return [self.node(number) for number in sorted(node_id(u) for u in self.units)]

    def _app_data(self) -> ops.RelationDataContent | None:
        relation = self.relation
        return relation.data[self.app] if relation else None

    @property
    def cluster_id(self) -> str | None:
        """The KRaft cluster id, once the leader has chosen it."""
        data = self._app_data()
        return data.get(CLUSTER_ID_KEY) if data is not None else None

    @property
    def voter_ids(self) -> list[int] | None:
        """Node ids of the controller quorum, once the leader has chosen them."""
        data = self._app_data()
        raw = data.get(VOTERS_KEY) if data is not None else None
        return json.loads(raw) if raw else None

    @property
    def voters(self) -> tuple[BrokerNode, ...] | None:
        """The controller quorum as broker nodes."""
        ids = self.voter_ids
        if ids is None:
            return None
        return tuple(self.node(number) for number in ids)

    def _credentials_secret(self) -> ops.Secret | None:
        data = self._app_data()
        secret_id = data.get(CREDENTIALS_KEY) if data is not None else None
        if not secret_id:
            return None
        return self.model.get_secret(id=secret_id)

    @property
    def credentials(self) -> InternalCredentials | None:
        """The internal users' passwords, once the leader has generated them."""
        secret = self._credentials_secret()
        if secret is None:
            return None
        return credentials_from_content(secret.get_content(refresh=True))

    def initialise(self) -> None:
        """On the leader: choose what is chosen once. Idempotent; a no-op elsewhere."""
        data = self._app_data()
        if not self.unit.is_leader() or data is None:
            return
        if not data.get(CLUSTER_ID_KEY):
            data[CLUSTER_ID_KEY] = generate_cluster_id()
        if not data.get(CREDENTIALS_KEY):
            fresh = InternalCredentials(
                admin_password=generate_password(),
                controller_password=generate_password(),
                mirrormaker_password=generate_password(),
                replication_passwords={REPLICATION_USERS[0]: generate_password()},
                inter_broker_user=REPLICATION_USERS[0],
            )
            secret = self.app.add_secret(
                credentials_content(fresh),
                label=CREDENTIALS_LABEL,
                description="Passwords of kafka-k8s's internal users",
                rotate=ops.SecretRotate.MONTHLY,
            )
            data[CREDENTIALS_KEY] = secret.id or ""
        elif (current := self.credentials) is not None and not current.replication_passwords:
            # A cluster made before the replication users: its brokers move onto one as in a
            # rotation of the inter-broker user alone.
            if not current.pending:
                self.store_credentials(
                    current.model_copy(
                        update={"pending": {REPLICATION_USERS[0]: generate_password()}}
                    )
                )
        if not data.get(VOTERS_KEY):
            voters = choose_voters([node_id(u) for u in self.units], self.app.planned_units())
            if voters is not None:
                data[VOTERS_KEY] = json.dumps(voters)

    def begin_rotation(self) -> InternalCredentials | None:
        """On the leader: store new passwords as pending, unless a rotation is under way.

        The controller password does not rotate (see README).
        """
        current = self.credentials
        if current is None:
            return None
        if current.pending:
            return current
        rotating = current.model_copy(update={"pending": rotation_passwords(current)})
        self.store_credentials(rotating)
        return rotating

    def store_credentials(self, credentials: InternalCredentials) -> None:
        """On the leader: record the internal passwords in the secret."""
        secret = self._credentials_secret()
        if secret is None:
            return
        secret.set_content(credentials_content(credentials))

    def units_on(self, inter_broker_user: str) -> list[str]:
        """The units whose running broker does not log in as `inter_broker_user` yet."""
        relation = self.relation
        if relation is None:
            return []
        return sorted(
            unit.name
            for unit in self.units
            if relation.data[unit].get(INTER_BROKER_KEY) != inter_broker_user
        )

    def record_inter_broker_user(self, user: str | None) -> None:
        """Publish which inter-broker user this unit's running broker logs in with."""
        relation = self.relation
        if relation is not None and relation.data[self.unit].get(INTER_BROKER_KEY) != user:
            relation.data[self.unit][INTER_BROKER_KEY] = user or ""

    def external_addresses(self) -> dict[int, str]:
        """`HOST:PORT` each unit advertises to clients outside Kubernetes, by node id."""
        relation = self.relation
        if relation is None:
            return {}
        found = {node_id(u): relation.data[u].get(EXTERNAL_ADDRESS_KEY) for u in self.units}
        return {number: address for number, address in sorted(found.items()) if address}

    def record_external_address(self, address: str | None) -> None:
        """Publish the address this unit's broker advertises outside Kubernetes (or none)."""
        relation = self.relation
        if relation is not None and relation.data[self.unit].get(EXTERNAL_ADDRESS_KEY) != address:
            relation.data[self.unit][EXTERNAL_ADDRESS_KEY] = address or ""

    @property
    def external_services(self) -> bool:
        """Whether the leader made external Services that it has not removed yet."""
        return bool((self._app_data() or {}).get(EXTERNAL_SERVICES_KEY))

    def record_external_services(self, exposed: bool) -> None:
        """On the leader: record whether external Services may exist."""
        data = self._app_data()
        if data is not None and self.unit.is_leader():
            data[EXTERNAL_SERVICES_KEY] = "true" if exposed else ""

    def certificate_expiries(self) -> dict[int, float]:
        """When each unit's served certificate expires (seconds since the epoch), by node id."""
        relation = self.relation
        if relation is None:
            return {}
        expiries = {}
        for unit in self.units:
            try:
                expiries[node_id(unit)] = float(
                    relation.data[unit].get(CERTIFICATE_EXPIRY_KEY, "")
                )
            except ValueError:
                continue
        return expiries

    def record_certificate_expiry(self, expires: float | None) -> None:
        """Publish when the certificate this unit's broker serves expires (or that it has none)."""
        relation = self.relation
        value = f"{expires:.0f}" if expires is not None else ""
        if relation is not None and relation.data[self.unit].get(CERTIFICATE_EXPIRY_KEY) != value:
            relation.data[self.unit][CERTIFICATE_EXPIRY_KEY] = value

    def storage_bytes(self) -> dict[int, int]:
        """Each broker's data volume in bytes, by node id, as the leader last measured it."""
        try:
            recorded = json.loads((self._app_data() or {}).get(STORAGE_BYTES_KEY) or "{}")
            return {int(node): int(size) for node, size in recorded.items()}
        except (ValueError, TypeError, AttributeError):
            return {}

    def record_storage_bytes(self, sizes: dict[int, int]) -> None:
        """On the leader: record each broker's data volume in bytes."""
        data = self._app_data()
        value = json.dumps({str(node): size for node, size in sorted(sizes.items())})
        if data is not None and self.unit.is_leader() and data.get(STORAGE_BYTES_KEY) != value:
            data[STORAGE_BYTES_KEY] = value

    def is_credentials_secret(self, secret: ops.Secret) -> bool:
        """Whether a secret event concerns the internal credentials."""
        return secret.label == CREDENTIALS_LABEL or secret.id == (
            (self._app_data() or {}).get(CREDENTIALS_KEY)
        )
