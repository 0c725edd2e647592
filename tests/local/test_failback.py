# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Issue 25 end to end: a promoted wave fails back to the old cluster, exactly.

One migration for the module, from the ZooKeeper-mode old cluster (read by a user that may only
read and describe) onto one unit, of `orders` and `audit`; one wave promotes both (as the last
`finish-migration` does), and a relation producer then writes 10,000 records to `orders` on the
new cluster while group `billing` consumes part of them. The tests run in file order:

- refusals, each leaving both clusters as they were: a topic no wave promoted, the migration's
  read-only user as the failback's writer, and `audit` after someone wrote to it on the old
  cluster (named with its partition and the records);
- the failback of `orders`, as `start-failback` and `finish-failback` run it (`start_failback`,
  the copy back on every unit as each unit's reconcile runs it, `finish_failback` with the
  copy back stopped first): a producer still writing on the new cluster keeps the finish
  refused; then the old cluster holds every record once, in order, by content; `billing`
  resumes there with 0 records re-read and 0 skipped; the copy back's topics are gone; the
  migration's MirrorMaker would resume after the copied-back records; a producer writes to the
  old cluster again and the new cluster's `orders` is fenced for relation producers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import (
    FailbackRefusedError,
    FencedTopics,
    MigrationConfig,
    SourceCluster,
    TargetCluster,
    Wave,
)
from substrate.migration import (
    CopyBack,
    LiveProducer,
    MirrorMakers,
    client_user,
    commit_offsets,
    committed,
    end_offsets,
    failback_user,
    grant_client,
    produce,
    produce_one,
    promote_when_settled,
    records,
    source_cluster,
    source_user,
    target_cluster,
    wait_copied,
)
from substrate.old_cluster import OldCluster
from substrate.processes import ClientConfig, wait_until
from substrate.units import NewCluster

UNITS = 1
ORDERS, AUDIT = "orders", "audit"
PARTITIONS = {ORDERS: 2, AUDIT: 1}
RECORDS = 300
WRITTEN_HERE = 10_000
QUIET = 3.0
REFRESH = 5


@dataclass
class Failing:
    """The module's migration, its wave, and what the tests share."""

    old: OldCluster
    new: NewCluster
    config: MigrationConfig
    wave: Wave
    writer: SourceCluster
    target: TargetCluster
    old_config: ClientConfig
    new_config: ClientConfig


def _clusters_now(state: Failing) -> dict[str, object]:
    """What a refusal must leave as it was: both clusters' topics, their ends, the groups."""
    old_admin = AdminClient({**state.old_config, "log_level": 0})
    new_admin = AdminClient({**state.new_config, "log_level": 0})
    return {
        "old topics": sorted(old_admin.list_topics(timeout=30).topics),
        "new topics": sorted(new_admin.list_topics(timeout=30).topics),
        "old ends": end_offsets(state.old_config, list(PARTITIONS)),
        "new ends": end_offsets(state.new_config, list(PARTITIONS)),
        "old billing": committed(state.old_config, "billing"),
        "new billing": committed(state.new_config, "billing"),
    }


@pytest.fixture(scope="module")
def failing(old_cluster: OldCluster, new_cluster: NewCluster) -> Iterator[Failing]:
    """Both topics migrated and promoted in one wave; `billing` moved with it."""
    old_config = old_cluster.admin_config()
    source_user(old_cluster)
    admin = AdminClient({**old_config, "log_level": 0})
    created = admin.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in PARTITIONS.items()]
    )
    for future in created.values():
        future.result(timeout=60)
    for topic in PARTITIONS:
        produce(old_config, topic, 0, RECORDS)
    commit_offsets(old_config, "billing", {(ORDERS, 0): 100, (ORDERS, 1): 120})
    config = MigrationConfig.from_options(
        {
            "mirrormaker-topics": f"{ORDERS},{AUDIT}",
            "mirrormaker-refresh-interval": REFRESH,
            "mirrormaker-tasks-max": 2,
        }
    )
    source, target = source_cluster(old_cluster), target_cluster(new_cluster)
    nodes = MirrorMakers.on(new_cluster, source, target, config)
    nodes.run()
    try:
        wait_copied(old_config, new_cluster.admin_config(), list(PARTITIONS), timeout=300)
        promotion = promote_when_settled(
            source,
            target,
            config,
            None,
            units=nodes.unit_states(),
            quiet_seconds=QUIET,
            prepare=lambda final: nodes.stop() if final else None,
        )
    finally:
        nodes.stop()
    assert promotion.final and promotion.wave.groups == ["billing"]
    new_cluster.grant_mirrormaker(promoted=promotion.wave.target_topics)
    yield Failing(
        old_cluster,
        new_cluster,
        config,
        promotion.wave,
        failback_user(old_cluster, [ORDERS, AUDIT], ["billing"]),
        target,
        old_config,
        new_cluster.admin_config(),
    )


def test_refusals_leave_both_clusters_unchanged(failing: Failing):
    waves = [failing.wave]
    before = _clusters_now(failing)
    with pytest.raises(FailbackRefusedError) as never:
        mm.start_failback(failing.writer, failing.target, failing.config, waves, "payments")
    assert "topics: 'payments' matches no promoted topic (promoted: audit, orders)" in str(
        never.value
    )
    reader = source_cluster(failing.old)
    with pytest.raises(mm.ClusterUnreachableError) as read_only:
        mm.start_failback(reader, failing.target, failing.config, waves, ORDERS)
    print(f"\nthe migration's user as the writer: {read_only.value.message}")
    assert "source cluster at" in read_only.value.message
    assert "refused the request" in read_only.value.message
    assert _clusters_now(failing) == before

    # Someone writes to the old cluster's audit after the cutover.
    produce(failing.old_config, AUDIT, RECORDS, 3)
    before = _clusters_now(failing)
    with pytest.raises(FailbackRefusedError) as diverged:
        mm.start_failback(failing.writer, failing.target, failing.config, waves, AUDIT)
    print(f"a source written since the wave: {diverged.value.message}")
    assert diverged.value.message.startswith(
        "the source cluster was written after the cutover: audit[0] (3 records) past the end "
        "offsets their wave recorded, records this cluster lacks. Nothing was changed"
    )
    assert _clusters_now(failing) == before


def _finish(failing: Failing, failback: mm.Failback, copy_back: CopyBack) -> mm.FailedBack:
    """Finish the failback as finish-failback does: the copy back stops first."""
    return mm.finish_failback(
        failing.writer,
        failing.target,
        failing.config,
        failback,
        units=copy_back.unit_states(),
        quiet_seconds=QUIET,
        prepare=copy_back.stop,
        timeout=30.0,
    )


def _finish_when_settled(
    failing: Failing, failback: mm.Failback, copy_back: CopyBack
) -> mm.FailedBack:
    """Finish it, asking again while the copy back settles (it records its copy every 10 s)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return _finish(failing, failback, copy_back)
        except FailbackRefusedError as refused:
            settling = ("has not yet recorded", "records behind", "is unassigned")
            if not any(why in refused.message for why in settling):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(3)


def _forward_offsets(config: ClientConfig) -> dict[int, list[tuple[int, bytes, int]]]:
    """The migration's Connect offsets of `orders`, by partition: where, its key, its offset."""
    topic = "mm2-offsets.source.internal"
    consumer = Consumer({**config, "group.id": "offsets-reader", "enable.auto.commit": False})
    found: dict[int, list[tuple[int, bytes, int]]] = {}
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        for number in sorted(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, number), 30)
            consumer.assign([TopicPartition(topic, number, low)])
            position = low
            while position < high:
                for message in consumer.consume(500, timeout=2.0):
                    position = (message.offset() or 0) + 1
                    key, value = message.key() or b"null", message.value() or b"null"
                    connector, partition = json.loads(key)
                    ours = (connector, partition.get("cluster"), partition.get("topic"))
                    if ours == ("MirrorSourceConnector", "source", ORDERS):
                        offset = json.loads(value)["offset"]
                        found.setdefault(partition["partition"], []).append((number, key, offset))
    finally:
        consumer.close()
    return found


def test_a_promoted_topic_fails_back_exactly(failing: Failing):
    wave_ends = dict(enumerate(failing.wave.target_end_offsets[ORDERS]))
    old_before = records(failing.old_config, ORDERS)
    app = client_user(failing.new, 31, ORDERS)
    grant_client(failing.new, app, FencedTopics())
    produce(app.config(failing.new), ORDERS, RECORDS, WRITTEN_HERE)
    # billing read part of them on the new cluster.
    consumed = {0: wave_ends[0] + 3000, 1: wave_ends[1] + 1234}
    commit_offsets(failing.new_config, "billing", {(ORDERS, p): o for p, o in consumed.items()})
    written = records(failing.new_config, ORDERS, wave_ends)
    assert sum(map(len, written.values())) == WRITTEN_HERE

    started = time.monotonic()
    failback = mm.start_failback(
        failing.writer, failing.target, failing.config, [failing.wave], ORDERS
    )
    assert failback.target_offsets == {ORDERS: list(wave_ends.values())}
    copy_back = CopyBack.on(failing.new, failing.writer, failing.target, failback, failing.config)
    copy_back.run()
    try:

        def in_sync() -> bool:
            check = mm.failback_report(
                failing.writer, failing.target, failing.config, failback, timeout=30.0
            )
            return check.report.lag == 0 and not [r for r in check.blockers if "behind" in r]

        wait_until(in_sync, timeout=180, interval=3, what="the copy back in sync")
        print(f"\ncopy back in sync {time.monotonic() - started:.0f} s after start-failback")

        # A producer still writing on the new cluster keeps the finish refused.
        live = LiveProducer(app.config(failing.new), ORDERS, written=100_000, batch=20).start()
        try:
            wait_until(lambda: live.written > 100_040, timeout=60, what="the live producer")
            before = _clusters_now(failing)
            with pytest.raises(FailbackRefusedError) as noisy:
                _finish(failing, failback, copy_back)
            print(f"while written: {noisy.value.message[:160]}")
            assert "this cluster is still written: " in noisy.value.message
            assert "records arrived on orders in the last 3 s; stop its producers" in (
                noisy.value.message
            )
            # Nothing was changed: billing's offsets, the topics, the copy back (it copies on).
            after = _clusters_now(failing)
            assert (after["old billing"], after["new billing"]) == (
                before["old billing"],
                before["new billing"],
            )
            assert (after["old topics"], after["new topics"]) == (
                before["old topics"],
                before["new topics"],
            )
        finally:
            live.stop()
        written = records(failing.new_config, ORDERS, wave_ends)
        done = _finish_when_settled(failing, failback, copy_back)
    finally:
        copy_back.stop()
    print(f"finished {time.monotonic() - started:.0f} s after start-failback: {done.finish}")

    # The old cluster holds every record once, in order per partition, by content.
    old_after = records(failing.old_config, ORDERS)
    for number in range(PARTITIONS[ORDERS]):
        assert old_after[number] == old_before[number] + written[number], f"{ORDERS}[{number}]"
    copied = sum(map(len, written.values()))
    assert done.finish.records == copied

    # billing resumes on the old cluster with 0 re-read and 0 skipped, by content.
    [switch] = [s for s in done.switches if s.group == "billing"]
    assert switch.switched and switch.exact, switch.partitions
    resumed = committed(failing.old_config, "billing")
    for number in range(PARTITIONS[ORDERS]):
        there = records(failing.old_config, ORDERS, {number: resumed[(ORDERS, number)]})
        here = records(failing.new_config, ORDERS, {number: consumed[number]})
        assert there[number] == here[number], f"billing on {ORDERS}[{number}]"
    print(f"billing resumes on the old cluster: {switch.re_read} re-read, {switch.skip} skipped")

    # The copy back's topics are gone from the old cluster.
    topics = AdminClient({**failing.old_config, "log_level": 0}).list_topics(timeout=30).topics
    assert not [t for t in topics if t.startswith("mm2-") or "failback" in t], sorted(topics)

    # The migration's MirrorMaker would resume orders after the records copied back: the last
    # record of its offsets topic per partition says so, keyed exactly as Kafka Connect keys it.
    offsets = _forward_offsets(failing.new_config)
    ends = done.finish.source_end_offsets[ORDERS]
    for number in range(PARTITIONS[ORDERS]):
        (where, connect_key, _), *_, seed = offsets[number]
        assert seed == (where, connect_key, ends[number] - 1)
        assert {record[0] for record in offsets[number]} == {where}

    # A producer writes to the old cluster again; relation producers are fenced on the new one.
    assert produce_one(failing.old_config, ORDERS, "after the failback") is None
    grant_client(failing.new, app, FencedTopics(names=frozenset(failback.topics)))
    assert produce_one(app.config(failing.new), ORDERS, "too late") == (
        "TOPIC_AUTHORIZATION_FAILED"
    )
