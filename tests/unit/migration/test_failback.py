# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""A failback (`_failback`) outside a charm: what it takes, where it starts, how it is judged.

The clusters are `helpers.FakeClusters` (`source` the cluster migrated from, `target` this
one); the host's actions are in `test_failback_host.py`.
"""

from __future__ import annotations

import re

import pytest

from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import _failback, _records
from tests.unit.helpers import WAVE, FakeClusters, copied_back, failing_back, record

SOURCE = mm.SourceCluster(
    name="old", bootstrap_servers=("old-0:9092",), username="writer", password="pw"
)
TARGET = mm.TargetCluster(
    bootstrap_servers=("new-0:19092",), username="mirrormaker", password="mm-pw"
)
WAVES = [mm.Wave.model_validate(WAVE)]
CONFIG = mm.MigrationConfig()


@pytest.mark.parametrize(
    ("chosen", "topics"),
    [
        (None, ["orders", "pay.eu", "pay.us"]),
        ("pay\\..*", ["pay.eu", "pay.us"]),
        ("orders,", ["orders"]),
    ],
)
def test_a_failback_takes_promoted_topics(chosen, topics):
    assert _failback.chosen_topics({"orders", "pay.eu", "pay.us"}, chosen) == topics


def test_the_copy_back_reads_exactly_its_topics_and_moves_every_group_but_the_migrations():
    options = _failback.failback_config(CONFIG, ["pay.eu", "orders"], ["billing", "a.b"])
    assert options.topics == ("orders", "pay\\.eu")
    assert options.select_topics(["orders", "pay.eu", "payXeu", "heartbeats"]) == [
        "orders",
        "pay.eu",
    ]
    assert options.groups == ("a\\.b", "billing")
    assert options.groups_exclude == tuple(re.escape(g) for g in mm.MIRRORMAKER_NAMES.groups)
    assert _failback.failback_config(CONFIG, ["orders"]).groups == ("(?!)",)


def test_the_copy_backs_own_topics_are_named_after_it():
    assert mm.copy_back_topics() == [
        "mm2-offset-syncs.failback.internal",
        "mm2-configs.failback.internal",
        "mm2-offsets.failback.internal",
        "mm2-status.failback.internal",
        "failback.checkpoints.internal",
        "failback.heartbeats",
    ]


def test_start_failback_outside_a_charm(clusters: FakeClusters):
    failing_back(clusters)
    failback = mm.start_failback(SOURCE, TARGET, CONFIG, WAVES, "orders", number=4)
    assert (failback.number, failback.source, failback.topics) == (4, "old", ["orders"])
    assert failback.target_offsets == {"orders": [100, 200]}
    [(key, value), _] = clusters.written[("source", "mm2-offsets.failback.internal")]
    assert (key, value) == _records.encode_source_offset("failback", ("orders", 0), 99)
    assert clusters.closed  # every client closed


def test_a_partition_empty_at_the_wave_starts_from_its_beginning(clusters: FakeClusters):
    failing_back(clusters)
    wave = mm.Wave.model_validate(
        {
            **WAVE,
            "source_end_offsets": {"orders": [0, 200]},
            "target_end_offsets": {"orders": [0, 200]},
        }
    )
    clusters.topics["source"]["orders"] = [0, 200]
    mm.start_failback(SOURCE, TARGET, CONFIG, [wave])
    [(_, value), _] = clusters.written[("source", "mm2-offsets.failback.internal")]
    # MirrorMaker takes a negative offset as none recorded: it reads from the first record.
    assert value == b'{"offset":-1}'


def test_the_failback_report_counts_the_copy_back_by_content(clusters: FakeClusters):
    failing_back(clusters)
    failback = mm.start_failback(SOURCE, TARGET, CONFIG, WAVES)
    copied_back(clusters)
    # The copy back sent orders[0]'s records up to 144, then 135 to 144 again: 5 are missing.
    clusters.records["source"][("orders", 0)] = [
        *[record(o, f"orders-0-{o}") for o in range(145)],
        *[record(145 + i, f"orders-0-{135 + i}") for i in range(10)],
    ]
    clusters.topics["source"]["orders"] = [155, 250]
    clusters.failback_syncs = [_records.OffsetSync("orders", 0, 100, 100)]
    check = mm.failback_report(SOURCE, TARGET, CONFIG, failback)
    [orders] = check.report.topics
    assert check.report.lag == orders.lag == 5
    assert check.blockers == ["topic orders: 5 records behind"]
    assert check.summary(failback) == (
        "failing back orders to old: lag 5 records; topic orders: 5 records behind"
    )


def test_finish_failback_outside_a_charm(clusters: FakeClusters):
    failing_back(clusters)
    failback = mm.start_failback(SOURCE, TARGET, CONFIG, WAVES)
    copied_back(clusters)
    stopped = []
    done = mm.finish_failback(
        SOURCE, TARGET, CONFIG, failback, prepare=lambda: stopped.append(1), quiet_seconds=1
    )
    assert stopped == [1]
    assert done.finish.groups == ["billing"]
    assert [s.exact for s in done.switches] == [True]
    assert clusters.deleted == ["mm2-offsets.failback.internal"]
    assert clusters.pauses == [1]
