# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""A migration that runs itself: failed tasks restart, and the alert rules fire on real samples.

One unit of the charm's Kafka migrates a one-broker ZooKeeper-mode cluster while `Scraper`
scrapes the unit's broker and MirrorMaker exporters every 3 s, as Prometheus would. Twice a
MirrorMaker task is made to fail the way a rotation can make it fail: a DENY WRITE on the
migrated topic for MirrorMaker's user, then the DENY removed.

- The first time, nothing but the library's own watcher acts, called every 3 s as the leader's
  update-status would call it (with a 20 s first backoff instead of 60 s, to save time): it
  waits the backoff, asks Connect to restart the failed task, and every record arrives.
- The second time, `restart-mirrormaker all=true` does it on demand: Connect's restart
  request and a restart of the unit's MirrorMaker process; every record arrives.
- Then `promtool test rules` evaluates the shipped rules on what was scraped (see
  `test_alert_rules_fire_on_real_samples`).
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from charmlibs.interfaces.tls_certificates import PrivateKey
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from cosl import JujuTopology
from cryptography import x509

from admin import KafkaAdmin
from charms.kafka_k8s.v0.mirrormaker import MigrationConfig, TargetCluster, _clients, _restarts
from charms.kafka_k8s.v0.mirrormaker._connectors import ConnectorState
from charms.kafka_k8s.v0.mirrormaker._restarts import RestartLog, RestartPolicy
from models import ADMIN_USER
from observability import alert_rules, shipped_rules, unit_rules
from substrate.certificates import CertificateAuthority
from substrate.metrics import Sample, Scrape, Scraper, Target, find, run_promtool
from substrate.migration import (
    MirrorMakers,
    produce,
    source_cluster,
    source_user,
    target_cluster,
    wait_copied,
)
from substrate.old_cluster import OldCluster
from substrate.processes import LOOPBACK, wait_until
from substrate.units import NewCluster

TOPIC = "orders"
BATCH = 500
UNIT = "kafka-k8s/0"
# The leader's watcher, as update-status would call it, with a shorter first backoff.
POLICY = RestartPolicy(first_delay=20)
WATCH_INTERVAL = 3.0


@dataclass
class Migration:
    old: OldCluster
    new: NewCluster
    mirrormakers: MirrorMakers
    target: TargetCluster
    scraper: Scraper
    written: int = 0
    # Scrapes of interest, by what they show.
    marks: dict[str, Scrape] = field(default_factory=dict)
    # MirrorMaker's process start times, as its exporter served them.
    starts: list[float] = field(default_factory=list)

    def write(self, count: int = BATCH) -> None:
        produce(self.old.admin_config(), TOPIC, self.written, count)
        self.written += count

    def copied(self) -> int:
        duplicates = wait_copied(self.old.admin_config(), self.new.admin_config(), [TOPIC])
        print(f"{duplicates} records copied twice")  # at least once: measured, not asserted
        return duplicates

    def states(self) -> list[ConnectorState]:
        with _clients.ClusterClient(self.target, "target", 10.0) as client:
            return client.connector_states("source")

    def mark(self, name: str) -> Scrape:
        self.marks[name] = found = self.scraper.once()
        start = find(found.samples, "process_start_time_seconds", kafka_service="mirrormaker")
        if start and start[0].value not in self.starts:
            self.starts.append(start[0].value)
        return found


_Acl = TypeVar("_Acl", bound=AclBinding)


def _deny_binding(kind: type[_Acl]) -> _Acl:
    return kind(
        ResourceType.TOPIC,
        TOPIC,
        ResourcePatternType.LITERAL,
        "User:mirrormaker",
        "*",
        AclOperation.WRITE,
        AclPermissionType.DENY,
    )


def fail_a_task(run: Migration) -> None:
    """DENY WRITE on the topic for MirrorMaker's user until its task fails; then lift it."""
    admin = AdminClient(run.new.admin_config())
    for future in admin.create_acls([_deny_binding(AclBinding)]).values():
        future.result(timeout=30)
    try:
        run.write()
        wait_until(
            lambda: any(state.state == "FAILED" for state in run.states()),
            timeout=180,
            interval=2,
            what="a MirrorMaker task failed by the DENY",
        )
        wait_until(
            lambda: bool(
                find(
                    run.scraper.once().samples,
                    "kafka_connect_connector_task_status",
                    status="failed",
                )
            ),
            timeout=60,
            interval=2,
            what="the failed task in MirrorMaker's metrics",
        )
        run.mark("failed")
    finally:
        for future in admin.delete_acls([_deny_binding(AclBindingFilter)]).values():
            future.result(timeout=30)


@pytest.fixture(scope="module")
def run(old_cluster: OldCluster, kafka_cache: Path, local_tmp: Path) -> Iterator[Migration]:
    source_user(old_cluster)
    source_admin = AdminClient(old_cluster.admin_config())
    created = source_admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])
    created[TOPIC].result(timeout=60)
    with NewCluster(local_tmp / "unattended-new", cache=kafka_cache, size=1) as new:
        target = target_cluster(new)
        config = MigrationConfig.from_options(
            {"mirrormaker-refresh-interval": 10, "mirrormaker-tasks-max": 2}
        )
        mirrormakers = MirrorMakers.on(new, source_cluster(old_cluster), target, config)
        ports = new.units[0].workload.ports
        scraper = Scraper(
            [
                Target(ports.broker_metrics, {"juju_unit": UNIT, "kafka_service": "broker"}),
                Target(
                    ports.mirrormaker_metrics,
                    {"juju_unit": UNIT, "kafka_service": "mirrormaker", "migration": "requested"},
                ),
            ]
        )
        migration = Migration(old_cluster, new, mirrormakers, target, scraper)
        migration.write()
        mirrormakers.run()
        scraper.start()
        try:
            migration.copied()
            yield migration
        finally:
            scraper.stop()
            mirrormakers.stop()


def test_a_failed_task_restarts_itself_within_the_backoff(run: Migration):
    before = run.mark("copying-before")
    run.write()
    run.copied()
    run.mark("copying-after")
    assert find(before.samples, "kafka_connect_connector_task_status", status="running")

    fail_a_task(run)
    log, shown, watched = RestartLog(), None, 0
    failed_at = max(state.since or 0 for state in run.states() if state.state == "FAILED")
    while not log.times:
        assert watched < 60, f"no restart after {watched} looks: {shown}"
        shown, log = _restarts.watch(run.target, run.states(), log, POLICY, time.time())
        watched += 1
        if not log.times:
            time.sleep(WATCH_INTERVAL)
    # Restarted once the backoff had passed since Connect recorded the failure.
    assert log.times[0] >= failed_at + POLICY.first_delay
    assert log.tasks and log.tasks[0].startswith("MirrorSourceConnector-")
    assert shown is not None and "restarted at" in shown[1]
    run.copied()
    wait_until(
        lambda: all(state.state == "RUNNING" for state in run.states()),
        timeout=60,
        what="every connector and task running again",
    )


def test_restart_mirrormaker_does_the_same_on_demand(run: Migration):
    fail_a_task(run)
    # What the action does with all=true: Connect's restart request for the failed tasks,
    # and every unit's MirrorMaker process restarted (here, the one unit's).
    asked = _restarts.restart_failed(run.target)
    assert [state.state for state in asked] == ["FAILED"] * len(asked) and asked
    assert all(service.restart() for service in run.mirrormakers.services)
    run.copied()
    wait_until(
        lambda: all(state.state == "RUNNING" for state in run.states()),
        timeout=120,
        what="every connector and task running again",
    )
    run.mark("after-restart")
    assert len(run.starts) == 2, run.starts


# The alert rules on what was scraped -------------------------------------------------------------

# promtool's clock: each case holds the scraped values for this long, and is judged at its end.
HOLD_MINUTES = 70
EVAL = "65m"


def _series(sample: Sample) -> str:
    labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
    return f"{sample.name}{{{labels}}}"


def _expanding(value: float, step: float = 0.0, times: int = HOLD_MINUTES) -> str:
    """`value`, then `times` more samples `step` apart, in promtool's `a+bxn`."""
    return f"{value:f}{'-' if step < 0 else '+'}{abs(step):f}x{times}"


def _held(samples: list[Sample], step: float = 0.0) -> list[dict[str, str]]:
    """Each sample as a series holding its value (growing by `step` a minute) for the case."""
    return [{"series": _series(s), "values": _expanding(s.value, step)} for s in samples]


def _case(
    name: str, series: list[dict[str, str]], firing: dict[str, list[dict[str, str]]]
) -> dict[str, Any]:
    """A promtool test: these series; at the end, exactly these alerts, none of the others."""
    alerts = sorted({rule["alert"] for rule in RULES})
    return {
        "name": name,
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {
                "eval_time": EVAL,
                "alertname": alert,
                "exp_alerts": [{"exp_labels": labels} for labels in firing.get(alert, [])],
            }
            for alert in alerts
        ],
    }


RULES = shipped_rules()
MODEL_UUID = "b7b2d3c4-1f0e-4c3a-9d8e-5a6b7c8d9e0f"


def _bare(group: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """A rule group of these rules without their annotations."""
    bare = [{key: value for key, value in rule.items() if key != "annotations"} for rule in rules]
    return {"groups": [{"name": group, "rules": bare}]}


def _rule_labels(alert: str) -> dict[str, str]:
    return next(rule["labels"] for rule in RULES if rule["alert"] == alert)


def _copy_series(
    run: Migration, mark: str, *, copying: bool, waiting: float | None = None
) -> list[dict[str, str]]:
    """MirrorMaker's series of a marked scrape, with its record counts growing or still.

    With `copying` the counts grow as they grew between two real scrapes; with `waiting`,
    that many records wait on the source for each of the tasks' partitions.
    """
    scrape = run.marks[mark]
    names = ("kafka_connect_connector_task_status", "kafka_connect_connector_status")
    series = _held([s for s in scrape.samples if s.name in names])
    lags = find(scrape.samples, "kafka_connect_mirror_consumer_records_lag")
    assert lags or waiting is None, "the tasks' consumers serve their lag"
    series += _held([Sample(s.name, s.labels, waiting or s.value) for s in lags])
    counts = find(scrape.samples, "kafka_connect_mirror_source_connector_record_count")
    assert counts or waiting is None, "the tasks serve the records they copied"
    before = run.marks["copying-before"].samples
    for count in counts:
        earlier = [s for s in before if s.name == count.name and s.labels == count.labels]
        step = count.value - earlier[0].value if copying and earlier else 0.0
        series += _held([count], step)
    series += _held(scrape.up)
    return series


def test_alert_rules_fire_on_real_samples(run: Migration, local_tmp: Path):
    """`promtool test rules` on the shipped rules and what the exporters really served.

    Each case holds the values of one real scrape (a copy in progress, a failed task, a
    stopped MirrorMaker) for 70 minutes of promtool's clock, with the record counts growing
    at the rate they grew between two real scrapes, and judges the alerts at 65 minutes: the
    ones that must fire, with their labels, and no other. Where the run could not show a
    state (running tasks that copy nothing while records wait, a broker out of sync, offline
    partitions, a full disk, a MirrorMaker that keeps restarting, a certificate about to
    expire), the real series get the values of that state. A failed task closes its consumer,
    and the consumer's lag metrics go with it: its stall is TaskFailed's to tell.
    """
    admin = KafkaAdmin(run.new.internal_bootstrap, ADMIN_USER, run.new.admin_password)
    with admin:
        capacity = admin.log_dir_bytes([0])[0]
    run.mirrormakers.stop()
    down = run.scraper.once()
    directory = local_tmp / "alert-rules"
    directory.mkdir(exist_ok=True)
    # What was scraped, for a post-mortem (KAFKA_K8S_KEEP_TMP=1 keeps it).
    (directory / "scrapes.json").write_text(
        json.dumps(
            {
                name: [[s.name, s.labels, s.value] for s in (*mark.samples, *mark.up)]
                for name, mark in {**run.marks, "down": down}.items()
            }
        )
    )
    healthy, failed = run.marks["copying-after"], run.marks["failed"]
    mirrormaker = {"juju_unit": UNIT, "kafka_service": "mirrormaker"}
    failed_task = find(failed.samples, "kafka_connect_connector_task_status", status="failed")
    failed_lags = find(failed.samples, "kafka_connect_mirror_consumer_records_lag")

    broker_names = (
        "kafka_server_replicamanager_underreplicatedpartitions",
        "kafka_controller_kafkacontroller_offlinepartitionscount",
        "kafka_server_replicafetchermanager_maxlag",
        "kafka_log_log_size",
    )
    broker = [
        s
        for s in healthy.samples
        if s.name in broker_names and s.labels.get("kafka_service") == "broker"
    ]
    assert {s.name for s in broker} == set(broker_names), "the broker serves every metric"
    maxlag = [
        s for s in broker if s.name.endswith("maxlag") and s.labels.get("client_id") == "Replica"
    ]
    assert maxlag, "the broker serves its replica fetchers' lag"

    def broken(sample: Sample) -> Sample:
        bad = {
            "kafka_server_replicamanager_underreplicatedpartitions": 2.0,
            "kafka_controller_kafkacontroller_offlinepartitionscount": 1.0,
            "kafka_server_replicafetchermanager_maxlag": 20000.0,
        }
        return Sample(sample.name, sample.labels, bad.get(sample.name, sample.value))

    broker_up = [s for s in healthy.up if s.labels["kafka_service"] == "broker"]
    unit = {"juju_unit": UNIT, "kafka_service": "broker"}
    log_size = sum(s.value for s in broker if s.name == "kafka_log_log_size")
    # Growing at a rate that fills what is left of the volume within 3 hours.
    filling = (
        (capacity - log_size)
        / (3 * 60)
        / max(1, len([s for s in broker if s.name == "kafka_log_log_size"]))
    )

    # A certificate as a provider signs it (90 days, as self-signed-certificates does).
    ca = CertificateAuthority(validity=datetime.timedelta(days=90))
    tls = ca.issue("kafka-k8s", 0, "local", [LOOPBACK], PrivateKey.generate())
    leaf = x509.load_pem_x509_certificate(tls.chain.encode())
    assert tls.expires is not None
    issued = tls.expires - leaf.not_valid_before_utc.timestamp()
    cases = [
        _case(
            "copying",
            _copy_series(run, "copying-after", copying=True, waiting=BATCH) + _held(broker),
            {},
        ),
        # A failed task's consumer and its metrics are closed with it: TaskFailed tells.
        _case(
            "a failed task",
            _copy_series(run, "failed", copying=False),
            {
                "KafkaK8sMirrorMakerTaskFailed": [
                    {**s.labels, **_rule_labels("KafkaK8sMirrorMakerTaskFailed")}
                    for s in failed_task
                ],
                # The running task's records, if any waited when the scrape was taken.
                "KafkaK8sMigrationStalled": [
                    {"juju_unit": UNIT, **_rule_labels("KafkaK8sMigrationStalled")}
                ]
                if sum(s.value for s in failed_lags)
                else [],
            },
        ),
        _case(
            "running tasks that copy nothing while records wait",
            _copy_series(run, "copying-after", copying=False, waiting=BATCH),
            {
                "KafkaK8sMigrationStalled": [
                    {"juju_unit": UNIT, **_rule_labels("KafkaK8sMigrationStalled")}
                ]
            },
        ),
        _case(
            "MirrorMaker stopped while a migration is requested",
            _held([s for s in down.up if s.labels["kafka_service"] == "mirrormaker"]),
            {
                "KafkaK8sMirrorMakerDown": [
                    {
                        **mirrormaker,
                        "migration": "requested",
                        **_rule_labels("KafkaK8sMirrorMakerDown"),
                    }
                ]
            },
        ),
        _case(
            "MirrorMaker stopped with no migration requested",
            _held(
                [
                    Sample(s.name, {**s.labels, "migration": "none"}, s.value)
                    for s in down.up
                    if s.labels["kafka_service"] == "mirrormaker"
                ]
            ),
            {},
        ),
        _case(
            "MirrorMaker restarting again and again",
            [
                {
                    "series": _series(Sample("process_start_time_seconds", mirrormaker, 0)),
                    # The two real starts, then two more 10 minutes apart.
                    "values": " ".join(
                        _expanding(start, times=10)
                        for start in (*run.starts, run.starts[-1] + 600, run.starts[-1] + 1200)
                    ),
                }
            ],
            {
                "KafkaK8sMirrorMakerRestartLoop": [
                    {**mirrormaker, **_rule_labels("KafkaK8sMirrorMakerRestartLoop")}
                ]
            },
        ),
        _case(
            "a broker out of sync, partitions offline, the broker down",
            _held([broken(s) for s in broker] + [Sample("up", s.labels, 0.0) for s in broker_up]),
            {
                "KafkaK8sUnderReplicatedPartitions": [
                    {**unit, **_rule_labels("KafkaK8sUnderReplicatedPartitions")}
                ],
                "KafkaK8sOfflinePartitions": [
                    {**unit, **_rule_labels("KafkaK8sOfflinePartitions")}
                ],
                "KafkaK8sBrokerNotInSync": [
                    {**s.labels, **_rule_labels("KafkaK8sBrokerNotInSync")} for s in maxlag
                ],
                "KafkaK8sBrokerDown": [{**unit, **_rule_labels("KafkaK8sBrokerDown")}],
            },
        ),
    ]
    storage_rules = unit_rules({UNIT: capacity}, {UNIT: issued})
    storage_cases = [
        {
            "name": "the data volume as it is, the certificate just issued",
            "interval": "1m",
            "input_series": _held([s for s in broker if s.name == "kafka_log_log_size"]),
            "alert_rule_test": [
                {"eval_time": EVAL, "alertname": alert, "exp_alerts": []}
                for alert in (
                    "KafkaK8sStorageAlmostFull",
                    "KafkaK8sStorageFilling",
                    "KafkaK8sCertificateExpiring",
                )
            ],
        },
        {
            "name": "the data volume filling within 3 hours",
            "interval": "1m",
            "input_series": _held([s for s in broker if s.name == "kafka_log_log_size"], filling),
            "alert_rule_test": [
                {
                    "eval_time": EVAL,
                    "alertname": "KafkaK8sStorageFilling",
                    "exp_alerts": [{"exp_labels": {"juju_unit": UNIT, "severity": "warning"}}],
                },
            ],
        },
        {
            # promtool's clock starts at the epoch: there the certificate was issued.
            "name": "the certificate 15, then 13 days before it expires",
            "interval": "1h",
            "input_series": [],
            "alert_rule_test": [
                {
                    "eval_time": f"{int((issued - days * 86400) // 3600)}h",
                    "alertname": "KafkaK8sCertificateExpiring",
                    "exp_alerts": [{"exp_labels": {"juju_unit": UNIT, "severity": "warning"}}]
                    if days < 14
                    else [],
                }
                for days in (15, 13)
            ],
        },
    ]
    # The rules as `metrics-endpoint` publishes them, the annotations' templates included, pass
    # promtool's check. The tests judge which alerts fire with which labels, on the rules
    # without their annotations (promtool would compare the annotations' text too).
    topology = JujuTopology(model="kafka-model", model_uuid=MODEL_UUID, application="kafka-k8s")
    published = alert_rules(topology, {UNIT: capacity}, {UNIT: issued})
    (directory / "published.yaml").write_text(yaml.safe_dump(published))
    checked = run_promtool("check", "rules", str(directory / "published.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (directory / "shipped.yaml").write_text(yaml.safe_dump(_bare("kafka_k8s", RULES)))
    (directory / "units.yaml").write_text(yaml.safe_dump(_bare("units", storage_rules)))
    (directory / "tests.yaml").write_text(
        yaml.safe_dump({"rule_files": ["shipped.yaml"], "tests": cases})
    )
    (directory / "unit-tests.yaml").write_text(
        yaml.safe_dump({"rule_files": ["units.yaml"], "tests": storage_cases})
    )
    for tests in ("tests.yaml", "unit-tests.yaml"):
        outcome = run_promtool("test", "rules", str(directory / tests))
        assert outcome.returncode == 0, f"{tests}:\n{outcome.stdout}\n{outcome.stderr}"
    print(json.dumps({"cases": [case["name"] for case in cases + storage_cases]}))
