# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Peer state (`_peers`): the operator's requests and each unit's MirrorMaker.

The newest request wins and every unit follows it; exactly-once support goes through
`preparing` while a peer runs without it. Under ops.testing in `host.HostCharm`, a request made
on one unit is followed and copied by the others.
"""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from ops import testing

from charms.kafka_k8s.v0.mirrormaker import UnitState, _peers
from charms.kafka_k8s.v0.mirrormaker._peers import MigrationRequest
from tests.unit.helpers import fence_applied
from tests.unit.migration.host import (
    credentials,
    external,
    peers,
    properties,
    request,
    running_container,
    service,
    start,
    state,
    unit_request,
    unit_state,
)

pytestmark = pytest.mark.usefixtures("clusters")


# Requests and unit states ------------------------------------------------------------------------


def test_newest_request_wins_by_sequence_then_time_then_unit():
    older = MigrationRequest(state="running", seq=1, at=200, by="kafka-k8s/2")
    newer = MigrationRequest(state="stopped", seq=2, at=100, by="kafka-k8s/0")
    tie = MigrationRequest(state="running", seq=2, at=100, by="kafka-k8s/1")
    assert _peers.newest_request([]) == MigrationRequest(state="stopped")
    assert _peers.newest_request([newer, older]) == newer
    assert _peers.newest_request([older, newer, tie]) == tie


def test_exactly_once_prepares_while_a_peer_runs_without_it():
    disabled = UnitState(service="active", exactly_once="disabled")
    preparing = UnitState(service="active", exactly_once="preparing")
    stopped = UnitState(service="inactive", exactly_once="disabled")
    assert _peers.exactly_once_for(False, [preparing]) == "disabled"
    assert _peers.exactly_once_for(True, []) == "enabled"
    assert _peers.exactly_once_for(True, [stopped, preparing]) == "enabled"
    assert _peers.exactly_once_for(True, [preparing, disabled]) == "preparing"


def test_a_request_keeps_its_migration_and_waves_until_a_start_after_the_finish(ctx):
    wave = _peers.Wave(number=1, at="now", by="kafka-k8s/0", topics=["orders"])
    secret = credentials()
    running = json.dumps(
        {
            "state": "running",
            "seq": 3,
            "at": 1,
            "by": "kafka-k8s/0",
            "migration": 2,
            "waves": [wave.model_dump(mode="json")],
        }
    )
    before = state(
        config=external(secret),
        secrets=(secret,),
        cluster=peers(local={"mirrormaker-request": running}),
    )
    stopped = ctx.run(ctx.on.action("stop-migration"), before)
    recorded: dict = unit_request(stopped)
    assert (recorded["migration"], len(recorded["waves"])) == (2, 1)
    finished = json.dumps(
        {"state": "finished", "seq": 4, "at": 1, "by": "kafka-k8s/0", "migration": 2}
    )
    again = start(
        ctx,
        state(
            config=external(secret),
            secrets=(secret,),
            cluster=peers(local={"mirrormaker-request": finished}),
        ),
        force=True,
    )
    assert unit_request(again)["migration"] == 5
    assert "waves" not in unit_request(again)


def test_unit_state_json_uses_hyphens():
    state = UnitState(service="active", exactly_once="enabled")
    assert state.model_dump_json(by_alias=True) == '{"service":"active","exactly-once":"enabled"}'
    assert UnitState.model_validate_json(state.model_dump_json(by_alias=True)) == state


# Peers under ops.testing -------------------------------------------------------------------------


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
    cluster = peers(
        {"mirrormaker-request": request("stopped", 4, by="kafka-k8s/1")}, {}, app=fence_applied()
    )
    out = start(
        ctx, state(config=external(secret), secrets=(secret,), cluster=cluster, leader=False)
    )
    assert unit_request(out)["seq"] == 5
    assert unit_request(out)["state"] == "running"
    assert service(out) == ops.pebble.ServiceStatus.ACTIVE


def test_a_non_leader_starts_mirrormaker_only_once_the_leader_fenced_its_selection(ctx):
    """Issue 23: a start on a non-leader started MirrorMaker before the leader's grants."""
    secret = credentials()
    cluster = peers({}, {})
    before = state(config=external(secret), secrets=(secret,), cluster=cluster, leader=False)
    out = start(ctx, before)
    assert unit_request(out)["state"] == "running"
    assert service(out) is None
    assert (ctx.action_results or {})["message"] == (
        "migrating from old-0:9092: every unit starts MirrorMaker once the leader has fenced "
        "the migrated topics"
    )
    assert out.unit_status == testing.WaitingStatus(
        "waiting for the leader to fence the migrated topics before MirrorMaker starts to "
        "migrate from old-0:9092"
    )
    # Another selection applied is not this one: a wider mirrormaker-topics waits too.
    narrower = dataclasses.replace(
        out.get_relations("cluster")[0],
        local_app_data=fence_applied(**{"mirrormaker-topics": "orders"}),
    )
    waiting = ctx.run(ctx.on.update_status(), dataclasses.replace(out, relations={narrower}))
    assert service(waiting) is None
    applied = dataclasses.replace(narrower, local_app_data=fence_applied())
    started = ctx.run(
        ctx.on.relation_changed(applied, remote_unit=1),
        dataclasses.replace(waiting, relations={applied}),
    )
    assert service(started) == ops.pebble.ServiceStatus.ACTIVE
    published = json.loads(
        started.get_relations("cluster")[0].local_unit_data["mirrormaker-topics"]
    )
    assert published["selection"]["include"] == [".*"]


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


def test_a_failed_back_topic_leaves_its_wave_which_keeps_its_number():
    wave = _peers.Wave(
        number=2,
        at="t",
        by="kafka-k8s/1",
        topics=["a", "b"],
        target_topics=["a", "b"],
        source_end_offsets={"a": [1]},
    )
    left = wave.without(["a", "c"])
    assert (left.number, left.topics, left.target_topics) == (2, ["b"], ["b"])
    assert (left.failed_back, left.source_end_offsets) == (["a"], {"a": [1]})
    assert left.summary().endswith("0 groups switched; failed back since: a")
    assert wave.without(["c"]) is wave
    assert wave.without(["a", "b"]).summary().startswith("wave 2 (t, by kafka-k8s/1): no topic")
