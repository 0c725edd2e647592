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
  `HOST:PORT` target with a `juju_unit` label; MirrorMaker's also say whether a migration is
  requested) and `alert_rules` (`prometheus_alert_rules/kafka_k8s.yaml`, and for each unit a
  rule on its storage and one on its certificate, with what the charm knows of them);
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ops
import yaml
from cosl import DashboardPath40UID, JujuTopology, LZMABase64
from pydantic import BaseModel, ConfigDict, Field

from models import BrokerNode

logger = logging.getLogger(__name__)

METRICS_RELATION = "metrics-endpoint"
DASHBOARD_RELATION = "grafana-dashboard"
DASHBOARDS_DIR = Path(__file__).resolve().parent / "grafana_dashboards"
ALERT_RULES_FILE = Path(__file__).resolve().parent / "prometheus_alert_rules" / "kafka_k8s.yaml"
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


def scrape_jobs(targets: Sequence[MetricsTarget], *, migrating: bool = False) -> list[JsonDict]:
    """The scrape jobs: every unit's broker exporter and MirrorMaker exporter.

    Targets are named explicitly (not `*:PORT`) so that both jobs list every unit, including
    units whose own databag Prometheus has not read yet. MirrorMaker's exporter answers only
    while a migration runs; its targets are down otherwise, and carry the label
    `migration="requested"` while a migration is requested (else `"none"`): the alert on a
    MirrorMaker that is down fires only then.
    """
    ordered = sorted(targets, key=lambda target: _unit_number(target.unit))
    return [
        {
            "job_name": job,
            "metrics_path": METRICS_PATH,
            "static_configs": [
                {
                    "targets": [f"{target.host}:{port(target)}"],
                    "labels": {"juju_unit": target.unit, "kafka_service": service, **labels},
                }
                for target in ordered
            ],
        }
        for job, service, port, labels in (
            (BROKER_JOB, "broker", lambda target: target.broker_port, {}),
            (
                MIRRORMAKER_JOB,
                "mirrormaker",
                lambda target: target.mirrormaker_port,
                {"migration": "requested" if migrating else "none"},
            ),
        )
    ]


def _unit_number(unit: str) -> int:
    _, _, number = unit.rpartition("/")
    return int(number) if number.isdigit() else 0


# A unit's data volume: alert when it is this full, or full within this many seconds.
STORAGE_FULL_FRACTION = 0.9
STORAGE_FULL_WITHIN = 6 * 3600
# A unit's certificate: alert this long before it expires.
CERTIFICATE_WARNING = 14 * 86400


def shipped_rules(path: Path = ALERT_RULES_FILE) -> list[JsonDict]:
    """The alert rules of the rules file, every group's."""
    groups = yaml.safe_load(path.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def unit_rules(storage: Mapping[str, int], certificates: Mapping[str, float]) -> list[JsonDict]:
    """Rules on what the charm knows of each unit, which no exporter serves.

    Args:
        storage: each unit's data volume in bytes (Kafka's DescribeLogDirs, KIP-827), against
            the size of its Kafka logs that the broker's exporter serves.
        certificates: when each unit's certificate expires, in seconds since the epoch.
    """
    rules: list[JsonDict] = []
    for unit, capacity in sorted(storage.items()):
        used = f'sum(kafka_log_log_size{{juju_unit="{unit}"}})'
        labels = {"juju_unit": unit}
        rules += [
            {
                "alert": "KafkaK8sStorageAlmostFull",
                "expr": f"{used} / {capacity} > {STORAGE_FULL_FRACTION}",
                "for": "5m",
                "labels": {"severity": "critical", **labels},
                "annotations": {
                    "summary": f"Kafka's logs fill {{{{ $value | humanizePercentage }}}} of "
                    f"{unit}'s data volume",
                    "description": "Lower log-retention-hours, or give the units more storage.",
                },
            },
            {
                "alert": "KafkaK8sStorageFilling",
                # Seconds until full at the rate of the last hour (positive: it grows).
                "expr": f"({capacity} - {used}) / deriv({used}[1h:1m]) > 0 "
                f"< {STORAGE_FULL_WITHIN}",
                "for": "15m",
                "labels": {"severity": "warning", **labels},
                "annotations": {
                    "summary": f"{unit}'s data volume is full in {{{{ $value | "
                    "humanizeDuration }} at the rate of the last hour",
                    "description": "A migration copies faster than retention frees space: "
                    "set mirrormaker-throttle-mb-per-second, lower log-retention-hours, or give "
                    "the units more storage.",
                },
            },
        ]
    for unit, expires in sorted(certificates.items()):
        rules.append(
            {
                "alert": "KafkaK8sCertificateExpiring",
                "expr": f"vector({expires:.0f}) - time() < {CERTIFICATE_WARNING}",
                "labels": {"severity": "warning", "juju_unit": unit},
                "annotations": {
                    "summary": f"The certificate {unit}'s broker serves expires in "
                    "{{ $value | humanizeDuration }}",
                    "description": "The certificates provider renews it before it expires; "
                    "one that does not is stuck: check the certificates relation.",
                },
            }
        )
    return rules


def alert_rules(
    topology: JujuTopology,
    storage: Mapping[str, int] | None = None,
    certificates: Mapping[str, float] | None = None,
) -> JsonDict:
    """The alert rules, labelled with the topology; Prometheus adds the matchers."""
    labels = topology.label_matcher_dict
    shipped = [*shipped_rules(), *unit_rules(storage or {}, certificates or {})]
    rules = [{**rule, "labels": {**rule["labels"], **labels}} for rule in shipped]
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
        migrating: whether a migration is requested (MirrorMaker should run).
        storage: each broker's data volume in bytes, by node id, as last measured.
        certificates: when each broker's certificate expires, by node id.
    """

    def __init__(
        self,
        charm: ops.CharmBase,
        nodes: Callable[[], Sequence[BrokerNode]],
        this_host: Callable[[], str],
        migrating: Callable[[], bool] = lambda: False,
        storage: Callable[[], Mapping[int, int]] = dict,
        certificates: Callable[[], Mapping[int, float]] = dict,
    ):
        super().__init__(charm, "observability")
        self._charm = charm
        self._nodes = nodes
        self._this_host = this_host
        self._migrating = migrating
        self._storage = storage
        self._certificates = certificates

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
        app = self._charm.app.name
        storage = {f"{app}/{node}": size for node, size in self._storage().items()}
        expiries = {f"{app}/{node}": when for node, when in self._certificates().items()}
        metrics_data = {
            "scrape_metadata": json.dumps(topology.as_dict()),
            "scrape_jobs": json.dumps(scrape_jobs(self.targets(), migrating=self._migrating())),
            "alert_rules": json.dumps(alert_rules(topology, storage, expiries)),
        }
        for relation in metrics:
            relation.data[self._charm.app].update(metrics_data)
        if dashboards:
            templates = dashboard_templates(load_dashboards(), self._charm.meta.name, topology)
            for relation in dashboards:
                relation.data[self._charm.app]["dashboards"] = json.dumps(templates)
