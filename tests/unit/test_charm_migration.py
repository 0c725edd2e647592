"""The migration library as kafka-k8s wires it: target user, addresses, status, actions."""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from ops import testing
from test_charm import MODEL, PASSWORDS, cluster, container, credentials_secret, host, read
from test_migration_charm import LAGGING, FakeClusters, load_properties

from charms.kafka_k8s.v0 import mirrormaker as mm

MM2 = "/etc/kafka/mm2.properties"
SOURCE_PASSWORD = "source-pw"


@pytest.fixture(autouse=True)
def clusters(monkeypatch: pytest.MonkeyPatch) -> FakeClusters:
    fake = FakeClusters()
    monkeypatch.setattr(mm, "ClusterClient", fake)
    return fake


def serving(ctx: testing.Context, **config: object) -> tuple[testing.State, testing.Secret]:
    """A leader whose broker serves, with an external source configured."""
    internal = credentials_secret()
    source = testing.Secret(tracked_content={"username": "migrator", "password": SOURCE_PASSWORD})
    options: dict[str, str | int | float | bool] = {
        "mirrormaker-source-bootstrap-servers": "old-0:9092",
        "mirrormaker-source-credentials": source.id,
    }
    options.update(config)  # type: ignore[arg-type]
    state = testing.State(
        leader=True,
        model=MODEL,
        config=options,
        containers={container()},
        relations={cluster(internal)},
        secrets={internal, source},
    )
    started = ctx.run(ctx.on.config_changed(), state)
    broker = started.get_container("kafka")
    ready = testing.CheckInfo(
        "kafka-ready", level=ops.pebble.CheckLevel.READY, status=ops.pebble.CheckStatus.UP
    )
    broker = dataclasses.replace(broker, check_infos={ready})
    return dataclasses.replace(started, containers={broker}), source


def test_start_migration_targets_this_cluster_as_the_mirrormaker_user(ctx):
    state, _ = serving(ctx)

    out = ctx.run(ctx.on.action("start-migration"), state)

    properties = load_properties(read(ctx, out, MM2))
    assert properties["target.bootstrap.servers"] == ",".join(f"{host(n)}:19092" for n in range(3))
    assert 'username="mirrormaker"' in properties["target.sasl.jaas.config"]
    assert PASSWORDS["mirrormaker-password"] in properties["target.sasl.jaas.config"]
    assert properties["source.bootstrap.servers"] == "old-0:9092"
    assert properties["listeners"] == f"http://{host(0)}:8083"
    plan = out.get_container("kafka").plan.services["mirrormaker"]
    assert plan.command == (
        "/opt/kafka/bin/connect-mirror-maker.sh /etc/kafka/mm2.properties --clusters target"
    )
    assert out.unit_status == testing.ActiveStatus(LAGGING.format(source="old-0:9092"))
    assert out.app_status == testing.ActiveStatus(LAGGING.format(source="old-0:9092"))


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

    ready = "in sync with old-0:9092: ready for cutover"
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
    assert out.unit_status == testing.ActiveStatus("broker and controller")


def test_invalid_migration_option_blocks_the_unit(ctx):
    state, _ = serving(ctx, **{"mirrormaker-tasks-max": 0})

    out = ctx.run(ctx.on.config_changed(), state)

    assert isinstance(out.unit_status, testing.BlockedStatus)
    assert "mirrormaker-tasks-max" in out.unit_status.message


def test_no_secret_value_in_status_or_action_output(ctx):
    state, _ = serving(ctx)

    out = ctx.run(ctx.on.action("start-migration"), state)

    shown = f"{out.unit_status.message} {ctx.action_results}"
    for secret in (SOURCE_PASSWORD, *PASSWORDS.values()):
        assert secret not in shown
