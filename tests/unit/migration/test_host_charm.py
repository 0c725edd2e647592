# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The migration library under ops.testing: actions, options, relations, status, Pebble.

The host, `HostCharm`, is a minimal charm on the project's `charmcraft.yaml` that adopts the
library exactly as its module docstring shows; admin queries go to `helpers.FakeClusters`
instead of real clusters. How kafka-k8s itself wires the library is in `charm/test_migration.py`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ops
import pytest
from ops import testing

from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import Migration, TargetCluster, _MigrationRequest
from tests.unit.helpers import (
    CHARMCRAFT,
    FENCED,
    LAGGING,
    MM2,
    MM2_SECRETS,
    RELATION_PASSWORD,
    SOURCE_CA,
    load_properties,
    mm2_resolved,
    source_relation,
)

pytestmark = pytest.mark.usefixtures("clusters")

META = {key: CHARMCRAFT[key] for key in ("name", "containers", "peers", "provides", "requires")}
JMX = "/etc/kafka/jmx_mirrormaker.yaml"
SOURCE_PASSWORD = 'so"urce\\pass=word #1'
TARGET_PASSWORD = "target-secret-pw"
SECRETS = (SOURCE_PASSWORD, TARGET_PASSWORD, RELATION_PASSWORD)


def host(number: int) -> str:
    return f"kafka-k8s-{number}.kafka-k8s-endpoints.model.svc.cluster.local"


class HostCharm(ops.CharmBase):
    """The smallest host: the target and this unit's address, one reconcile, collect-status."""

    target_ready = True

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.migration = Migration(self, target=self._target, unit_host=self._host)
        for event in (
            self.on.config_changed,
            self.on.update_status,
            self.on.secret_changed,
            self.on.kafka_pebble_ready,
            self.on.cluster_relation_changed,
            self.on["migration-source"].relation_changed,
            self.on["migration-source"].relation_broken,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(self.on.collect_app_status, self._on_collect_app_status)

    def _host(self) -> str:
        return host(int(self.unit.name.split("/")[1]))

    def _target(self) -> TargetCluster | None:
        if not self.target_ready:
            return None
        return TargetCluster(
            bootstrap_servers=tuple(f"{host(n)}:19092" for n in range(3)),
            username="mirrormaker",
            password=TARGET_PASSWORD,
        )

    def _reconcile(self, _: ops.EventBase) -> None:
        self.migration.reconcile()

    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if status := self.migration.status():
            event.add_status(status)
        event.add_status(ops.ActiveStatus("broker"))

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        if status := self.migration.status():
            event.add_status(status)
        event.add_status(ops.ActiveStatus())


@pytest.fixture(autouse=True)
def target_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HostCharm, "target_ready", True)


@pytest.fixture
def ctx() -> testing.Context[HostCharm]:
    return testing.Context(
        HostCharm, meta=META, actions=CHARMCRAFT["actions"], config=CHARMCRAFT["config"]
    )


def credentials(**content: str) -> testing.Secret:
    content = {"username": "migrator", "password": SOURCE_PASSWORD, **content}
    return testing.Secret(tracked_content={k: v for k, v in content.items() if v is not None})


def external(secret: testing.Secret | None = None, **options: object) -> dict[str, object]:
    config: dict[str, object] = {"mirrormaker-source-bootstrap-servers": "old-0:9092,old-1:9092"}
    if secret is not None:
        config["mirrormaker-source-credentials"] = secret.id
    return config | options


def request(state: str, seq: int, by: str = "kafka-k8s/1", at: int = 1000) -> str:
    return json.dumps({"state": state, "seq": seq, "at": at, "by": by})


def peers(*data: dict[str, str], local: dict[str, str] | None = None) -> testing.PeerRelation:
    return testing.PeerRelation(
        "cluster",
        local_unit_data=local or {},
        peers_data={number: dict(d) for number, d in enumerate(data, start=1)},
    )


def running_container(**kwargs) -> testing.Container:
    """A container in which MirrorMaker already runs."""
    layer = {
        "services": {"mirrormaker": {"override": "replace", "command": "mm", "startup": "enabled"}}
    }
    return testing.Container(
        "kafka",
        can_connect=True,
        layers={"mirrormaker": ops.pebble.Layer(layer)},  # type: ignore[arg-type]
        service_statuses={"mirrormaker": ops.pebble.ServiceStatus.ACTIVE},
        **kwargs,
    )


def state(
    *,
    config: Mapping[str, object] | None = None,
    secrets: tuple[testing.Secret, ...] = (),
    relations: tuple[testing.RelationBase, ...] = (),
    cluster: testing.PeerRelation | None = None,
    container: testing.Container | None = None,
    leader: bool = True,
) -> testing.State:
    return testing.State(
        leader=leader,
        config=dict(config or {}),  # type: ignore[arg-type]
        secrets=secrets,
        relations=(cluster or peers({}, {}), *relations),
        containers={container or testing.Container("kafka", can_connect=True)},
    )


def properties(ctx: testing.Context, out: testing.State) -> dict[str, str]:
    """`mm2.properties` as MirrorMaker reads it: references resolved from the secrets file."""
    return mm2_resolved(ctx, out)


def file(ctx: testing.Context, out: testing.State, path: str) -> Path:
    return out.get_container("kafka").get_filesystem(ctx) / path.lstrip("/")


def service(out: testing.State) -> ops.pebble.ServiceStatus | None:
    return out.get_container("kafka").service_statuses.get("mirrormaker")


def unit_request(out: testing.State) -> dict[str, object]:
    return json.loads(out.get_relations("cluster")[0].local_unit_data["mirrormaker-request"])


def unit_state(out: testing.State) -> dict[str, object]:
    return json.loads(out.get_relations("cluster")[0].local_unit_data["mirrormaker-state"])


def not_requested(out: Any) -> bool:
    return "mirrormaker-request" not in out.get_relations("cluster")[0].local_unit_data


def assert_no_secret_leaked(ctx: testing.Context, out: testing.State) -> None:
    shown = [out.unit_status.message, json.dumps(ctx.action_results or {})]
    shown += [log.message for log in ctx.juju_log]
    for secret in SECRETS:
        assert not [text for text in shown if secret in text]


def start(ctx: testing.Context, before: testing.State, **params: object) -> testing.State:
    return ctx.run(ctx.on.action("start-migration", params=params), before)


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


# start-migration with an external source ---------------------------------------------------------


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
    assert file(ctx, out, JMX).read_text() == mm._JMX_RULES
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


def test_a_wrong_mode_is_put_right_though_the_content_is_unchanged(ctx):
    secret = credentials()
    with tempfile.TemporaryDirectory() as directory:
        etc = Path(directory)
        mount = testing.Mount(location="/etc/kafka", source=etc)
        kafka = testing.Container("kafka", can_connect=True, mounts={"etc": mount})
        out = start(ctx, state(config=external(secret), secrets=(secret,), container=kafka))
        rendered = (etc / "mm2.properties").read_text()
        (etc / "mm2.properties").chmod(0o644)

        ctx.run(ctx.on.config_changed(), out)

        assert (etc / "mm2.properties").read_text() == rendered
        assert stat.S_IMODE((etc / "mm2.properties").stat().st_mode) == 0o600


def test_start_is_idempotent(ctx):
    secret = credentials()
    first = start(ctx, state(config=external(secret), secrets=(secret,)))
    second = start(ctx, first)
    assert "already requested" in (ctx.action_results or {})["message"]
    assert unit_request(second) == unit_request(first)
    assert service(second) == ops.pebble.ServiceStatus.ACTIVE


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"sasl-mechanism": "SCRAM-SHA-256"}, {"source.sasl.mechanism": "SCRAM-SHA-256"}),
        (
            {"sasl-mechanism": "PLAIN"},
            {"source.sasl.mechanism": "PLAIN"},
        ),
        (
            {"security-protocol": "SASL_SSL", "ca": SOURCE_CA},
            {
                "source.security.protocol": "SASL_SSL",
                "source.ssl.truststore.type": "PEM",
                "source.ssl.truststore.certificates": SOURCE_CA,
            },
        ),
        ({"security-protocol": "SASL_SSL"}, {"source.security.protocol": "SASL_SSL"}),
    ],
)
def test_optional_secret_keys_reach_the_properties(ctx, content, expected):
    secret = credentials(**content)
    out = start(ctx, state(config=external(secret), secrets=(secret,)))
    rendered = properties(ctx, out)
    for key, value in expected.items():
        assert rendered[key] == value


# Source problems ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"password": None}, "missing key password"),
        ({"username": "", "password": ""}, "missing key username, password"),
        ({"user": "x"}, "unknown key user"),
        ({"sasl-mechanism": "GSSAPI"}, "sasl-mechanism must be one of SCRAM-SHA-512"),
        ({"security-protocol": "SSL"}, "security-protocol must be one of SASL_PLAINTEXT"),
        ({"security-protocol": "SASL_SSL", "ca": "not a pem"}, "ca must be a PEM certificate"),
        ({"ca": SOURCE_CA}, "ca is set, so security-protocol must be SASL_SSL"),
    ],
)
def test_bad_credentials_secret(ctx, content, message):
    secret = credentials(**content)
    before = state(config=external(secret), secrets=(secret,))
    out = ctx.run(ctx.on.config_changed(), before)
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith("mirrormaker-source-credentials: ")
    assert message in out.unit_status.message
    with pytest.raises(testing.ActionFailed) as failed:
        start(ctx, before)
    assert message in failed.value.message
    assert failed.value.state is not None
    assert not_requested(failed.value.state)
    assert_no_secret_leaked(ctx, out)


def test_secret_not_granted(ctx):
    secret = credentials()
    out = ctx.run(ctx.on.config_changed(), state(config=external(secret)))
    assert out.unit_status == testing.BlockedStatus(
        f"mirrormaker-source-credentials: secret {secret.id} not found or not granted: run "
        f"`juju grant-secret {secret.id} kafka-k8s`"
    )


def test_bootstrap_servers_without_credentials(ctx):
    out = ctx.run(ctx.on.config_changed(), state(config=external()))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(
        "mirrormaker-source-bootstrap-servers is set but mirrormaker-source-credentials is not"
    )


def test_credentials_without_bootstrap_servers(ctx):
    secret = credentials()
    config = {"mirrormaker-source-credentials": secret.id}
    out = ctx.run(ctx.on.config_changed(), state(config=config, secrets=(secret,)))
    assert out.unit_status.name == "blocked"
    assert "mirrormaker-source-bootstrap-servers is empty" in out.unit_status.message


def test_relation_and_options_together_are_blocked(ctx):
    secret = credentials()
    relation, relation_secrets = source_relation()
    before = state(
        config=external(secret), secrets=(secret, *relation_secrets), relations=(relation,)
    )
    out = ctx.run(ctx.on.config_changed(), before)
    assert out.unit_status == testing.BlockedStatus(
        "two sources: remove the migration-source relation or unset "
        "mirrormaker-source-bootstrap-servers"
    )
    with pytest.raises(testing.ActionFailed) as failed:
        start(ctx, before)
    assert "two sources" in failed.value.message


def test_start_without_source_fails(ctx):
    with pytest.raises(testing.ActionFailed) as failed:
        start(ctx, state())
    assert failed.value.message == (
        "no source cluster to migrate from: relate migration-source to a Kafka application, or "
        "set mirrormaker-source-bootstrap-servers and mirrormaker-source-credentials"
    )
    assert failed.value.state is not None
    assert not_requested(failed.value.state)


def test_requested_without_source_stops_and_says_why(ctx):
    cluster = peers({"mirrormaker-request": request("running", 1)}, {})
    out = ctx.run(ctx.on.config_changed(), state(cluster=cluster))
    assert out.unit_status == testing.BlockedStatus(
        "MirrorMaker stopped: the source is gone: the migration-source relation was removed or "
        "the mirrormaker-source-* options unset (copied data and offsets stay; start-migration "
        "resumes, stop-migration clears this)"
    )
    assert "mirrormaker" not in out.get_container("kafka").plan.services
    assert unit_request(out)["state"] == "stopped"


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


# The relation path -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "role"),
    [({}, "consumer"), ({"mirrormaker-source-role": "admin"}, "admin")],
)
def test_relation_created_requests_the_configured_role_on_all_topics(ctx, config, role):
    relation = testing.Relation("migration-source", remote_app_name="old-kafka")
    out = ctx.run(ctx.on.relation_created(relation), state(config=config, relations=(relation,)))
    data = out.get_relation(relation.id).local_app_data
    assert data["version"] == "v1"
    [sent] = json.loads(data["requests"])
    assert sent["resource"] == "*"
    assert sent["extra-user-roles"] == role


def test_start_with_relation_source(ctx):
    relation, secrets = source_relation()
    out = start(ctx, state(relations=(relation,), secrets=secrets))
    rendered = properties(ctx, out)
    assert rendered["source.bootstrap.servers"] == "old-kafka-0:9092,old-kafka-1:9092"
    assert rendered["source.security.protocol"] == "SASL_PLAINTEXT"
    assert rendered["source.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="relation-7" password="{RELATION_PASSWORD}";'
    )
    assert out.unit_status == testing.ActiveStatus(LAGGING.format(source="old-kafka") + FENCED)
    assert (ctx.action_results or {})["source"] == "old-kafka"
    assert_no_secret_leaked(ctx, out)


def test_relation_source_with_tls(ctx):
    relation, secrets = source_relation(tls=True)
    out = start(ctx, state(relations=(relation,), secrets=secrets))
    rendered = properties(ctx, out)
    assert rendered["source.security.protocol"] == "SASL_SSL"
    assert rendered["source.ssl.truststore.certificates"] == SOURCE_CA


@pytest.mark.parametrize("running", [True, False])
def test_relation_waiting_for_credentials(ctx, running):
    relation, _ = source_relation(data={})
    local = {"mirrormaker-request": request("running", 1)} if running else {}
    out = ctx.run(
        ctx.on.relation_changed(relation),
        state(relations=(relation,), cluster=peers({}, {}, local=local)),
    )
    if running:  # it sent them before the migration started: they were revoked since
        assert out.unit_status == testing.BlockedStatus(
            "MirrorMaker stopped: migration-source: old-kafka no longer sends credentials "
            "(copied data and offsets stay; start-migration resumes, stop-migration clears this)"
        )
    else:
        assert out.unit_status == testing.ActiveStatus("broker")
    assert "mirrormaker" not in out.get_container("kafka").plan.services


def test_relation_with_malformed_data(ctx):
    relation, secrets = source_relation(data={"version": "v1", "requests": "not json ["})
    out = ctx.run(ctx.on.config_changed(), state(relations=(relation,), secrets=secrets))
    assert out.unit_status == testing.BlockedStatus(
        "migration-source: old-kafka sent data that is not a kafka_client response"
    )


def test_relation_with_bad_endpoints(ctx):
    relation, secrets = source_relation()
    data = dict(relation.remote_app_data)
    response = json.loads(data["requests"])
    response[0]["endpoints"] = "old-kafka-0"
    data["requests"] = json.dumps(response)
    relation, _ = source_relation(data=data)
    with pytest.raises(testing.ActionFailed) as failed:
        start(ctx, state(relations=(relation,), secrets=secrets))
    assert failed.value.message == (
        "migration-source: old-kafka sent endpoints that are not HOST:PORT"
    )


# Peers -------------------------------------------------------------------------------------------


def test_a_peer_request_starts_this_unit_and_is_copied(ctx):
    secret = credentials()
    cluster = peers({"mirrormaker-request": request("running", 3, by="kafka-k8s/1")}, {})
    out = ctx.run(
        ctx.on.relation_changed(cluster, remote_unit=1),
        state(config=external(secret), secrets=(secret,), cluster=cluster),
    )
    assert service(out) == ops.pebble.ServiceStatus.ACTIVE
    assert unit_request(out) == {"state": "running", "seq": 3, "at": 1000, "by": "kafka-k8s/1"}


def test_a_newer_peer_stop_stops_this_unit(ctx):
    secret = credentials()
    cluster = peers(
        {"mirrormaker-request": request("stopped", 2, by="kafka-k8s/1")},
        {},
        local={"mirrormaker-request": request("running", 1, by="kafka-k8s/0")},
    )
    container = running_container()
    out = ctx.run(
        ctx.on.relation_changed(cluster, remote_unit=1),
        state(config=external(secret), secrets=(secret,), cluster=cluster, container=container),
    )
    assert service(out) == ops.pebble.ServiceStatus.INACTIVE
    assert out.get_container("kafka").plan.services["mirrormaker"].startup == "disabled"
    assert unit_request(out)["state"] == "stopped"
    assert out.unit_status == testing.ActiveStatus("broker")


def test_start_from_a_non_leader_bumps_the_newest_sequence(ctx):
    secret = credentials()
    cluster = peers({"mirrormaker-request": request("stopped", 4, by="kafka-k8s/1")}, {})
    out = start(
        ctx, state(config=external(secret), secrets=(secret,), cluster=cluster, leader=False)
    )
    assert unit_request(out)["seq"] == 5
    assert unit_request(out)["state"] == "running"
    assert service(out) == ops.pebble.ServiceStatus.ACTIVE


@pytest.mark.parametrize(("others", "factor"), [(0, "1"), (1, "2"), (2, "3"), (4, "3")])
def test_replication_factor_follows_the_units(ctx, others, factor):
    secret = credentials()
    cluster = peers(*([{}] * others))
    out = start(ctx, state(config=external(secret), secrets=(secret,), cluster=cluster))
    rendered = properties(ctx, out)
    assert rendered["replication.factor"] == factor
    assert rendered["config.storage.replication.factor"] == factor


@pytest.mark.parametrize(
    ("peer_states", "mode"),
    [
        ([], "enabled"),
        ([{"service": "active", "exactly-once": "preparing"}], "enabled"),
        ([{"service": "active", "exactly-once": "disabled"}], "preparing"),
        ([{"service": "inactive", "exactly-once": "disabled"}], "enabled"),
    ],
)
def test_exactly_once_goes_through_preparing(ctx, peer_states, mode):
    secret = credentials()
    cluster = peers(*({"mirrormaker-state": json.dumps(s)} for s in peer_states))
    config = external(secret, **{"mirrormaker-exactly-once": True})
    out = start(ctx, state(config=config, secrets=(secret,), cluster=cluster))
    assert properties(ctx, out)["target.exactly.once.source.support"] == mode
    assert unit_state(out)["exactly-once"] == mode


def test_no_peer_relation_fails_the_action(ctx):
    secret = credentials()
    before = testing.State(
        config=external(secret),  # type: ignore[arg-type]
        secrets={secret},
        containers={testing.Container("kafka", can_connect=True)},
    )
    with pytest.raises(testing.ActionFailed) as failed:
        start(ctx, before)
    assert "peer relation" in failed.value.message


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
    cluster = peers({}, {}, local={"mirrormaker-request": request("running", 1)})
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


# Rights MirrorMaker lacks on the source ----------------------------------------------------------

CONFIGS = (
    "source user migrator may not describe the configs of 2 topics (orders, payments): "
    "MirrorMaker cannot create their copies; grant it DESCRIBE_CONFIGS on them"
)
GROUPS = (
    "source user migrator may not describe every consumer group: no group's offsets migrate; "
    "grant it DESCRIBE on the groups"
)


def test_a_right_mirrormaker_lacks_on_the_source_blocks_and_is_named(ctx, clusters):
    clusters.missing_rights = [CONFIGS, GROUPS]
    secret = credentials()
    started = start(ctx, state(config=external(secret), secrets=(secret,)))

    out = ctx.run(ctx.on.action("migration-status"), started)

    assert started.unit_status == testing.BlockedStatus(CONFIGS)
    results = ctx.action_results or {}
    assert json.loads(results["reasons"])[:2] == [CONFIGS, GROUPS]
    assert results["ready-for-cutover"] == "false"
    assert out.unit_status == testing.BlockedStatus(CONFIGS)


@pytest.mark.parametrize(
    ("options", "checked"),
    [
        ({}, (["orders", "payments"], True, False)),
        (
            {"mirrormaker-sync-topic-configs": False, "mirrormaker-sync-group-offsets": False},
            (["payments"], False, False),  # orders has its copy: its configs are not read
        ),
        ({"mirrormaker-sync-topic-acls": True}, (["orders", "payments"], True, True)),
    ],
)
def test_the_rights_checked_follow_the_options(ctx, clusters, options, checked):
    secret = credentials()
    start(ctx, state(config=external(secret, **options), secrets=(secret,)))

    assert clusters.rights_checked[-1] == checked


def test_dry_run_names_the_rights_mirrormaker_lacks(ctx, clusters):
    clusters.missing_rights = [GROUPS]
    secret = credentials()
    ctx.run(
        ctx.on.action("start-migration", params={"dry-run": True}),
        state(config=external(secret), secrets=(secret,)),
    )
    assert json.loads((ctx.action_results or {})["missing-rights"]) == [GROUPS]


# Topic ACLs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("leader", [True, False])
def test_the_leader_copies_topic_acls_but_not_those_of_relation_users(ctx, clusters, leader):
    clusters.acls["source"] = [
        mm._TopicAcl(topic="orders", principal="User:alice", operation="READ"),
        mm._TopicAcl(topic="orders", principal="User:relation-7", operation="READ"),
    ]
    secret = credentials()
    config = external(secret, **{"mirrormaker-sync-topic-acls": True})

    start(ctx, state(config=config, secrets=(secret,), leader=leader))

    copied = [a.principal for a in clusters.acls["target"]]
    assert copied == (["User:alice"] if leader else [])


# A source that goes away stops MirrorMaker -------------------------------------------------------

GONE = " (copied data and offsets stay; start-migration resumes, stop-migration clears this)"


def assert_stopped(ctx: testing.Context, out: testing.State, reason: str) -> None:
    """MirrorMaker stopped, its files gone, a stop recorded for every unit, the reason shown."""
    assert service(out) == ops.pebble.ServiceStatus.INACTIVE
    assert out.get_container("kafka").plan.services["mirrormaker"].startup == "disabled"
    assert not file(ctx, out, MM2).exists()
    assert not file(ctx, out, MM2_SECRETS).exists()
    assert unit_request(out)["state"] == "stopped"
    assert unit_request(out)["reason"] == reason
    assert out.unit_status == testing.BlockedStatus(f"MirrorMaker stopped: {reason}{GONE}")
    assert out.app_status == out.unit_status
    assert_no_secret_leaked(ctx, out)


def test_revoked_credentials_secret_stops_mirrormaker(ctx):
    secret = credentials()
    started = start(ctx, state(config=external(secret), secrets=(secret,)))

    revoked = ctx.run(ctx.on.update_status(), dataclasses.replace(started, secrets=frozenset()))

    assert_stopped(
        ctx,
        revoked,
        f"mirrormaker-source-credentials: secret {secret.id} not found or not granted: run "
        f"`juju grant-secret {secret.id} kafka-k8s`",
    )


def test_password_taken_out_of_the_secret_stops_mirrormaker(ctx):
    secret = credentials()
    started = start(ctx, state(config=external(secret), secrets=(secret,)))
    content = {"username": "migrator"}
    emptied = dataclasses.replace(secret, tracked_content=content, latest_content=content)

    out = ctx.run(ctx.on.secret_changed(emptied), dataclasses.replace(started, secrets={emptied}))

    assert service(out) == ops.pebble.ServiceStatus.INACTIVE
    assert "has missing key password" in str(unit_request(out)["reason"])


def test_unset_credentials_option_stops_mirrormaker(ctx):
    secret = credentials()
    started = start(ctx, state(config=external(secret), secrets=(secret,)))

    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(started, config=external()))

    assert service(out) == ops.pebble.ServiceStatus.INACTIVE
    assert str(unit_request(out)["reason"]).startswith(
        "mirrormaker-source-bootstrap-servers is set but mirrormaker-source-credentials is not"
    )


def test_removed_source_relation_stops_mirrormaker(ctx):
    relation, secrets = source_relation()
    started = start(ctx, state(relations=(relation,), secrets=secrets))

    out = ctx.run(ctx.on.relation_broken(started.get_relation(relation.id)), started)

    assert_stopped(
        ctx,
        out,
        "the source is gone: the migration-source relation was removed or the "
        "mirrormaker-source-* options unset",
    )


def test_revoked_relation_credentials_stop_mirrormaker(ctx):
    relation, secrets = source_relation()
    started = start(ctx, state(relations=(relation,), secrets=secrets))

    out = ctx.run(ctx.on.update_status(), dataclasses.replace(started, secrets=frozenset()))

    assert_stopped(ctx, out, "migration-source: old-kafka no longer sends credentials")


def test_a_peer_that_lost_the_source_stops_this_unit(ctx):
    secret = credentials()
    started = start(ctx, state(config=external(secret), secrets=(secret,)))
    stop = _MigrationRequest(state="stopped", seq=2, at=2000, by="kafka-k8s/1", reason="gone")
    cluster = dataclasses.replace(
        started.get_relations("cluster")[0], peers_data={1: {"mirrormaker-request": stop.raw()}}
    )

    out = ctx.run(
        ctx.on.relation_changed(cluster, remote_unit=1),
        dataclasses.replace(started, relations={cluster}),
    )

    assert service(out) == ops.pebble.ServiceStatus.INACTIVE
    assert out.unit_status == testing.BlockedStatus(f"MirrorMaker stopped: gone{GONE}")


def test_after_a_stop_for_a_lost_source_start_resumes_and_stop_clears(ctx):
    secret = credentials()
    before = state(config=external(secret), secrets=(secret,))
    started = start(ctx, before)
    lost = ctx.run(ctx.on.update_status(), dataclasses.replace(started, secrets=frozenset()))
    regranted = dataclasses.replace(lost, secrets={secret})

    resumed = start(ctx, regranted)
    cleared = ctx.run(ctx.on.action("stop-migration"), lost)

    assert service(resumed) == ops.pebble.ServiceStatus.ACTIVE
    assert unit_request(resumed)["state"] == "running"
    assert "reason" not in unit_request(resumed)
    assert "reason" not in unit_request(cleared)
    assert cleared.unit_status.message.startswith("mirrormaker-source-credentials: secret")


def test_a_typo_in_an_option_keeps_mirrormaker_running(ctx):
    secret = credentials()
    started = start(ctx, state(config=external(secret), secrets=(secret,)))
    typo = credentials(**{"sasl-mechanisms": "PLAIN"})

    out = ctx.run(
        ctx.on.config_changed(),
        dataclasses.replace(started, config=external(typo), secrets={secret, typo}),
    )

    assert service(out) == ops.pebble.ServiceStatus.ACTIVE
    assert unit_request(out)["state"] == "running"
    assert "unknown key sasl-mechanisms" in out.unit_status.message


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


# dry-run -----------------------------------------------------------------------------------------


def test_dry_run_reports_the_selection_and_starts_nothing(ctx, clusters):
    secret = credentials()
    out = start(ctx, state(config=external(secret), secrets=(secret,)), **{"dry-run": True})
    results = ctx.action_results or {}
    assert results["dry-run"] == "nothing was started"
    assert results["source"] == "old-0:9092: reachable, 3 topics, 3 groups"
    assert results["target"] == "reachable"
    assert results["topics"] == "orders, payments"
    assert results["topic-count"] == "2"
    assert results["partitions"] == "3"
    assert results["groups"] == "billing, shipping"
    assert results["group-count"] == "2"
    assert "mirrormaker" not in out.get_container("kafka").plan.services
    assert "mirrormaker-request" not in out.get_relations("cluster")[0].local_unit_data
    assert ("source", "migrator", SOURCE_PASSWORD) in clusters.logins
    assert ("target", "mirrormaker", TARGET_PASSWORD) in clusters.logins
    assert_no_secret_leaked(ctx, out)


def test_dry_run_warns_when_nothing_matches(ctx):
    secret = credentials()
    config = external(secret, **{"mirrormaker-topics": "nothing-.*"})
    start(ctx, state(config=config, secrets=(secret,)), **{"dry-run": True})
    assert "no source topic matches" in (ctx.action_results or {})["warning"]


@pytest.mark.parametrize("role", ["source", "target"])
def test_dry_run_with_an_unreachable_cluster_fails(ctx, clusters, role):
    clusters.unreachable.add(role)
    secret = credentials()
    with pytest.raises(testing.ActionFailed) as failed:
        start(ctx, state(config=external(secret), secrets=(secret,)), **{"dry-run": True})
    assert failed.value.message == f"{role} cluster at h:1 did not answer: timed out"


def test_dry_run_without_source_fails(ctx):
    with pytest.raises(testing.ActionFailed) as failed:
        start(ctx, state(), **{"dry-run": True})
    assert failed.value.message.startswith("no source cluster to migrate from")


# migration-status --------------------------------------------------------------------------------

RESULT_KEY = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def result_keys(results: Mapping[str, object]) -> set[str]:
    """Every key of nested action results."""
    keys = set(results)
    for value in results.values():
        if isinstance(value, Mapping):
            keys |= result_keys(value)
    return keys


def running(**kwargs: object) -> testing.State:
    """A running migration seen from unit 0, with two peers whose MirrorMaker runs too."""
    secret = credentials()
    active = json.dumps({"service": "active", "exactly-once": "disabled"})
    cluster = peers(
        {"mirrormaker-state": active},
        {"mirrormaker-state": active},
        local={"mirrormaker-request": request("running", 1)},
    )
    return state(
        config=external(secret, **kwargs),
        secrets=(secret,),
        cluster=cluster,
        container=running_container(),
    )


def migration_status(ctx: testing.Context, before: testing.State, **params: object):
    out = ctx.run(ctx.on.action("migration-status", params=params), before)
    results = ctx.action_results or {}
    assert result_keys(results) <= {key for key in result_keys(results) if RESULT_KEY.match(key)}
    return out, results


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
    clusters.connectors[3] = mm._ConnectorState(
        connector="MirrorSourceConnector", task=0, state="FAILED", trace=trace
    )
    clusters.connectors[4] = mm._ConnectorState(
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
        "summary",
        "ready-for-cutover",
        "reasons",
        "source",
        "units",
        "table",
        "fence",
        "fenced-topics",
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


# Status while migrating --------------------------------------------------------------------------


def test_status_while_lagging_is_refreshed_on_update_status(ctx, clusters):
    out = ctx.run(ctx.on.update_status(), running())
    lagging = testing.ActiveStatus(LAGGING.format(source="old-0:9092") + FENCED)
    assert (out.unit_status, out.app_status) == (lagging, lagging)
    assert set(clusters.timeouts) == {mm._STATUS_TIMEOUT}
    clusters.in_sync()
    again = ctx.run(ctx.on.update_status(), out)
    ready = "in sync with old-0:9092: ready for cutover" + FENCED
    assert again.unit_status == testing.ActiveStatus(ready)


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("unreachable", "source cluster at h:1 did not answer: timed out"),
        ("refused", "source cluster at h:1 refused the login of migrator: invalid credentials"),
    ],
)
def test_status_when_the_source_fails(ctx, clusters, problem, message):
    getattr(clusters, problem).add("source")
    out = ctx.run(ctx.on.update_status(), running())
    assert out.unit_status == testing.BlockedStatus(message)
    assert out.app_status == testing.BlockedStatus(message)


def test_status_when_a_task_failed(ctx, clusters):
    clusters.in_sync()
    clusters.connectors[3] = mm._ConnectorState(
        connector="MirrorSourceConnector",
        task=0,
        state="FAILED",
        trace="org.apache.kafka.connect.errors.ConnectException: boom\n\tat x(X.java:1)",
    )
    out = ctx.run(ctx.on.update_status(), running())
    assert out.unit_status == testing.BlockedStatus(
        "MirrorMaker MirrorSourceConnector-0 failed: ConnectException: boom"
    )


def test_status_does_not_query_the_clusters_in_collect_status(ctx, clusters):
    out = ctx.run(ctx.on.update_status(), running())
    assert len(clusters.logins) == 2
    ctx.run(ctx.on.action("stop-migration"), out)
    assert len(clusters.logins) == 2


def test_status_summary_is_dropped_once_stopped(ctx, clusters):
    out = ctx.run(ctx.on.update_status(), running())
    stopped = ctx.run(ctx.on.action("stop-migration"), out)
    assert stopped.unit_status == testing.ActiveStatus("migration stopped" + FENCED)
