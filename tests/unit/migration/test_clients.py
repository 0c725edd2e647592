# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The cluster clients (`_clients`): bounded queries, failures in plain words, no password logged.

Real kafka-python clients against loopback: closed ports, a silent listener and a TLS server
whose certificate the CA did not sign. kafka-python logs its whole configuration, the SASL
password with it, and every request at DEBUG; ops forwards DEBUG records to `juju debug-log`.
The charm's admin client and the migration library's clients keep kafka-python's loggers at
WARNING.
"""

from __future__ import annotations

import datetime
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

from admin import AdminError, KafkaAdmin
from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import _clients
from tests.unit.helpers import closed_port

# Errors in the operator's words ------------------------------------------------------------------


def test_refused_login_is_told_apart_from_no_answer():
    cluster = mm.SourceCluster(name="old", bootstrap_servers=("h:1",), username="u", password="p")
    client = _clients.ClusterClient(cluster, "source", timeout=1)
    timeout = kafka_errors.KafkaTimeoutError("Unable to bootstrap from ['h:1']")
    assert client.unreachable(timeout).message == (
        "source cluster at h:1 did not answer: timed out"
    )
    refused_connection = kafka_errors.KafkaConnectionError("111 ECONNREFUSED")
    assert client.unreachable(refused_connection).message == (
        "source cluster at h:1 did not answer: Connection refused"
    )
    # What kafka-python's I/O thread logs when the broker turns the login down.
    client._failures.note(
        kafka_errors.SaslAuthenticationFailedError(
            "SaslAuthenticationFailedError: Authentication failed during authentication due to "
            "invalid credentials with SASL mechanism SCRAM-SHA-512"
        )
    )
    refused = client.unreachable(timeout)
    assert refused.refused
    assert refused.message == (
        "source cluster at h:1 refused the login of u: Authentication failed during "
        "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
    )
    denied = kafka_errors.GroupAuthorizationFailedError("denied")
    assert _clients.ClusterClient(cluster, "source").unreachable(denied).message == (
        "source cluster at h:1 refused the request: group authorization failed"
    )


def test_connection_failures_are_taken_from_the_clients_own_thread():
    failures = _clients._ConnectionFailures("kafka-k8s-migration-status-source")
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
        with _clients.ClusterClient(cluster, "source", timeout=1) as client:
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


# Logging in, and the group offsets ---------------------------------------------------------------


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
    config = _clients.kafka_python_config(cluster, timeout=4)
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
    plain = _clients.kafka_python_config(cluster.model_copy(update={"ca": None}))
    assert "ssl_context" not in plain


def test_group_commits_keep_the_migrated_topics_and_real_offsets():
    committed = {
        KafkaTopicPartition("orders", 0): OffsetAndMetadata(10, "", -1),
        KafkaTopicPartition("orders", 1): OffsetAndMetadata(-1, "", -1),
        KafkaTopicPartition("other", 0): OffsetAndMetadata(5, "", -1),
    }
    assert _clients._commits_on(committed, {"orders"}) == {"orders": {0: 10}}
    assert _clients._commits_on({}, {"orders"}) == {}


def test_group_offsets_of_a_cluster_that_does_not_answer_are_bounded():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        servers = (f"127.0.0.1:{silent.getsockname()[1]}",)
        cluster = mm.TargetCluster(bootstrap_servers=servers, username="u", password="p")
        client = _clients.ClusterClient(cluster, "target", timeout=1)
        began = time.monotonic()
        with pytest.raises(mm.ClusterUnreachableError) as raised:
            client.committed_offsets(["billing"], {"orders": 12})
        assert time.monotonic() - began < 10
    assert raised.value.message.startswith(f"target cluster at {servers[0]} did not answer")
    assert not raised.value.refused
    assert client.committed_offsets([], {"orders": 12}) == {}


# Coordinators that load the group offsets --------------------------------------------------------


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


def _client_of(admin: object) -> _clients.ClusterClient:
    cluster = mm.SourceCluster(name="old", bootstrap_servers=("h:1",), username="u", password="p")
    client = _clients.ClusterClient(cluster, "source", timeout=5)
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


# No password in any log --------------------------------------------------------------------------


PASSWORD = "pw-never-logged-4711"


def test_no_password_in_any_log_at_debug(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="kafka")
    caplog.set_level(logging.DEBUG, logger="kafka.admin.client")
    address = closed_port()
    source = mm.SourceCluster(
        name="old", bootstrap_servers=(address,), username="u", password=PASSWORD
    )
    target = mm.TargetCluster(bootstrap_servers=(address,), username="u", password=PASSWORD)
    began = time.monotonic()
    report = mm.migration_report(source, target, timeout=1)
    assert [problem.role for problem in report.problems] == ["source", "target"]
    with KafkaAdmin(address, "admin", PASSWORD, timeout=1) as admin:
        with pytest.raises(AdminError, match="setting the credentials of relation-1"):
            admin.upsert_user("relation-1", PASSWORD)
        with pytest.raises(AdminError, match="listing users"):
            admin.list_users()
    assert time.monotonic() - began < 30
    # kafka-python's records of the failed connections are there: the capture is not empty.
    kafka_records = [record for record in caplog.records if record.name.startswith("kafka.")]
    assert any("ECONNREFUSED" in record.getMessage() for record in kafka_records)
    assert all(record.levelno >= logging.WARNING for record in kafka_records)
    assert PASSWORD not in caplog.text
    assert not [record for record in caplog.records if PASSWORD in record.getMessage()]


def test_a_partition_kafka_python_got_no_offset_for_is_asked_again(monkeypatch):
    """kafka-python 3.0 fails with a KeyError on a topic created a moment ago (make demo)."""
    answers: list[Any] = [KeyError("mm2-configs.source.internal-0"), {"new": 7}]

    class Reader:
        def partitions_for_topic(self, topic):
            return {0}

        def end_offsets(self, partitions, timeout_ms):
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return {KafkaTopicPartition(t, 0): e for t, e in answer.items()}

        def close(self):
            pass

    cluster = mm.KafkaCluster(bootstrap_servers=("k:1",), username="u", password="p")
    client = _clients.ClusterClient(cluster, "target", timeout=2)
    monkeypatch.setattr(client, "_client", lambda: object())
    monkeypatch.setattr(client, "_reader", lambda committed=True: Reader())
    assert client.end_offsets({"new": 1}) == {"new": [7]}
    assert answers == []
