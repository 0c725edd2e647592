# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""expose-external against a real Kubernetes API server (kube-apiserver and etcd on loopback).

The charm runs under ops.testing, as it would in a hook, but its lightkube client talks to the
session's real API server (`kube_api`): the Services are created, read, applied again and
deleted by the API server, which assigns the node ports, checks the objects and refuses a
client without rights (403). No controller runs there, so each test plays the parts Kubernetes
would: it makes the application's StatefulSet, puts its pods on nodes, and gives a load
balancer an address. Each test has a namespace of its own (the model's name).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

import pytest
from lightkube import Client
from lightkube.models.apps_v1 import StatefulSetSpec
from lightkube.models.core_v1 import (
    Container,
    PodSpec,
    PodTemplateSpec,
    ServicePort,
    ServiceSpec,
)
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import Namespace, Node, Pod, Service, ServiceAccount
from lightkube.types import PatchType
from ops import testing

import charm
from charm import KafkaK8sCharm
from external import FIELD_MANAGER, MANAGED_LABEL
from substrate.kube import KubeApiServer
from tests.unit.helpers import cluster, container, credentials_secret, load_properties, read

APP = "kafka-k8s"
# Nodes and where the pods run: unit 0 and 2 on node-a, unit 1 on node-b. Their addresses are
# loopback ones: nothing is sent to them, but nothing could leave the machine either.
NODES = {
    "node-a": {"ExternalIP": "127.0.0.11", "InternalIP": "127.0.0.21"},
    "node-b": {"InternalIP": "127.0.0.22"},
}
PLACEMENT = {0: "node-a", 1: "node-b", 2: "node-a"}
ADDRESS = {0: "127.0.0.11", 1: "127.0.0.22", 2: "127.0.0.11"}
_namespaces = itertools.count()


@pytest.fixture(scope="module")
def admin(kube_api: KubeApiServer) -> Iterator[Client]:
    with kube_api.client() as client:
        for name, addresses in NODES.items():
            client.create(Node(metadata=ObjectMeta(name=name)))
            status = {"addresses": [{"type": t, "address": a} for t, a in addresses.items()]}
            client.patch(Node.Status, name, {"status": status}, patch_type=PatchType.MERGE)
        yield client


@pytest.fixture
def namespace(admin: Client, monkeypatch: pytest.MonkeyPatch, kube_api: KubeApiServer) -> str:
    """A namespace with what Juju and Kubernetes would have made: the StatefulSet, the pods."""
    name = f"model-{next(_namespaces)}"
    admin.create(Namespace(metadata=ObjectMeta(name=name)))
    admin.create(ServiceAccount(metadata=ObjectMeta(name="default", namespace=name)))
    labels = {"app.kubernetes.io/name": APP}
    admin.create(
        StatefulSet(
            metadata=ObjectMeta(name=APP, namespace=name),
            spec=StatefulSetSpec(
                serviceName=f"{APP}-endpoints",
                selector=LabelSelector(matchLabels=labels),
                template=PodTemplateSpec(
                    metadata=ObjectMeta(labels=labels),
                    spec=PodSpec(containers=[Container(name="kafka", image="kafka")]),
                ),
            ),
        )
    )
    for number, node in PLACEMENT.items():
        pod = f"{APP}-{number}"
        admin.create(
            Pod(
                metadata=ObjectMeta(
                    name=pod,
                    namespace=name,
                    labels={**labels, "statefulset.kubernetes.io/pod-name": pod},
                ),
                spec=PodSpec(containers=[Container(name="kafka", image="kafka")], nodeName=node),
            )
        )
    monkeypatch.setattr(
        charm,
        "kube_client",
        lambda model: kube_api.client(namespace=model, field_manager=FIELD_MANAGER),
    )
    return name


def unit(number: int, namespace: str, mode: str, *, planned: int = 3) -> tuple:
    """A unit of the application, as a hook sees it: its context and state."""
    ctx = testing.Context(KafkaK8sCharm, unit_id=number)
    secret = credentials_secret()
    peers = tuple(n for n in range(planned) if n != number)
    state = testing.State(
        leader=number == 0,
        model=testing.Model(name=namespace),
        config={"expose-external": mode},
        # Not ready: the hook stops before the leader's admin client (no Kafka runs here).
        containers={container(ready=False)},
        relations={cluster(secret, peers=peers)},
        secrets={secret},
        planned_units=planned,
    )
    return ctx, state


def ours(admin: Client, namespace: str) -> dict[str, Service]:
    services = admin.list(Service, namespace=namespace, labels={MANAGED_LABEL: APP})
    return {s.metadata.name: s for s in services if s.metadata and s.metadata.name}


def advertised(ctx: testing.Context, out: testing.State) -> str:
    return load_properties(read(ctx, out, "/etc/kafka/server.properties"))["advertised.listeners"]


def external_listener(ctx: testing.Context, out: testing.State) -> str | None:
    found = [a for a in advertised(ctx, out).split(",") if a.startswith("EXTERNAL://")]
    return found[0].removeprefix("EXTERNAL://") if found else None


def test_nodeport_services_for_three_units_and_the_listeners_they_give(admin, namespace):
    ctx, state = unit(0, namespace, "nodeport")

    out = ctx.run(ctx.on.config_changed(), state)

    services = ours(admin, namespace)
    assert sorted(services) == [
        f"{APP}-0-external",
        f"{APP}-1-external",
        f"{APP}-2-external",
        f"{APP}-bootstrap",
    ]
    owner = admin.get(StatefulSet, APP, namespace=namespace).metadata
    node_ports = {}
    for name, service in services.items():
        spec, meta = service.spec, service.metadata
        assert spec is not None and meta is not None and spec.ports is not None
        assert spec.type == "NodePort"
        assert spec.externalTrafficPolicy == "Local"
        (port,) = spec.ports
        assert (port.port, port.targetPort, port.protocol) == (29092, 29092, "TCP")
        assert port.nodePort is not None and 30000 <= port.nodePort <= 32767
        node_ports[name] = port.nodePort
        (reference,) = meta.ownerReferences or []
        assert (reference.kind, reference.name, reference.uid) == ("StatefulSet", APP, owner.uid)
        if name.endswith("-bootstrap"):
            assert spec.selector == {"app.kubernetes.io/name": APP}
        else:
            pod = name.removesuffix("-external")
            assert spec.selector == {"statefulset.kubernetes.io/pod-name": pod}
    print(f"\nnode ports assigned by the API server: {node_ports}")

    # Each unit advertises its node's address and its own Service's node port.
    assert external_listener(ctx, out) == f"{ADDRESS[0]}:{node_ports[f'{APP}-0-external']}"
    for number in (1, 2):
        other_ctx, other = unit(number, namespace, "nodeport")
        other_out = other_ctx.run(other_ctx.on.config_changed(), other)
        expected = f"{ADDRESS[number]}:{node_ports[f'{APP}-{number}-external']}"
        assert external_listener(other_ctx, other_out) == expected
        assert (
            other_out.get_relations("cluster")[0].local_unit_data["external-address"] == expected
        )

    # Applied again, the Services keep their node ports: no broker would restart for nothing.
    again = ctx.run(ctx.on.update_status(), out)
    assert {n: s.spec.ports[0].nodePort for n, s in ours(admin, namespace).items()} == node_ports  # type: ignore[union-attr,index]
    assert external_listener(ctx, again) == external_listener(ctx, out)


def test_loadbalancer_services_wait_for_an_address_then_advertise_it(admin, namespace):
    ctx, state = unit(0, namespace, "loadbalancer")

    waiting = ctx.run(ctx.on.config_changed(), state)

    assert {s.spec.type for s in ours(admin, namespace).values()} == {"LoadBalancer"}  # type: ignore[union-attr]
    assert waiting.unit_status == testing.WaitingStatus(
        f"waiting for a load balancer address for Service {APP}-0-external"
    )
    assert external_listener(ctx, waiting) is None

    # The cloud's controller would do this: give the load balancer an address.
    ingress = {"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.31"}]}}}
    admin.patch(
        Service.Status,
        f"{APP}-0-external",
        ingress,
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    out = ctx.run(ctx.on.update_status(), waiting)

    assert external_listener(ctx, out) == "127.0.0.31:29092"
    assert "load balancer" not in out.unit_status.message


def test_scale_down_and_false_remove_the_services(admin, namespace):
    ctx, state = unit(0, namespace, "nodeport")
    out = ctx.run(ctx.on.config_changed(), state)
    assert len(ours(admin, namespace)) == 4

    down = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, planned_units=2))

    assert sorted(ours(admin, namespace)) == [
        f"{APP}-0-external",
        f"{APP}-1-external",
        f"{APP}-bootstrap",
    ]

    off = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(down, config={"expose-external": "false"})
    )

    assert ours(admin, namespace) == {}
    assert list(admin.list(Service, namespace=namespace)) == []
    assert external_listener(ctx, off) is None


def test_an_unknown_mode_blocks_and_touches_nothing(admin, namespace):
    ctx, state = unit(0, namespace, "ingress")

    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == testing.BlockedStatus(
        "invalid config expose-external: input should be 'false', 'nodeport' or 'loadbalancer'"
    )
    assert list(admin.list(Service, namespace=namespace)) == []


def test_a_service_name_clash_blocks_and_the_other_service_stays(admin, namespace):
    theirs = Service(
        metadata=ObjectMeta(name=f"{APP}-1-external", namespace=namespace, labels={"app": "web"}),
        spec=ServiceSpec(selector={"app": "web"}, ports=[ServicePort(port=80)]),
    )
    admin.create(theirs)
    ctx, state = unit(0, namespace, "nodeport")

    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == testing.BlockedStatus(
        f"Service {APP}-1-external exists and is not {APP}'s: rename or delete it"
    )
    kept = admin.get(Service, f"{APP}-1-external", namespace=namespace)
    assert kept.metadata is not None and kept.metadata.labels == {"app": "web"}
    assert kept.spec is not None and kept.spec.type == "ClusterIP"


def test_without_trust_the_api_server_refuses_and_the_status_says_what_to_do(
    admin, namespace, kube_api, monkeypatch
):
    monkeypatch.setattr(
        charm,
        "kube_client",
        lambda model: kube_api.client(namespace=model, token=kube_api.nobody_token),
    )
    ctx, state = unit(0, namespace, "nodeport")

    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == testing.BlockedStatus(
        f"expose-external needs trust: run `juju trust {APP} --scope=cluster`"
    )
    assert list(admin.list(Service, namespace=namespace)) == []
    # The broker still starts, on its internal listeners.
    assert external_listener(ctx, out) is None
    assert out.get_container("kafka").plan.services
