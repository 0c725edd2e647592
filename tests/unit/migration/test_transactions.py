# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Open transactions on the source (`_transactions`), over a stand-in for kafka-python's admin.

What `DescribeProducers`, `ListTransactions` and `DescribeTransactions` answer is what the
stand-in returns, in kafka-python 3.0's types; the real source is asked in the local tier
(`tests/local/test_waves.py`).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kafka import errors as kafka_errors
from kafka.admin._transactions import (
    PartitionProducerState,
    ProducerState,
    TransactionDescription,
    TransactionListing,
    TransactionState,
)
from kafka.structs import TopicPartition

from charms.kafka_k8s.v0.mirrormaker import _transactions


def producer(producer_id: int, start: int) -> ProducerState:
    return ProducerState(producer_id, 0, 5, 1_000, 0, start)


class Admin:
    """kafka-python's admin client, answering as a source with two producers on orders[0]."""

    def __init__(self, *, listed: bool = True, error: type[Exception] | None = None):
        self.listed = listed
        self.error = error
        self.configs: dict | Exception = {}

    def describe_producers(self, partitions):
        if self.error is not None:
            raise self.error()
        assert partitions == [TopicPartition("orders", 0)]
        return {
            TopicPartition("orders", 0): PartitionProducerState(
                [producer(3, -1), producer(9, 140)]  # 3 has no open transaction
            )
        }

    def list_transactions(self, producer_id_filters):
        assert producer_id_filters == [9]
        if not self.listed:  # the user may describe no transactional id: none is listed
            return {0: []}
        return {0: [TransactionListing("ledger-writer", 9, TransactionState.ONGOING)]}

    def describe_transactions(self, ids):
        assert ids == ["ledger-writer"]
        tp = {TopicPartition("orders", 0)}
        return {"ledger-writer": TransactionDescription(0, "Ongoing", 9, 0, 60_000, 123_000, tp)}

    def describe_cluster(self):
        return {"brokers": [{"broker_id": 1}]}

    def describe_configs(self, resources, config_filter):
        [resource] = resources
        assert (resource.name, config_filter) == ("1", "all")
        if isinstance(self.configs, Exception):
            raise self.configs
        return {"broker": {"1": self.configs}}


def test_an_open_transaction_is_named_with_its_id_and_start():
    found = _transactions.describe_open(Admin(), [("orders", 0)], "user migrator")
    assert found.unnamed is None
    assert found.transactions == [
        _transactions.OpenTransaction(
            topic="orders",
            partition=0,
            producer_id=9,
            start_offset=140,
            transactional_id="ledger-writer",
            since=123_000,
        )
    ]
    assert found.undated() == []


def test_without_describe_on_transactional_ids_the_first_record_dates_it():
    found = _transactions.describe_open(Admin(listed=False), [("orders", 0)], "user migrator")
    [transaction] = found.transactions
    assert (transaction.transactional_id, transaction.since) == (None, None)
    assert found.unnamed == (
        "source user migrator may not describe transactional ids: grant it DESCRIBE on the "
        "TRANSACTIONAL_ID resources to see which is open"
    )
    assert found.undated() == [("orders", 0, 140)]
    assert found.dated({("orders", 0, 140): 555}).transactions[0].since == 555


def test_first_record_times_reads_the_record_each_transaction_began_with():
    partition = TopicPartition("orders", 0)
    seeks = []

    class Reader:
        def assign(self, partitions):
            pass

        def seek(self, tp, offset):
            seeks.append((tp, offset))

        def poll(self, timeout_ms, max_records):
            return {partition: [SimpleNamespace(timestamp=777)]}

    times = _transactions.first_record_times(Reader(), [("orders", 0, 140)], timeout=1)
    assert times == {("orders", 0, 140): 777}
    assert seeks == [(partition, 140)]


@pytest.mark.parametrize(
    ("error", "why"),
    [
        (kafka_errors.UnsupportedVersionError, _transactions._OLD_KAFKA),
        (
            kafka_errors.TopicAuthorizationFailedError,
            "source user migrator may not read the topic, so the open transaction is not named",
        ),
    ],
)
def test_a_source_that_cannot_tell_says_why(error, why):
    found = _transactions.describe_open(Admin(error=error), [("orders", 0)], "user migrator")
    assert (found.transactions, found.unnamed) == ([], why)


def test_the_brokers_transaction_max_timeout_or_none():
    admin = Admin()
    admin.configs = {"transaction.max.timeout.ms": {"value": "600000"}}
    assert _transactions.max_timeout_ms(admin) == 600_000
    admin.configs = kafka_errors.ClusterAuthorizationFailedError()
    assert _transactions.max_timeout_ms(admin) is None
