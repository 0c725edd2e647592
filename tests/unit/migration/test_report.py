# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The migration report: pure computation from fetched offsets and states, and its output."""

from __future__ import annotations

import datetime
import json
import logging
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kafka import errors as kafka_errors
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTopicPartition

from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import (
    MigrationConfig,
    UnitState,
    _ConnectorState,
    _GroupOffsets,
    _MigrationSnapshot,
    _TopicOffsets,
)
from tests.unit.helpers import FAKE_CA

CONFIG = MigrationConfig()
RUNNING = [
    _ConnectorState(connector="MirrorSourceConnector", state="RUNNING"),
    _ConnectorState(connector="MirrorSourceConnector", task=0, state="RUNNING"),
]


def offsets(*ends: int, starts: tuple[int, ...] | None = None) -> _TopicOffsets:
    return _TopicOffsets(start=starts or (0,) * len(ends), end=ends)


def snapshot(**fields: object) -> _MigrationSnapshot:
    """An in-sync migration of `orders` (two partitions) with group `billing` at its end."""
    defaults: dict[str, object] = {
        "source_topics": {"orders": offsets(100, 200)},
        "target_topics": {"orders": offsets(100, 200)},
        "source_groups": [_GroupOffsets(group="billing", offsets={"orders": {0: 100, 1: 200}})],
        "target_groups": {"billing": {"orders": {0: 100, 1: 200}}},
        "connectors": RUNNING,
        "units": {"kafka-k8s/0": UnitState(service="active")},
    }
    return _MigrationSnapshot.model_validate(defaults | fields)


def report(config: MigrationConfig = CONFIG, /, **fields: object) -> mm.MigrationReport:
    threshold = fields.pop("lag_threshold", 0)
    topic = fields.pop("topic", None)
    return mm._build_report(
        snapshot(**fields),
        config,
        source="old",
        lag_threshold=int(threshold),  # type: ignore[arg-type]
        topic=topic,  # type: ignore[arg-type]
    )


# Topics ------------------------------------------------------------------------------------------


def test_in_sync_is_ready_for_cutover():
    result = report()
    assert result.ready_for_cutover
    assert result.reasons == []
    assert result.summary() == ("active", "in sync with old: ready for cutover")
    assert (result.lag, result.source_records, result.target_records) == (0, 300, 300)


def test_records_deleted_on_the_source_before_the_copy_do_not_count():
    result = report(source_topics={"orders": offsets(100, 200, starts=(60, 0))})
    assert result.topics[0].lag == 0
    assert result.topics[0].source_end_offset == 300
    assert result.topics[0].target_end_offset == 300
    assert result.ready_for_cutover


def test_a_partition_ahead_does_not_hide_one_behind():
    result = report(target_topics={"orders": offsets(110, 150)})
    assert result.topics[0].lag == 50
    assert result.reasons[0] == "topic orders: 50 records behind"


def test_lag_threshold():
    lagging = {"target_topics": {"orders": offsets(100, 190)}}
    assert not report(**lagging).ready_for_cutover
    assert report(lag_threshold=10, **lagging).ready_for_cutover


def test_topic_missing_on_the_target():
    result = report(target_topics={}, target_groups={})
    assert result.topics[0].target_end_offset is None
    assert result.topics[0].lag == 300
    assert result.reasons == ["topic orders is not on the target yet"]


def test_nothing_selected_is_not_ready():
    result = report(source_topics={}, target_topics={}, source_groups=[])
    assert result.reasons == ["no source topic is selected for migration"]


def test_prefixed_policy_compares_the_renamed_copy():
    config = MigrationConfig(replication_policy="prefixed")
    result = report(
        config,
        target_topics={"source.orders": offsets(100, 200)},
        target_groups={"billing": {"source.orders": {0: 100, 1: 200}}},
    )
    assert result.topics[0].target_topic == "source.orders"
    assert result.ready_for_cutover


# Groups ------------------------------------------------------------------------------------------


def test_group_lag_is_what_mirrormakers_offsets_would_make_a_consumer_read_again():
    result = report(target_groups={"billing": {"orders": {0: 100, 1: 180}}})
    [group] = result.groups
    assert (group.lag, group.synced) == (20, False)
    assert group.topics[0].source_committed == 300
    assert group.topics[0].target_committed == 280
    # switch-group and finish-migration set exact offsets: MirrorMaker's do not hold it up.
    assert result.reasons == []
    assert result.ready_for_cutover


def test_group_lag_does_not_depend_on_where_the_copy_starts():
    result = report(
        source_topics={"orders": offsets(100, 200, starts=(40, 40))},
        target_topics={"orders": offsets(60, 160)},
        source_groups=[_GroupOffsets(group="billing", offsets={"orders": {0: 90, 1: 200}})],
        target_groups={"billing": {"orders": {0: 50, 1: 160}}},
    )
    assert result.groups[0].lag == 0
    assert result.ready_for_cutover


def test_group_without_target_offsets_is_not_synced():
    result = report(target_groups={"billing": {"orders": {0: 100}}})
    assert result.groups[0].topics[0].missing_partitions == 1
    assert result.groups[0].synced is False
    assert result.reasons == []


def test_group_on_topics_not_migrated_is_left_out():
    result = report(source_groups=[_GroupOffsets(group="other", offsets={"audit": {0: 5}})])
    assert result.groups == []


def test_active_group_is_not_ready_for_cutover():
    group = _GroupOffsets(group="billing", state="stable", members=3, offsets={"orders": {0: 100}})
    result = report(source_groups=[group])
    assert (result.groups[0].active, result.groups[0].members) == (True, 3)
    assert result.groups[0].state == "stable"
    assert result.reasons == ["group billing: 3 consumers still read from the source cluster"]
    assert result.summary() == (
        "active",
        "migrating from old: 1 topic, lag 0 records; group billing: 3 consumers still read "
        "from the source cluster",
    )


def test_groups_are_not_a_reason_when_their_offsets_are_not_synced():
    config = MigrationConfig(sync_group_offsets=False)
    result = report(config, target_groups={})
    assert result.groups[0].synced is False
    assert result.ready_for_cutover


# MirrorMaker's connectors and units -------------------------------------------------------------


TRACE = (
    "org.apache.kafka.connect.errors.ConnectException: Unrecoverable exception from producer "
    "send callback\n\tat org.apache.kafka.connect.runtime.WorkerSourceTask.x(W.java:343)\n"
    "Caused by: org.apache.kafka.common.errors.RecordTooLargeException: The message is 1500087 "
    "bytes\n\tat y(Y.java:1)\n"
)


def test_trace_summary_keeps_the_exception_and_its_root_cause():
    assert mm._trace_summary(TRACE) == (
        "ConnectException: Unrecoverable exception from producer send callback; caused by "
        "RecordTooLargeException: The message is 1500087 bytes"
    )
    assert mm._trace_summary(None) is None
    assert len(mm._trace_summary("java.lang.Error: " + "x" * 1000) or "") == mm._ERROR_CHARS


def test_connector_states_from_connects_topics():
    configs = {
        "connector-MirrorSourceConnector": b'{"secret": "never parsed"}',
        "commit-MirrorSourceConnector": b'{"tasks":2}',
        "task-MirrorSourceConnector-0": b"{}",
        "connector-MirrorCheckpointConnector": None,
        "commit-MirrorCheckpointConnector": b'{"tasks":1}',
        "session-key": b"{}",
    }
    statuses = {
        "status-connector-MirrorSourceConnector": b'{"state":"RUNNING","trace":null}',
        "status-task-MirrorSourceConnector-0": json.dumps(
            {"state": "FAILED", "trace": TRACE, "worker_id": "source->target"}
        ).encode(),
        "status-task-MirrorSourceConnector-5": b'{"state":"UNASSIGNED"}',
        "status-connector-MirrorCheckpointConnector": b'{"state":"RUNNING"}',
        "status-topic-orders:connector-MirrorSourceConnector": b'{"topic":{}}',
    }
    states = mm._connector_states(configs, statuses)
    assert [(s.connector, s.task, s.state) for s in states] == [
        ("MirrorSourceConnector", None, "RUNNING"),
        ("MirrorSourceConnector", 0, "FAILED"),
        ("MirrorSourceConnector", 1, "UNASSIGNED"),
    ]
    assert states[1].trace == TRACE


def test_connector_states_survive_bad_records():
    configs = {"connector-A": b"{}", "commit-A": b"not json"}
    statuses = {"status-connector-A": b"[1, 2]"}
    assert mm._connector_states(configs, statuses) == [
        _ConnectorState(connector="A", state="UNASSIGNED")
    ]


def test_failed_task_blocks():
    failed = _ConnectorState(
        connector="MirrorSourceConnector", task=0, state="FAILED", trace=TRACE
    )
    result = report(connectors=[RUNNING[0], failed])
    assert result.reasons == [f"MirrorSourceConnector-0 failed: {mm._trace_summary(TRACE)}"]
    kind, message = result.summary()
    assert kind == "blocked"
    assert message.startswith("MirrorMaker MirrorSourceConnector-0 failed: ConnectException")
    assert len(message) <= mm._STATUS_CHARS


def test_connectors_not_started_yet():
    assert report(connectors=[]).reasons == ["MirrorMaker has not started its connectors yet"]


def test_units_not_running():
    units = {"kafka-k8s/0": UnitState(service="active"), "kafka-k8s/1": UnitState()}
    result = report(units=units)
    assert result.reasons == ["kafka-k8s/1: MirrorMaker is absent"]
    assert result.summary() == (
        "active",
        "migrating from old: 1 topic, lag 0 records; kafka-k8s/1: MirrorMaker is absent",
    )
    assert report(units={"kafka-k8s/0": UnitState()}).reasons[0] == "MirrorMaker runs on no unit"


def test_outside_a_charm_units_are_not_reported():
    result = report(units=None)
    assert result.units is None
    assert result.ready_for_cutover
    assert "units" not in mm._report_results(result)


# Problems ----------------------------------------------------------------------------------------


def test_unreachable_source_is_the_first_reason_and_blocks():
    problem = mm._ClusterProblem(role="source", message="source cluster at h:1 did not answer")
    result = report(source_topics={}, source_groups=[], problems=[problem])
    assert result.reasons == ["source cluster at h:1 did not answer"]
    assert result.summary() == ("blocked", "source cluster at h:1 did not answer")
    results = mm._report_results(result)
    assert results["clusters"] == {
        "source": "source cluster at h:1 did not answer",
        "target": "reachable",
    }
    assert results["ready-for-cutover"] == "false"


def test_many_reasons_are_capped():
    topics = {f"t{n:03}": offsets(10) for n in range(50)}
    result = report(source_topics=topics, target_topics={}, source_groups=[])
    assert len(result.reasons) == mm._MAX_REASONS + 1
    assert result.reasons[-1] == f"... and {50 - mm._MAX_REASONS} more"


# Output ------------------------------------------------------------------------------------------


def test_results_for_one_topic_carry_its_partitions():
    result = report(topic="orders", target_topics={"orders": offsets(100, 150)})
    results = mm._report_results(result)
    assert [p["lag"] for p in json.loads(results["partitions"])] == [0, 50]
    assert "partitions" not in mm._report_results(report())


def test_table_has_a_section_for_each_part():
    table = mm.format_table(report(topic="orders"))
    lines = table.splitlines()
    assert lines[:2] == ["in sync with old: ready for cutover", "ready for cutover: yes"]
    for header in ("TOPIC", "PARTITION ", "GROUP", "UNIT", "CONNECTOR/TASK"):
        assert any(line.startswith(header) for line in lines), header


def test_table_numbers_have_thousands_separators():
    big = {"orders": offsets(1_000_000, 2_000_000)}
    table = mm.format_table(report(source_topics=big, target_topics=big, source_groups=[]))
    assert "3,000,000" in table


def test_unknown_results():
    results = mm._unknown_results("no source", {"kafka-k8s/0": UnitState()})
    assert results == {
        "summary": "no source",
        "ready-for-cutover": "false",
        "reasons": '["no source"]',
        "units": {"kafka-k8s-0": {"service": "absent", "exactly-once": "disabled"}},
    }


# The adapter -------------------------------------------------------------------------------------


def test_refused_login_is_told_apart_from_no_answer():
    cluster = mm.SourceCluster(name="old", bootstrap_servers=("h:1",), username="u", password="p")
    client = mm._ClusterClient(cluster, "source", timeout=1)
    timeout = kafka_errors.KafkaTimeoutError("Unable to bootstrap from ['h:1']")
    assert client._unreachable(timeout).message == (
        "source cluster at h:1 did not answer: timed out"
    )
    refused_connection = kafka_errors.KafkaConnectionError("111 ECONNREFUSED")
    assert client._unreachable(refused_connection).message == (
        "source cluster at h:1 did not answer: Connection refused"
    )
    # What kafka-python's I/O thread logs when the broker turns the login down.
    client._failures.note(
        kafka_errors.SaslAuthenticationFailedError(
            "SaslAuthenticationFailedError: Authentication failed during authentication due to "
            "invalid credentials with SASL mechanism SCRAM-SHA-512"
        )
    )
    refused = client._unreachable(timeout)
    assert refused.refused
    assert refused.message == (
        "source cluster at h:1 refused the login of u: Authentication failed during "
        "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
    )
    denied = kafka_errors.GroupAuthorizationFailedError("denied")
    assert mm._ClusterClient(cluster, "source")._unreachable(denied).message == (
        "source cluster at h:1 refused the request: group authorization failed"
    )


def test_connection_failures_are_taken_from_the_clients_own_thread():
    failures = mm._ConnectionFailures("kafka-k8s-migration-status-source")
    refusal = kafka_errors.SaslAuthenticationFailedError("SaslAuthenticationFailedError: no")

    def record(thread: str, *args: object) -> logging.LogRecord:
        made = logging.LogRecord("kafka.net.manager", logging.WARNING, "", 0, "%s %s", args, None)
        made.threadName = thread
        return made

    failures.emit(record("kafka-io-kafka-k8s-migration-status-target", "bootstrap-0", refusal))
    assert failures.refusal is None
    failures.emit(record("kafka-io-kafka-k8s-migration-status-source", "bootstrap-0", refusal))
    assert failures.refusal == "no"
    connection = kafka_errors.KafkaConnectionError("111 ECONNREFUSED")
    failures.emit(record("kafka-io-kafka-k8s-migration-status-source", "bootstrap-0", connection))
    assert failures.last == "Connection refused"


def _certificate(subject: str, issuer: str, *, ca: bool) -> tuple[x509.Certificate, Any]:
    """A certificate for `subject` signed by a new key in the name of `issuer`, and the key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    return builder.sign(key, hashes.SHA256()), key


def _server_certificate(tmp_path: Path) -> ssl.SSLContext:
    """A TLS server context whose certificate another CA signed (not `test_ca`)."""
    certificate, key = _certificate("127.0.0.1", "another CA", ca=False)
    (tmp_path / "server.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    return context


def test_a_failed_tls_handshake_names_the_ca_to_check(test_ca: str, tmp_path: Path):
    """A real TLS handshake on loopback, with a server certificate the CA did not sign."""
    context = _server_certificate(tmp_path)
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.1)

        def serve() -> None:
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                with connection:
                    connection.settimeout(2)
                    try:
                        context.wrap_socket(connection, server_side=True).close()
                    except (ssl.SSLError, OSError):
                        pass

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        cluster = mm.SourceCluster(
            name="old",
            bootstrap_servers=(address,),
            username="u",
            password="p",
            security_protocol="SASL_SSL",
            ca=test_ca,
        )
        began = time.monotonic()
        with mm._ClusterClient(cluster, "source", timeout=1) as client:
            with pytest.raises(mm.ClusterUnreachableError) as raised:
                client.topics()
        assert time.monotonic() - began < 10
        stop.set()
        server.join()
    assert raised.value.refused
    assert raised.value.message.startswith(
        f"source cluster at {address}: TLS handshake failed, the CA (`ca` of "
        "mirrormaker-source-credentials, or tls-ca of migration-source) did not verify its "
        "certificate: certificate verify failed: "
    )


def test_the_source_of_a_relation_response():
    source = mm._source_from_relation(
        "old", endpoints="h:1,h:2", username="u", password="p", tls=True, tls_ca=FAKE_CA
    )
    assert source.bootstrap_servers == ("h:1", "h:2")
    assert (source.security_protocol, source.ca) == ("SASL_SSL", FAKE_CA)
    plain = mm._source_from_relation(
        "old", endpoints="h:1", username="u", password="p", tls=False, tls_ca=None
    )
    assert (plain.security_protocol, plain.ca) == ("SASL_PLAINTEXT", None)
    with pytest.raises(mm.SourceError, match="old sent a tls-ca that is not a PEM certificate"):
        mm._source_from_relation(
            "old", endpoints="h:1", username="u", password="p", tls=True, tls_ca="nope"
        )
    with pytest.raises(mm.SourceError, match="old sent endpoints that are not HOST:PORT"):
        mm._source_from_relation(
            "old", endpoints="h", username="u", password="p", tls=True, tls_ca=None
        )


def test_report_on_clusters_that_do_not_answer_is_bounded():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    servers = (f"127.0.0.1:{port}",)
    source = mm.SourceCluster(name="old", bootstrap_servers=servers, username="u", password="p")
    target = mm.TargetCluster(bootstrap_servers=servers, username="u", password="p")
    began = time.monotonic()
    result = mm.migration_report(source, target, timeout=1)
    assert time.monotonic() - began < 10
    assert [problem.role for problem in result.problems] == ["source", "target"]
    assert result.problems[0].message == (
        f"source cluster at 127.0.0.1:{port} did not answer: Connection refused"
    )
    assert result.summary()[0] == "blocked"
    assert not result.ready_for_cutover


@pytest.fixture(scope="module")
def test_ca() -> str:
    """A real self-signed CA certificate, which `ssl` parses (`FAKE_CA` is not one)."""
    certificate, _ = _certificate("kafka-k8s unit test CA", "kafka-k8s unit test CA", ca=True)
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_group_offsets_client_logs_in_as_the_cluster_user(test_ca: str):
    cluster = mm.SourceCluster(
        name="old",
        bootstrap_servers=("h:1", "h:2"),
        username="u",
        password="p",
        sasl_mechanism="SCRAM-SHA-256",
        security_protocol="SASL_SSL",
        ca=test_ca,
    )
    config = mm._kafka_python_config(cluster, timeout=4)
    context = config.pop("ssl_context")
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1
    assert config == {
        "bootstrap_servers": ["h:1", "h:2"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
        "request_timeout_ms": 4000,
        "bootstrap_timeout_ms": 4000,
        "client_id": "kafka-k8s-migration-status",
    }
    plain = mm._kafka_python_config(cluster.model_copy(update={"ca": None}))
    assert "ssl_context" not in plain


def test_group_commits_keep_the_migrated_topics_and_real_offsets():
    committed = {
        KafkaTopicPartition("orders", 0): OffsetAndMetadata(10, "", -1),
        KafkaTopicPartition("orders", 1): OffsetAndMetadata(-1, "", -1),
        KafkaTopicPartition("other", 0): OffsetAndMetadata(5, "", -1),
    }
    assert mm._commits_on(committed, {"orders"}) == {"orders": {0: 10}}
    assert mm._commits_on({}, {"orders"}) == {}


def test_group_offsets_of_a_cluster_that_does_not_answer_are_bounded():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        servers = (f"127.0.0.1:{silent.getsockname()[1]}",)
        cluster = mm.TargetCluster(bootstrap_servers=servers, username="u", password="p")
        client = mm._ClusterClient(cluster, "target", timeout=1)
        began = time.monotonic()
        with pytest.raises(mm.ClusterUnreachableError) as raised:
            client.committed_offsets(["billing"], {"orders": 12})
        assert time.monotonic() - began < 10
    assert raised.value.message.startswith(f"target cluster at {servers[0]} did not answer")
    assert not raised.value.refused
    assert client.committed_offsets([], {"orders": 12}) == {}


class _LoadingCoordinators:
    """An admin client whose brokers load the group offsets for the first two answers."""

    def __init__(self) -> None:
        self.asked = 0

    def list_groups(self) -> list[dict[str, str]]:
        self.asked += 1
        if self.asked <= 2:
            raise kafka_errors.CoordinatorLoadInProgressError("COORDINATOR_LOAD_IN_PROGRESS")
        return [{"group_id": "billing"}, {"group_id": "analytics"}]

    def describe_groups(self, groups: list[str]) -> dict[str, dict[str, object]]:
        self.asked += 1
        loading = "[Error 14] CoordinatorLoadInProgressError: " if self.asked <= 2 else None
        return {
            group: {"error": loading, "group_state": "Stable", "members": [{}]} for group in groups
        }


def _client_of(admin: object) -> mm._ClusterClient:
    cluster = mm.SourceCluster(name="old", bootstrap_servers=("h:1",), username="u", password="p")
    client = mm._ClusterClient(cluster, "source", timeout=5)
    client._answer = lambda query: query(admin)  # type: ignore[method-assign]
    return client


def test_groups_are_listed_again_while_a_coordinator_loads():
    admin = _LoadingCoordinators()
    assert _client_of(admin).groups() == ["analytics", "billing"]
    assert admin.asked == 3


def test_groups_are_described_again_while_their_coordinator_loads():
    admin = _LoadingCoordinators()
    assert _client_of(admin).describe_groups(["billing"]) == {"billing": ("stable", 1)}
    assert admin.asked == 3


def test_a_group_the_cluster_refuses_to_describe_is_not_asked_again():
    class Refusing(_LoadingCoordinators):
        def describe_groups(self, groups: list[str]) -> dict[str, dict[str, object]]:
            self.asked += 1
            return {
                group: {"error": "[Error 30] GroupAuthorizationFailedError: "} for group in groups
            }

    admin = Refusing()
    with pytest.raises(mm.ClusterUnreachableError) as raised:
        _client_of(admin).describe_groups(["billing"])
    assert admin.asked == 1
    assert raised.value.message == (
        "source cluster at h:1 refused the request: group authorization failed"
    )
