# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The cluster client: read-only queries against one cluster, each bounded by a timeout.

`ClusterClient` asks for topics, groups, offsets and transactions here, for rights, ACLs and
quotas through `RightsQueries` (`_rights`), and for MirrorMaker's connectors through
`ConnectQueries` (`_connectors`); the connections, their bounds and the wording of their failures
are `Connections` (`_connections`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, cast

from kafka import errors as kafka_errors
from pydantic import BaseModel, ConfigDict

from . import _transactions
from ._connectors import ConnectQueries
from ._rights import RightsQueries
from ._transactions import OpenTransactions


def _commits_on(offsets: Mapping[Any, Any], topics: Collection[str]) -> GroupCommits:
    """A group's commits (kafka-python's partition to offset map) on these topics only."""
    commits: GroupCommits = {}
    for partition, committed in offsets.items():
        if partition.topic in topics and committed.offset >= 0:
            commits.setdefault(partition.topic, {})[partition.partition] = committed.offset
    return commits


# librdkafka's names of the group states, which the report has always shown.
_GROUP_STATES = {
    "PreparingRebalance": "preparing_rebalancing",
    "CompletingRebalance": "completing_rebalancing",
}


_ERROR_CODE = re.compile(r"\[Error (-?\d+)\]")


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


class ClusterClient(RightsQueries, ConnectQueries):
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
        user = self.cluster.principal
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
                    number = int(code.group(1)) if code else -1
                    if number != kafka_errors.GroupIdNotFoundError.errno:
                        raise kafka_errors.for_code(number)(error)
            return answer

        described: dict[str, tuple[str, int]] = {}
        newer = []
        for group, description in self._ask(query, again=True).items():
            if description.get("error"):
                newer.append(group)
                continue
            state = str(description.get("group_state") or "unknown")
            described[group] = (
                _GROUP_STATES.get(state, state.lower()),
                len(description.get("members") or ()),
            )
        if newer:
            described.update(self._consumer_protocol_groups(newer))
        return described

    def _consumer_protocol_groups(self, groups: Sequence[str]) -> dict[str, tuple[str, int]]:
        """The state of groups of the consumer protocol (KIP-848), and whether they have members.

        Kafka 4 answers DescribeGroups (the classic protocol's) for such a group with "not a
        classic group" (GROUP_ID_NOT_FOUND), state Dead and no member, even while consumers
        read. kafka-python has no ConsumerGroupDescribe; ListGroups gives each group's type and
        state, and one of the consumer protocol in a state other than Empty has members: it
        counts as one, its number unknown. A group that is not listed has gone (Dead).
        """
        listed = {
            str(group["group_id"]): group
            for group in self._ask(lambda admin: admin.list_groups(), again=True)
        }
        described = {}
        for name in groups:
            state = str(listed.get(name, {}).get("group_state") or "Dead").lower()
            described[name] = (state, 0 if state in ("empty", "dead") else 1)
        return described
