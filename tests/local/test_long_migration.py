# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""A weeks-long migration on real Kafka: its preflight, and a refresh of the charm mid-copy.

One old cluster (one ZooKeeper-mode broker) and three units. The source holds `inventory`, whose
records may be 2 MiB (`max.message.bytes`) and one of which is 1.5 MiB, `orders`, `events` (a
producer writes it throughout) and `orders.eu`, whose copy this cluster cannot create: it has a
topic `orders_eu` of its own. The tests run in file order against one migration:

1. the dry run's preflight (the library's, as `start-migration dry-run=true` runs it) names the
   record MirrorMaker's default producer could not send, and the copy this cluster cannot hold;
2. the operator excludes `orders.eu` and starts: the preflight's settings copy the large record;
3. the charm is refreshed mid-copy: while the producer writes, each unit, the highest first, has
   its pod replaced and runs a newer revision of the charm's code (a copy of src/ and lib/ with a
   higher LIBPATCH, `substrate.refresh`); the next unit goes only once the charm's own gate
   (`refresh.next_unit_may_refresh`, what the charm tells charm-refresh) says this one is
   healthy again. Every record arrives, no record is copied from scratch again, and a client of
   this cluster fenced from the migrated topics is refused throughout.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from admin import AdminError
from charms.kafka_k8s.v0.mirrormaker import MigrationConfig, MirrorMakerSettings, _preflight
from refresh import next_unit_may_refresh
from rolling import admin_client
from substrate.migration import (
    LiveProducer,
    MirrorMakers,
    client_user,
    grant_client,
    produce,
    produce_one,
    records,
    source_cluster,
    source_user,
    target_cluster,
    wait_copied,
)
from substrate.old_cluster import OldCluster
from substrate.processes import wait_until
from substrate.refresh import new_revision, replace_unit
from substrate.units import NewCluster

LARGE = 1_500_000
LIMIT = 2 * 1024 * 1024
REFRESH = 10
COPIED = ["inventory", "orders", "events"]


def _create(config: dict, topics: list[NewTopic]) -> None:
    admin = AdminClient(config)  # kept until the futures are done: its end cancels them
    for future in admin.create_topics(topics).values():
        future.result(timeout=60)


def _write_inventory(config: dict) -> None:
    """100 small records and, among them, one of 1.5 MiB."""
    producer = Producer({**config, "acks": "all", "message.max.bytes": LIMIT + 4096})
    for index in range(100):
        value = b"x" * LARGE if index == 50 else f"item {index}".encode()
        producer.produce("inventory", key=f"item-{index}", value=value)
    assert producer.flush(60) == 0


@dataclass
class Migration:
    """The module's clusters, its migration's settings and nodes, and its live producer."""

    old: OldCluster
    new: NewCluster
    config: MigrationConfig
    nodes: MirrorMakers | None = None
    live: LiveProducer | None = None
    preflight: _preflight.Preflight | None = None
    written: dict[str, int] = field(default_factory=dict)

    def settings(self, config: MigrationConfig | None = None) -> MirrorMakerSettings:
        makers = MirrorMakers.on(
            self.new, source_cluster(self.old), target_cluster(self.new), config or self.config
        )
        return makers.settings[0]


@pytest.fixture(scope="module")
def migration(old_cluster: OldCluster, new_cluster: NewCluster) -> Iterator[Migration]:
    source_user(old_cluster)
    _create(
        old_cluster.admin_config(),
        [
            NewTopic("inventory", 2, 1, config={"max.message.bytes": str(LIMIT)}),
            NewTopic("orders", 3, 1),
            NewTopic("orders.eu", 1, 1),
            NewTopic("events", 3, 1),
        ],
    )
    _create(new_cluster.admin_config(), [NewTopic("orders_eu", 1, 3)])
    _write_inventory(old_cluster.admin_config())
    produce(old_cluster.admin_config(), "orders", 0, 2000)
    config = MigrationConfig.from_options(
        {
            "mirrormaker-refresh-interval": REFRESH,
            "mirrormaker-topics": "inventory,orders.*,events",
        }
    )
    run = Migration(old_cluster, new_cluster, config)
    try:
        yield run
    finally:
        if run.live is not None:
            run.live.stop()
        if run.nodes is not None:
            run.nodes.stop()


def test_the_dry_run_names_the_large_record_and_the_copy_this_cluster_cannot_hold(
    migration: Migration,
):
    found, results = _preflight.preflight(migration.settings())

    lines = json.loads(str(results["preflight"]))  # as the action shows them, blockers first
    print("\n" + "\n".join(lines))
    assert lines[0] == (
        "blocks: topic orders.eu: this cluster cannot create its copy orders.eu, which collides "
        "with its topic orders_eu (Kafka takes '.' and '_' alike in topic names): rename or "
        "delete orders_eu here, or exclude orders.eu with mirrormaker-topics-exclude"
    )
    assert (
        "sets: topic inventory accepts records up to 2.0 MiB: MirrorMaker's producer sends up "
        f"to max.request.size={LIMIT}"
    ) in lines
    assert found.record_bytes == LIMIT
    assert results["preflight-blockers"] == "1"
    assert results["topics"] == "events, inventory, orders, orders.eu"


def test_excluding_what_it_blocks_starts_and_the_large_record_copies(migration: Migration):
    migration.config = migration.config.model_copy(
        update={"topics_exclude": (*migration.config.topics_exclude, r"orders\.eu")}
    )
    found, _ = _preflight.preflight(migration.settings())
    assert found.blockers == []
    _preflight.prepare(migration.settings(), found)
    migration.preflight = found
    nodes = MirrorMakers.on(
        migration.new,
        source_cluster(migration.old),
        target_cluster(migration.new),
        migration.config,
    )
    nodes.settings = [
        s.model_copy(update={"record_bytes": found.record_bytes}) for s in nodes.settings
    ]
    migration.nodes = nodes
    nodes.run()
    # 200 records a second: enough to see none lost, few enough to compare quickly.
    migration.live = LiveProducer(migration.old.admin_config(), "events", pause=1.0).start()

    wait_copied(migration.old.admin_config(), migration.new.admin_config(), ["inventory"])

    copied = records(migration.new.admin_config(), "inventory")
    assert max(len(record) for partition in copied.values() for record in partition) > LARGE


def test_a_refresh_mid_copy_rolls_one_unit_at_a_time_keeps_the_fence_and_loses_nothing(
    migration: Migration,
):
    new, nodes = migration.new, migration.nodes
    assert nodes is not None and migration.live is not None
    fenced = client_user(new, 61, "orders")
    grant_client(new, fenced, {"orders", "events", "inventory"})
    refused: list[str | None] = []
    stop = threading.Event()

    def write_fenced() -> None:
        attempt = 0
        while not stop.is_set():
            refused.append(produce_one(fenced.config(new), "orders", f"fenced-{attempt}"))
            attempt += 1
            time.sleep(2)

    writer = threading.Thread(target=write_fenced, daemon=True)
    writer.start()
    with tempfile.TemporaryDirectory(prefix="revision-") as directory:
        libpatch = new_revision(Path(directory))
        admin = admin_client(new.internal_bootstrap, new.credentials)
        try:
            for unit in reversed(new.units):  # charm-refresh's order: the highest unit first
                index = new.units.index(unit)
                started = time.monotonic()
                report = replace_unit(
                    new, unit, Path(directory), nodes.settings[index].model_dump_json()
                )
                assert report["libpatch"] == libpatch
                assert str(report["code"]).startswith(directory)
                service = nodes.services[index]
                service.container = unit.container  # the new pod's Pebble

                def healthy(unit_index: int = unit.index, service=service) -> bool:
                    try:
                        health = admin.cluster_health()
                    except AdminError:
                        return False
                    waiting = next_unit_may_refresh(
                        health, unit_index, mirrormaker=service.state()
                    )
                    return waiting is None

                wait_until(healthy, timeout=300, interval=2, what=f"unit {unit.index} healthy")
                print(f"\nunit {unit.index} refreshed in {time.monotonic() - started:.1f} s")
        finally:
            admin.close()
            stop.set()
            writer.join(timeout=30)
    written = migration.live.stop()

    duplicates = wait_copied(migration.old.admin_config(), new.admin_config(), COPIED)

    total = sum(
        len(items)
        for topic in COPIED
        for items in records(migration.old.admin_config(), topic).values()
    )
    print(
        f"\n{written} records written to events while copying, the roll included; "
        f"{total} copied, {duplicates} twice"
    )
    assert duplicates < total  # the copy resumed from its offsets, not from the start
    assert refused and all(error is not None for error in refused), refused
    on_target = records(new.admin_config(), "orders")
    assert not [r for p in on_target.values() for r in p if b"|fenced-" in r]
    wait_until(
        lambda: all(s.state() == "active" for s in nodes.services),
        timeout=60,
        what="MirrorMaker on every refreshed unit",
    )
