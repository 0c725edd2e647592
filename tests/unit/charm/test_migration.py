# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The migration library as kafka-k8s wires it: target user, addresses, status, actions.

The library on its own, in a minimal host charm (`migration/host.py`), is in `migration/`, one
test module for each of its modules; the library's admin queries go to `helpers.FakeClusters`.
"""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from ops import testing

from charm import KafkaK8sCharm
from tests.unit.helpers import (
    FENCED,
    LAGGING,
    MODEL,
    PASSWORDS,
    SERVING_SOURCE_PASSWORD,
    cluster,
    container,
    credentials_secret,
    fence_applied,
    host,
    mm2_resolved,
    serving,
)

pytestmark = pytest.mark.usefixtures("clusters")


def test_start_migration_targets_this_cluster_as_the_mirrormaker_user(ctx):
    state, _ = serving(ctx)

    out = ctx.run(ctx.on.action("start-migration"), state)

    properties = mm2_resolved(ctx, out)
    assert properties["target.bootstrap.servers"] == ",".join(f"{host(n)}:19092" for n in range(3))
    assert 'username="mirrormaker"' in properties["target.sasl.jaas.config"]
    assert PASSWORDS["mirrormaker-password"] in properties["target.sasl.jaas.config"]
    assert properties["source.bootstrap.servers"] == "old-0:9092"
    assert properties["listeners"] == f"http://{host(0)}:8083"
    plan = out.get_container("kafka").plan.services["mirrormaker"]
    assert plan.command == (
        "/opt/kafka/bin/connect-mirror-maker.sh /etc/kafka/mm2.properties --clusters target"
    )
    lagging = testing.ActiveStatus(LAGGING.format(source="old-0:9092") + FENCED)
    assert (out.unit_status, out.app_status) == (lagging, lagging)


def test_unit_and_app_status_follow_the_migration_on_update_status(ctx, clusters):
    state, _ = serving(ctx)
    started = ctx.run(ctx.on.action("start-migration"), state)
    active = {"mirrormaker-state": json.dumps({"service": "active", "exactly-once": "disabled"})}
    peers = dataclasses.replace(
        started.get_relations("cluster")[0], peers_data={1: active, 2: active}
    )
    started = dataclasses.replace(started, relations={peers})
    clusters.in_sync()

    synced = ctx.run(ctx.on.update_status(), started)
    clusters.unreachable.add("source")
    cut_off = ctx.run(ctx.on.update_status(), synced)

    ready = "in sync with old-0:9092: ready for cutover" + FENCED
    assert (synced.unit_status, synced.app_status) == (
        testing.ActiveStatus(ready),
        testing.ActiveStatus(ready),
    )
    blocked = testing.BlockedStatus("source cluster at h:1 did not answer: timed out")
    assert (cut_off.unit_status, cut_off.app_status) == (blocked, blocked)


def test_the_broker_keeps_serving_after_stop_migration(ctx):
    state, _ = serving(ctx)
    started = ctx.run(ctx.on.action("start-migration"), state)

    out = ctx.run(ctx.on.action("stop-migration"), started)

    services = out.get_container("kafka").service_statuses
    assert services["kafka"] == ops.pebble.ServiceStatus.ACTIVE
    assert services["mirrormaker"] != ops.pebble.ServiceStatus.ACTIVE
    # Stopped is not finished: the fence stays, and the status says so.
    assert out.unit_status == testing.ActiveStatus("migration stopped" + FENCED)


def test_invalid_migration_option_blocks_the_unit(ctx):
    state, _ = serving(ctx, **{"mirrormaker-tasks-max": 0})

    out = ctx.run(ctx.on.config_changed(), state)

    assert isinstance(out.unit_status, testing.BlockedStatus)
    assert "mirrormaker-tasks-max" in out.unit_status.message


def test_no_secret_value_in_status_or_action_output(ctx):
    state, _ = serving(ctx)

    out = ctx.run(ctx.on.action("start-migration"), state)

    shown = f"{out.unit_status.message} {ctx.action_results}"
    for secret in (SERVING_SOURCE_PASSWORD, *PASSWORDS.values()):
        assert secret not in shown


def test_rotation_on_the_leader_gives_mirrormaker_the_new_password_at_once(ctx, tmp_path):
    state, _ = serving(ctx, tmp_path)
    started = ctx.run(ctx.on.action("start-migration"), state)
    [secret] = [s for s in started.secrets if s.label == "internal-credentials"]
    # Every unit's broker runs with the current replication user: the rotation goes on at once.
    on_current = {"broker-inter-broker-user": "replication-a"}
    peers = dataclasses.replace(
        started.get_relations("cluster")[0], peers_data={1: on_current, 2: on_current}
    )
    started = dataclasses.replace(
        started, relations={peers, *started.relations} - {started.get_relations("cluster")[0]}
    )

    out = ctx.run(ctx.on.secret_rotate(secret), started)

    new = out.get_secret(id=secret.id).latest_content["mirrormaker-password"]
    assert new != PASSWORDS["mirrormaker-password"]
    jaas = mm2_resolved(ctx, out)["target.sasl.jaas.config"]
    assert f'password="{new}"' in jaas
    assert out.get_container("kafka").service_statuses["mirrormaker"] == (
        ops.pebble.ServiceStatus.ACTIVE
    )


def test_secret_changed_gives_mirrormaker_on_another_unit_the_new_password():
    ctx = testing.Context(KafkaK8sCharm, unit_id=1)
    # As in test_broker: scenario emits secret-changed only for a secret the unit observes.
    internal = credentials_secret(owner=None)
    source = testing.Secret(tracked_content={"username": "migrator", "password": "source-pw"})
    ready = testing.CheckInfo(
        "kafka-ready", level=ops.pebble.CheckLevel.READY, status=ops.pebble.CheckStatus.UP
    )
    running = json.dumps({"state": "running", "seq": 1, "at": 1, "by": "kafka-k8s/0"})
    relation = cluster(internal, peers=(0, 2))
    peers = dataclasses.replace(
        relation,
        local_unit_data={"mirrormaker-request": running},
        local_app_data={**relation.local_app_data, **fence_applied()},
    )
    state = testing.State(
        model=MODEL,
        config={
            "mirrormaker-source-bootstrap-servers": "old-0:9092",
            "mirrormaker-source-credentials": source.id,
        },
        containers={container()},
        relations={peers},
        secrets={internal, source},
    )
    started = ctx.run(ctx.on.config_changed(), state)
    broker = dataclasses.replace(started.get_container("kafka"), check_infos={ready})
    before = ctx.run(ctx.on.config_changed(), dataclasses.replace(started, containers={broker}))
    assert "old-mm-pw" in mm2_resolved(ctx, before)["target.sasl.jaas.config"]
    rotated = dataclasses.replace(
        internal, latest_content={**PASSWORDS, "mirrormaker-password": "new-mm-pw"}
    )

    after = ctx.run(
        ctx.on.secret_changed(rotated), dataclasses.replace(before, secrets={rotated, source})
    )

    assert 'password="new-mm-pw"' in mm2_resolved(ctx, after)["target.sasl.jaas.config"]
