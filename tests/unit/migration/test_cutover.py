# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The cutover under ops.testing: the quiet source, the fence, switch-group, finish-migration.

The host is `test_host_charm.HostCharm`; the clusters are `helpers.FakeClusters`, whose
`FakeLogs` synthesize records: the target copies the source at the same offsets.
"""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from ops import testing

from charms.kafka_k8s.v0 import mirrormaker as mm
from tests.unit.helpers import CHARMCRAFT, FENCED, FakeClusters, record
from tests.unit.migration.test_host_charm import (
    META,
    RESULT_KEY,
    HostCharm,
    migration_status,
    peers,
    request,
    result_keys,
    running,
    service,
    unit_request,
)

pytestmark = pytest.mark.usefixtures("clusters")


@pytest.fixture
def ctx() -> testing.Context[HostCharm]:
    return testing.Context(
        HostCharm, meta=META, actions=CHARMCRAFT["actions"], config=CHARMCRAFT["config"]
    )


FINISHED = "the migration from old-0:9092 was finished at "


def switchable(clusters: FakeClusters) -> None:
    """`billing` has no consumers on the source, and MirrorMaker left offset syncs."""
    clusters.members["billing"] = 0
    clusters.syncs = [
        mm._OffsetSync("orders", 0, 50, 50),
        mm._OffsetSync("orders", 1, 100, 100),
    ]


def switch(ctx: testing.Context, before: testing.State, **params: object) -> dict:
    ctx.run(ctx.on.action("switch-group", params=params), before)
    results = ctx.action_results or {}
    assert {key for key in result_keys(results) if not RESULT_KEY.match(key)} == set()
    return results


def fails(ctx: testing.Context, before: testing.State, action: str, **params: object) -> str:
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action(action, params=params), before)
    return failed.value.message


# The quiet source ---------------------------------------------------------------------------


def test_migration_status_waits_for_the_source_to_be_quiet(ctx, clusters):
    clusters.in_sync()
    clusters.written_while_watched = {"orders": [10, 20]}
    _, results = migration_status(ctx, running())
    assert clusters.pauses == [10.0]
    assert results["ready-for-cutover"] == "false"
    assert json.loads(results["reasons"]) == [
        "topic orders: 30 records behind",
        "the source is still written: 30 records arrived on orders in the last 10 s; stop its "
        "producers",
    ]
    assert json.loads(results["source-writes"]) == [{"topic": "orders", "records": 30}]
    assert results["quiet-seconds"] == "10"


def test_quiet_seconds_is_how_long_the_source_is_watched(ctx, clusters):
    clusters.in_sync()
    _, results = migration_status(ctx, running(), **{"quiet-seconds": 3})
    assert clusters.pauses == [3.0]
    assert results["ready-for-cutover"] == "true"
    assert json.loads(results["source-writes"]) == []


def test_the_status_says_ready_once_the_source_stayed_quiet_between_refreshes(ctx, clusters):
    clusters.in_sync()
    clusters.tick = 4.0
    first = ctx.run(ctx.on.update_status(), running())
    assert first.unit_status == testing.ActiveStatus(
        "migrating from old-0:9092: 2 topics, lag 0 records; the source has been quiet for 0 s "
        "of the 10 s the cutover waits f..."
    )
    second = ctx.run(ctx.on.update_status(), first)
    assert "quiet for 4 s of the 10 s" in second.unit_status.message
    clusters.tick = 60.0
    third = ctx.run(ctx.on.update_status(), second)
    assert third.unit_status == testing.ActiveStatus(
        "in sync with old-0:9092: ready for cutover" + FENCED
    )
    clusters.topics["source"]["orders"][0] += 5
    clusters.topics["target"]["orders"][0] += 5
    written = ctx.run(ctx.on.update_status(), third)
    assert (
        "the source is still written: 5 records arrived on orders" in written.unit_status.message
    )


# The fence ----------------------------------------------------------------------------------


def test_the_fence_follows_the_migration(ctx, clusters):
    out = ctx.run(ctx.on.update_status(), running())
    assert json.loads(out.get_relations("cluster")[0].local_unit_data["mirrormaker-topics"]) == [
        "orders",
        "payments",
    ]
    _, results = migration_status(ctx, out)
    assert results["fence"] == "writes fenced on 2 topics until finish-migration"
    assert json.loads(results["fenced-topics"]) == ["orders", "payments"]


def test_the_fence_is_the_union_of_what_the_units_saw(ctx):
    cluster = peers(
        {"mirrormaker-topics": json.dumps(["orders"])},
        {"mirrormaker-topics": "not json"},
        local={
            "mirrormaker-request": request("stopped", 2),
            "mirrormaker-topics": json.dumps(["audit"]),
        },
    )
    out = ctx.run(ctx.on.update_status(), dataclasses.replace(running(), relations={cluster}))
    assert out.unit_status == testing.ActiveStatus(
        "migration stopped; writes fenced on audit, orders"
    )


def test_the_fence_can_be_turned_off(ctx):
    before = running(**{"mirrormaker-fence-target": False})
    out = ctx.run(ctx.on.update_status(), before)
    assert out.unit_status == testing.ActiveStatus(
        "migrating from old-0:9092: 2 topics, lag 100 records"
    )
    _, results = migration_status(ctx, out)
    assert results["fence"] == "off: mirrormaker-fence-target is false"
    assert json.loads(results["fenced-topics"]) == []


# switch-group -------------------------------------------------------------------------------


def test_switch_group_commits_exact_offsets(ctx, clusters):
    switchable(clusters)
    clusters.commits["target"] = {"billing": {"orders": {0: 60, 1: 101}}}  # MirrorMaker's
    results = switch(ctx, running(), group="billing")
    assert clusters.switched == [("billing", {("orders", 0): 100, ("orders", 1): 120})]
    assert (results["switched"], results["exact"], results["dry-run"]) == ("true", "true", "false")
    assert (results["re-read"], results["skip"]) == ("0", "0")
    assert results["mirrormaker-re-read"] == str(40 + 19)
    assert results["message"] == (
        "group billing resumes on this cluster right after the records it read on the source: "
        "0 re-read, 0 skipped"
    )
    first = json.loads(results["partitions"])[0]
    assert first == {
        "topic": "orders",
        "partition": 0,
        "source-committed": 100,
        "target-offset": 100,
        "re-read": 0,
        "skip": 0,
        "result": "exact",
        "matched-by": "offset sync",
        "mirrormaker-offset": 60,
        "mirrormaker-re-read": 40,
        "mirrormaker-skip": 0,
        "note": None,
    }
    assert results["table"].splitlines()[0].split()[:4] == [
        "TOPIC",
        "PARTITION",
        "SOURCE",
        "COMMITTED",
    ]


def test_switch_group_dry_run_commits_nothing(ctx, clusters):
    switchable(clusters)
    results = switch(ctx, running(), group="billing", **{"dry-run": True})
    assert clusters.switched == []
    assert (results["switched"], results["exact"]) == ("false", "true")
    assert results["message"] == "dry run: computed, nothing committed"


def test_switch_group_without_offset_syncs_searches_by_timestamp(ctx, clusters):
    switchable(clusters)
    clusters.syncs = []
    results = switch(ctx, running(), group="billing")
    partitions = json.loads(results["partitions"])
    assert {p["matched-by"] for p in partitions} == {"timestamp"}
    assert clusters.switched == [("billing", {("orders", 0): 100, ("orders", 1): 120})]


def test_switch_group_reads_past_records_sent_twice(ctx, clusters):
    switchable(clusters)
    source = [record(o, f"o{o}") for o in range(10)]
    # The target: 0-7 copied, then 5-9 sent again after a restart.
    target = [record(i, f"o{o}") for i, o in enumerate([*range(8), *range(5, 10)])]
    clusters.records["source"][("orders", 0)] = source
    clusters.records["target"][("orders", 0)] = target
    clusters.topics["source"]["orders"][0] = 10
    clusters.topics["target"]["orders"][0] = 13
    clusters.commits["source"]["billing"] = {"orders": {0: 6}}
    clusters.syncs = [mm._OffsetSync("orders", 0, 0, 0)]
    results = switch(ctx, running(), group="billing")
    assert clusters.switched == [("billing", {("orders", 0): 9})]
    assert results["exact"] == "true"


def test_a_partition_that_cannot_be_matched_keeps_mirrormakers_offset(ctx, clusters):
    switchable(clusters)
    clusters.records["target"][("orders", 1)] = [record(o, f"else-{o}") for o in range(150)]
    clusters.commits["target"] = {"billing": {"orders": {1: 90}}}
    results = switch(ctx, running(), group="billing")
    assert clusters.switched == [("billing", {("orders", 0): 100})]
    kept = json.loads(results["partitions"])[1]
    assert (kept["result"], kept["target-offset"]) == ("kept", 90)
    assert kept["note"] == (
        "not matched: no copy of source offset 119 in 150 target records from its timestamp on; "
        "MirrorMaker's offset 90 stays"
    )
    assert results["exact"] == "false"
    assert results["message"].endswith(
        "; 1 partition not matched: MirrorMaker's offsets stay there (see the notes)"
    )


@pytest.mark.parametrize(
    ("group", "arrange", "message"),
    [
        ("nobody", None, "group nobody does not exist on the source cluster"),
        (
            "console-consumer-1",
            None,
            "group console-consumer-1 is not migrated: mirrormaker-groups and "
            "mirrormaker-groups-exclude do not select it",
        ),
        ("shipping", None, "group shipping has no committed offsets on the migrated topics"),
        (
            "billing",
            lambda c: c.members.update(billing=2),
            "group billing has 2 members on the source cluster: stop its consumers there first",
        ),
        (
            "billing",
            lambda c: c.members_on_target.update(billing=1),
            "group billing has 1 member on the target cluster: its consumers have moved already",
        ),
        (
            "billing",
            lambda c: c.commits["source"].update(billing={"orders": {0: 100, 1: 190}}),
            "group billing: orders[1]: MirrorMaker has not copied it up to offset 190 yet (up "
            "to 150); wait until migration-status shows no lag",
        ),
    ],
)
def test_switch_group_refuses_and_changes_nothing(ctx, clusters, group, arrange, message):
    switchable(clusters)
    if arrange:
        arrange(clusters)
    before = running()
    assert fails(ctx, before, "switch-group", group=group) == f"{message}; nothing was changed"
    assert clusters.switched == []


def test_switch_group_with_an_unreachable_cluster_fails(ctx, clusters):
    switchable(clusters)
    clusters.unreachable.add("target")
    assert fails(ctx, running(), "switch-group", group="billing") == (
        "target cluster at h:1 did not answer: timed out"
    )


# finish-migration ---------------------------------------------------------------------------


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
    assert clusters.pauses == [mm._QUIET_SECONDS]
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
        "deleted heartbeats, mm2-offset-syncs.source.internal, source.checkpoints.internal"
    )
    assert "orders" not in clusters.deleted


def test_finish_that_loses_a_cluster_midway_records_nothing(ctx, clusters, monkeypatch):
    clusters.in_sync()
    switchable(clusters)

    def unreachable(*_: object, **__: object):
        raise mm.ClusterUnreachableError("target cluster at h:1 did not answer: timed out")

    monkeypatch.setattr(mm, "_switch_groups", unreachable)
    before = running()
    message = fails(ctx, before, "finish-migration")
    assert message == (
        "target cluster at h:1 did not answer: timed out: the migration is not finished, "
        "MirrorMaker runs as requested before; run finish-migration again"
    )


def test_finish_when_never_started(ctx):
    assert fails(ctx, dataclasses.replace(running(), relations={peers()}), "finish-migration") == (
        "no migration to finish: start-migration was never run; nothing changed"
    )
