# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Open transactions on the source: which producer holds a partition back, since when.

A `read_committed` consumer reads a partition up to its last stable offset, which stops at the
first record of a transaction still open. Where it stands below the log end offset, the
migration is neither quiet nor in sync: the transaction's records arrive when it commits.
`DescribeProducers` (Kafka 3.0+, READ on the topic) names each producer with an open
transaction and the offset it began at; `ListTransactions` and `DescribeTransactions` (DESCRIBE
on the transactional id) its transactional id and start time. Without those, the transaction's
first record, read uncommitted, gives the time. The functions here take kafka-python's admin
client or consumer; `ClusterClient` runs them within its timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from typing import Any

from kafka import errors as kafka_errors
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.structs import TopicPartition
from pydantic import BaseModel, ConfigDict, Field

_OLD_KAFKA = "a Kafka before 3.0 cannot tell which transaction is open (no DescribeProducers)"
_NO_READ = "source {user} may not read the topic, so the open transaction is not named"
_NO_DESCRIBE = (
    "source {user} may not describe transactional ids: grant it DESCRIBE on the "
    "TRANSACTIONAL_ID resources to see which is open"
)

# Where a transaction began: a partition and the offset of its first record.
_Start = tuple[str, int, int]


class OpenTransaction(BaseModel):
    """A transaction open on a partition: its producer, its first offset, its id and start.

    `since` is when it began, in milliseconds since the epoch (the coordinator's start time,
    else its first record's timestamp); `transactional_id` is None where it cannot be seen.
    """

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    producer_id: int
    start_offset: int
    transactional_id: str | None = None
    since: int | None = None


class OpenTransactions(BaseModel):
    """The transactions open on some partitions; `unnamed` says why some cannot be named."""

    model_config = ConfigDict(frozen=True)

    transactions: list[OpenTransaction] = Field(default_factory=list)
    unnamed: str | None = None

    def undated(self) -> list[_Start]:
        """Where the transactions whose start is not known began."""
        return sorted(
            (t.topic, t.partition, t.start_offset) for t in self.transactions if t.since is None
        )

    def dated(self, times: Mapping[_Start, int]) -> OpenTransactions:
        """The transactions, with the times of their first records where none was known."""
        transactions = [
            t
            if t.since is not None
            else t.model_copy(update={"since": times.get((t.topic, t.partition, t.start_offset))})
            for t in self.transactions
        ]
        return self.model_copy(update={"transactions": transactions})


def describe_open(
    admin: Any, partitions: Collection[tuple[str, int]], user: str
) -> OpenTransactions:
    """The transactions open on these partitions, named where `user` may see them.

    `user` is who the source sees (`KafkaCluster.principal`: "user migrator"). A source too old
    to tell, or a user refused, gives the reason instead of raising.
    """
    wanted = [TopicPartition(topic, number) for topic, number in sorted(partitions)]
    try:
        described = admin.describe_producers(wanted)
    except kafka_errors.UnsupportedVersionError:
        return OpenTransactions(unnamed=_OLD_KAFKA)
    except kafka_errors.TopicAuthorizationFailedError:
        return OpenTransactions(unnamed=_NO_READ.format(user=user))
    found = [
        OpenTransaction(
            topic=partition.topic,
            partition=partition.partition,
            producer_id=producer.producer_id,
            start_offset=producer.current_transaction_start_offset,
        )
        for partition, state in sorted(described.items())
        for producer in state.active_producers
        if producer.current_transaction_start_offset >= 0
    ]
    return _named(admin, found, user)


def _named(admin: Any, found: list[OpenTransaction], user: str) -> OpenTransactions:
    """The transactions with their transactional ids and start times, where the user may see.

    `ListTransactions` lists only the ids the user may describe; a refused or failed lookup
    leaves the transactions unnamed, and the partitions are reported all the same.
    """
    if not found:
        return OpenTransactions()
    ids: dict[int, str] = {}
    try:
        listed = admin.list_transactions(
            producer_id_filters=sorted({t.producer_id for t in found})
        )
        ids = {t.producer_id: t.transactional_id for ts in listed.values() for t in ts}
        described = admin.describe_transactions(sorted(set(ids.values()))) if ids else {}
    except (kafka_errors.KafkaError, OSError):
        described = {}
    starts = {
        description.producer_id: description.transaction_start_time_ms
        for description in described.values()
        if description.transaction_start_time_ms >= 0
    }
    named = [
        t.model_copy(
            update={"transactional_id": ids.get(t.producer_id), "since": starts.get(t.producer_id)}
        )
        for t in found
    ]
    unnamed = any(t.transactional_id is None for t in named)
    return OpenTransactions(
        transactions=named, unnamed=_NO_DESCRIBE.format(user=user) if unnamed else None
    )


def first_record_times(
    reader: Any, starts: Collection[_Start], timeout: float
) -> dict[_Start, int]:
    """The timestamp of the record at each start, read uncommitted by `reader` (no group)."""
    times: dict[_Start, int] = {}
    for topic, number, offset in sorted(starts):
        partition = TopicPartition(topic, number)
        reader.assign([partition])
        reader.seek(partition, offset)
        deadline = time.monotonic() + timeout
        while (topic, number, offset) not in times and time.monotonic() < deadline:
            for record in reader.poll(timeout_ms=200, max_records=1).get(partition, ()):
                times[(topic, number, offset)] = record.timestamp
    reader.assign([])
    return times


def max_timeout_ms(admin: Any) -> int | None:
    """The brokers' `transaction.max.timeout.ms`, or None if the user may not read it.

    Reading a broker's configs needs DESCRIBE_CONFIGS on the cluster, which a consumer lacks.
    """
    brokers = admin.describe_cluster().get("brokers") or []
    broker = brokers[0].get("broker_id", brokers[0].get("node_id")) if brokers else None
    if broker is None:
        return None
    resource = ConfigResource(
        ConfigResourceType.BROKER, str(broker), {"transaction.max.timeout.ms": ""}
    )
    try:
        described = admin.describe_configs([resource], config_filter="all")
    except kafka_errors.BrokerResponseError:
        return None
    for configs in (described.get("broker") or {}).values():
        value = (configs.get("transaction.max.timeout.ms") or {}).get("value")
        if value is not None and str(value).isdigit():
            return int(value)
    return None
