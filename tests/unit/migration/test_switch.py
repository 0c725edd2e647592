# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""`switch-group` (`_switch`) under ops.testing in `host.HostCharm`: exact offsets, or none.

The clusters are `helpers.FakeClusters`, whose `FakeLogs` synthesize records: the target copies
the source at the same offsets.
"""

from __future__ import annotations

import json

import pytest
from ops import testing

from charms.kafka_k8s.v0.mirrormaker import _records
from tests.unit.helpers import record
from tests.unit.migration.host import (
    RESULT_KEY,
    HostCharm,
    billing_access,
    fails,
    result_keys,
    running,
    switchable,
)

pytestmark = pytest.mark.usefixtures("clusters")


def switch(ctx: testing.Context, before: testing.State, **params: object) -> dict:
    ctx.run(ctx.on.action("switch-group", params=params), before)
    results = ctx.action_results or {}
    assert {key for key in result_keys(results) if not RESULT_KEY.match(key)} == set()
    return results


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
    clusters.syncs = [_records.OffsetSync("orders", 0, 0, 0)]
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


def test_switch_group_says_which_relation_resumes_the_group(ctx, clusters, monkeypatch):
    switchable(clusters)
    results = switch(ctx, running(), group="billing")
    assert results["resumed-by"] == (
        "no client user may use group billing: map it to its application in "
        "kafka-client-identities"
    )

    monkeypatch.setattr(HostCharm, "access", billing_access())
    results = switch(ctx, running(), group="billing", **{"dry-run": True})
    assert results["resumed-by"] == "kafka-client relation 7 (billing-app)"
    assert results["table"].splitlines()[-1] == (
        "resumed by: kafka-client relation 7 (billing-app)"
    )


def test_finish_migration_says_per_group_which_relation_resumes_it(ctx, clusters, monkeypatch):
    monkeypatch.setattr(HostCharm, "access", billing_access())
    clusters.in_sync()
    switchable(clusters)
    ctx.run(ctx.on.action("finish-migration", params={"force": True}), running())
    [group] = json.loads((ctx.action_results or {})["groups"])
    assert group["resumed-by"] == "kafka-client relation 7 (billing-app)"
    assert "kafka-client relation 7 (billing-app)" in (ctx.action_results or {})["table"]
