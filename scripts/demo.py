# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The migration demo on loopback: what `juju run kafka-k8s/leader start-migration` does, for real.

It starts the "old" cluster the migration guide assumes (ZooKeeper-mode Kafka 3.9 with
SASL_PLAINTEXT and SCRAM-SHA-512), loads it with topics, records and consumer groups, and starts
three units of kafka-k8s, each under its own real Pebble daemon, configured by the charm's own
code. Then the migration library renders `mm2.properties` and the `mirrormaker` Pebble layer on
every unit, exactly as in Juju, and the demo shows the copy's progress until both clusters are in
sync. Producers keep writing to the old cluster meanwhile, and an application that moves its
producer to the new cluster too early is refused: the migrated topics are fenced. The cutover
comes in two waves, as `finish-migration` runs them: first `topics=payments`, while the orders
producer still writes to the old cluster (payments' group moves exactly, its producer writes
to the new cluster, MirrorMaker copies the rest on); then, once the source is quiet, everything
left: MirrorMaker stops, every other consumer group moves to the offsets that match its old
ones exactly, and the fence lifts. Everything runs on 127.0.0.1 and is removed at the end.

Run it with `make demo` (or `uv run --all-groups python -m scripts.demo --help`).
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from charms.kafka_k8s.v0.mirrormaker import (
    CutoverRefusedError,
    MigrationConfig,
    MigrationReport,
    Promotion,
    SourceCluster,
    TargetCluster,
    Wave,
    format_table,
    migration_report,
)
from substrate.certificates import CertificateAuthority
from substrate.migration import (
    ClientUser,
    MirrorMakers,
    apply_wave,
    client_user,
    fenced_topics,
    grant_client,
    produce_one,
    promote_when_settled,
    target_cluster,
)
from substrate.old_cluster import OldCluster
from substrate.processes import ClientConfig, default_cache
from substrate.units import NewCluster

# name: (partitions, share of the records, topic configs)
TOPICS: dict[str, tuple[int, float, dict[str, str]]] = {
    "orders": (12, 0.5, {}),
    "payments": (3, 0.15, {}),
    "inventory": (4, 0.15, {"cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"}),
    "clicks": (6, 0.15, {"retention.ms": "86400000"}),
    "audit.log": (1, 0.05, {}),
}
LIVE_TOPIC = "orders"
# Wave 1 promotes it (and moves its group, shipping) while LIVE_TOPIC's producer still writes.
WAVE_TOPIC = "payments"
# group: (topic, how far it has read: the share of each partition)
GROUPS = {"billing": ("orders", 1.0), "shipping": ("payments", 1.0), "analytics": ("clicks", 0.5)}
QUIET_SECONDS = 10


def say(message: str) -> None:
    """Print one step of the demo."""
    print(f"==> {message}", flush=True)


def quiet(config: ClientConfig) -> ClientConfig:
    """A client configuration whose connection notices stay out of the demo's output."""
    return {**config, "log_level": 0}


def produce(config: ClientConfig, topic: str, start: int, count: int) -> None:
    """Write `count` records with keys and values numbered from `start`."""
    producer = Producer(
        {**quiet(config), "acks": "all", "enable.idempotence": True, "linger.ms": 20}
    )
    for index in range(start, start + count):
        while True:
            try:
                producer.produce(topic, key=f"{topic}-{index}", value=f"{topic} record {index}")
                break
            except BufferError:
                producer.poll(0.5)
        producer.poll(0)
    producer.flush(120)


def load(old: OldCluster, records: int) -> int:
    """Create the topics and write the records; commit offsets for three consumer groups."""
    config = old.admin_config()
    admin = AdminClient(quiet(config))
    topics = [
        NewTopic(name, num_partitions=partitions, replication_factor=1, config=configs)
        for name, (partitions, _, configs) in TOPICS.items()
    ]
    for future in admin.create_topics(topics).values():
        future.result(timeout=60)
    written = 0
    for name, (_, share, _) in TOPICS.items():
        count = int(records * share)
        produce(config, name, 0, count)
        written += count
    for group, (topic, share) in GROUPS.items():
        consumer = Consumer({**quiet(config), "group.id": group, "enable.auto.commit": False})
        try:
            read = [
                TopicPartition(
                    topic,
                    p,
                    int(consumer.get_watermark_offsets(TopicPartition(topic, p))[1] * share),
                )
                for p in range(TOPICS[topic][0])
            ]
            consumer.commit(offsets=read, asynchronous=False)  # how far the group has read
        finally:
            consumer.close()
    return written


class LiveTraffic:
    """A producer that keeps writing to the old cluster while the migration runs."""

    def __init__(self, config: ClientConfig, topic: str, start: int):
        self.config, self.topic, self.next = config, topic, start
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.wait(0.5):
            produce(self.config, self.topic, self.next, 100)
            self.next += 100

    def __enter__(self) -> LiveTraffic:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=60)


def progress_line(report: MigrationReport, started: float) -> str:
    """One line: records copied against the total, and the lag of each topic."""
    elapsed = f"[{time.monotonic() - started:5.0f}s]"
    if report.problems:
        return f"{elapsed} {report.problems[0].message}; asking again"
    per_topic = "  ".join(f"{lag.topic}:{lag.lag:,}" for lag in report.topics)
    return (
        f"{elapsed} copied {report.target_records:,}/{report.source_records:,} records  "
        f"lag  {per_topic}"
    )


def watch(
    probe: Callable[[], MigrationReport],
    until: Callable[[MigrationReport], bool],
    timeout: float,
) -> MigrationReport:
    """Print progress in place until `until` holds or the time is up."""
    started = time.monotonic()
    in_place = sys.stdout.isatty()
    report = probe()
    while not until(report) and time.monotonic() - started < timeout:
        line = progress_line(report, started)
        print(f"\r\033[K{line}" if in_place else line, end="" if in_place else "\n", flush=True)
        time.sleep(2 if in_place else 5)
        report = probe()
    print(("\r\033[K" if in_place else "") + progress_line(report, started), flush=True)
    return report


def copied(report: MigrationReport) -> bool:
    """Whether the target holds every record of every topic."""
    return bool(report.topics) and not report.problems and report.lag == 0


def verdict(report: MigrationReport) -> None:
    """Print the report as `migration-status format=table` does, and the cutover verdict."""
    print()
    print(format_table(report))
    print()
    if report.ready_for_cutover:
        print("VERDICT: in sync, ready for cutover. Every record a consumer of the old cluster")
        print(f"reads is on the new one, and the old one took no write for {QUIET_SECONDS} s.")
    else:
        print("VERDICT: NOT ready for cutover yet:")
        for reason in report.reasons:
            print(f"  - {reason}")


def groups_table(switches: list) -> str:
    """Every group after the switch: what its consumers re-read and skip, and MirrorMaker's."""
    rows = [("GROUP", "TOPIC", "RE-READ", "SKIPPED", "EXACT", "MIRRORMAKER'S OFFSETS: RE-READ")]
    for switch in switches:
        mirrormaker = switch.mirrormaker_re_read
        rows.append(
            (
                switch.group,
                ",".join(sorted({p.topic for p in switch.partitions})),
                f"{switch.re_read:,}",
                f"{switch.skip:,}",
                "yes" if switch.exact else "no",
                "no offsets" if mirrormaker is None else f"{mirrormaker:,}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def switch_over_tls(new: NewCluster, topic: str) -> None:
    """What a switched client does from outside Kubernetes: read over SASL_SSL, trusting the CA."""
    config = new.client_config(new.admin_username, new.admin_password, external=True)
    consumer = Consumer({**quiet(config), "group.id": "demo-tls", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    read, deadline = 0, time.monotonic() + 60
    try:
        while read < 1000 and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            read += message is not None and not message.error()
    finally:
        consumer.close()
    say(f"a client outside Kubernetes read {read} records of {topic} over SASL_SSL from")
    say(f"{new.external_bootstrap}, verifying the certificates against the CA")


def run(records: int, timeout: float, keep: bool, lag_threshold: int, tls: bool) -> bool:
    """The whole demo; returns whether the cutover happened and skipped no record."""
    cache = default_cache()
    with tempfile.TemporaryDirectory(prefix="kafka-k8s-demo-") as tmp:
        say("starting the old cluster: ZooKeeper + 1 Kafka 3.9 broker, SASL_PLAINTEXT/SCRAM")
        with OldCluster(tmp=Path(tmp) / "old", cache=cache, size=1) as old:
            say(f"old cluster at {old.bootstrap}, user {old.admin_username}")
            written = load(old, records)
            say(f"loaded {written:,} records into {len(TOPICS)} topics, {len(GROUPS)} groups")
            say("starting 3 kafka-k8s units (KRaft), each under its own Pebble daemon")
            ca = CertificateAuthority() if tls else None
            with NewCluster(
                tmp=Path(tmp) / "new", cache=cache, size=3, ca=ca, external=tls
            ) as new:
                say(f"new cluster at {new.bootstrap}" + (" (SASL_SSL)" if tls else ""))
                in_sync = migrate(old, new, timeout, keep, lag_threshold)
                if tls and in_sync:
                    switch_over_tls(new, LIVE_TOPIC)
                return in_sync


def promote_wave(
    source: SourceCluster,
    target: TargetCluster,
    config: MigrationConfig,
    topics: str | None,
    waves: list[Wave],
    **kwargs: Any,
) -> Promotion | None:
    """finish-migration (topics=... for a wave): the promotion, or None if it was refused."""
    try:
        promotion = promote_when_settled(
            source, target, config, topics, waves=waves, quiet_seconds=QUIET_SECONDS, **kwargs
        )
    except CutoverRefusedError as refused:
        say(f"finish-migration refused: {refused.message}")
        return None
    waves.append(promotion.wave)
    return promotion


def write_after_the_wave(new: NewCluster, user: ClientUser, topic: str) -> str | None:
    """The application's producer on the new cluster; None once it is accepted."""
    accepted = produce_one(user.config(new), topic, "after the cutover")
    # Each broker applies the new ACLs from the metadata log in its own moment.
    deadline = time.monotonic() + 30
    while accepted is not None and time.monotonic() < deadline:
        time.sleep(1)
        accepted = produce_one(user.config(new), topic, "after the cutover")
    return accepted


def migrate(
    old: OldCluster, new: NewCluster, timeout: float, keep: bool, lag_threshold: int
) -> bool:
    """Run MirrorMaker on every unit through the library; watch; cut over in two waves."""
    source = SourceCluster(
        name="old",
        bootstrap_servers=tuple(old.bootstrap.split(",")),
        username=old.admin_username,
        password=old.admin_password,
    )
    target = target_cluster(new)
    config = MigrationConfig.from_options({"mirrormaker-refresh-interval": 10})
    nodes = MirrorMakers.on(new, source, target, config)
    nodes.run()
    say("start-migration: every unit runs one MirrorMaker process (Pebble service mirrormaker)")
    early = client_user(new, 7, LIVE_TOPIC)
    mover = client_user(new, 8, WAVE_TOPIC)
    for user in (early, mover):
        grant_client(new, user, fenced_topics(config, TOPICS))
    waves: list[Wave] = []

    def probe() -> MigrationReport:
        promoted = frozenset(topic for wave in waves for topic in wave.topics)
        remaining = config.model_copy(update={"promoted": promoted})
        return migration_report(source, target, remaining, lag_threshold=lag_threshold)

    with LiveTraffic(old.admin_config(), LIVE_TOPIC, start=10**9):
        say("copying; producers keep writing to the old cluster")
        watch(probe, copied, timeout)
        refused = produce_one(early.config(new), LIVE_TOPIC, "too early")
        say(
            f"the migrated topics are fenced: an application that moves its {LIVE_TOPIC} producer"
            f" to the new cluster now is refused ({refused}); reading is allowed"
        )
        say(
            f"finish-migration topics={WAVE_TOPIC}: wave 1, while {LIVE_TOPIC}'s producer still "
            f"writes to the old cluster ({WAVE_TOPIC} must take no write for {QUIET_SECONDS} s)"
        )
        first = promote_wave(source, target, config, WAVE_TOPIC, waves)
        if first is None:
            nodes.stop()
            return False
        nodes = apply_wave(nodes, waves)
        grant_client(new, mover, fenced_topics(config, TOPICS, waves))
        print()
        print(groups_table(first.switches))
        print()
        moved = write_after_the_wave(new, mover, WAVE_TOPIC)
        say(
            f"wave 1 promoted {WAVE_TOPIC}: its groups resume on the new cluster exactly, its "
            + (
                "producer writes there now"
                if moved is None
                else f"producer is still refused ({moved})"
            )
            + f"; MirrorMaker copies the {len(first.remaining)} other topics on, never "
            f"{WAVE_TOPIC} again"
        )
    say("producers stopped; waiting for the last records (the wave restarted MirrorMaker)")
    # A restarted node's tasks wait up to a minute (scheduled.rebalance.max.delay.ms) for it.
    watch(probe, lambda report: report.ready_for_cutover, 150)
    say(f"migration-status: checking that the old cluster takes no write for {QUIET_SECONDS} s")
    promoted = frozenset(topic for wave in waves for topic in wave.topics)
    report = migration_report(
        source,
        target,
        config.model_copy(update={"promoted": promoted}),
        lag_threshold=lag_threshold,
        quiet_seconds=QUIET_SECONDS,
    )
    verdict(report)
    if keep:
        print(f"\nold cluster: {old.bootstrap}  new cluster: {new.bootstrap}")
        print(f"new cluster admin: admin / {new.admin_password}")
        print("press Ctrl-C to stop and clean up")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    if not report.ready_for_cutover:
        say("stop-migration: stopping MirrorMaker on every unit")
        nodes.stop()
        return False
    say("finish-migration: the last wave; MirrorMaker stops on every unit; every group moves")
    stopping = nodes
    last = promote_wave(source, target, config, None, waves, prepare=lambda final: stopping.stop())
    if last is None:
        nodes.stop()
        return False
    grant_client(new, early, set())
    print()
    print(groups_table(last.switches))
    print()
    accepted = write_after_the_wave(new, early, LIVE_TOPIC)
    say(
        "the fence is lifted: the early producer writes to the new cluster"
        if accepted is None
        else f"the early producer is still refused: {accepted}"
    )
    switches = [*first.switches, *last.switches]
    exact = all(switch.exact for switch in switches if switch.switched)
    say(
        f"cutover done in {len(waves)} waves: every group resumes on the new cluster right after "
        "the records it read on the old one"
        if exact
        else "cutover done; some partitions were not matched exactly (see the tables)"
    )
    return accepted is None and moved is None and not any(switch.skip for switch in switches)


def main() -> int:
    """Parse the options and run the demo."""
    faulthandler.enable()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="records to migrate")
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds to wait for the copy to catch up"
    )
    parser.add_argument(
        "--lag-threshold",
        type=int,
        default=0,
        help="records a topic may lag and still be ready for cutover",
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave both clusters running until Ctrl-C"
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="the new cluster serves SASL_SSL (a test CA's certificates) and external listeners",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    in_sync = run(args.records, args.timeout, args.keep, args.lag_threshold, args.tls)
    return 0 if in_sync else 1


if __name__ == "__main__":
    sys.exit(main())
