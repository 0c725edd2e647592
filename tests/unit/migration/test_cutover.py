# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""`finish-migration` (`_cutover`) under ops.testing in `host.HostCharm`.

The checks before the cutover, what it records, MirrorMaker stopped and the fence lifted, and
what the status and the actions say once it is finished. The clusters are
`helpers.FakeClusters`, whose `FakeLogs` synthesize records: the target copies the source at the
same offsets.
"""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from ops import testing

from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import _report, _switch
from tests.unit.helpers import FakeClusters
from tests.unit.migration.host import (
    RESULT_KEY,
    fails,
    migration_status,
    peers,
    properties,
    request,
    result_keys,
    running,
    service,
    switchable,
    unit_request,
)

pytestmark = pytest.mark.usefixtures("clusters")

FINISHED = "the migration from old-0:9092 was finished at "


def fenced() -> testing.State:
    """A running migration whose units published the topics it copies into."""
    cluster = peers(
        local={
            "mirrormaker-request": request("running", 1),
            "mirrormaker-topics": json.dumps(["orders", "payments"]),
        }
    )
    return dataclasses.replace(running(), relations={cluster})


def finished(ctx: testing.Context, clusters: FakeClusters, **params: object) -> testing.State:
    clusters.in_sync()
    switchable(clusters)
    return ctx.run(ctx.on.action("finish-migration", params=params), fenced())


def test_finish_migration(ctx, clusters):
    out = finished(ctx, clusters)
    results = ctx.action_results or {}
    assert {key for key in result_keys(results) if not RESULT_KEY.match(key)} == set()
    assert results["state"] == "finished"
    assert results["mirrormaker"] == (
        "stopped on kafka-k8s/0; every other unit stops it as it sees the request"
    )
    assert results["fence"] == "lifted from 2 topics"
    assert (results["re-read"], results["skip"]) == ("0", "0")
    [group] = json.loads(results["groups"])
    assert (group["group"], group["switched"], group["exact"]) == ("billing", True, True)
    assert results["table"].splitlines()[1].split()[:5] == ["billing", "yes", "0", "0", "yes"]
    assert clusters.switched == [("billing", {("orders", 0): 100, ("orders", 1): 120})]
    assert clusters.pauses == [_report.QUIET_SECONDS]
    recorded: dict = unit_request(out)
    assert recorded["state"] == "finished"
    assert recorded["finished"]["source"] == "old-0:9092"
    assert recorded["finished"]["topics"] == ["orders", "payments"]
    assert (recorded["finished"]["records"], recorded["finished"]["groups"]) == (350, ["billing"])
    assert results["summary"].startswith(FINISHED)
    assert results["summary"].endswith(": 2 topics, 350 records, 1 group switched")
    assert service(out) == ops.pebble.ServiceStatus.INACTIVE
    assert out.unit_status == testing.ActiveStatus("broker")
    assert "cleanup" not in results


def test_after_finish_status_and_actions_say_it_is_finished(ctx, clusters):
    out = finished(ctx, clusters)
    _, results = migration_status(ctx, out)
    assert results["requested"] == "finished"
    assert results["summary"].startswith(FINISHED)
    assert json.loads(results["finished"])["groups"] == ["billing"]
    assert json.loads(results["fenced-topics"]) == []
    ctx.run(ctx.on.action("stop-migration"), out)
    assert (ctx.action_results or {})["message"].endswith("; nothing to stop")


def test_a_second_finish_fails_and_changes_nothing(ctx, clusters):
    out = finished(ctx, clusters)
    clusters.switched.clear()
    message = fails(ctx, out, "finish-migration")
    assert message.startswith(FINISHED)
    assert message.endswith("; it finishes once, nothing was changed")
    assert clusters.switched == []


def test_start_after_finish_needs_force(ctx, clusters):
    out = finished(ctx, clusters)
    message = fails(ctx, out, "start-migration")
    assert message.startswith(FINISHED)
    assert message.endswith(
        "records written to this cluster since then would be mixed with a fresh copy of the "
        "source. Nothing was changed; run start-migration force=true to migrate again all the "
        "same"
    )
    assert unit_request(out)["state"] == "finished"
    again = ctx.run(ctx.on.action("start-migration", params={"force": True}), out)
    assert unit_request(again)["state"] == "running"
    assert "finished" not in unit_request(again)
    assert service(again) == ops.pebble.ServiceStatus.ACTIVE


def test_finish_refuses_when_not_ready(ctx, clusters):
    switchable(clusters)
    before = running()
    message = fails(ctx, before, "finish-migration")
    assert message == (
        "not ready for cutover: topic orders: 50 records behind; topic payments is not on the "
        "target yet. Nothing was changed: wait or fix what is listed, or run finish-migration "
        "force=true"
    )
    assert clusters.switched == []


def test_finish_waits_for_mirrormaker_to_record_its_copy(ctx, clusters):
    clusters.mirrormaker_offsets = {("orders", 0): 99, ("orders", 1): 150, ("payments", 0): 49}
    clusters.in_sync()
    switchable(clusters)
    message = fails(ctx, running(), "finish-migration")
    assert message.startswith(
        "not ready for cutover: MirrorMaker has not yet recorded the copy of the last records "
        "of orders[1] (it does every 10 s)."
    )
    assert clusters.switched == []


def test_finish_with_force(ctx, clusters):
    switchable(clusters)
    out = ctx.run(ctx.on.action("finish-migration", params={"force": True}), running())
    results = ctx.action_results or {}
    assert results["state"] == "finished"
    assert json.loads(results["forced"])[0] == "topic orders: 50 records behind"
    assert unit_request(out)["state"] == "finished"


def test_finish_a_stopped_migration_judges_the_data_alone(ctx, clusters):
    before = running()
    cluster = peers(local={"mirrormaker-request": request("stopped", 2)})
    clusters.in_sync()
    switchable(clusters)
    out = ctx.run(
        ctx.on.action("finish-migration"), dataclasses.replace(before, relations={cluster})
    )
    assert unit_request(out)["state"] == "finished"


def test_finish_leaves_groups_in_use_and_names_them(ctx, clusters):
    clusters.in_sync()
    switchable(clusters)
    clusters.members_on_target["billing"] = 3
    ctx.run(ctx.on.action("finish-migration", params={"force": True}), running())
    [group] = json.loads((ctx.action_results or {})["groups"])
    assert (group["switched"], group["note"]) == (
        False,
        "group billing has 3 members on the target cluster: its consumers have moved already",
    )


def test_finish_with_cleanup_deletes_mirrormakers_topics(ctx, clusters):
    for name in ("mm2-offset-syncs.source.internal", "source.checkpoints.internal", "heartbeats"):
        clusters.topics["target"][name] = [1]
    finished(ctx, clusters, cleanup=True)
    assert (ctx.action_results or {})["cleanup"] == (
        "deleted heartbeats, mm2-cutover.source.0.1.internal, mm2-offset-syncs.source.internal, "
        "source.checkpoints.internal"
    )
    assert "orders" not in clusters.deleted


def test_finish_that_loses_a_cluster_midway_records_nothing(ctx, clusters, monkeypatch):
    clusters.in_sync()
    switchable(clusters)

    def unreachable(*_: object, **__: object):
        raise mm.ClusterUnreachableError("target cluster at h:1 did not answer: timed out")

    monkeypatch.setattr(_switch, "switch_groups_with", unreachable)
    before = running()
    message = fails(ctx, before, "finish-migration")
    assert message == (
        "target cluster at h:1 did not answer: timed out: the migration is not finished and no "
        "wave was promoted, MirrorMaker runs as requested before; run finish-migration again"
    )


def test_finish_when_never_started(ctx):
    assert fails(ctx, dataclasses.replace(running(), relations={peers()}), "finish-migration") == (
        "no migration to finish: start-migration was never run; nothing changed"
    )


# Waves -------------------------------------------------------------------------------------------


def waves_ready(clusters: FakeClusters) -> None:
    """In sync; billing reads orders, shipping payments, audit both (with a consumer)."""
    clusters.in_sync()
    switchable(clusters)
    clusters.groups["source"] += ["audit"]
    clusters.commits["source"]["shipping"] = {"payments": {0: 50}}
    clusters.commits["source"]["audit"] = {"orders": {0: 60}, "payments": {0: 10}}
    clusters.members["audit"] = 1


def wave(ctx: testing.Context, clusters: FakeClusters, before: testing.State | None = None):
    return ctx.run(
        ctx.on.action("finish-migration", params={"topics": "ord.*"}), before or fenced()
    )


def test_a_wave_promotes_its_topics_while_the_others_keep_copying(ctx, clusters):
    waves_ready(clusters)
    clusters.written_while_watched = {"payments": [5]}  # payments' producers still write
    out = wave(ctx, clusters)
    results = ctx.action_results or {}
    assert {key for key in result_keys(results) if not RESULT_KEY.match(key)} == set()
    assert (results["state"], results["wave"]) == ("running", "1")
    assert json.loads(results["topics"]) == ["orders"]
    assert json.loads(results["remaining-topics"]) == ["payments"]
    assert json.loads(results["left"]) == ["audit"]
    assert (results["re-read"], results["skip"]) == ("0", "0")
    groups = {g["group"]: g for g in json.loads(results["groups"])}
    assert groups["billing"]["switched"] and groups["billing"]["exact"]
    assert groups["audit"]["note"] == (
        "group audit also reads payments, not promoted yet: it moves with a later wave"
    )
    assert "shipping" not in groups
    assert clusters.switched == [("billing", {("orders", 0): 100, ("orders", 1): 120})]
    assert json.loads(results["end-offsets"]) == {
        "source": {"orders": [100, 200]},
        "target": {"orders": [100, 200]},
    }
    recorded: dict = unit_request(out)
    assert recorded["state"] == "running"
    [wave_record] = recorded["waves"]
    assert (wave_record["number"], wave_record["topics"], wave_record["by"]) == (
        1,
        ["orders"],
        "kafka-k8s/0",
    )
    assert wave_record["groups"] == ["billing"]
    # MirrorMaker runs on, without orders, and never copies it again; its fence is lifted.
    assert service(out) == ops.pebble.ServiceStatus.ACTIVE
    assert properties(ctx, out)["topics.exclude"].split(",")[-1] == "orders"
    _, status = migration_status(ctx, out)
    assert json.loads(status["fenced-topics"]) == ["payments"]
    assert json.loads(status["promoted-topics"]) == ["orders"]
    assert [t["topic"] for t in json.loads(status["topics"])] == ["payments"]
    assert status["waves-done"].startswith("wave 1 (")
    assert status["waves-done"].endswith(
        ", by kafka-k8s/0): orders; 300 records, 1 group switched"
    )
    assert out.unit_status.message.endswith(
        "; 1 topic promoted in 1 wave; writes fenced on payments"
    )


def test_the_last_wave_moves_the_groups_left_before_within_the_promoted_ends(ctx, clusters):
    waves_ready(clusters)
    first = wave(ctx, clusters)
    clusters.switched.clear()
    clusters.members["audit"] = 0
    # Clients write orders on the target since its wave; the source got a straggler.
    clusters.topics["target"]["orders"] = [100, 230]
    clusters.topics["source"]["orders"] = [101, 200]
    out = ctx.run(ctx.on.action("finish-migration"), first)
    results = ctx.action_results or {}
    assert (results["state"], results["wave"]) == ("finished", "2")
    assert json.loads(results["topics"]) == ["payments"]
    assert {switch[0] for switch in clusters.switched} == {"audit", "shipping"}
    audit = dict(clusters.switched)["audit"]
    assert audit == {("orders", 0): 60, ("payments", 0): 10}
    recorded: dict = unit_request(out)
    assert recorded["state"] == "finished"
    assert [w["topics"] for w in recorded["waves"]] == [["orders"], ["payments"]]
    assert recorded["finished"]["topics"] == ["orders", "payments"]
    assert recorded["finished"]["waves"] == 2
    assert results["summary"].endswith(" in 2 waves: 2 topics, 350 records, 3 groups switched")
    assert service(out) == ops.pebble.ServiceStatus.INACTIVE


def test_a_wave_waits_for_an_open_transaction_on_its_topics_only(ctx, clusters):
    waves_ready(clusters)
    clusters.log_ends = {"payments": [58]}  # a transaction open on payments: not this wave's
    wave(ctx, clusters)
    assert (ctx.action_results or {})["wave"] == "1"

    waves_ready(clusters)
    clusters.log_ends = {"orders": [100, 203]}
    clusters.switched.clear()
    message = fails(ctx, fenced(), "finish-migration", topics="orders")
    assert message.startswith(
        "not ready for cutover: orders[1]: an open transaction holds 3 records that consumers "
        "cannot read yet: wait for its producer to commit or abort it"
    )
    assert clusters.switched == []


def test_a_wave_waits_for_the_groups_that_move_with_it(ctx, clusters):
    waves_ready(clusters)
    clusters.members["billing"] = 2
    message = fails(ctx, fenced(), "finish-migration", topics="orders")
    assert "group billing: 2 consumers still read from the source cluster" in message


@pytest.mark.parametrize(
    ("topics", "why"),
    [
        ("refunds", "topics: 'refunds': it matches no migrated topic that is not promoted yet"),
        ("ord[", "topics: 'ord[' is not a topic name or a valid regular expression"),
    ],
)
def test_wave_topics_that_name_no_migrated_topic_refuse(ctx, clusters, topics, why):
    waves_ready(clusters)
    assert fails(ctx, fenced(), "finish-migration", topics=topics).startswith(why)


def test_a_promoted_topic_cannot_be_promoted_again(ctx, clusters):
    waves_ready(clusters)
    first = wave(ctx, clusters)
    assert fails(ctx, first, "finish-migration", topics="orders") == (
        "topics: 'orders': orders was promoted in an earlier wave; nothing was changed"
    )


def test_of_two_units_finishing_at_once_one_goes_on_the_other_changes_nothing(ctx, clusters):
    """Issue 23: two finish-migration runs at once both switched the groups and recorded."""
    clusters.in_sync()
    switchable(clusters)
    clusters.claims["mm2-cutover.source.0.1.internal"] = "kafka-k8s/2"
    before = fenced()
    message = fails(ctx, before, "finish-migration")
    assert message == (
        "kafka-k8s/2 finished this migration, or promoted its wave 1, at the same moment: "
        "nothing was changed here; see migration-status"
    )
    assert clusters.switched == []
    # Its own claim is this unit's to finish (a run cut off after the claim, run again).
    clusters.claims["mm2-cutover.source.0.1.internal"] = "kafka-k8s/0"
    out = ctx.run(ctx.on.action("finish-migration"), before)
    assert unit_request(out)["state"] == "finished"
