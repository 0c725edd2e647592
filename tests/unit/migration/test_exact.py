# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Exact offsets: which target record copies which source record, and where a group resumes.

Pure functions on records: MirrorMaker's offset-sync and Connect offset records, the walk of a
partition on both clusters, the lag it shows. Logs are built the way MirrorMaker writes them:
runs of the source's committed records in order, a later run starting again before an earlier
one ended (a re-send after a restart); transaction markers, aborted and compacted-away records
leave offsets on the source that the target never gets.
"""

from __future__ import annotations

import json
import random
import struct

import pytest

from charms.kafka_k8s.v0 import mirrormaker as mm
from tests.unit.helpers import record


def source_log(offsets: list[int]) -> list[mm._Record]:
    return [record(offset, f"r{offset}") for offset in offsets]


def copies(source: list[mm._Record], runs: list[tuple[int, int]], first: int = 0):
    """The target: each run copies source[start:end], written from target offset `first` on."""
    target = []
    for start, end in runs:
        for item in source[start:end]:
            target.append(mm._Record(first + len(target), item.content))
    return target


def walk(source, target) -> mm._Walk:
    end = target[-1].offset + 1 if target else 0
    return mm._Walk.of(source, target, end)


# MirrorMaker's records --------------------------------------------------------------------------


def sync_record(topic: str, partition: int, upstream: int, downstream: int) -> tuple[bytes, bytes]:
    name = topic.encode()
    key = struct.pack(">h", len(name)) + name + struct.pack(">i", partition)
    return key, struct.pack(">qq", upstream, downstream)


def test_an_offset_sync_is_decoded():
    assert mm._decode_offset_sync(*sync_record("orders.eu", 7, 1_850, 1_204)) == (
        mm._OffsetSync("orders.eu", 7, 1_850, 1_204)
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (None, b"x" * 16),
        (sync_record("t", 0, 1, 1)[0], None),
        (sync_record("t", 0, 1, 1)[0], b"short"),
        (b"\x00\x09t\x00\x00\x00\x00", struct.pack(">qq", 1, 1)),  # length says 9, holds 1
        (b"\xff\xff" + b"\x00" * 4, struct.pack(">qq", 1, 1)),
    ],
)
def test_what_is_not_an_offset_sync_is_skipped(key, value):
    assert mm._decode_offset_sync(key, value) is None


def test_a_committed_source_offset_is_decoded():
    key = json.dumps(
        ["MirrorSourceConnector", {"cluster": "source", "partition": 3, "topic": "o"}]
    )
    assert mm._decode_source_offset(key.encode(), b'{"offset": 41}') == (("o", 3), 41)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (
            b'["MirrorCheckpointConnector", {"cluster": "source", "partition": 0, "topic": "o"}]',
            b'{"offset": 1}',
        ),
        (
            b'["MirrorSourceConnector", {"cluster": "other", "partition": 0, "topic": "o"}]',
            b'{"offset": 1}',
        ),
        (b'["MirrorSourceConnector", {"cluster": "source", "partition": 0, "topic": "o"}]', None),
        (
            b'["MirrorSourceConnector", {"cluster": "source", "partition": "0", "topic": "o"}]',
            b'{"offset": 1}',
        ),
        (b"not json", b'{"offset": 1}'),
        (None, None),
    ],
)
def test_what_is_not_a_committed_source_offset_is_skipped(key, value):
    assert mm._decode_source_offset(key, value) is None


# Where a group resumes --------------------------------------------------------------------------


def test_a_plain_copy_at_other_offsets():
    source = source_log(list(range(100, 120)))
    target = copies(source, [(0, 20)], first=40)
    assert walk(source, target).position(107) == mm._Position(47, 0, 0)
    assert walk(source, target).position(120) == mm._Position(60, 0, 0)
    assert walk(source, target).position(100) == mm._Position(40, 0, 0)


def test_markers_and_aborted_records_leave_offsets_the_target_never_gets():
    # 0-9 committed, 10 a marker, 11-20 aborted, 21 a marker, 22-31 committed.
    source = source_log([*range(10), *range(22, 32)])
    target = copies(source, [(0, 20)])
    for committed in (10, 11, 15, 21, 22):
        assert walk(source, target).position(committed) == mm._Position(10, 0, 0)
    assert walk(source, target).position(5) == mm._Position(5, 0, 0)


def test_compacted_away_offsets():
    source = source_log([0, 3, 7, 8, 12])
    target = copies(source, [(0, 5)])
    assert walk(source, target).position(5).offset == 2  # the copy of offset 7
    assert walk(source, target).position(13).offset == 5


def test_a_run_sent_again_is_read_past():
    source = source_log(list(range(10)))
    # 0-7 copied, MirrorMaker restarts at 5 and sends 5-9: target offsets 0-7 then 8-12.
    target = copies(source, [(0, 8), (5, 10)])
    position = walk(source, target).position(6)
    assert position == mm._Position(9, 0, 0)  # the second copy of 6
    # MirrorMaker's translation to the first copy of 6 would read 6, 7 and then 5 again.
    assert walk(source, target).judge(6, 6) == mm._Position(6, 1, 0)


def test_a_run_still_being_sent_again_re_reads_rather_than_skips():
    source = source_log(list(range(10)))
    target = copies(source, [(0, 8), (5, 7)])  # the re-send got to 6 so far
    position = walk(source, target).position(6)
    assert position.skip == 0
    assert position.re_read == 1  # 5, sent again after the first 7
    assert position.offset == 7


def test_the_copy_must_reach_the_committed_offset():
    source = source_log(list(range(10)))
    target = copies(source, [(0, 4)])
    assert walk(source, target).copied_before(4)
    assert not walk(source, target).copied_before(6)
    assert walk(source, target).copied_up_to() == 4


def test_an_empty_source_partition_resumes_at_the_targets_end():
    empty = mm._Walk.of([], [], 17)
    assert empty.copied_before(0)
    assert empty.position(0) == mm._Position(17, 0, 0)


def test_records_sent_again_from_before_the_anchor_are_re_reads():
    source = source_log(list(range(20)))
    target = copies(source, [(10, 15), (8, 20)], first=10)
    anchored = walk(source[10:], target)  # the anchor is source 10 at target 10
    position = anchored.position(12)
    assert position.skip == 0
    assert position.offset == 19  # the second copy of 12, after 8 and 9 came again
    assert position.re_read == 0


def test_lag_counts_source_records_after_the_furthest_copy():
    source = source_log([*range(5), *range(8, 14)])
    assert walk(source, copies(source, [(0, 11)])).lag() == 0
    assert walk(source, copies(source, [(0, 7)])).lag() == 4
    assert walk(source, copies(source, [(0, 7), (3, 9)])).lag() == 2
    assert walk(source, []).lag() == 11


def mirrormaker_like(rng: random.Random) -> tuple[list[mm._Record], list[mm._Record]]:
    """A source with gaps and a target of runs, each starting again at or before the last end."""
    offsets = sorted(rng.sample(range(200), rng.randint(5, 60)))
    source = source_log(offsets)
    runs, end = [], 0
    while end < len(source):
        start = max(0, end - rng.randint(0, 8)) if runs else 0
        end = min(len(source), end + rng.randint(1, 15))
        runs.append((start, max(start + 1, end)))
    return source, copies(source, runs, first=rng.randint(0, 50))


@pytest.mark.parametrize("seed", range(40))
def test_the_position_skips_nothing_and_re_reads_the_least(seed):
    rng = random.Random(seed)
    source, target = mirrormaker_like(rng)
    walked = walk(source, target)
    candidates = [item.offset for item in target] + [walked.target_end]
    for committed in range(source[0].offset, source[-1].offset + 2):
        position = walked.position(committed)
        assert position.skip == 0
        safe = [walked.judge(committed, at) for at in candidates]
        least = min(p.re_read for p in safe if p.skip == 0)
        assert position.re_read == least
        # By content: from the position, the first copies are exactly the records from on.
        read = [item.content for item in target if item.offset >= position.offset]
        wanted = [item.content for item in source if item.offset >= committed]
        assert list(dict.fromkeys(c for c in read if c in set(wanted))) == wanted


# The lag by content ---------------------------------------------------------------------------


def copy_lags(clusters, source: dict, target: dict) -> dict:
    """`_fetch_copy_lags` over `FakeClusters`, for topics with these end offsets."""
    clusters.topics = {"source": source, "target": target}
    client = clusters  # the fake `_ClusterClient` factory
    source_offsets = {
        t: mm._TopicOffsets(start=(0,) * len(e), end=tuple(e)) for t, e in source.items()
    }
    target_offsets = {
        t: mm._TopicOffsets(start=(0,) * len(e), end=tuple(e)) for t, e in target.items()
    }
    return mm._fetch_copy_lags(
        client(mm.KafkaCluster(bootstrap_servers=("s:1",), username="u", password="p"), "source"),
        client(mm.KafkaCluster(bootstrap_servers=("t:1",), username="u", password="p"), "target"),
        mm.MigrationConfig(),
        source_offsets,
        target_offsets,
    )


def test_a_sync_on_the_last_record_means_no_lag(clusters):
    clusters.syncs = [mm._OffsetSync("orders", 0, 99, 120)]
    assert copy_lags(clusters, {"orders": [100]}, {"orders": [121]}) == {"orders": [0]}


def test_aborted_records_after_the_last_copy_do_not_lag(clusters):
    # Source: records 0-9, then offsets 10-19 aborted and a marker, never copied.
    clusters.records["source"][("orders", 0)] = source_log(list(range(10)))
    clusters.records["target"][("orders", 0)] = copies(source_log(list(range(10))), [(0, 10)])
    clusters.syncs = [mm._OffsetSync("orders", 0, 5, 5)]
    assert copy_lags(clusters, {"orders": [21]}, {"orders": [10]}) == {"orders": [0]}


def test_records_copied_twice_do_not_hide_missing_ones(clusters):
    source = source_log(list(range(20)))
    clusters.records["source"][("orders", 0)] = source
    # 0-14 copied, then 10-14 again: as many target records as source ones, 5 missing.
    clusters.records["target"][("orders", 0)] = copies(source, [(0, 15), (10, 15)])
    clusters.syncs = [mm._OffsetSync("orders", 0, 0, 0)]
    assert copy_lags(clusters, {"orders": [20]}, {"orders": [20]}) == {"orders": [5]}


def test_far_behind_the_newest_sync_offsets_count_at_least_one(clusters):
    far = mm._EXACT_LAG_WINDOW * 2
    clusters.syncs = [mm._OffsetSync("orders", 0, 10, 10)]
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
