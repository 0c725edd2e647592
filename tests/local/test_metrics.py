# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Metrics of a real broker and a real MirrorMaker, scraped over HTTP during a migration.

One unit of the charm's Kafka migrates a one-broker ZooKeeper-mode cluster. The broker's JMX
exporter serves `templates/jmx_broker.yaml` and MirrorMaker's serves the library's
`JMX_RULES`; both are scraped the way Prometheus would scrape the targets the
`metrics-endpoint` relation lists, and every metric the two Grafana dashboards chart must be
there.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from charms.kafka_k8s.v0.mirrormaker import (
    MigrationConfig,
    MirrorMakerService,
    MirrorMakerSettings,
    MirrorMakerWorkload,
    SourceCluster,
    TargetCluster,
)
from observability import MetricsTarget, load_dashboards, scrape_jobs
from substrate.metrics import Sample, find, parse, scrape
from substrate.old_cluster import OldCluster
from substrate.processes import LOOPBACK, ClientConfig, current_user, wait_until
from substrate.units import NewCluster

REFRESH = 10
TOPICS = {"orders": (3, 6000), "audit.log": (1, 2000)}
GROUP = "billing"
METRIC_NAME = re.compile(r"\b((?:kafka|jvm)_[a-z0-9_]+)\b")


def charted_metrics(dashboard: str) -> set[str]:
    """Every metric name a shipped dashboard's queries use."""
    content = load_dashboards()[dashboard]
    exprs = [target["expr"] for panel in content["panels"] for target in panel.get("targets", [])]
    return {name for expr in exprs for name in METRIC_NAME.findall(expr)}


def _load(config: ClientConfig) -> None:
    admin = AdminClient(config)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=n, replication_factor=1) for name, (n, _) in TOPICS.items()]
    )
    for future in futures.values():
        future.result(timeout=60)
    producer = Producer({**config, "acks": "all", "linger.ms": 20})
    for topic, (_, records) in TOPICS.items():
        for index in range(records):
            producer.produce(topic, key=f"{topic}-{index}", value=f"{topic} record {index}")
            producer.poll(0)
    assert producer.flush(120) == 0
    consumer = Consumer(
        {**config, "group.id": GROUP, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    consumer.subscribe(["orders"])
    read = 0
    deadline = time.monotonic() + 120
    try:
        while read < 1000 and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=1.0):
                if message.error():
                    raise KafkaException(message.error())
                read += 1
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    assert read >= 1000


@dataclass
class Run:
    new: NewCluster
    service: MirrorMakerService

    @property
    def broker_port(self) -> int:
        return self.new.units[0].workload.ports.broker_metrics

    @property
    def mirrormaker_port(self) -> int:
        return self.new.units[0].workload.ports.mirrormaker_metrics


@pytest.fixture(scope="module")
def old(kafka_cache: Path, local_tmp: Path) -> Iterator[OldCluster]:
    with OldCluster(local_tmp / "metrics-old", cache=kafka_cache, size=1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def new(kafka_cache: Path, local_tmp: Path) -> Iterator[NewCluster]:
    with NewCluster(local_tmp / "metrics-new", cache=kafka_cache, size=1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def run(old: OldCluster, new: NewCluster) -> Iterator[Run]:
    """The old cluster loaded, and MirrorMaker started on the new cluster's unit."""
    old_config = old.admin_config()
    _load(old_config)
    unit = new.units[0]
    ports = unit.workload.ports
    user, group = current_user()
    workload = MirrorMakerWorkload(
        root=unit.paths.root,
        user=user,
        group=group,
        rest_port=ports.mirrormaker_rest,
        metrics_port=ports.mirrormaker_metrics,
        metrics_host=LOOPBACK,
        heap_mb=320,
        java_home=unit.workload.java_home,
    )
    settings = MirrorMakerSettings(
        source=SourceCluster(
            name="old",
            bootstrap_servers=tuple(old.bootstrap.split(",")),
            username=str(old_config["sasl.username"]),
            password=str(old_config["sasl.password"]),
        ),
        target=TargetCluster(
            bootstrap_servers=tuple(new.bootstrap.split(",")),
            username="mirrormaker",
            password=new.credentials.mirrormaker_password,
        ),
        config=MigrationConfig.from_options(
            {"mirrormaker-refresh-interval": REFRESH, "mirrormaker-tasks-max": 2}
        ),
        unit_host=LOOPBACK,
        units=1,
        workload=workload,
    )
    service = MirrorMakerService(unit.container, workload)
    service.run(settings)
    try:
        yield Run(new, service)
    finally:
        service.stop()


def _mirrormaker_samples(run: Run) -> list[Sample]:
    try:
        return parse(scrape(run.mirrormaker_port))
    except OSError:
        return []


def test_mirrormaker_reports_record_count_of_migrated_topics(run: Run):
    def copied(topic: str) -> bool:
        samples = _mirrormaker_samples(run)
        count = find(samples, "kafka_connect_mirror_source_connector_record_count", topic=topic)
        return sum(sample.value for sample in count) > 0

    wait_until(lambda: copied("orders"), timeout=300, interval=3, what="record_count of orders")
    wait_until(lambda: copied("audit.log"), timeout=60, interval=3, what="record_count of audit")
    samples = _mirrormaker_samples(run)
    partitions = find(
        samples, "kafka_connect_mirror_source_connector_record_count", topic="orders"
    )
    assert {sample.labels["partition"] for sample in partitions} == {"0", "1", "2"}
    assert {sample.labels["target"] for sample in partitions} == {"target"}
    for name in (
        "kafka_connect_mirror_source_connector_byte_count",
        "kafka_connect_mirror_source_connector_record_rate",
        "kafka_connect_mirror_source_connector_byte_rate",
        "kafka_connect_mirror_source_connector_record_age_ms",
        "kafka_connect_mirror_source_connector_record_age_ms_max",
        "kafka_connect_mirror_source_connector_replication_latency_ms",
        "kafka_connect_mirror_source_connector_replication_latency_ms_avg",
    ):
        assert find(samples, name, topic="orders", partition="0"), name


def test_mirrormaker_reports_task_and_connector_status(run: Run):
    def states() -> tuple[dict[str, str], dict[str, str], list[float]]:
        samples = _mirrormaker_samples(run)
        tasks = {
            sample.labels["task"]: sample.labels["status"]
            for sample in find(
                samples, "kafka_connect_connector_task_status", connector="MirrorSourceConnector"
            )
            if sample.value == 1
        }
        connectors = {
            sample.labels["connector"]: sample.labels["status"]
            for sample in find(samples, "kafka_connect_connector_status")
            if sample.value == 1
        }
        running = find(
            samples,
            "kafka_connect_worker_connector_running_task_count",
            connector="MirrorSourceConnector",
        )
        return tasks, connectors, [sample.value for sample in running]

    expected_tasks = {"0": "running", "1": "running"}
    wait_until(
        lambda: states()[0] == expected_tasks and states()[2] == [2],
        timeout=300,
        interval=3,
        what="two running MirrorSourceConnector tasks",
    )
    _, connectors, _ = states()
    assert connectors["MirrorSourceConnector"] == "running"
    assert connectors["MirrorCheckpointConnector"] == "running"


def test_mirrormaker_reports_source_lag_and_checkpoints(run: Run):
    partitions = {("orders", "0"), ("orders", "1"), ("orders", "2"), ("audit_log", "0")}

    def lag() -> list[Sample]:
        return find(
            _mirrormaker_samples(run),
            "kafka_connect_mirror_consumer_records_lag",
            connector="MirrorSourceConnector",
        )

    def checkpointed() -> bool:
        return bool(
            find(
                _mirrormaker_samples(run),
                "kafka_connect_mirror_checkpoint_connector_checkpoint_latency_ms_avg",
                group=GROUP,
                topic="orders",
            )
        )

    wait_until(checkpointed, timeout=6 * REFRESH + 120, interval=3, what=f"a {GROUP} checkpoint")
    wait_until(
        lambda: {(s.labels["topic"], s.labels["partition"]) for s in lag()} == partitions,
        timeout=120,
        interval=3,
        what="records-lag of every replicated partition",
    )
    assert all(sample.value >= 0 for sample in lag())


def test_every_metric_the_migration_dashboard_charts_is_served(run: Run):
    served = {sample.name for sample in _mirrormaker_samples(run)}
    missing = charted_metrics("kafka_migration") - served
    assert not missing, (
        f"the migration dashboard charts metrics MirrorMaker does not serve: {missing}"
    )


def test_broker_serves_the_dashboard_metrics(run: Run):
    samples = parse(scrape(run.broker_port))

    def value(name: str) -> list[float]:
        return [sample.value for sample in find(samples, name)]

    assert value("kafka_controller_kafkacontroller_activecontrollercount") == [1]
    assert value("kafka_server_replicamanager_underreplicatedpartitions") == [0]
    assert value("kafka_server_replicamanager_partitioncount")[0] > 0
    bytes_in = find(samples, "kafka_server_brokertopicmetrics_bytesin_total")
    assert any("topic" not in sample.labels and sample.value > 0 for sample in bytes_in), bytes_in
    assert find(samples, "kafka_server_brokertopicmetrics_messagesin_total", topic="orders")
    assert find(samples, "kafka_network_requestmetrics_requests_total", request="Produce")
    missing = charted_metrics("kafka_broker") - {sample.name for sample in samples}
    assert not missing, f"the broker dashboard charts metrics the broker does not serve: {missing}"
    names = {sample.name for sample in samples}
    assert len(names) < 400, f"{len(names)} metric names: the rules export more than intended"


def test_every_listed_scrape_target_answers(run: Run):
    unit = run.new.units[0]
    target = MetricsTarget(
        unit="kafka-k8s/0",
        host=LOOPBACK,
        broker_port=unit.workload.ports.broker_metrics,
        mirrormaker_port=unit.workload.ports.mirrormaker_metrics,
    )
    for job in scrape_jobs([target]):
        for config in job["static_configs"]:
            for address in config["targets"]:
                url = f"http://{address}{job['metrics_path']}"
                with urllib.request.urlopen(url, timeout=10) as response:
                    assert response.status == 200
                    assert "jvm_memory_bytes_used" in response.read().decode()
