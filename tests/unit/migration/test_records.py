# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Records and offset syncs (`_records`): which target record copies which source record.

Pure functions on records: MirrorMaker's offset-sync and Connect offset records, the walk of a
partition on both clusters, where a group resumes and the lag it shows. Logs are built the way
MirrorMaker writes them (`helpers.source_log`, `helpers.copies`): runs of the source's committed
records in order, a later run starting again before an earlier one ended (a re-send after a
restart); transaction markers, aborted and compacted-away records leave offsets on the source
that the target never gets.
"""

from __future__ import annotations

import json
import random
import struct

import pytest

from charms.kafka_k8s.v0.mirrormaker import _records
from tests.unit.helpers import copies, source_log


def walk(source, target) -> _records.Walk:
    end = target[-1].offset + 1 if target else 0
    return _records.Walk.of(source, target, end)


# MirrorMaker's records ---------------------------------------------------------------------------


def sync_record(topic: str, partition: int, upstream: int, downstream: int) -> tuple[bytes, bytes]:
    name = topic.encode()
    key = struct.pack(">h", len(name)) + name + struct.pack(">i", partition)
    return key, struct.pack(">qq", upstream, downstream)


def test_an_offset_sync_is_decoded():
    assert _records._decode_offset_sync(*sync_record("orders.eu", 7, 1_850, 1_204)) == (
        _records.OffsetSync("orders.eu", 7, 1_850, 1_204)
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
    assert _records._decode_offset_sync(key, value) is None


def test_a_committed_source_offset_is_decoded():
    key = json.dumps(
        ["MirrorSourceConnector", {"cluster": "source", "partition": 3, "topic": "o"}]
    )
    assert _records._decode_source_offset(key.encode(), b'{"offset": 41}') == (("o", 3), 41)


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
    assert _records._decode_source_offset(key, value) is None


# Where a group resumes ---------------------------------------------------------------------------


def test_a_plain_copy_at_other_offsets():
    source = source_log(list(range(100, 120)))
    target = copies(source, [(0, 20)], first=40)
    assert walk(source, target).position(107) == _records._Position(47, 0, 0)
    assert walk(source, target).position(120) == _records._Position(60, 0, 0)
    assert walk(source, target).position(100) == _records._Position(40, 0, 0)


def test_markers_and_aborted_records_leave_offsets_the_target_never_gets():
    # 0-9 committed, 10 a marker, 11-20 aborted, 21 a marker, 22-31 committed.
    source = source_log([*range(10), *range(22, 32)])
    target = copies(source, [(0, 20)])
    for committed in (10, 11, 15, 21, 22):
        assert walk(source, target).position(committed) == _records._Position(10, 0, 0)
    assert walk(source, target).position(5) == _records._Position(5, 0, 0)


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
    assert position == _records._Position(9, 0, 0)  # the second copy of 6
    # MirrorMaker's translation to the first copy of 6 would read 6, 7 and then 5 again.
    assert walk(source, target).judge(6, 6) == _records._Position(6, 1, 0)


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
    empty = _records.Walk.of([], [], 17)
    assert empty.copied_before(0)
    assert empty.position(0) == _records._Position(17, 0, 0)


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


def mirrormaker_like(rng: random.Random) -> tuple[list[_records.Record], list[_records.Record]]:
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


def test_a_committed_source_offset_is_encoded_as_kafka_connect_writes_it():
    # Byte for byte: Connect finds a task's offsets by the key's bytes.
    key, value = _records.encode_source_offset("failback", ("orders", 3), 41)
    assert (
        key == b'["MirrorSourceConnector",{"cluster":"failback","partition":3,"topic":"orders"}]'
    )
    assert value == b'{"offset":41}'
    assert _records._decode_source_offset(key, value, "failback") == (("orders", 3), 41)
    assert _records._decode_source_offset(key, value) is None  # the migration's flow reads not
