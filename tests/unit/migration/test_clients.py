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

import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from kafka import errors as kafka_errors
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTopicPartition

from admin import AdminError, KafkaAdmin
from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import _clients, _connections
from tests.unit.helpers import (
    CLIENT_CERTIFICATE,
    CLIENT_KEY,
    certificate,
    closed_port,
    http_answer,
    loopback_server,
    pem,
    pem_key,
)

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
        "source cluster at h:1 refused the login of user u: Authentication failed during "
        "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
    )
    denied = kafka_errors.GroupAuthorizationFailedError("denied")
    assert _clients.ClusterClient(cluster, "source").unreachable(denied).message == (
        "source cluster at h:1 refused the request: group authorization failed"
    )


def test_a_login_at_a_listener_without_sasl_is_told_so():
    """A PLAINTEXT or SSL listener answers SaslHandshake with ILLEGAL_SASL_STATE."""
    cluster = mm.SourceCluster(name="old", bootstrap_servers=("h:1",), username="u", password="p")
    client = _clients.ClusterClient(cluster, "source", timeout=1)
    assert client.unreachable(kafka_errors.IllegalSaslStateError()).message == (
        "source cluster at h:1 did not answer: illegal sasl state (with security-protocol "
        "SASL_PLAINTEXT: the listener takes no SASL login; then set PLAINTEXT or SSL)"
    )


def test_connection_failures_are_taken_from_the_clients_own_thread():
    failures = _connections._ConnectionFailures("kafka-k8s-migration-status-source")
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


def _server_certificate(tmp_path: Path) -> ssl.SSLContext:
    """A TLS server context whose certificate another CA signed (not `test_ca`)."""
    made, key = certificate("127.0.0.1", "another CA", ca=False)
    (tmp_path / "server.pem").write_bytes(made.public_bytes(serialization.Encoding.PEM))
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


def _tls_server(context: ssl.SSLContext) -> Callable[[socket.socket], None]:
    """A handler that shakes hands, reads a request and closes (a TLS listener).

    A failed handshake is answered with its alert, and what the client sent meanwhile is read
    before the connection closes: closing with unread data would reset it, and the client might
    never read the alert.
    """

    def handle(connection: socket.socket) -> None:
        try:
            with context.wrap_socket(connection, server_side=True) as wrapped:
                wrapped.recv(1024)
        except ssl.SSLError:
            connection.shutdown(socket.SHUT_WR)
            connection.settimeout(0.5)
            while connection.recv(65536):
                pass

    return handle


def _plain_server(connection: socket.socket) -> None:
    """A handler that reads what comes and closes, as Kafka does with a TLS ClientHello."""
    connection.recv(1024)


def _failure(cluster: mm.KafkaCluster) -> mm.ClusterUnreachableError:
    began = time.monotonic()
    with _clients.ClusterClient(cluster, "source", timeout=1) as client:
        with pytest.raises(mm.ClusterUnreachableError) as raised:
            client.topics()
    assert time.monotonic() - began < 10
    return raised.value


def test_a_failed_tls_handshake_names_the_ca_to_check(test_ca: str, tmp_path: Path):
    """A real TLS handshake on loopback, with a server certificate the CA did not sign."""
    with loopback_server(_tls_server(_server_certificate(tmp_path))) as address:
        cluster = mm.SourceCluster(
            name="old",
            bootstrap_servers=(address,),
            username="u",
            password="p",
            security_protocol="SASL_SSL",
            ca=test_ca,
        )
        failure = _failure(cluster)
    assert failure.refused
    assert failure.message.startswith(
        f"source cluster at {address}: TLS handshake failed, the CA (`ca` of "
        "mirrormaker-source-credentials, or tls-ca of migration-source) did not verify its "
        "certificate: certificate verify failed: "
    )


def test_a_plain_client_at_a_tls_listener_is_told_to_use_tls(tmp_path: Path):
    with loopback_server(_tls_server(_server_certificate(tmp_path))) as address:
        cluster = mm.SourceCluster(
            name="old", bootstrap_servers=(address,), security_protocol="PLAINTEXT"
        )
        failure = _failure(cluster)
    assert failure.message.startswith(f"source cluster at {address} did not answer: ")
    assert failure.message.endswith(
        "(with security-protocol PLAINTEXT; a TLS listener closes it: then set SSL or SASL_SSL; "
        "one that expects a login: SASL_PLAINTEXT)"
    )


def test_a_tls_client_at_a_plain_listener_is_told_so(test_ca: str):
    with loopback_server(_plain_server) as address:
        cluster = mm.SourceCluster(
            name="old", bootstrap_servers=(address,), security_protocol="SSL", ca=test_ca
        )
        failure = _failure(cluster)
    assert failure.message.startswith(
        f"source cluster at {address}: TLS handshake failed: if this address is no TLS listener,"
        " security-protocol must be PLAINTEXT or SASL_PLAINTEXT; if it asks for a client "
        "certificate, set client-certificate and client-key: "
    )


def _mutual_tls_server(tmp_path: Path, client_ca: str) -> tuple[ssl.SSLContext, str]:
    """A server that requires a client certificate from `client_ca`, and its own CA."""
    authority, authority_key = certificate("server CA", "server CA", ca=True)
    made, key = certificate("127.0.0.1", "server CA", ca=False)
    signed = (
        x509.CertificateBuilder()
        .subject_name(made.subject)
        .issuer_name(authority.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(made.not_valid_before_utc)
        .not_valid_after(made.not_valid_after_utc)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(authority_key, hashes.SHA256())
    )
    (tmp_path / "server.pem").write_text(pem(signed))
    (tmp_path / "server.key").write_text(pem_key(key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=client_ca)
    return context, pem(authority)


@pytest.mark.parametrize("presented", [True, False])
def test_a_refused_client_certificate_is_named(tmp_path: Path, presented: bool):
    """The server trusts another CA than the client certificate's, or gets none."""
    other, _ = certificate("other clients' CA", "other clients' CA", ca=True)
    context, server_ca = _mutual_tls_server(tmp_path, pem(other))
    login = {"client_certificate": CLIENT_CERTIFICATE, "client_key": CLIENT_KEY}
    with loopback_server(_tls_server(context)) as address:
        cluster = mm.SourceCluster.model_validate(
            {
                "name": "old",
                "bootstrap_servers": address,
                "security_protocol": "SSL",
                "ca": server_ca,
                **(login if presented else {}),
            }
        )
        failure = _failure(cluster)
    # The server's alert names the refusal; at times the connection closes before it arrives,
    # and the message names both causes a closed handshake can have.
    expected = (
        ("it refused the client certificate (client-certificate)", "check client-certificate")
        if presented
        else (
            "it asks for a client certificate: set client-certificate and client-key",
            "set client-certificate and client-key",
        )
    )
    assert failure.message.startswith(f"source cluster at {address}: TLS handshake failed")
    assert expected[0] in failure.message or expected[1] in failure.message
    assert failure.refused


def test_a_token_endpoint_that_refuses_the_client_is_named_before_kafka_is_asked():
    with loopback_server(http_answer(401, b'{"error":"invalid_client"}')) as endpoint:
        cluster = mm.SourceCluster(
            name="old",
            bootstrap_servers=(closed_port(),),
            sasl_mechanism="OAUTHBEARER",
            oauth=mm.OAuthClient(
                token_endpoint=f"http://{endpoint}/token", client_id="c", client_secret="s"
            ),
        )
        failure = _failure(cluster)
    assert failure.message == (
        f"source cluster at {cluster.bootstrap}: token endpoint http://{endpoint}/token refused "
        "client c: HTTP 401 invalid_client (check oauth-client-id, oauth-client-secret and "
        "oauth-scope)"
    )
    assert failure.refused


# Logging in, and the group offsets ---------------------------------------------------------------


@pytest.fixture(scope="module")
def test_ca() -> str:
    """A real self-signed CA certificate, which `ssl` parses (`FAKE_CA` is not one)."""
    made, _ = certificate("kafka-k8s unit test CA", "kafka-k8s unit test CA", ca=True)
    return pem(made)


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
    config = _connections.kafka_python_config(cluster, timeout=4)
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
    system = _connections.kafka_python_config(cluster.model_copy(update={"ca": None}))
    assert system["ssl_context"].verify_mode == ssl.CERT_REQUIRED  # the system's CAs
    plain = _connections.kafka_python_config(
        cluster.model_copy(update={"ca": None, "security_protocol": "SASL_PLAINTEXT"})
    )
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


# Groups of the consumer protocol (KIP-848), and the rights on old brokers -----------------------


class _Kafka4:
    """An admin client of Kafka 4: DescribeGroups knows classic groups only (facts.md)."""

    def __init__(self, state: str) -> None:
        self.state = state

    def describe_groups(self, groups: list[str]) -> dict[str, dict[str, object]]:
        return {
            "billing": {
                "error": "[Error 69] GroupIdNotFoundError: Group billing is not a classic group.",
                "group_state": "Dead",
                "members": [],
            },
            "legacy": {"error": None, "group_state": "Empty", "members": []},
        }

    def list_groups(self) -> list[dict[str, str]]:
        return [
            {"group_id": "billing", "group_type": "consumer", "group_state": self.state},
            {"group_id": "legacy", "group_type": "classic", "group_state": "Empty"},
        ]


@pytest.mark.parametrize(
    ("state", "described"), [("Stable", ("stable", 1)), ("Empty", ("empty", 0))]
)
def test_a_consumer_protocol_group_with_members_counts_as_consuming(state, described):
    """Kafka 4 answers "not a classic group", Dead, no members, while its consumers read."""
    groups = _client_of(_Kafka4(state)).describe_groups(["billing", "legacy"])
    assert groups == {"billing": described, "legacy": ("empty", 0)}


class _Kafka28:
    """An admin client of Kafka 2.8 to 3.6: kafka-python cannot read DescribeCluster v0."""

    def __init__(self, error: type[Exception] | None) -> None:
        self.error = error

    def describe_topics(self, topics: list[str]) -> list[dict[str, object]]:
        return []

    def describe_cluster(self) -> dict[str, object]:
        raise KeyError("endpoint_type")

    def describe_acls(self, _: object) -> tuple[list[object], object]:
        if self.error is not None:
            raise self.error("denied")
        return [], kafka_errors.NoError


@pytest.mark.parametrize(
    ("error", "missing"),
    [
        (kafka_errors.ClusterAuthorizationFailedError, True),
        (kafka_errors.SecurityDisabledError, False),
        (None, False),
    ],
)
def test_the_acl_right_is_checked_on_every_kafka(error, missing):
    rights = _client_of(_Kafka28(error)).missing_rights([], acls=True)
    assert rights == (
        [
            "source user u may not describe ACLs: no topic ACL is copied; grant it DESCRIBE on "
            "the cluster"
        ]
        if missing
        else []
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
