# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The preflight's queries: what each topic holds and allows, what a cluster has room for.

`CapacityClient` adds to `ClusterClient` the bounded queries the preflight (`_preflight`)
asks both clusters, and the two changes a real start makes on the target before MirrorMaker
runs: a copy's record limit raised, or a copy created with it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from kafka import errors as kafka_errors
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.protocol.broker_version_data import BrokerVersionData
from pydantic import BaseModel, ConfigDict

from ._clients import ClusterClient
from ._connections import QUERY_ERRORS
from ._errors import ClusterUnreachableError

# A broker's `message.max.bytes` unless it is configured: the record limit of a topic without
# `max.message.bytes` of its own.
DEFAULT_MESSAGE_MAX_BYTES = 1048588

# Where a topic config comes from, as DescribeConfigs says: MirrorMaker copies a config into the
# topic it creates unless it is Kafka's default or the source brokers' own file
# (`MirrorSourceConnector.targetConfig`).
_NOT_COPIED = ("DEFAULT_CONFIG", "STATIC_BROKER_CONFIG")


class TopicDetails(BaseModel):
    """What the preflight needs of one topic: its size in partitions, replicas, records, bytes.

    `record_limit` is the topic's effective `max.message.bytes`; `configs` are the configs
    MirrorMaker copies into the topic it creates (`limit_copied`: the limit among them).
    `size_bytes` is one replica's size, `None` when the user may not describe the log dirs.
    """

    model_config = ConfigDict(frozen=True)

    partitions: int
    replication_factor: int
    record_limit: int
    limit_copied: bool = False
    configs: dict[str, str] = {}
    size_bytes: int | None = None


class CapacityClient(ClusterClient):
    """A `ClusterClient` that also asks what the preflight needs, and prepares the target."""

    def __enter__(self) -> CapacityClient:
        return self

    def topic_details(self, topics: Collection[str]) -> dict[str, TopicDetails]:
        """Partitions, replication factor, record limit, copied configs and size of each topic.

        The size comes from the log dirs (DESCRIBE on the cluster); without that right it is
        `None`.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time, or refuses.
        """
        if not topics:
            return {}
        names = sorted(topics)
        described = self._ask(lambda admin: admin.describe_topics(names))
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        try:
            answer = self._answer(
                lambda admin: admin.describe_configs(resources, config_filter="all")
            )
        except QUERY_ERRORS:
            answer = {}  # a user that may not describe them: the missing-rights line says so
        configs = answer.get("topic", {})
        sizes = self._log_dir_sizes(names)
        details = {}
        for topic in described:
            name, partitions = topic["name"], topic.get("partitions") or []
            if topic.get("error_code") or not partitions:
                continue
            entries = configs.get(name, {})
            copied = {
                key: str(entry.get("value"))
                for key, entry in entries.items()
                if entry.get("config_source") not in _NOT_COPIED
                and not entry.get("read_only")
                and not entry.get("is_sensitive")
                and entry.get("value") is not None
            }
            limit = entries.get("max.message.bytes", {}).get("value")
            replicas = max(len(partition.get("replicas") or ()) for partition in partitions)
            size = sizes.get(name)
            details[name] = TopicDetails(
                partitions=len(partitions),
                replication_factor=replicas,
                record_limit=int(limit) if limit else DEFAULT_MESSAGE_MAX_BYTES,
                limit_copied="max.message.bytes" in copied,
                configs=copied,
                size_bytes=None if size is None else size // max(replicas, 1),
            )
        return details

    def _log_dir_sizes(self, topics: list[str] | None) -> dict[str, int]:
        """The bytes of every replica of each topic, over all brokers; empty when refused."""
        try:
            answer = self._answer(lambda admin: admin.describe_log_dirs(topic_partitions=topics))
        except QUERY_ERRORS:
            return {}
        sizes: dict[str, int] = {}
        for broker in answer:
            for log_dir in broker.get("log_dirs") or ():
                for topic in log_dir.get("topics") or ():
                    total = sum(p.get("partition_size") or 0 for p in topic.get("partitions", ()))
                    sizes[topic["name"]] = sizes.get(topic["name"], 0) + total
        return sizes

    def storage(self) -> tuple[int, int | None]:
        """How many brokers the cluster has, and the free bytes of all their log dirs.

        The free bytes are `None` when the user may not describe the log dirs (DESCRIBE on the
        cluster) or a broker does not report them (before Kafka 3.3, KIP-827).

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        brokers = self._ask(lambda admin: admin.describe_cluster()).get("brokers") or []
        try:
            answer = self._answer(lambda admin: admin.describe_log_dirs(topic_partitions=[]))
        except QUERY_ERRORS:
            return len(brokers), None
        free = [
            log_dir.get("usable_bytes", -1)
            for broker in answer
            for log_dir in broker.get("log_dirs") or ()
            if not log_dir.get("error_code")
        ]
        known = free and all(value is not None and value >= 0 for value in free)
        return len(brokers), sum(free) if known else None

    def kafka_version(self) -> tuple[int, ...] | None:
        """The Kafka release the cluster's brokers run, as their API versions tell it.

        A broker's, found through DescribeCluster. kafka-python cannot read that answer from
        Kafka 2.8 to 3.6 (its version 0 has no endpoint type: a KeyError); from those, the API
        versions announced when the client connected tell the release.
        """
        try:
            try:
                brokers = self._ask(lambda admin: admin.describe_cluster()).get("brokers") or []
                if not brokers:
                    return None
                first = brokers[0]["broker_id"]
                data = self._ask(lambda admin: admin.get_broker_version_data(first))
                version = getattr(data, "broker_version", None)
            except KeyError:
                versions = self._ask(lambda admin: admin.api_versions())
                version = BrokerVersionData(api_versions=dict(versions)).broker_version
        except (ClusterUnreachableError, ValueError, kafka_errors.KafkaError):
            return None
        return tuple(version) if version else None

    def create_topics(self, topics: Mapping[str, tuple[int, int, Mapping[str, str]]]) -> None:
        """Create topics: partitions, replication factor and configs of each.

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or refuses one.
        """
        if not topics:
            return
        new = [
            NewTopic(name, partitions, replicas, topic_configs=dict(configs))
            for name, (partitions, replicas, configs) in topics.items()
        ]
        try:
            self._answer(lambda admin: admin.create_topics(new))
        except kafka_errors.TopicAlreadyExistsError:
            # MirrorMaker made some meanwhile (a migration started before): raise their limits.
            limits = {name: int(c["max.message.bytes"]) for name, (_, _, c) in topics.items()}
            self.set_record_limits(limits)
        except QUERY_ERRORS as error:
            raise self.unreachable(error) from None

    def set_record_limits(self, limits: Mapping[str, int]) -> None:
        """Set `max.message.bytes` of existing topics (IncrementalAlterConfigs).

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or refuses one.
        """
        if not limits:
            return
        resources = [
            ConfigResource(
                ConfigResourceType.TOPIC,
                name,
                {"max.message.bytes": str(limit)},  # a bare value is SET
            )
            for name, limit in limits.items()
        ]
        answer = self._ask(
            lambda admin: admin.alter_configs(resources, raise_on_unknown=False, incremental=True)
        )
        failed = [f"{n}: {r}" for n, r in answer.get("topic", {}).items() if r != "OK"]
        if failed:
            raise self.unreachable(f"setting max.message.bytes: {failed[0]}")
