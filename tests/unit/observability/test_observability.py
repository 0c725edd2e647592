# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Metrics and dashboards: the `metrics-endpoint` and `grafana-dashboard` relations' data.

The charm runs under ops.testing; the JMX exporter rules are checked against bean names and
attributes copied from a real broker and a real MirrorMaker (the local tier scrapes them live).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import promql_parser
import pytest
import yaml
from ops import testing

import observability
from charm import KafkaK8sCharm
from charms.kafka_k8s.v0.mirrormaker._rendering import JMX_RULES
from observability import MetricsTarget, decode_dashboard, scrape_jobs
from tests.unit.helpers import MODEL, REPO, host

PASSWORDS = {
    "admin-password": "admin-pw",
    "controller-password": "controller-pw",
    "mirrormaker-password": "mm-pw",
}
MIGRATION_PANELS = {
    "Failed MirrorMaker tasks",
    "Records not yet fetched",
    "Records copied per second, by topic",
    "Bytes copied per second, by topic",
    "Records not yet fetched, by source topic",
    "Replication latency, by topic",
    "Record age, by topic",
    "Checkpoint latency, by consumer group",
    "Task states",
    "Connector states",
}
BROKER_PANELS = {
    "Active controller",
    "Under-replicated partitions",
    "Offline partitions",
    "Partitions",
    "Bytes in and out, by broker",
    "Messages in, by topic",
    "Requests per second, by type",
    "Partitions and leaders, by broker",
}


def state(
    *relations: testing.RelationBase, leader: bool = True, peers: tuple[int, ...] = (1, 2)
) -> testing.State:
    """An initialised cluster whose container is not reachable: only the relations matter."""
    secret = testing.Secret(tracked_content=PASSWORDS, label="internal-credentials", owner="app")
    voters = sorted({0, *peers})[:3]
    cluster = testing.PeerRelation(
        "cluster",
        local_app_data={
            "cluster-id": "MkU3OEVBNTcwNTJENDM2Qk",
            "controller-voters": json.dumps(voters),
            "internal-credentials": secret.id,
        },
        peers_data={number: {} for number in peers},
    )
    return testing.State(
        leader=leader,
        model=MODEL,
        containers={testing.Container("kafka", can_connect=False)},
        relations={cluster, *relations},
        secrets={secret},
    )


def metrics_relation() -> testing.Relation:
    return testing.Relation("metrics-endpoint", remote_app_name="prometheus-k8s")


def dashboard_relation() -> testing.Relation:
    return testing.Relation("grafana-dashboard", remote_app_name="grafana-k8s")


def promql(expr: str) -> None:
    """Parse a dashboard or alert expression, with Grafana's variables filled in."""
    for variable, value in (("$__rate_interval", "5m"), ("$__range", "1h"), ("$topic", ".*")):
        expr = expr.replace(variable, value)
    promql_parser.parse(expr)


# --- metrics-endpoint ------------------------------------------------------------------------


def test_leader_lists_every_units_broker_and_mirrormaker_targets(ctx):
    relation = metrics_relation()

    out = ctx.run(ctx.on.relation_joined(relation, remote_unit=0), state(relation))

    data = out.get_relation(relation.id).local_app_data
    jobs = json.loads(data["scrape_jobs"])
    assert [job["job_name"] for job in jobs] == ["kafka-broker", "kafka-mirrormaker"]
    for job, port, service in zip(jobs, (9101, 9099), ("broker", "mirrormaker"), strict=True):
        assert job["metrics_path"] == "/metrics"
        assert job["static_configs"] == [
            {
                "targets": [f"{host(number)}:{port}"],
                "labels": {
                    "juju_unit": f"kafka-k8s/{number}",
                    "kafka_service": service,
                    **({"migration": "none"} if service == "mirrormaker" else {}),
                },
            }
            for number in (0, 1, 2)
        ]
    metadata = json.loads(data["scrape_metadata"])
    assert metadata["model"] == "kafka-model"
    assert metadata["model_uuid"] == MODEL.uuid
    assert metadata["application"] == "kafka-k8s"
    assert metadata["unit"] == "kafka-k8s/0"
    assert metadata["charm_name"] == "kafka-k8s"
    unit = out.get_relation(relation.id).local_unit_data
    assert unit["prometheus_scrape_unit_address"] == host(0)
    assert unit["prometheus_scrape_unit_name"] == "kafka-k8s/0"


def test_alert_rules_carry_the_topology_and_parse(ctx):
    relation = metrics_relation()

    out = ctx.run(ctx.on.relation_created(relation), state(relation))

    rules = json.loads(out.get_relation(relation.id).local_app_data["alert_rules"])
    (group,) = rules["groups"]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert "KafkaK8sMirrorMakerTaskFailed" in alerts
    for rule in alerts.values():
        assert rule["labels"]["juju_application"] == "kafka-k8s"
        assert rule["labels"]["juju_model"] == "kafka-model"
        assert rule["labels"]["juju_model_uuid"] == MODEL.uuid
        # Prometheus adds the topology's matchers; the rules group by unit only.
        assert not re.search(r"juju_(model|application|charm)", rule["expr"])
        promql(rule["expr"])


def test_mirrormaker_targets_say_when_a_migration_is_requested(ctx):
    relation = metrics_relation()
    base = state(relation)
    cluster = base.get_relations("cluster")[0]
    assert isinstance(cluster, testing.PeerRelation)
    requested = json.dumps({"state": "running", "seq": 1, "at": 1, "by": "kafka-k8s/1"})
    cluster = dataclasses.replace(cluster, peers_data={1: {"mirrormaker-request": requested}})
    out = ctx.run(
        ctx.on.relation_created(relation), dataclasses.replace(base, relations={relation, cluster})
    )
    jobs = json.loads(out.get_relation(relation.id).local_app_data["scrape_jobs"])
    labels = jobs[1]["static_configs"][0]["labels"]
    assert (labels["kafka_service"], labels["migration"]) == ("mirrormaker", "requested")


def test_each_units_storage_and_certificate_get_their_rules(ctx):
    relation = metrics_relation()
    base = state(relation)
    cluster = base.get_relations("cluster")[0]
    assert isinstance(cluster, testing.PeerRelation)
    cluster = dataclasses.replace(
        cluster,
        local_app_data={**cluster.local_app_data, "storage-bytes": json.dumps({"0": 1000})},
        peers_data={1: {"certificate-expiry": "1900000000"}, 2: {"certificate-expiry": "x"}},
    )
    out = ctx.run(
        ctx.on.relation_created(relation), dataclasses.replace(base, relations={relation, cluster})
    )
    (group,) = json.loads(out.get_relation(relation.id).local_app_data["alert_rules"])["groups"]
    per_unit = [
        (rule["alert"], rule["labels"]["juju_unit"], rule["expr"])
        for rule in group["rules"]
        if "juju_unit" in rule["labels"]
    ]
    used = 'sum(kafka_log_log_size{juju_unit="kafka-k8s/0"})'
    assert per_unit == [
        ("KafkaK8sStorageAlmostFull", "kafka-k8s/0", f"{used} / 1000 > 0.9"),
        (
            "KafkaK8sStorageFilling",
            "kafka-k8s/0",
            f"(1000 - {used}) / deriv({used}[1h:1m]) > 0 < 21600",
        ),
        ("KafkaK8sCertificateExpiring", "kafka-k8s/1", "vector(1900000000) - time() < 1209600"),
    ]
    for _, _, expr in per_unit:
        promql(expr)


def test_targets_follow_the_peers(ctx):
    relation = metrics_relation()
    before = state(relation, peers=(1, 2, 3))

    out = ctx.run(ctx.on.relation_joined(relation, remote_unit=0), before)
    (peers,) = out.get_relations("cluster")
    remaining = dataclasses.replace(peers, peers_data={1: {}, 2: {}})
    departed = ctx.run(
        ctx.on.relation_departed(remaining, remote_unit=3, departing_unit=3),
        dataclasses.replace(out, relations={out.get_relation(relation.id), remaining}),
    )

    def targets(result: testing.State) -> list[str]:
        jobs = json.loads(result.get_relation(relation.id).local_app_data["scrape_jobs"])
        return [t for config in jobs[0]["static_configs"] for t in config["targets"]]

    assert targets(out) == [f"{host(n)}:9101" for n in (0, 1, 2, 3)]
    assert targets(departed) == [f"{host(n)}:9101" for n in (0, 1, 2)]


def test_a_follower_writes_only_its_own_address():
    relation = metrics_relation()
    ctx = testing.Context(KafkaK8sCharm, unit_id=1)

    out = ctx.run(
        ctx.on.relation_joined(relation, remote_unit=0),
        testing.State(
            leader=False,
            model=MODEL,
            containers={testing.Container("kafka", can_connect=False)},
            relations={relation, testing.PeerRelation("cluster", peers_data={0: {}})},
        ),
    )

    result = out.get_relation(relation.id)
    assert result.local_app_data == {}
    assert result.local_unit_data["prometheus_scrape_unit_address"] == host(1)
    assert result.local_unit_data["prometheus_scrape_unit_name"] == "kafka-k8s/1"


def test_scrape_jobs_use_each_units_ports_in_unit_order():
    jobs = scrape_jobs(
        [
            MetricsTarget(unit="app/10", host="h10", broker_port=1, mirrormaker_port=2),
            MetricsTarget(unit="app/2", host="h2", broker_port=3, mirrormaker_port=4),
        ]
    )

    assert [c["targets"] for c in jobs[0]["static_configs"]] == [["h2:3"], ["h10:1"]]
    assert [c["targets"] for c in jobs[1]["static_configs"]] == [["h2:4"], ["h10:2"]]


# --- grafana-dashboard -----------------------------------------------------------------------


def _dashboards(ctx: testing.Context[KafkaK8sCharm]) -> tuple[dict[str, Any], testing.State]:
    relation = dashboard_relation()
    out = ctx.run(ctx.on.relation_created(relation), state(relation))
    return json.loads(out.get_relation(relation.id).local_app_data["dashboards"]), out


def test_dashboards_decode_to_grafana_json_with_the_expected_panels(ctx):
    data, _ = _dashboards(ctx)

    templates = data["templates"]
    assert set(templates) == {"file:kafka_migration", "file:kafka_broker"}
    decoded = {}
    for key, template in templates.items():
        assert template["charm"] == "kafka-k8s"
        assert template["juju_topology"]["application"] == "kafka-k8s"
        assert template["juju_topology"]["model_uuid"] == MODEL.uuid
        assert template["inject_dropdowns"] is True
        assert template["dashboard_alt_uid"]
        dashboard = decode_dashboard(template["content"])
        assert len(dashboard["uid"]) == 40
        assert "charm: kafka-k8s" in dashboard["tags"]
        decoded[key] = dashboard

    for key, expected in (
        ("file:kafka_migration", MIGRATION_PANELS),
        ("file:kafka_broker", BROKER_PANELS),
    ):
        dashboard = decoded[key]
        panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
        assert expected <= {panel["title"] for panel in panels}
        variables = {item["name"]: item for item in dashboard["templating"]["list"]}
        assert variables["prometheusds"]["type"] == "datasource"
        assert variables["prometheusds"]["query"] == "prometheus"
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        for panel in panels:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${prometheusds}"}
            assert panel["targets"], panel["title"]
            assert panel["description"], panel["title"]
            for target in panel["targets"]:
                promql(target["expr"])


def test_migration_dashboard_charts_the_mirrormaker_metrics(ctx):
    data, _ = _dashboards(ctx)
    dashboard = decode_dashboard(data["templates"]["file:kafka_migration"]["content"])
    exprs = {
        panel["title"]: " ".join(target["expr"] for target in panel["targets"])
        for panel in dashboard["panels"]
        if panel["type"] != "row"
    }

    assert "mirror_source_connector_record_count" in exprs["Records copied per second, by topic"]
    assert "mirror_source_connector_byte_count" in exprs["Bytes copied per second, by topic"]
    assert "replication_latency_ms" in exprs["Replication latency, by topic"]
    assert "record_age_ms" in exprs["Record age, by topic"]
    assert "checkpoint_latency_ms" in exprs["Checkpoint latency, by consumer group"]
    assert "kafka_connect_connector_task_status" in exprs["Task states"]
    assert "records_lag" in exprs["Records not yet fetched, by source topic"]
    lag = next(p for p in dashboard["panels"] if p["title"] == "Records not yet fetched")
    assert "migration-status" in lag["description"]


def test_dashboard_data_is_stable_between_reconciles(ctx):
    first, out = _dashboards(ctx)
    relation = out.get_relations("grafana-dashboard")[0]

    again = ctx.run(ctx.on.update_status(), out)

    assert json.loads(again.get_relation(relation.id).local_app_data["dashboards"]) == first


def test_the_shipped_dashboard_files_are_the_ones_published():
    files = sorted(path.stem for path in (REPO / "src/grafana_dashboards").glob("*.json"))
    assert files == sorted(observability.load_dashboards())
    assert files == ["kafka_broker", "kafka_migration"]


# --- JMX exporter rules ----------------------------------------------------------------------


def exported_name(rules: list[dict[str, Any]], bean: str) -> tuple[str, dict[str, str]] | None:
    """The name and labels the JMX exporter gives `bean`: the first matching rule wins.

    The exporter matches each rule's pattern unanchored against
    `domain<key=value, ...><>attribute` (`attribute: value` for strings).
    """
    for rule in rules:
        match = re.match(f"^.*(?:{rule['pattern']}).*$", bean)
        if match is None:
            continue

        def fill(template: str, match: re.Match[str] = match) -> str:
            return re.sub(r"\$(\d+)", lambda m: match.group(int(m.group(1))) or "", template)

        name = re.sub(r"[^a-zA-Z0-9_:]", "_", fill(rule["name"])).lower()
        name = re.sub(r"_+", "_", name)
        labels = {key: fill(value) for key, value in rule.get("labels", {}).items()}
        return name, labels
    return None


MIRRORMAKER_BEANS = {
    "kafka.connect.mirror<type=MirrorSourceConnector, target=target, topic=orders, partition=3>"
    "<>record-count": (
        "kafka_connect_mirror_source_connector_record_count",
        {"target": "target", "topic": "orders", "partition": "3"},
    ),
    "kafka.connect.mirror<type=MirrorSourceConnector, target=target, topic=audit.log, "
    "partition=0><>replication-latency-ms-max": (
        "kafka_connect_mirror_source_connector_replication_latency_ms_max",
        {"target": "target", "topic": "audit.log", "partition": "0"},
    ),
    "kafka.connect.mirror<type=MirrorSourceConnector, target=target, topic=orders, partition=0>"
    "<>byte-rate": (
        "kafka_connect_mirror_source_connector_byte_rate",
        {"target": "target", "topic": "orders", "partition": "0"},
    ),
    "kafka.connect.mirror<type=MirrorCheckpointConnector, source=source, target=target, "
    "group=billing, topic=orders, partition=2><>checkpoint-latency-ms-avg": (
        "kafka_connect_mirror_checkpoint_connector_checkpoint_latency_ms_avg",
        {
            "source": "source",
            "target": "target",
            "group": "billing",
            "topic": "orders",
            "partition": "2",
        },
    ),
    "kafka.connect<type=connector-task-metrics, connector=MirrorSourceConnector, task=1>"
    "<>status: failed": (
        "kafka_connect_connector_task_status",
        {"connector": "MirrorSourceConnector", "task": "1", "status": "failed"},
    ),
    "kafka.connect<type=connector-metrics, connector=MirrorCheckpointConnector>"
    "<>status: running": (
        "kafka_connect_connector_status",
        {"connector": "MirrorCheckpointConnector", "status": "running"},
    ),
    "kafka.connect<type=connect-worker-metrics, connector=MirrorSourceConnector>"
    "<>connector-failed-task-count": (
        "kafka_connect_worker_connector_failed_task_count",
        {"connector": "MirrorSourceConnector"},
    ),
    'kafka.consumer<type=consumer-fetch-manager-metrics, client-id="source->target|'
    'MirrorSourceConnector-1|replication-consumer", topic=audit_log, partition=0><>records-lag': (
        "kafka_connect_mirror_consumer_records_lag",
        {
            "connector": "MirrorSourceConnector",
            "task": "1",
            "topic": "audit_log",
            "partition": "0",
        },
    ),
}

BROKER_BEANS = {
    "kafka.server<type=BrokerTopicMetrics, name=BytesInPerSec><>Count": (
        "kafka_server_brokertopicmetrics_bytesin_total",
        {},
    ),
    "kafka.server<type=BrokerTopicMetrics, name=MessagesInPerSec, topic=orders><>Count": (
        "kafka_server_brokertopicmetrics_messagesin_total",
        {"topic": "orders"},
    ),
    "kafka.server<type=ReplicaManager, name=UnderReplicatedPartitions><>Value": (
        "kafka_server_replicamanager_underreplicatedpartitions",
        {},
    ),
    "kafka.controller<type=KafkaController, name=ActiveControllerCount><>Value": (
        "kafka_controller_kafkacontroller_activecontrollercount",
        {},
    ),
    "kafka.network<type=RequestMetrics, name=RequestsPerSec, request=Produce, version=11>"
    "<>Count": (
        "kafka_network_requestmetrics_requests_total",
        {"request": "Produce", "version": "11"},
    ),
    "kafka.network<type=RequestMetrics, name=TotalTimeMs, request=Fetch><>99thPercentile": (
        "kafka_network_requestmetrics_totaltimems",
        {"request": "Fetch", "quantile": "0.99"},
    ),
    "kafka.server<type=ReplicaManager, name=PartitionCount><>Value": (
        "kafka_server_replicamanager_partitioncount",
        {},
    ),
}


@pytest.mark.parametrize(
    ("rules", "beans"),
    [
        (JMX_RULES, MIRRORMAKER_BEANS),
        ((REPO / "templates/jmx_broker.yaml").read_text(), BROKER_BEANS),
    ],
    ids=["mirrormaker", "broker"],
)
def test_jmx_rules_name_the_real_beans(rules: str, beans: dict[str, tuple[str, dict]]):
    config = yaml.safe_load(rules)
    assert config["lowercaseOutputName"] is True
    for rule in config["rules"]:
        re.compile(rule["pattern"])
    for bean, expected in beans.items():
        assert exported_name(config["rules"], bean) == expected, bean


def test_broker_rules_drop_the_unlisted_request_metrics():
    rules = yaml.safe_load((REPO / "templates/jmx_broker.yaml").read_text())["rules"]
    bean = "kafka.network<type=RequestMetrics, name=LocalTimeMs, request=Produce><>Mean"
    assert exported_name(rules, bean) is None
