# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The workload as the pinned charmed-kafka rock runs it (issue 26, item 6).

Compared with the rock and Canonical's kafka-k8s-operator at the digest `charmcraft.yaml` pins:
units are named `<app>-<n>.<app>-endpoints` and the pod's DNS search path completes the name
(no `svc.cluster.local`, so a cluster with another DNS domain forms its quorum); every service
and exec that runs Java sets `JAVA_HOME` as the rock's own service does; the local tier runs the
rock's Kafka and JMX exporter releases, and the dashboards chart the metric names that exporter
(0.18.0) serves.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from ops import testing

from tests.unit.helpers import (
    CHARMCRAFT,
    MODEL,
    REPO,
    container,
    mm2_resolved,
    properties,
    read,
    serving,
)

pytestmark = pytest.mark.usefixtures("clusters")

JAVA_HOME = "/usr/lib/jvm/java-18-openjdk-amd64"
UNIT_0 = "kafka-k8s-0.kafka-k8s-endpoints"


def _started(ctx) -> testing.State:
    peers = testing.PeerRelation("cluster")
    state = testing.State(
        leader=True, model=MODEL, containers={container()}, relations={peers}, planned_units=1
    )
    return ctx.run(ctx.on.config_changed(), state)


def test_the_broker_is_named_as_the_rock_names_it_without_a_dns_domain(ctx):
    out = _started(ctx)

    props = properties(read(ctx, out, "/etc/kafka/server.properties"))
    assert props["advertised.listeners"] == (
        f"CLIENT://{UNIT_0}:9092,INTERNAL://{UNIT_0}:19092,CONTROLLER://{UNIT_0}:9097"
    )
    assert props["controller.quorum.voters"] == f"0@{UNIT_0}:9097"
    assert "svc.cluster.local" not in json.dumps(props)


def test_mirrormakers_rest_listener_is_named_as_the_rock_names_the_unit(ctx):
    state, _ = serving(ctx)

    out = ctx.run(ctx.on.action("start-migration"), state)

    mm2 = mm2_resolved(ctx, out)
    assert mm2["listeners"] == f"http://{UNIT_0}:8083"
    assert mm2["rest.advertised.host.name"] == UNIT_0
    assert mm2["target.bootstrap.servers"] == ",".join(
        f"kafka-k8s-{n}.kafka-k8s-endpoints:19092" for n in range(3)
    )


def test_every_service_and_exec_sets_java_home_as_the_rock_does(ctx):
    state, _ = serving(ctx)

    out = ctx.run(ctx.on.action("start-migration"), state)

    services = out.get_container("kafka").plan.services
    assert {name: s.environment.get("JAVA_HOME") for name, s in services.items()} == {
        "kafka": JAVA_HOME,
        "mirrormaker": JAVA_HOME,
    }


def test_the_storage_format_sets_java_home(ctx):
    _started(ctx)

    (format_run,) = [
        run for run in ctx.exec_history["kafka"] if run.command[0].endswith("kafka-storage.sh")
    ]
    assert format_run.environment["JAVA_HOME"] == JAVA_HOME


def test_the_local_tier_runs_the_rocks_kafka_and_jmx_exporter_releases():
    pom = ET.parse(REPO / "substrate/runtime/pom.xml").getroot()  # noqa: S314 - our own file
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    versions = {p.tag.split("}")[1]: p.text for p in pom.find("m:properties", namespace) or []}
    assert versions == {"kafka.version": "3.9.0", "jmx.exporter.version": "0.18.0"}
    # The digest whose rock ships those (Canonical's kafka-k8s-operator pins it on 3/edge).
    source = CHARMCRAFT["resources"]["kafka-image"]["upstream-source"]
    assert source.endswith(
        "@sha256:788c5c4639fb659959758b24ff133ba387f34bf4f91feeda082f0162553561a4"
    )


# Names of the 1.x JMX exporter's JVM metrics, and what the rock's 0.18.0 calls them.
EXPORTER_1X_NAMES = {
    "jvm_memory_used_bytes": "jvm_memory_bytes_used",
    "jvm_memory_committed_bytes": "jvm_memory_bytes_committed",
    "jvm_memory_max_bytes": "jvm_memory_bytes_max",
    "jvm_memory_init_bytes": "jvm_memory_bytes_init",
    "jvm_memory_pool_used_bytes": "jvm_memory_pool_bytes_used",
    "jvm_memory_pool_committed_bytes": "jvm_memory_pool_bytes_committed",
    "jvm_memory_pool_max_bytes": "jvm_memory_pool_bytes_max",
    "jvm_classes_currently_loaded": "jvm_classes_loaded",
}


@pytest.mark.parametrize("dashboard", ["kafka_broker", "kafka_migration"])
def test_dashboards_query_the_metric_names_the_rocks_exporter_serves(dashboard):
    text = (REPO / "src/grafana_dashboards" / f"{dashboard}.json").read_text()
    queries = re.findall(r'"expr": "((?:[^"\\]|\\.)*)"', text)
    named = {name for query in queries for name in re.findall(r"\bjvm_[a-z_]+", query)}

    assert named, f"{dashboard} charts no JVM metric"
    assert not named & set(EXPORTER_1X_NAMES), [EXPORTER_1X_NAMES[n] for n in named]
