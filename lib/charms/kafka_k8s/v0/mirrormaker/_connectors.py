# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""MirrorMaker's connectors and tasks, as Kafka Connect records them on the target."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from pydantic import BaseModel, ConfigDict, Field

from ._connections import QUERY_ERRORS, Connections, quiet_kafka_logs
from ._text import clip

# How long a failed connector's or task's error may be, in statuses and results.
ERROR_CHARS = 240


class ConnectorState(BaseModel):
    """What Kafka Connect last recorded for one MirrorMaker connector (`task` None) or task.

    `since` is when Connect recorded that state (its status record's timestamp, in seconds since
    the epoch), None when it recorded none yet.
    """

    model_config = ConfigDict(frozen=True)

    connector: str
    task: int | None = None
    state: str
    trace: str | None = Field(default=None, repr=False)
    since: float | None = None

    @property
    def name(self) -> str:
        """How Connect names it: the connector, or `CONNECTOR-TASK`."""
        return self.connector if self.task is None else f"{self.connector}-{self.task}"

    @property
    def error(self) -> str | None:
        """Its error trace as one line (`trace_summary`), None without one."""
        return trace_summary(self.trace)


def _short_exception(line: str) -> str:
    """`a.b.SomeException: message` as `SomeException: message`."""
    name, colon, message = line.partition(":")
    return name.rsplit(".", 1)[-1] + colon + message


def trace_summary(trace: str | None) -> str | None:
    """A Java stack trace as one line: the exception and its root cause, without packages."""
    if not trace:
        return None
    lines = [line.strip() for line in trace.strip().splitlines() if line.strip()]
    summary = _short_exception(lines[0])
    causes = [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by:")]
    if causes:
        summary += f"; caused by {_short_exception(causes[-1])}"
    return clip(summary, ERROR_CHARS)


def _json_object(value: bytes | None) -> dict[str, Any]:
    try:
        parsed = json.loads(value) if value else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def connector_states(
    configs: Mapping[str, bytes | None],
    statuses: Mapping[str, bytes | None],
    times: Mapping[str, float] | None = None,
) -> list[ConnectorState]:
    """Each live connector and each of its current tasks, from Connect's config and status topics.

    Args:
        configs: the latest value of each key of the config topic; only the `connector-NAME`
            and `commit-NAME` (`{"tasks": N}`) records are read, never a connector's settings.
        statuses: the latest value of each key of the status topic (`status-connector-NAME`,
            `status-task-NAME-N`: `{"state": ..., "trace": ...}`).
        times: when each record of the status topic was written, in seconds since the epoch.

    A current task without a status record yet is `UNASSIGNED`, as Connect reports it.
    """
    states = []
    for key in sorted(configs):
        if not key.startswith("connector-") or configs[key] is None:
            continue
        connector = key.removeprefix("connector-")
        tasks = _json_object(configs.get(f"commit-{connector}")).get("tasks", 0)
        numbers = range(int(tasks) if isinstance(tasks, int) else 0)
        for task, status in [
            (None, f"status-connector-{connector}"),
            *((n, f"status-task-{connector}-{n}") for n in numbers),
        ]:
            recorded = _json_object(statuses.get(status))
            states.append(
                ConnectorState(
                    connector=connector,
                    task=task,
                    state=str(recorded.get("state", "UNASSIGNED")),
                    trace=recorded.get("trace"),
                    since=(times or {}).get(status) if recorded else None,
                )
            )
    return states


class ConnectQueries(Connections):
    """The queries of Kafka Connect's own topics on the target: MirrorMaker's connectors."""

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
