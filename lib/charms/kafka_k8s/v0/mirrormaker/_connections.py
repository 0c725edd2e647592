# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The connections to one cluster, with kafka-python: made, bounded and explained.

`Connections` holds a cluster's admin client and consumers, made at the first query and kept
until `close()`. Every query is bounded by a timeout, and every failure becomes a
`ClusterUnreachableError` in the operator's words: which cluster, and whether it did not answer,
refused the login, failed the TLS handshake or refused the request. kafka-python's loggers are
kept at WARNING whenever a client is made (at DEBUG they log the SASL password).
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal, NamedTuple, TypeVar, cast

from kafka import KafkaAdminClient, KafkaConsumer
from kafka import errors as kafka_errors
from kafka.structs import TopicPartition

from ._clusters import KafkaCluster
from ._errors import ClusterUnreachableError
from ._oauth import ClientCredentialsTokens, TokenEndpointError
from ._text import clip
from ._tls import client_context

CLIENT_TIMEOUT = 10.0


STATUS_TIMEOUT = 5.0


# Where the CA that verifies each cluster's certificate comes from, for messages.
_TLS_CA_SOURCES = {
    "source": "`ca` of mirrormaker-source-credentials, or tls-ca of migration-source",
    "target": "`ca` of the host's TargetCluster, else the system's CAs",
}


# What a TLS server sends when it refuses the client's certificate, or the lack of one.
_CLIENT_CERTIFICATE_ALERTS = (
    "ALERT_BAD_CERTIFICATE",
    "ALERT_CERTIFICATE_REQUIRED",
    "ALERT_UNKNOWN_CA",
    "ALERT_CERTIFICATE_UNKNOWN",
    "ALERT_UNSUPPORTED_CERTIFICATE",
    "ALERT_ACCESS_DENIED",
)


# How kafka-python says a connection ended under it: what a listener of another protocol does.
_CLOSED = ("socket disconnected", "Connection reset by peer", "illegal sasl state")


_KAFKA_LOGGER = "kafka"


def quiet_kafka_logs() -> None:
    """Keep kafka-python's loggers at WARNING and above, whatever the host set.

    Its DEBUG records carry the whole client configuration, the SASL password with it, and
    every request it sends, SASL exchanges and SCRAM credential changes included; its INFO
    records narrate every connection. ops forwards both to `juju debug-log`. Its WARNING and
    ERROR records say which connection failed and why, and nothing secret.
    """
    manager = logging.getLogger().manager
    for name, known in list(manager.loggerDict.items()):
        if name.startswith(f"{_KAFKA_LOGGER}.") and isinstance(known, logging.Logger):
            if logging.NOTSET < known.level < logging.WARNING:
                known.setLevel(logging.NOTSET)
    kafka_logger = logging.getLogger(_KAFKA_LOGGER)
    if kafka_logger.getEffectiveLevel() < logging.WARNING:
        kafka_logger.setLevel(logging.WARNING)


def kafka_python_config(
    cluster: KafkaCluster,
    timeout: float = CLIENT_TIMEOUT,
    client_id: str = "kafka-k8s-migration-status",
) -> dict[str, Any]:
    """A kafka-python configuration for a cluster, with bounded requests and bootstrap.

    It logs in as MirrorMaker does: SASL with a password or OIDC client credentials (a token
    provider bounded by `timeout`), TLS verified against the cluster's CA (the system's CAs
    without one) with the client certificate for mutual TLS, held in memory.
    """
    config: dict[str, Any] = {
        "bootstrap_servers": list(cluster.bootstrap_servers),
        "security_protocol": cluster.security_protocol,
        "request_timeout_ms": int(timeout * 1000),
        "bootstrap_timeout_ms": int(timeout * 1000),
        "client_id": client_id,
    }
    if cluster.sasl:
        config["sasl_mechanism"] = cluster.sasl_mechanism
        if cluster.oauth is not None:
            config["sasl_oauth_token_provider"] = ClientCredentialsTokens(cluster.oauth, timeout)
        else:
            config["sasl_plain_username"] = cluster.username
            config["sasl_plain_password"] = cluster.password
    if cluster.tls:
        config["ssl_context"] = client_context(
            cluster.ca, cluster.client_certificate, cluster.client_key
        )
    return config


def fetch_token(config: Mapping[str, Any], where: str) -> None:
    """With OAUTHBEARER, get the first token now, so that a refusal is named as one.

    kafka-python would only retry the connection until its bootstrap times out.

    Raises:
        ClusterUnreachableError: saying what the token endpoint answered.
    """
    provider = config.get("sasl_oauth_token_provider")
    if isinstance(provider, ClientCredentialsTokens):
        try:
            provider.token()
        except TokenEndpointError as error:
            raise ClusterUnreachableError(
                f"{where}: {error.message}", refused=error.refused
            ) from None


_T = TypeVar("_T")


# kafka-python's errors that say a query could not be answered: the cluster's own error codes,
# and its client's errors for connections, timeouts and the protocol.
QUERY_ERRORS = (kafka_errors.KafkaError, OSError)


_ERRNO_TEXT = re.compile(r"(\d+) E[A-Z]+")


_SSL_LOCATION = re.compile(r"\s*\(_ssl\.c:\d+\)$")


def error_text(error: object) -> tuple[str, bool]:
    """What a kafka-python error says, and whether the cluster (not the network) said it."""
    if isinstance(error, kafka_errors.RequestTimedOutError | kafka_errors.KafkaTimeoutError):
        return "timed out", False
    if isinstance(error, kafka_errors.BrokerResponseError):
        # The error's name, as Kafka's documentation spells it: GROUP_AUTHORIZATION_FAILED.
        return str(error.message or type(error).__name__).replace("_", " ").lower(), True
    if isinstance(error, kafka_errors.KafkaError):
        text = str(error.args[0]) if error.args else type(error).__name__
        if errno := _ERRNO_TEXT.fullmatch(text):
            text = os.strerror(int(errno.group(1)))
        return text, False
    return str(error), False


class _TlsFailure(NamedTuple):
    """Why a TLS handshake failed: the server's certificate, the client's, or anything else."""

    kind: Literal["server", "client", "other"]
    detail: str


def _tls_failure(error: BaseException) -> _TlsFailure | None:
    """Why a TLS handshake failed, when `error` or what it was raised from is an `ssl` error."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return _TlsFailure("server", f"certificate verify failed: {seen.verify_message}")
        if isinstance(seen, ssl.SSLError):
            detail = _SSL_LOCATION.sub("", str(seen))
            alert = str(seen.reason or "")
            client = any(alert.endswith(name) for name in _CLIENT_CERTIFICATE_ALERTS)
            return _TlsFailure("client" if client else "other", detail)
        seen = seen.__cause__ or seen.__context__
    return None


def login_failure(
    cluster: KafkaCluster,
    where: str,
    ca_source: str,
    *,
    refusal: str | None,
    tls: _TlsFailure | None,
) -> ClusterUnreachableError | None:
    """The error for a refused login or a failed TLS handshake, naming what to check."""
    if refusal is not None:
        return ClusterUnreachableError(
            f"{where} refused the login of {cluster.principal}: {refusal}", refused=True
        )
    if tls is None:
        return None
    detail = clip(tls.detail, 120)
    if tls.kind == "server":
        message = f"TLS handshake failed, the CA ({ca_source}) did not verify its certificate"
    elif tls.kind == "client" and cluster.client_certificate:
        message = "TLS handshake failed, it refused the client certificate (client-certificate)"
    elif tls.kind == "client":
        message = "TLS handshake failed, it asks for a client certificate: set client-certificate"
        message += " and client-key"
    else:
        # A listener of another protocol closes the connection; so, at times before its alert
        # arrives, does a TLS listener that refuses the client's certificate (or its absence).
        certificate = (
            "refused the client certificate, check client-certificate"
            if cluster.client_certificate
            else "asks for a client certificate, set client-certificate and client-key"
        )
        message = (
            "TLS handshake failed: if this address is no TLS listener, security-protocol must be"
            f" PLAINTEXT or SASL_PLAINTEXT; if it {certificate}"
        )
    return ClusterUnreachableError(f"{where}: {message}: {detail}", refused=True)


def _answered_in_tls(reason: str) -> bool:
    """Whether a reply read as a Kafka frame was a TLS record (an alert or a handshake).

    A TLS listener answers a plain Kafka request with a TLS record: its first bytes (content
    type 0x15 or 0x16, version 0x03) then read as an absurd frame length.
    """
    found = re.search(r"Invalid frame length: (\d+)", reason)
    if found is None:
        return False
    length = int(found.group(1))
    return length >> 24 in (0x15, 0x16) and (length >> 16) & 0xFF == 0x03


def _closed_hint(cluster: KafkaCluster, reason: str) -> str:
    """What a connection the listener closed may mean: another protocol than configured."""
    tls_reply = _answered_in_tls(reason)
    if not tls_reply and not any(text in reason for text in _CLOSED):
        return ""
    if reason == "illegal sasl state":
        return (
            f" (with security-protocol {cluster.security_protocol}: the listener takes no SASL "
            "login; then set PLAINTEXT or SSL)"
        )
    if not cluster.tls:
        return (
            f" (with security-protocol {cluster.security_protocol}; a TLS listener closes it: "
            "then set SSL or SASL_SSL; one that expects a login: SASL_PLAINTEXT)"
        )
    return f" (with security-protocol {cluster.security_protocol})"


def _sasl_refusal(error: kafka_errors.SaslAuthenticationFailedError) -> str:
    """The broker's words for a refused login, without kafka-python's error names before them."""
    return str(error).rsplit("SaslAuthenticationFailedError: ", 1)[-1]


class _ConnectionFailures(logging.Handler):
    """What one client's I/O thread logged about its failed connections.

    kafka-python retries a refused login and a failed TLS handshake like any failed connection
    until its bootstrap times out, and tells why only in its WARNING and ERROR records, with the
    exception among their arguments (as librdkafka told its `error_cb`). The thread is named
    after the client id, so the records of another client's thread are not taken.
    """

    def __init__(self, client_id: str):
        super().__init__(logging.WARNING)
        self.thread_name = f"kafka-io-{client_id}"
        self.refusal: str | None = None
        self.tls_failure: _TlsFailure | None = None
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the exceptions a record of this client's thread carries (or logs as raised)."""
        if record.threadName != self.thread_name:
            return
        args = record.args if isinstance(record.args, tuple) else ()
        raised = (record.exc_info[1],) if record.exc_info else ()
        for arg in (*args, *raised):
            if isinstance(arg, BaseException):
                self.note(arg)

    def note(self, error: BaseException) -> None:
        """Remember a refused login, a failed TLS handshake, or any other failure."""
        if isinstance(error, kafka_errors.SaslAuthenticationFailedError):
            self.refusal = _sasl_refusal(error)
        elif (failure := _tls_failure(error)) is not None:
            # A certificate named as the cause says more than a connection closed under it.
            if self.tls_failure is None or failure.kind != "other":
                self.tls_failure = failure
        elif (text := error_text(error)[0]) != "timed out" or self.last is None:
            # A timeout at the end of the retries says less than the failures before it.
            self.last = text

    @contextmanager
    def listening(self) -> Iterator[None]:
        """Listen to kafka-python's loggers while the block runs."""
        kafka_logger = logging.getLogger(_KAFKA_LOGGER)
        kafka_logger.addHandler(self)
        try:
            yield
        finally:
            kafka_logger.removeHandler(self)


class AdminClient(KafkaAdminClient):
    """kafka-python's admin client, which also closes when it fails to reach the cluster.

    kafka-python 3.0 leaves its I/O thread running and its sockets open when the bootstrap in
    its constructor fails.
    """

    def __init__(self, **config: Any):
        try:
            super().__init__(**config)
        except BaseException:
            if hasattr(self, "_client"):
                self._closed = False
                self.close()
            raise


def admin_client(**config: Any) -> KafkaAdminClient:
    """A kafka-python admin client, made as the library makes its own.

    kafka-python's loggers are kept at WARNING (`quiet_kafka_logs`: at DEBUG they log the SASL
    password), and the client closes its connections if it cannot connect.

    Raises:
        kafka.errors.KafkaError: if it cannot connect within the bootstrap timeout.
    """
    quiet_kafka_logs()
    return AdminClient(**config)


class Connections:
    """One cluster's connections, with kafka-python: the admin client and the offsets reader.

    They are made at the first query and kept until `close()`. Each query is bounded by the
    timeout, and a failure becomes a `ClusterUnreachableError` that says, in the operator's
    words, which cluster failed and why (a refused login, a certificate, a refused request).
    """

    def __init__(self, cluster: KafkaCluster, role: str, timeout: float = CLIENT_TIMEOUT):
        self.role = role
        self.cluster = cluster
        self.timeout = timeout
        self._config = kafka_python_config(
            cluster, timeout, client_id=f"kafka-k8s-migration-status-{role}"
        )
        self._failures = _ConnectionFailures(self._config["client_id"])
        self._admin: KafkaAdminClient | None = None
        self._offsets_reader: KafkaConsumer | None = None
        self._uncommitted_reader: KafkaConsumer | None = None

    def close(self) -> None:
        """Close the connections; a later query connects again."""
        admin, self._admin = self._admin, None
        readers = (self._offsets_reader, self._uncommitted_reader)
        self._offsets_reader = self._uncommitted_reader = None
        for reader in readers:
            if reader is not None:
                reader.close()
        if admin is not None:
            admin.close()

    def unreachable(self, error: object) -> ClusterUnreachableError:
        """The error that tells the operator why the cluster failed a query."""
        where = f"{self.role} cluster at {self.cluster.bootstrap}"
        reason, answered = error_text(error)
        if isinstance(error, BaseException) and reason != "timed out":
            self._failures.note(error)
        failed = login_failure(
            self.cluster,
            where,
            _TLS_CA_SOURCES.get(self.role, "its CA"),
            refusal=self._failures.refusal,
            tls=self._failures.tls_failure,
        )
        if failed is not None:
            return failed
        if answered and reason != "illegal sasl state":
            return ClusterUnreachableError(f"{where} refused the request: {reason}")
        if reason == "timed out" and self._failures.last is not None:
            reason = self._failures.last
        reason = reason or "timed out"
        return ClusterUnreachableError(
            f"{where} did not answer: {reason}{_closed_hint(self.cluster, reason)}"
        )

    def _client(self) -> KafkaAdminClient:
        """The admin client, connected now if it is not yet (within the timeout)."""
        if self._admin is None:
            quiet_kafka_logs()
            fetch_token(self._config, f"{self.role} cluster at {self.cluster.bootstrap}")
            with self._failures.listening():
                try:
                    self._admin = AdminClient(**self._config)
                except QUERY_ERRORS as error:
                    raise self.unreachable(error) from None
        return self._admin

    def _answer(self, query: Callable[[Any], _T]) -> _T:
        """The answer to one query of the admin client, within the timeout and 5 s more.

        kafka-python bounds each request, not the retries and connections a query may need,
        so the query runs on a thread of its own; past the deadline the client is closed, which
        ends the query.

        Raises:
            ClusterUnreachableError: if the client cannot connect or the deadline passes.
            kafka.errors.KafkaError: the query's own error.
            OSError: the query's own error.
        """
        admin = self._client()
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                outcome["answer"] = query(admin)
            except BaseException as error:
                outcome["error"] = error
            finally:
                done.set()

        with self._failures.listening():
            threading.Thread(target=run, name=f"kafka-k8s-{self.role}-query", daemon=True).start()
            answered = done.wait(self.timeout + 5)
        if not answered:
            self.close()
            raise self.unreachable(kafka_errors.KafkaTimeoutError())
        if "error" in outcome:
            raise outcome["error"]
        return outcome["answer"]

    def _ask(self, query: Callable[[Any], _T], *, again: bool = False) -> _T:
        """The answer to one query of the admin client, within the timeout.

        With `again`, a query the cluster answers with a retriable error is asked again, on new
        connections, until the timeout: kafka-python caches each group's coordinator for as long
        as the client lives, so after a coordinator moved (whenever a broker starts, stops or
        restarts) only a new client finds the new one.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time, or refuses.
        """
        deadline = time.monotonic() + self.timeout + 5
        while True:
            try:
                return self._answer(query)
            except QUERY_ERRORS as error:
                retriable = getattr(error, "retriable", False)
                if not (again and retriable) or time.monotonic() > deadline:
                    raise self.unreachable(error) from None
            self.close()
            time.sleep(0.2)

    def _reader(self, *, committed: bool = True) -> KafkaConsumer:
        """The consumer that lists offsets, read committed or not; it joins no group.

        Read committed, a partition ends at its last stable offset (before the first record of
        a transaction still open); read uncommitted, at its log end offset (high watermark).
        """
        if committed and self._offsets_reader is None:
            self._offsets_reader = self._consumer("read_committed")
        if not committed and self._uncommitted_reader is None:
            self._uncommitted_reader = self._consumer("read_uncommitted")
        reader = self._offsets_reader if committed else self._uncommitted_reader
        assert reader is not None
        return reader

    def _consumer(
        self, isolation_level: Literal["read_committed", "read_uncommitted"]
    ) -> KafkaConsumer:
        return KafkaConsumer(
            **self._config,
            group_id=None,
            enable_auto_commit=False,
            isolation_level=isolation_level,
            auto_offset_reset="earliest",
        )

    def _list_offsets(
        self, topics: Mapping[str, int], *, starts: bool, committed: bool = True
    ) -> list[dict[str, list[int]]]:
        """The end offsets (last stable offsets) of these topics' partitions; first offsets too.

        With `starts`, the first offsets come first in the list; with `committed` False, the
        end offsets are the log end offsets. The consumer that `topics()`
        asks, not the admin client: kafka-python's admin fetches and converts the metadata of
        every partition again for each spec it lists, which costs a second of CPU per 10,000
        partitions; the consumer keeps what it learned (it asks for the metadata of all topics
        at once if it lacks any of these) and sends only ListOffsets.
        """
        partitions = [
            TopicPartition(topic, partition)
            for topic, count in topics.items()
            for partition in range(count)
        ]
        timeout_ms = int(self.timeout * 1000)

        def query(_: Any) -> list[dict[Any, int]]:
            # kafka-python 3's timeouts; the type stubs know an older release.
            reader = cast(Any, self._reader(committed=committed))
            for topic in topics:
                reader.partitions_for_topic(topic)
            try:
                first = (
                    [reader.beginning_offsets(partitions, timeout_ms=timeout_ms)] if starts else []
                )
                return [*first, reader.end_offsets(partitions, timeout_ms=timeout_ms)]
            except KeyError as missing:
                # kafka-python 3.0 drops a partition it got no offset for (a topic created a
                # moment ago, whose leader the broker does not know yet) and fails on it.
                raise kafka_errors.UnknownTopicOrPartitionError(
                    f"no offset for {missing}"
                ) from None

        answers = []
        for answer in self._ask(query, again=True):
            offsets = {topic: [0] * count for topic, count in topics.items()}
            for partition, offset in answer.items():
                offsets[partition.topic][partition.partition] = offset
            answers.append(offsets)
        return answers

    def end_offsets(self, topics: Mapping[str, int]) -> dict[str, list[int]]:
        """The end offset (last stable offset) of every partition of these topics.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        if not topics:
            return {}
        return self._list_offsets(topics, starts=False)[0]
