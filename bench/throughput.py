# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""How fast a migration moves data: MirrorMaker 2 with the guide's config and the charm's.

On the local tier (real Kafka, ZooKeeper, Pebble, loopback only), in one run:

1. load: the old cluster (ZooKeeper mode, one broker) gets N records of a fixed size in one topic
   of 12 partitions, written by Kafka's own `ProducerPerformance` (about 1 GiB; `--quick`
   about 100 MiB).
2. limits: the old cluster's raw read rate (`ConsumerPerformance`), the raw write rate into a
   fresh 3-unit new cluster (`ProducerPerformance`, same record size, `acks=all`, RF 3), and the
   copy limit: both at the same time, the producer with the settings the library gives
   MirrorMaker's (idempotence, lz4, its batching), into another fresh 3-unit cluster; the lower
   of the two rates is what one copy can reach on this machine.
3. migrations: the same data copied by MirrorMaker 2 on 1 and on 3 units of a fresh kafka-k8s
   cluster for each run, with the guide's `mm2.properties` (`bench/seed_mm2.properties`, changed
   only in addresses, credentials and replication factors) and with the properties the charm's
   library renders by default (`MigrationConfig()`). Both run as the unit's Pebble service
   `mirrormaker` with the same environment (heap cap, JMX exporter agent): the charm's through
   the library's own `MirrorMakerService`, the guide's with the library's layer whose command is
   the guide's (`connect-mirror-maker.sh mm2.properties`, no `--clusters`). Each run is timed
   from the service start until the target's end offsets equal the source's.
   A diagnosis run follows: the charm's defaults on 3 units with MirrorMaker on one of them, to
   show what the extra MirrorMaker JVMs cost when every unit shares the same cores. Then the
   charm's defaults on 3 units whose client listeners serve TLS (a certificate from a test CA,
   as with the `certificates` relation), reported as a ratio against the same run without TLS;
   and the raw write over SASL_SSL, against the raw write over SASL_PLAINTEXT. Last, Kafka's
   legacy MirrorMaker (`kafka.tools.MirrorMaker`, one process, its own defaults) on the same
   data: the simplest copier a user could pick.
4. scale: the charm's defaults on 3 units for topics of 1, 12 and 48 partitions (a quarter of
   the records each), and the peak resident memory (VmHWM) of every MirrorMaker process.
5. throttle: the charm's defaults on 3 units with `mirrormaker-throttle-mb-per-second` set
   (`THROTTLE_MB_S`), applied as the charm's leader applies it (`acls.throttle_mirrormaker`, a
   quota on MirrorMaker's user). Measured is what the quota counts: the bytes the target's
   brokers took in from producers (`BytesInPerSec`, compressed batches as sent), once Kafka's
   quota window has passed after the first record, up to the last, against the cap.

For every write into a new cluster (raw, copy limit, each migration) the benchmark records the
target brokers' CPU seconds and what they were asked (produce and fetch requests, bytes and
records in, from their JMX exporters) per GiB of record values: why one writer costs the brokers
more than another.

Rates are MiB of record values per second (as Kafka's perf tools count MB). CPU seconds per
process role are recorded for every run, to show where time goes on this 2-core machine.

Usage: `python -m bench throughput [--quick] [--records N] [--skip-scale] [--runs A,B]
[--skip-limits]`; `--runs throttle --skip-limits --skip-scale` measures only the throttle. Writes
`bench/results/latest.json`, a timestamped copy, `latest.md` and `latest.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import string
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, cast

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from acls import throttle_mirrormaker
from admin import KafkaAdmin
from bench import RESULTS
from charms.kafka_k8s.v0.mirrormaker import (
    MigrationConfig,
    MirrorMakerService,
    MirrorMakerSettings,
    SourceCluster,
    TargetCluster,
)
from files import properties_escape
from models import ADMIN_USER
from substrate.certificates import CertificateAuthority
from substrate.migration import MirrorMakers, source_cluster, source_user, target_cluster
from substrate.old_cluster import OldCluster
from substrate.processes import (
    LOOPBACK,
    ClientConfig,
    SubstrateError,
    default_cache,
    find_processes,
    remove_tmp,
    tool_env,
)
from substrate.units import NewCluster

TOPIC = "bench"
PARTITIONS = 12
RECORD_BYTES = 1024
FULL_RECORDS = 1_048_576  # 1 GiB of values
QUICK_RECORDS = 102_400  # 100 MiB
SCALE_PARTITIONS = (1, 12, 48)
SCALE_SHARE = 4  # each scale topic holds records / SCALE_SHARE
UNIT_COUNTS = (1, 3)
ONE_NODE = "charm-one-node"  # the charm's defaults on 3 units, MirrorMaker on one of them
CHARM_TLS = "charm-tls"  # the charm's defaults on 3 units whose client listeners serve TLS
MM2_HEAP_MB = 512
BROKER_HEAP_MB = 512
TOOL_HEAP = "-Xms64m -Xmx512m"
MIB = 1024 * 1024
POLL_SECONDS = 0.5
FIRST_RECORD_TIMEOUT = 300.0  # MirrorMaker's start, rebalance and first fetch
STALL_TIMEOUT = 180.0  # no progress after the first record
SEED_TEMPLATE = Path(__file__).resolve().parent / "seed_mm2.properties"
MIRRORMAKER_MAIN = "org.apache.kafka.connect.mirror.MirrorMaker"
# Kafka 3.9's legacy MirrorMaker: one consume-produce loop, no offset translation (gone in 4.0).
LEGACY_MIRRORMAKER_MAIN = "kafka.tools.MirrorMaker"
LEGACY = "legacy-mirrormaker"
# The raw write rate is the limit, so its producer batches well; MirrorMaker's must reach it.
RAW_PRODUCER_PROPS = ("acks=all", "batch.size=262144", "linger.ms=10")
LOAD_PRODUCER_PROPS = ("acks=1", "batch.size=262144", "linger.ms=10")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
THROTTLE = "throttle"
THROTTLE_MB_S = 1
# Kafka's quota window (quota.window.num x quota.window.size.seconds): how long a producer may
# run ahead of its quota before the broker throttles it.
QUOTA_WINDOW_SECONDS = 11


# Kafka's own tools -------------------------------------------------------------------------------


def client_properties(config: ClientConfig) -> str:
    """A Java client `.properties` file for a confluent-kafka SASL configuration."""
    jaas = (
        SourceCluster(
            name="x",
            bootstrap_servers=(str(config["bootstrap.servers"]),),
            username=str(config["sasl.username"]),
            password=str(config["sasl.password"]),
        ).jaas_config
        or ""
    )
    text = (
        f"bootstrap.servers={config['bootstrap.servers']}\n"
        f"security.protocol={config['security.protocol']}\n"
        f"sasl.mechanism={config['sasl.mechanism']}\n"
        f"sasl.jaas.config={properties_escape(jaas)}\n"
    )
    if "ssl.ca.pem" in config:
        text += (
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.certificates={properties_escape(str(config['ssl.ca.pem']))}\n"
        )
    return text


@dataclass
class Tools:
    """Runs Kafka's command-line tools from a rock root's `bin`, with a capped heap."""

    bin: Path
    work: Path

    def config_file(self, name: str, config: ClientConfig) -> Path:
        """Write a client configuration (mode 0600) and return its path."""
        path = self.work / f"{name}.properties"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(client_properties(config))
        path.chmod(0o600)
        return path

    def run(self, main: str, args: list[str], timeout: float) -> str:
        """Run a tool's main class; its stdout.

        Raises:
            SubstrateError: if it fails or outlives `timeout`.
        """
        env = tool_env(KAFKA_HEAP_OPTS=TOOL_HEAP, LOG_DIR=str(self.work / "logs"))
        command = [str(self.bin / "kafka-run-class.sh"), main, *args]
        try:
            result = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise SubstrateError(f"{main} ran longer than {timeout:.0f}s") from error
        if result.returncode != 0:
            raise SubstrateError(f"{main} failed:\n{(result.stdout + result.stderr)[-3000:]}")
        return result.stdout


def create_topic(config: ClientConfig, topic: str, partitions: int, replicas: int) -> None:
    """Create a topic and wait for it."""
    admin = AdminClient(config)
    futures = admin.create_topics([NewTopic(topic, partitions, replicas)], operation_timeout=60)
    for future in futures.values():
        future.result(timeout=90)


def producer_performance(
    tools: Tools, config: ClientConfig, topic: str, records: int, props: tuple[str, ...]
) -> dict[str, float]:
    """Write `records` records of `RECORD_BYTES` with `ProducerPerformance`; its summary."""
    began = time.monotonic()
    output = tools.run(
        "org.apache.kafka.tools.ProducerPerformance",
        [
            "--topic",
            topic,
            "--num-records",
            str(records),
            "--record-size",
            str(RECORD_BYTES),
            "--throughput",
            "-1",
            "--producer.config",
            str(tools.config_file(f"producer-{topic}", config)),
            "--producer-props",
            *props,
        ],
        timeout=1800,
    )
    seconds = time.monotonic() - began
    match = re.search(r"records/sec \(([\d.]+) MB/sec\)", output.strip().splitlines()[-1])
    if match is None:
        raise SubstrateError(f"ProducerPerformance printed no summary:\n{output[-2000:]}")
    return {"mb_s": float(match.group(1)), "process_seconds": round(seconds, 2)}


def consumer_performance(
    tools: Tools, config: ClientConfig, topic: str, records: int, group: str = "bench-raw-consume"
) -> dict[str, float]:
    """Read `records` records with `ConsumerPerformance`; its summary, by its column names."""
    output = tools.run(
        "org.apache.kafka.tools.ConsumerPerformance",
        [
            "--bootstrap-server",
            str(config["bootstrap.servers"]),
            "--topic",
            topic,
            "--messages",
            str(records),
            "--consumer.config",
            str(tools.config_file(f"consumer-{group}", config)),
            "--group",
            group,
            "--timeout",
            "120000",
        ],
        timeout=1800,
    )
    lines = [line for line in output.splitlines() if line.count(",") >= 5]
    if len(lines) < 2:
        raise SubstrateError(f"ConsumerPerformance printed no summary:\n{output[-2000:]}")
    names = [name.strip() for name in lines[0].split(",")]
    values = [value.strip() for value in lines[-1].split(",")]
    summary = dict(zip(names, values, strict=False))
    return {
        "mb_s": float(summary["fetch.MB.sec"]),
        "mb_s_with_group_join": float(summary["MB.sec"]),
        "mb": float(summary["data.consumed.in.MB"]),
        "rebalance_ms": float(summary["rebalance.time.ms"]),
    }


# Offsets and processes ---------------------------------------------------------------------------


def total_end_offset(admin: AdminClient, topic: str, partitions: int) -> int:
    """The sum of a topic's end offsets, 0 while it does not exist."""
    latest = cast(OffsetSpec, OffsetSpec.latest())  # typed as Optional by confluent-kafka
    request = {TopicPartition(topic, p): latest for p in range(partitions)}
    try:
        futures = admin.list_offsets(request, request_timeout=10)
        return sum(future.result(timeout=15).offset for future in futures.values())
    except KafkaException:
        return 0


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used, 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident set (VmHWM) in MiB, 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from `/proc/stat`."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


@dataclass
class CpuMeter:
    """CPU seconds spent by role (old broker, new brokers, MirrorMaker, anything else)."""

    roles: dict[str, Callable[[], list[int]]]
    began: float = 0.0
    machine: float = 0.0
    start_cpu: dict[int, float] = field(default_factory=dict)

    def start(self) -> None:
        """Note every known process's CPU time and the machine's."""
        self.began = time.monotonic()
        self.machine = machine_busy_seconds()
        self.start_cpu = {pid: cpu_seconds(pid) for find in self.roles.values() for pid in find()}

    def seconds(self) -> dict[str, float]:
        """CPU seconds each role spent since `start`, `other` for the rest, and the wall time."""
        spent: dict[str, float] = {}
        for role, find in self.roles.items():
            spent[role] = sum(cpu_seconds(pid) - self.start_cpu.get(pid, 0.0) for pid in find())
        machine = machine_busy_seconds() - self.machine
        spent["other"] = max(machine - sum(spent.values()), 0.0)
        spent["machine"] = machine
        spent["wall"] = max(time.monotonic() - self.began, 1e-6)
        return spent

    def cores(self) -> dict[str, float]:
        """Cores each role used on average since `start`, and `other` for the rest."""
        spent = self.seconds()
        wall = spent.pop("wall")
        return {role: round(value / wall, 2) for role, value in spent.items()}

    def per_gib(self, records: int) -> dict[str, float]:
        """CPU seconds each role spent since `start` per GiB of record values."""
        spent = self.seconds()
        spent.pop("wall")
        return {role: round(value / gib(records), 1) for role, value in spent.items()}


def mirrormaker_pids(new: NewCluster) -> list[int]:
    """The MirrorMaker JVMs of the new cluster's units, and the legacy MirrorMaker beside them."""
    legacy = find_processes(LEGACY_MIRRORMAKER_MAIN, f"{new.tmp.resolve()}/")
    return [
        *(pid for unit in new.units for pid in find_processes(MIRRORMAKER_MAIN, unit.marker)),
        *legacy,
    ]


# What the target's brokers were asked: the JMX exporter's counters, summed over the brokers.
BROKER_COUNTERS = {
    "produce_requests": re.compile(
        r'^kafka_network_requestmetrics_requests_total\{request="Produce",[^}]*\} (\S+)$'
    ),
    "fetch_requests": re.compile(
        r'^kafka_network_requestmetrics_requests_total\{request="Fetch",[^}]*\} (\S+)$'
    ),
    # Kafka counts each fetch a second time as the replicas' or the consumers'.
    "follower_fetch_requests": re.compile(
        r'^kafka_network_requestmetrics_requests_total\{request="FetchFollower",[^}]*\} (\S+)$'
    ),
    "consumer_fetch_requests": re.compile(
        r'^kafka_network_requestmetrics_requests_total\{request="FetchConsumer",[^}]*\} (\S+)$'
    ),
    "bytes_in": re.compile(r"^kafka_server_brokertopicmetrics_bytesin_total (\S+)$"),
    "messages_in": re.compile(r"^kafka_server_brokertopicmetrics_messagesin_total (\S+)$"),
}


def broker_counters(new: NewCluster) -> dict[str, float]:
    """Produce and fetch requests, bytes and records in, summed over the target's brokers."""
    totals = dict.fromkeys(BROKER_COUNTERS, 0.0)
    for unit in new.units:
        url = f"http://{LOOPBACK}:{unit.workload.ports.broker_metrics}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
                text = response.read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            for name, pattern in BROKER_COUNTERS.items():
                if match := pattern.match(line):
                    totals[name] += float(match.group(1))
    return totals


def counters_per_gib(
    before: dict[str, float], after: dict[str, float], records: int
) -> dict[str, float]:
    """What the brokers were asked per GiB of record values copied or written.

    Bytes in are as stored (compressed, with batch headers): their ratio to the values is the
    batches' shape and compression; records in are per broker that leads a partition.
    """
    per_gib = {name: (after[name] - before[name]) / gib(records) for name in BROKER_COUNTERS}
    return {
        "produce_requests_per_gib": round(per_gib["produce_requests"]),
        "fetch_requests_per_gib": round(per_gib["fetch_requests"]),
        "follower_fetch_requests_per_gib": round(per_gib["follower_fetch_requests"]),
        "consumer_fetch_requests_per_gib": round(per_gib["consumer_fetch_requests"]),
        "bytes_in_mib_per_gib": round(per_gib["bytes_in"] / MIB, 1),
        "records_in_per_gib": round(per_gib["messages_in"]),
    }


def gib(records: int) -> float:
    """GiB of record values in `records` records."""
    return records * RECORD_BYTES / MIB / 1024


def cpu_meter(old: OldCluster, new: NewCluster) -> CpuMeter:
    """A meter of the old brokers, the new brokers and the MirrorMaker processes."""
    return CpuMeter(
        {
            "old-broker": lambda: find_processes(" kafka.Kafka ", f"{old.tmp.resolve()}/"),
            "new-brokers": lambda: [
                pid for unit in new.units if (pid := unit.broker_pid()) is not None
            ],
            "mirrormaker": lambda: mirrormaker_pids(new),
        }
    )


# MirrorMaker runs --------------------------------------------------------------------------------


def seed_properties(old: OldCluster, new: NewCluster) -> str:
    """The guide's `mm2.properties` with the local clusters' addresses and admin users."""
    old_jaas = (
        SourceCluster(
            name="old",
            bootstrap_servers=tuple(old.bootstrap.split(",")),
            username=old.admin_username,
            password=old.admin_password,
        ).jaas_config
        or ""
    )
    new_jaas = (
        TargetCluster(
            bootstrap_servers=tuple(new.bootstrap.split(",")),
            username=new.admin_username,
            password=new.admin_password,
        ).jaas_config
        or ""
    )
    return string.Template(SEED_TEMPLATE.read_text()).substitute(
        OLD_SERVERS=old.bootstrap,
        NEW_SERVERS=new.bootstrap,
        OLD_SASL_JAAS_CONFIG=properties_escape(old_jaas),
        NEW_SASL_JAAS_CONFIG=properties_escape(new_jaas),
        REPLICATION_FACTOR=min(3, len(new.units)),
        OLD_REPLICATION_FACTOR=min(3, len(old.brokers)),
    )


def start_seed(old: OldCluster, new: NewCluster, heap_mb: int) -> None:
    """Run the guide's MirrorMaker on every unit, as the unit's Pebble service `mirrormaker`.

    The layer is the library's (same heap cap, JMX exporter agent, log directory); only the
    command is the guide's: `connect-mirror-maker.sh mm2.properties`, without `--clusters`.
    """
    text = seed_properties(old, new)
    for unit in new.units:
        workload = unit.mirrormaker_workload(heap_mb=heap_mb)
        settings = MirrorMakerSettings(
            source=source_cluster(old),
            target=target_cluster(new),
            unit_host=LOOPBACK,
            units=len(new.units),
            workload=workload,
        )
        container = unit.container
        service = MirrorMakerService(container, workload)
        service.configure(settings)  # the JMX exporter's rules; the seed has its own file
        path = workload.etc / "mm2-seed.properties"
        container.push(path, text, permissions=0o600, user=workload.user, group=workload.group)
        layer = settings.pebble_layer()
        services = layer.get("services", {})
        (name,) = services
        services[name]["command"] = seed_command(workload.opt, path)
        container.add_layer(name, layer, combine=True)
        container.start(name)


def seed_command(opt: PurePosixPath, properties: PurePosixPath) -> str:
    """The guide's command line."""
    return f"{opt}/bin/connect-mirror-maker.sh {properties}"


def start_charm(old: OldCluster, new: NewCluster, heap_mb: int) -> None:
    """Run MirrorMaker on every unit as the charm does, with the library's default render."""
    makers = MirrorMakers.on(
        new, source_cluster(old), target_cluster(new), MigrationConfig(), heap_mb=heap_mb
    )
    makers.run()


def start_charm_on_one_unit(old: OldCluster, new: NewCluster, heap_mb: int) -> None:
    """Like `start_charm`, but MirrorMaker runs on the first unit only: a diagnosis, not a mode.

    The target keeps its units and replication factor; only the MirrorMaker JVMs sharing the
    machine's cores drop from one per unit to one.
    """
    makers = MirrorMakers.on(
        new, source_cluster(old), target_cluster(new), MigrationConfig(), heap_mb=heap_mb
    )
    makers.services[0].run(makers.settings[0])


def start_charm_topic(topic: str) -> Callable[[OldCluster, NewCluster, int], None]:
    """Like `start_charm`, but with the `mirrormaker-topics` option set to one topic."""

    def start(old: OldCluster, new: NewCluster, heap_mb: int) -> None:
        config = MigrationConfig(topics=(topic,))
        MirrorMakers.on(
            new, source_cluster(old), target_cluster(new), config, heap_mb=heap_mb
        ).run()

    return start


def charm_producer_props(old: OldCluster, new: NewCluster) -> tuple[str, ...]:
    """The settings of MirrorMaker's producer into the target, as the library renders them."""
    settings = MirrorMakerSettings(
        source=source_cluster(old),
        target=target_cluster(new),
        unit_host=LOOPBACK,
        units=len(new.units),
        workload=new.units[0].mirrormaker_workload(),
    )
    prefix = "target.producer."
    return tuple(
        line.removeprefix(prefix)
        for line in settings.mm2_properties().splitlines()
        if line.startswith(prefix)
    )


def start_legacy_mirrormaker(
    old: OldCluster, new: NewCluster, heap_mb: int
) -> subprocess.Popen[bytes]:
    """Kafka's legacy MirrorMaker, one process beside the units: the simplest copier there is.

    Its defaults, as a user who picks it would run it: one stream, its own producer settings
    (`acks=all`), the topic created first with the charm's partitions and replication factor.
    """
    work = new.tmp / LEGACY
    tools = Tools(old.bin, work)
    create_topic(new.admin_config(), TOPIC, PARTITIONS, min(3, len(new.units)))
    consumer = tools.config_file("legacy-consumer", old.admin_config())
    with consumer.open("a") as file:
        file.write("group.id=bench-legacy-mirrormaker\nauto.offset.reset=earliest\n")
    producer = tools.config_file("legacy-producer", new.admin_config())
    env = tool_env(
        KAFKA_HEAP_OPTS=f"-Xms{min(heap_mb, 256)}m -Xmx{heap_mb}m", LOG_DIR=str(work / "logs")
    )
    command = [
        str(old.bin / "kafka-run-class.sh"),
        LEGACY_MIRRORMAKER_MAIN,
        "--consumer.config",
        str(consumer),
        "--producer.config",
        str(producer),
        "--include",
        TOPIC,
    ]
    with (work / "legacy-mirrormaker.out").open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


Starter = Callable[[OldCluster, NewCluster, int], subprocess.Popen[bytes] | None]


@dataclass(frozen=True)
class Run:
    """One timed migration: which config, on how many units, of which topic."""

    name: str
    config: str
    units: int
    topic: str
    partitions: int
    records: int
    start: Starter
    # The target's client listeners serve TLS (MirrorMaker still writes on the internal one).
    tls: bool = False


def wait_copied(
    admin: AdminClient, run: Run, began: float, on_first: Callable[[], None]
) -> tuple[float | None, float | None]:
    """Poll the target's end offsets until they reach the source's; `on_first` at the first.

    Returns:
        Seconds until the first record and until the last arrived; None where it never came.
    """
    first: float | None = None
    seen, progressed = 0, time.monotonic()
    while True:
        copied = total_end_offset(admin, run.topic, run.partitions)
        now = time.monotonic()
        if copied > 0 and first is None:
            first = now - began
            on_first()
        if copied >= run.records:
            return first, now - began
        if copied > seen:
            seen, progressed = copied, now
        limit = FIRST_RECORD_TIMEOUT if first is None else STALL_TIMEOUT
        if now - progressed > limit:
            return first, None
        time.sleep(POLL_SECONDS)


LOG_ERROR = re.compile(r"^\[[^]]*\] ERROR (.*)$")
EXCEPTION = re.compile(r"^[\w.$]+(Exception|Error)(: |$)")
ERROR_CHARS = 600
MAX_ERRORS = 5


def mirrormaker_errors(new: NewCluster) -> list[str]:
    """The distinct ERROR messages in the units' MirrorMaker logs, the first few, shortened.

    A message is followed by its exception's first line when the log has one.
    """
    errors: list[str] = []
    for path in new.log_files():
        if path.name != "mirrormaker.log":
            continue
        lines = path.read_text(errors="replace").splitlines()
        for line, following in zip(lines, [*lines[1:], ""], strict=True):
            match = LOG_ERROR.match(line)
            if not match:
                continue
            cause = following if EXCEPTION.match(following) else ""
            message = " ".join(filter(None, (match.group(1), cause)))[:ERROR_CHARS]
            if message not in errors:
                errors.append(message)
                if len(errors) == MAX_ERRORS:
                    return errors
    return errors


def rate(records: int, seconds: float | None) -> float | None:
    """MiB per second of record values, or None."""
    if not seconds:
        return None
    return round(records * RECORD_BYTES / MIB / seconds, 2)


def time_run(old: OldCluster, base: Path, run: Run, heap_mb: int) -> dict[str, Any]:
    """A fresh new cluster of `run.units` units, MirrorMaker started on each, timed to the end."""
    ca = CertificateAuthority() if run.tls else None
    with NewCluster(base / run.name, size=run.units, heap_mb=BROKER_HEAP_MB, ca=ca) as new:
        admin = AdminClient(new.admin_config())
        meter = cpu_meter(old, new)
        before = broker_counters(new)
        meter.start()
        began = time.monotonic()
        process = run.start(old, new, heap_mb)
        to_first: dict[str, float] = {}
        try:
            first, done = wait_copied(admin, run, began, lambda: to_first.update(meter.seconds()))
            cores = meter.cores()
            per_gib = meter.per_gib(run.records)
            requests = counters_per_gib(before, broker_counters(new), run.records)
            rss = [round(peak_rss_mb(pid), 1) for pid in mirrormaker_pids(new)]
            copied = total_end_offset(admin, run.topic, run.partitions)
            errors = mirrormaker_errors(new)
        finally:
            if process is not None:
                process.kill()
                process.wait()
    copy_seconds = None if done is None or first is None else done - first
    return {
        "name": run.name,
        "config": run.config,
        "tls": run.tls,
        "units": run.units,
        "topic": run.topic,
        "partitions": run.partitions,
        "records": run.records,
        "copied": copied,
        "finished": done is not None,
        "seconds": None if done is None else round(done, 2),
        "first_record_seconds": None if first is None else round(first, 2),
        # CPU seconds each role spent from the start to the first record (its wall time too).
        "cpu_seconds_to_first_record": {role: round(value, 1) for role, value in to_first.items()},
        "mb_s": rate(run.records, done),
        "copy_mb_s": rate(run.records, copy_seconds),
        "cores_used": cores,
        # CPU a role spent per GiB copied: less sensitive to other load than seconds are.
        "cpu_seconds_per_gib": per_gib,
        "target_brokers_asked": requests,
        "mirrormaker_peak_rss_mb": rss,
        "mirrormaker_errors": errors,
    }


# The benchmark -----------------------------------------------------------------------------------


@dataclass
class Options:
    """What to measure."""

    records: int
    quick: bool
    scale: bool
    heap_mb: int
    # Only the main runs of these names (all when empty); `throttle` names the throttled run.
    runs: tuple[str, ...] = ()
    limits: bool = True


@contextmanager
def workspace() -> Iterator[Path]:
    """A temporary directory whose every process and file is gone afterwards, also on errors."""
    base = Path(tempfile.mkdtemp(prefix="kafka-k8s-bench-"))
    try:
        yield base
    finally:
        remove_tmp(base)


def measure_limits(old: OldCluster, base: Path, tools: Tools, records: int) -> dict[str, Any]:
    """The raw rates: the old cluster's read, fresh 3-unit new clusters' writes, the copy limit."""
    consume = consumer_performance(tools, old.admin_config(), TOPIC, records)
    with NewCluster(base / "raw-produce", size=3, heap_mb=BROKER_HEAP_MB) as new:
        create_topic(new.admin_config(), TOPIC, PARTITIONS, 3)
        meter = cpu_meter(old, new)
        before = broker_counters(new)
        meter.start()
        produce = producer_performance(
            tools, new.admin_config(), TOPIC, records, RAW_PRODUCER_PROPS
        )
        produce["cores_used"] = meter.cores()  # type: ignore[assignment]
        produce["cpu_seconds_per_gib"] = meter.per_gib(records)  # type: ignore[assignment]
        produce["target_brokers_asked"] = counters_per_gib(  # type: ignore[assignment]
            before, broker_counters(new), records
        )
    copy = measure_copy_limit(old, base, tools, records)
    ca = CertificateAuthority()
    with NewCluster(base / "raw-produce-tls", size=3, heap_mb=BROKER_HEAP_MB, ca=ca) as new:
        create_topic(new.admin_config(), TOPIC, PARTITIONS, 3)
        meter = cpu_meter(old, new)
        meter.start()
        config = new.client_config(new.admin_username, new.admin_password)
        produce_tls = producer_performance(tools, config, TOPIC, records, RAW_PRODUCER_PROPS)
        produce_tls["cores_used"] = meter.cores()  # type: ignore[assignment]
    return {"consume": consume, "produce": produce, "copy": copy, "produce_tls": produce_tls}


def measure_copy_limit(old: OldCluster, base: Path, tools: Tools, records: int) -> dict[str, Any]:
    """What one copy may reach on this machine: read the old cluster and write a new one at once.

    `ConsumerPerformance` on the old cluster and `ProducerPerformance` into a fresh 3-unit new
    cluster run at the same time, same records, partitions and RF 3, the producer with the
    settings the library gives MirrorMaker's (acks=all, idempotence, lz4, its batching): the
    lower of the two rates is the copy limit.
    """
    with NewCluster(base / "copy-limit", size=3, heap_mb=BROKER_HEAP_MB) as new:
        create_topic(new.admin_config(), TOPIC, PARTITIONS, 3)
        props = charm_producer_props(old, new)
        meter = cpu_meter(old, new)
        before = broker_counters(new)
        meter.start()
        with ThreadPoolExecutor(max_workers=2) as pool:
            read = pool.submit(
                consumer_performance,
                tools,
                old.admin_config(),
                TOPIC,
                records,
                "bench-copy-limit",
            )
            write = pool.submit(
                producer_performance, tools, new.admin_config(), TOPIC, records, props
            )
            consume, produce = read.result(), write.result()
        cores = meter.cores()
        per_gib = meter.per_gib(records)
        asked = counters_per_gib(before, broker_counters(new), records)
    return {
        "mb_s": min(consume["mb_s"], produce["mb_s"]),
        "consume": consume,
        "produce": produce,
        "producer_props": list(props),
        "cores_used": cores,
        "cpu_seconds_per_gib": per_gib,
        "target_brokers_asked": asked,
    }


def main_runs(records: int) -> list[Run]:
    """The guide's and the charm's config, each on 1 and on 3 units, for the main topic."""
    runs = []
    for config, start in (("seed", start_seed), ("charm", start_charm)):
        for units in UNIT_COUNTS:
            runs.append(Run(f"{config}-{units}", config, units, TOPIC, PARTITIONS, records, start))
    runs.append(
        Run("charm-3-one-node", ONE_NODE, 3, TOPIC, PARTITIONS, records, start_charm_on_one_unit)
    )
    runs.append(Run("charm-3-tls", CHARM_TLS, 3, TOPIC, PARTITIONS, records, start_charm, True))
    runs.append(Run("legacy-3", LEGACY, 3, TOPIC, PARTITIONS, records, start_legacy_mirrormaker))
    return runs


def scale_topic(partitions: int) -> str:
    """The scale topic of that many partitions."""
    return f"scale-{partitions}"


def scale_runs(records: int) -> list[Run]:
    """The charm's config on 3 units, one topic at a time, for every partition count."""
    return [
        Run(
            f"scale-{partitions}",
            "charm",
            3,
            scale_topic(partitions),
            partitions,
            records,
            start_charm_topic(scale_topic(partitions)),
        )
        for partitions in SCALE_PARTITIONS
    ]


def log(message: str) -> None:
    """Progress on stdout."""
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def measure(options: Options, measured: dict[str, Any]) -> None:
    """Load, limits, the four migrations and the scale runs, into `measured` as they end."""
    measured.update({"runs": [], "load": {}})
    with workspace() as base:
        cache = default_cache()
        with OldCluster(base / "old", cache=cache, size=1, heap_mb=BROKER_HEAP_MB) as old:
            tools = Tools(old.bin, base / "tools")
            source_user(old)
            create_topic(old.admin_config(), TOPIC, PARTITIONS, 1)
            log(f"loading {options.records:,} records of {RECORD_BYTES} bytes")
            measured["load"][TOPIC] = producer_performance(
                tools, old.admin_config(), TOPIC, options.records, LOAD_PRODUCER_PROPS
            )
            if options.limits:
                log("raw read and write rates")
                measured["limits"] = measure_limits(old, base, tools, options.records)
            for run in main_runs(options.records):
                if options.runs and run.name not in options.runs:
                    continue
                log(f"migration {run.name}")
                measured["runs"].append(time_run(old, base, run, options.heap_mb))
                log(f"  {measured['runs'][-1]['mb_s']} MB/s")
            if options.scale:
                measure_scale(old, base, tools, options, measured["runs"])
            if not options.runs or THROTTLE in options.runs:
                log(f"migration throttled to {THROTTLE_MB_S} MB/s")
                measured["throttle"] = measure_throttle(old, base, options)
                log(f"  {measured['throttle']['measured_mb_s']} MB/s")


def measure_scale(
    old: OldCluster, base: Path, tools: Tools, options: Options, runs: list[dict]
) -> None:
    """Load the scale topics (after the main runs, so those copy one topic), then time each."""
    records = options.records // SCALE_SHARE
    for partitions in SCALE_PARTITIONS:
        create_topic(old.admin_config(), scale_topic(partitions), partitions, 1)
        producer_performance(
            tools, old.admin_config(), scale_topic(partitions), records, LOAD_PRODUCER_PROPS
        )
    for run in scale_runs(records):
        log(f"migration {run.name}")
        runs.append(time_run(old, base, run, options.heap_mb))
        log(f"  {runs[-1]['mb_s']} MB/s")


def measure_throttle(old: OldCluster, base: Path, options: Options) -> dict[str, Any]:
    """The charm's defaults on 3 units, capped at `THROTTLE_MB_S` as the charm's leader caps it.

    The cap is what the brokers' quota counts, the bytes producers send them: their
    `BytesInPerSec`, read every second from the first record's arrival to the last's. Kafka
    lets a producer run ahead of its quota for one quota window (11 samples of 1 s) before it
    throttles, so the rate that holds is measured from the end of that window on; the run's
    whole rate is kept beside it.
    """
    run = Run("charm-3-throttled", "charm", 3, TOPIC, PARTITIONS, options.records, start_charm)
    with NewCluster(base / run.name, size=3, heap_mb=BROKER_HEAP_MB) as new:
        with KafkaAdmin(new.internal_bootstrap, ADMIN_USER, new.admin_password) as admin:
            throttle_mirrormaker(admin, THROTTLE_MB_S, len(new.units))
        admin_client = AdminClient(new.admin_config())
        began = time.monotonic()
        start_charm(old, new, options.heap_mb)
        sent: list[tuple[float, float]] = []  # (seconds since the start, bytes taken in)
        copied = 0
        while copied < options.records:
            copied = total_end_offset(admin_client, TOPIC, PARTITIONS)
            now = time.monotonic() - began
            if copied > 0:
                sent.append((now, broker_counters(new)["bytes_in"]))
            limit = FIRST_RECORD_TIMEOUT if not sent else STALL_TIMEOUT + sent[0][0]
            if now > limit and copied < options.records:
                break
            time.sleep(1.0)
        errors = mirrormaker_errors(new)
    finished = copied >= options.records and len(sent) > 1

    def mb_s(since: float) -> float | None:
        window = [(at, total) for at, total in sent if at >= since]
        if not finished or len(window) < 2:
            return None
        (first_at, first), (last_at, last) = window[0], window[-1]
        return round((last - first) / MIB / (last_at - first_at), 2)

    steady = mb_s(sent[0][0] + QUOTA_WINDOW_SECONDS) if sent else None
    return {
        "set_mb_s": THROTTLE_MB_S,
        "measured_mb_s": steady,
        "whole_run_mb_s": mb_s(sent[0][0]) if sent else None,
        "within_10_percent": steady is not None
        and abs(steady - THROTTLE_MB_S) <= 0.1 * THROTTLE_MB_S,
        "seconds": round(sent[-1][0], 2) if finished else None,
        "first_record_seconds": round(sent[0][0], 2) if sent else None,
        "finished": finished,
        "mirrormaker_errors": errors,
    }


# Results -----------------------------------------------------------------------------------------


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """The quotient rounded, or None when either is missing."""
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 2)


def status_case(partitions: int, groups: int) -> dict[str, Any]:
    """`migration-status`'s measurement of one case, from its benchmark's latest results."""
    path = RESULTS / "status-latest.json"
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    for case in status.get("real", []):
        if (case.get("partitions"), case.get("groups")) == (partitions, groups):
            return case
    return {}


def named_run(runs: list[dict], name: str) -> dict[str, Any]:
    """The run of that name, or an empty one."""
    return next((run for run in runs if run["name"] == name), {})


def broker_cpu(limits: dict[str, Any], runs: list[dict]) -> dict[str, Any]:
    """The target brokers' CPU seconds and requests per GiB, for each way of writing to them."""
    writers = {
        "raw write (no compression)": limits.get("produce", {}),
        "copy limit's write (MirrorMaker's producer settings)": limits.get("copy", {}),
        "charm's MirrorMaker, 3 units": named_run(runs, "charm-3"),
        "legacy MirrorMaker, 3 units": named_run(runs, "legacy-3"),
    }
    return {
        name: {
            "cpu_seconds_per_gib": measured.get("cpu_seconds_per_gib", {}).get("new-brokers"),
            **measured.get("target_brokers_asked", {}),
        }
        for name, measured in writers.items()
        if measured
    }


def by_units(runs: list[dict], config: str) -> dict[str, float | None]:
    """A config's MB/s on the main topic, keyed by unit count."""
    return {
        str(run["units"]): run["mb_s"]
        for run in runs
        if run["config"] == config and run["topic"] == TOPIC
    }


def summarize(options: Options, measured: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The results document: the issue's keys first, then the detail."""
    runs = measured.get("runs", [])
    limits = measured.get("limits", {})
    consume = limits.get("consume", {}).get("mb_s")
    produce = limits.get("produce", {}).get("mb_s")
    limit = min(consume, produce) if consume and produce else None
    copy_limit = limits.get("copy", {}).get("mb_s")
    charm_3, legacy = named_run(runs, "charm-3"), named_run(runs, "legacy-3")
    status_10k = status_case(10_000, 1_000)
    seed, charm = by_units(runs, "seed"), by_units(runs, "charm")
    one_node = by_units(runs, ONE_NODE).get("3")
    charm_tls = by_units(runs, CHARM_TLS).get("3")
    produce_tls = limits.get("produce_tls", {}).get("mb_s")
    charm_rss = [
        rss for run in runs if run["config"] == "charm" for rss in run["mirrormaker_peak_rss_mb"]
    ]
    all_rss = [rss for run in runs for rss in run["mirrormaker_peak_rss_mb"]]
    return {
        "benchmark": "throughput",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": options.quick,
        "records": options.records,
        "record_bytes": RECORD_BYTES,
        "partitions": PARTITIONS,
        "data_mb": round(options.records * RECORD_BYTES / MIB, 1),
        "raw_consume_mb_s": consume,
        "raw_produce_mb_s": produce,
        "limit_mb_s": limit,
        "copy_limit_mb_s": copy_limit,
        "ratio_charm_vs_copy_limit": ratio(charm_3.get("mb_s"), copy_limit),
        "ratio_charm_steady_vs_copy_limit": ratio(charm_3.get("copy_mb_s"), copy_limit),
        "first_record_seconds_3_units": charm_3.get("first_record_seconds"),
        "cpu_seconds_to_first_record_3_units": charm_3.get("cpu_seconds_to_first_record"),
        "legacy_mirrormaker_mb_s": legacy.get("mb_s"),
        "ratio_charm_vs_legacy_mirrormaker": ratio(charm_3.get("mb_s"), legacy.get("mb_s")),
        "ratio_charm_steady_vs_legacy_mirrormaker": ratio(
            charm_3.get("copy_mb_s"), legacy.get("copy_mb_s")
        ),
        "status_seconds_10k": status_10k.get("total-median"),
        "status_peak_memory_mib_10k": status_10k.get("peak-memory-mib"),
        "target_broker_cost": broker_cpu(limits, runs),
        "seed_config_mb_s": seed,
        "charm_config_mb_s": charm,
        "ratio_charm_vs_seed": ratio(charm.get("3"), seed.get("3")),
        "ratio_charm_vs_limit": ratio(charm.get("3"), limit),
        "ratio_charm_vs_seed_1_unit": ratio(charm.get("1"), seed.get("1")),
        "charm_one_node_of_3_mb_s": one_node,
        "ratio_charm_one_node_of_3_vs_limit": ratio(one_node, limit),
        "charm_tls_mb_s": charm_tls,
        "ratio_charm_tls_vs_charm": ratio(charm_tls, charm.get("3")),
        "raw_produce_tls_mb_s": produce_tls,
        "ratio_raw_produce_tls_vs_plain": ratio(produce_tls, produce),
        "scale_mb_s": {
            str(run["partitions"]): run["mb_s"]
            for run in runs
            if run["topic"].startswith("scale-")
        },
        "mirrormaker_peak_rss_mb": max(charm_rss, default=None),
        "mirrormaker_peak_rss_mb_any_config": max(all_rss, default=None),
        "mirrormaker_heap_mb": options.heap_mb,
        "status_seconds": status_case(1_000, 200).get("total-median"),
        "throttle_set_mb_s": measured.get("throttle", {}).get("set_mb_s"),
        "throttle_measured_mb_s": measured.get("throttle", {}).get("measured_mb_s"),
        "throttle": measured.get("throttle", {}),
        "goals": {
            "ratio_charm_vs_seed_at_least": 1.5,
            "ratio_charm_steady_vs_copy_limit_at_least": 0.7,
            "ratio_charm_vs_copy_limit_at_least": 0.5,
            "first_record_seconds_3_units_at_most": 20,
            "status_seconds_10k_at_most": 5,
        },
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()[0]},
        "limits": limits,
        "load": measured.get("load", {}),
        "runs": runs,
        "notes": notes,
    }


def _fmt(value: object, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.2f}{suffix}"
    return f"{value}{suffix}"


def _first_record_cpu(results: dict[str, Any]) -> str:
    """What the machine's cores spent until the charm's first record on 3 units."""
    spent = results.get("cpu_seconds_to_first_record_3_units") or {}
    if not spent.get("wall"):
        return "no CPU measured until then"
    cores = results.get("machine", {}).get("cpus") or 1
    return (
        f"until then the machine spent {_fmt(spent.get('machine'))} CPU s of the "
        f"{_fmt(spent['wall'] * cores)} its {cores} cores had: MirrorMaker "
        f"{_fmt(spent.get('mirrormaker'))}, the target's brokers {_fmt(spent.get('new-brokers'))}"
    )


def _cores(run: dict[str, Any]) -> str:
    cores = run["cores_used"]
    return ", ".join(f"{role} {cores[role]:.2f}" for role in cores)


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown: the headline table, then every run."""
    seed, charm = results["seed_config_mb_s"], results["charm_config_mb_s"]
    lines = [
        f"# Migration throughput ({results['when']})",
        "",
        f"{results['records']:,} records of {results['record_bytes']} bytes "
        f"({results['data_mb']:,} MiB) in {results['partitions']} partitions; MB/s is MiB of "
        "record values per second, MirrorMaker timed from its start until the target's end "
        "offsets equal the source's.",
        "",
        "| measure | MB/s | vs copy limit |",
        "| --- | ---: | ---: |",
        f"| raw read, old cluster (ConsumerPerformance) | {_fmt(results['raw_consume_mb_s'])} | |",
        f"| raw write, new cluster, acks=all (ProducerPerformance) | "
        f"{_fmt(results['raw_produce_mb_s'])} | |",
        f"| **copy limit**: read old and write new at once, MirrorMaker's producer settings | "
        f"**{_fmt(results['copy_limit_mb_s'])}** | 1.00 |",
    ]
    limit = results["copy_limit_mb_s"]
    for name, values in (("guide's mm2.properties", seed), ("charm's defaults", charm)):
        for units in ("1", "3"):
            value = values.get(units)
            lines.append(
                f"| MirrorMaker, {name}, {units} unit{'s' if units == '3' else ''} | "
                f"{_fmt(value)} | {_fmt(ratio(value, limit))} |"
            )
    legacy = results["legacy_mirrormaker_mb_s"]
    lines += [
        f"| legacy MirrorMaker (`kafka.tools.MirrorMaker`), one process, 3 units | "
        f"{_fmt(legacy)} | {_fmt(ratio(legacy, limit))} |",
        "",
        f"- charm's defaults on 3 units vs the copy limit: **"
        f"{_fmt(results['ratio_charm_vs_copy_limit'])}** over the run (goal 0.5), **"
        f"{_fmt(results['ratio_charm_steady_vs_copy_limit'])}** after the first record (goal "
        f"0.7); first record after **{_fmt(results['first_record_seconds_3_units'], ' s')}** "
        f"(goal 20 s); {_first_record_cpu(results)}",
        f"- charm vs the legacy MirrorMaker, 3 units: "
        f"**{_fmt(results['ratio_charm_vs_legacy_mirrormaker'], 'x')}** over the run, "
        f"{_fmt(results['ratio_charm_steady_vs_legacy_mirrormaker'], 'x')} after the first "
        "record",
        f"- charm vs guide, 3 units: **{_fmt(results['ratio_charm_vs_seed'], 'x')}** "
        "(goal 1.5x); 1 unit: "
        f"{_fmt(results['ratio_charm_vs_seed_1_unit'], 'x')}",
        f"- charm vs the raw write alone, 3 units: {_fmt(results['ratio_charm_vs_limit'])}",
        "- diagnosis, charm's defaults on 3 units with MirrorMaker on one of them: "
        f"{_fmt(results['charm_one_node_of_3_mb_s'])} MB/s, "
        f"{_fmt(results['ratio_charm_one_node_of_3_vs_limit'])} of the limit",
        "- TLS on the target's client listeners, charm's defaults on 3 units: "
        f"{_fmt(results['charm_tls_mb_s'])} MB/s, "
        f"**{_fmt(results['ratio_charm_tls_vs_charm'])}** of the same run without TLS "
        "(MirrorMaker writes on the internal listener); raw write over SASL_SSL: "
        f"{_fmt(results['raw_produce_tls_mb_s'])} MB/s, "
        f"**{_fmt(results['ratio_raw_produce_tls_vs_plain'])}** of SASL_PLAINTEXT's",
        f"- peak resident memory of a MirrorMaker process (charm's defaults, -Xmx"
        f"{results['mirrormaker_heap_mb']}m): {_fmt(results['mirrormaker_peak_rss_mb'], ' MiB')}",
        "- scale, charm's defaults on 3 units, MB/s by partitions: "
        + ", ".join(f"{p}: {_fmt(v)}" for p, v in results["scale_mb_s"].items()),
        f"- throttle: set **{_fmt(results['throttle_set_mb_s'], ' MB/s')}**, the target's "
        f"brokers took in **{_fmt(results['throttle_measured_mb_s'], ' MB/s')}** once the quota "
        f"window had passed, {_fmt(results['throttle'].get('whole_run_mb_s'), ' MB/s')} from the "
        "first record to the last (what the quota counts: batches as sent)",
        f"- migration-status, 1,000 partitions and 200 groups: "
        f"{_fmt(results['status_seconds'], ' s')}; 10,000 partitions and 1,000 groups: **"
        f"{_fmt(results['status_seconds_10k'], ' s')}** (goal 5 s), peak memory "
        f"{_fmt(results['status_peak_memory_mib_10k'], ' MiB')}",
        "",
        "What the target's brokers spent and were asked, per GiB of record values written:",
        "",
        "| writer | broker CPU s | produce requests | fetch requests: all / replicas' / "
        "consumers' | MiB stored | records in |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {name} | {_fmt(cost.get('cpu_seconds_per_gib'))} | "
            f"{_fmt(cost.get('produce_requests_per_gib'))} | "
            f"{_fmt(cost.get('fetch_requests_per_gib'))} / "
            f"{_fmt(cost.get('follower_fetch_requests_per_gib'))} / "
            f"{_fmt(cost.get('consumer_fetch_requests_per_gib'))} | "
            f"{_fmt(cost.get('bytes_in_mib_per_gib'))} | {_fmt(cost.get('records_in_per_gib'))} |"
            for name, cost in results["target_broker_cost"].items()
        ),
        "",
        "| run | units | partitions | seconds | first record s | MB/s | MB/s after first "
        "record | cores used | CPU s per GiB, MM2 / new brokers | MM2 peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for run in results["runs"]:
        lines.append(
            f"| {run['name']} | {run['units']} | {run['partitions']} | {_fmt(run['seconds'])} | "
            f"{_fmt(run['first_record_seconds'])} | {_fmt(run['mb_s'])} | "
            f"{_fmt(run['copy_mb_s'])} | {_cores(run)} | "
            f"{run['cpu_seconds_per_gib'].get('mirrormaker')} / "
            f"{run['cpu_seconds_per_gib'].get('new-brokers')} | "
            f"{', '.join(str(rss) for rss in run['mirrormaker_peak_rss_mb'])} |"
        )
    lines += ["", *(f"- note: {note}" for note in results["notes"])]
    for run in results["runs"]:
        if not run["finished"]:
            lines.append(f"- note: {unfinished(run)}")
            lines += [f"  - MirrorMaker logged: `{error}`" for error in run["mirrormaker_errors"]]
    return "\n".join([*lines, ""])


def unfinished(run: dict[str, Any]) -> str:
    """Why a run has no rate."""
    if run["first_record_seconds"] is None:
        return (
            f"{run['name']} did not finish: no record reached the target within "
            f"{FIRST_RECORD_TIMEOUT:.0f} s of MirrorMaker's start"
        )
    return (
        f"{run['name']} did not finish: {run['copied']:,} of {run['records']:,} records copied, "
        f"then no progress for {STALL_TIMEOUT:.0f} s"
    )


def chart(results: dict[str, Any], path: Path) -> str | None:
    """Draw the rates and the scale as a PNG; why not, if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart (use the bench dependency group)"
    seed, charm = results["seed_config_mb_s"], results["charm_config_mb_s"]
    labels = ["raw read", "raw write", "guide 1u", "guide 3u", "charm 1u", "charm 3u"]
    values = [
        results["raw_consume_mb_s"],
        results["raw_produce_mb_s"],
        seed.get("1"),
        seed.get("3"),
        charm.get("1"),
        charm.get("3"),
    ]
    colours = ["grey", "grey", "tab:orange", "tab:orange", "tab:blue", "tab:blue"]
    if results.get("copy_limit_mb_s"):
        labels.insert(2, "copy limit")
        values.insert(2, results["copy_limit_mb_s"])
        colours.insert(2, "dimgrey")
    if results.get("legacy_mirrormaker_mb_s"):
        labels.append("legacy MM\n3u")
        values.append(results["legacy_mirrormaker_mb_s"])
        colours.append("tab:green")
    if "charm_one_node_of_3_mb_s" in results:
        labels.append("charm 3u,\nMM on 1")
        values.append(results["charm_one_node_of_3_mb_s"])
        colours.append("lightsteelblue")
    scale = results["scale_mb_s"]
    if scale:
        figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2), width_ratios=(2, 1))
    else:
        figure, left = plt.subplots(figsize=(10, 4.2))
    bars = left.bar(labels, [v or 0 for v in values], color=colours)
    left.bar_label(bars, labels=[f"{v:.1f}" if v else "did not finish" for v in values])
    if results.get("copy_limit_mb_s"):
        left.axhline(
            results["copy_limit_mb_s"] * 0.7,
            color="tab:red",
            linestyle="--",
            label="70% of the copy limit",
        )
        left.legend()
    left.set_ylabel("MiB/s")
    left.set_title(f"{results['data_mb']:,} MiB, {results['partitions']} partitions")
    if scale:
        right.plot([int(p) for p in scale], [v or 0 for v in scale.values()], marker="o")
        right.set_xscale("log")
        right.set_xticks([int(p) for p in scale], labels=list(scale))
        right.set_ylim(bottom=0)
        right.set_xlabel("partitions")
        right.set_ylabel("MiB/s")
        right.set_title("charm's defaults, 3 units")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return None


def write(results: dict[str, Any]) -> None:
    """`latest.json`, a timestamped copy, `latest.md` and `latest.png` in `bench/results`."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    note = chart(results, RESULTS / "latest.png")
    if note:
        results["notes"].append(note)
    text = json.dumps(results, indent=2) + "\n"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / "latest.json").write_text(text)
    (RESULTS / f"throughput-{stamp}.json").write_text(text)
    (RESULTS / "latest.md").write_text(markdown(results))


def parse(argv: list[str]) -> Options:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench throughput", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about 100 MiB instead of 1 GiB")
    parser.add_argument("--records", type=int, help="records to load (overrides --quick)")
    parser.add_argument("--skip-scale", action="store_true", help="no 1/12/48-partition runs")
    parser.add_argument("--heap-mb", type=int, default=MM2_HEAP_MB, help="MirrorMaker -Xmx")
    parser.add_argument(
        "--runs",
        default="",
        help="only these main runs, e.g. charm-3,charm-3-tls,throttle (default: all)",
    )
    parser.add_argument("--skip-limits", action="store_true", help="no raw rates, no copy limit")
    args = parser.parse_args(argv)
    records = args.records or (QUICK_RECORDS if args.quick else FULL_RECORDS)
    runs = tuple(name.strip() for name in args.runs.split(",") if name.strip())
    return Options(
        records, args.quick, not args.skip_scale, args.heap_mb, runs, not args.skip_limits
    )


def main(argv: list[str]) -> int:
    """Measure, write the results, print the table."""
    options = parse(argv)
    notes = [
        f"one machine of {os.cpu_count()} CPUs for every process (old cluster: ZooKeeper and one "
        "broker; new cluster: 1 or 3 units), shared with whatever else runs: load average at "
        f"start {os.getloadavg()[0]:.1f}; compare the ratios within this run",
        f"heaps: brokers -Xmx{BROKER_HEAP_MB}m, MirrorMaker -Xmx{options.heap_mb}m, "
        f"tools {TOOL_HEAP}",
        "raw write: ProducerPerformance with " + " ".join(RAW_PRODUCER_PROPS),
    ]
    failed = False
    measured: dict[str, Any] = {}
    try:
        measure(options, measured)
    except Exception as error:  # the results say why the run stopped, and so does the exit code
        notes.append(f"the benchmark stopped early: {str(error)[:2000]}")
        failed = True
    results = summarize(options, measured, notes)
    write(results)
    print(markdown(results))
    print(f"written to {RESULTS / 'latest.json'}")
    return 1 if failed else 0
