# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The queries behind the migration report: both clusters asked once, with bounded queries.

`migration-status`, the unit status while migrating and the demo all show a `MigrationReport`.
`fetch_snapshot` is the thin adapter that queries both clusters; `build_report` (`_report`)
is a pure function of the fetched `MigrationSnapshot`, so tests and benchmarks can call it
alone. `pause` and `now` are the clock the queries and the quiet check use (unit tests replace
them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

from . import _clients, _records
from ._clients import GroupCommits, TopicOffsets
from ._clusters import KafkaCluster, SourceCluster
from ._connections import CLIENT_TIMEOUT, QUERY_ERRORS
from ._connectors import ConnectorState
from ._errors import ClusterUnreachableError
from ._names import SOURCE_ALIAS
from ._options import MigrationConfig, select
from ._peers import UnitState
from ._records import EXACT_LAG_WINDOW, OffsetSync, Partition, Record, Walk
from ._report import (
    ClusterProblem,
    GroupOffsets,
    MigrationReport,
    MigrationSnapshot,
    Quiet,
    build_report,
)

logger = logging.getLogger(__name__)


class Flow(NamedTuple):
    """Which copy a snapshot reports, and from when.

    The migration's by default. A failback's copy back reads this cluster as its source: its
    MirrorMaker names this cluster `source_alias` (Kafka Connect's topics, the offset syncs),
    and only what was written since the wave counts: `source_starts` and `target_starts` hold,
    per topic, the offsets each cluster's partitions are counted from. The source user's rights
    are checked for the migration only.
    """

    source_alias: str = SOURCE_ALIAS
    source_starts: Mapping[str, Sequence[int]] = {}
    target_starts: Mapping[str, Sequence[int]] = {}
    check_rights: bool = True


MIGRATION_FLOW = Flow()


def _since(
    offsets: Mapping[str, TopicOffsets], starts: Mapping[str, Sequence[int]]
) -> dict[str, TopicOffsets]:
    """The offsets, each partition of a topic in `starts` counted from there (not past its end)."""
    counted = dict(offsets)
    for topic, begins in starts.items():
        if (now := offsets.get(topic)) is not None and len(begins) == len(now.end):
            start = tuple(
                min(max(s, b), e) for s, b, e in zip(now.start, begins, now.end, strict=True)
            )
            counted[topic] = TopicOffsets(start=start, end=now.end)
    return counted


class _Selection(NamedTuple):
    """The source topics (with their partition counts) and groups the options migrate.

    `listed` are all the topics the source lists to the migration's user.
    """

    topics: dict[str, int]
    groups: list[str]
    listed: tuple[str, ...] = ()


def _select_source(
    source: _clients.ClusterClient, config: MigrationConfig, only: Collection[str] | None
) -> _Selection:
    """The topics and groups of the source that the options select (and `only` narrows)."""
    partitions = source.topics()
    selected = config.select_topics(partitions)
    if only is not None:
        selected = [name for name in selected if name in only]
    groups = select(source.groups(), config.groups, config.groups_exclude)
    return _Selection(
        {name: partitions[name] for name in selected}, groups, tuple(sorted(partitions))
    )


class _SourceSide(NamedTuple):
    """What the source answered: the migrated topics' offsets and log ends, their groups."""

    offsets: dict[str, TopicOffsets]
    log_ends: dict[str, tuple[int, ...]]
    groups: list[GroupOffsets]


def _fetch_source(source: _clients.ClusterClient, selection: _Selection) -> _SourceSide:
    """The migrated topics' offsets and log ends, and the selected groups that committed there."""
    offsets = source.offsets(selection.topics)
    log_ends = source.log_end_offsets(selection.topics)
    groups = selection.groups
    committed = {
        group: commits
        for group, commits in source.committed_offsets(groups, offsets.keys()).items()
        if commits
    }
    described = source.describe_groups(list(committed)) if committed else {}
    return _SourceSide(
        offsets,
        {topic: tuple(ends) for topic, ends in log_ends.items()},
        [
            GroupOffsets(
                group=group,
                state=described.get(group, ("unknown", 0))[0],
                members=described.get(group, ("unknown", 0))[1],
                offsets=commits,
            )
            for group, commits in committed.items()
        ],
    )


def _fetch_target(
    target: _clients.ClusterClient, config: MigrationConfig, selection: _Selection, flow: Flow
) -> tuple[dict[str, TopicOffsets], dict[str, GroupCommits], list[ConnectorState]]:
    """On the target: the copies' offsets, the selected groups' commits, the connectors."""
    existing = target.topics() if selection.topics else {}
    names = {config.target_topic(topic) for topic in selection.topics}
    offsets = target.offsets({name: n for name, n in existing.items() if name in names})
    commits = target.committed_offsets(selection.groups, offsets.keys())
    offsets = _since(offsets, flow.target_starts)
    return offsets, commits, target.connector_states(flow.source_alias)


def _problem(client: _clients.ClusterClient, error: Exception) -> ClusterProblem:
    """A failed query as a problem of the report; a raw Kafka error gets the client's wording."""
    if not isinstance(error, ClusterUnreachableError):
        error = client.unreachable(error)
    return ClusterProblem(role=client.role, message=error.message, refused=error.refused)


def _pause(seconds: float) -> None:
    """Wait while the source is watched for writes (unit tests replace it)."""
    time.sleep(seconds)


def now() -> float:
    """Seconds since the epoch, for how long the source stayed quiet (unit tests replace it)."""
    return time.time()


def _watch_source(
    source: _clients.ClusterClient, side: _SourceSide, seconds: float
) -> tuple[_SourceSide, Quiet]:
    """The topics' offsets `seconds` later, and what was written to them meanwhile.

    Writes are counted on the log end offsets: records a transaction still holds count too.

    Raises:
        ClusterUnreachableError: if the source does not answer in time.
    """
    _pause(seconds)
    counts = {name: len(offsets.end) for name, offsets in side.offsets.items()}
    later = source.end_offsets(counts)
    later_logs = {name: tuple(ends) for name, ends in source.log_end_offsets(counts).items()}
    writes = {
        name: sum(later_logs[name]) - sum(side.log_ends.get(name, later_logs[name]))
        for name in counts
    }
    offsets = {
        name: TopicOffsets(start=offsets.start, end=tuple(later[name]))
        for name, offsets in side.offsets.items()
    }
    watched = _SourceSide(offsets, later_logs, side.groups)
    return watched, Quiet(required=seconds, watched=seconds, writes=writes)


def _held(side: _SourceSide) -> list[tuple[str, int]]:
    """The partitions whose log end is above their last stable offset: a transaction is open."""
    return [
        (topic, number)
        for topic, offsets in side.offsets.items()
        for number, (end, log_end) in enumerate(
            zip(offsets.end, side.log_ends.get(topic, offsets.end), strict=False)
        )
        if log_end > end
    ]


def _unseen(config: MigrationConfig, fenced: Collection[str], selection: _Selection) -> list[str]:
    """The fenced topics' source names that the source does not show the migration now."""
    prefix = config.target_prefix
    names = [name[len(prefix) :] for name in fenced if name.startswith(prefix)]
    return sorted(name for name in names if name not in selection.topics)


def _fetch_copy_lags(
    source: _clients.ClusterClient,
    target: _clients.ClusterClient,
    config: MigrationConfig,
    source_topics: Mapping[str, TopicOffsets],
    target_topics: Mapping[str, TopicOffsets],
    alias: str = SOURCE_ALIAS,
) -> dict[str, list[int | None]]:
    """Per source topic and partition, the committed records the target lacks, by content.

    From MirrorMaker's newest offset sync of a partition (the copy of a source record), the
    records after it are compared on both clusters. When the sync is the source's last record,
    nothing is read. With more than `EXACT_LAG_WINDOW` offsets after it, the lag is 0 if no
    committed record follows it on the source, else the offsets after it on the source minus
    those after its copy on the target, at least 1. A partition without a sync, or whose sync
    does not hold, is None: offsets count it. A partition of which the target holds nothing
    lags 0 if the source holds no committed record either (only aborted ones, say), None
    otherwise; nothing is read for a topic not on the target (not ready for cutover either way).

    Raises:
        ClusterUnreachableError: if a cluster does not answer in time.
    """
    lags: dict[str, list[int | None]] = {
        topic: [None] * len(offsets.end) for topic, offsets in source_topics.items()
    }
    held: dict[Partition, tuple[tuple[int, int], tuple[int, int]]] = {}
    empty: dict[Partition, tuple[int, int]] = {}
    for topic, offsets in source_topics.items():
        copy = target_topics.get(config.target_topic(topic))
        for number, (start, end) in enumerate(zip(offsets.start, offsets.end, strict=True)):
            if copy is not None and number < len(copy.end) and copy.records(number):
                held[(topic, number)] = ((start, end), (copy.start[number], copy.end[number]))
            elif copy is not None and 0 < end - start <= EXACT_LAG_WINDOW:
                empty[(topic, number)] = (start, end)
            elif end == start:
                lags[topic][number] = 0
    with (
        _records.LogClient(source.cluster, source.role, source.timeout) as source_logs,
        _records.LogClient(target.cluster, target.role, target.timeout, alias) as target_logs,
    ):
        syncs = target_logs.offset_syncs(dict.fromkeys(held))
        for (topic, number), (records, _) in source_logs.read(empty, limit=1).items():
            lags[topic][number] = None if records else 0
        plan = _LagPlan.of(held, syncs, config)
        for (topic, number), lag in plan.known.items():
            lags[topic][number] = lag
        for (topic, number), (records, _) in source_logs.read(plan.beyond, limit=1).items():
            if not records:
                lags[topic][number] = 0
        source_read = source_logs.read(plan.source, limit=EXACT_LAG_WINDOW)
        target_read = target_logs.read(plan.target, limit=4 * EXACT_LAG_WINDOW)
    for (topic, number), (records, _) in source_read.items():
        copied = target_read[(config.target_topic(topic), number)]
        lags[topic][number] = _counted_lag(records, copied, syncs[(topic, number)])
    return lags


@dataclass
class _LagPlan:
    """How each partition with an offset sync gets its lag counted.

    `known`: lags known without reading (0 when the sync is the source's last record; the
    offset estimate beyond `EXACT_LAG_WINDOW`, 0 if `beyond` finds no record); `source` and
    `target`: the ranges from the sync on to compare by content.
    """

    known: dict[Partition, int] = field(default_factory=dict)
    beyond: dict[Partition, tuple[int, int]] = field(default_factory=dict)
    source: dict[Partition, tuple[int, int]] = field(default_factory=dict)
    target: dict[Partition, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        held: Mapping[Partition, tuple[tuple[int, int], tuple[int, int]]],
        syncs: Mapping[Partition, OffsetSync],
        config: MigrationConfig,
    ) -> _LagPlan:
        """The plan for partitions with their bounds on both clusters and newest syncs."""
        plan = cls()
        for (topic, number), sync in syncs.items():
            (start, end), (target_start, target_end) = held[(topic, number)]
            if not (start <= sync.upstream < end and target_start <= sync.downstream < target_end):
                continue
            if sync.upstream + 1 == end:
                plan.known[(topic, number)] = 0
            elif end - sync.upstream <= EXACT_LAG_WINDOW:
                plan.source[(topic, number)] = (sync.upstream, end)
                plan.target[(config.target_topic(topic), number)] = (sync.downstream, target_end)
            else:
                plan.beyond[(topic, number)] = (sync.upstream + 1, end)
                copied = max(0, target_end - sync.downstream - 1)
                plan.known[(topic, number)] = max(1, end - sync.upstream - 1 - copied)
        return plan


def _counted_lag(
    records: Sequence[Record], copied: tuple[Sequence[Record], bool], sync: OffsetSync
) -> int | None:
    """The source records from a sync on that the target's records from it do not copy.

    None when the sync does not hold (its records differ) or the target was not read whole.
    """
    target, complete = copied
    if not (complete and records and target):
        return None
    if (records[0].offset, target[0].offset) != (sync.upstream, sync.downstream):
        return None
    if records[0].content != target[0].content:
        return None
    return Walk.of(records, target, sync.downstream).lag()


def fetch_snapshot(
    source: _clients.ClusterClient,
    target: _clients.ClusterClient,
    config: MigrationConfig,
    *,
    topic: str | None = None,
    only: Collection[str] | None = None,
    units: Mapping[str, UnitState] | None = None,
    quiet_seconds: float = 0,
    fenced: Collection[str] = (),
    flow: Flow = MIGRATION_FLOW,
) -> MigrationSnapshot:
    """Query both clusters for a migration report; a cluster that fails is a problem in it.

    Once the source's topic and group names are known, both clusters are asked at once, on two
    threads. With `quiet_seconds`, the source's end offsets are read again that much later, and
    what arrived meanwhile is reported. `topic` or `only` narrow the report to those source
    topics. The fenced target topics the source does not show are reported as `unseen` (when
    not narrowed). `flow` says which copy is reported (a failback's copy back reads this
    cluster as `source`). Every query is bounded by the clients' timeouts; nothing here raises
    for a cluster.
    """
    if topic is not None:
        only = {topic}
    problems = []
    side = _SourceSide({}, {}, [])
    quiet = None
    target_topics: dict[str, TopicOffsets] = {}
    target_groups: dict[str, GroupCommits] = {}
    connectors = None
    transactions = None
    max_timeout = None
    try:
        selection = _select_source(source, config, only)
    except (ClusterUnreachableError, *QUERY_ERRORS) as error:
        problems.append(_problem(source, error))
        selection = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-k8s-target") as pool:
        target_side = pool.submit(
            _fetch_target, target, config, selection or _Selection({}, []), flow
        )
        if selection is not None:
            try:
                side = _fetch_source(source, selection)
                side = side._replace(offsets=_since(side.offsets, flow.source_starts))
                if quiet_seconds > 0:
                    side, quiet = _watch_source(source, side, quiet_seconds)
                if held := _held(side):
                    transactions = source.open_transactions(held)
                    max_timeout = source.transaction_max_timeout_ms()
            except (ClusterUnreachableError, *QUERY_ERRORS) as error:
                problems.append(_problem(source, error))
        try:
            target_topics, target_groups, connectors = target_side.result()
        except (ClusterUnreachableError, *QUERY_ERRORS) as error:
            problems.append(_problem(target, error))
    missing_rights = []
    if flow.check_rights and not any(problem.role == source.role for problem in problems):
        try:
            missing_rights = missing_source_rights(source, config, side.offsets, target_topics)
        except ClusterUnreachableError as error:
            problems.append(_problem(source, error))
    copy_lags: dict[str, list[int | None]] = {}
    if not problems:
        try:
            copy_lags = _fetch_copy_lags(
                source, target, config, side.offsets, target_topics, flow.source_alias
            )
        except ClusterUnreachableError as error:
            logger.warning("lag counted by offsets: %s", error.message)
    unseen = _unseen(config, fenced, selection) if selection and only is None else []
    return MigrationSnapshot(
        source_topics=side.offsets,
        target_topics=target_topics,
        source_groups=side.groups,
        target_groups=target_groups,
        connectors=connectors,
        units=None if units is None else dict(units),
        problems=problems,
        missing_rights=missing_rights,
        copy_lags=copy_lags,
        quiet=quiet,
        source_log_ends=side.log_ends,
        open_transactions=transactions,
        transaction_max_timeout_ms=max_timeout,
        unseen=unseen,
        listed=list(selection.listed) if selection else [],
        taken_at=time.time(),
    )


def missing_source_rights(
    source: _clients.ClusterClient,
    config: MigrationConfig,
    source_topics: Collection[str],
    target_topics: Collection[str],
) -> list[str]:
    """What MirrorMaker cannot do on the source with the options as they are.

    It reads a topic's configs to create its copy, and to copy them (`sync_topic_configs`);
    it describes every group to translate offsets, and ACLs to copy them.

    Raises:
        ClusterUnreachableError: if the source does not answer in time.
    """
    configs = [
        topic
        for topic in source_topics
        if config.sync_topic_configs or config.target_topic(topic) not in target_topics
    ]
    return source.missing_rights(
        configs, groups=config.sync_group_offsets, acls=config.sync_topic_acls
    )


def migration_report(
    source: KafkaCluster,
    target: KafkaCluster,
    config: MigrationConfig | None = None,
    *,
    units: Mapping[str, UnitState] | None = None,
    lag_threshold: int = 0,
    topic: str | None = None,
    timeout: float = CLIENT_TIMEOUT,
    quiet_seconds: float = 0,
    fenced: Collection[str] = (),
) -> MigrationReport:
    """Query both clusters and report the migration, as `migration-status` does.

    Args:
        source: the cluster migrated from; a `SourceCluster`'s name names it in messages.
        target: the cluster migrated into, with a user that may read MirrorMaker's topics.
        config: the migration options; the defaults when None.
        units: each unit's published MirrorMaker state, when there are units to report.
        lag_threshold: records a topic may lag and still be ready for cutover.
        topic: report only this source topic, with the detail of its partitions.
        timeout: seconds each query may take.
        quiet_seconds: seconds the source's end offsets must stay put for the migration to be
            ready for cutover; the report takes that long. 0 does not watch the source.
        fenced: the fenced target topics (`Migration.fenced_topics().known()`): those the
            source does not show any more are named, and hold up the cutover.
    """
    config = config or MigrationConfig()
    name = source.name if isinstance(source, SourceCluster) else source.bootstrap
    with (
        _clients.ClusterClient(source, "source", timeout) as source_client,
        _clients.ClusterClient(target, "target", timeout) as target_client,
    ):
        snapshot = fetch_snapshot(
            source_client,
            target_client,
            config,
            topic=topic,
            units=units,
            quiet_seconds=quiet_seconds,
            fenced=fenced,
        )
    return build_report(snapshot, config, source=name, lag_threshold=lag_threshold, topic=topic)
