# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Issue 15 end to end: lag by content, a quiet source, exact group offsets, fence and finish.

One migration for the module, from the ZooKeeper-mode old cluster (read by a user that may only
read and describe) onto one unit, by a real MirrorMaker node that the library's own
`MirrorMakerService` runs under real Pebble. The source holds a plain topic written while
MirrorMaker is killed with `kill -9` (so that it sends records again), a transactional topic
with aborted transactions, and a topic compacted before the copy. Consumer groups are then
committed on the source at many points of every partition: at its start, at its end, in the
middle of batches, inside runs that MirrorMaker copied twice, on transaction markers and aborted
records, on compacted-away offsets. Each is switched to the target as `switch-group` switches
it, and a consumer of the target then reads, by content, exactly the records after its source
offset. What MirrorMaker's own offsets would have made the same groups read again is measured
and printed. The tests run in file order; the last one is `finish-migration`'s cutover.
"""

from __future__ import annotations

import os
import random
import re
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import (
    MigrationConfig,
    MigrationReport,
    _clients,
    _display,
    _queries,
    _switch,
    migration_report,
)
from substrate.migration import (
    LiveProducer,
    MirrorMakers,
    client_user,
    commit_offsets,
    committed,
    end_offsets,
    grant_client,
    produce,
    produce_one,
    source_cluster,
    source_user,
    switch_groups,
    target_cluster,
    wait_copied,
)
from substrate.old_cluster import OldCluster
from substrate.processes import ClientConfig, find_processes, port_open, wait_until
from substrate.units import NewCluster

PLAIN, TRANSACTIONAL, COMPACTED, OUTSIDE = "events", "ledger", "catalog", "scratch"
PARTITIONS = {PLAIN: 4, TRANSACTIONAL: 2, COMPACTED: 2, OUTSIDE: 1}
MIGRATED = (PLAIN, TRANSACTIONAL, COMPACTED)
PLAIN_RECORDS = 1_200
TRANSACTIONS = 12  # every second one aborted
TRANSACTION_RECORDS = 20  # per partition
COMPACTED_KEYS = 60
MIRRORMAKER_MAIN = "org.apache.kafka.connect.mirror.MirrorMaker"
REFRESH = 5

# What a `read_committed` consumer reads of a record: key, value, headers, timestamp.
Content = tuple[bytes | None, bytes | None, tuple[tuple[str, str | bytes], ...], int]


@dataclass
class Cutover:
    """The module's migration and what the tests learn of it."""

    old: OldCluster
    new: NewCluster
    nodes: MirrorMakers
    config: MigrationConfig
    old_config: ClientConfig
    new_config: ClientConfig
    written: int = PLAIN_RECORDS
    duplicates: int = 0
    # group: {(topic, partition): committed offset} on the source
    groups: dict[str, dict[tuple[str, int], int]] = field(default_factory=dict)
    # group: {(topic, partition): MirrorMaker's offset on the target, before any switch}
    mirrormaker: dict[str, dict[tuple[str, int], int]] = field(default_factory=dict)
    why: dict[tuple[str, int, int], str] = field(default_factory=dict)

    @property
    def source(self):
        return self.nodes.settings[0].source

    @property
    def target(self):
        return self.nodes.settings[0].target

    def report(self, quiet_seconds: float = 0) -> MigrationReport:
        return migration_report(
            self.source,
            self.target,
            self.config,
            units=self.nodes.unit_states(),
            quiet_seconds=quiet_seconds,
        )


def log(config: ClientConfig, topic: str, partition: int, start: int = 0) -> list[tuple]:
    """Every committed record of a partition from `start`, as (offset, content)."""
    consumer = Consumer(
        {
            **config,
            "group.id": f"log-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "log_level": 0,
        }
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 30)
        position = max(low, start)
        consumer.assign([TopicPartition(topic, partition, position)])
        read: list[tuple[int, Content]] = []
        deadline = time.monotonic() + 120
        while position < high and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1.0):
                if message.error():
                    raise KafkaException(message.error())
                headers = tuple((k, v or b"") for k, v in message.headers() or ())
                content = (message.key(), message.value(), headers, message.timestamp()[1])
                read.append((message.offset() or 0, content))
            position = consumer.position([TopicPartition(topic, partition)])[0].offset
        assert position >= high, f"{topic}[{partition}] not read to its end"
        return read
    finally:
        consumer.close()


def _create_topics(admin: AdminClient) -> None:
    compacted = {
        "cleanup.policy": "compact",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
        "min.compaction.lag.ms": "0",
        "delete.retention.ms": "100",
    }
    topics = [
        NewTopic(name, num_partitions=count, replication_factor=1, config=compacted)
        if name == COMPACTED
        else NewTopic(name, num_partitions=count, replication_factor=1)
        for name, count in PARTITIONS.items()
    ]
    for future in admin.create_topics(topics).values():
        future.result(timeout=60)


def _warm_up_transactions(config: ClientConfig) -> None:
    """Abort one transaction on the topic nobody migrates, until the old broker ends one.

    Right after it starts, the old broker once answered the first EndTxn INVALID_TXN_STATE.
    """
    deadline = time.monotonic() + 120
    for attempt in range(1, 1000):
        settings = {"transactional.id": f"warm-up-{attempt}", "log_level": 0}
        producer = Producer({**config, **settings})
        try:
            producer.init_transactions(30)
            producer.begin_transaction()
            producer.produce(OUTSIDE, key="warm-up", value="aborted", partition=0)
            producer.abort_transaction(30)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def _transactions(config: ClientConfig) -> None:
    """Write transactions to every partition of the transactional topic; abort every second."""
    _warm_up_transactions(config)
    producer = Producer({**config, "transactional.id": "ledger-writer", "log_level": 0})
    producer.init_transactions(30)
    for number in range(TRANSACTIONS):
        producer.begin_transaction()
        for partition in range(PARTITIONS[TRANSACTIONAL]):
            for index in range(TRANSACTION_RECORDS):
                key = f"{TRANSACTIONAL}-{number}-{partition}-{index}"
                producer.produce(TRANSACTIONAL, key=key, value=f"t{number}", partition=partition)
        if number % 2:
            producer.abort_transaction(30)
        else:
            producer.commit_transaction(30)


def _compacted(config: ClientConfig, admin: AdminClient) -> None:
    """Write keys several times, wait for the log cleaner, then keep the cleaner away."""
    producer = Producer({**config, "log_level": 0})
    for version in range(3):
        for key in range(COMPACTED_KEYS):
            partition = key % PARTITIONS[COMPACTED]
            producer.produce(
                COMPACTED, key=f"item-{key}", value=f"v{version}", partition=partition
            )
        producer.flush(30)
        time.sleep(0.3)
    for partition in range(PARTITIONS[COMPACTED]):  # rolls the segments written above
        producer.produce(COMPACTED, key=f"roll-{partition}", value="roll", partition=partition)
    producer.flush(30)

    def compacted() -> bool:
        return all(
            len(log(config, COMPACTED, p)) < COMPACTED_KEYS * 3 / 2
            for p in range(PARTITIONS[COMPACTED])
        )

    wait_until(compacted, timeout=120, interval=3, what="the log cleaner on the source")
    frozen = ConfigResource(
        ConfigResource.Type.TOPIC,  # pyright: ignore[reportAttributeAccessIssue]
        COMPACTED,
        incremental_configs=[
            ConfigEntry("segment.ms", "604800000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry(
                "min.compaction.lag.ms", "604800000", incremental_operation=AlterConfigOpType.SET
            ),
        ],
    )
    for future in admin.incremental_alter_configs([frozen]).values():
        future.result(timeout=30)


@pytest.fixture(scope="module")
def new_cluster(kafka_cache: Path, local_tmp: Path) -> Iterator[NewCluster]:
    """One unit: one MirrorMaker node copies at least once as many do."""
    tmp = Path(tempfile.mkdtemp(prefix="new-", dir=local_tmp))
    with NewCluster(tmp, cache=kafka_cache, size=1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def cutover(old_cluster: OldCluster, new_cluster: NewCluster) -> Iterator[Cutover]:
    """The source loaded (plain, transactional, compacted topics), MirrorMaker running."""
    old_config = old_cluster.admin_config()
    source_user(old_cluster)
    admin = AdminClient(old_config)
    _create_topics(admin)
    produce(old_config, PLAIN, 0, PLAIN_RECORDS)
    produce(old_config, OUTSIDE, 0, 10)
    _transactions(old_config)
    _compacted(old_config, admin)
    config = MigrationConfig.from_options(
        {
            "mirrormaker-topics": ",".join(MIGRATED),
            "mirrormaker-refresh-interval": REFRESH,
            "mirrormaker-tasks-max": 2,
        }
    )
    nodes = MirrorMakers.on(
        new_cluster, source_cluster(old_cluster), target_cluster(new_cluster), config
    )
    nodes.run()
    try:
        yield Cutover(
            old_cluster, new_cluster, nodes, config, old_config, new_cluster.admin_config()
        )
    finally:
        nodes.stop()


def _mirrormaker_pid(cutover: Cutover) -> int | None:
    pids = find_processes(MIRRORMAKER_MAIN, cutover.new.units[0].marker)
    return pids[0] if len(pids) == 1 else None


def test_mirrormaker_killed_while_copying_sends_records_twice(cutover: Cutover):
    unit = cutover.new.units[0]
    for kill in range(3):
        live = LiveProducer(cutover.old_config, PLAIN, written=cutover.written).start()
        try:
            wait_until(
                lambda: (
                    _mirrormaker_pid(cutover) is not None
                    and port_open(unit.workload.ports.mirrormaker_rest)
                ),
                timeout=120,
                what="MirrorMaker to serve",
            )
            # Some records copied since the last offset commit (every 10 s) when it dies.
            copied = sum(sum(ends) for ends in end_offsets(cutover.new_config, [PLAIN]).values())
            wait_until(
                lambda copied=copied: (
                    sum(sum(ends) for ends in end_offsets(cutover.new_config, [PLAIN]).values())
                    > copied + 600
                ),
                timeout=180,
                what="MirrorMaker copying",
            )
            time.sleep(random.uniform(3, 7))
            pid = _mirrormaker_pid(cutover)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            wait_until(
                lambda pid=pid: _mirrormaker_pid(cutover) not in (None, pid),
                timeout=120,
                what=f"Pebble to restart MirrorMaker after kill {kill + 1}",
            )
            time.sleep(2)
        finally:
            cutover.written = live.stop()
        cutover.duplicates = wait_copied(
            cutover.old_config, cutover.new_config, list(MIGRATED), timeout=480
        )
        print(f"\nafter {kill + 1} kill -9: {cutover.duplicates} records on the target twice")
        if cutover.duplicates:
            break
    assert cutover.duplicates > 0, "MirrorMaker sent nothing twice after three kill -9"


def test_lag_counts_what_a_read_committed_consumer_reads(cutover: Cutover):
    deadline = time.monotonic() + 120
    report = cutover.report()
    while report.lag and time.monotonic() < deadline:
        time.sleep(2)
        report = cutover.report()
    print(f"\n{mm.format_table(report)}")
    for name in (TRANSACTIONAL, COMPACTED):
        detail = migration_report(cutover.source, cutover.target, cutover.config, topic=name)
        print(f"\n{name}:\n{mm.format_table(detail)}")
    topics = {topic.topic: topic for topic in report.topics}
    assert report.lag == 0, mm.format_table(report)
    # Counted by content on every partition, from MirrorMaker's offset syncs.
    source = _clients.ClusterClient(cutover.source, "source")
    target = _clients.ClusterClient(cutover.target, "target")
    counted = _queries._fetch_copy_lags(
        source,
        target,
        cutover.config,
        source.offsets({t: PARTITIONS[t] for t in MIGRATED}),
        target.offsets({t: PARTITIONS[t] for t in MIGRATED}),
    )
    assert counted == {t: [0] * PARTITIONS[t] for t in MIGRATED}
    # Markers, aborted records and compacted-away offsets the target never gets, and records
    # MirrorMaker sent again after the kill -9 above: the offsets differ, the lag is 0.
    for name in (TRANSACTIONAL, COMPACTED):
        assert topics[name].source_records != topics[name].target_records
        assert topics[name].lag == 0
    # Records copied twice do not hide a lag, nor make one.
    twice = wait_copied(cutover.old_config, cutover.new_config, [PLAIN], timeout=60)
    assert topics[PLAIN].target_records == topics[PLAIN].source_records + twice


def test_the_verdict_waits_for_the_source_to_be_quiet(cutover: Cutover):
    live = LiveProducer(cutover.old_config, PLAIN, written=cutover.written).start()
    try:
        wait_until(lambda: live.written > cutover.written, timeout=60, what="the producer")
        written = cutover.report(quiet_seconds=3)
    finally:
        cutover.written = live.stop()
    print(f"\nwhile a producer writes to the source:\n{mm.format_table(written)}")
    assert not written.ready_for_cutover
    [still] = [r for r in written.reasons if r.startswith("the source is still written")]
    assert re.fullmatch(
        rf"the source is still written: [\d,]+ records arrived on {PLAIN} in the last \d+ s; "
        "stop its producers",
        still,
    ), still
    assert [w.topic for w in written.source_writes or []] == [PLAIN]
    wait_copied(cutover.old_config, cutover.new_config, [PLAIN], timeout=300)
    deadline = time.monotonic() + 60
    quiet = cutover.report(quiet_seconds=3)
    while not quiet.ready_for_cutover and time.monotonic() < deadline:
        quiet = cutover.report(quiet_seconds=3)
    print(f"\nonce it stopped:\n{mm.format_table(quiet)}")
    assert quiet.source_writes == []
    assert quiet.ready_for_cutover, quiet.reasons


def _points(cutover: Cutover, topic: str, partition: int, rng: random.Random) -> list[int]:
    """Offsets to commit on a source partition, each with why it is interesting."""
    source = log(cutover.old_config, topic, partition)
    offsets = [offset for offset, _ in source]
    end = end_offsets(cutover.old_config, [topic])[topic][partition]
    points = {0: "the start", end: "the end"}
    for offset in rng.sample(offsets[1:-1], 3):
        points.setdefault(offset, "mid-batch")
    kept = set(offsets)
    gaps = [o for o in range(offsets[0], end) if o not in kept]
    if gaps:
        what = "a marker or an aborted record" if topic == TRANSACTIONAL else "a compacted offset"
        for offset in (gaps[0], gaps[len(gaps) // 2], gaps[-1]):
            points.setdefault(offset, what)
    if topic == PLAIN:
        seen: set[Content] = set()
        by_content = {content: offset for offset, content in source}
        twice = []
        for _, content in log(cutover.new_config, topic, partition):
            if content in seen:
                twice.append(by_content[content])
            seen.add(content)
        for offset in twice[:1] + twice[len(twice) // 2 : len(twice) // 2 + 1] + twice[-1:]:
            points.setdefault(offset, "inside a run copied twice")
            points.setdefault(offset + 1, "inside a run copied twice")
    for offset, why in points.items():
        cutover.why[(topic, partition, offset)] = why
    return sorted(points)


def test_groups_committed_at_many_points(cutover: Cutover):
    rng = random.Random(15)
    for topic in MIGRATED:
        per_partition = [_points(cutover, topic, p, rng) for p in range(PARTITIONS[topic])]
        for index in range(max(len(points) for points in per_partition)):
            group = f"{topic}-{index:02}"
            offsets = {
                (topic, p): points[index % len(points)] for p, points in enumerate(per_partition)
            }
            commit_offsets(cutover.old_config, group, offsets)
            cutover.groups[group] = offsets
    commit_offsets(cutover.old_config, "outside-only", {(OUTSIDE, 0): 5})
    # For switch-group's refusals: a group that gets a consumer on the source later on.
    commit_offsets(cutover.old_config, "busy-on-source", {(PLAIN, 0): 10})

    def translated() -> bool:
        cutover.mirrormaker = {g: committed(cutover.new_config, g) for g in cutover.groups}
        busy = committed(cutover.new_config, "busy-on-source")
        return (PLAIN, 0) in busy and all(
            cutover.mirrormaker[g].keys() >= o.keys() for g, o in cutover.groups.items()
        )

    # MirrorMaker's checkpoints translate what they can within a few refresh intervals; a group
    # committed before every offset sync it kept is never translated.
    deadline = time.monotonic() + 8 * REFRESH
    while not translated() and time.monotonic() < deadline:
        time.sleep(REFRESH)
    missing = sum(
        1
        for group, offsets in cutover.groups.items()
        for key in offsets
        if key not in cutover.mirrormaker.get(group, {})
    )
    partitions = sum(len(offsets) for offsets in cutover.groups.values())
    print(
        f"\n{len(cutover.groups)} groups on {partitions} partitions; MirrorMaker gave no "
        f"offset on {missing}"
    )
    assert len(cutover.groups) >= 20


def _judge(
    source: list[tuple], target: list[tuple], committed_at: int, offset: int | None
) -> tuple[int, int] | None:
    """What a consumer of the target at `offset` reads, by content: (re-read, skipped)."""
    if offset is None:
        return None
    before = {content for o, content in source if o < committed_at}
    wanted = [content for o, content in source if o >= committed_at]
    read = [content for o, content in target if o >= offset]
    re_read = sum(1 for content in read if content in before)
    seen = set(read)
    return re_read, sum(1 for content in wanted if content not in seen)


def test_switch_group_resumes_exactly_after_the_source_offset(cutover: Cutover):
    logs = {
        (topic, p): (log(cutover.old_config, topic, p), log(cutover.new_config, topic, p))
        for topic in MIGRATED
        for p in range(PARTITIONS[topic])
    }
    rows = []
    totals = {"ours": [0, 0], "mirrormaker": [0, 0], "untranslated": 0, "how": {}}
    for group, offsets in sorted(cutover.groups.items()):
        [switch] = switch_groups(cutover.source, cutover.target, cutover.config, [group])
        [by_time] = switch_groups(
            cutover.source, cutover.target, cutover.config, [group], dry_run=True, use_syncs=False
        )
        assert switch.switched
        now = committed(cutover.new_config, group)
        for part, timed in zip(switch.partitions, by_time.partitions, strict=True):
            key = (part.topic, part.partition)
            where = f"{group} {part.topic}[{part.partition}] at {part.source_committed}"
            assert (part.result, part.re_read, part.skip) == ("exact", 0, 0), f"{where}: {part}"
            assert timed.target_offset == part.target_offset, f"{where}: by time {timed}"
            assert now[key] == part.target_offset
            source, target = logs[key]
            ours = _judge(source, target, offsets[key], part.target_offset)
            assert ours == (0, 0), f"{where}: by content {ours}"
            theirs = _judge(source, target, offsets[key], cutover.mirrormaker[group].get(key))
            if theirs is None:
                totals["untranslated"] += 1
            else:
                totals["mirrormaker"][0] += theirs[0]
                totals["mirrormaker"][1] += theirs[1]
            how = part.matched_by or "-"
            totals["how"][how] = totals["how"].get(how, 0) + 1
            rows.append(
                (
                    group,
                    f"{part.topic}[{part.partition}]",
                    offsets[key],
                    cutover.why.get((*key, offsets[key]), ""),
                    part.target_offset,
                    "0 / 0",
                    "-" if theirs is None else f"{theirs[0]} / {theirs[1]}",
                )
            )
    assert totals["how"].get("offset sync", 0) > len(rows) / 2, totals["how"]
    headers = ["GROUP", "PARTITION", "SOURCE", "WHERE", "TARGET", "OURS RE-READ/SKIP", "MM2'S"]
    print("\n" + "\n".join(_display._table(headers, rows)))
    print(
        f"\n{len(rows)} group partitions: switched exactly, 0 re-read, 0 skipped (by content). "
        f"MirrorMaker's own offsets: {totals['mirrormaker'][0]} re-read, "
        f"{totals['mirrormaker'][1]} skipped, {totals['untranslated']} partitions without an "
        f"offset. Anchored by: {totals['how']}"
    )


def test_a_consumer_of_the_target_reads_from_the_switched_offsets(cutover: Cutover):
    for group in (f"{PLAIN}-01", f"{TRANSACTIONAL}-02"):
        offsets = cutover.groups[group]
        topic = next(iter(offsets))[0]
        expected = sum(
            len([o for o, _ in log(cutover.old_config, topic, p) if o >= offsets[(topic, p)]])
            for p in range(PARTITIONS[topic])
        )
        consumer = Consumer(
            {
                **cutover.new_config,
                "group.id": group,
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "error",
                "log_level": 0,
            }
        )
        read: list[bytes] = []
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                message = consumer.poll(1.0)
                if message is None:
                    if len(set(read)) >= expected:
                        break
                    continue
                if message.error():
                    raise KafkaException(message.error())
                read.append(message.key() or b"")
        finally:
            consumer.close()
        source_keys = {
            content[0]
            for p in range(PARTITIONS[topic])
            for o, content in log(cutover.old_config, topic, p)
            if o >= offsets[(topic, p)]
        }
        assert set(read) == source_keys, group


def _busy(config: ClientConfig, group: str, topic: str, stop: threading.Event) -> None:
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False, "log_level": 0})
    try:
        consumer.subscribe([topic])
        while not stop.is_set():
            consumer.poll(0.5)
    finally:
        consumer.close()


def _members(cluster: mm.KafkaCluster, group: str) -> int:
    return _clients.ClusterClient(cluster, "either").describe_groups([group])[group][1]


def _refused(cutover: Cutover, group: str) -> str:
    with pytest.raises(mm.MigrationError) as refused:
        switch_groups(cutover.source, cutover.target, cutover.config, [group])
    return refused.value.message


def test_switch_group_refuses_and_changes_nothing(cutover: Cutover):
    target_before = {
        g: committed(cutover.new_config, g)
        for g in ("busy-on-source", f"{PLAIN}-03", "outside-only", "nobody")
    }
    assert _refused(cutover, "nobody") == "group nobody does not exist on the source cluster"
    assert _refused(cutover, "outside-only") == (
        "group outside-only has no committed offsets on the migrated topics"
    )
    stop = threading.Event()
    threads = [
        threading.Thread(target=_busy, args=(cutover.old_config, "busy-on-source", PLAIN, stop)),
        threading.Thread(target=_busy, args=(cutover.new_config, f"{PLAIN}-03", PLAIN, stop)),
    ]
    for thread in threads:
        thread.start()
    try:
        wait_until(
            lambda: (
                _members(cutover.source, "busy-on-source") == 1
                and _members(cutover.target, f"{PLAIN}-03") == 1
            ),
            timeout=60,
            what="both consumers to join",
        )
        assert _refused(cutover, "busy-on-source") == (
            "group busy-on-source has 1 member on the source cluster: stop its consumers there "
            "first"
        )
        assert _refused(cutover, f"{PLAIN}-03") == (
            f"group {PLAIN}-03 has 1 member on the target cluster: its consumers have moved "
            "already"
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    after = {g: committed(cutover.new_config, g) for g in target_before}
    assert after == target_before


def test_the_fence_refuses_an_early_producer_until_finish(cutover: Cutover):
    report = cutover.report()
    fenced = {topic.target_topic for topic in report.topics}
    assert fenced == set(MIGRATED)
    user = client_user(cutover.new, 42, PLAIN)
    grant_client(cutover.new, user, fenced)
    assert produce_one(user.config(cutover.new), PLAIN, "too early") == (
        "TOPIC_AUTHORIZATION_FAILED"
    )

    # finish-migration: MirrorMaker has recorded its whole copy; it stops; every group moves.
    clients = _switch.Clients.of(cutover.source, cutover.target, 30.0)
    try:
        assert (
            _switch.unsettled_topics(clients, {topic: PARTITIONS[topic] for topic in MIGRATED})
            == []
        )
    finally:
        clients.close()
    cutover.nodes.stop()
    switches = switch_groups(cutover.source, cutover.target, cutover.config)
    print(f"\nfinish-migration:\n{_display.groups_table(switches)}")
    moved = {s.group for s in switches if s.switched}
    assert moved >= set(cutover.groups)
    assert all(s.exact and s.re_read == 0 and s.skip == 0 for s in switches if s.switched)
    grant_client(cutover.new, user, frozenset())
    assert produce_one(user.config(cutover.new), PLAIN, "after the cutover") is None
