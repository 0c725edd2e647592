# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The migration library as kafka-k8s wires it: target user, addresses, status, actions.

The library on its own, in a minimal host charm, is in `migration/test_host_charm.py`; the
library's admin queries go to `helpers.FakeClusters`.
"""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from ops import testing

from tests.unit.helpers import (
    FENCED,
    LAGGING,
    MM2,
    PASSWORDS,
    SERVING_SOURCE_PASSWORD,
    host,
    load_properties,
    read,
    serving,
)

pytestmark = pytest.mark.usefixtures("clusters")


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
