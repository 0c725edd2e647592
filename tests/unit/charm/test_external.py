# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""expose-external under ops.testing: the Services wanted, the listener, the client endpoints.

`FakeKube` stands in for lightkube's client with the few calls the adapter makes; the real
Kubernetes API server answers the same calls in `tests/local/test_external.py`.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from lightkube.models.core_v1 import (
    LoadBalancerIngress,
    LoadBalancerStatus,
    NodeAddress,
    NodeStatus,
    PodSpec,
    ServiceStatus,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import Node, Pod, Service
from ops import testing

import charm
from external import (
    APP_LABEL,
    MANAGED_LABEL,
    POD_NAME_LABEL,
    ingress_address,
    node_address,
    wanted_services,
)
from tests.unit.helpers import MODEL, cluster, container, credentials_secret, load_properties, read


class FakeKube:
    """Services, a StatefulSet, pods and nodes in memory, behind lightkube's call names."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], object] = {
            ("StatefulSet", "kafka-k8s"): StatefulSet.from_dict(
                {
                    "metadata": {"name": "kafka-k8s", "uid": "u1"},
                    "spec": {"selector": {}, "template": {}},
                }
            ),
            ("Node", "node-a"): Node(
                metadata=ObjectMeta(name="node-a"),
                status=NodeStatus(
                    addresses=[NodeAddress(address="203.0.113.10", type="ExternalIP")]
                ),
            ),
        }
        for number in range(3):
            name = f"kafka-k8s-{number}"
            self.objects["Pod", name] = Pod(
                metadata=ObjectMeta(name=name), spec=PodSpec(containers=[], nodeName="node-a")
            )
        self.calls: list[str] = []
        self.next_port = 30001

    def get(self, resource, name, *, namespace=None):
        from lightkube import ApiError
        from lightkube.models.meta_v1 import Status

        self.calls.append(f"get {resource.__name__} {name}")
        found = self.objects.get((resource.__name__, name))
        if found is None:
            raise ApiError(status=Status(code=404, message="not found"))
        return found

    def list(self, resource, *, namespace=None, labels=None):
        self.calls.append(f"list {resource.__name__}")
        wanted = labels or {}
        return [
            obj
            for (kind, _), obj in self.objects.items()
            if kind == resource.__name__
            and all((obj.metadata.labels or {}).get(k) == v for k, v in wanted.items())  # type: ignore[attr-defined]
        ]

    def apply(self, obj, field_manager=None, force=False):
        name = obj.metadata.name
        self.calls.append(f"apply Service {name}")
        old = self.objects.get(("Service", name))
        port = obj.spec.ports[0]
        port.nodePort = old.spec.ports[0].nodePort if old else self.next_port  # type: ignore[attr-defined]
        self.next_port += 1
        obj.status = old.status if old else ServiceStatus()  # type: ignore[attr-defined]
        self.objects["Service", name] = obj
        return obj

    def close(self) -> None:
        self.calls.append("close")

    def delete(self, resource, name, *, namespace=None):
        self.calls.append(f"delete Service {name}")
        del self.objects["Service", name]


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    fake = FakeKube()
    monkeypatch.setattr(charm, "kube_client", lambda namespace: fake)
    return fake


def state(mode: str, *, planned: int = 3, relations=(), unit_data=None) -> testing.State:
    secret = credentials_secret()
    peers = dataclasses.replace(
        cluster(secret), peers_data={n: dict(unit_data or {}) for n in (1, 2)}
    )
    return testing.State(
        leader=True,
        model=MODEL,
        config={"expose-external": mode},
        containers={container()},
        relations={peers, *relations},
        secrets={secret},
        planned_units=planned,
    )


def services(kube: FakeKube) -> dict[str, Service]:
    return {name: s for (kind, name), s in kube.objects.items() if kind == "Service"}  # type: ignore[misc]


def test_wanted_services_one_per_unit_and_a_bootstrap():
    wanted = wanted_services("kafka-k8s", "nodeport", [2, 0, 1], 29092)

    assert [s.name for s in wanted] == [
        "kafka-k8s-0-external",
        "kafka-k8s-1-external",
        "kafka-k8s-2-external",
        "kafka-k8s-bootstrap",
    ]
    assert {s.type for s in wanted} == {"NodePort"}
    assert wanted[1].selector == {POD_NAME_LABEL: "kafka-k8s-1"}
    assert wanted[3].selector == {APP_LABEL: "kafka-k8s"}
    assert {s.port for s in wanted} == {29092}
    assert {s.type for s in wanted_services("a", "loadbalancer", [0], 1)} == {"LoadBalancer"}
    assert wanted_services("a", "false", [0, 1], 1) == []


def test_the_address_an_outside_client_uses():
    assert node_address([("Hostname", "n1"), ("InternalIP", "10.0.0.4")]) == "10.0.0.4"
    assert node_address([("InternalIP", "10.0.0.4"), ("ExternalIP", "198.51.100.4")]) == (
        "198.51.100.4"
    )
    assert node_address([]) is None
    assert ingress_address([(None, None), (None, "lb.example.com")]) == "lb.example.com"
    assert ingress_address([]) is None


def test_false_never_talks_to_kubernetes(ctx, monkeypatch):
    def refuse(namespace: str):
        raise AssertionError("the Kubernetes API was called")

    monkeypatch.setattr(charm, "kube_client", refuse)

    out = ctx.run(ctx.on.config_changed(), state("false"))

    assert out.unit_status == testing.ActiveStatus("broker and controller")


def test_nodeport_makes_services_and_advertises_the_node_and_node_port(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state("nodeport"))

    made = services(kube)
    assert sorted(made) == [
        "kafka-k8s-0-external",
        "kafka-k8s-1-external",
        "kafka-k8s-2-external",
        "kafka-k8s-bootstrap",
    ]
    unit0 = made["kafka-k8s-0-external"]
    assert unit0.metadata.labels == {MANAGED_LABEL: "kafka-k8s", APP_LABEL: "kafka-k8s"}  # type: ignore[union-attr]
    (owner,) = unit0.metadata.ownerReferences  # type: ignore[union-attr,misc]
    assert (owner.kind, owner.name, owner.uid) == ("StatefulSet", "kafka-k8s", "u1")
    node_port = unit0.spec.ports[0].nodePort  # type: ignore[union-attr,index]
    props = load_properties(read(ctx, out, "/etc/kafka/server.properties"))
    assert f",EXTERNAL://203.0.113.10:{node_port}" in props["advertised.listeners"]
    assert "EXTERNAL://0.0.0.0:29092" in props["listeners"]
    assert "EXTERNAL:SASL_PLAINTEXT" in props["listener.security.protocol.map"]
    peers = out.get_relations("cluster")[0]
    assert peers.local_unit_data["external-address"] == f"203.0.113.10:{node_port}"


def test_scaling_down_and_false_remove_the_services(ctx, kube):
    first = ctx.run(ctx.on.config_changed(), state("nodeport"))

    down = ctx.run(ctx.on.config_changed(), dataclasses.replace(first, planned_units=2))
    assert sorted(services(kube)) == [
        "kafka-k8s-0-external",
        "kafka-k8s-1-external",
        "kafka-k8s-bootstrap",
    ]

    off = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(down, config={"expose-external": "false"})
    )
    assert services(kube) == {}
    assert "EXTERNAL" not in read(ctx, off, "/etc/kafka/server.properties")
    assert not off.get_relations("cluster")[0].local_app_data.get("external-services")


def test_a_load_balancer_without_an_address_waits(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state("loadbalancer"))

    assert out.unit_status == testing.WaitingStatus(
        "waiting for a load balancer address for Service kafka-k8s-0-external"
    )
    assert "EXTERNAL" not in read(ctx, out, "/etc/kafka/server.properties")

    kube.objects["Service", "kafka-k8s-0-external"].status = ServiceStatus(  # type: ignore[attr-defined]
        loadBalancer=LoadBalancerStatus(ingress=[LoadBalancerIngress(hostname="lb0.example.com")])
    )
    again = ctx.run(ctx.on.update_status(), out)
    props = load_properties(read(ctx, again, "/etc/kafka/server.properties"))
    assert ",EXTERNAL://lb0.example.com:29092" in props["advertised.listeners"]


def test_a_service_name_clash_blocks_and_takes_nothing_over(ctx, kube):
    foreign = Service(metadata=ObjectMeta(name="kafka-k8s-1-external", labels={"app": "other"}))
    kube.objects["Service", "kafka-k8s-1-external"] = foreign

    out = ctx.run(ctx.on.config_changed(), state("nodeport"))

    assert out.unit_status == testing.BlockedStatus(
        "Service kafka-k8s-1-external exists and is not kafka-k8s's: rename or delete it"
    )
    assert kube.objects["Service", "kafka-k8s-1-external"] is foreign


def client(external: bool) -> testing.Relation:
    request = {"resource": "orders", "request-id": "r1", "salt": "s"}
    if external:
        request["external-node-connectivity"] = True  # type: ignore[assignment]
    return testing.Relation(
        "kafka-client",
        remote_app_name="orders-app",
        remote_app_data={"version": "v1", "requests": json.dumps([request])},
    )


@pytest.mark.parametrize("external", [True, False])
def test_kafka_client_gets_external_endpoints_when_it_asks(ctx, kube, kafka, external):
    relation = client(external)
    peers = {"external-address": "203.0.113.11:30101"}
    first = ctx.run(
        ctx.on.config_changed(), state("nodeport", relations=[relation], unit_data=peers)
    )
    broker = first.get_container("kafka")
    ready = testing.CheckInfo("kafka-ready", level="ready", status="up")  # type: ignore[arg-type]
    serving = dataclasses.replace(
        first, containers={dataclasses.replace(broker, check_infos={ready})}
    )

    out = ctx.run(
        ctx.on.relation_changed(serving.get_relation(relation.id), remote_unit=0), serving
    )

    (response,) = json.loads(out.get_relation(relation.id).local_app_data["requests"])
    own = out.get_relations("cluster")[0].local_unit_data["external-address"]
    if external:
        assert response["endpoints"] == f"{own},203.0.113.11:30101,203.0.113.11:30101"
    else:
        assert response["endpoints"].endswith(":9092")
        assert "203.0.113" not in response["endpoints"]
