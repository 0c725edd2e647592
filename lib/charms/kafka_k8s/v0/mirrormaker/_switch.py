# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Switching consumer groups from the source to the target, exactly.

`switch-group` and `finish-migration` commit, for a group that no consumer uses on either
cluster, the target offsets matching its source offsets exactly. Per partition, one walk from
an anchor serves every group: the newest offset sync at or before the smallest committed
offset, or, when there is none, the copy of a source record found by content from its
timestamp on (`offsets_for_times`). Both partitions are read from the anchor to their ends:
a re-send can put copies of records before a group's offset after the first copies of those
at it. A partition that cannot be matched keeps MirrorMaker's offset; no offset is guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from pydantic import Field

from . import _clients, _records
from ._clients import GroupCommits
from ._clusters import KafkaCluster
from ._connections import CLIENT_TIMEOUT
from ._errors import MigrationError
from ._identities import ClientAccess
from ._options import MigrationConfig, select
from ._records import SEARCH_LIMIT, OffsetSync, Partition, Record, Walk
from ._report import ReportPart
from ._text import list_names, plural

_SwitchResult = Literal["exact", "re-reads", "kept", "not copied"]


class PromotedEnds(NamedTuple):
    """A promoted topic's end offsets on both clusters when its wave was promoted.

    A group switched later is matched within them: past them, the source holds records no
    one copied, and the target records its own clients wrote.
    """

    source: tuple[int, ...]
    target: tuple[int, ...]


class SwitchRefusedError(MigrationError):
    """A group cannot be switched now; the message says why. Nothing was changed."""


class _PartitionSwitch(ReportPart):
    """One partition of a switched group.

    `result`: `exact` (nothing re-read, nothing skipped), `re-reads` (the target offset skips
    nothing but some records before it come again later, where MirrorMaker sent them twice),
    `kept` (no match: MirrorMaker's offset, if any, stays) or `not copied` (MirrorMaker has not
    copied the partition up to the group's offset yet).
    """

    topic: str
    partition: int
    source_committed: int
    target_offset: int | None
    re_read: int | None
    skip: int | None
    result: _SwitchResult
    matched_by: str | None = None
    mirrormaker_offset: int | None = None
    mirrormaker_re_read: int | None = None
    mirrormaker_skip: int | None = None
    note: str | None = None


class GroupSwitch(ReportPart):
    """A consumer group and where its consumers resume on the target.

    `switched` is whether offsets were committed on the target; `note` says why a group was
    left as it was; `resumed_by` which client users of the host may use it (`ClientAccess`).
    """

    group: str
    switched: bool
    note: str | None = None
    resumed_by: str | None = None
    partitions: list[_PartitionSwitch] = Field(default_factory=list)

    @property
    def re_read(self) -> int:
        """Records the group's consumers will read again on the target."""
        return sum(p.re_read or 0 for p in self.partitions)

    @property
    def skip(self) -> int:
        """Records the group's consumers will not read on the target."""
        return sum(p.skip or 0 for p in self.partitions)

    @property
    def exact(self) -> bool:
        """Whether every partition was matched exactly."""
        return bool(self.partitions) and all(p.result == "exact" for p in self.partitions)

    @property
    def mirrormaker_re_read(self) -> int | None:
        """What MirrorMaker's offsets would make the consumers read again, where it set them."""
        known = [
            p.mirrormaker_re_read for p in self.partitions if p.mirrormaker_re_read is not None
        ]
        return sum(known) if known else None

    def totals(self) -> dict[str, Any]:
        """The group's sums, as action results."""
        mirrormaker = self.mirrormaker_re_read
        return {
            "group": self.group,
            "switched": self.switched,
            "exact": self.exact,
            "re-read": self.re_read,
            "skip": self.skip,
            "mirrormaker-re-read": mirrormaker,
            "note": self.note,
            "resumed-by": self.resumed_by,
        }


@dataclass
class Clients:
    """The four clients a switch needs: admin queries and record reads on both clusters."""

    source: _clients.ClusterClient
    target: _clients.ClusterClient
    source_logs: _records.LogClient
    target_logs: _records.LogClient

    @classmethod
    def of(cls, source: KafkaCluster, target: KafkaCluster, timeout: float) -> Clients:
        """New clients of both clusters."""
        return cls(
            _clients.ClusterClient(source, "source", timeout),
            _clients.ClusterClient(target, "target", timeout),
            _records.LogClient(source, "source", timeout),
            _records.LogClient(target, "target", timeout),
        )

    def close(self) -> None:
        """Close every client's connections."""
        for client in (self.source, self.target, self.source_logs, self.target_logs):
            client.close()


def _anchor_by_time(
    clients: Clients,
    partition: Partition,
    target_partition: Partition,
    committed: int,
    source: tuple[int, int],
    target: tuple[int, int],
) -> tuple[int, int] | str:
    """A source record next to `committed` and its first copy, searched from its timestamp.

    The record is the last committed one before `committed`, or, if there is none, the first at
    or after it. The target's first offset at the record's timestamp comes before every copy of
    it (they all carry that timestamp), so the first record from there with the same content
    is its first copy.

    Returns:
        The pair of offsets, or why none was found.
    """
    start, end = source
    found: Record | None = None
    width = 64
    while found is None and start < min(committed, end):
        low = max(start, committed - width)
        before, _ = clients.source_logs.read({partition: (low, min(committed, end))})[partition]
        found = before[-1] if before else None
        if low == start:
            break
        width *= 8
    if found is None:
        after, _ = clients.source_logs.read({partition: (max(start, committed), end)}, limit=1)[
            partition
        ]
        if not after:
            return "the source partition holds no record to match"
        found = after[0]
    at = clients.target_logs.first_offsets_at({target_partition: found.content[3]})
    first = at[target_partition]
    if first is None:
        return f"no target record is as recent as source offset {found.offset:,}"
    candidates, _ = clients.target_logs.read(
        {target_partition: (max(first, target[0]), target[1])}, limit=SEARCH_LIMIT
    )[target_partition]
    for candidate in candidates:
        if candidate.content == found.content:
            return found.offset, candidate.offset
    return (
        f"no copy of source offset {found.offset:,} in {len(candidates):,} target records "
        "from its timestamp on"
    )


def _walk_from(
    clients: Clients,
    partition: Partition,
    target_partition: Partition,
    anchor: tuple[int, int],
    bounds: tuple[tuple[int, int], tuple[int, int]],
    *,
    also_from: int | None,
    how: str,
) -> Walk | None:
    """Both partitions read from an anchor to their ends; None if the anchor does not hold."""
    (_, source_end), (target_start, target_end) = bounds
    upstream, downstream = anchor
    if upstream >= source_end or not target_start <= downstream < target_end:
        return None
    begin = downstream if also_from is None else max(target_start, min(downstream, also_from))
    source, source_complete = clients.source_logs.read({partition: (upstream, source_end)})[
        partition
    ]
    target, target_complete = clients.target_logs.read({target_partition: (begin, target_end)})[
        target_partition
    ]
    at = {record.offset: record for record in target}
    if not source or source[0].offset != upstream or downstream not in at:
        return None
    if at[downstream].content != source[0].content:
        return None
    return Walk.of(
        source, target, target_end, complete=source_complete and target_complete, how=how
    )


def _walk(
    clients: Clients,
    partition: Partition,
    target_partition: Partition,
    committed: int,
    sync: OffsetSync | None,
    bounds: tuple[tuple[int, int], tuple[int, int]],
    also_from: int | None,
) -> Walk | str:
    """The walk of one partition for offsets from `committed` on; or why there is none."""
    (source_start, source_end), (_, target_end) = bounds
    if source_start >= source_end:
        return Walk.of([], [], target_end, how="empty source partition")
    if sync is not None:
        anchor = (sync.upstream, sync.downstream)
        walk = _walk_from(
            clients,
            partition,
            target_partition,
            anchor,
            bounds,
            also_from=also_from,
            how="offset sync",
        )
        if walk is not None:
            return walk
    found = _anchor_by_time(clients, partition, target_partition, committed, bounds[0], bounds[1])
    if isinstance(found, str):
        return found
    walk = _walk_from(
        clients, partition, target_partition, found, bounds, also_from=also_from, how="timestamp"
    )
    return walk if walk is not None else "the record found by its timestamp did not match"


def _partition_switch(
    partition: Partition, committed: int, walk: Walk | str, mirrormaker: int | None
) -> _PartitionSwitch:
    """Where one partition of a group resumes, and what MirrorMaker's offset would do."""
    topic, number = partition
    common: dict[str, Any] = {
        "topic": topic,
        "partition": number,
        "source_committed": committed,
        "mirrormaker_offset": mirrormaker,
    }
    if isinstance(walk, str):
        note = f"not matched: {walk}; " + (
            f"MirrorMaker's offset {mirrormaker:,} stays"
            if mirrormaker is not None
            else "it has no offset on the target"
        )
        return _PartitionSwitch(
            **common, target_offset=mirrormaker, re_read=None, skip=None, result="kept", note=note
        )
    if not walk.copied_before(committed):
        copied = walk.copied_up_to()
        note = f"MirrorMaker has not copied it up to offset {committed:,} yet" + (
            f" (up to {copied:,})" if copied is not None else ""
        )
        return _PartitionSwitch(
            **common,
            target_offset=mirrormaker,
            re_read=None,
            skip=None,
            result="not copied",
            matched_by=walk.how,
            note=note,
        )
    position = walk.position(committed)
    judged = walk.judge(committed, mirrormaker) if mirrormaker is not None else None
    exact = walk.complete and position.re_read == 0 and position.skip == 0
    note = None
    if not walk.complete:
        note = f"compared {len(walk.target):,} target records; later ones were not read"
    elif position.re_read:
        note = "records before it come again later: MirrorMaker sent them twice"
    return _PartitionSwitch(
        **common,
        target_offset=position.offset,
        re_read=position.re_read,
        skip=position.skip,
        result="exact" if exact else "re-reads",
        matched_by=walk.how,
        mirrormaker_re_read=judged.re_read if judged else None,
        mirrormaker_skip=judged.skip if judged else None,
        note=note,
    )


def _left_for_later(
    commits: dict[str, GroupCommits], wave: Collection[str], promoted: Collection[str]
) -> list[GroupSwitch]:
    """Of the groups' commits, keep those of groups a wave moves; name those it leaves.

    A group that reads none of the wave's topics is not the wave's; one that also reads topics
    neither in the wave nor promoted before moves with a later wave.
    """
    moving = set(wave) | set(promoted)
    left = []
    for name, offsets in sorted(commits.items()):
        if not set(offsets) & set(wave):
            del commits[name]
        elif others := sorted(set(offsets) - moving):
            del commits[name]
            why = (
                f"group {name} also reads {list_names(others)}, not promoted yet: it moves "
                "with a later wave"
            )
            left.append(GroupSwitch(group=name, switched=False, note=why))
    return left


def _groups_to_switch(
    clients: Clients,
    config: MigrationConfig,
    groups: Sequence[str] | None,
    wave: Collection[str] | None = None,
    promoted: Mapping[str, PromotedEnds] | None = None,
) -> tuple[dict[str, int], dict[str, GroupCommits], list[GroupSwitch]]:
    """The migrated topics, the commits of the groups that can be switched, and those left.

    Named groups that cannot be switched refuse; with `groups` None every selected group with
    commits on the migrated topics is taken, and those in use on either cluster are left. The
    topics promoted in earlier waves count as migrated. With a `wave`, only groups that read
    its topics are taken, and of those, a group that also reads topics neither in it nor
    promoted is left for a later wave.

    Raises:
        SwitchRefusedError: naming the group and why.
    """
    partitions = clients.source.topics()
    topics = {name: partitions[name] for name in config.select_topics(partitions)}
    topics |= {name: len(ends.source) for name, ends in (promoted or {}).items()}
    known = clients.source.groups()
    selected = select(known, config.groups, config.groups_exclude)
    for name in groups or ():
        if name not in known:
            raise SwitchRefusedError(f"group {name} does not exist on the source cluster")
        if name not in selected:
            raise SwitchRefusedError(
                f"group {name} is not migrated: mirrormaker-groups and "
                "mirrormaker-groups-exclude do not select it"
            )
    names = list(groups) if groups is not None else selected
    commits = {g: c for g, c in clients.source.committed_offsets(names, topics).items() if c}
    for name in groups or ():
        if name not in commits:
            raise SwitchRefusedError(
                f"group {name} has no committed offsets on the migrated topics"
            )
    left = [] if wave is None else _left_for_later(commits, wave, promoted or {})
    on_source = clients.source.describe_groups(list(commits)) if commits else {}
    on_target = clients.target.describe_groups(list(commits)) if commits else {}
    for name in list(commits):
        members = on_source.get(name, ("", 0))[1]
        moved = on_target.get(name, ("", 0))[1]
        if members:
            why = (
                f"group {name} has {plural(members, 'member')} on the {clients.source.role} "
                "cluster: stop its consumers there first"
            )
        elif moved:
            why = (
                f"group {name} has {plural(moved, 'member')} on the {clients.target.role} "
                "cluster: its consumers have moved already"
            )
        else:
            continue
        if groups is not None:
            raise SwitchRefusedError(why)
        del commits[name]
        left.append(GroupSwitch(group=name, switched=False, note=why))
    return topics, commits, left


def _lowest(
    commits: Mapping[str, GroupCommits], keep: Callable[[str, int], bool] = lambda *_: True
) -> dict[Partition, int]:
    """The lowest offset any of the groups committed on each partition."""
    lowest: dict[Partition, int] = {}
    for offsets in commits.values():
        for topic, committed in offsets.items():
            for number, offset in committed.items():
                if keep(topic, number):
                    lowest[(topic, number)] = min(lowest.get((topic, number), offset), offset)
    return lowest


def _within(
    offsets: Mapping[str, _clients.TopicOffsets], ends: Mapping[str, Sequence[int]]
) -> dict[str, _clients.TopicOffsets]:
    """The offsets, each partition of a topic in `ends` ending there (never past its end)."""
    bounded = dict(offsets)
    for topic, recorded in ends.items():
        if (now := offsets.get(topic)) is not None and len(recorded) == len(now.end):
            end = tuple(min(e, r) for e, r in zip(now.end, recorded, strict=True))
            bounded[topic] = _clients.TopicOffsets(start=now.start, end=end)
    return bounded


def switch_groups_with(
    clients: Clients,
    config: MigrationConfig,
    groups: Sequence[str] | None = None,
    *,
    dry_run: bool = False,
    use_syncs: bool = True,
    wave: Collection[str] | None = None,
    promoted: Mapping[str, PromotedEnds] | None = None,
    access: ClientAccess | None = None,
) -> list[GroupSwitch]:
    """Commit, on the target, the offsets matching each group's source offsets exactly.

    Args:
        clients: the clients of both clusters.
        config: the migration options (selected topics and groups, replication policy).
        groups: the groups to switch; every selected group when None (`finish-migration`).
        dry_run: compute and report, commit nothing.
        use_syncs: anchor on MirrorMaker's offset syncs; without them every partition is
            anchored by a content search from a timestamp.
        wave: the source topics a wave promotes: only the groups that read them and nothing
            else not promoted move; the others are named and left (`_groups_to_switch`).
        promoted: the topics earlier waves promoted, with their end offsets then: groups are
            matched within those ends.
        access: the host's client users: each switch says which of them resumes the group.

    Raises:
        SwitchRefusedError: when a named group cannot be switched: nothing was committed.
        ClusterUnreachableError: when a cluster does not answer.
    """
    promoted = promoted or {}
    topics, commits, switches = _groups_to_switch(clients, config, groups, wave, promoted)
    used = sorted({topic for offsets in commits.values() for topic in offsets})
    source_offsets = _within(
        clients.source.offsets({topic: topics[topic] for topic in used}),
        {topic: ends.source for topic, ends in promoted.items()},
    )
    existing = clients.target.topics()
    names = {config.target_topic(topic): topic for topic in used}
    target_offsets = _within(
        clients.target.offsets({n: existing[n] for n in names if n in existing}),
        {config.target_topic(topic): ends.target for topic, ends in promoted.items()},
    )
    mirrormaker = clients.target.committed_offsets(list(commits), list(target_offsets))
    lowest = _lowest(
        commits,
        lambda topic, number: number < len(source_offsets[topic].end),
    )
    earliest = _lowest(
        {
            group: {names[name]: committed for name, committed in offsets.items()}
            for group, offsets in mirrormaker.items()
        }
    )
    syncs = clients.target_logs.offset_syncs(dict(lowest)) if use_syncs else {}
    walks: dict[Partition, Walk | str] = {}
    for (topic, number), offset in lowest.items():
        name = config.target_topic(topic)
        if name not in target_offsets or number >= len(target_offsets[name].end):
            walks[(topic, number)] = f"{name}[{number}] is not on the target"
            continue
        source, target = source_offsets[topic], target_offsets[name]
        bounds = (
            (source.start[number], source.end[number]),
            (target.start[number], target.end[number]),
        )
        walks[(topic, number)] = _walk(
            clients,
            (topic, number),
            (name, number),
            offset,
            syncs.get((topic, number)),
            bounds,
            earliest.get((topic, number)),
        )
    for group, offsets in sorted(commits.items()):
        parts = [
            _partition_switch(
                (topic, number),
                offset,
                walks.get((topic, number), "the source partition is gone"),
                mirrormaker.get(group, {}).get(config.target_topic(topic), {}).get(number),
            )
            for topic, committed in sorted(offsets.items())
            for number, offset in sorted(committed.items())
        ]
        behind = [p for p in parts if p.result == "not copied"]
        if groups is not None and behind:
            raise SwitchRefusedError(
                f"group {group}: {behind[0].topic}[{behind[0].partition}]: {behind[0].note}; "
                "wait until migration-status shows no lag"
            )
        matched = {
            (config.target_topic(p.topic), p.partition): p.target_offset
            for p in parts
            if p.result in ("exact", "re-reads") and p.target_offset is not None
        }
        if matched and not dry_run:
            clients.target_logs.commit(group, matched)
        switches.append(
            GroupSwitch(group=group, switched=bool(matched) and not dry_run, partitions=parts)
        )
    if access is not None:
        switches = [
            switch.model_copy(update={"resumed_by": access.resumed_by(switch.group)})
            for switch in switches
        ]
    return sorted(switches, key=lambda switch: switch.group)


def switch_groups(
    source: KafkaCluster,
    target: KafkaCluster,
    config: MigrationConfig,
    groups: Sequence[str] | None = None,
    *,
    dry_run: bool = False,
    use_syncs: bool = True,
    timeout: float = CLIENT_TIMEOUT,
    access: ClientAccess | None = None,
) -> list[GroupSwitch]:
    """Switch consumer groups from the source to the target exactly, as `switch-group` does.

    The groups must have no member on either cluster. `groups` None switches every selected
    group, as `finish-migration` does; `use_syncs=False` anchors every partition by a content
    search from a timestamp, as when MirrorMaker's offset syncs of a partition are missing.
    With `access`, each switch names the client users that may resume its group.

    Raises:
        MigrationError: when a named group cannot be switched: nothing was committed.
        ClusterUnreachableError: when a cluster does not answer.
    """
    clients = Clients.of(source, target, timeout)
    try:
        return switch_groups_with(
            clients, config, groups, dry_run=dry_run, use_syncs=use_syncs, access=access
        )
    finally:
        clients.close()


def unsettled_topics(clients: Clients, topics: Mapping[str, int]) -> list[str]:
    """Source partitions with records after the last offset MirrorMaker committed as copied.

    Stopping a MirrorMaker node moves its tasks to the others, which start again from those
    offsets: records after them would be copied again, after the offsets a switch sets.
    """
    if not topics:
        return []
    ends = clients.source.offsets(dict(topics))
    committed = clients.target_logs.source_offsets()
    ranges = {}
    for topic, offsets in ends.items():
        for number, (start, end) in enumerate(zip(offsets.start, offsets.end, strict=True)):
            done = committed.get((topic, number), start - 1) + 1
            if max(start, done) < end:
                ranges[(topic, number)] = (max(start, done), end)
    after = clients.source_logs.read(ranges, limit=1)
    return sorted(f"{topic}[{number}]" for (topic, number), (found, _) in after.items() if found)
