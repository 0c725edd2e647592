# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The migration report (`_report`): judged from a snapshot of both clusters, without them.

`helpers.snapshot` builds an in-sync migration of `orders` and `helpers.report` judges it, with
the fields a test changes.
"""

from __future__ import annotations

from charms.kafka_k8s.v0.mirrormaker import (
    MigrationConfig,
    UnitState,
    _clients,
    _connectors,
    _display,
    _report,
    _text,
    _transactions,
)
from charms.kafka_k8s.v0.mirrormaker._connectors import ConnectorState
from charms.kafka_k8s.v0.mirrormaker._report import GroupOffsets, Quiet
from tests.unit.helpers import RUNNING, TRACE, offsets, report, snapshot

# Topics ------------------------------------------------------------------------------------------


def test_in_sync_is_ready_for_cutover():
    result = report()
    assert result.ready_for_cutover
    assert result.reasons == []
    assert result.summary() == ("active", "in sync with old: ready for cutover")
    assert (result.lag, result.source_records, result.target_records) == (0, 300, 300)


def test_records_deleted_on_the_source_before_the_copy_do_not_count():
    result = report(source_topics={"orders": offsets(100, 200, starts=(60, 0))})
    assert result.topics[0].lag == 0
    assert result.topics[0].source_end_offset == 300
    assert result.topics[0].target_end_offset == 300
    assert result.ready_for_cutover


def test_a_partition_ahead_does_not_hide_one_behind():
    result = report(target_topics={"orders": offsets(110, 150)})
    assert result.topics[0].lag == 50
    assert result.reasons[0] == "topic orders: 50 records behind"


def test_lag_threshold():
    lagging = {"target_topics": {"orders": offsets(100, 190)}}
    assert not report(**lagging).ready_for_cutover
    assert report(lag_threshold=10, **lagging).ready_for_cutover


def test_topic_missing_on_the_target():
    result = report(target_topics={}, target_groups={})
    assert result.topics[0].target_end_offset is None
    assert result.topics[0].lag == 300
    assert result.reasons == ["topic orders is not on the target yet"]


def test_nothing_selected_is_not_ready():
    result = report(source_topics={}, target_topics={}, source_groups=[])
    assert result.reasons == ["no source topic is selected for migration"]


def test_prefixed_policy_compares_the_renamed_copy():
    config = MigrationConfig(replication_policy="prefixed")
    result = report(
        config,
        target_topics={"source.orders": offsets(100, 200)},
        target_groups={"billing": {"source.orders": {0: 100, 1: 200}}},
    )
    assert result.topics[0].target_topic == "source.orders"
    assert result.ready_for_cutover


def test_topic_lags():
    config = MigrationConfig(replication_policy="prefixed")
    source = {
        "orders": _clients.TopicOffsets(start=(0, 0), end=(10, 20)),
        "new": _clients.TopicOffsets(start=(0,), end=(5,)),
    }
    lags = _report._topic_lags(
        source, {"source.orders": _clients.TopicOffsets(start=(0, 0), end=(10, 15))}, config
    )
    assert [lag.model_dump() for lag in lags] == [
        {
            "topic": "new",
            "target_topic": "source.new",
            "partitions": 1,
            "source_end_offset": 5,
            "target_end_offset": None,
            "source_records": 5,
            "target_records": 0,
            "lag": 5,
        },
        {
            "topic": "orders",
            "target_topic": "source.orders",
            "partitions": 2,
            "source_end_offset": 30,
            "target_end_offset": 25,
            "source_records": 30,
            "target_records": 25,
            "lag": 5,
        },
    ]


def test_topic_lags_of_end_offsets_alone_start_at_zero():
    lags = _report._topic_lags({"orders": [10, 20]}, {"orders": [10, 15]}, MigrationConfig())
    assert [(lag.lag, lag.source_records, lag.target_records) for lag in lags] == [(5, 30, 25)]


# Groups ------------------------------------------------------------------------------------------


def test_group_lag_is_what_mirrormakers_offsets_would_make_a_consumer_read_again():
    result = report(target_groups={"billing": {"orders": {0: 100, 1: 180}}})
    [group] = result.groups
    assert (group.lag, group.synced) == (20, False)
    assert group.topics[0].source_committed == 300
    assert group.topics[0].target_committed == 280
    # switch-group and finish-migration set exact offsets: MirrorMaker's do not hold it up.
    assert result.reasons == []
    assert result.ready_for_cutover


def test_group_lag_does_not_depend_on_where_the_copy_starts():
    result = report(
        source_topics={"orders": offsets(100, 200, starts=(40, 40))},
        target_topics={"orders": offsets(60, 160)},
        source_groups=[GroupOffsets(group="billing", offsets={"orders": {0: 90, 1: 200}})],
        target_groups={"billing": {"orders": {0: 50, 1: 160}}},
    )
    assert result.groups[0].lag == 0
    assert result.ready_for_cutover


def test_group_without_target_offsets_is_not_synced():
    result = report(target_groups={"billing": {"orders": {0: 100}}})
    assert result.groups[0].topics[0].missing_partitions == 1
    assert result.groups[0].synced is False
    assert result.reasons == []


def test_group_on_topics_not_migrated_is_left_out():
    result = report(source_groups=[GroupOffsets(group="other", offsets={"audit": {0: 5}})])
    assert result.groups == []


def test_active_group_is_not_ready_for_cutover():
    group = GroupOffsets(group="billing", state="stable", members=3, offsets={"orders": {0: 100}})
    result = report(source_groups=[group])
    assert (result.groups[0].active, result.groups[0].members) == (True, 3)
    assert result.groups[0].state == "stable"
    assert result.reasons == ["group billing: 3 consumers still read from the source cluster"]
    assert result.summary() == (
        "active",
        "migrating from old: 1 topic, lag 0 records; group billing: 3 consumers still read "
        "from the source cluster",
    )


def test_groups_are_not_a_reason_when_their_offsets_are_not_synced():
    config = MigrationConfig(sync_group_offsets=False)
    result = report(config, target_groups={})
    assert result.groups[0].synced is False
    assert result.ready_for_cutover


# MirrorMaker's connectors and units --------------------------------------------------------------


def test_failed_task_blocks():
    failed = ConnectorState(connector="MirrorSourceConnector", task=0, state="FAILED", trace=TRACE)
    result = report(connectors=[RUNNING[0], failed])
    assert result.reasons == [
        f"MirrorSourceConnector-0 failed: {_connectors.trace_summary(TRACE)}"
    ]
    kind, message = result.summary()
    assert kind == "blocked"
    assert message.startswith("MirrorMaker MirrorSourceConnector-0 failed: ConnectException")
    assert len(message) <= _text._STATUS_CHARS


def test_connectors_not_started_yet():
    assert report(connectors=[]).reasons == ["MirrorMaker has not started its connectors yet"]


def test_units_not_running():
    units = {"kafka-k8s/0": UnitState(service="active"), "kafka-k8s/1": UnitState()}
    result = report(units=units)
    assert result.reasons == ["kafka-k8s/1: MirrorMaker is absent"]
    assert result.summary() == (
        "active",
        "migrating from old: 1 topic, lag 0 records; kafka-k8s/1: MirrorMaker is absent",
    )
    assert report(units={"kafka-k8s/0": UnitState()}).reasons[0] == "MirrorMaker runs on no unit"


def test_outside_a_charm_units_are_not_reported():
    result = report(units=None)
    assert result.units is None
    assert result.ready_for_cutover
    assert "units" not in _display.report_results(result)


# Problems ----------------------------------------------------------------------------------------


def test_unreachable_source_is_the_first_reason_and_blocks():
    problem = _report.ClusterProblem(role="source", message="source cluster at h:1 did not answer")
    result = report(source_topics={}, source_groups=[], problems=[problem])
    assert result.reasons == ["source cluster at h:1 did not answer"]
    assert result.summary() == ("blocked", "source cluster at h:1 did not answer")
    results = _display.report_results(result)
    assert results["clusters"] == {
        "source": "source cluster at h:1 did not answer",
        "target": "reachable",
    }
    assert results["ready-for-cutover"] == "false"


def test_many_reasons_are_capped():
    topics = {f"t{n:03}": offsets(10) for n in range(50)}
    result = report(source_topics=topics, target_topics={}, source_groups=[])
    assert len(result.reasons) == _report._MAX_REASONS + 1
    assert result.reasons[-1] == f"... and {50 - _report._MAX_REASONS} more"


# Without a report --------------------------------------------------------------------------------


def test_unknown_results():
    results = _report.unknown_results("no source", {"kafka-k8s/0": UnitState()})
    assert results == {
        "summary": "no source",
        "ready-for-cutover": "false",
        "reasons": '["no source"]',
        "units": {"kafka-k8s-0": {"service": "absent", "exactly-once": "disabled"}},
    }


# Open transactions and fenced topics the source does not show ---------------------------------

NOW = 1_800_000_000.0


def open_transaction(**fields: object) -> _transactions.OpenTransactions:
    transaction = {"topic": "orders", "partition": 1, "producer_id": 7, "start_offset": 200}
    return _transactions.OpenTransactions(
        transactions=[_transactions.OpenTransaction.model_validate(transaction | fields)]
    )


def test_an_open_transaction_holds_up_the_cutover_and_is_named():
    """Issue 23: the last stable offset stood still under an open transaction: "ready"."""
    result = report(
        source_log_ends={"orders": (100, 230)},
        open_transactions=open_transaction(
            transactional_id="payments-app-1", since=int((NOW - 95) * 1000)
        ),
        taken_at=NOW,
    )
    assert not result.ready_for_cutover
    [held] = result.open_transactions
    assert (held.topic, held.partition, held.records, held.hanging) == ("orders", 1, 30, False)
    assert result.reasons == [
        "orders[1]: an open transaction holds 30 records that consumers cannot read yet "
        "(transactional id payments-app-1, producer id 7, open since 2027-01-15T07:58:25+00:00 "
        "(95 s)): wait for its producer to commit or abort it"
    ]
    assert "OPEN TRANSACTION ON" in _display.format_table(result)


def test_a_hanging_transaction_is_named_with_the_remedy():
    result = report(
        source_log_ends={"orders": (100, 230)},
        open_transactions=open_transaction(since=int((NOW - 3600) * 1000)),
        transaction_max_timeout_ms=900_000,
        taken_at=NOW,
    )
    [held] = result.open_transactions
    assert held.hanging
    assert result.reasons[0].endswith(
        "it has been open longer than the source's transaction.max.timeout.ms (900 s), a "
        "hanging transaction; abort it on the source: kafka-transactions.sh "
        "--bootstrap-server ... abort --topic orders --partition 1 --start-offset 200"
    )


def test_a_transaction_the_source_cannot_name_still_holds_up_the_cutover():
    unnamed = _transactions.OpenTransactions(unnamed=_transactions._OLD_KAFKA)
    result = report(source_log_ends={"orders": (100, 201)}, open_transactions=unnamed)
    assert result.reasons == [
        "orders[1]: an open transaction holds 1 record that consumers cannot read yet: wait for "
        f"its producer to commit or abort it ({_transactions._OLD_KAFKA})"
    ]


def test_fenced_topics_the_source_does_not_show_hold_up_the_cutover_and_say_why():
    result = report(unseen=["payments", "refunds"], listed=["orders", "refunds"])
    assert not result.ready_for_cutover
    assert result.reasons == [
        "the source does not show payments any more: its user may have lost DESCRIBE on them, "
        "or they were deleted there; they stay fenced until finish-migration",
        "mirrormaker-topics no longer selects refunds: they stay fenced until finish-migration",
    ]


def test_the_reasons_of_a_failback_name_this_cluster_as_the_one_read():
    # A failback's copy back reads this cluster and writes the source cluster.
    found = _report.build_report(
        snapshot(
            target_topics={},
            quiet=Quiet(required=10, watched=10, writes={"orders": 4}),
            source_groups=[GroupOffsets(group="billing", members=2, offsets={"orders": {0: 100}})],
        ),
        MigrationConfig(),
        source="old",
        wording=_report.FAILBACK_WORDING,
    )
    assert found.reasons == [
        "topic orders is not on the source cluster yet",
        "group billing: 2 consumers still read from this cluster",
        "this cluster is still written: 4 records arrived on orders in the last 10 s; stop its "
        "producers",
    ]
