# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Issue 6 in the local tier: faults mid-migration, a read-only source, and no leaked secret.

One migration per delivery mode (at least once, the default, and `mirrormaker-exactly-once`):
the ZooKeeper-mode old cluster, read by a user that may only read and describe, copied onto
three units by real MirrorMaker 2 nodes that the library's own `MirrorMakerService` runs under
real Pebble, while a producer writes to the old cluster throughout. The tests run in file
order: faults first, then what the migration did to the source, then a search of everything it
printed for a secret. With exactly-once, a `read_committed` reader of the target finds no
record twice after any fault.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import signal
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from admin import AdminError, KafkaAdmin
from charms.kafka_k8s.v0.mirrormaker import (
    MigrationConfig,
    SourceCluster,
    migration_report,
)
from substrate.migration import (
    MIGRATOR_PASSWORD,
    LiveProducer,
    MirrorMakers,
    commit_offsets,
    committed,
    end_offsets,
    produce,
    records,
    source_cluster,
    source_user,
    target_cluster,
    wait_copied,
)
from substrate.old_cluster import OldCluster
from substrate.processes import (
    LOOPBACK,
    ClientConfig,
    find_processes,
    free_port,
    port_open,
    wait_until,
)
from substrate.units import NewCluster

REFRESH = 10
STATIC = {"orders": (6, 20_000), "payments": (3, 3_000)}
LIVE = "events"
LIVE_PARTITIONS = 3
# Groups the clients of the old cluster own; the migration must leave them as they are.
GROUPS = {"shipping": {("payments", p): 1000 * (p + 1) for p in range(3)}}
MIRRORMAKER_MAIN = "org.apache.kafka.connect.mirror.MirrorMaker"
# Delivery mode: whether `mirrormaker-exactly-once` is set.
DELIVERY = {"at-least-once": False, "exactly-once": True}
SECRET_FILES = ("server.properties", "client.properties", "mm2.properties")


@dataclass(frozen=True)
class SourceSnapshot:
    """What a migration must not change on the source."""

    topics: frozenset[str]
    ends: dict[str, list[int]]
    groups: dict[str, dict[tuple[str, int], int]]


class TcpProxy:
    """A TCP relay on loopback between MirrorMaker and the old broker, that the test can cut.

    `cut` closes the listening socket and every relayed connection, so the source refuses
    connections; `restore` listens again on the same port.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.upstream: tuple[str, int] = (LOOPBACK, 0)
        self.connections = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.restore()

    def restore(self) -> None:
        server = socket.create_server((LOOPBACK, self.port))
        server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, args=(server, self._stop))
        self._thread.daemon = True
        self._thread.start()

    def cut(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            relayed, self._open = list(self._open), set()
        for sock in relayed:
            _close(sock)

    def _accept(self, server: socket.socket, stop: threading.Event) -> None:
        with server:
            while not stop.is_set():
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                try:
                    upstream = socket.create_connection(self.upstream, timeout=5)
                except OSError:
                    _close(client)
                    continue
                for sock in (client, upstream):
                    sock.settimeout(None)
                with self._lock:
                    self._open |= {client, upstream}
                    self.connections += 1
                for source, sink in ((client, upstream), (upstream, client)):
                    pump = threading.Thread(target=self._pump, args=(source, sink), daemon=True)
                    pump.start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def snapshot(config: ClientConfig) -> SourceSnapshot:
    admin = AdminClient(config)
    topics = frozenset(admin.list_topics(timeout=30).topics)
    listed = admin.list_consumer_groups(request_timeout=30).result(timeout=30)
    names = sorted(group.group_id for group in listed.valid)
    return SourceSnapshot(
        topics=topics,
        ends=end_offsets(config, sorted(topics)),
        groups={name: committed(config, name) for name in names},
    )


@dataclass
class Run:
    old: OldCluster
    new: NewCluster
    nodes: MirrorMakers
    live: LiveProducer
    before: SourceSnapshot
    old_config: ClientConfig
    new_config: ClientConfig
    duplicates: dict[str, int]
    exactly_once: bool

    @property
    def source(self) -> SourceCluster:
        """The source as MirrorMaker reaches it: through the proxy."""
        return self.nodes.settings[0].source

    def mirrormaker_pids(self, index: int) -> list[int]:
        return find_processes(MIRRORMAKER_MAIN, self.new.units[index].marker)

    def check_live_topic(self, fault: str, timeout: float = 300) -> None:
        """Stop producing; once the target has every record, compare and count duplicates."""
        written = self.live.stop()
        stopped = time.monotonic()
        source = records(self.old_config, LIVE)
        assert sum(len(items) for items in source.values()) == written
        duplicates = wait_copied(self.old_config, self.new_config, [LIVE], timeout=timeout)
        seconds = time.monotonic() - stopped
        self.duplicates[fault] = duplicates
        print(
            f"\nafter {fault}: {written} records live, all on the target {seconds:.0f}s after "
            f"producers stopped, {duplicates} twice"
        )
        if self.exactly_once:
            assert duplicates == 0, f"exactly-once: {duplicates} records twice after {fault}"
        self.live = LiveProducer(self.old_config, LIVE, written=written).start()


@pytest.fixture(scope="module", params=list(DELIVERY))
def delivery(request: pytest.FixtureRequest) -> str:
    """The delivery mode of the module's migration; each gets its own clusters."""
    return request.param


@pytest.fixture(scope="module")
def proxy(delivery: str) -> Iterator[TcpProxy]:
    relay = TcpProxy()
    yield relay
    relay.cut()


@pytest.fixture(scope="module")
def old_cluster(kafka_cache: Path, local_tmp: Path, proxy: TcpProxy) -> Iterator[OldCluster]:
    """The conftest's old cluster, with a second listener MirrorMaker reaches through `proxy`."""
    tmp = Path(tempfile.mkdtemp(prefix="old-", dir=local_tmp))
    with OldCluster(tmp, cache=kafka_cache, size=1, routed_ports=(proxy.port,)) as cluster:
        proxy.start(cluster.brokers[0].routed_address)
        yield cluster


@pytest.fixture(scope="module")
def new_cluster(kafka_cache: Path, local_tmp: Path, delivery: str) -> Iterator[NewCluster]:
    """Three units of the charm's Kafka, new for each delivery mode."""
    tmp = Path(tempfile.mkdtemp(prefix="new-", dir=local_tmp))
    with NewCluster(tmp, cache=kafka_cache, size=3) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def run(
    old_cluster: OldCluster, new_cluster: NewCluster, proxy: TcpProxy, delivery: str
) -> Iterator[Run]:
    old_config = old_cluster.admin_config()
    source_user(old_cluster)
    admin = AdminClient(old_config)
    topics = [NewTopic(n, num_partitions=p, replication_factor=1) for n, (p, _) in STATIC.items()]
    topics.append(NewTopic(LIVE, num_partitions=LIVE_PARTITIONS, replication_factor=1))
    for future in admin.create_topics(topics).values():
        future.result(timeout=60)
    for name, (_, count) in STATIC.items():
        produce(old_config, name, 0, count)
    for group, offsets in GROUPS.items():
        commit_offsets(old_config, group, offsets)
    before = snapshot(old_config)
    config = MigrationConfig.from_options(
        {
            "mirrormaker-refresh-interval": REFRESH,
            "mirrormaker-tasks-max": 6,
            "mirrormaker-exactly-once": DELIVERY[delivery],
        }
    )
    source = source_cluster(old_cluster).model_copy(update={"bootstrap_servers": (proxy.address,)})
    nodes = MirrorMakers.on(new_cluster, source, target_cluster(new_cluster), config)
    live = LiveProducer(old_config, LIVE).start()
    nodes.run()
    state = Run(
        old_cluster,
        new_cluster,
        nodes,
        live,
        before,
        old_config,
        new_cluster.admin_config(),
        {},
        DELIVERY[delivery],
    )
    try:
        yield state
    finally:
        state.live.stop()
        nodes.stop()


def test_the_target_catches_up_while_producers_write(run: Run):
    support = "enabled" if run.exactly_once else "disabled"
    for service in run.nodes.services:
        rendered = Path(str(service.workload.mm2_properties)).read_text()
        assert f"target.exactly.once.source.support={support}\n" in rendered
    wait_until(lambda: run.live.written >= 2000, timeout=120, what="the live producer")
    twice = wait_copied(run.old_config, run.new_config, list(STATIC), timeout=600)
    print(f"\n{list(STATIC)} on the target, {twice} records copied twice")
    run.check_live_topic("no fault")


def test_mirrormaker_killed_three_times_is_restarted_by_pebble(run: Run):
    unit = run.new.units[0]
    for kill in range(3):
        wait_until(
            lambda: (
                len(run.mirrormaker_pids(0)) == 1
                and port_open(unit.workload.ports.mirrormaker_rest)
            ),
            timeout=120,
            what="MirrorMaker of unit 0 to serve",
        )
        (pid,) = run.mirrormaker_pids(0)
        os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda pid=pid: (
                run.mirrormaker_pids(0) not in ([], [pid])
                and unit.container.get_service("mirrormaker").is_running()
            ),
            timeout=120,
            what=f"Pebble to restart MirrorMaker after kill {kill + 1}",
        )
    # A restarted node is a new Connect worker: the tasks of the killed one are reassigned only
    # after scheduled.rebalance.max.delay.ms (5 minutes by default).
    run.check_live_topic("3 kill -9 of MirrorMaker", timeout=480)


def test_a_target_broker_restart_loses_nothing(run: Run):
    unit = run.new.units[1]
    before = unit.broker_pid()
    unit.container.restart("kafka")
    wait_until(
        lambda: unit.broker_pid() not in (None, before),
        timeout=60,
        what="a new broker process on unit 1",
    )
    run.new.wait_ready(timeout=180)
    run.check_live_topic("target broker restart")


def test_an_unreachable_source_is_reported_and_mirrormaker_resumes(run: Run, proxy: TcpProxy):
    target = run.nodes.settings[0].target
    pids = [run.mirrormaker_pids(index) for index in range(3)]
    proxy.cut()
    cut = time.monotonic()
    report = migration_report(run.source, target, units=run.nodes.unit_states(), timeout=5)
    assert [problem.role for problem in report.problems] == ["source"]
    unreachable = report.problems[0].message
    assert f"source cluster at {proxy.address} did not answer" in unreachable
    print(f"\nwhile cut: {unreachable}; reasons {report.reasons}")
    wait_until(lambda: time.monotonic() - cut >= 60, timeout=90, what="60 s of outage")
    connections = proxy.connections
    proxy.restore()
    wait_until(
        lambda: proxy.connections > connections, timeout=120, what="MirrorMaker to reconnect"
    )
    run.check_live_topic("source unreachable for 60 s")
    same = pids == [run.mirrormaker_pids(index) for index in range(3)]
    print(f"MirrorMaker processes {'unchanged' if same else 'restarted'} across the outage")


def test_the_migration_wrote_nothing_to_the_source(run: Run):
    written = run.live.stop()
    after = snapshot(run.old_config)
    assert after.topics == run.before.topics
    expected = {**run.before.ends, LIVE: after.ends[LIVE]}
    assert after.ends == expected
    assert sum(after.ends[LIVE]) == written
    assert after.groups == run.before.groups
    print(f"\nsource unchanged: {len(after.topics)} topics, groups {sorted(after.groups)}")


def test_the_source_user_may_not_write(run: Run):
    user = {**run.old_config, "sasl.username": "migrator", "sasl.password": MIGRATOR_PASSWORD}
    errors: list[KafkaError | None] = []
    producer = Producer({**user, "message.timeout.ms": 15000})
    producer.produce("orders", value=b"x", on_delivery=lambda error, _: errors.append(error))
    assert producer.flush(30) == 0
    assert len(errors) == 1
    assert errors[0] is not None
    assert errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_secret_files_are_private_to_the_workload_user(run: Run):
    found = []
    for unit in run.new.units:
        for name in SECRET_FILES:
            for path in unit.root.rglob(name):
                info = path.stat()
                assert stat.S_IMODE(info.st_mode) == 0o600, path
                assert pwd.getpwuid(info.st_uid).pw_name == unit.workload.user, path
                found.append(name)
    assert sorted(set(found)) == sorted(SECRET_FILES)
    print(f"\n{len(found)} secret files, all 0600 and owned by the workload user")


def test_no_secret_in_any_output(run: Run, caplog: pytest.LogCaptureFixture):
    # kafka-python logs its configuration and every request at DEBUG: the clients keep it quiet.
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="kafka")
    units = run.nodes.unit_states()
    report = migration_report(run.source, run.nodes.settings[0].target, units=units)
    shown = [json.dumps(report.results(table=table)) for table in (False, True)]
    wrong = run.source.model_copy(update={"password": "wrong-pw-6502"})
    refused = migration_report(wrong, run.nodes.settings[0].target, units=units, timeout=15)
    # The source may still be coming back from the fault tests above: until it answers, a
    # wrong password is "did not answer", not "refused".
    deadline = time.monotonic() + 90
    while [p.refused for p in refused.problems] != [True] and time.monotonic() < deadline:
        time.sleep(3)
        refused = migration_report(wrong, run.nodes.settings[0].target, units=units, timeout=15)
    assert [problem.refused for problem in refused.problems] == [True]
    print(f"\nwith a wrong password: {refused.problems[0].message}")
    shown += [json.dumps(refused.results(table=table)) for table in (False, True)]
    new = run.new
    with KafkaAdmin(new.bootstrap, new.admin_username, new.admin_password) as admin:
        admin.upsert_user("log-check", "log-check-pw-8086")
        admin.delete_user("log-check")
    with KafkaAdmin(new.bootstrap, new.admin_username, "wrong-admin-pw-6809", timeout=5) as admin:
        with pytest.raises(AdminError):
            admin.list_users()
    shown.append(caplog.text)
    logs = [*run.new.log_files(), *run.old.log_files()]
    for path in logs:
        shown.append(path.read_text(errors="replace"))
    credentials = run.new.credentials
    secrets = {
        MIGRATOR_PASSWORD,
        json.dumps(MIGRATOR_PASSWORD)[1:-1],
        "wrong-pw-6502",
        "log-check-pw-8086",
        "wrong-admin-pw-6809",
        run.old.admin_password,
        credentials.admin_password,
        credentials.controller_password,
        credentials.mirrormaker_password,
    }
    leaks = [
        (secret, index) for secret in secrets for index, text in enumerate(shown) if secret in text
    ]
    assert leaks == []
    size = sum(len(text) for text in shown)
    print(f"\nsearched {len(logs)} log files and 3 reports ({size} characters): no secret")


def test_duplicates_per_fault(run: Run):
    print(f"\nduplicates on the target per fault: {run.duplicates}")
    assert set(run.duplicates) == {
        "no fault",
        "3 kill -9 of MirrorMaker",
        "target broker restart",
        "source unreachable for 60 s",
    }
