# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""External access (`expose-external`): Kubernetes Services that reach each broker from outside.

- `wanted_services` is pure: from the mode, the application, its units and the external
  listener's port it computes the Services there must be: one per unit (selecting its pod) and
  a bootstrap Service (selecting every pod of the application).
- `node_address` and `ingress_address` pick, from what Kubernetes reports, the address an
  outside client uses: the node's IP with the Service's node port, or the load balancer's.
- `KubeServices` is the thin adapter that applies them through lightkube (server-side apply),
  owned by the application's StatefulSet so they go with it, and removes the ones no longer
  wanted. It only ever touches Services it labelled itself: a Service of the same name that is
  not its own is a clash, reported, never taken over. It is the only code that talks to the
  Kubernetes API, and only when `expose-external` asks for Services (or some are left to remove).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import httpx2
from lightkube import ApiError, Client
from lightkube.core.exceptions import ConfigError
from lightkube.models.core_v1 import NodeAddress, ServicePort, ServiceSpec
from lightkube.models.meta_v1 import ObjectMeta, OwnerReference
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import Node, Pod, Service
from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

ExposeMode = Literal["false", "nodeport", "loadbalancer"]
ServiceType = Literal["NodePort", "LoadBalancer"]

# The label that marks a Service as this charm's, with the application's name as its value.
MANAGED_LABEL = "kafka-k8s/exposes"
FIELD_MANAGER = "kafka-k8s"
# The labels Kubernetes and Juju put on an application's pods.
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
APP_LABEL = "app.kubernetes.io/name"
# Node addresses in the order an outside client prefers them.
NODE_ADDRESS_TYPES = ("ExternalIP", "InternalIP", "Hostname")


class ExternalAddress(BaseModel):
    """Where a client outside Kubernetes reaches one broker."""

    model_config = ConfigDict(frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)

    @property
    def address(self) -> str:
        """`HOST:PORT`."""
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, value: str) -> ExternalAddress | None:
        """`HOST:PORT` as recorded in the peer relation; `None` if it is not one."""
        host, _, port = value.rpartition(":")
        try:
            return cls(host=host, port=int(port))
        except ValueError:
            return None


class WantedService(BaseModel):
    """One Service the charm wants, as plain data."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: ServiceType
    selector: dict[str, str]
    port: int
    # The unit it reaches; `None` for the bootstrap Service, which reaches any of them.
    unit: int | None = None

    def labels(self, app: str) -> dict[str, str]:
        """The labels that make it this charm's."""
        return {MANAGED_LABEL: app, APP_LABEL: app}


def unit_service_name(app: str, number: int) -> str:
    """The Service that reaches one unit's broker."""
    return f"{app}-{number}-external"


def bootstrap_service_name(app: str) -> str:
    """The Service that reaches any broker of the application."""
    return f"{app}-bootstrap"


def wanted_services(
    app: str, mode: ExposeMode, units: Iterable[int], port: int
) -> list[WantedService]:
    """The Services there must be for this mode, application, its units and listener port.

    Each unit's Service selects its pod by the StatefulSet's pod-name label; the bootstrap
    Service selects every pod of the application.
    """
    if mode == "false":
        return []
    kind: ServiceType = "NodePort" if mode == "nodeport" else "LoadBalancer"
    services = [
        WantedService(
            name=unit_service_name(app, number),
            type=kind,
            selector={POD_NAME_LABEL: f"{app}-{number}"},
            port=port,
            unit=number,
        )
        for number in sorted(set(units))
    ]
    bootstrap = WantedService(
        name=bootstrap_service_name(app), type=kind, selector={APP_LABEL: app}, port=port
    )
    return [*services, bootstrap]


def node_address(addresses: Sequence[tuple[str, str]]) -> str | None:
    """The address of a node an outside client uses: external IP, else internal IP, else name.

    Args:
        addresses: the node's `(type, address)` pairs, in the node's order.
    """
    for kind in NODE_ADDRESS_TYPES:
        for found, address in addresses:
            if found == kind and address:
                return address
    return None


def ingress_address(ingress: Sequence[tuple[str | None, str | None]]) -> str | None:
    """The first address of a load balancer: its IP, else its hostname.

    Args:
        ingress: the Service's `status.loadBalancer.ingress` as `(ip, hostname)` pairs.
    """
    for ip, hostname in ingress:
        if ip or hostname:
            return ip or hostname
    return None


class ExternalAccessError(Exception):
    """The Kubernetes API refused what expose-external needs; the message says what to do."""


class KubeUnavailableError(Exception):
    """The Kubernetes API did not answer: retried by the next reconcile."""


def _trust_hint(app: str) -> str:
    return f"expose-external needs trust: run `juju trust {app} --scope=cluster`"


class KubeServices:
    """The application's external Services, through lightkube.

    Args:
        client: makes the lightkube client (called once, on first use).
        app: the application's name, also its StatefulSet's.
        namespace: the model's namespace.
    """

    def __init__(self, client: Callable[[], Client], app: str, namespace: str):
        self._make_client = client
        self._client: Client | None = None
        self.app = app
        self.namespace = namespace

    @property
    def client(self) -> Client:
        """The lightkube client.

        Raises:
            KubeUnavailableError: if there is no configuration to reach the API with.
        """
        if self._client is None:
            try:
                self._client = self._make_client()
            except ConfigError as error:
                raise KubeUnavailableError(f"no Kubernetes API configuration: {error}") from None
        return self._client

    def close(self) -> None:
        """Close the client's connections; the next call opens new ones."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _call(self, what: str, call: Callable[[], object]) -> object:
        """Run one API call, its errors made into the two the charm tells apart.

        Raises:
            ExternalAccessError: if the API refused it (403: no trust).
            KubeUnavailableError: if the API did not answer.
        """
        try:
            return call()
        except ApiError as error:
            if error.status.code == 403:
                raise ExternalAccessError(_trust_hint(self.app)) from None
            if error.status.code is not None and error.status.code >= 500:
                raise KubeUnavailableError(f"{what}: {error.status.message}") from None
            raise ExternalAccessError(
                f"the Kubernetes API refused to {what}: {error.status.message}"
            ) from None
        except httpx2.HTTPError as error:
            raise KubeUnavailableError(f"{what}: {error}") from None

    def _get(self, resource: type, name: str, *, namespaced: bool = True) -> object | None:
        """An object, or `None` if there is none of that name."""
        try:
            if namespaced:
                return self.client.get(resource, name, namespace=self.namespace)  # type: ignore[call-overload]
            return self.client.get(resource, name)  # type: ignore[call-overload]
        except ApiError as error:
            if error.status.code == 404:
                return None
            raise

    def _owner(self) -> OwnerReference:
        statefulset = self._call(
            f"read StatefulSet {self.app}", lambda: self._get(StatefulSet, self.app)
        )
        if not isinstance(statefulset, StatefulSet) or statefulset.metadata is None:
            raise ExternalAccessError(f"no StatefulSet {self.app} to own the external Services")
        return OwnerReference(
            apiVersion="apps/v1",
            kind="StatefulSet",
            name=self.app,
            uid=statefulset.metadata.uid or "",
            blockOwnerDeletion=False,
        )

    def _ours(self, service: Service) -> bool:
        labels = (service.metadata.labels if service.metadata else None) or {}
        return labels.get(MANAGED_LABEL) == self.app

    def _service(self, wanted: WantedService, owner: OwnerReference) -> Service:
        return Service(
            metadata=ObjectMeta(
                name=wanted.name,
                namespace=self.namespace,
                labels=wanted.labels(self.app),
                ownerReferences=[owner],
            ),
            spec=ServiceSpec(
                type=wanted.type,
                selector=wanted.selector,
                # A client reaches a unit through the node its pod runs on, so the node port
                # must not forward to another node (which would change the source and add a hop).
                externalTrafficPolicy="Local",
                ports=[
                    ServicePort(
                        name="kafka", port=wanted.port, targetPort=wanted.port, protocol="TCP"
                    )
                ],
            ),
        )

    def apply(self, wanted: Sequence[WantedService]) -> list[str]:
        """Make the application's external Services exactly `wanted`.

        Returns:
            The names of the Services removed.

        Raises:
            ExternalAccessError: on a name clash with a Service that is not this charm's, or when
                the API refuses (no trust).
            KubeUnavailableError: if the API did not answer.
        """
        listed = self._call(
            "list Services",
            lambda: list(
                self.client.list(
                    Service, namespace=self.namespace, labels={MANAGED_LABEL: self.app}
                )
            ),
        )
        ours = {s.metadata.name for s in listed if s.metadata and s.metadata.name}  # type: ignore[union-attr]
        if wanted:
            owner = self._owner()
            for service in wanted:
                if service.name not in ours:
                    self._refuse_clash(service.name)
                self._call(
                    f"apply Service {service.name}",
                    lambda service=service: self.client.apply(
                        self._service(service, owner), field_manager=FIELD_MANAGER, force=True
                    ),
                )
        removed = sorted(ours - {service.name for service in wanted})
        for name in removed:
            self._call(
                f"delete Service {name}",
                lambda name=name: self.client.delete(Service, name, namespace=self.namespace),
            )
            logger.info("removed Service %s", name)
        return removed

    def _refuse_clash(self, name: str) -> None:
        existing = self._call(f"read Service {name}", lambda: self._get(Service, name))
        if isinstance(existing, Service) and not self._ours(existing):
            raise ExternalAccessError(
                f"Service {name} exists and is not {self.app}'s: rename or delete it"
            )

    def address(self, mode: ExposeMode, number: int) -> tuple[ExternalAddress | None, str]:
        """Where outside clients reach unit `number`'s broker, or why it is not known yet.

        Returns:
            The address, or `None` and what it waits for.

        Raises:
            ExternalAccessError: if the API refuses (no trust).
            KubeUnavailableError: if the API did not answer.
        """
        name = unit_service_name(self.app, number)
        service = self._call(f"read Service {name}", lambda: self._get(Service, name))
        if not isinstance(service, Service) or not self._ours(service):
            return None, f"waiting for the leader to create Service {name}"
        ports = (service.spec.ports if service.spec else None) or []
        if mode == "loadbalancer":
            status = service.status.loadBalancer if service.status else None
            ingress = [(i.ip, i.hostname) for i in (status.ingress or [])] if status else []
            host = ingress_address(ingress)
            if host is None or not ports:
                return None, f"waiting for a load balancer address for Service {name}"
            return ExternalAddress(host=host, port=ports[0].port), ""
        node_port = ports[0].nodePort if ports else None
        pod_name = f"{self.app}-{number}"
        pod = self._call(f"read Pod {pod_name}", lambda: self._get(Pod, pod_name))
        node_name = pod.spec.nodeName if isinstance(pod, Pod) and pod.spec else None
        if node_port is None or not node_name:
            return None, f"waiting for pod {pod_name} to be scheduled on a node"
        node = self._call(
            f"read Node {node_name}", lambda: self._get(Node, node_name, namespaced=False)
        )
        addresses: list[NodeAddress] = (
            (node.status.addresses or []) if isinstance(node, Node) and node.status else []
        )
        host = node_address([(a.type, a.address) for a in addresses])
        if host is None:
            return None, f"waiting for node {node_name} to report an address"
        return ExternalAddress(host=host, port=node_port), ""


class ExternalState(BaseModel):
    """What this unit advertises to outside clients, and what stands in the way, if anything."""

    model_config = ConfigDict(frozen=True)

    address: ExternalAddress | None = None
    # What the operator must do (blocked), or what the unit waits for.
    blocked: str = ""
    waiting: str = ""


def reconcile_external(
    services: KubeServices,
    mode: ExposeMode,
    *,
    port: int,
    number: int,
    units: Iterable[int] | None,
    recorded: ExternalAddress | None,
    exposed: bool,
) -> tuple[ExternalState, bool]:
    """Bring the Services to `mode` and find this unit's external address.

    Args:
        services: the adapter.
        mode: the `expose-external` option.
        port: the external listener's port.
        number: this unit's number.
        units: on the leader, every unit there will be (their Services are made, the others'
            removed); `None` elsewhere: only the leader changes Services.
        recorded: the address this unit last advertised: kept while the API does not answer
            or refuses, so a broker is never restarted over an API outage.
        exposed: whether Services may exist (the leader made some and did not remove them).

    Returns:
        The state, and whether Services may exist now.
    """
    try:
        if mode == "false":
            if units is not None and exposed:
                services.apply([])
            return ExternalState(), False
        if units is not None:
            services.apply(wanted_services(services.app, mode, units, port))
            exposed = True
        address, waiting = services.address(mode, number)
    except ExternalAccessError as error:
        return ExternalState(address=recorded, blocked=str(error)), exposed
    except KubeUnavailableError as error:
        logger.warning("the Kubernetes API did not answer: %s", error)
        return ExternalState(address=recorded, waiting="waiting for the Kubernetes API"), exposed
    return ExternalState(address=address, waiting=waiting), exposed


def kube_client(namespace: str) -> Client:
    """A lightkube client of the cluster the charm runs in, with the pod's service account.

    Raises:
        ConfigError: outside a pod (no service account).
    """
    return Client(namespace=namespace, field_manager=FIELD_MANAGER)
