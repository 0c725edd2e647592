# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The cluster clients: read-only admin queries against one cluster, with kafka-python.

Every query is bounded by a timeout, and every failure becomes a `ClusterUnreachableError` in
the operator's words: which cluster, and whether it did not answer, refused the login, failed
the TLS handshake or refused the request. kafka-python's loggers are kept at WARNING whenever
a client is made (at DEBUG they log the SASL password).
"""

from __future__ import annotations

import json
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, TypeVar, cast

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import errors as kafka_errors
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.protocol.admin.client_quotas import DescribeClientQuotasRequest
from kafka.structs import TopicPartition
from pydantic import BaseModel, ConfigDict

from . import _transactions
from ._connectors import ConnectorState, connector_states
from ._errors import ClusterUnreachableError
from ._names import RIGHTS_PROBE_GROUP
from ._options import KafkaCluster
from ._rights import AclBinding
from ._text import clip, plural
from ._transactions import OpenTransactions

CLIENT_TIMEOUT = 10.0
STATUS_TIMEOUT = 5.0

# Where the CA that verifies each cluster's certificate comes from, for messages.
_TLS_CA_SOURCES = {
    "source": "`ca` of mirrormaker-source-credentials, or tls-ca of migration-source",
    "target": "`ca` of the host's TargetCluster, else the system's CAs",
}


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
    """A kafka-python configuration for a cluster, with bounded requests and bootstrap."""
    config: dict[str, Any] = {
        "bootstrap_servers": list(cluster.bootstrap_servers),
        "security_protocol": cluster.security_protocol,
        "sasl_mechanism": cluster.sasl_mechanism,
        "sasl_plain_username": cluster.username,
        "sasl_plain_password": cluster.password,
        "request_timeout_ms": int(timeout * 1000),
        "bootstrap_timeout_ms": int(timeout * 1000),
        "client_id": client_id,
    }
    if cluster.ca:
        config["ssl_context"] = ssl.create_default_context(cadata=cluster.ca)
    return config


def _commits_on(offsets: Mapping[Any, Any], topics: Collection[str]) -> GroupCommits:
    """A group's commits (kafka-python's partition to offset map) on these topics only."""
    commits: GroupCommits = {}
    for partition, committed in offsets.items():
        if partition.topic in topics and committed.offset >= 0:
            commits.setdefault(partition.topic, {})[partition.partition] = committed.offset
    return commits


_T = TypeVar("_T")

# kafka-python's errors that say a query could not be answered: the cluster's own error codes,
# and its client's errors for connections, timeouts and the protocol.
QUERY_ERRORS = (kafka_errors.KafkaError, OSError)

# librdkafka's names of the group states, which the report has always shown.
_GROUP_STATES = {
    "PreparingRebalance": "preparing_rebalancing",
    "CompletingRebalance": "completing_rebalancing",
}


_ERRNO_TEXT = re.compile(r"(\d+) E[A-Z]+")
_ERROR_CODE = re.compile(r"\[Error (-?\d+)\]")
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


def _tls_failure(error: BaseException) -> str | None:
    """Why a TLS handshake failed, when `error` or what it was raised from is an `ssl` error."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {seen.verify_message}"
        if isinstance(seen, ssl.SSLError):
            return _SSL_LOCATION.sub("", str(seen))
        seen = seen.__cause__ or seen.__context__
    return None


def _sasl_refusal(error: kafka_errors.SaslAuthenticationFailedError) -> str:
    """The broker's words for a refused login, without kafka-python's error names before them."""
    return str(error).rsplit("SaslAuthenticationFailedError: ", 1)[-1]


class TopicOffsets(BaseModel):
    """Where each partition of a topic starts and ends on one cluster."""

    model_config = ConfigDict(frozen=True)

    start: tuple[int, ...]
    end: tuple[int, ...]

    def records(self, partition: int) -> int:
        """How many offsets the partition holds: its end offset minus its start offset."""
        return max(0, self.end[partition] - self.start[partition])

    @property
    def total_records(self) -> int:
        """How many offsets all partitions hold."""
        return sum(max(0, end - start) for start, end in zip(self.start, self.end, strict=True))


GroupCommits = dict[str, dict[int, int]]
"""A consumer group's committed offsets: topic, then partition, then offset."""


def _kafka_acl(binding: AclBinding) -> ACL:
    """kafka-python's ACL of a binding (Kafka's names are kafka-python's enum names)."""
    return ACL(
        principal=binding.principal,
        host=binding.host,
        operation=ACLOperation[binding.operation],
        permission_type=ACLPermissionType[binding.permission],
        resource_pattern=ResourcePattern(
            ResourceType[binding.resource],
            binding.name,
            ACLResourcePatternType[binding.pattern],
        ),
    )


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
        self.tls_failure: str | None = None
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the exceptions a record of this client's thread carries."""
        if record.threadName != self.thread_name or not isinstance(record.args, tuple):
            return
        for arg in record.args:
            if isinstance(arg, BaseException):
                self.note(arg)

    def note(self, error: BaseException) -> None:
        """Remember a refused login, a failed TLS handshake, or any other failure."""
        if isinstance(error, kafka_errors.SaslAuthenticationFailedError):
            self.refusal = _sasl_refusal(error)
        elif (failure := _tls_failure(error)) is not None:
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


class _Connections:
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
        if (refusal := self._failures.refusal) is not None:
            return ClusterUnreachableError(
                f"{where} refused the login of {self.cluster.username}: {refusal}", refused=True
            )
        if self._failures.tls_failure is not None:
            ca = _TLS_CA_SOURCES.get(self.role, "its CA")
            detail = clip(self._failures.tls_failure, 120)
            return ClusterUnreachableError(
                f"{where}: TLS handshake failed, the CA ({ca}) did not verify its certificate: "
                f"{detail}",
                refused=True,
            )
        if answered:
            return ClusterUnreachableError(f"{where} refused the request: {reason}")
        if reason == "timed out" and self._failures.last is not None:
            reason = self._failures.last
        return ClusterUnreachableError(f"{where} did not answer: {reason or 'timed out'}")

    def _client(self) -> KafkaAdminClient:
        """The admin client, connected now if it is not yet (within the timeout)."""
        if self._admin is None:
            quiet_kafka_logs()
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


class ClusterClient(_Connections):
    """Queries against one cluster with kafka-python, each bounded by a timeout.

    Topics and offsets come from a consumer that joins no group, the rest from the admin
    client. The client connects at its first query and keeps its connections until `close()`.
    It writes one thing only, on the target: Kafka Connect's request to restart MirrorMaker's
    failed connectors and tasks (`request_restarts`).
    """

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def topics(self) -> dict[str, int]:
        """Every topic this user may describe but Kafka's own, with its number of partitions.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """

        def query(_: Any) -> dict[str, int]:
            reader = cast(Any, self._reader())
            return {name: len(reader.partitions_for_topic(name)) for name in reader.topics()}

        return self._ask(query)

    def groups(self) -> list[str]:
        """Every consumer group this user may describe.

        A broker that is still loading its share of the group offsets answers "coordinator load
        in progress" (every broker does for a while after it starts): asked again until the
        timeout.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        listed = self._ask(lambda admin: admin.list_groups(), again=True)
        return sorted({group["group_id"] for group in listed})

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

    def log_end_offsets(self, topics: Mapping[str, int]) -> dict[str, list[int]]:
        """The log end offset of every partition of these topics, as `read_uncommitted` sees it.

        Above the last stable offset while a transaction is open on the partition.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        if not topics:
            return {}
        return self._list_offsets(topics, starts=False, committed=False)[0]

    def open_transactions(self, partitions: Collection[tuple[str, int]]) -> OpenTransactions:
        """The transactions open on these partitions, named as far as this user may see.

        See `_transactions`: a refused lookup leaves a transaction unnamed, never fails.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        if not partitions:
            return OpenTransactions()
        user = self.cluster.username
        found = self._ask(lambda admin: _transactions.describe_open(admin, partitions, user))
        if not (undated := found.undated()):
            return found
        reader = self._reader(committed=False)
        times = self._ask(
            lambda _: _transactions.first_record_times(reader, undated, self.timeout)
        )
        return found.dated(times)

    def transaction_max_timeout_ms(self) -> int | None:
        """The brokers' `transaction.max.timeout.ms`, or None if this user may not read it.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        return self._ask(_transactions.max_timeout_ms)

    def offsets(self, topics: Mapping[str, int]) -> dict[str, TopicOffsets]:
        """Where every partition of these topics starts and ends; one request per leader each.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        if not topics:
            return {}
        starts, ends = self._list_offsets(topics, starts=True)
        return {
            topic: TopicOffsets(start=tuple(starts[topic]), end=tuple(ends[topic]))
            for topic in topics
        }

    def committed_offsets(
        self, groups: Sequence[str], topics: Collection[str]
    ) -> dict[str, GroupCommits]:
        """The committed offsets of each consumer group on these topics; absent groups have none.

        One request per group coordinator; a coordinator that moved is asked again until the
        timeout. (librdkafka's admin call for the same answer crashed the process when a
        group's coordinator moved: confluentinc/librdkafka#5040.)

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        if not groups:
            return {}
        answer = self._ask(lambda admin: admin.list_group_offsets(list(groups)), again=True)
        return {group: _commits_on(answer.get(group, {}), topics) for group in groups}

    def missing_rights(
        self, topics: Collection[str], *, groups: bool = False, acls: bool = False
    ) -> list[str]:
        """The rights MirrorMaker needs on this (the source) cluster that its user lacks.

        Args:
            topics: topics whose configs MirrorMaker reads: to create their copies (it fails
                to without) and, with `sync.topic.configs`, to copy their configs.
            groups: whether to check that the user may describe every consumer group, which
                MirrorMaker needs to find the groups and translate their offsets.
            acls: whether to check that the user may describe ACLs, to copy topic ACLs.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        user = self.cluster.username
        missing = []
        try:
            described = (
                self._answer(lambda admin: admin.describe_topics(sorted(topics))) if topics else []
            )
            blind = sorted(
                topic["name"]
                for topic in described
                if topic.get("authorized_operations") is not None
                and "DESCRIBE_CONFIGS" not in topic["authorized_operations"]
            )
            if blind:
                named = ", ".join(blind[:3]) + (", ..." if len(blind) > 3 else "")
                missing.append(
                    f"source user {user} may not describe the configs of "
                    f"{plural(len(blind), 'topic')} ({named}): MirrorMaker cannot create their "
                    "copies; grant it DESCRIBE_CONFIGS on them"
                )
            if groups:
                try:
                    probe = self._answer(lambda admin: admin.describe_groups([RIGHTS_PROBE_GROUP]))
                    refused = "GroupAuthorizationFailed" in str(
                        probe.get(RIGHTS_PROBE_GROUP, {}).get("error") or ""
                    )
                except kafka_errors.GroupAuthorizationFailedError:
                    refused = True
                except (
                    kafka_errors.CoordinatorNotAvailableError,
                    kafka_errors.CoordinatorLoadInProgressError,
                    kafka_errors.NotCoordinatorError,
                ):
                    refused = False  # answered after the authorization passed: not ready yet
                if refused:
                    missing.append(
                        f"source user {user} may not describe every consumer group: no group's"
                        " offsets migrate; grant it DESCRIBE on the groups"
                    )
            operations = (
                self._answer(lambda admin: admin.describe_cluster()).get("authorized_operations")
                if acls
                else None
            )
            if operations is not None and "DESCRIBE" not in operations:
                missing.append(
                    f"source user {user} may not describe ACLs: no topic ACL is copied; grant it"
                    " DESCRIBE on the cluster"
                )
        except QUERY_ERRORS as error:
            raise self.unreachable(error) from None
        return missing

    def acls(self) -> list[AclBinding]:
        """Every ACL binding of the cluster, of every resource type and pattern.

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or the user may not
                describe ACLs.
        """
        query = ACLFilter(
            principal=None,
            host=None,
            operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(
                ResourceType.ANY, None, ACLResourcePatternType.ANY
            ),
        )
        found, _ = self._ask(lambda admin: admin.describe_acls(query))
        return [
            AclBinding(
                principal=acl.principal,
                resource=acl.resource_pattern.resource_type.name,
                name=acl.resource_pattern.resource_name,
                pattern=acl.resource_pattern.pattern_type.name,
                operation=acl.operation.name,
                permission=acl.permission_type.name,
                host=acl.host,
            )
            for acl in found
        ]

    def create_acls(self, bindings: Sequence[AclBinding]) -> None:
        """Create ACL bindings; creating one that exists changes nothing.

        Raises:
            ClusterUnreachableError: if the cluster does not answer or refuses one.
        """
        if not bindings:
            return
        acls = [_kafka_acl(binding) for binding in bindings]
        result = self._ask(lambda admin: admin.create_acls(acls))
        if result.get("failed"):
            raise self.unreachable(f"creating ACLs: {result['failed'][0].__name__}")

    def delete_acls(self, bindings: Sequence[AclBinding]) -> None:
        """Delete exactly these ACL bindings; deleting one that is gone changes nothing.

        Raises:
            ClusterUnreachableError: if the cluster does not answer or refuses.
        """
        if not bindings:
            return
        acls = [_kafka_acl(binding) for binding in bindings]
        for _, _, error in self._ask(lambda admin: admin.delete_acls(acls)):
            if error is not kafka_errors.NoError:
                raise self.unreachable(f"deleting ACLs: {error.__name__}")

    def client_quotas(self) -> dict[str, dict[str, float]]:
        """The quotas set for each user (`User:<name>`), by quota (with its client id, if any).

        Kafka answers DescribeClientQuotas (2.6 and later) to a user that may describe the
        cluster's configs (DESCRIBE_CONFIGS on the cluster).

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or refuses.
        """
        any_user = DescribeClientQuotasRequest.ComponentData(entity_type="user", match_type=2)
        request = DescribeClientQuotasRequest(components=[any_user], strict=False)

        def query(admin: Any) -> Any:
            manager = admin._manager  # kafka-python 3.0 has no method for this request
            response = manager.run(manager.send, request)
            if response.error_code:
                raise kafka_errors.for_code(response.error_code)(response.error_message or "")
            return response

        quotas: dict[str, dict[str, float]] = {}
        for entry in self._ask(query).entries or ():
            names = {entity.entity_type: entity.entity_name for entity in entry.entity}
            if not names.get("user"):
                continue
            client = f" (client-id {names['client-id']})" if "client-id" in names else ""
            found = quotas.setdefault(f"User:{names['user']}", {})
            found.update({f"{value.key}{client}": value.value for value in entry.values})
        return quotas

    def describe_groups(self, groups: Sequence[str]) -> dict[str, tuple[str, int]]:
        """The state (`stable`, `empty`, ...) and the number of members of each group.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time, or refuses a group.
        """
        if not groups:
            return {}

        def query(admin: Any) -> dict[str, Any]:
            # kafka-python puts each group's error in its answer as text: "[Error 14] ...".
            answer = admin.describe_groups(list(groups))
            for description in answer.values():
                if error := str(description.get("error") or ""):
                    code = _ERROR_CODE.match(error)
                    raise kafka_errors.for_code(int(code.group(1)) if code else -1)(error)
            return answer

        described: dict[str, tuple[str, int]] = {}
        for group, description in self._ask(query, again=True).items():
            state = str(description.get("group_state") or "unknown")
            described[group] = (
                _GROUP_STATES.get(state, state.lower()),
                len(description.get("members") or ()),
            )
        return described

    def connector_states(self, source_alias: str) -> list[ConnectorState]:
        """The state of every MirrorMaker connector and task of the flow from `source_alias`.

        Read from Kafka Connect's own records on this (the target) cluster, as its REST API
        would: the status topic holds the state and error trace of each connector and task,
        the config topic how many tasks each connector has now (the status topic keeps the
        records of tasks a connector no longer has). This is the cluster-wide truth, readable
        from any unit through Kafka alone. The JMX metrics of a node only know its own tasks,
        carry no error trace, and vanish with the node. Dedicated MirrorMaker records the
        flow (`source->target`) as the worker of every task, so neither says which unit runs
        a task; a unit's service state comes from the peer data.

        Raises:
            ClusterUnreachableError: if the topics cannot be read in time.
        """
        configs, statuses = (
            f"mm2-configs.{source_alias}.internal",
            f"mm2-status.{source_alias}.internal",
        )
        latest, times = self._read_compacted((configs, statuses))
        return connector_states(latest[configs], latest[statuses], times[statuses])

    def request_restarts(self, source_alias: str, connectors: Collection[str]) -> None:
        """Ask Kafka Connect to restart the failed connectors and tasks of these connectors.

        Writes the record Connect's own REST API writes for `POST /connectors/NAME/restart?
        includeTasks=true&onlyFailed=true` (KIP-745) into the flow's config topic: every node
        of the flow reads it and restarts the failed connector and tasks it runs, where they
        run, without a rebalance. Dedicated MirrorMaker serves no such REST resource (its
        internal server takes only task configs and zombie fencing, signed by the flow's
        session key), and records the flow as every task's worker, so only this request
        reaches a failed task wherever it runs. A node reads the requests written while it runs
        only, not those written before it started. The MirrorMaker user may write every topic.

        Raises:
            ClusterUnreachableError: if the target does not take the records in time.
        """
        topic = f"mm2-configs.{source_alias}.internal"
        request = json.dumps({"include-tasks": True, "only-failed": True}).encode()
        quiet_kafka_logs()
        with self._failures.listening():
            try:
                producer = KafkaProducer(
                    **self._config, acks="all", max_block_ms=int(self.timeout * 1000)
                )
            except QUERY_ERRORS as error:
                raise self.unreachable(error) from None
            try:
                for connector in sorted(connectors):
                    key = f"restart-connector-{connector}".encode()
                    producer.send(topic, key=key, value=request).get(timeout=self.timeout)
            except QUERY_ERRORS as error:
                raise self.unreachable(error) from None
            finally:
                producer.close(timeout=1)

    def _read_compacted(
        self, topics: Sequence[str]
    ) -> tuple[dict[str, dict[str, bytes | None]], dict[str, dict[str, float]]]:
        """The latest value of each key of compacted topics; a topic that does not exist is empty.

        Also when each value was written (the record's timestamp, in seconds since the epoch).

        All partitions are read at once, from their beginning up to the end offsets they had
        when the reading began (read committed).

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or the ends are not
                reached within the timeout.
        """
        deadline = time.monotonic() + self.timeout + 5
        latest: dict[str, dict[str, bytes | None]] = {topic: {} for topic in topics}
        times: dict[str, dict[str, float]] = {topic: {} for topic in topics}
        described = self._ask(lambda admin: admin.describe_topics(list(topics)))
        found = {
            topic["name"]: len(topic["partitions"])
            for topic in described
            if topic["error_code"] == 0 and topic["name"] in latest
        }
        ends = self.end_offsets(found)
        pending = {
            TopicPartition(topic, partition): end
            for topic, partition_ends in ends.items()
            for partition, end in enumerate(partition_ends)
            if end > 0
        }
        if not pending:
            return latest, times
        config = {
            **self._config,
            "group_id": None,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "isolation_level": "read_committed",
            "fetch_max_wait_ms": 20,
        }
        with self._failures.listening():
            try:
                consumer = KafkaConsumer(**config)
            except QUERY_ERRORS as error:
                raise self.unreachable(error) from None
            try:
                consumer.assign(list(pending))
                consumer.seek_to_beginning()
                while pending:
                    if time.monotonic() > deadline:
                        raise self.unreachable(f"timed out reading {', '.join(topics)}")
                    for partition, records in consumer.poll(timeout_ms=100).items():
                        for record in records:
                            key = (record.key or b"").decode(errors="replace")
                            latest[partition.topic][key] = record.value
                            times[partition.topic][key] = record.timestamp / 1000
                    pending = {
                        partition: end
                        for partition, end in pending.items()
                        if (consumer.position(partition, timeout_ms=0) or 0) < end
                    }
            except QUERY_ERRORS as error:
                raise self.unreachable(error) from None
            finally:
                consumer.close(autocommit=False, timeout_ms=1000)
        return latest, times
