# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The migration report: its parts, and how it is judged from a snapshot of both clusters.

`build_report` is a pure function of a `MigrationSnapshot` (`_queries` fetches one): the lag
of every topic and group by content where MirrorMaker's offset syncs allow it, MirrorMaker's
connectors and units, and the reasons the migration is not ready for cutover.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Literal, NamedTuple, cast

from pydantic import BaseModel, ConfigDict, Field

from ._clients import GroupCommits, TopicOffsets
from ._connectors import ConnectorState
from ._display import report_results, unit_results
from ._options import MigrationConfig
from ._peers import UnitState
from ._text import clip, list_names, plural
from ._transactions import OpenTransactions

_MAX_REASONS = 20

# Seconds the source's end offsets must stay put before the migration is ready for cutover.
QUIET_SECONDS = 10.0

# Kafka's default `transaction.max.timeout.ms`: a transaction open longer is hanging.
DEFAULT_TRANSACTION_MAX_TIMEOUT_MS = 900_000
Shown = tuple[Literal["active", "maintenance", "blocked"], str]
"""A status to show: its kind and message."""


class Wording(NamedTuple):
    """How the reasons name the clusters: the copy's source and target, and the source's role.

    The migration's by default; a failback's copy back reads this cluster and writes the source
    cluster (`FAILBACK_WORDING`).
    """

    source: str = "the source"
    source_cluster: str = "the source cluster"
    target: str = "the target"
    source_role: str = "source"


MIGRATION_WORDING = Wording()
FAILBACK_WORDING = Wording("this cluster", "this cluster", "the source cluster", "target")


def _hyphenated(name: str) -> str:
    return name.replace("_", "-")


class ReportPart(BaseModel):
    """A part of the migration report; its JSON keys are hyphenated, like action results."""

    model_config = ConfigDict(frozen=True, alias_generator=_hyphenated, populate_by_name=True)

    def as_json(self) -> dict[str, Any]:
        """The part as JSON-ready data, with hyphenated keys."""
        return self.model_dump(mode="json", by_alias=True)


class _PartitionLag(ReportPart):
    """One partition of a topic on both clusters."""

    partition: int
    source_start_offset: int
    source_end_offset: int
    target_start_offset: int | None
    target_end_offset: int | None
    lag: int


class _TopicLag(ReportPart):
    """How far the target is behind the source on one topic.

    `lag` counts, per partition, the records a `read_committed` consumer of the source would
    read that the target does not hold yet: from MirrorMaker's newest offset sync on, the
    records of both partitions are compared by content, so aborted records, transaction
    markers, compacted-away offsets and records copied twice do not count. Where a partition
    has no offset sync yet, or more than `EXACT_LAG_WINDOW` offsets follow it, its offsets
    are counted instead (end minus start on each cluster): an estimate while copying.
    `source-records` and `target-records` count offsets.
    """

    topic: str
    target_topic: str
    partitions: int
    source_end_offset: int
    target_end_offset: int | None
    source_records: int
    target_records: int
    lag: int


class _GroupTopicLag(ReportPart):
    """A consumer group's committed offsets on one topic, on both clusters."""

    topic: str
    partitions: int
    source_committed: int
    target_committed: int | None
    missing_partitions: int
    lag: int


class _GroupLag(ReportPart):
    """A consumer group, and what MirrorMaker's own offsets would make its consumers re-read.

    Per partition, `lag` is the offsets ahead of MirrorMaker's translated offset on the target
    minus those ahead of the group's committed offset on the source. MirrorMaker translates
    conservatively, and keeps older offset syncs only at growing distances, so this can be
    large; `switch-group` and `finish-migration` set exact offsets instead, so it does not
    hold up the cutover. A group with members on the source does: its consumers still read
    the old cluster.
    """

    group: str
    state: str
    members: int
    active: bool
    lag: int
    synced: bool
    topics: list[_GroupTopicLag]


class TaskStatus(ReportPart):
    """A connector (`task` None) or a task of MirrorMaker, as Kafka Connect records it."""

    connector: str
    task: int | None
    name: str
    state: str
    error: str | None


class ConnectorStatus(ReportPart):
    """A MirrorMaker connector and its tasks."""

    connector: str
    state: str
    error: str | None
    tasks: list[TaskStatus]

    def with_tasks(self) -> list[TaskStatus]:
        """The connector itself, as a task without number, then its tasks."""
        itself = TaskStatus(
            connector=self.connector,
            task=None,
            name=self.connector,
            state=self.state,
            error=self.error,
        )
        return [itself, *self.tasks]


class UnitStatus(ReportPart):
    """The MirrorMaker service of one unit, as the unit published it."""

    unit: str
    service: str
    exactly_once: str


class ClusterProblem(ReportPart):
    """A cluster that could not be queried: `refused` when it turned the login down."""

    role: str
    message: str
    refused: bool = False


class GroupOffsets(BaseModel):
    """A consumer group on the source: its state, members and committed offsets."""

    model_config = ConfigDict(frozen=True)

    group: str
    state: str = "unknown"
    members: int = 0
    offsets: GroupCommits = Field(default_factory=dict)


class Quiet(BaseModel):
    """How long the source's end offsets were watched, and what was written meanwhile.

    `required` is how long they must stay put for the cutover, `watched` how long they did (or
    the window they were compared over), `writes` the records that arrived per topic.
    """

    model_config = ConfigDict(frozen=True)

    required: float
    watched: float
    writes: dict[str, int] = Field(default_factory=dict)


class MigrationSnapshot(BaseModel):
    """What the migration status is computed from, as fetched from both clusters and the peers.

    `source_topics` holds the migrated topics only; `target_topics` the copies of those that
    exist, by their target names; `target_groups` the target's commits of the source groups.
    `connectors` is None when it could not be read; `units` is None outside a charm.
    `copy_lags` holds, per source topic and partition, the records counted by content that
    the target lacks (None where they could not be counted). `quiet` is None when the
    source was not watched for writes. `source_log_ends` holds each migrated topic's log end
    offsets (what `read_uncommitted` sees): above `source_topics`' ends (the last stable
    offsets) while a transaction is open, and `open_transactions` those transactions, asked
    only then, with the brokers' `transaction_max_timeout_ms` where the user may read it.
    `unseen` are fenced source topics the source does not show the migration now; `taken_at`
    is when the snapshot was taken, in seconds since the epoch.
    """

    model_config = ConfigDict(frozen=True)

    source_topics: dict[str, TopicOffsets] = Field(default_factory=dict)
    target_topics: dict[str, TopicOffsets] = Field(default_factory=dict)
    source_groups: list[GroupOffsets] = Field(default_factory=list)
    target_groups: dict[str, GroupCommits] = Field(default_factory=dict)
    connectors: list[ConnectorState] | None = None
    units: dict[str, UnitState] | None = None
    problems: list[ClusterProblem] = Field(default_factory=list)
    missing_rights: list[str] = Field(default_factory=list)
    copy_lags: dict[str, list[int | None]] = Field(default_factory=dict)
    quiet: Quiet | None = None
    source_log_ends: dict[str, tuple[int, ...]] = Field(default_factory=dict)
    open_transactions: OpenTransactions | None = None
    transaction_max_timeout_ms: int | None = None
    unseen: list[str] = Field(default_factory=list)
    listed: list[str] = Field(default_factory=list)
    taken_at: float = 0


class _HeldPartition(ReportPart):
    """A source partition whose last stable offset an open transaction holds below its log end.

    `records` counts the offsets between them; the transaction's id and start are given where
    the source tells them (`since` in ISO 8601), and `hanging` when it has been open longer
    than the source's `transaction.max.timeout.ms`.
    """

    topic: str
    partition: int
    records: int
    producer_id: int | None = None
    transactional_id: str | None = None
    start_offset: int | None = None
    since: str | None = None
    open_seconds: float | None = None
    hanging: bool = False


class _SourceWrite(ReportPart):
    """Records written to a source topic while it was watched."""

    topic: str
    records: int


class MigrationReport(ReportPart):
    """The whole migration status, and whether clients can be switched to the target now."""

    source: str
    lag_threshold: int
    topic: str | None
    sync_group_offsets: bool
    problems: list[ClusterProblem]
    missing_rights: list[str] = Field(default_factory=list)
    topics: list[_TopicLag]
    partitions: list[_PartitionLag]
    groups: list[_GroupLag]
    connectors: list[ConnectorStatus] | None
    units: list[UnitStatus] | None
    quiet_seconds: float = 0
    source_writes: list[_SourceWrite] | None = None
    open_transactions: list[_HeldPartition] = Field(default_factory=list)
    unseen: list[str] = Field(default_factory=list)
    reasons: list[str]

    @property
    def lag(self) -> int:
        """Records the target still lacks, over every topic."""
        return sum(topic.lag for topic in self.topics)

    @property
    def source_records(self) -> int:
        """Records the source holds, over every migrated topic."""
        return sum(topic.source_records for topic in self.topics)

    @property
    def target_records(self) -> int:
        """Records the target holds, over every migrated topic."""
        return sum(topic.target_records for topic in self.topics)

    @property
    def ready_for_cutover(self) -> bool:
        """Whether clients can switch now: nothing lags, nothing failed, everything runs."""
        return not self.reasons

    def failed(self) -> TaskStatus | None:
        """The first failed connector or task, if any."""
        for connector in self.connectors or ():
            for task in connector.with_tasks():
                if task.state == "FAILED":
                    return task
        return None

    def results(self, *, table: bool = False) -> dict[str, Any]:
        """The report as `migration-status` action results (see `charmcraft.yaml`)."""
        return report_results(self, table=table)

    def summary(self, failed_as: Shown | None = None) -> Shown:
        """The status to show while migrating: its kind and message.

        A failed connector or task blocks, with its error, unless `failed_as` says how to show
        it (its restarts do).
        """
        if self.problems:
            return "blocked", self.problems[0].message
        if self.missing_rights:
            return "blocked", self.missing_rights[0]
        if failed := self.failed():
            blocked = clip(f"MirrorMaker {failed.name} failed: {failed.error}")
            return failed_as or ("blocked", blocked)
        if self.ready_for_cutover:
            return "active", f"in sync with {self.source}: ready for cutover"
        message = (
            f"migrating from {self.source}: {plural(len(self.topics), 'topic')}, "
            f"lag {plural(self.lag, 'record')}"
        )
        if self.lag <= self.lag_threshold:
            message += f"; {self.reasons[0]}"
        return "active", clip(message)


def _partition_lags(
    source: TopicOffsets,
    target: TopicOffsets | None,
    counted: Sequence[int | None] = (),
) -> list[_PartitionLag]:
    """Per partition: the offsets on both clusters and the records the target lacks.

    `counted` holds the lags counted by content; offsets count the others.
    """
    lags = []
    for partition, (start, end) in enumerate(zip(source.start, source.end, strict=True)):
        present = target is not None and partition < len(target.end)
        copied = target.records(partition) if target is not None and present else 0
        exact = counted[partition] if partition < len(counted) else None
        lags.append(
            _PartitionLag(
                partition=partition,
                source_start_offset=start,
                source_end_offset=end,
                target_start_offset=target.start[partition] if target and present else None,
                target_end_offset=target.end[partition] if target and present else None,
                lag=exact if exact is not None else max(0, source.records(partition) - copied),
            )
        )
    return lags


_Offsets = TopicOffsets | Sequence[int]
"""A topic's offsets, or only its end offsets (then its partitions are taken to start at 0)."""


def _offsets(offsets: _Offsets | None) -> TopicOffsets | None:
    if offsets is None or isinstance(offsets, TopicOffsets):
        return offsets
    return TopicOffsets(start=(0,) * len(offsets), end=tuple(offsets))


def _topic_lags(
    source: Mapping[str, _Offsets],
    target: Mapping[str, _Offsets],
    config: MigrationConfig,
    counted: Mapping[str, Sequence[int | None]] | None = None,
) -> list[_TopicLag]:
    """Per source topic: its offsets on both clusters and the records the target lacks."""
    lags = []
    for topic, given in sorted(source.items()):
        name = config.target_topic(topic)
        offsets = cast(TopicOffsets, _offsets(given))
        copied = _offsets(target.get(name))
        lags.append(
            _TopicLag(
                topic=topic,
                target_topic=name,
                partitions=len(offsets.end),
                source_end_offset=sum(offsets.end),
                target_end_offset=sum(copied.end) if copied is not None else None,
                source_records=offsets.total_records,
                target_records=copied.total_records if copied is not None else 0,
                lag=sum(
                    lag.lag
                    for lag in _partition_lags(offsets, copied, (counted or {}).get(topic, ()))
                ),
            )
        )
    return lags


def _group_topic_lag(
    topic: str,
    committed: Mapping[int, int],
    translated: Mapping[int, int],
    source: TopicOffsets,
    target: TopicOffsets | None,
) -> _GroupTopicLag:
    lag = missing = 0
    for partition, offset in committed.items():
        if partition >= len(source.end):
            continue
        if partition not in translated:
            missing += 1
        if target is None or partition >= len(target.end):
            continue
        position = translated.get(partition, target.start[partition])
        ahead_on_target = max(0, target.end[partition] - position)
        ahead_on_source = max(0, source.end[partition] - offset)
        lag += max(0, ahead_on_target - ahead_on_source)
    return _GroupTopicLag(
        topic=topic,
        partitions=len(committed),
        source_committed=sum(committed.values()),
        target_committed=sum(translated.values()) if translated else None,
        missing_partitions=missing,
        lag=lag,
    )


def _group_lag(
    group: GroupOffsets,
    snapshot: MigrationSnapshot,
    config: MigrationConfig,
    lag_threshold: int,
) -> _GroupLag:
    """A source group's lag on the target, over the migrated topics it committed offsets on."""
    translated = snapshot.target_groups.get(group.group, {})
    topics = []
    for topic, committed in sorted(group.offsets.items()):
        source = snapshot.source_topics.get(topic)
        if source is None:
            continue
        name = config.target_topic(topic)
        target = snapshot.target_topics.get(name)
        topics.append(_group_topic_lag(topic, committed, translated.get(name, {}), source, target))
    lag = sum(topic.lag for topic in topics)
    return _GroupLag(
        group=group.group,
        state=group.state,
        members=group.members,
        active=group.members > 0,
        lag=lag,
        synced=lag <= lag_threshold and not any(topic.missing_partitions for topic in topics),
        topics=topics,
    )


def _connector_statuses(states: Sequence[ConnectorState]) -> list[ConnectorStatus]:
    """The connectors with their tasks, in name order."""
    connectors = []
    for connector in sorted({state.connector for state in states}):
        own = [state for state in states if state.connector == connector]
        tasks = sorted((s for s in own if s.task is not None), key=lambda s: s.task or 0)
        level = next((s for s in own if s.task is None), None)
        connectors.append(
            ConnectorStatus(
                connector=connector,
                state=level.state if level else "UNASSIGNED",
                error=level.error if level else None,
                tasks=[
                    TaskStatus(
                        connector=connector,
                        task=task.task,
                        name=f"{connector}-{task.task}",
                        state=task.state,
                        error=task.error,
                    )
                    for task in tasks
                ],
            )
        )
    return connectors


def _unit_statuses(units: Mapping[str, UnitState]) -> list[UnitStatus]:
    """The units' published MirrorMaker states, in unit name order."""
    return [
        UnitStatus(unit=name, service=state.service, exactly_once=state.exactly_once)
        for name, state in sorted(units.items())
    ]


def _capped(reasons: list[str]) -> list[str]:
    if len(reasons) <= _MAX_REASONS:
        return reasons
    return [*reasons[:_MAX_REASONS], f"... and {len(reasons) - _MAX_REASONS} more"]


def _worker_reasons(
    units: Sequence[UnitStatus] | None, connectors: Sequence[ConnectorStatus] | None
) -> list[str]:
    reasons = []
    if units is not None and not any(unit.service == "active" for unit in units):
        reasons.append("MirrorMaker runs on no unit")
    for unit in units or ():
        if unit.service != "active":
            reasons.append(f"{unit.unit}: MirrorMaker is {unit.service}")
    if connectors is not None and not connectors:
        reasons.append("MirrorMaker has not started its connectors yet")
    for connector in connectors or ():
        for task in connector.with_tasks():
            if task.state == "FAILED":
                reasons.append(f"{task.name} failed: {task.error}")
            elif task.state != "RUNNING":
                reasons.append(f"{task.name} is {task.state.lower()}")
    return reasons


def _data_reasons(
    topics: Sequence[_TopicLag],
    groups: Sequence[_GroupLag],
    lag_threshold: int,
    wording: Wording = MIGRATION_WORDING,
) -> list[str]:
    reasons = []
    for topic in topics:
        if topic.target_end_offset is None:
            reasons.append(f"topic {topic.topic} is not on {wording.target} yet")
        elif topic.lag > lag_threshold:
            reasons.append(f"topic {topic.topic}: {plural(topic.lag, 'record')} behind")
    for group in groups:
        if group.active:
            reasons.append(
                f"group {group.group}: {plural(group.members, 'consumer')} still read from "
                f"{wording.source_cluster}"
            )
    return reasons


def _source_writes(quiet: Quiet | None) -> list[_SourceWrite] | None:
    if quiet is None:
        return None
    return [_SourceWrite(topic=t, records=n) for t, n in sorted(quiet.writes.items()) if n]


def _quiet_reasons(quiet: Quiet | None, wording: Wording = MIGRATION_WORDING) -> list[str]:
    """Why the source is not quiet yet: topics still written, or not watched long enough."""
    if quiet is None:
        return []
    writes = _source_writes(quiet) or []
    if writes:
        first, *others = writes
        written = ", ".join(
            [f"{first.records:,} records arrived on {first.topic}"]
            + [f"{w.records:,} on {w.topic}" for w in others[:4]]
        )
        more = f" and {len(others) - 4} more topics" if len(others) > 4 else ""
        return [
            f"{wording.source} is still written: {written}{more} in the last "
            f"{quiet.watched:.0f} s; stop its producers"
        ]
    if quiet.watched < quiet.required:
        return [
            f"{wording.source} has been quiet for {quiet.watched:.0f} s of the "
            f"{quiet.required:.0f} s the cutover waits for"
        ]
    return []


def _held_partitions(snapshot: MigrationSnapshot) -> list[_HeldPartition]:
    """The source partitions whose log end an open transaction keeps above the last stable one."""
    transactions = snapshot.open_transactions.transactions if snapshot.open_transactions else []
    limit = snapshot.transaction_max_timeout_ms or DEFAULT_TRANSACTION_MAX_TIMEOUT_MS
    held = []
    for topic, ends in sorted(snapshot.source_log_ends.items()):
        stable = snapshot.source_topics.get(topic)
        if stable is None:
            continue
        for number, (end, log_end) in enumerate(zip(stable.end, ends, strict=False)):
            if log_end <= end:
                continue
            found = [t for t in transactions if (t.topic, t.partition) == (topic, number)]
            first = min(found, key=lambda t: t.start_offset) if found else None
            since = first.since if first else None
            age = max(0.0, snapshot.taken_at - since / 1000) if since is not None else None
            held.append(
                _HeldPartition(
                    topic=topic,
                    partition=number,
                    records=log_end - end,
                    producer_id=first.producer_id if first else None,
                    transactional_id=first.transactional_id if first else None,
                    start_offset=first.start_offset if first else None,
                    since=None
                    if since is None
                    else datetime.fromtimestamp(since / 1000, timezone.utc).isoformat(
                        timespec="seconds"
                    ),
                    open_seconds=age,
                    hanging=age is not None and age * 1000 > limit,
                )
            )
    return held


def _held_reasons(
    held: Sequence[_HeldPartition],
    snapshot: MigrationSnapshot,
    wording: Wording = MIGRATION_WORDING,
) -> list[str]:
    """Why a partition held by an open transaction is neither quiet nor in sync, and the remedy."""
    limit = snapshot.transaction_max_timeout_ms
    unnamed = snapshot.open_transactions.unnamed if snapshot.open_transactions else None
    reasons = []
    for part in held:
        who = []
        if part.transactional_id is not None:
            who.append(f"transactional id {part.transactional_id}")
        if part.producer_id is not None:
            who.append(f"producer id {part.producer_id}")
        if part.since is not None and part.open_seconds is not None:
            who.append(f"open since {part.since} ({part.open_seconds:.0f} s)")
        reason = (
            f"{part.topic}[{part.partition}]: an open transaction holds "
            f"{plural(part.records, 'record')} that consumers cannot read yet"
        )
        reason += f" ({', '.join(who)})" if who else ""
        if part.hanging:
            timeout = (
                f"{wording.source}'s transaction.max.timeout.ms ({limit / 1000:.0f} s)"
                if limit
                else f"Kafka's default transaction.max.timeout.ms "
                f"({DEFAULT_TRANSACTION_MAX_TIMEOUT_MS / 1000:.0f} s)"
            )
            reason += (
                f": it has been open longer than {timeout}, a hanging transaction; abort it on "
                f"{wording.source}: kafka-transactions.sh --bootstrap-server ... abort --topic "
                f"{part.topic} --partition {part.partition} --start-offset {part.start_offset}"
            )
        else:
            reason += ": wait for its producer to commit or abort it"
        if unnamed and part.transactional_id is None:
            reason += f" ({unnamed})"
        reasons.append(reason)
    return reasons


def _unseen_reasons(snapshot: MigrationSnapshot) -> list[str]:
    """Why fenced topics are not in the report: the source hides them, or they are not selected."""
    if not snapshot.unseen:
        return []
    listed = set(snapshot.listed)
    hidden = [t for t in snapshot.unseen if t not in listed]
    unselected = [t for t in snapshot.unseen if t in listed]
    reasons = []
    if hidden:
        reasons.append(
            f"the source does not show {list_names(hidden)} any more: its user may have lost "
            "DESCRIBE on them, or they were deleted there; they stay fenced until "
            "finish-migration"
        )
    if unselected:
        reasons.append(
            f"mirrormaker-topics no longer selects {list_names(unselected)}: they stay fenced "
            "until finish-migration"
        )
    return reasons


def build_report(
    snapshot: MigrationSnapshot,
    config: MigrationConfig,
    *,
    source: str,
    lag_threshold: int = 0,
    topic: str | None = None,
    wording: Wording = MIGRATION_WORDING,
) -> MigrationReport:
    """The migration report of a snapshot; a pure function.

    Args:
        snapshot: what was fetched from both clusters and the peers.
        config: the migration options (replication policy, whether group offsets are synced).
        source: how the report names the source.
        lag_threshold: records a topic or a group may lag and still be ready for cutover.
        topic: the one source topic the snapshot was fetched for, to detail its partitions.
        wording: how the reasons name the clusters (a failback's copy back reads this one).
    """
    topics = _topic_lags(
        snapshot.source_topics, snapshot.target_topics, config, snapshot.copy_lags
    )
    groups = [
        _group_lag(group, snapshot, config, lag_threshold)
        for group in sorted(snapshot.source_groups, key=lambda group: group.group)
    ]
    groups = [group for group in groups if group.topics]
    connectors = None if snapshot.connectors is None else _connector_statuses(snapshot.connectors)
    units = None if snapshot.units is None else _unit_statuses(snapshot.units)
    detailed = snapshot.source_topics.get(topic) if topic is not None else None
    partitions = []
    if topic is not None and detailed is not None:
        partitions = _partition_lags(
            detailed,
            snapshot.target_topics.get(config.target_topic(topic)),
            snapshot.copy_lags.get(topic, ()),
        )
    reasons = [problem.message for problem in snapshot.problems]
    reasons += snapshot.missing_rights
    reasons += _worker_reasons(units, connectors)
    answered = not any(problem.role == wording.source_role for problem in snapshot.problems)
    unseen = _unseen_reasons(snapshot) if answered else []
    reasons += unseen
    if not topics and answered and not unseen:
        reasons.append("no source topic is selected for migration")
    reasons += _data_reasons(topics, groups, lag_threshold, wording)
    held = _held_partitions(snapshot)
    if answered:
        reasons += _held_reasons(held, snapshot, wording)
        reasons += _quiet_reasons(snapshot.quiet, wording)
    return MigrationReport(
        source=source,
        lag_threshold=lag_threshold,
        topic=topic,
        sync_group_offsets=config.sync_group_offsets,
        problems=snapshot.problems,
        missing_rights=snapshot.missing_rights,
        topics=topics,
        partitions=partitions,
        groups=groups,
        connectors=connectors,
        units=units,
        quiet_seconds=snapshot.quiet.watched if snapshot.quiet else 0,
        source_writes=_source_writes(snapshot.quiet),
        open_transactions=held,
        unseen=list(snapshot.unseen),
        reasons=_capped(reasons),
    )


def unknown_results(message: str, units: Mapping[str, UnitState]) -> dict[str, Any]:
    """`migration-status` results when the migration is not configured well enough to query."""
    return {
        "summary": message,
        "ready-for-cutover": "false",
        "reasons": json.dumps([message]),
        "units": unit_results(_unit_statuses(units)),
    }
