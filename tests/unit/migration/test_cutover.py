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
