# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Metrics and dashboards for COS: the `metrics-endpoint` and `grafana-dashboard` relations.

No maintained library for either interface installs from PyPI (Canonical's `prometheus_scrape`
and `grafana_dashboard` are Charmhub libraries), so this module writes the interfaces' published
relation data itself, with `cosl` (PyPI) for the Juju topology and the dashboards' LZMA+base64
encoding.

`metrics-endpoint` (`prometheus_scrape`, provider):
- application data, written by the leader: `scrape_metadata` (the Juju topology), `scrape_jobs`
  (one job for the brokers' JMX exporters and one for MirrorMaker's, each listing every unit's
  `HOST:PORT` target with a `juju_unit` label) and `alert_rules`;
- unit data, written by every unit: `prometheus_scrape_unit_address` and
  `prometheus_scrape_unit_name`.

`grafana-dashboard` (`grafana_dashboard`, provider): application data `dashboards` holds
`{"templates": {"file:NAME": {"charm", "content", "juju_topology", "inject_dropdowns",
"dashboard_alt_uid"}}, "uuid": ...}`, one template per JSON file in `src/grafana_dashboards/`,
each `content` the dashboard's JSON compressed with LZMA and encoded in base64.

Building the payloads (`scrape_jobs`, `alert_rules`, `dashboard_templates`) is pure; the
`Observability` object only reads the charm and writes the databags.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ops
from cosl import DashboardPath40UID, JujuTopology, LZMABase64
from pydantic import BaseModel, ConfigDict, Field

from models import BrokerNode

logger = logging.getLogger(__name__)

METRICS_RELATION = "metrics-endpoint"
DASHBOARD_RELATION = "grafana-dashboard"
DASHBOARDS_DIR = Path(__file__).resolve().parent / "grafana_dashboards"
BROKER_JOB = "kafka-broker"
MIRRORMAKER_JOB = "kafka-mirrormaker"
METRICS_PATH = "/metrics"

JsonDict = dict[str, Any]


class MetricsTarget(BaseModel):
    """One unit as Prometheus scrapes it."""

    model_config = ConfigDict(frozen=True)

    unit: str = Field(min_length=1)
    host: str = Field(min_length=1)
    broker_port: int = Field(default=9101, gt=0, lt=65536)
    mirrormaker_port: int = Field(default=9099, gt=0, lt=65536)


def scrape_jobs(targets: Sequence[MetricsTarget]) -> list[JsonDict]:
    """The scrape jobs: every unit's broker exporter and MirrorMaker exporter.

    Targets are named explicitly (not `*:PORT`) so that both jobs list every unit, including
    units whose own databag Prometheus has not read yet. MirrorMaker's exporter answers only
    while a migration runs; its targets are down otherwise.
    """
    ordered = sorted(targets, key=lambda target: _unit_number(target.unit))
    return [
        {
            "job_name": job,
            "metrics_path": METRICS_PATH,
            "static_configs": [
                {
                    "targets": [f"{target.host}:{port(target)}"],
                    "labels": {"juju_unit": target.unit, "kafka_service": service},
                }
                for target in ordered
            ],
        }
        for job, service, port in (
            (BROKER_JOB, "broker", lambda target: target.broker_port),
            (MIRRORMAKER_JOB, "mirrormaker", lambda target: target.mirrormaker_port),
        )
    ]


def _unit_number(unit: str) -> int:
    _, _, number = unit.rpartition("/")
    return int(number) if number.isdigit() else 0


ALERT_RULES: tuple[JsonDict, ...] = (
    {
        "alert": "KafkaK8sMirrorMakerTaskFailed",
        "expr": 'kafka_connect_connector_task_status{status="failed"} == 1',
        "for": "2m",
        "labels": {"severity": "critical"},
        "annotations": {
            "summary": "MirrorMaker task {{ $labels.connector }}-{{ $labels.task }} failed",
            "description": "Run the migration-status action for the task's error.",
        },
    },
    {
        "alert": "KafkaK8sOfflinePartitions",
        "expr": "kafka_controller_kafkacontroller_offlinepartitionscount > 0",
        "for": "1m",
        "labels": {"severity": "critical"},
        "annotations": {"summary": "{{ $value }} partitions have no leader"},
    },
    {
        "alert": "KafkaK8sUnderReplicatedPartitions",
        "expr": "kafka_server_replicamanager_underreplicatedpartitions > 0",
        "for": "10m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "{{ $labels.juju_unit }} leads {{ $value }} under-replicated partitions"
        },
    },
)


def alert_rules(topology: JujuTopology) -> JsonDict:
    """The alert rules, labelled with the topology; Prometheus adds the matchers."""
    labels = topology.label_matcher_dict
    rules = [{**rule, "labels": {**rule["labels"], **labels}} for rule in ALERT_RULES]
    return {"groups": [{"name": f"{topology.identifier}_kafka_k8s_alerts", "rules": rules}]}


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> dict[str, JsonDict]:
    """The dashboards shipped with the charm, by file stem.

    Raises:
        ValueError: if a file is not a JSON object.
    """
    dashboards: dict[str, JsonDict] = {}
    for path in sorted(directory.glob("*.json")):
        dashboard = json.loads(path.read_text())
        if not isinstance(dashboard, dict):
            raise ValueError(f"{path.name} is not a Grafana dashboard object")
        dashboards[path.stem] = dashboard
    return dashboards


def dashboard_templates(
    dashboards: dict[str, JsonDict], charm_name: str, topology: JujuTopology
) -> JsonDict:
    """The `dashboards` value of the `grafana_dashboard` interface.

    Each dashboard gets a stable uid derived from the charm and the file, and a `charm:` tag.
    The `uuid` changes only when a template does, so unchanged data does not wake Grafana.
    """
    juju_topology = topology.as_dict(excluded_keys=["charm_name"])
    templates: JsonDict = {}
    for stem, dashboard in sorted(dashboards.items()):
        key = f"file:{stem}"
        tags = [tag for tag in dashboard.get("tags", []) if not str(tag).startswith("charm: ")]
        content = {
            **dashboard,
            "uid": DashboardPath40UID.generate(charm_name, f"src/grafana_dashboards/{stem}.json"),
            "tags": [*tags, f"charm: {charm_name}"],
        }
        templates[key] = {
            "charm": charm_name,
            "content": LZMABase64.compress(json.dumps(content, sort_keys=True)),
            "juju_topology": juju_topology,
            "inject_dropdowns": True,
            "dashboard_alt_uid": hashlib.shake_256(f"{charm_name}-{key}".encode()).hexdigest(8),
        }
    digest = hashlib.sha256(json.dumps(templates, sort_keys=True).encode()).hexdigest()
    return {"templates": templates, "uuid": digest[:32]}


def decode_dashboard(content: str) -> JsonDict:
    """A dashboard's JSON from a template's `content`."""
    return json.loads(LZMABase64.decompress(content))


class Observability(ops.Object):
    """Writes this charm's side of `metrics-endpoint` and `grafana-dashboard`.

    Args:
        charm: the charm.
        nodes: every unit of the application, as its peers reach it.
        this_host: the address other pods reach this unit on.
    """

    def __init__(
        self,
        charm: ops.CharmBase,
        nodes: Callable[[], Sequence[BrokerNode]],
        this_host: Callable[[], str],
    ):
        super().__init__(charm, "observability")
        self._charm = charm
        self._nodes = nodes
        self._this_host = this_host

    def targets(self) -> list[MetricsTarget]:
        """Every unit's metrics endpoints."""
        return [
            MetricsTarget(
                unit=f"{self._charm.app.name}/{node.node_id}",
                host=node.host,
                broker_port=node.ports.broker_metrics,
                mirrormaker_port=node.ports.mirrormaker_metrics,
            )
            for node in self._nodes()
        ]

    @property
    def relation_events(self) -> tuple[ops.BoundEvent, ...]:
        """The events that should reconcile this object, besides the peer and leader ones."""
        events = []
        for name in (METRICS_RELATION, DASHBOARD_RELATION):
            relation = self._charm.on[name]
            events.extend((relation.relation_created, relation.relation_joined))
        return tuple(events)

    def reconcile(self) -> None:
        """Bring both relations' data up to date; idempotent."""
        unit_data = {
            "prometheus_scrape_unit_address": self._this_host(),
            "prometheus_scrape_unit_name": self._charm.unit.name,
        }
        metrics = self.model.relations.get(METRICS_RELATION, [])
        dashboards = self.model.relations.get(DASHBOARD_RELATION, [])
        for relation in metrics:
            relation.data[self._charm.unit].update(unit_data)
        if not self._charm.unit.is_leader() or not (metrics or dashboards):
            return
        topology = JujuTopology.from_charm(self._charm)
        metrics_data = {
            "scrape_metadata": json.dumps(topology.as_dict()),
            "scrape_jobs": json.dumps(scrape_jobs(self.targets())),
            "alert_rules": json.dumps(alert_rules(topology)),
        }
        for relation in metrics:
            relation.data[self._charm.app].update(metrics_data)
        if dashboards:
            templates = dashboard_templates(load_dashboards(), self._charm.meta.name, topology)
            for relation in dashboards:
                relation.data[self._charm.app]["dashboards"] = json.dumps(templates)
