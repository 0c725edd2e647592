# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The queries behind the migration report (`_queries`), both clusters asked once.

The lag by content over `helpers.FakeClusters`, whose `FakeLogs` hold records built the way
MirrorMaker writes them; `migration_report` against closed loopback ports; and, under
ops.testing in `host.HostCharm`, the watch of the source for writes and the rights MirrorMaker
lacks on the source.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from ops import testing

from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import _clients, _queries, _records, _transactions
from tests.unit.helpers import copies, source_log
from tests.unit.migration.host import (
    credentials,
    external,
    migration_status,
    running,
    start,
    state,
)

# The lag by content ------------------------------------------------------------------------------


def copy_lags(clusters, source: dict, target: dict) -> dict:
    """`_fetch_copy_lags` over `FakeClusters`, for topics with these end offsets."""
    clusters.topics = {"source": source, "target": target}
    client = clusters  # the fake `ClusterClient` factory
    source_offsets = {
        t: _clients.TopicOffsets(start=(0,) * len(e), end=tuple(e)) for t, e in source.items()
    }
    target_offsets = {
        t: _clients.TopicOffsets(start=(0,) * len(e), end=tuple(e)) for t, e in target.items()
    }
    return _queries._fetch_copy_lags(
        client(mm.KafkaCluster(bootstrap_servers=("s:1",), username="u", password="p"), "source"),
        client(mm.KafkaCluster(bootstrap_servers=("t:1",), username="u", password="p"), "target"),
        mm.MigrationConfig(),
        source_offsets,
        target_offsets,
    )


def test_a_sync_on_the_last_record_means_no_lag(clusters):
    clusters.syncs = [_records.OffsetSync("orders", 0, 99, 120)]
    assert copy_lags(clusters, {"orders": [100]}, {"orders": [121]}) == {"orders": [0]}


def test_aborted_records_after_the_last_copy_do_not_lag(clusters):
    # Source: records 0-9, then offsets 10-19 aborted and a marker, never copied.
    clusters.records["source"][("orders", 0)] = source_log(list(range(10)))
    clusters.records["target"][("orders", 0)] = copies(source_log(list(range(10))), [(0, 10)])
    clusters.syncs = [_records.OffsetSync("orders", 0, 5, 5)]
    assert copy_lags(clusters, {"orders": [21]}, {"orders": [10]}) == {"orders": [0]}


def test_records_copied_twice_do_not_hide_missing_ones(clusters):
    source = source_log(list(range(20)))
    clusters.records["source"][("orders", 0)] = source
    # 0-14 copied, then 10-14 again: as many target records as source ones, 5 missing.
    clusters.records["target"][("orders", 0)] = copies(source, [(0, 15), (10, 15)])
    clusters.syncs = [_records.OffsetSync("orders", 0, 0, 0)]
    assert copy_lags(clusters, {"orders": [20]}, {"orders": [20]}) == {"orders": [5]}


def test_far_behind_the_newest_sync_offsets_count_at_least_one(clusters):
    far = _records.EXACT_LAG_WINDOW * 2
    clusters.syncs = [_records.OffsetSync("orders", 0, 10, 10)]
    lags = copy_lags(clusters, {"orders": [far]}, {"orders": [far]})
    assert lags == {"orders": [1]}  # the target holds as many offsets; something still lacks


def test_a_partition_the_target_lacks_lags_only_if_the_source_holds_records(clusters):
    clusters.records["source"][("payments", 0)] = []  # only aborted records and markers
    lags = copy_lags(clusters, {"payments": [30, 40]}, {"payments": [0, 0]})
    assert lags == {"payments": [0, None]}


def test_a_topic_not_on_the_target_is_counted_by_offsets_without_reading(clusters):
    clusters.records["source"][("payments", 0)] = []  # would lag 0 if it were read
    lags = copy_lags(clusters, {"payments": [30, 40]}, {})
    assert lags == {"payments": [None, None]}


def test_no_sync_counts_by_offsets(clusters):
    assert copy_lags(clusters, {"orders": [100]}, {"orders": [90]}) == {"orders": [None]}


# Clusters that do not answer ---------------------------------------------------------------------


def test_report_on_clusters_that_do_not_answer_is_bounded():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    servers = (f"127.0.0.1:{port}",)
    source = mm.SourceCluster(name="old", bootstrap_servers=servers, username="u", password="p")
    target = mm.TargetCluster(bootstrap_servers=servers, username="u", password="p")
    began = time.monotonic()
    result = mm.migration_report(source, target, timeout=1)
    assert time.monotonic() - began < 10
    assert [problem.role for problem in result.problems] == ["source", "target"]
    assert result.problems[0].message == (
        f"source cluster at 127.0.0.1:{port} did not answer: Connection refused"
    )
    assert result.summary()[0] == "blocked"
    assert not result.ready_for_cutover


# The quiet source --------------------------------------------------------------------------------


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


def test_a_transaction_written_while_watched_is_not_quiet(ctx, clusters):
    """Issue 23: records written inside a transaction left the last stable offset still."""
    clusters.in_sync()
    clusters.held_while_watched = {"orders": [0, 12]}
    clusters.transactions = _transactions.OpenTransactions(
        transactions=[
            _transactions.OpenTransaction(
                topic="orders",
                partition=1,
                producer_id=4,
                start_offset=120,
                transactional_id="ledger",
                since=int(time.time() * 1000),
            )
        ]
    )
    _, results = migration_status(ctx, running())
    assert results["ready-for-cutover"] == "false"
    reasons = json.loads(results["reasons"])
    assert reasons[0].startswith(
        "orders[1]: an open transaction holds 12 records that consumers cannot read yet "
        "(transactional id ledger, producer id 4, open since "
    )
    assert reasons[1] == (
        "the source is still written: 12 records arrived on orders in the last 10 s; stop its "
        "producers"
    )
    [held] = json.loads(results["open-transactions"])
    assert (held["topic"], held["partition"], held["records"]) == ("orders", 1, 12)


def test_a_transaction_held_open_across_the_watch_is_not_quiet_either(ctx, clusters):
    clusters.in_sync()
    clusters.log_ends = {"orders": [100, 205]}
    _, results = migration_status(ctx, running())
    assert results["ready-for-cutover"] == "false"
    assert json.loads(results["reasons"]) == [
        "orders[1]: an open transaction holds 5 records that consumers cannot read yet: wait "
        "for its producer to commit or abort it"
    ]


# Rights MirrorMaker lacks on the source ----------------------------------------------------------


CONFIGS = (
    "source user migrator may not describe the configs of 2 topics (orders, payments): "
    "MirrorMaker cannot create their copies; grant it DESCRIBE_CONFIGS on them"
)
GROUPS = (
    "source user migrator may not describe every consumer group: no group's offsets migrate; "
    "grant it DESCRIBE on the groups"
)


def test_a_right_mirrormaker_lacks_on_the_source_blocks_and_is_named(ctx, clusters):
    clusters.missing_rights = [CONFIGS, GROUPS]
    secret = credentials()
    started = start(ctx, state(config=external(secret), secrets=(secret,)))

    out = ctx.run(ctx.on.action("migration-status"), started)

    assert started.unit_status == testing.BlockedStatus(CONFIGS)
    results = ctx.action_results or {}
    assert json.loads(results["reasons"])[:2] == [CONFIGS, GROUPS]
    assert results["ready-for-cutover"] == "false"
    assert out.unit_status == testing.BlockedStatus(CONFIGS)


@pytest.mark.parametrize(
    ("options", "checked"),
    [
        ({}, (["orders", "payments"], True, False)),
        (
            {"mirrormaker-sync-topic-configs": False, "mirrormaker-sync-group-offsets": False},
            (["payments"], False, False),  # orders has its copy: its configs are not read
        ),
        ({"mirrormaker-sync-topic-acls": True}, (["orders", "payments"], True, True)),
    ],
)
def test_the_rights_checked_follow_the_options(ctx, clusters, options, checked):
    secret = credentials()
    start(ctx, state(config=external(secret, **options), secrets=(secret,)))

    assert clusters.rights_checked[-1] == checked


def test_dry_run_names_the_rights_mirrormaker_lacks(ctx, clusters):
    clusters.missing_rights = [GROUPS]
    secret = credentials()
    ctx.run(
        ctx.on.action("start-migration", params={"dry-run": True}),
        state(config=external(secret), secrets=(secret,)),
    )
    assert json.loads((ctx.action_results or {})["missing-rights"]) == [GROUPS]


def test_a_failback_counts_only_what_was_written_since_the_wave():
    offsets = {
        "orders": _clients.TopicOffsets(start=(0, 5), end=(150, 250)),
        "audit": _clients.TopicOffsets(start=(0,), end=(9,)),
    }
    since = _queries._since(offsets, {"orders": [100, 300], "audit": [1, 2], "gone": [1]})
    assert since["orders"] == _clients.TopicOffsets(start=(100, 250), end=(150, 250))
    assert since["audit"] == offsets["audit"]  # partitions that do not match: as they are
    assert "gone" not in since
