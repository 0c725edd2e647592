# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The charm's broker under ops.testing: state in, state out, Kafka faked by `helpers.FakeKafka`.

Install and config, the controller quorum, peers and leadership, rotating the internal
passwords, the kafka-client relation, invalid config and an absent container.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import stat
import tempfile
from functools import partial

import ops
import pytest
from ops import testing

from acls import reserved_denials
from admin import Acl, AdminError
from charm import KafkaK8sCharm
from tests.unit.helpers import (
    CLUSTER_ID,
    MODEL,
    PASSWORDS,
    cluster,
    container,
    credentials_secret,
    host,
    read,
)

SERVER_PROPERTIES = "/etc/kafka/server.properties"
CLIENT_PROPERTIES = "/etc/kafka/client.properties"
INTERNAL_JAAS = "listener.name.internal.scram-sha-512.sasl.jaas.config"


def client_relation(roles: str = "consumer") -> testing.Relation:
    return testing.Relation(
        "kafka-client",
        remote_app_name="orders-app",
        remote_app_data={"topic": "orders", "extra-user-roles": roles},
    )


def mode(ctx: testing.Context, state: testing.State, path: str) -> int:
    root = state.get_container("kafka").get_filesystem(ctx)
    return stat.S_IMODE((root / path.lstrip("/")).stat().st_mode)


def properties(text: str) -> dict[str, str]:
    """A `.properties` file as a dict (keys here never hold an escaped `=`)."""
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def format_commands(ctx: testing.Context) -> list[list[str]]:
    return [run.command for run in ctx.exec_history.get("kafka", [])]


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
    assert set(content) == {"admin-password", "controller-password", "mirrormaker-password"}
    assert all(len(password) == 32 for password in content.values())

    (command,) = format_commands(ctx)
    assert command[:2] == ["/opt/kafka/bin/kafka-storage.sh", "format"]
    assert command[command.index("-t") + 1] == data["cluster-id"]
    assert command[command.index("-c") + 1] == SERVER_PROPERTIES
    scram = [command[i + 1] for i, arg in enumerate(command) if arg == "--add-scram"]
    assert scram == [
        f"SCRAM-SHA-512=[name=admin,password={content['admin-password']}]",
        f"SCRAM-SHA-512=[name=mirrormaker,password={content['mirrormaker-password']}]",
    ]

    text = read(ctx, out, SERVER_PROPERTIES)
    props = properties(text)
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "0"
    assert props["controller.quorum.voters"] == f"0@{host(0)}:9097"
    assert props["listeners"] == (
        "CLIENT://0.0.0.0:9092,INTERNAL://0.0.0.0:19092,CONTROLLER://0.0.0.0:9097"
    )
    assert props["advertised.listeners"] == (f"CLIENT://{host(0)}:9092,INTERNAL://{host(0)}:19092")
    assert props["listener.security.protocol.map"] == (
        "CLIENT:SASL_PLAINTEXT,INTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    )
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin;User:controller"
    assert content["admin-password"] in props[INTERNAL_JAAS]
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

    assert out.get_relation(peers.id).local_app_data == peers.local_app_data
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

    out = ctx.run(ctx.on.leader_elected(), state)

    assert out.get_relation(peers.id).local_app_data == peers.local_app_data
    assert [s.id for s in out.secrets] == [secret.id]
    assert out.get_secret(id=secret.id).latest_content == PASSWORDS
    assert format_commands(ctx) == []  # the storage is formatted already
    props = properties(read(ctx, out, SERVER_PROPERTIES))
    assert props["node.id"] == "1"
    assert PASSWORDS["admin-password"] in props[INTERNAL_JAAS]
    assert kafka.upserts == []


def test_non_leader_renders_from_the_peer_data_and_secret():
    ctx = testing.Context(KafkaK8sCharm, unit_id=2)
    secret = credentials_secret()
    peers = cluster(secret, peers=(0, 1))
    state = testing.State(
        model=MODEL, containers={container()}, relations={peers}, secrets={secret}
    )

    out = ctx.run(ctx.on.relation_changed(peers, remote_unit=0), state)

    (command,) = format_commands(ctx)
    assert command[command.index("-t") + 1] == CLUSTER_ID
    props = properties(read(ctx, out, SERVER_PROPERTIES))
    assert props["node.id"] == "2"
    assert props["advertised.listeners"] == f"CLIENT://{host(2)}:9092,INTERNAL://{host(2)}:19092"
    assert PASSWORDS["admin-password"] in props[INTERNAL_JAAS]
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


def test_rotation_changes_admin_and_mirrormaker_passwords(ctx, kafka):
    secret = credentials_secret(rotate=ops.SecretRotate.MONTHLY)
    state = testing.State(
        leader=True,
        model=MODEL,
        containers={container()},
        relations={cluster(secret)},
        secrets={secret},
    )

    out = ctx.run(ctx.on.secret_rotate(secret), state)

    content = out.get_secret(id=secret.id).latest_content
    assert content["controller-password"] == PASSWORDS["controller-password"]
    assert content["admin-password"] != PASSWORDS["admin-password"]
    assert content["mirrormaker-password"] != PASSWORDS["mirrormaker-password"]
    assert kafka.logins == [("admin", PASSWORDS["admin-password"])]
    assert kafka.upserts == [
        ("admin", content["admin-password"]),
        ("mirrormaker", content["mirrormaker-password"]),
    ]
    # The leader gets no secret-changed for its own secret: it re-renders at once.
    props = properties(read(ctx, out, SERVER_PROPERTIES))
    assert content["admin-password"] in props[INTERNAL_JAAS]
    assert content["admin-password"] in read(ctx, out, CLIENT_PROPERTIES)


def test_rotation_keeps_the_secret_when_kafka_refuses(ctx, kafka):
    kafka.error = AdminError("cluster unreachable")
    secret = credentials_secret()
    state = testing.State(
        leader=True,
        model=MODEL,
        containers={container()},
        relations={cluster(secret)},
        secrets={secret},
    )

    out = ctx.run(ctx.on.secret_rotate(secret), state)

    assert out.get_secret(id=secret.id).latest_content == PASSWORDS
    assert kafka.users == {}


def test_non_leader_re_renders_on_secret_changed():
    ctx = testing.Context(KafkaK8sCharm, unit_id=1)
    # Juju sends secret-changed to the non-leader units of the owning app (juju/juju#15127).
    # Scenario only emits it for secrets the charm does not own, so the non-leader sees the
    # secret as an observer here: it can read it, not manage it, which is what Juju allows.
    secret = credentials_secret(owner=None)
    peers = cluster(secret, peers=(0, 2))
    state = testing.State(
        model=MODEL, containers={container()}, relations={peers}, secrets={secret}
    )
    before = ctx.run(ctx.on.config_changed(), state)
    assert "old-admin-pw" in read(ctx, before, SERVER_PROPERTIES)

    rotated = dataclasses.replace(
        secret, latest_content={**PASSWORDS, "admin-password": "new-admin-pw"}
    )
    after = ctx.run(ctx.on.secret_changed(rotated), dataclasses.replace(before, secrets={rotated}))

    text = read(ctx, after, SERVER_PROPERTIES)
    assert "new-admin-pw" in properties(text)[INTERNAL_JAAS]
    assert "old-admin-pw" not in text
    assert "new-admin-pw" in read(ctx, after, CLIENT_PROPERTIES)
    assert (
        after.get_container("kafka").service_statuses["kafka"] == ops.pebble.ServiceStatus.ACTIVE
    )


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
        for operation in ("CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "IDEMPOTENT_WRITE")
    ),
    Acl(resource="TOPIC", name="*", pattern="LITERAL", operation="ALL"),
    Acl(resource="GROUP", name="*", pattern="LITERAL", operation="ALL"),
    Acl(resource="TRANSACTIONAL_ID", name="*", pattern="LITERAL", operation="ALL"),
    *reserved_denials(),
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
    assert kafka.users == {user: credentials["password"]}
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

    assert kafka.acls[f"relation-{client.id}"] == expected


def test_both_roles_when_none_requested(ctx, kafka):
    client = testing.Relation("kafka-client", remote_app_data={"topic": "orders"})

    ctx.run(ctx.on.relation_changed(client, remote_unit=0), serving_state(client))

    assert kafka.acls[f"relation-{client.id}"] == (
        CONSUMER_ACLS | PRODUCER_ACLS | {group_acl(client)}
    )


def test_client_relation_changed_again_keeps_the_credentials(ctx, kafka):
    client = client_relation()
    first = ctx.run(ctx.on.relation_changed(client, remote_unit=0), serving_state(client))
    credentials = relation_user_secret(first, client)
    client_out = first.get_relation(client.id)

    second = ctx.run(ctx.on.relation_changed(client_out, remote_unit=0), first)

    assert relation_user_secret(second, client) == credentials
    assert kafka.upserts == [(f"relation-{client.id}", credentials["password"])]
    answer = ("endpoints", "topic", "secret-user", "secret-tls", "secret-extra")
    after = second.get_relation(client.id).local_app_data
    assert {key: after.get(key) for key in answer} == {
        key: client_out.local_app_data[key] for key in answer
    }
    assert {s.id for s in second.secrets} == {s.id for s in first.secrets}


def test_client_relation_broken_removes_the_user_and_acls(ctx, kafka):
    client = client_relation()
    created = ctx.run(ctx.on.relation_changed(client, remote_unit=0), serving_state(client))
    assert f"relation-{client.id}" in kafka.users

    ctx.run(ctx.on.relation_broken(created.get_relation(client.id)), created)

    assert kafka.users == {}
    assert set(kafka.acls) == {"mirrormaker"}


def test_client_relation_waits_for_a_ready_broker(ctx, kafka):
    client = client_relation()

    out = ctx.run(
        ctx.on.relation_changed(client, remote_unit=0), serving_state(client, ready=False)
    )

    assert kafka.users == {}
    assert "secret-user" not in out.get_relation(client.id).local_app_data
    assert out.unit_status == testing.WaitingStatus("waiting for the broker to accept clients")


def test_unknown_client_role_blocks_the_app_naming_the_relation(ctx, kafka):
    client = client_relation("superuser")

    out = ctx.run(ctx.on.relation_changed(client, remote_unit=0), serving_state(client))

    assert out.app_status == testing.BlockedStatus(
        f"kafka-client relation {client.id}: unknown extra-user-roles superuser"
    )
    assert kafka.users == {}
    assert out.unit_status == testing.ActiveStatus("broker and controller")


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
