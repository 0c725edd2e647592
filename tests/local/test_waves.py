# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
r"""Issue 23 end to end: a gate that sees transactions, a fence that holds, a cutover in waves.

One migration for the module, from the ZooKeeper-mode old cluster (read by a user that may only
read and describe) onto one unit, by a real MirrorMaker node that the library's own
`MirrorMakerService` runs under real Pebble. It copies `pay.eu`, `pay.us`, `ship` and
`ledger`. The tests run in file order:

- a producer holds a transaction open on `ledger` across the quiet check: the verdict is not
  "ready", the wave of `ledger` is refused naming the partition and the transactional id; once
  it commits, the records arrive and the verdict clears;
- the source user loses DESCRIBE on `ship` and `ledger`: the fence, grown from what the units
  saw, still refuses a relation producer on `ship`, and the report says why the topics are not
  seen;
- two waves, as `finish-migration topics='pay\..*'` and then `finish-migration` run them
  (`promote`, then what the charm does once a wave is recorded: `apply_wave` and the fence
  lifted): wave 1 while `ship`'s producer still writes to the old cluster and MirrorMaker
  still copies it; the `pay.eu` producer then writes to the new cluster at once, and nothing
  MirrorMaker does lands in `pay.*` any more; every group resumes with 0 records re-read and
  0 skipped, by content, the one that read both waves' topics at the second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourceType,
)

from charms.kafka_k8s.v0.mirrormaker import (
    CutoverRefusedError,
    MigrationConfig,
    MigrationReport,
    Promotion,
    Wave,
    format_table,
    migration_report,
    promote,
)
from substrate.migration import (
    LiveProducer,
    MirrorMakers,
    apply_wave,
    client_user,
    commit_offsets,
    end_offsets,
    fenced_topics,
    grant_client,
    produce,
    produce_one,
    promote_when_settled,
    records,
    source_cluster,
    source_user,
    target_cluster,
    topic_acl,
    wait_copied,
)
from substrate.old_cluster import OldCluster
from substrate.processes import ClientConfig, wait_until
from substrate.units import NewCluster

# One unit: waves and the gate are about what MirrorMaker copies, one node shows it.
UNITS = 1
PAY_EU, PAY_US, SHIP, LEDGER = "pay.eu", "pay.us", "ship", "ledger"
PARTITIONS = {PAY_EU: 2, PAY_US: 1, SHIP: 2, LEDGER: 1}
RECORDS = 300
REFRESH = 5
QUIET = 3.0
HELD = 20  # records of the transaction held open


@dataclass
class Waves:
    """The module's migration and what its tests learn of it."""

    new: NewCluster
    nodes: MirrorMakers
    config: MigrationConfig
    old_config: ClientConfig
    new_config: ClientConfig
    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTITIONS, RECORDS))
    waves: list[Wave] = field(default_factory=list)

    @property
    def source(self):
        return self.nodes.settings[0].source

    @property
    def target(self):
        return self.nodes.settings[0].target

    def report(self, quiet_seconds: float = 0, fenced: tuple[str, ...] = ()) -> MigrationReport:
        config = self.config.model_copy(
            update={"promoted": frozenset(t for w in self.waves for t in w.topics)}
        )
        return migration_report(
            self.source,
            self.target,
            config,
            units=self.nodes.unit_states(),
            quiet_seconds=quiet_seconds,
            fenced=fenced,
        )

    def wait_for(
        self,
        condition: Callable[[MigrationReport], bool],
        what: str,
        fenced: tuple[str, ...] = (),
    ) -> MigrationReport:
        deadline = time.monotonic() + 120
        report = self.report(fenced=fenced)
        while not condition(report):
            if time.monotonic() > deadline:
                pytest.fail(f"no report {what}; last:\n{format_table(report)}")
            time.sleep(2)
            report = self.report(fenced=fenced)
        return report

    def promote(self, topics: str | None, **kwargs: Any) -> Promotion:
        """Promote a wave as finish-migration does (once MirrorMaker recorded its copy)."""
        promotion = promote_when_settled(
            self.source,
            self.target,
            self.config,
            topics,
            waves=self.waves,
            units=self.nodes.unit_states(),
            quiet_seconds=QUIET,
            **kwargs,
        )
        self.waves.append(promotion.wave)
        return promotion


def _acls(config: ClientConfig, create: list | None = None, delete: list | None = None) -> None:
    admin = AdminClient({**config, "log_level": 0})
    if create:
        for future in admin.create_acls(create).values():
            future.result(timeout=30)
    if delete:
        for future in admin.delete_acls(delete).values():
            future.result(timeout=30)


@pytest.fixture(scope="module")
def waves(old_cluster: OldCluster, new_cluster: NewCluster) -> Iterator[Waves]:
    """Four topics on the source with 300 records each, MirrorMaker copying them."""
    old_config = old_cluster.admin_config()
    source_user(old_cluster)
    # To name open transactions the source user may describe transactional ids.
    _acls(
        old_config,
        create=[
            topic_acl(
                AclBinding,
                "*",
                AclOperation.DESCRIBE,
                AclPermissionType.ALLOW,
                ResourceType.TRANSACTIONAL_ID,
            )
        ],
    )
    admin = AdminClient({**old_config, "log_level": 0})
    created = admin.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in PARTITIONS.items()]
    )
    for future in created.values():
        future.result(timeout=60)
    for topic in PARTITIONS:
        produce(old_config, topic, 0, RECORDS)
    config = MigrationConfig.from_options(
        {
            "mirrormaker-topics": rf"pay\..*,{SHIP},{LEDGER}",
            "mirrormaker-refresh-interval": REFRESH,
            "mirrormaker-tasks-max": 2,
        }
    )
    nodes = MirrorMakers.on(
        new_cluster, source_cluster(old_cluster), target_cluster(new_cluster), config
    )
    nodes.run()
    state = Waves(new_cluster, nodes, config, old_config, new_cluster.admin_config())
    try:
        wait_copied(old_config, state.new_config, list(PARTITIONS), timeout=300)
        yield state
    finally:
        state.nodes.stop()


def _open_transaction(config: ClientConfig) -> Producer:
    """A producer that wrote `HELD` records to `ledger` inside a transaction it keeps open.

    Right after it starts, the old broker once answered the first transaction's calls with
    INVALID_TXN_STATE: asked again.
    """
    deadline = time.monotonic() + 120
    while True:
        producer = Producer({**config, "transactional.id": "ledger-writer", "log_level": 0})
        try:
            producer.init_transactions(30)
            producer.begin_transaction()
            for index in range(HELD):
                producer.produce(LEDGER, key=f"held-{index}", value="in a transaction")
            producer.flush(30)
            return producer
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def test_an_open_transaction_holds_up_the_cutover_until_it_commits(waves: Waves):
    producer = _open_transaction(waves.old_config)
    held = waves.report(quiet_seconds=QUIET)
    print(f"\nwhile a transaction is open on {LEDGER}:\n{format_table(held)}")
    assert not held.ready_for_cutover
    [reason] = [r for r in held.reasons if r.startswith(f"{LEDGER}[0]: ")]
    assert reason.startswith(
        f"{LEDGER}[0]: an open transaction holds {HELD} records that consumers cannot read yet "
        "(transactional id ledger-writer, producer id "
    )
    with pytest.raises(CutoverRefusedError) as refused:
        promote(waves.source, waves.target, waves.config, LEDGER, quiet_seconds=QUIET)
    assert f"{LEDGER}[0]: an open transaction holds {HELD} records" in refused.value.message

    producer.commit_transaction(30)
    wait_copied(waves.old_config, waves.new_config, [LEDGER], timeout=120)
    ready = waves.wait_for(
        lambda report: not report.open_transactions and report.ready_for_cutover,
        "ready once the transaction committed",
    )
    quiet = waves.report(quiet_seconds=QUIET)
    print(f"\nonce it committed:\n{format_table(quiet)}")
    assert ready.ready_for_cutover
    assert not [r for r in quiet.reasons if "transaction" in r]


def test_the_fence_holds_while_the_source_hides_the_migrated_topics(waves: Waves):
    seen = {topic.topic for topic in waves.report().topics}
    assert seen == set(PARTITIONS)
    user = client_user(waves.new, 21, SHIP)
    hide = [
        topic_acl(AclBinding, topic, AclOperation.DESCRIBE, AclPermissionType.DENY)
        for topic in (SHIP, LEDGER)
    ]
    _acls(waves.old_config, create=hide)
    try:
        hidden = waves.wait_for(
            lambda report: {t.topic for t in report.topics} == {PAY_EU, PAY_US},
            f"without {SHIP} and {LEDGER}",
        )
        # The units publish what they saw and what their peers did: the fence only grows.
        union = seen | {topic.topic for topic in hidden.topics}
        fence = fenced_topics(waves.config, union)
        grant_client(waves.new, user, fence)
        assert produce_one(user.config(waves.new), SHIP, "too early") == (
            "TOPIC_AUTHORIZATION_FAILED"
        )
        report = waves.report(fenced=tuple(fence.known()))
        print(f"\nwhile the source hides {SHIP} and {LEDGER}:\n{format_table(report)}")
        why = (
            f"the source does not show {LEDGER}, {SHIP} any more: its user may have lost "
            "DESCRIBE on them, or they were deleted there; they stay fenced until finish-migration"
        )
        assert why in report.reasons
        # The status names the first reason: once MirrorMaker's tasks settled after the topics
        # vanished (a task may be unassigned for a moment), it is the hidden topics.
        waves.wait_for(
            lambda r: r.summary()[1].startswith(
                f"migrating from old: 2 topics, lag 0 records; the source does not show {LEDGER}"
            ),
            "whose status names the hidden topics",
            fenced=tuple(fence.known()),
        )
    finally:
        _acls(
            waves.old_config,
            delete=[
                topic_acl(AclBindingFilter, t, AclOperation.DESCRIBE, AclPermissionType.DENY)
                for t in (SHIP, LEDGER)
            ],
        )
    waves.wait_for(lambda r: {t.topic for t in r.topics} == set(PARTITIONS), "with every topic")


def _write_as(config: ClientConfig, topic: str, values: list[str]) -> None:
    """Write records with these values, record i to partition i % partitions; all must land."""
    errors: list[str] = []
    producer = Producer({**config, "acks": "all", "log_level": 0})
    for index, value in enumerate(values):
        producer.produce(
            topic,
            key=value,
            value=value,
            partition=index % PARTITIONS[topic],
            on_delivery=lambda error, _: errors.append(str(error)) if error else None,
        )
    assert producer.flush(30) == 0
    assert errors == []


def _judge(
    source: list[bytes], committed: int, end: int, target: list[bytes], after: list[bytes]
) -> tuple[int, int]:
    """What a consumer of the target reads from its switched offset, by content.

    `source` is the partition on the source, `target` the target's from the switched offset;
    the consumer should read the source's records from `committed` up to `end` (the wave's end)
    and then `after` (written to the target since). Returns (re-read, skipped).
    """
    before = set(source[:committed])
    wanted = [*source[committed:end], *after]
    read = set(target)
    return sum(1 for item in target if item in before), sum(1 for w in wanted if w not in read)


def _check_switched(
    waves: Waves, promotion: Promotion, group: str, after: dict[tuple[str, int], list[bytes]]
) -> int:
    """Assert the group moved exactly, by content; the partitions checked."""
    [switch] = [s for s in promotion.switches if s.group == group]
    assert switch.switched and switch.exact, switch.note or switch.partitions
    ends = {
        (topic, number): end
        for wave in waves.waves
        for topic, partition_ends in wave.source_end_offsets.items()
        for number, end in enumerate(partition_ends)
    }
    for part in switch.partitions:
        key = (part.topic, part.partition)
        assert part.target_offset is not None
        source = records(waves.old_config, part.topic)[part.partition]
        target = records(waves.new_config, part.topic, {part.partition: part.target_offset})
        re_read, skipped = _judge(
            source,
            part.source_committed,
            ends[key],
            target[part.partition],
            after.get(key, []),
        )
        assert (re_read, skipped) == (0, 0), f"{group} {key}: {re_read} re-read, {skipped} skipped"
    return len(switch.partitions)


def test_two_waves(waves: Waves):
    early = client_user(waves.new, 22, PAY_EU)
    fence = fenced_topics(waves.config, PARTITIONS)
    grant_client(waves.new, early, fence)
    assert produce_one(early.config(waves.new), PAY_EU, "too early") == (
        "TOPIC_AUTHORIZATION_FAILED"
    )
    pay = LiveProducer(waves.old_config, PAY_EU, written=RECORDS, batch=20).start()
    ship = LiveProducer(waves.old_config, SHIP, written=RECORDS, batch=20).start()
    try:
        wait_until(lambda: pay.written > RECORDS + 200, timeout=60, what="the pay.eu producer")
        pay.stop()
        wait_copied(waves.old_config, waves.new_config, [PAY_EU, PAY_US], timeout=180)
        ends = end_offsets(waves.old_config, [PAY_EU, PAY_US, SHIP])
        half = {(t, p): e // 2 for t, es in ends.items() for p, e in enumerate(es)}
        commit_offsets(
            waves.old_config,
            "pay-readers",
            {k: v for k, v in half.items() if k[0] in (PAY_EU, PAY_US)},
        )
        commit_offsets(waves.old_config, "audit", {(PAY_EU, 0): 77, (SHIP, 1): 55})

        # Wave 1: the pay topics, while ship's producer writes to the old cluster.
        first = waves.promote(r"pay\..*")
        print(f"\nwave 1: {first.wave.summary()}; left: {first.wave.left}")
        assert first.wave.topics == [PAY_EU, PAY_US]
        assert first.remaining == [LEDGER, SHIP]
        assert first.wave.left == ["audit"]
        assert ship.written > RECORDS  # it wrote all along
        waves.nodes = apply_wave(waves.nodes, waves.waves)
        grant_client(waves.new, early, fenced_topics(waves.config, PARTITIONS, waves.waves))
        written = [f"written on the new cluster {index}" for index in range(40)]
        _write_as(early.config(waves.new), PAY_EU, written)
        produce(waves.old_config, PAY_EU, pay.written, 5)  # a straggler on the old cluster
        copied = sum(end_offsets(waves.new_config, [SHIP])[SHIP])
        wait_until(
            lambda: sum(end_offsets(waves.new_config, [SHIP])[SHIP]) > copied + 100,
            timeout=120,
            what=f"MirrorMaker copying {SHIP} after the wave",
        )
    finally:
        pay.stop()
        waves.written[SHIP] = ship.stop()

    after = {
        (PAY_EU, number): [f"{v}|{v}".encode() for v in written[number::2]]
        for number in range(PARTITIONS[PAY_EU])
    }
    # Nothing MirrorMaker did lands in a promoted topic: after the wave's end offsets, pay.eu
    # holds what its producer wrote on the new cluster, in order, and nothing else.
    time.sleep(REFRESH)
    wave_ends = first.wave.target_end_offsets[PAY_EU]
    since = dict(enumerate(wave_ends))
    assert records(waves.new_config, PAY_EU, since) == {
        number: after[(PAY_EU, number)] for number in range(PARTITIONS[PAY_EU])
    }
    checked = _check_switched(waves, first, "pay-readers", after)

    # Wave 2, the last: everything left, once ship's producer stopped.
    wait_copied(waves.old_config, waves.new_config, [SHIP], timeout=180)
    commit_offsets(waves.old_config, "ship-readers", {(SHIP, 0): 100, (SHIP, 1): 150})
    last = waves.promote(None, prepare=lambda final: waves.nodes.stop() if final else None)
    print(f"\nwave 2: {last.wave.summary()}")
    assert last.final
    assert last.wave.topics == [LEDGER, SHIP]
    assert {s.group for s in last.switches if s.switched} == {"audit", "ship-readers"}
    checked += _check_switched(waves, last, "ship-readers", after)
    checked += _check_switched(waves, last, "audit", after)
    print(f"{checked} group partitions resume exactly: 0 re-read, 0 skipped (by content)")
