# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Records and offset syncs: reading both clusters record by record, and matching copies.

MirrorMaker copies each partition in order and at least once: a task that restarts sends again
what it had sent since its last committed source offset, so a target partition holds runs of
the source's records, each in source order, a later run starting again before an earlier one
ended. Records a `read_committed` consumer never sees (aborted ones, transaction markers,
compacted-away offsets) are never copied, so offsets differ between the clusters. The offset
syncs MirrorMaker writes on the target are exact pairs: the source record at `upstream` was
written to the target at `downstream`. From such a pair, the records of both partitions,
walked in step and matched by content (key, value, headers and timestamp), say which source
record every target record copies; what a consumer switched at any offset would read follows.
"""

from __future__ import annotations

import bisect
import itertools
import json
import struct
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import errors as kafka_errors
from kafka.structs import OffsetAndMetadata, TopicPartition

from ._clusters import KafkaCluster
from ._connections import (
    CLIENT_TIMEOUT,
    AdminClient,
    error_text,
    fetch_token,
    kafka_python_config,
    quiet_kafka_logs,
)
from ._errors import ClusterUnreachableError
from ._names import SOURCE_ALIAS

_Content = tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...], int]
"""What identifies a record across clusters: key, value, headers and timestamp."""


Partition = tuple[str, int]
"""A topic and a partition number."""


# How far one walk reads in a partition, on each cluster; what lies beyond is not looked at.
_WALK_LIMIT = 200_000

# How many records past a time `offsets_for_times` gave a content search reads at most.
SEARCH_LIMIT = 20_000

# Partitions a record reader assigns at once.
_READ_CHUNK = 1000

# Offsets past the newest offset sync within which a partition's lag is counted record by record.
EXACT_LAG_WINDOW = 5_000

# Records of the offset-syncs topic read at first, from its end; each further read doubles.
_SYNC_CHUNK = 2_000
_MIRRORMAKER_CONNECTOR = "MirrorSourceConnector"


class Record(NamedTuple):
    """A record as a `read_committed` consumer reads it: its offset and its content."""

    offset: int
    content: _Content


class OffsetSync(NamedTuple):
    """One of MirrorMaker's offset syncs: source `upstream` was copied to target `downstream`."""

    topic: str
    partition: int
    upstream: int
    downstream: int


def _offset_syncs_topic(alias: str = SOURCE_ALIAS) -> str:
    """MirrorMaker's offset-syncs topic, which `offset-syncs.topic.location=target` puts here.

    Kafka names it after the cluster at the other end of the flow from where it lives
    (`MirrorSourceConfig.offsetSyncsTopic`): on the target, after the source, `alias`.
    """
    return f"mm2-offset-syncs.{alias}.internal"


def connect_topics(alias: str = SOURCE_ALIAS) -> list[str]:
    """The topics MirrorMaker makes on the target of its flow from `alias`, for itself.

    Its offset syncs, Kafka Connect's config, offsets and status topics, and the checkpoints.
    """
    return [
        _offset_syncs_topic(alias),
        f"mm2-configs.{alias}.internal",
        f"mm2-offsets.{alias}.internal",
        f"mm2-status.{alias}.internal",
        f"{alias}.checkpoints.internal",
    ]


def internal_topics(migrated: Collection[str]) -> list[str]:
    """The topics MirrorMaker made on the target for itself (`heartbeats` unless migrated)."""
    names = connect_topics()
    return names if "heartbeats" in migrated else [*names, "heartbeats"]


def _decode_offset_sync(key: bytes | None, value: bytes | None) -> OffsetSync | None:
    """An offset-syncs record (Kafka's `OffsetSync` key and value schemas), or None if it is not.

    The key is the source topic as a string (int16 length, UTF-8) and the partition (int32); the
    value the upstream and downstream offsets (int64 each), all big-endian.
    """
    if not key or not value or len(key) < 6 or len(value) != 16:
        return None
    (length,) = struct.unpack_from(">h", key)
    if length < 0 or len(key) != 2 + length + 4:
        return None
    (partition,) = struct.unpack_from(">i", key, 2 + length)
    upstream, downstream = struct.unpack(">qq", value)
    return OffsetSync(
        key[2 : 2 + length].decode(errors="replace"), partition, upstream, downstream
    )


def _decode_source_offset(
    key: bytes | None, value: bytes | None, alias: str = SOURCE_ALIAS
) -> tuple[Partition, int] | None:
    """A source offset MirrorMaker committed, from Kafka Connect's offsets topic, or None.

    The key is `["MirrorSourceConnector", {"cluster": ..., "topic": ..., "partition": ...}]`, the
    value `{"offset": N}`: the offset of the last source record whose copy was acknowledged.
    Only the offsets of the flow from `alias` (the key's `cluster`) are read.
    """
    try:
        connector, partition = json.loads(key or b"null")
        offset = json.loads(value)["offset"] if value else None
    except (ValueError, TypeError, KeyError):
        return None
    if connector != _MIRRORMAKER_CONNECTOR or not isinstance(partition, dict):
        return None
    if partition.get("cluster") != alias or not isinstance(offset, int):
        return None
    topic, number = partition.get("topic"), partition.get("partition")
    if not isinstance(topic, str) or not isinstance(number, int):
        return None
    return (topic, number), offset


def encode_source_offset(alias: str, partition: Partition, offset: int) -> tuple[bytes, bytes]:
    """The record Kafka Connect writes when MirrorMaker copied `offset` of a source partition.

    What `_decode_source_offset` reads, byte for byte as Connect's JSON converter writes it:
    Connect looks a task's offsets up by the key's bytes, and MirrorMaker's task seeks to the
    offset after the one recorded (`MirrorSourceTask.initializeConsumer`; a negative offset
    counts as none recorded). The partition map is a Java `HashMap` (`MirrorUtils.wrapPartition`),
    whose keys come out as `cluster`, `partition`, `topic`.
    """
    topic, number = partition
    wrapped = {"cluster": alias, "partition": number, "topic": topic}
    key = json.dumps([_MIRRORMAKER_CONNECTOR, wrapped], separators=(",", ":"))
    return key.encode(), json.dumps({"offset": offset}, separators=(",", ":")).encode()


def _copies(source: Sequence[Record], target: Sequence[Record]) -> list[int | None]:
    """For each target record, the index in `source` of the record it copies; None if unknown.

    The target is walked in step with the source: a record that equals the source record after
    the one the previous target record copied continues the run. Any other record starts a new
    run (a re-send, or a gap where the target's own compaction removed records); of equal source
    records, the one nearest to where the run stood is taken. A record the source does not hold
    from the walk's first offset on (sent again from before it, or compacted away on the source
    since) copies nothing known.
    """
    where: dict[_Content, list[int]] = {}
    for index, record in enumerate(source):
        where.setdefault(record.content, []).append(index)
    copies: list[int | None] = []
    expected = 0
    for record in target:
        if expected < len(source) and source[expected].content == record.content:
            index = expected
        elif candidates := where.get(record.content):
            index = min(candidates, key=lambda candidate: (abs(candidate - expected), candidate))
        else:
            copies.append(None)
            continue
        copies.append(index)
        expected = index + 1
    return copies


class _Position(NamedTuple):
    """Where a consumer of the target resumes for a source offset, and what it then reads.

    `re_read`: target records at or after `offset` that copy a record before the source offset
    (or an unknown one); `skip`: source records at or after it whose every copy lies before.
    """

    offset: int
    re_read: int
    skip: int


@dataclass(frozen=True)
class Walk:
    """One partition on both clusters from an anchor on, and which target record copies which.

    `source` holds the source's committed records from the anchor's upstream offset, `target`
    the target's from the anchor's downstream offset (or from earlier, to judge an offset
    there); `target_end` is the target's end offset when it was read. `complete` is whether
    both were read to their ends.
    """

    source: Sequence[Record]
    target: Sequence[Record]
    target_end: int
    complete: bool = True
    how: str = "offset sync"
    copies: list[int | None] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        source: Sequence[Record],
        target: Sequence[Record],
        target_end: int,
        *,
        complete: bool = True,
        how: str = "offset sync",
    ) -> Walk:
        """The walk, with the copies computed."""
        return cls(source, target, target_end, complete, how, _copies(source, target))

    def _first_at_or_after(self, committed: int) -> int:
        return bisect.bisect_left([record.offset for record in self.source], committed)

    def copied_before(self, committed: int) -> bool:
        """Whether the target holds the last source record before `committed` (or needs none)."""
        first_new = self._first_at_or_after(committed)
        return first_new == 0 or (first_new - 1) in set(self.copies)

    def copied_up_to(self) -> int | None:
        """One past the source offset of the furthest record copied, if any was."""
        known = [index for index in self.copies if index is not None]
        return self.source[max(known)].offset + 1 if known else None

    def lag(self) -> int:
        """Source records after the furthest one the target holds."""
        known = [index for index in self.copies if index is not None]
        return len(self.source) - 1 - max(known) if known else len(self.source)

    def _last_copies(self, first_new: int) -> dict[int, int]:
        """For each source record from `first_new` on that was copied, its last copy's index."""
        last: dict[int, int] = {}
        for position, index in enumerate(self.copies):
            if index is not None and index >= first_new:
                last[index] = position
        return last

    def judge(self, committed: int, offset: int) -> _Position:
        """What a consumer resuming at target `offset` reads, against source offset `committed`."""
        first_new = self._first_at_or_after(committed)
        start = bisect.bisect_left([record.offset for record in self.target], offset)
        re_read = sum(1 for index in self.copies[start:] if index is None or index < first_new)
        last = self._last_copies(first_new)
        return _Position(offset, re_read, sum(1 for at in last.values() if at < start))

    def position(self, committed: int) -> _Position:
        """The target offset matching source offset `committed`: the furthest that skips nothing.

        Every source record at or after `committed` that the target holds keeps its last copy at
        or after it, so nothing is skipped; past that, each record before it would be a re-read.
        """
        last = self._last_copies(self._first_at_or_after(committed))
        first = min(last.values(), default=len(self.target))
        offset = self.target[first].offset if first < len(self.target) else self.target_end
        return self.judge(committed, offset)


def _positions(consumer: KafkaConsumer, partitions: Sequence[TopicPartition]) -> dict[Any, int]:
    """The offset the consumer reads next in each partition (0 where it has none yet).

    kafka-python 3's `KafkaConsumer.position` validates every assigned partition's position on
    each call, so asking it for each of n partitions costs n * n. One call validates them all;
    the others are then read from the state it keeps them in, and asked one by one only where
    that state is not as expected.
    """
    first = consumer.position(partitions[0]) or 0
    states = getattr(getattr(consumer, "_subscription", None), "assignment", None)
    positions = {partitions[0]: first}
    for partition in partitions[1:]:
        state = states.get(partition) if isinstance(states, Mapping) else None
        position = getattr(state, "position", None)
        offset = getattr(position, "offset", position)
        positions[partition] = (
            offset if isinstance(offset, int) else (consumer.position(partition) or 0)
        )
    return positions


class LogClient:
    """Reads partitions record by record and commits group offsets, with kafka-python.

    Records are read as a `read_committed` consumer reads them, with no consumer group: the
    client commits nothing while it reads. `flow` is the alias of the cluster the MirrorMaker
    flow into this one reads from: the offset syncs and Connect's offsets it reads are named
    after it (the migration's by default; a failback's copy back names this cluster's).
    """

    def __init__(
        self,
        cluster: KafkaCluster,
        role: str,
        timeout: float = CLIENT_TIMEOUT,
        flow: str = SOURCE_ALIAS,
    ):
        self.cluster = cluster
        self.role = role
        self.timeout = timeout
        self.flow = flow
        self._config = kafka_python_config(cluster, timeout)
        self._reader: KafkaConsumer | None = None
        self._admin_client: KafkaAdminClient | None = None
        quiet_kafka_logs()  # its DEBUG records carry its configuration, the password with it

    def __enter__(self) -> LogClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        reader, self._reader = self._reader, None
        admin, self._admin_client = self._admin_client, None
        if reader is not None:
            reader.close(autocommit=False)
        if admin is not None:
            admin.close()

    def unreachable(self, error: object) -> ClusterUnreachableError:
        """The error that tells the operator why the cluster failed a read or a commit."""
        where = f"{self.role} cluster at {self.cluster.bootstrap}"
        if isinstance(error, kafka_errors.SaslAuthenticationFailedError):
            return ClusterUnreachableError(
                f"{where} refused the login of {self.cluster.principal}", refused=True
            )
        if isinstance(error, kafka_errors.BrokerResponseError):
            # Its name as Kafka's documentation spells it, not the whole request and response.
            reason, _ = error_text(error)
            return ClusterUnreachableError(f"{where} refused the request: {reason}")
        return ClusterUnreachableError(f"{where} did not answer: {error or 'timed out'}")

    def _consumer(self) -> KafkaConsumer:
        if self._reader is None:
            fetch_token(self._config, f"{self.role} cluster at {self.cluster.bootstrap}")
            try:
                self._reader = KafkaConsumer(
                    **self._config,
                    group_id=None,
                    enable_auto_commit=False,
                    isolation_level="read_committed",
                    auto_offset_reset="earliest",
                    fetch_max_wait_ms=50,
                    max_poll_records=5000,
                )
            except (kafka_errors.KafkaError, OSError) as error:
                raise self.unreachable(error) from None
        return self._reader

    def _admin(self) -> KafkaAdminClient:
        if self._admin_client is None:
            fetch_token(self._config, f"{self.role} cluster at {self.cluster.bootstrap}")
            try:
                self._admin_client = AdminClient(**self._config)
            except (kafka_errors.KafkaError, OSError) as error:
                raise self.unreachable(error) from None
        return self._admin_client

    def bounds(self, partitions: Collection[Partition]) -> dict[Partition, tuple[int, int]]:
        """The first offset and the end offset (last stable offset) of each partition.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        if not partitions:
            return {}
        # kafka-python 3's timeouts; the type stubs know an older release.
        consumer = cast(Any, self._consumer())
        wanted = [TopicPartition(topic, number) for topic, number in partitions]
        timeout_ms = int(self.timeout * 1000)
        try:
            starts = consumer.beginning_offsets(wanted, timeout_ms=timeout_ms)
            ends = consumer.end_offsets(wanted, timeout_ms=timeout_ms)
        except (kafka_errors.KafkaError, OSError) as error:
            raise self.unreachable(error) from None
        return {(p.topic, p.partition): (starts[p], ends[p]) for p in wanted}

    def read(
        self, ranges: Mapping[Partition, tuple[int, int]], limit: int = _WALK_LIMIT
    ) -> dict[Partition, tuple[list[Record], bool]]:
        """The committed records of each partition from `start` up to `end`, at most `limit`.

        Returns, per partition, the records and whether the reading reached `end`.

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or no record arrives for
                the timeout.
        """
        read: dict[Partition, tuple[list[Record], bool]] = {p: ([], True) for p in ranges}
        wanted = [
            (TopicPartition(topic, number), (start, end))
            for (topic, number), (start, end) in ranges.items()
            if start < end
        ]
        if not wanted:
            return read
        consumer = self._consumer()
        try:
            # A few partitions at a time: kafka-python's `seek` and `position` each walk the
            # whole assignment, so reading n partitions at once costs n * n.
            for first in range(0, len(wanted), _READ_CHUNK):
                pending = dict(wanted[first : first + _READ_CHUNK])
                consumer.assign(list(pending))
                for partition, (start, _) in pending.items():
                    consumer.seek(partition, start)
                self._poll(consumer, pending, read, limit)
        except (kafka_errors.KafkaError, OSError) as error:
            raise self.unreachable(error) from None
        finally:
            consumer.assign([])
        return read

    def _poll(
        self,
        consumer: KafkaConsumer,
        pending: dict[TopicPartition, tuple[int, int]],
        read: dict[Partition, tuple[list[Record], bool]],
        limit: int,
    ) -> None:
        """Poll until every pending partition reached its end or its limit.

        A partition is done when a record at or past its end, or its limit, arrived; after a
        poll that brought nothing, when the consumer's position reached its end (past aborted
        records and transaction markers). Done partitions leave the assignment, which keeps the
        others' positions.
        """
        deadline = time.monotonic() + self.timeout
        while pending:
            if time.monotonic() > deadline:
                named = ", ".join(map(str, itertools.islice(pending, 3)))
                more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
                raise self.unreachable(f"timed out reading {named}{more}")
            done = []
            polled = consumer.poll(timeout_ms=200)
            for partition, records in polled.items():
                if partition not in pending or not records:
                    continue
                key = (partition.topic, partition.partition)
                kept = read[key][0]
                end = pending[partition][1]
                kept += [_record(record) for record in records if record.offset < end]
                deadline = time.monotonic() + self.timeout
                if len(kept) >= limit:
                    read[key] = (kept[:limit], False)
                    done.append(partition)
                elif records[-1].offset + 1 >= end:
                    done.append(partition)
            if not polled:
                positions = _positions(consumer, list(pending))
                done += [p for p, (_, end) in pending.items() if positions[p] >= end]
            if done:
                for partition in done:
                    del pending[partition]
                if pending:
                    consumer.assign(list(pending))

    def first_offsets_at(self, times: Mapping[Partition, int]) -> dict[Partition, int | None]:
        """The first offset of each partition whose timestamp is at or after the given one.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        wanted = {TopicPartition(t, p): at for (t, p), at in times.items()}
        try:
            found = cast(Any, self._consumer()).offsets_for_times(
                wanted, timeout_ms=int(self.timeout * 1000)
            )
        except (kafka_errors.KafkaError, OSError) as error:
            raise self.unreachable(error) from None
        return {
            (p.topic, p.partition): (found[p].offset if found.get(p) else None) for p in wanted
        }

    def offset_syncs(self, wanted: Mapping[Partition, int | None]) -> dict[Partition, OffsetSync]:
        """For each source partition, the newest offset sync at or before the given offset.

        None wants the newest sync. The topic is read back from its end, in growing chunks,
        until every partition has one or its beginning is reached.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        topic = _offset_syncs_topic(self.flow)
        if not wanted or topic not in self.topics():
            return {}
        start, high = self.bounds([(topic, 0)])[(topic, 0)]
        found: dict[Partition, OffsetSync] = {}
        chunk = _SYNC_CHUNK
        while high > start and len(found) < len(wanted):
            low = max(start, high - chunk)
            records, _ = self.read({(topic, 0): (low, high)}, limit=high - low)[(topic, 0)]
            for record in reversed(records):
                sync = _decode_offset_sync(record.content[0], record.content[1])
                if sync is None:
                    continue
                key = (sync.topic, sync.partition)
                if key not in wanted or key in found:
                    continue
                at_most = wanted[key]
                if at_most is None or sync.upstream <= at_most:
                    found[key] = sync
            high, chunk = low, chunk * 2
        return found

    def source_offsets(self) -> dict[Partition, int]:
        """The last source offset MirrorMaker committed per partition (Kafka Connect's record).

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        topic = f"mm2-offsets.{self.flow}.internal"
        partitions = self.topics().get(topic, 0)
        bounds = self.bounds([(topic, number) for number in range(partitions)])
        committed: dict[Partition, int] = {}
        for records, _ in self.read(bounds, limit=sys.maxsize).values():
            for record in records:
                key, value = record.content[0], record.content[1]
                if decoded := _decode_source_offset(key, value, self.flow):
                    committed[decoded[0]] = decoded[1]
        return committed

    def topics(self) -> dict[str, int]:
        """Every topic, with its number of partitions.

        Raises:
            ClusterUnreachableError: if the cluster does not answer in time.
        """
        consumer = self._consumer()
        try:
            names = consumer.topics()
        except (kafka_errors.KafkaError, OSError) as error:
            raise self.unreachable(error) from None
        return {name: len(consumer.partitions_for_topic(name) or ()) for name in names}

    def commit(self, group: str, offsets: Mapping[Partition, int]) -> None:
        """Commit a group's offsets; the group must have no members.

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or refuses a partition.
        """
        request = {
            TopicPartition(topic, number): OffsetAndMetadata(offset, "", -1)
            for (topic, number), offset in offsets.items()
        }
        try:
            errors = cast(Any, self._admin()).alter_group_offsets(group, request)
        except (kafka_errors.KafkaError, OSError) as error:
            raise self.unreachable(error) from None
        refused = [
            f"{p.topic}[{p.partition}]: {error.__name__}"
            for p, error in errors.items()
            if error is not kafka_errors.NoError
        ]
        if refused:
            raise self.unreachable(kafka_errors.KafkaError(", ".join(refused)))

    def delete_topics(self, names: Collection[str]) -> list[str]:
        """Delete those of these topics that exist; the ones deleted.

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or refuses.
        """
        existing = sorted(set(names) & set(self.topics()))
        if existing:
            try:
                self._admin().delete_topics(existing, timeout_ms=int(self.timeout * 1000))
            except (kafka_errors.KafkaError, OSError) as error:
                raise self.unreachable(error) from None
        return existing

    def claim(self, topic: str, holder: str, replication_factor: int = 1) -> str:
        """Claim a step by creating `topic`, which exactly one caller can; who holds it.

        CreateTopics creates a topic once: the caller whose request makes it writes `holder`
        into it and holds the claim; any later caller reads the holder back (waiting, within the
        timeout, for the winner to write it) and gets it, or "" if it never appears.

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or refuses.
        """
        timeout_ms = int(self.timeout * 1000)
        settings = {"num_partitions": 1, "replication_factor": replication_factor}
        try:
            cast(Any, self._admin()).create_topics(
                {topic: {**settings, "configs": {"retention.ms": "-1"}}},
                timeout_ms=timeout_ms,
                wait_for_metadata=True,
            )
        except kafka_errors.TopicAlreadyExistsError:
            return self._holder(topic)
        except (kafka_errors.KafkaError, OSError) as error:
            raise self.unreachable(error) from None
        self.write(topic, [(b"holder", holder.encode())])
        return holder

    def write(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Write keyed records to a topic, each acknowledged by every in-sync replica.

        Partitioned by key as Kafka's Java producer does (murmur2), so a record lands where
        Kafka Connect's own record of the same key does.

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or refuses.
        """
        producer = None
        fetch_token(self._config, f"{self.role} cluster at {self.cluster.bootstrap}")
        try:
            producer = KafkaProducer(**self._config, acks="all")
            sent = [producer.send(topic, key=key, value=value) for key, value in records]
            for future in sent:
                future.get(timeout=self.timeout)
        except (kafka_errors.KafkaError, OSError) as error:
            raise self.unreachable(error) from None
        finally:
            if producer is not None:
                producer.close(timeout=self.timeout)

    def create_compacted(self, topic: str) -> bool:
        """Create a compacted topic of one partition, at the brokers' replication factor.

        Returns:
            Whether it was created (False: it exists).

        Raises:
            ClusterUnreachableError: if the cluster does not answer, or refuses.
        """
        settings = {"num_partitions": 1, "replication_factor": -1}
        try:
            cast(Any, self._admin()).create_topics(
                {topic: {**settings, "configs": {"cleanup.policy": "compact"}}},
                timeout_ms=int(self.timeout * 1000),
                wait_for_metadata=True,
            )
        except kafka_errors.TopicAlreadyExistsError:
            return False
        except (kafka_errors.KafkaError, OSError) as error:
            raise self.unreachable(error) from None
        return True

    def _holder(self, topic: str) -> str:
        """Who holds a claim: the first record of its topic, once it is there."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            start, end = self.bounds([(topic, 0)])[(topic, 0)]
            if end > start:
                records, _ = self.read({(topic, 0): (start, start + 1)})[(topic, 0)]
                if records and records[0].content[1] is not None:
                    return records[0].content[1].decode(errors="replace")
            time.sleep(0.5)
        return ""


def _record(record: Any) -> Record:
    """kafka-python's consumer record as a `Record`."""
    headers = tuple((str(name), value) for name, value in record.headers or ())
    return Record(record.offset, (record.key, record.value, headers, record.timestamp))
