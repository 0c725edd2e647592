# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The charm's broker under ops.testing: state in, state out, Kafka faked by `helpers.FakeKafka`.

Install and config, the controller quorum, peers and leadership, rotating the internal
passwords, the kafka-client relation, invalid config and an absent container.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import pathlib
import stat
import tempfile
import uuid
from functools import partial

import ops
import pytest
from ops import testing

from acls import reserved_denials
from admin import Acl, AdminError
from charm import KafkaK8sCharm
from cluster import generate_cluster_id
from tests.unit.helpers import (
    CLUSTER_ID,
    MODEL,
    PASSWORDS,
    RESTARTS,
    client_relation,
    cluster,
    container,
    credentials_secret,
    host,
    properties,
    read,
    restart_queued,
    running,
)

SERVER_PROPERTIES = "/etc/kafka/server.properties"
INTERNAL_USERS = {
    "admin": PASSWORDS["admin-password"],
    "mirrormaker": PASSWORDS["mirrormaker-password"],
    "replication-a": PASSWORDS["replication-a-password"],
}


def relation_users(users):
    """The relation users among Kafka's users (a dict) or upserts (a list of pairs)."""
    if isinstance(users, dict):
        return {name: pw for name, pw in users.items() if name.startswith("relation-")}
    return [(name, pw) for name, pw in users if name.startswith("relation-")]


CLIENT_PROPERTIES = "/etc/kafka/client.properties"
INTERNAL_JAAS = "listener.name.internal.scram-sha-512.sasl.jaas.config"


def mode(ctx: testing.Context, state: testing.State, path: str) -> int:
    root = state.get_container("kafka").get_filesystem(ctx)
    return stat.S_IMODE((root / path.lstrip("/")).stat().st_mode)


def format_commands(ctx: testing.Context) -> list[list[str]]:
    runs = ctx.exec_history.get("kafka", [])
    return [run.command for run in runs if run.command[0].endswith("kafka-storage.sh")]


# --- install and config-changed on a fresh leader -----------------------------------------


@pytest.mark.parametrize("event", ["install", "config_changed"])
def test_fresh_leader_initialises_and_starts_the_broker(ctx, kafka, event):
    peers = testing.PeerRelation("cluster")
    state = testing.State(
        leader=True, model=MODEL, containers={container()}, relations={peers}, planned_units=1
    )

    out = ctx.run(getattr(ctx.on, event)(), state)

    data = out.get_relation(peers.id).local_app_data
    secret = out.get_secret(label="internal-credentials")
    assert data["internal-credentials"] == secret.id
    assert json.loads(data["controller-voters"]) == [0]
    assert len(data["cluster-id"]) == 22
    content = secret.latest_content
    assert content.pop("inter-broker-user") == "replication-a"
    assert set(content) == {
        "admin-password",
        "controller-password",
        "mirrormaker-password",
        "replication-a-password",
    }
    assert all(len(password) == 32 for password in content.values())

    (command,) = format_commands(ctx)
    assert command[:2] == ["/opt/kafka/bin/kafka-storage.sh", "format"]
    assert f"--cluster-id={data['cluster-id']}" in command
    assert command[command.index("-c") + 1] == SERVER_PROPERTIES
    # The SCRAM passwords reach the tool in an argument file, removed once it ran.
    assert command[-1] == "@/etc/kafka/format-arguments"
    assert not [arg for arg in command for pw in content.values() if pw in arg]
    fs = out.get_container("kafka").get_filesystem(ctx)
    assert not (fs / "etc/kafka/format-arguments").exists()

    text = read(ctx, out, SERVER_PROPERTIES)
    props = properties(text)
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "0"
    assert props["controller.quorum.voters"] == f"0@{host(0)}:9097"
    assert props["listeners"] == (
        "CLIENT://0.0.0.0:9092,INTERNAL://0.0.0.0:19092,CONTROLLER://0.0.0.0:9097"
    )
    assert props["advertised.listeners"] == (
        f"CLIENT://{host(0)}:9092,INTERNAL://{host(0)}:19092,CONTROLLER://{host(0)}:9097"
    )
    assert props["listener.security.protocol.map"] == (
        "CLIENT:SASL_PLAINTEXT,INTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    )
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert 'username="replication-a"' in props[INTERNAL_JAAS]
    assert content["replication-a-password"] in props[INTERNAL_JAAS]
    assert props["super.users"] == (
        "User:admin;User:controller;User:replication-a;User:replication-b"
    )
    assert content["controller-password"] in text
    assert mode(ctx, out, SERVER_PROPERTIES) == 0o600
    assert content["admin-password"] in read(ctx, out, CLIENT_PROPERTIES)
    assert mode(ctx, out, CLIENT_PROPERTIES) == 0o600

    kafka_out = out.get_container("kafka")
    service = kafka_out.plan.services["kafka"]
    assert service.command == "/opt/kafka/bin/kafka-server-start.sh /etc/kafka/server.properties"
    assert (service.user, service.group, service.startup) == ("kafka", "kafka", "enabled")
    assert service.environment["KAFKA_HEAP_OPTS"] == "-Xms512m -Xmx1024m"
    check = kafka_out.plan.checks["kafka-ready"]
    assert check.level == ops.pebble.CheckLevel.READY
    assert check.tcp == {"port": 9092}
    assert kafka_out.service_statuses["kafka"] == ops.pebble.ServiceStatus.ACTIVE
    assert out.unit_status == testing.ActiveStatus("broker and controller")


def test_config_options_reach_server_properties_and_heap(ctx):
    secret = credentials_secret()
    state = testing.State(
        leader=True,
        model=MODEL,
        config={"num-partitions": 12, "log-retention-hours": -1, "broker-heap-mb": 2048},
        containers={container()},
        relations={cluster(secret, voters=[0], peers=[])},
        secrets={secret},
    )

    out = ctx.run(ctx.on.config_changed(), state)

    props = properties(read(ctx, out, SERVER_PROPERTIES))
    assert props["num.partitions"] == "12"
    assert props["log.retention.hours"] == "-1"
    assert props["auto.create.topics.enable"] == "false"
    heap = out.get_container("kafka").plan.services["kafka"].environment["KAFKA_HEAP_OPTS"]
    assert heap == "-Xms512m -Xmx2048m"


def test_a_wrong_mode_is_put_right_though_the_content_is_unchanged(ctx):
    secret = credentials_secret()
    with tempfile.TemporaryDirectory() as directory:
        etc = pathlib.Path(directory)
        mount = testing.Mount(location="/etc/kafka", source=etc)
        state = testing.State(
            leader=True,
            model=MODEL,
            containers={container(mounts={"etc": mount})},
            relations={cluster(secret, voters=[0], peers=[])},
            secrets={secret},
        )
        first = ctx.run(ctx.on.config_changed(), state)
        rendered = (etc / "server.properties").read_text()
        for name in ("server.properties", "client.properties"):
            (etc / name).chmod(0o644)

        ctx.run(ctx.on.config_changed(), first)

        assert (etc / "server.properties").read_text() == rendered
        for name in ("server.properties", "client.properties"):
            assert stat.S_IMODE((etc / name).stat().st_mode) == 0o600


# --- the controller quorum ----------------------------------------------------------------


def test_leader_waits_for_the_quorum_before_starting(ctx):
    peers = testing.PeerRelation("cluster")
    state = testing.State(
        leader=True, model=MODEL, containers={container()}, relations={peers}, planned_units=3
    )

    out = ctx.run(ctx.on.config_changed(), state)

    assert "controller-voters" not in out.get_relation(peers.id).local_app_data
    assert out.unit_status == testing.WaitingStatus(
        "waiting for units to join the controller quorum"
    )
    assert out.get_container("kafka").plan.services == {}
    assert format_commands(ctx) == []


def test_voters_are_frozen_once_the_planned_units_joined(ctx):
    peers = testing.PeerRelation("cluster", peers_data={1: {}, 2: {}})
    state = testing.State(
        leader=True, model=MODEL, containers={container()}, relations={peers}, planned_units=3
    )

    out = ctx.run(ctx.on.relation_joined(peers, remote_unit=2), state)

    peers_out = out.get_relation(peers.id)
    assert json.loads(peers_out.local_app_data["controller-voters"]) == [0, 1, 2]
    props = properties(read(ctx, out, SERVER_PROPERTIES))
    assert props["controller.quorum.voters"] == ",".join(f"{n}@{host(n)}:9097" for n in (0, 1, 2))
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"

    # A fourth unit joining later changes nothing: the quorum stays the same three.
    grown = dataclasses.replace(peers_out, peers_data={1: {}, 2: {}, 3: {}})
    out = ctx.run(
        ctx.on.relation_joined(grown, remote_unit=3),
        dataclasses.replace(out, relations={grown}, planned_units=4),
    )
    assert json.loads(out.get_relation(peers.id).local_app_data["controller-voters"]) == [0, 1, 2]


def test_unit_past_the_voters_is_broker_only():
    ctx = testing.Context(KafkaK8sCharm, unit_id=3)
    secret = credentials_secret()
    state = testing.State(
        model=MODEL,
        containers={container()},
        relations={cluster(secret, peers=(0, 1, 2))},
        secrets={secret},
    )

    out = ctx.run(ctx.on.config_changed(), state)

    props = properties(read(ctx, out, SERVER_PROPERTIES))
    assert props["process.roles"] == "broker"
    assert props["node.id"] == "3"
    assert props["listeners"] == "CLIENT://0.0.0.0:9092,INTERNAL://0.0.0.0:19092"
    assert props["controller.quorum.voters"].startswith(f"0@{host(0)}:9097,")
    assert out.unit_status == testing.ActiveStatus("broker")


# --- peers joining and departing, leadership, non-leaders -----------------------------------


def test_peer_departure_keeps_the_quorum_and_updates_client_endpoints(ctx, kafka):
    secret = credentials_secret()
    peers = cluster(secret, peers=(1,))  # unit 2 has just left the relation
    client = client_relation()
    state = testing.State(
        leader=True,
        model=MODEL,
        containers={container()},
        relations={peers, client},
        secrets={secret},
    )

    out = ctx.run(ctx.on.relation_departed(peers, remote_unit=2, departing_unit=2), state)

    assert peers.local_app_data.items() <= out.get_relation(peers.id).local_app_data.items()
    assert out.get_relation(client.id).local_app_data["endpoints"] == (
        f"{host(0)}:9092,{host(1)}:9092"
    )
    assert out.unit_status == testing.ActiveStatus("broker and controller")


@pytest.fixture
def formatted_storage():
    """A storage mount the KRaft format has already written to.

    A plain temporary directory: pytest-operator's `tmp_path_factory` needs tox's environment.
    """
    with tempfile.TemporaryDirectory() as directory:
        root = pathlib.Path(directory)
        (root / "data").mkdir()
        (root / "data/meta.properties").write_text(f"cluster.id={CLUSTER_ID}\n")
        yield testing.Mount(location="/var/lib/kafka", source=root)


def test_new_leader_keeps_what_the_old_leader_decided(kafka, formatted_storage):
    ctx = testing.Context(KafkaK8sCharm, unit_id=1)
    secret = credentials_secret()
    peers = cluster(secret, peers=(0, 2))
    state = testing.State(
        leader=True,
        model=MODEL,
        containers={container(mounts={"data": formatted_storage})},
        relations={peers},
        secrets={secret},
        planned_units=3,
    )

    # Juju creates peer relations before leader-elected; the rolling-ops library counts on it.
    out = ctx.run(ctx.on.leader_elected(), dataclasses.replace(state, relations={peers, RESTARTS}))

    assert peers.local_app_data.items() <= out.get_relation(peers.id).local_app_data.items()
    assert [s.id for s in out.secrets] == [secret.id]
    assert out.get_secret(id=secret.id).latest_content == PASSWORDS
    assert format_commands(ctx) == []  # the storage is formatted already
    props = properties(read(ctx, out, SERVER_PROPERTIES))
    assert props["node.id"] == "1"
    assert PASSWORDS["replication-a-password"] in props[INTERNAL_JAAS]
    assert dict(kafka.upserts) == INTERNAL_USERS  # written once through the API


def test_non_leader_renders_from_the_peer_data_and_secret():
    ctx = testing.Context(KafkaK8sCharm, unit_id=2)
    secret = credentials_secret()
    peers = cluster(secret, peers=(0, 1))
    state = testing.State(
        model=MODEL, containers={container()}, relations={peers}, secrets={secret}
    )

    out = ctx.run(ctx.on.relation_changed(peers, remote_unit=0), state)

    (command,) = format_commands(ctx)
    assert f"--cluster-id={CLUSTER_ID}" in command
    props = properties(read(ctx, out, SERVER_PROPERTIES))
    assert props["node.id"] == "2"
    assert props["advertised.listeners"] == (
        f"CLIENT://{host(2)}:9092,INTERNAL://{host(2)}:19092,CONTROLLER://{host(2)}:9097"
    )
    assert PASSWORDS["replication-a-password"] in props[INTERNAL_JAAS]
    assert out.get_relation(peers.id).local_app_data == peers.local_app_data
    assert len(out.secrets) == 1
    assert out.unit_status == testing.ActiveStatus("broker and controller")


def test_non_leader_waits_for_the_leader():
    ctx = testing.Context(KafkaK8sCharm, unit_id=1)
    peers = testing.PeerRelation("cluster", peers_data={0: {}})
    state = testing.State(model=MODEL, containers={container()}, relations={peers})

    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == testing.WaitingStatus(
        "waiting for the leader to initialise the cluster"
    )
    assert out.get_container("kafka").plan.services == {}


# --- rotating the internal passwords --------------------------------------------------------


def content(out: testing.State, secret: testing.Secret) -> dict[str, str]:
    return dict(out.get_secret(id=secret.id).latest_content)


def test_the_leader_writes_the_internal_users_through_the_api_once(ctx, kafka, etc):
    first, _ = running(ctx, etc)
    assert dict(kafka.upserts) == INTERNAL_USERS

    ctx.run(ctx.on.update_status(), first)

    assert len(kafka.upserts) == len(INTERNAL_USERS)


def test_rotation_stores_pending_first_then_sets_each_user_and_rolls(ctx, kafka, etc):
    before, secret = running(ctx, etc)
    kafka.upserts.clear()

    out = ctx.run(ctx.on.secret_rotate(secret), before)

    now = content(out, secret)
    assert now["controller-password"] == PASSWORDS["controller-password"]
    assert now["inter-broker-user"] == "replication-b"
    assert not [key for key in now if key.startswith("pending-")]
    new = {
        "admin": now["admin-password"],
        "mirrormaker": now["mirrormaker-password"],
        "replication-b": now["replication-b-password"],
    }
    assert PASSWORDS["admin-password"] not in new.values()
    # One user at a time, admin's last: until then the current admin password logs in.
    assert kafka.upserts == [
        ("mirrormaker", new["mirrormaker"]),
        ("replication-b", new["replication-b"]),
        ("admin", new["admin"]),
    ]
    # The old replication user stays: the brokers not restarted yet still log in with it.
    assert now["replication-a-password"] == PASSWORDS["replication-a-password"]
    props = properties((etc / "server.properties").read_text())
    assert 'username="replication-b"' in props[INTERNAL_JAAS]
    assert new["replication-b"] in props[INTERNAL_JAAS]
    assert new["admin"] in (etc / "client.properties").read_text()
    # The broker is not restarted in the hook: it asks for its turn.
    assert restart_queued(out)


def test_rotation_that_fails_midway_is_finished_by_a_retry(ctx, kafka, etc):
    before, secret = running(ctx, etc)
    kafka.verify = True
    kafka.fail_upsert_at = 2  # mirrormaker's is set, replication-b's times out

    failed = ctx.run(ctx.on.secret_rotate(secret), before)

    stored = content(failed, secret)
    pending = {
        key[len("pending-") : -len("-password")]: value
        for key, value in stored.items()
        if key.startswith("pending-")
    }
    assert set(pending) == {"admin", "mirrormaker", "replication-b"}
    assert stored["admin-password"] == PASSWORDS["admin-password"]
    assert kafka.users["mirrormaker"] == pending["mirrormaker"]
    assert kafka.users["admin"] == PASSWORDS["admin-password"]
    assert not restart_queued(failed)
    assert failed.unit_status == testing.MaintenanceStatus(
        "waiting for the cluster to accept admin requests"
    )

    retried = ctx.run(ctx.on.update_status(), failed)

    now = content(retried, secret)
    assert not [key for key in now if key.startswith("pending-")]
    assert now["admin-password"] == pending["admin"]
    assert now["replication-b-password"] == pending["replication-b"]
    assert now["inter-broker-user"] == "replication-b"
    assert {user: kafka.users[user] for user in pending} == pending
    assert restart_queued(retried)


def test_a_rotation_cut_off_after_admins_password_logs_in_with_the_pending_one(ctx, kafka, etc):
    pending = {"admin": "new-admin-pw", "mirrormaker": "new-mm-pw", "replication-b": "new-rb-pw"}
    stored = {**PASSWORDS, **{f"pending-{user}-password": pw for user, pw in pending.items()}}
    # The hook died after Kafka took every pending password, before the secret made them current.
    kafka.users.update(pending)
    kafka.verify = True
    before, secret = running(ctx, etc, secret=credentials_secret(stored))

    now = content(before, secret)

    assert ("admin", "old-admin-pw") in kafka.logins
    assert ("admin", "new-admin-pw") in kafka.logins
    assert now["admin-password"] == "new-admin-pw"
    assert now["inter-broker-user"] == "replication-b"
    assert not [key for key in now if key.startswith("pending-")]


def test_rotation_waits_until_every_broker_logs_in_with_the_current_user(ctx, kafka, etc):
    before, secret = running(ctx, etc, unit_data={"broker-inter-broker-user": "admin"})
    kafka.upserts.clear()

    out = ctx.run(ctx.on.secret_rotate(secret), before)

    assert kafka.upserts == []
    assert any(key.startswith("pending-") for key in content(out, secret))
    assert out.unit_status == testing.MaintenanceStatus(
        "password rotation waits for kafka-k8s/1, kafka-k8s/2 to restart"
    )


def test_a_cluster_from_before_the_replication_users_moves_onto_one(ctx, kafka, etc):
    legacy = {key: PASSWORDS[key] for key in ("admin-password", "controller-password")}
    legacy["mirrormaker-password"] = PASSWORDS["mirrormaker-password"]
    secret = credentials_secret(legacy)

    # Every broker runs with `admin` as its inter-broker user (this one was just started so).
    out, _ = running(ctx, etc, secret=secret, unit_data={"broker-inter-broker-user": "admin"})

    now = content(out, secret)
    assert now["inter-broker-user"] == "replication-a"
    assert kafka.users["replication-a"] == now["replication-a-password"]
    assert now["admin-password"] == PASSWORDS["admin-password"]
    assert 'username="replication-a"' in (etc / "server.properties").read_text()
    assert restart_queued(out)


def test_non_leader_re_renders_on_secret_changed_and_waits_for_its_turn(etc):
    ctx = testing.Context(KafkaK8sCharm, unit_id=1)
    # Juju sends secret-changed to the non-leader units of the owning app (juju/juju#15127).
    # Scenario only emits it for secrets the charm does not own, so the non-leader sees the
    # secret as an observer here: it can read it, not manage it, which is what Juju allows.
    secret = credentials_secret(owner=None)
    before, _ = running(ctx, etc, leader=False, peers=(0, 2), secret=secret)
    assert not restart_queued(before)

    rotated_content = {
        **PASSWORDS,
        "admin-password": "new-admin-pw",
        "replication-b-password": "new-rb-pw",
        "inter-broker-user": "replication-b",
    }
    rotated = dataclasses.replace(secret, latest_content=rotated_content)
    after = ctx.run(ctx.on.secret_changed(rotated), dataclasses.replace(before, secrets={rotated}))

    text = (etc / "server.properties").read_text()
    assert "new-rb-pw" in properties(text)[INTERNAL_JAAS]
    assert "new-admin-pw" in (etc / "client.properties").read_text()
    assert restart_queued(after)
    assert after.unit_status == testing.MaintenanceStatus(
        "waiting for this unit's turn to restart its broker"
    )


# --- rolling restarts and dynamic options -----------------------------------------------------


def heap(out: testing.State) -> str:
    return out.get_container("kafka").plan.services["kafka"].environment["KAFKA_HEAP_OPTS"]


def test_a_dynamic_option_is_set_in_kafka_and_restarts_nothing(ctx, kafka, etc):
    before, _ = running(ctx, etc)
    assert kafka.cluster_defaults == {"log.retention.ms": str(168 * 3_600_000)}
    kafka.config_changes.clear()

    changed = dataclasses.replace(before, config={"log-retention-hours": 24})
    out = ctx.run(ctx.on.config_changed(), changed)

    assert kafka.config_changes == [{"log.retention.ms": str(24 * 3_600_000)}]
    assert not restart_queued(out)
    assert properties((etc / "server.properties").read_text())["log.retention.hours"] == "24"


@pytest.mark.parametrize(
    "config", [{"num-partitions": 12}, {"auto-create-topics": True}, {"broker-heap-mb": 2048}]
)
def test_an_option_kafka_reads_only_at_start_queues_a_restart(ctx, kafka, etc, config):
    before, _ = running(ctx, etc)
    kafka.config_changes.clear()

    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(before, config=config))

    assert restart_queued(out)
    assert kafka.config_changes == []


def test_a_static_option_waits_for_the_units_turn(ctx, kafka, etc):
    before, _ = running(ctx, etc)
    assert heap(before) == "-Xms512m -Xmx1024m"

    out = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(before, config={"broker-heap-mb": 2048})
    )

    assert heap(out) == "-Xms512m -Xmx1024m"  # not restarted by the hook
    assert restart_queued(out)
    assert out.unit_status == testing.MaintenanceStatus(
        "waiting for this unit's turn to restart its broker"
    )


def granted(out: testing.State) -> str:
    return out.get_relations("restart")[0].local_app_data.get("granted_unit", "")


def test_the_units_turn_restarts_it_and_waits_for_in_sync(ctx, kafka, etc, lock_worker):
    before, _ = running(ctx, etc)
    queued = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(before, config={"broker-heap-mb": 2048})
    )
    assert granted(queued) == "kafka-k8s/0"  # the leader grants itself the lock ...
    assert lock_worker == ["kafka-k8s/0"]  # ... and its worker dispatches the turn later

    out = ctx.run(ctx.on.update_status(), queued)

    assert heap(out) == "-Xms512m -Xmx2048m"
    assert not restart_queued(out)
    assert out.unit_status == testing.ActiveStatus("broker and controller")


def test_no_restart_while_partitions_are_under_replicated(ctx, kafka, etc, monkeypatch):
    monkeypatch.setattr("rolling.SYNC_TIMEOUT", 0)
    before, _ = running(ctx, etc)
    queued = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(before, config={"broker-heap-mb": 2048})
    )
    kafka.under_replicated = ("orders-1",)

    out = ctx.run(ctx.on.update_status(), queued)

    assert heap(out) == "-Xms512m -Xmx1024m"
    unit = out.get_relations("restart")[0].local_unit_data
    assert unit["state"] == "retry-release"


def test_a_restarted_broker_not_back_in_sync_keeps_the_lock(ctx, kafka, etc, monkeypatch):
    monkeypatch.setattr("rolling.SYNC_TIMEOUT", 0)
    before, _ = running(ctx, etc)
    queued = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(before, config={"broker-heap-mb": 2048})
    )
    kafka.brokers = frozenset({1, 2})  # broker 0 has not registered again yet

    out = ctx.run(ctx.on.update_status(), queued)

    assert heap(out) == "-Xms512m -Xmx2048m"
    assert out.get_relations("restart")[0].local_unit_data["state"] == "retry-hold"
    assert granted(out) == "kafka-k8s/0"


# --- the kafka-client relation --------------------------------------------------------------


def relation_user_secret(state: testing.State, relation: testing.Relation) -> dict[str, str]:
    secret_id = state.get_relation(relation.id).local_app_data["secret-user"]
    return dict(state.get_secret(id=secret_id).latest_content)


def serving_state(*relations: testing.Relation, ready: bool = True) -> testing.State:
    secret = credentials_secret()
    return testing.State(
        leader=True,
        model=MODEL,
        containers={container(ready=ready)},
        relations={cluster(secret), *relations},
        secrets={secret},
    )


topic_acl = partial(Acl, resource="TOPIC", name="orders", pattern="LITERAL")
CONSUMER_ACLS = {
    topic_acl(operation="DESCRIBE"),
    topic_acl(operation="READ"),
}
PRODUCER_ACLS = {
    topic_acl(operation="DESCRIBE"),
    topic_acl(operation="WRITE"),
    topic_acl(operation="CREATE"),
    Acl(resource="CLUSTER", name="kafka-cluster", pattern="LITERAL", operation="IDEMPOTENT_WRITE"),
}
ADMIN_ACLS = {
    *(
        Acl(resource="CLUSTER", name="kafka-cluster", pattern="LITERAL", operation=operation)
        for operation in ("DESCRIBE", "DESCRIBE_CONFIGS", "IDEMPOTENT_WRITE")
    ),
    Acl(resource="TOPIC", name="*", pattern="LITERAL", operation="ALL"),
    Acl(resource="GROUP", name="*", pattern="LITERAL", operation="ALL"),
    Acl(resource="TRANSACTIONAL_ID", name="*", pattern="LITERAL", operation="ALL"),
    *reserved_denials(),
}


def transactional_acls(relation: testing.Relation) -> set[Acl]:
    """A producer's transactional ids: under its own prefix."""
    return {
        Acl(
            resource="TRANSACTIONAL_ID",
            name=f"relation-{relation.id}-",
            pattern="PREFIXED",
            operation=operation,
        )
        for operation in ("WRITE", "DESCRIBE")
    }


def group_acl(relation: testing.Relation) -> Acl:
    return Acl(
        resource="GROUP", name=f"relation-{relation.id}-", pattern="PREFIXED", operation="READ"
    )


def test_client_relation_gets_a_user_endpoints_and_acls(ctx, kafka):
    client = client_relation("consumer")

    out = ctx.run(ctx.on.relation_changed(client, remote_unit=0), serving_state(client))

    user = f"relation-{client.id}"
    data = out.get_relation(client.id).local_app_data
    assert data["endpoints"] == ",".join(f"{host(n)}:9092" for n in (0, 1, 2))
    assert data["topic"] == "orders"
    credentials = relation_user_secret(out, client)
    assert credentials["username"] == user
    assert len(credentials["password"]) == 32
    assert relation_users(kafka.users) == {user: credentials["password"]}
    assert kafka.acls[user] == CONSUMER_ACLS | {group_acl(client)}
    extra = out.get_secret(id=data["secret-extra"]).latest_content
    assert extra["consumer-group-prefix"] == f"{user}-"
    assert out.app_status == testing.ActiveStatus()


@pytest.mark.parametrize(
    ("roles", "expected"),
    [("producer", PRODUCER_ACLS), ("admin", ADMIN_ACLS), ("producer,admin", ADMIN_ACLS)],
)
def test_client_acls_follow_the_requested_roles(ctx, kafka, roles, expected):
    client = client_relation(roles)

    ctx.run(ctx.on.relation_changed(client, remote_unit=0), serving_state(client))

    transactions = transactional_acls(client) if roles == "producer" else set()
    assert kafka.acls[f"relation-{client.id}"] == expected | transactions


def test_both_roles_when_none_requested(ctx, kafka):
    client = testing.Relation("kafka-client", remote_app_data={"topic": "orders"})

    ctx.run(ctx.on.relation_changed(client, remote_unit=0), serving_state(client))

    assert kafka.acls[f"relation-{client.id}"] == (
        CONSUMER_ACLS | PRODUCER_ACLS | {group_acl(client)} | transactional_acls(client)
    )


def test_client_relation_changed_again_keeps_the_credentials(ctx, kafka):
    client = client_relation()
    first = ctx.run(ctx.on.relation_changed(client, remote_unit=0), serving_state(client))
    credentials = relation_user_secret(first, client)
    client_out = first.get_relation(client.id)

    second = ctx.run(ctx.on.relation_changed(client_out, remote_unit=0), first)

    assert relation_user_secret(second, client) == credentials
    assert relation_users(kafka.upserts) == [(f"relation-{client.id}", credentials["password"])]
    answer = ("endpoints", "topic", "secret-user", "secret-tls", "secret-extra")
    after = second.get_relation(client.id).local_app_data
    assert {key: after.get(key) for key in answer} == {
        key: client_out.local_app_data[key] for key in answer
    }
    assert {s.id for s in second.secrets} == {s.id for s in first.secrets}


def test_client_relation_broken_retires_the_user_and_removes_its_acls(ctx, kafka):
    client = client_relation()
    created = ctx.run(ctx.on.relation_changed(client, remote_unit=0), serving_state(client))
    user = f"relation-{client.id}"
    password = kafka.users[user]

    ctx.run(ctx.on.relation_broken(created.get_relation(client.id)), created)

    assert kafka.users[user] != password  # nobody holds its password now
    assert set(kafka.acls) == {"mirrormaker"}


def test_client_relation_waits_for_a_ready_broker(ctx, kafka):
    client = client_relation()

    out = ctx.run(
        ctx.on.relation_changed(client, remote_unit=0), serving_state(client, ready=False)
    )

    assert relation_users(kafka.users) == {}
    assert "secret-user" not in out.get_relation(client.id).local_app_data
    assert out.unit_status == testing.WaitingStatus("waiting for the broker to accept clients")


def test_unknown_client_role_blocks_the_app_naming_the_relation(ctx, kafka):
    client = client_relation("superuser")

    out = ctx.run(ctx.on.relation_changed(client, remote_unit=0), serving_state(client))

    assert out.app_status == testing.BlockedStatus(
        f"kafka-client relation {client.id}: unknown extra-user-roles superuser"
    )
    assert relation_users(kafka.users) == {}
    assert out.unit_status == testing.ActiveStatus("broker and controller")


def test_one_refused_relation_blocks_no_other_and_removals_still_run(ctx, kafka):
    # A wildcard without a prefix is refused (it would cover MirrorMaker's topics).
    wildcard = testing.Relation(
        "kafka-client", remote_app_name="greedy", remote_app_data={"topic": "*"}
    )
    fine = client_relation("consumer")
    kafka.users["relation-999"] = "pw-of-a-relation-that-is-gone"

    out = ctx.run(ctx.on.relation_changed(wildcard, remote_unit=0), serving_state(wildcard, fine))

    assert f"relation-{fine.id}" in kafka.users
    assert kafka.acls[f"relation-{fine.id}"] == CONSUMER_ACLS | {group_acl(fine)}
    assert "secret-user" in out.get_relation(fine.id).local_app_data
    # Retired, not deleted (see KafkaAdmin.retire_user): no rights, and not its password.
    assert kafka.users["relation-999"] != "pw-of-a-relation-that-is-gone"
    assert "relation-999" not in kafka.acls
    assert isinstance(out.app_status, testing.BlockedStatus)
    assert out.app_status.message.startswith(
        f"kafka-client relation {wildcard.id}: topic '*': a wildcard needs a prefix"
    )
    assert out.unit_status == testing.ActiveStatus("broker and controller")

    # The refusal is remembered for status on events that do not reconcile.
    again = ctx.run(ctx.on.start(), out)
    assert again.app_status == out.app_status


def test_a_gone_relations_user_is_retired_once_not_deleted(ctx, kafka):
    kafka.users["relation-999"] = "pw-of-a-relation-that-is-gone"
    kafka.acls["relation-999"] = set(CONSUMER_ACLS)

    out = ctx.run(ctx.on.update_status(), serving_state())
    retired = kafka.users["relation-999"]
    upserts = len(kafka.upserts)
    ctx.run(ctx.on.update_status(), out)

    # Deleting a SCRAM credential makes restarted brokers refuse every login (Kafka 3.9, KRaft):
    # the user stays, without rights and with a password nobody holds, set once.
    assert retired != "pw-of-a-relation-that-is-gone"
    assert "relation-999" not in kafka.acls
    assert len(kafka.upserts) == upserts
    assert kafka.users["relation-999"] == retired


def test_broken_relation_takes_its_secrets_along(ctx, kafka):
    client = client_relation()
    created = ctx.run(ctx.on.relation_changed(client, remote_unit=0), serving_state(client))
    data = created.get_relation(client.id).local_app_data
    shared = {data[key] for key in ("secret-user", "secret-extra") if data.get(key)}
    assert shared <= {secret.id for secret in created.secrets}

    out = ctx.run(ctx.on.relation_broken(created.get_relation(client.id)), created)

    assert shared
    assert not shared & {secret.id for secret in out.secrets}


def test_unused_revisions_of_the_internal_credentials_are_removed(ctx):
    secret = credentials_secret()
    # Two rotations later: Scenario keeps a secret's revision numbers private.
    object.__setattr__(secret, "_latest_revision", 3)
    object.__setattr__(secret, "_tracked_revision", 3)
    state = testing.State(
        leader=True,
        model=MODEL,
        containers={container()},
        relations={cluster(secret)},
        secrets={secret},
    )

    ctx.run(ctx.on.secret_remove(secret, revision=1), state)

    assert ctx.removed_secret_revisions == [1]


def test_admin_refusal_is_reported_not_raised(ctx, kafka):
    kafka.error = AdminError("no broker answered")
    client = client_relation()

    out = ctx.run(ctx.on.relation_changed(client, remote_unit=0), serving_state(client))

    assert out.unit_status == testing.MaintenanceStatus(
        "waiting for the cluster to accept admin requests"
    )
    assert "secret-user" not in out.get_relation(client.id).local_app_data


# --- invalid config and an absent container --------------------------------------------------


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"num-partitions": 0}, "num-partitions"),
        ({"log-retention-hours": 0}, "log-retention-hours"),
        ({"log-retention-hours": -2}, "log-retention-hours"),
        ({"broker-heap-mb": 10}, "broker-heap-mb"),
    ],
)
def test_invalid_config_blocks_naming_the_option(ctx, config, option):
    secret = credentials_secret()
    state = testing.State(
        leader=True,
        model=MODEL,
        config=config,
        containers={container()},
        relations={cluster(secret)},
        secrets={secret},
    )

    out = ctx.run(ctx.on.config_changed(), state)

    assert isinstance(out.unit_status, testing.BlockedStatus)
    assert out.unit_status.message.startswith(f"invalid config {option}:")
    assert out.get_container("kafka").plan.services == {}
    assert format_commands(ctx) == []


def test_unreachable_container_waits(ctx):
    peers = testing.PeerRelation("cluster")
    state = testing.State(
        leader=True,
        model=MODEL,
        containers={testing.Container("kafka", can_connect=False)},
        relations={peers},
    )

    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == testing.WaitingStatus("waiting for the kafka container")
    assert out.get_relation(peers.id).local_app_data == {}
    assert out.secrets == frozenset()


def test_bad_client_request_stays_blocked_on_events_that_do_not_reconcile(ctx):
    client = client_relation("superuser")
    blocked = testing.BlockedStatus(
        f"kafka-client relation {client.id}: unknown extra-user-roles superuser"
    )
    state = dataclasses.replace(serving_state(client, ready=False), app_status=blocked)

    out = ctx.run(ctx.on.start(), state)

    assert out.app_status == blocked


# --- the storage ------------------------------------------------------------------------------


def chown_commands(ctx: testing.Context) -> list[list[str]]:
    return [run.command for run in ctx.exec_history.get("kafka", []) if run.command[0] == "chown"]


def test_attached_storage_is_given_to_the_workload_user(ctx, formatted_storage):
    secret = credentials_secret()
    storage = testing.Storage("data")
    state = testing.State(
        leader=True,
        model=MODEL,
        containers={container(mounts={"data": formatted_storage})},
        relations={cluster(secret, voters=[0], peers=[])},
        secrets={secret},
        storages={storage},
    )

    ctx.run(ctx.on.storage_attached(storage), state)

    assert chown_commands(ctx) == [["chown", "-R", "kafka:kafka", "/var/lib/kafka"]]


@pytest.mark.parametrize(
    ("meta", "found"),
    [
        (
            "cluster.id=OtherClusterIdXXXXXXXX\nnode.id=0\n",
            "cluster OtherClusterIdXXXXXXXX node 0",
        ),
        (f"cluster.id={CLUSTER_ID}\nnode.id=5\n", f"cluster {CLUSTER_ID} node 5"),
    ],
)
def test_storage_of_another_cluster_or_node_blocks_and_starts_nothing(ctx, meta, found):
    secret = credentials_secret()
    with tempfile.TemporaryDirectory() as directory:
        root = pathlib.Path(directory)
        (root / "data").mkdir()
        (root / "data/meta.properties").write_text(f"#\nversion=1\n{meta}")
        storage = testing.Mount(location="/var/lib/kafka", source=root)
        state = testing.State(
            leader=True,
            model=MODEL,
            containers={container(mounts={"data": storage})},
            relations={cluster(secret, voters=[0], peers=[])},
            secrets={secret},
        )

        out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == testing.BlockedStatus(
        f"storage /var/lib/kafka holds {found}, this unit is cluster {CLUSTER_ID} node 0: "
        "attach this unit's own or empty storage"
    )
    assert out.get_container("kafka").plan.services == {}
    assert format_commands(ctx) == []


def test_a_cluster_id_never_begins_with_a_dash(monkeypatch: pytest.MonkeyPatch):
    """1 in 64 random ids would (0xF8 encodes as "-"): kafka-storage then took it for an option."""
    dashed = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))
    plain = uuid.UUID(bytes=bytes([0x10]) + bytes(15))
    drawn = iter([dashed, plain])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(drawn))

    assert base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")
    assert generate_cluster_id() == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")
