# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""How long `migration-status` takes, against real clusters, through the library's public API.

For 100 and 1,000 partitions and 20 and 200 consumer groups, and 10,000 partitions with 1,000
groups (the goals: 1,000 partitions and 200 groups in under 3 s, 10,000 and 1,000 in under 5 s), on
real clusters of the local runtime: one ZooKeeper-mode old cluster and one kafka-k8s unit under
Pebble (brokers of 1 GiB heap), both holding the partitions (topics of 50) and the groups (each
with committed offsets on 100 partitions), and on the target Kafka Connect's config and status
topics with MirrorMaker's records. Two measurements per case:

- report: `migration_report`, with fresh clients each run as the action makes them: every
  query against both clusters and the report built from their answers;
- outputs: both outputs of the action, `MigrationReport.results()` and `format_table`.

Usage: `python -m bench status [--repeat N] [--quick] [--partitions P --groups G]` (`--quick`: 2
runs per case unless `--repeat` says otherwise, and not the 10,000-partition case; `--partitions`
and `--groups`: that one case instead of the five, P a multiple of 50). Writes
`bench/results/status-latest.json`, with the process's peak memory (VmHWM) during each case, and
prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import confluent_kafka
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.version import __version__ as kafka_python_version

from bench import RESULTS
from charms.kafka_k8s.v0.mirrormaker import (
    MigrationConfig,
    MigrationReport,
    SourceCluster,
    TargetCluster,
    format_table,
    migration_report,
)
from substrate.old_cluster import OldCluster
from substrate.processes import (
    ClientConfig,
    SubstrateError,
    default_cache,
    remove_tmp,
)
from substrate.units import NewCluster

CASES = [(100, 20), (100, 200), (1_000, 20), (1_000, 200), (10_000, 1_000)]
QUICK_CASES = CASES[:-1]
# (partitions, groups): seconds the whole action may take.
GOALS = {(1_000, 200): 3.0, (10_000, 1_000): 5.0}
# A broker of 256 MiB (the local tier's) stops answering at about 6,500 partitions.
BROKER_HEAP_MB = 1024
TOPIC_PARTITIONS = 50
GROUP_TOPICS = 2
RECORDS_PER_PARTITION = 5
CONNECTORS = {"MirrorSourceConnector": 6, "MirrorCheckpointConnector": 2}
STATUS_HISTORY = 20
CREATE_BATCH = 10
LOAD_ROUNDS = 10


def topic_name(index: int) -> str:
    """The name of the benchmark's topic number `index`."""
    return f"bench-{index:03}"


def group_name(index: int) -> str:
    """The name of the benchmark's group number `index`."""
    return f"group-{index:03}"


def case_config(partitions: int, groups: int) -> MigrationConfig:
    """Options that select `partitions` partitions (whole topics) and `groups` groups."""
    topics = [topic_name(i) for i in range(partitions // TOPIC_PARTITIONS)]
    names = [group_name(i) for i in range(groups)]
    return MigrationConfig(topics=("|".join(topics),), groups=("|".join(names),))


# Timing ------------------------------------------------------------------------------------------


def summary(samples: list[float]) -> dict[str, float]:
    """Median, minimum and maximum of samples, in seconds, rounded to microseconds."""
    return {
        "median": round(statistics.median(samples), 6),
        "min": round(min(samples), 6),
        "max": round(max(samples), 6),
    }


def time_outputs(report: MigrationReport, repeat: int) -> dict:
    """Seconds both outputs of the action take on a report."""
    outputs = []
    for _ in range(repeat):
        began = time.perf_counter()
        report.results()
        format_table(report)
        outputs.append(time.perf_counter() - began)
    return summary(outputs)


# The real clusters -------------------------------------------------------------------------------


def _results(futures: dict[str, Future[Any]], timeout: float = 60) -> None:
    for future in futures.values():
        future.result(timeout=timeout)


def _retry(action: Callable[[], None], what: str, timeout: float = 180) -> None:
    """Retry while a fresh cluster's group coordinator loads."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            action()
            return
        except (KafkaException, TimeoutError) as error:
            if time.monotonic() > deadline:
                raise SubstrateError(f"{what}: {error}") from error
            time.sleep(1)


def _produce(config: ClientConfig, topics: int) -> None:
    """A few records in every partition, each partition's written again until all arrive.

    A broker that has just created thousands of partitions refuses writes to some for a while;
    a partition left empty would change what the report reads.
    """
    producer = Producer({**config, "linger.ms": 50})
    failed: set[tuple[str, int]] = set()

    def delivered(error: object, message: Any) -> None:
        if error is not None:
            failed.add((message.topic(), message.partition()))

    wanted = [(topic_name(t), p) for t in range(topics) for p in range(TOPIC_PARTITIONS)]
    for _ in range(LOAD_ROUNDS):
        for topic, partition in wanted:
            try:
                for record in range(RECORDS_PER_PARTITION):
                    producer.produce(
                        topic, value=f"r{record}", partition=partition, on_delivery=delivered
                    )
            except KafkaException:  # the producer does not know the new topic yet
                failed.add((topic, partition))
            producer.poll(0)
        if producer.flush(120):
            raise SubstrateError("records left unsent")
        if not failed:
            return
        wanted, failed = sorted(failed), set()
        time.sleep(2)
    raise SubstrateError(f"{len(wanted)} partitions refused their records")


def _commit_batch(admin: AdminClient, names: list[str], partitions: list[TopicPartition]) -> None:
    futures: dict[str, Future[Any]] = {}
    for name in names:
        request = ConsumerGroupTopicPartitions(name, partitions)
        futures.update(admin.alter_consumer_group_offsets([request], request_timeout=20))
    _results(futures, timeout=30)


def _commit(admin: AdminClient, groups: int) -> None:
    partitions = [
        TopicPartition(topic_name(t), p, RECORDS_PER_PARTITION)
        for t in range(GROUP_TOPICS)
        for p in range(TOPIC_PARTITIONS)
    ]
    names = [group_name(index) for index in range(groups)]
    for first in range(0, groups, 50):
        batch = names[first : first + 50]
        _retry(lambda batch=batch: _commit_batch(admin, batch, partitions), "committing offsets")


def load(config: ClientConfig, topics: int, groups: int) -> None:
    """Topics of 50 partitions with a few records each, and groups at their end."""
    admin = AdminClient(config)
    # A few topics per request: one broker creating 10,000 partitions at once outlives any
    # request timeout.
    for first in range(0, topics, CREATE_BATCH):
        created = [
            NewTopic(topic_name(i), TOPIC_PARTITIONS, 1)
            for i in range(first, min(first + CREATE_BATCH, topics))
        ]
        _results(admin.create_topics(created, operation_timeout=120), timeout=180)
    _produce(config, topics)
    _commit(admin, groups)


def load_connect_topics(config: ClientConfig) -> None:
    """Kafka Connect's config and status topics as MirrorMaker writes them, with history."""
    admin = AdminClient(config)
    compact = {"cleanup.policy": "compact"}
    _results(
        admin.create_topics(
            [
                NewTopic("mm2-configs.source.internal", 1, 1, config=compact),
                NewTopic("mm2-status.source.internal", 5, 1, config=compact),
            ]
        )
    )
    producer = Producer(config)
    running = json.dumps({"state": "RUNNING", "trace": None, "worker_id": "source->target"})
    for name, tasks in CONNECTORS.items():
        settings = json.dumps({"name": name, "padding": "x" * 4000})
        producer.produce("mm2-configs.source.internal", key=f"connector-{name}", value=settings)
        for task in range(tasks):
            key = f"task-{name}-{task}"
            producer.produce("mm2-configs.source.internal", key=key, value=settings)
        commit = json.dumps({"tasks": tasks})
        producer.produce("mm2-configs.source.internal", key=f"commit-{name}", value=commit)
        for _ in range(STATUS_HISTORY):
            for key in [f"connector-{name}", *(f"task-{name}-{t}" for t in range(tasks))]:
                producer.produce("mm2-status.source.internal", key=f"status-{key}", value=running)
    if producer.flush(60):
        raise SubstrateError("Connect records left unsent")


@dataclass
class Clusters:
    """The benchmark's old and new cluster, loaded."""

    old: OldCluster
    new: NewCluster

    def source(self) -> SourceCluster:
        """The old cluster as the migration reaches it."""
        return SourceCluster(
            name="old",
            bootstrap_servers=tuple(self.old.bootstrap.split(",")),
            username=self.old.admin_username,
            password=self.old.admin_password,
        )

    def target(self) -> TargetCluster:
        """The new cluster as the migration reaches it."""
        return TargetCluster(
            bootstrap_servers=tuple(self.new.bootstrap.split(",")),
            username=self.new.admin_username,
            password=self.new.admin_password,
        )


@contextmanager
def real_clusters(partitions: int, groups: int) -> Iterator[Clusters]:
    """An old and a new cluster on loopback holding the partitions and the groups."""
    base = Path(tempfile.mkdtemp(prefix="kafka-k8s-bench-"))
    try:
        with ExitStack() as stack:
            cache = default_cache()
            old = stack.enter_context(
                OldCluster(base / "old", cache=cache, size=1, heap_mb=BROKER_HEAP_MB)
            )
            new = stack.enter_context(
                NewCluster(base / "new", cache=cache, size=1, heap_mb=BROKER_HEAP_MB)
            )
            for cluster in (old, new):
                load(cluster.admin_config(), partitions // TOPIC_PARTITIONS, groups)
            load_connect_topics(new.admin_config())
            yield Clusters(old, new)
    finally:
        remove_tmp(base)


def time_report(
    clusters: Clusters, config: MigrationConfig, repeat: int
) -> tuple[dict, MigrationReport]:
    """Seconds `migration_report` takes with fresh clients, and its last report."""
    samples, report = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        report = migration_report(clusters.source(), clusters.target(), config)
        samples.append(time.perf_counter() - began)
        if report.problems:
            raise SubstrateError(f"the benchmark's clusters failed: {report.problems}")
    assert report is not None
    return summary(samples), report


# Running -----------------------------------------------------------------------------------------


def measure_real(repeat: int, cases: list[tuple[int, int]]) -> list[dict]:
    """Every case against the real clusters."""
    largest = max(p for p, _ in cases), max(g for _, g in cases)
    measured = []
    with real_clusters(*largest) as clusters:
        for partitions, groups in cases:
            config = case_config(partitions, groups)
            reset_peak_memory()
            timed, report = time_report(clusters, config, repeat)
            seen = sum(topic.partitions for topic in report.topics)
            if (seen, len(report.groups)) != (partitions, groups):
                raise SubstrateError(f"reported {seen} partitions and {len(report.groups)} groups")
            outputs = time_outputs(report, repeat)
            measured.append(
                {
                    "partitions": partitions,
                    "groups": groups,
                    "migration-report": timed,
                    "outputs": outputs,
                    "total-median": round(timed["median"] + outputs["median"], 6),
                    "peak-memory-mib": peak_memory_mib(),
                }
            )
    return measured


def reset_peak_memory() -> None:
    """Start the process's peak resident memory again from what it holds now (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return


def peak_memory_mib() -> float:
    """The benchmark process's peak resident memory, clients and all, in MiB.

    Linux's VmHWM, since the last `reset_peak_memory`; `ru_maxrss` would not do: a child keeps
    its parent's (tox's) across exec.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def print_table(results: dict) -> None:
    """The results as a table on stdout."""
    print("\nmigration-status, real clusters (median of runs; ms)")
    print(
        f"{'PARTITIONS':>10} {'GROUPS':>6} {'REPORT':>9} {'OUTPUTS':>8} {'TOTAL':>9} "
        f"{'PEAK MIB':>9}  GOAL"
    )
    for case in results["real"]:
        goal = ""
        limit = GOALS.get((case["partitions"], case["groups"]))
        if limit is not None:
            goal = "met" if case["total-median"] < limit else "MISSED"
        print(
            f"{case['partitions']:>10,} {case['groups']:>6,} "
            f"{_ms(case['migration-report']['median']):>9} "
            f"{_ms(case['outputs']['median']):>8} {_ms(case['total-median']):>9} "
            f"{case['peak-memory-mib']:>9,.1f}  {goal}"
        )
    if not results["real"]:
        print("(not measured)")
    print(f"peak memory of the benchmark's process: {results['peak-memory-mib']:,} MiB")
    for note in results["notes"]:
        print(f"note: {note}")


def main(argv: list[str]) -> int:
    """Measure, write `bench/results/status-latest.json`, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench status", description=__doc__)
    parser.add_argument("--repeat", type=int, help="runs per case (default 5; --quick: 2)")
    parser.add_argument("--quick", action="store_true", help="fewer runs per case")
    parser.add_argument("--partitions", type=int, help="one case: this many partitions")
    parser.add_argument("--groups", type=int, help="one case: this many groups")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 2 if args.quick else 5
    cases = QUICK_CASES if args.quick else CASES
    if args.partitions is not None or args.groups is not None:
        if args.partitions is None or args.groups is None or args.partitions % TOPIC_PARTITIONS:
            parser.error(f"--partitions (a multiple of {TOPIC_PARTITIONS}) needs --groups")
        cases = [(args.partitions, args.groups)]
    notes = [
        "one old and one new cluster of one broker each, on loopback, on this machine's "
        f"{os.cpu_count()} CPUs, shared with whatever else runs (load average at start "
        f"{os.getloadavg()[0]:.1f})",
    ]
    real: list[dict] = []
    try:
        real = measure_real(args.repeat, cases)
    except SubstrateError as error:
        notes.append(f"the real clusters could not run, nothing measured: {error}")
    results = {
        "benchmark": "status",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "goals": [
            f"{p:,} partitions and {g:,} groups in under {s:.0f} s" for (p, g), s in GOALS.items()
        ],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kafka-python": kafka_python_version,
            "confluent-kafka (loads the clusters)": confluent_kafka.version()[0],
        },
        "repeat": args.repeat,
        "peak-memory-mib": peak_memory_mib(),
        "real": real,
        "notes": notes,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "status-latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwritten to {RESULTS / 'status-latest.json'}")
    return 0
