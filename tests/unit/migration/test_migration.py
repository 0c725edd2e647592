# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The host's `Migration` object (`_migration`) under ops.testing: events, actions, status.

The host is `host.HostCharm`; admin queries go to `helpers.FakeClusters`. Starting and stopping,
the options, the target and the container, and `migration-status`. What is squarely one module's
concern has that module's test file: the source (`test_source.py`), the peers (`test_peers.py`),
the fence, the stored status (`test_summary.py`), dry-run (`test_preflight.py`), switch-group
(`test_switch.py`), finish-migration (`test_cutover.py`). How kafka-k8s itself wires the library
is in `charm/test_migration.py`.
"""

from __future__ import annotations

import json
import re
import stat

import ops
import pytest
from ops import testing

from charms.kafka_k8s.v0.mirrormaker import _connectors, _rendering
from tests.unit.helpers import FENCED, LAGGING, MM2, MM2_SECRETS, fence_applied, load_properties
from tests.unit.migration.host import (
    SOURCE_PASSWORD,
    TARGET_PASSWORD,
    HostCharm,
    assert_no_secret_leaked,
    credentials,
    external,
    file,
    host,
    migration_status,
    peers,
    properties,
    request,
    running,
    running_container,
    service,
    start,
    state,
    unit_request,
    unit_state,
)

pytestmark = pytest.mark.usefixtures("clusters")

JMX = "/etc/kafka/jmx_mirrormaker.yaml"


# Nothing requested -------------------------------------------------------------------------------


def test_nothing_to_say_without_a_request(ctx):
    out = ctx.run(ctx.on.config_changed(), state())
    assert out.unit_status == testing.ActiveStatus("broker")
    assert "mirrormaker" not in out.get_container("kafka").plan.services
    assert "mirrormaker-request" not in out.get_relations("cluster")[0].local_unit_data
    assert unit_state(out) == {"service": "absent", "exactly-once": "disabled"}


def test_configured_source_alone_starts_nothing(ctx):
    secret = credentials()
    out = ctx.run(ctx.on.config_changed(), state(config=external(secret), secrets=(secret,)))
    assert out.unit_status == testing.ActiveStatus("broker")
    assert "mirrormaker" not in out.get_container("kafka").plan.services
    assert not file(ctx, out, MM2).exists()


# start-migration ---------------------------------------------------------------------------------


def test_start_with_external_source(ctx):
    secret = credentials()
    out = start(ctx, state(config=external(secret), secrets=(secret,)))
    results = ctx.action_results or {}
    assert results["state"] == "running"
    assert results["source"] == "old-0:9092"
    assert "every other unit starts it" in results["message"]
    assert unit_request(out)["state"] == "running"
    assert unit_request(out)["seq"] == 1
    assert unit_request(out)["by"] == "kafka-k8s/0"
    rendered = properties(ctx, out)
    assert rendered["source.bootstrap.servers"] == "old-0:9092,old-1:9092"
    assert rendered["source.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="migrator" password="so\\"urce\\\\pass=word #1";'
    )
    assert TARGET_PASSWORD in rendered["target.sasl.jaas.config"]
    assert rendered["listeners"] == f"http://{host(0)}:8083"
    assert rendered["replication.factor"] == "3"
    assert stat.S_IMODE(file(ctx, out, MM2).stat().st_mode) == 0o600
    assert stat.S_IMODE(file(ctx, out, MM2_SECRETS).stat().st_mode) == 0o600
    raw = file(ctx, out, MM2).read_text()
    assert SOURCE_PASSWORD not in raw
    assert TARGET_PASSWORD not in raw
    assert "source.sasl.jaas.config" in load_properties(file(ctx, out, MM2_SECRETS).read_text())
    assert file(ctx, out, JMX).read_text() == _rendering.JMX_RULES
    plan = out.get_container("kafka").plan.services["mirrormaker"]
    assert plan.command == (
        "/opt/kafka/bin/connect-mirror-maker.sh /etc/kafka/mm2.properties --clusters target"
    )
    assert plan.startup == "enabled"
    assert plan.on_failure == "restart"
    assert plan.user == "kafka"
    assert plan.environment["KAFKA_OPTS"] == (
        "-javaagent:/opt/kafka/libs/jmx_prometheus_javaagent.jar=9099:/etc/kafka/jmx_mirrormaker.yaml"
    )
    assert "-Xmx" in plan.environment["KAFKA_HEAP_OPTS"]
    assert service(out) == ops.pebble.ServiceStatus.ACTIVE
    assert unit_state(out) == {"service": "active", "exactly-once": "disabled"}
    assert out.unit_status == testing.ActiveStatus(LAGGING.format(source="old-0:9092") + FENCED)
    assert json.loads(results["fenced-topics"]) == ["orders", "payments"]
    assert_no_secret_leaked(ctx, out)


def test_start_is_idempotent(ctx):
    secret = credentials()
    first = start(ctx, state(config=external(secret), secrets=(secret,)))
    second = start(ctx, first)
    assert "already requested" in (ctx.action_results or {})["message"]
    assert unit_request(second) == unit_request(first)
    assert service(second) == ops.pebble.ServiceStatus.ACTIVE


# Options -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("mirrormaker-topics", "orders[", "'orders[' is not a valid regular expression"),
        ("mirrormaker-topics", "", "needs at least one regular expression"),
        ("mirrormaker-topics-exclude", "(", "'(' is not a valid regular expression"),
        ("mirrormaker-groups", "*x", "'*x' is not a valid regular expression"),
        ("mirrormaker-groups-exclude", "a{", "'a{' is not a valid regular expression"),
        ("mirrormaker-tasks-max", 0, "greater than or equal to 1"),
        ("mirrormaker-tasks-max", 5000, "less than or equal to 1000"),
        ("mirrormaker-refresh-interval", 1, "greater than or equal to 5"),
        ("mirrormaker-refresh-interval", 100000, "less than or equal to 86400"),
        ("mirrormaker-replication-policy", "mirrored", "input should be 'identity' or 'prefixed'"),
        ("mirrormaker-source-bootstrap-servers", "old-0", "'old-0' is not HOST:PORT"),
    ],
)
def test_bad_option_blocks_and_fails_the_action(ctx, option, value, reason):
    secret = credentials()
    before = state(config=external(secret) | {option: value}, secrets=(secret,))
    out = ctx.run(ctx.on.config_changed(), before)
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(f"invalid config {option}: ")
    assert reason in out.unit_status.message
    with pytest.raises(testing.ActionFailed) as failed:
        start(ctx, before)
    assert failed.value.message.startswith(f"invalid config {option}: ")
    with pytest.raises(testing.ActionFailed):
        start(ctx, before, **{"dry-run": True})


@pytest.mark.parametrize(
    ("option", "value", "key", "expected"),
    [
        ("mirrormaker-topics", r"orders\..*, payments", "topics", r"orders\..*,payments"),
        ("mirrormaker-topics-exclude", "tmp-.*", "topics.exclude", "tmp-.*"),
        ("mirrormaker-groups", "billing", "groups", "billing"),
        ("mirrormaker-groups-exclude", "", "groups.exclude", ""),
        ("mirrormaker-tasks-max", 24, "tasks.max", "24"),
        ("mirrormaker-sync-group-offsets", False, "sync.group.offsets.enabled", "false"),
        ("mirrormaker-sync-topic-configs", False, "sync.topic.configs.enabled", "false"),
        ("mirrormaker-sync-topic-acls", True, "sync.topic.acls.enabled", "false"),
        ("mirrormaker-exactly-once", True, "target.exactly.once.source.support", "enabled"),
        ("mirrormaker-refresh-interval", 7, "refresh.topics.interval.seconds", "7"),
        ("mirrormaker-refresh-interval", 7, "sync.group.offsets.interval.seconds", "7"),
        (
            "mirrormaker-replication-policy",
            "prefixed",
            "replication.policy.class",
            "org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
        ),
    ],
)
def test_option_change_while_running_is_applied(ctx, option, value, key, expected):
    secret = credentials()
    cluster = peers({}, {}, local={"mirrormaker-request": request("running", 1)})
    before = state(
        config=external(secret) | {option: value},
        secrets=(secret,),
        cluster=cluster,
        container=running_container(),
    )
    out = ctx.run(ctx.on.config_changed(), before)
    assert properties(ctx, out)[key] == expected
    assert service(out) == ops.pebble.ServiceStatus.ACTIVE
    assert out.get_container("kafka").plan.services["mirrormaker"].startup == "enabled"


def test_bad_option_while_running_keeps_mirrormaker_running(ctx):
    secret = credentials()
    cluster = peers({}, {}, local={"mirrormaker-request": request("running", 1)})
    before = state(
        config=external(secret) | {"mirrormaker-topics": "("},
        secrets=(secret,),
        cluster=cluster,
        container=running_container(),
    )
    out = ctx.run(ctx.on.config_changed(), before)
    assert service(out) == ops.pebble.ServiceStatus.ACTIVE
    assert out.unit_status.message.startswith("invalid config mirrormaker-topics: ")


# Target and container ----------------------------------------------------------------------------


def test_target_not_ready(ctx, monkeypatch):
    monkeypatch.setattr(HostCharm, "target_ready", False)
    secret = credentials()
    cluster = peers({}, {}, local={"mirrormaker-request": request("running", 1)})
    before = state(config=external(secret), secrets=(secret,), cluster=cluster)
    out = ctx.run(ctx.on.update_status(), before)
    assert out.unit_status == testing.WaitingStatus(
        "waiting for this cluster to migrate from old-0:9092"
    )
    assert "mirrormaker" not in out.get_container("kafka").plan.services
    with pytest.raises(testing.ActionFailed) as failed:
        start(ctx, before)
    assert failed.value.message == "waiting for this cluster to serve before migrating into it"


def test_container_not_reachable_does_nothing(ctx):
    secret = credentials()
    cluster = peers({}, {}, local={"mirrormaker-request": request("running", 1)})
    before = state(
        config=external(secret),
        secrets=(secret,),
        cluster=cluster,
        container=testing.Container("kafka", can_connect=False),
    )
    out = ctx.run(ctx.on.config_changed(), before)
    assert out.unit_status == testing.ActiveStatus("broker")


def test_service_not_active_is_maintenance(ctx):
    secret = credentials()
    cluster = peers(
        {}, {}, local={"mirrormaker-request": request("running", 1)}, app=fence_applied()
    )
    container = testing.Container(
        "kafka",
        can_connect=True,
        layers=running_container().layers,
        service_statuses={"mirrormaker": ops.pebble.ServiceStatus.ERROR},
    )
    before = state(
        config=external(secret), secrets=(secret,), cluster=cluster, container=container
    )
    out = ctx.run(ctx.on.start(), before)
    assert out.unit_status == testing.MaintenanceStatus(
        "starting MirrorMaker to migrate from old-0:9092"
    )


# stop-migration ----------------------------------------------------------------------------------


def test_stop_migration(ctx):
    secret = credentials()
    started = start(ctx, state(config=external(secret), secrets=(secret,)))
    out = ctx.run(ctx.on.action("stop-migration"), started)
    results = ctx.action_results or {}
    assert results["state"] == "stopped"
    assert "every other unit stops it" in results["message"]
    assert service(out) == ops.pebble.ServiceStatus.INACTIVE
    assert out.get_container("kafka").plan.services["mirrormaker"].startup == "disabled"
    assert not file(ctx, out, MM2).exists()
    assert unit_request(out)["state"] == "stopped"
    assert unit_request(out)["seq"] == 2
    assert unit_state(out)["service"] == "inactive"
    assert out.unit_status == testing.ActiveStatus("migration stopped" + FENCED)
    again = ctx.run(ctx.on.action("stop-migration"), out)
    assert "already stopped" in (ctx.action_results or {})["message"]
    assert unit_request(again) == unit_request(out)


def test_stop_when_never_started(ctx):
    out = ctx.run(ctx.on.action("stop-migration"), state())
    assert "mirrormaker" not in out.get_container("kafka").plan.services
    assert unit_request(out)["state"] == "stopped"


def test_restart_after_stop(ctx):
    secret = credentials()
    started = start(ctx, state(config=external(secret), secrets=(secret,)))
    stopped = ctx.run(ctx.on.action("stop-migration"), started)
    again = start(ctx, stopped)
    assert service(again) == ops.pebble.ServiceStatus.ACTIVE
    assert again.get_container("kafka").plan.services["mirrormaker"].startup == "enabled"
    assert unit_request(again)["seq"] == 3


# migration-status --------------------------------------------------------------------------------


def test_migration_status_while_lagging(ctx):
    out, results = migration_status(ctx, running())
    assert results["requested"] == "running"
    assert results["source"] == "old-0:9092"
    assert results["ready-for-cutover"] == "false"
    assert results["summary"] == LAGGING.format(source="old-0:9092")
    assert json.loads(results["reasons"]) == [
        "topic orders: 50 records behind",
        "topic payments is not on the target yet",
        "group billing: 2 consumers still read from the source cluster",
    ]
    assert results["clusters"] == {"source": "reachable", "target": "reachable"}
    assert (results["lag"], results["lag-threshold"]) == ("100", "0")
    assert (results["source-records"], results["target-records"]) == ("350", "250")
    assert results["units"] == {
        f"kafka-k8s-{n}": {"service": "active", "exactly-once": "disabled"} for n in range(3)
    }
    topics = {entry["topic"]: entry for entry in json.loads(results["topics"])}
    assert topics["orders"] == {
        "topic": "orders",
        "target-topic": "orders",
        "partitions": 2,
        "source-end-offset": 300,
        "target-end-offset": 250,
        "source-records": 300,
        "target-records": 250,
        "lag": 50,
    }
    assert topics["payments"]["target-end-offset"] is None
    assert "__consumer_offsets" not in topics
    [group] = json.loads(results["groups"])
    assert group == {
        "group": "billing",
        "state": "stable",
        "members": 2,
        "active": True,
        "lag": 170,
        "synced": False,
        "topics": [
            {
                "topic": "orders",
                "partitions": 2,
                "source-committed": 220,
                "target-committed": None,
                "missing-partitions": 2,
                "lag": 170,
            }
        ],
    }
    connectors = json.loads(results["connectors"])
    assert [c["connector"] for c in connectors] == [
        "MirrorCheckpointConnector",
        "MirrorSourceConnector",
    ]
    assert connectors[1]["tasks"][1] == {
        "connector": "MirrorSourceConnector",
        "task": 1,
        "name": "MirrorSourceConnector-1",
        "state": "RUNNING",
        "error": None,
    }
    assert "partitions" not in results
    assert_no_secret_leaked(ctx, out)


def test_migration_status_in_sync(ctx, clusters):
    clusters.in_sync()
    _, results = migration_status(ctx, running())
    assert results["ready-for-cutover"] == "true"
    assert json.loads(results["reasons"]) == []
    assert results["summary"] == "in sync with old-0:9092: ready for cutover"
    assert json.loads(results["groups"])[0]["synced"] is True


def test_migration_status_lag_threshold(ctx, clusters):
    clusters.in_sync()
    clusters.topics["target"]["orders"] = [100, 170]
    _, strict = migration_status(ctx, running())
    assert json.loads(strict["reasons"]) == ["topic orders: 30 records behind"]
    _, tolerant = migration_status(ctx, running(), **{"lag-threshold": 30})
    assert tolerant["ready-for-cutover"] == "true"
    assert tolerant["lag"] == "30"


def test_migration_status_group_behind_does_not_hold_up_the_cutover(ctx, clusters):
    clusters.in_sync()
    clusters.commits["target"]["billing"] = {"orders": {0: 100, 1: 90}}
    _, results = migration_status(ctx, running())
    [group] = json.loads(results["groups"])
    assert (group["lag"], group["synced"]) == (30, False)
    assert json.loads(results["reasons"]) == []
    assert results["ready-for-cutover"] == "true"


def test_migration_status_group_still_consumed_on_the_source(ctx, clusters):
    clusters.in_sync()
    clusters.members["billing"] = 2
    _, results = migration_status(ctx, running())
    assert json.loads(results["reasons"]) == [
        "group billing: 2 consumers still read from the source cluster"
    ]
    assert results["summary"] == (
        "migrating from old-0:9092: 2 topics, lag 0 records; group billing: 2 consumers still "
        "read from the source cluster"
    )


def test_migration_status_failed_task(ctx, clusters):
    clusters.in_sync()
    trace = (
        "org.apache.kafka.connect.errors.ConnectException: Unrecoverable exception from producer"
        " send callback\n\tat org.apache.kafka.connect.runtime.WorkerSourceTask.x(W.java:1)\n"
        "Caused by: org.apache.kafka.common.errors.RecordTooLargeException: The message is 1500087"
        " bytes when serialized which is larger than 1048576\n\tat y(Y.java:2)"
    )
    clusters.connectors[3] = _connectors.ConnectorState(
        connector="MirrorSourceConnector", task=0, state="FAILED", trace=trace
    )
    clusters.connectors[4] = _connectors.ConnectorState(
        connector="MirrorSourceConnector", task=1, state="UNASSIGNED"
    )
    _, results = migration_status(ctx, running())
    error = (
        "ConnectException: Unrecoverable exception from producer send callback; caused by "
        "RecordTooLargeException: The message is 1500087 bytes when serialized which is larger "
        "than 1048576"
    )
    assert json.loads(results["reasons"]) == [
        f"MirrorSourceConnector-0 failed: {error}",
        "MirrorSourceConnector-1 is unassigned",
    ]
    assert results["summary"].startswith("MirrorMaker MirrorSourceConnector-0 failed: Connect")
    assert json.loads(results["connectors"])[1]["tasks"][0]["error"] == error


def test_migration_status_unit_not_running(ctx, clusters):
    clusters.in_sync()
    secret = credentials()
    cluster = peers(
        {"mirrormaker-state": json.dumps({"service": "active", "exactly-once": "disabled"})},
        {"mirrormaker-state": json.dumps({"service": "backoff", "exactly-once": "disabled"})},
        {},
        local={"mirrormaker-request": request("running", 1)},
    )
    before = state(
        config=external(secret), secrets=(secret,), cluster=cluster, container=running_container()
    )
    _, results = migration_status(ctx, before)
    assert results["units"]["kafka-k8s-2"]["service"] == "backoff"
    assert results["units"]["kafka-k8s-3"]["service"] == "absent"
    assert json.loads(results["reasons"]) == [
        "kafka-k8s/2: MirrorMaker is backoff",
        "kafka-k8s/3: MirrorMaker is absent",
    ]


def test_migration_status_for_one_topic(ctx, clusters):
    clusters.starts["source"]["orders"] = [40, 0]
    _, results = migration_status(ctx, running(), topic="orders")
    assert [t["topic"] for t in json.loads(results["topics"])] == ["orders"]
    assert json.loads(results["partitions"]) == [
        {
            "partition": 0,
            "source-start-offset": 40,
            "source-end-offset": 100,
            "target-start-offset": 0,
            "target-end-offset": 100,
            "lag": 0,
        },
        {
            "partition": 1,
            "source-start-offset": 0,
            "source-end-offset": 200,
            "target-start-offset": 0,
            "target-end-offset": 150,
            "lag": 50,
        },
    ]
    assert results["lag"] == "50"


def test_migration_status_for_an_unknown_topic_fails(ctx):
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("migration-status", params={"topic": "nope"}), running())
    assert failed.value.message.startswith("topic nope is not migrated")


def test_migration_status_as_a_table(ctx, clusters):
    clusters.in_sync()
    _, results = migration_status(ctx, running(), format="table")
    assert set(results) == {
        "requested",
        "restarts",
        "summary",
        "ready-for-cutover",
        "reasons",
        "source",
        "units",
        "table",
        "fence",
        "fenced-topics",
        "client-identities",
        "copied-acls",
    }
    lines = results["table"].splitlines()
    assert lines[:2] == ["in sync with old-0:9092: ready for cutover", "ready for cutover: yes"]
    assert re.search(r"^orders +2 +300 +300 +300 +300 +0$", results["table"], re.M)
    assert re.search(r"^billing +no +0 +orders +220 +220 +0 +yes$", results["table"], re.M)
    assert re.search(r"^MirrorSourceConnector-1 +RUNNING$", results["table"], re.M)
    assert re.search(r"^kafka-k8s/2 +active +disabled$", results["table"], re.M)


@pytest.mark.parametrize("role", ["source", "target"])
def test_migration_status_with_an_unreachable_cluster(ctx, clusters, role):
    clusters.unreachable.add(role)
    _, results = migration_status(ctx, running())
    message = f"{role} cluster at h:1 did not answer: timed out"
    assert results["clusters"][role] == message
    assert results["ready-for-cutover"] == "false"
    assert json.loads(results["reasons"])[0] == message
    assert results["summary"] == message
    assert results["units"]["kafka-k8s-0"]["service"] == "active"
    if role == "target":
        assert json.loads(results["connectors"]) is None
        assert json.loads(results["topics"])[0]["target-end-offset"] is None


def test_migration_status_without_source(ctx):
    _, results = migration_status(ctx, state())
    assert results["requested"] == "stopped"
    assert results["ready-for-cutover"] == "false"
    assert results["summary"].startswith("no source cluster to migrate from")
    assert json.loads(results["reasons"]) == [results["summary"]]
    assert results["units"]["kafka-k8s-0"]["service"] == "absent"


def test_migration_status_when_stopped_says_why_it_is_not_ready(ctx, clusters):
    clusters.in_sync()
    secret = credentials()
    cluster = peers(local={"mirrormaker-request": request("stopped", 2)})
    before = state(config=external(secret), secrets=(secret,), cluster=cluster)
    _, results = migration_status(ctx, before)
    assert results["requested"] == "stopped"
    assert json.loads(results["reasons"]) == [
        "MirrorMaker runs on no unit",
        "kafka-k8s/0: MirrorMaker is absent",
    ]
