# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""A failback: promoted topics go back to the cluster they were migrated from, exactly.

After a wave of `finish-migration`, producers write to this cluster and the source cluster falls
behind. A failback copies back exactly the records written to promoted topics since their wave:
a MirrorMaker flow of its own (`FailbackService`, `mm2-failback.properties`) from this cluster
into the source cluster, each partition starting at the end offsets its wave recorded, which
`seed_copy_back` writes into Kafka Connect's offsets topic on the source cluster before the copy
starts (MirrorMaker's task seeks to the offset after the one recorded there). It writes on the
source cluster with a user given for it alone; the migration stays read-only there.

The cutover's checks, the other way round: `check_failback` runs the report's queries with the
roles swapped (this cluster is the copy's source: `Flow`, `FAILBACK_WORDING`), so the lag is
counted by content from the wave's end offsets on, and this cluster's producers must be quiet.
`finish_failback_with` refuses unless they pass, then moves every group of the topics to the
source cluster exactly (the group switch with the roles swapped) and makes the migration's own
MirrorMaker resume those topics after the copied-back records. The host records it, stops the
copy back and deletes its topics (`clean_up_copy_back`); the topics leave their waves and are
fenced on this cluster for client producers.

No loops, no surprises: only promoted topics fail back (MirrorMaker copies them into this
cluster no more), and a source cluster written after the wave (its end offsets past those the
wave recorded) or a partition whose records since the wave this cluster no longer holds is
refused, naming the partitions, unless forced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timezone
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from . import _clients, _records, _switch
from ._clients import TopicOffsets
from ._clusters import KafkaCluster, SourceCluster
from ._connections import CLIENT_TIMEOUT
from ._cutover import blockers, groups_results
from ._errors import ClusterUnreachableError, MigrationError
from ._identities import ClientAccess
from ._names import FAILBACK_ALIAS, MIRRORMAKER_NAMES, SOURCE_ALIAS
from ._options import MigrationConfig, select, topic_patterns
from ._peers import UnitState, Wave
from ._queries import Flow, fetch_snapshot
from ._records import connect_topics, encode_source_offset
from ._report import FAILBACK_WORDING, QUIET_SECONDS, MigrationReport, build_report
from ._switch import Clients, GroupSwitch
from ._text import list_names, plural

# A regular expression no group name matches: the copy back's options when no group reads.
_NO_GROUP = "(?!)"
# The migration's own groups, which never move.
_OWN_GROUPS = tuple(re.escape(group) for group in MIRRORMAKER_NAMES.groups)


class FailbackRefusedError(MigrationError):
    """A failback cannot start or finish now; the message says why. Nothing was changed."""


class FailbackFinish(BaseModel):
    """What `finish-failback` recorded: when, by whom, the groups moved, the copy's end.

    The end offsets are each partition's, by topic, on both clusters when it finished; the
    migration's MirrorMaker resumes the topics from the source cluster's.
    """

    model_config = ConfigDict(frozen=True)

    at: str
    by: str = ""
    records: int = 0
    groups: list[str] = Field(default_factory=list)
    left: list[str] = Field(default_factory=list)
    source_end_offsets: dict[str, list[int]] = Field(default_factory=dict)
    target_end_offsets: dict[str, list[int]] = Field(default_factory=dict)
    forced: list[str] = Field(default_factory=list)


class Failback(BaseModel):
    """A failback, as `start-failback` recorded it, with its finish once done.

    `target_offsets` are this cluster's end offsets by topic when each topic's wave promoted it:
    the copy back starts there. `source_offsets` are the source cluster's end offsets when the
    failback started (those the wave recorded, unless it was written since and `forced` says
    so). `waves` names the wave that promoted each topic; `number` is unique to the failback.
    """

    model_config = ConfigDict(frozen=True)

    number: int
    migration: int = 0
    at: str
    by: str = ""
    source: str = "the source cluster"
    topics: list[str]
    waves: dict[str, int] = Field(default_factory=dict)
    target_offsets: dict[str, list[int]] = Field(default_factory=dict)
    source_offsets: dict[str, list[int]] = Field(default_factory=dict)
    forced: list[str] = Field(default_factory=list)
    finished: FailbackFinish | None = None

    def summary(self) -> str:
        """One line about the failback."""
        if self.finished is None:
            return f"failing back {list_names(self.topics)} to {self.source} since {self.at}"
        done = self.finished
        return (
            f"{list_names(self.topics)} failed back to {self.source} at {done.at}: "
            f"{plural(done.records, 'record')} copied back, "
            f"{plural(len(done.groups), 'group')} moved"
        )


class FailbackCheck(NamedTuple):
    """The report a failback is judged by (of the copy back), and what stands in its way.

    `options` are the copy back's as the report was made with them (its topics, the groups
    that read them here).
    """

    report: MigrationReport
    blockers: list[str]
    options: MigrationConfig

    def summary(self, failback: Failback) -> str:
        """One line: how far the copy back is, and whether finish-failback may run."""
        report = self.report
        lag = plural(report.lag, "record")
        if not self.blockers:
            return (
                f"failing back {list_names(failback.topics)} to {failback.source}: in sync "
                f"(lag {lag}) and quiet: ready for finish-failback"
            )
        return (
            f"failing back {list_names(failback.topics)} to {failback.source}: lag {lag}; "
            f"{self.blockers[0]}"
        )


class FailedBack(NamedTuple):
    """What finishing a failback did: its record, the groups it moved, and its check."""

    finish: FailbackFinish
    switches: list[GroupSwitch]
    check: FailbackCheck


def reverse_clients(source: KafkaCluster, target: KafkaCluster, timeout: float) -> Clients:
    """The clients of a failback: this cluster (`target`) read as the copy's source.

    Each keeps its role's name (`target` for this cluster), so messages name the clusters as
    the migration does; the source cluster's reader names the copy back's topics.
    """
    return Clients(
        _clients.ClusterClient(target, "target", timeout),
        _clients.ClusterClient(source, "source", timeout),
        _records.LogClient(target, "target", timeout),
        _records.LogClient(source, "source", timeout, FAILBACK_ALIAS),
    )


def failback_config(
    config: MigrationConfig, topics: Collection[str], groups: Collection[str] = ()
) -> MigrationConfig:
    """The options of the copy back: exactly these topics and groups.

    The groups are those with commits on the topics here (`_reading`): the source cluster is
    asked about those alone, which its failback user may describe.
    """
    return config.model_copy(
        update={
            "topics": tuple(re.escape(topic) for topic in sorted(topics)),
            "topics_exclude": (),
            "groups": tuple(re.escape(group) for group in sorted(groups)) or (_NO_GROUP,),
            "groups_exclude": _OWN_GROUPS,
            "promoted": frozenset(),
            "replication_policy": "identity",
            "sync_topic_configs": False,
            "sync_group_offsets": False,
            "sync_topic_acls": False,
        }
    )


def _reading(clients: Clients, topics: Collection[str]) -> list[str]:
    """The groups with commits on these topics here, the migration's own left out.

    Raises:
        ClusterUnreachableError: if this cluster does not answer.
    """
    known = select(clients.source.groups(), (".*",), _OWN_GROUPS)
    commits = clients.source.committed_offsets(known, topics)
    return sorted(group for group, found in commits.items() if found)


def copy_back_topics() -> list[str]:
    """The topics the copy back makes on the source cluster, all named after `failback`.

    Kafka Connect's and the offset syncs, `mm2-*.failback.internal`, and `failback.heartbeats`:
    MirrorMaker copies every heartbeats topic whatever its topic filter says
    (`MirrorSourceConnector.shouldReplicateTopic`), so this cluster's `heartbeats` (the
    migration's) arrives there under the copy back's prefix, even with the policy `identity`.
    """
    return [*connect_topics(FAILBACK_ALIAS), f"{FAILBACK_ALIAS}.heartbeats"]


def chosen_topics(promoted: Collection[str], chosen: str | None) -> list[str]:
    """The promoted topics a failback takes: all of them, or those `chosen` names.

    `chosen` is a comma-separated list of topic names or regular expressions, each matched in
    full against the promoted topics.

    Raises:
        FailbackRefusedError: when nothing is promoted, or an item matches no promoted topic.
    """
    if not promoted:
        raise FailbackRefusedError(
            "no topic was promoted: only topics that a wave of finish-migration moved to this "
            "cluster fail back; nothing was changed"
        )
    if not chosen:
        return sorted(promoted)
    found: set[str] = set()
    for item, pattern in topic_patterns(chosen, FailbackRefusedError):
        matched = {topic for topic in promoted if pattern.fullmatch(topic)}
        if not matched:
            raise FailbackRefusedError(
                f"topics: {item!r} matches no promoted topic (promoted: "
                f"{list_names(sorted(promoted))}): a topic no wave of finish-migration promoted "
                "never left the source cluster; nothing was changed"
            )
        found |= matched
    return sorted(found)


def _promoted_by(waves: Sequence[Wave], topics: Collection[str]) -> dict[str, Wave]:
    """The wave that promoted each topic last."""
    return {topic: wave for wave in waves for topic in wave.topics if topic in topics}


def _hard_refusals(
    topics: Sequence[str],
    waves: Mapping[str, Wave],
    here: Mapping[str, int],
    there: Mapping[str, int],
) -> list[str]:
    """What no force overrides: a topic missing on a cluster, partitions that do not match."""
    refusals = []
    for topic in topics:
        wave = waves[topic]
        recorded = wave.source_end_offsets.get(topic)
        if recorded is None or topic not in wave.target_end_offsets:
            refusals.append(f"wave {wave.number} recorded no end offsets of {topic}")
        elif topic not in here:
            refusals.append(f"{topic} is not on this cluster any more")
        elif topic not in there:
            refusals.append(f"{topic} is not on the source cluster: create it there first")
        elif here[topic] != there[topic] or len(recorded) != there[topic]:
            refusals.append(
                f"{topic} has {plural(here[topic], 'partition')} here and {there[topic]} on the "
                f"source cluster ({len(recorded)} when wave {wave.number} promoted it)"
            )
    return refusals


def _diverged(
    topics: Sequence[str],
    waves: Mapping[str, Wave],
    here: Mapping[str, TopicOffsets],
    there: Mapping[str, Sequence[int]],
) -> list[str]:
    """Why the copy back would not fit: the source written since the wave, or records gone here.

    A partition whose log end on the source cluster is past the end its wave recorded holds
    records this cluster lacks; one whose first offset here is past the wave's end lost records
    written since (retention), which the copy back cannot bring.
    """
    written, deleted = [], []
    for topic in topics:
        wave = waves[topic]
        for number, recorded in enumerate(wave.source_end_offsets[topic]):
            if (now := there[topic][number]) > recorded:
                written.append(f"{topic}[{number}] ({plural(now - recorded, 'record')})")
        for number, end in enumerate(wave.target_end_offsets[topic]):
            if (start := here[topic].start[number]) > end:
                deleted.append(f"{topic}[{number}] (from offset {end:,}, now {start:,})")
    reasons = []
    if written:
        reasons.append(
            f"the source cluster was written after the cutover: {', '.join(written)} past the "
            "end offsets their wave recorded, records this cluster lacks"
        )
    if deleted:
        reasons.append(
            "this cluster no longer holds every record written since the cutover: "
            f"{', '.join(deleted)}"
        )
    return reasons


def plan_failback(
    clients: Clients,
    config: MigrationConfig,
    waves: Sequence[Wave],
    topics: Sequence[str],
    *,
    force: bool = False,
    number: int = 1,
    migration: int = 0,
    by: str = "",
    source: str = "the source cluster",
) -> Failback:
    """Check a failback of these promoted topics and say what to record; nothing is changed.

    Raises:
        FailbackRefusedError: naming what stands in the way (a source written since, records
            gone here: unless `force`).
        ClusterUnreachableError: if a cluster does not answer.
    """
    if config.replication_policy != "identity":
        raise FailbackRefusedError(
            "a failback copies topics back under their own names: it needs "
            "mirrormaker-replication-policy=identity; nothing was changed"
        )
    promoted = _promoted_by(waves, topics)
    here, there = clients.source.topics(), clients.target.topics()
    if refusals := _hard_refusals(topics, promoted, here, there):
        raise FailbackRefusedError(f"cannot fail back: {'; '.join(refusals)}; nothing was changed")
    offsets = clients.source.offsets({topic: here[topic] for topic in topics})
    ends = clients.target.log_end_offsets({topic: there[topic] for topic in topics})
    forced = _diverged(topics, promoted, offsets, ends)
    if forced and not force:
        raise FailbackRefusedError(
            f"{'; '.join(forced)}. Nothing was changed: look at those records first, or run "
            "start-failback force=true to copy this cluster's records back after them"
        )
    return Failback(
        number=number,
        migration=migration,
        at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        by=by,
        source=source,
        topics=list(topics),
        waves={topic: promoted[topic].number for topic in topics},
        target_offsets={t: list(promoted[t].target_end_offsets[t]) for t in topics},
        source_offsets={topic: list(ends[topic]) for topic in topics},
        forced=forced,
    )


def seed_copy_back(clients: Clients, failback: Failback) -> None:
    """Make the copy back start where the waves ended: Kafka Connect's offsets, on the source.

    For each partition, the record MirrorMaker writes once it copied the offset before the
    wave's end, in `mm2-offsets.failback.internal` (made if missing: compacted, one partition).
    A topic it had to make is deleted again when the records are refused.

    Raises:
        ClusterUnreachableError: if the source cluster does not answer, or refuses.
    """
    logs = clients.target_logs
    topic = f"mm2-offsets.{FAILBACK_ALIAS}.internal"
    records = [
        encode_source_offset(FAILBACK_ALIAS, (name, number), end - 1)
        for name, ends in sorted(failback.target_offsets.items())
        for number, end in enumerate(ends)
    ]
    made = False
    try:
        made = logs.create_compacted(topic)
        logs.write(topic, records)
    except ClusterUnreachableError as error:
        if made:
            logs.delete_topics([topic])
        raise ClusterUnreachableError(
            f"{error.message}: where the copy back starts was not written to {topic} (the "
            "failback user must be allowed to create and write it); nothing was changed",
            refused=error.refused,
        ) from None


def _flow(failback: Failback) -> Flow:
    """The copy back as the report's queries read it: from the waves' end offsets on."""
    return Flow(
        source_alias=FAILBACK_ALIAS,
        source_starts=failback.target_offsets,
        target_starts=failback.source_offsets,
        check_rights=False,
    )


def check_failback(
    clients: Clients,
    config: MigrationConfig,
    failback: Failback,
    *,
    units: Mapping[str, UnitState] | None,
    quiet_seconds: float = QUIET_SECONDS,
) -> FailbackCheck:
    """Whether the failback may finish now: the copy back in sync, this cluster quiet.

    The report of the copy back: the records written here since the waves that the source
    cluster lacks (by content), this cluster's producers watched for `quiet_seconds`, its open
    transactions, the groups still consumed here, and the copy back's MirrorMaker on every unit
    (`units` None: not judged), which must have recorded the copy of the last records.

    Raises:
        ClusterUnreachableError: if a cluster does not answer.
    """
    options = failback_config(config, failback.topics, _reading(clients, failback.topics))
    snapshot = fetch_snapshot(
        clients.source,
        clients.target,
        options,
        units=units,
        quiet_seconds=quiet_seconds,
        flow=_flow(failback),
    )
    if units is None:
        snapshot = snapshot.model_copy(update={"connectors": None})
    report = build_report(snapshot, options, source=failback.source, wording=FAILBACK_WORDING)
    found = blockers(clients, report, settled=units is not None, copy="copy back")
    return FailbackCheck(report, found, options)


def _ends(offsets: Mapping[str, TopicOffsets]) -> dict[str, list[int]]:
    return {topic: list(found.end) for topic, found in sorted(offsets.items())}


def resume_migration_after(clients: Clients, ends: Mapping[str, Sequence[int]]) -> str:
    """Make the migration's MirrorMaker resume these topics at these source cluster offsets.

    Writes its committed source offsets into its Kafka Connect offsets topic on this cluster
    (`mm2-offsets.source.internal`), so a migration that copies the topics again starts after
    the records the failback copied back; without that topic (never made, or cleaned up) there
    is nothing to set. What was done, in words.

    Raises:
        ClusterUnreachableError: if this cluster does not answer, or refuses.
    """
    logs = clients.source_logs
    topic = f"mm2-offsets.{SOURCE_ALIAS}.internal"
    if topic not in logs.topics():
        return f"no {topic} on this cluster: a new migration copies the topics from their start"
    logs.write(
        topic,
        [
            encode_source_offset(SOURCE_ALIAS, (name, number), end - 1)
            for name, partition_ends in sorted(ends.items())
            for number, end in enumerate(partition_ends)
        ],
    )
    return (
        "MirrorMaker resumes them from the source cluster's end offsets when the migration "
        "copies them again"
    )


def finish_failback_with(
    clients: Clients,
    config: MigrationConfig,
    failback: Failback,
    *,
    units: Mapping[str, UnitState] | None = None,
    force: bool = False,
    by: str = "",
    prepare: Callable[[], None] | None = None,
    quiet_seconds: float = QUIET_SECONDS,
    access: ClientAccess | None = None,
) -> FailedBack:
    """Check a failback, then move its groups and set where the migration resumes the topics.

    Args:
        clients: the failback's clients (`reverse_clients`).
        config: the migration options.
        failback: what start-failback recorded.
        units: each unit's copy back (its service's state); None: not judged.
        force: go on although the check found something in the way.
        by: the unit that finishes it, for its record.
        prepare: called once the failback may finish and before anything changes: the host
            claims the step and stops its copy back there; what it raises stops the finish.
        quiet_seconds: how long this cluster must take no write to the topics.
        access: the host's client users: each switch names those that resume its group.

    Raises:
        FailbackRefusedError: if it may not finish now; nothing was changed.
        ClusterUnreachableError: if a cluster does not answer; run it again.
    """
    check = check_failback(clients, config, failback, units=units, quiet_seconds=quiet_seconds)
    if check.blockers and not force:
        raise FailbackRefusedError(
            f"not ready to finish the failback: {'; '.join(check.blockers)}. Nothing was "
            "changed: wait or fix what is listed, or run finish-failback force=true"
        )
    topics = {topic.topic: topic.partitions for topic in check.report.topics}
    checked = {topic.topic: topic.source_end_offset for topic in check.report.topics}
    here = clients.source.offsets(topics)
    written = sorted(t for t, found in here.items() if sum(found.end) != checked[t])
    if written and not force:
        raise FailbackRefusedError(
            f"this cluster was written since the check: {list_names(written)}; nothing was "
            "changed: stop its producers and run finish-failback again"
        )
    if prepare is not None:
        prepare()
    switches = _switch.switch_groups_with(clients, check.options, access=access)
    there = clients.target.offsets(topics)
    resume_migration_after(clients, _ends(there))
    finish = FailbackFinish(
        at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        by=by,
        records=check.report.source_records,
        groups=[switch.group for switch in switches if switch.switched],
        left=[switch.group for switch in switches if not switch.switched],
        source_end_offsets=_ends(there),
        target_end_offsets=_ends(here),
        forced=list(check.blockers),
    )
    return FailedBack(finish, switches, check)


def clean_up_copy_back(clients: Clients) -> str:
    """Delete the copy back's topics on the source cluster; what, or why not."""
    try:
        deleted = clients.target_logs.delete_topics(copy_back_topics())
    except MigrationError as error:
        return f"the copy back's topics on the source cluster were not deleted: {error.message}"
    return f"deleted {', '.join(deleted)} on the source cluster" if deleted else "none was left"


def _source_name(source: KafkaCluster) -> str:
    return source.name if isinstance(source, SourceCluster) else source.bootstrap


def start_failback(
    source: KafkaCluster,
    target: KafkaCluster,
    config: MigrationConfig,
    waves: Sequence[Wave],
    topics: str | None = None,
    *,
    force: bool = False,
    number: int = 1,
    timeout: float = CLIENT_TIMEOUT,
) -> Failback:
    """Check and prepare a failback as `start-failback` does, outside a charm.

    `source` is the source cluster as the failback user (who may write there) reaches it,
    `target` this cluster as MirrorMaker's user does; `waves` are the migration's waves and
    `topics` chooses among their topics (all when None). The caller then runs a
    `FailbackService` with the failback's topics on every unit.

    Raises:
        FailbackRefusedError: if it may not start; nothing was changed.
        ClusterUnreachableError: if a cluster does not answer, or refuses.
    """
    promoted = {topic for wave in waves for topic in wave.topics}
    chosen = chosen_topics(promoted, topics)
    clients = reverse_clients(source, target, timeout)
    try:
        failback = plan_failback(
            clients, config, waves, chosen, force=force, number=number, source=_source_name(source)
        )
        seed_copy_back(clients, failback)
        return failback
    finally:
        clients.close()


def failback_report(
    source: KafkaCluster,
    target: KafkaCluster,
    config: MigrationConfig,
    failback: Failback,
    *,
    units: Mapping[str, UnitState] | None = None,
    quiet_seconds: float = 0,
    timeout: float = CLIENT_TIMEOUT,
) -> FailbackCheck:
    """The copy back's report as `migration-status` gives it, outside a charm (`check_failback`).

    Raises:
        ClusterUnreachableError: if a cluster does not answer.
    """
    clients = reverse_clients(source, target, timeout)
    try:
        return check_failback(clients, config, failback, units=units, quiet_seconds=quiet_seconds)
    finally:
        clients.close()


def finish_failback(
    source: KafkaCluster,
    target: KafkaCluster,
    config: MigrationConfig,
    failback: Failback,
    *,
    units: Mapping[str, UnitState] | None = None,
    force: bool = False,
    prepare: Callable[[], None] | None = None,
    quiet_seconds: float = QUIET_SECONDS,
    timeout: float = CLIENT_TIMEOUT,
) -> FailedBack:
    """Finish a failback as `finish-failback` does, outside a charm (`finish_failback_with`).

    `prepare` is called before anything changes: stop the copy back on every unit there. Once
    the groups moved, the copy back's topics on the source cluster are deleted; the caller
    records the finish, and keeps client producers from writing the topics on the target.

    Raises:
        FailbackRefusedError: if it may not finish now; nothing was changed.
        ClusterUnreachableError: if a cluster does not answer; run it again.
    """
    clients = reverse_clients(source, target, timeout)
    try:
        done = finish_failback_with(
            clients,
            config,
            failback,
            units=units,
            force=force,
            prepare=prepare,
            quiet_seconds=quiet_seconds,
        )
        clean_up_copy_back(clients)
        return done
    finally:
        clients.close()


def start_results(unit: str, failback: Failback, *, this_unit: str) -> dict[str, str]:
    """`start-failback`'s results (see `charmcraft.yaml`)."""
    results = {
        "state": "running",
        "topics": json.dumps(failback.topics),
        "this-unit": this_unit,
        "start-offsets": json.dumps(failback.target_offsets),
        "message": (
            f"failing back {list_names(failback.topics)} to {failback.source}: MirrorMaker "
            f"copies the records written here since their waves, on {unit} and every other unit "
            "as it sees the request; run finish-failback once migration-status says it is ready"
        ),
    }
    if failback.forced:
        results["forced"] = json.dumps(failback.forced)
    return results


def finish_results(
    unit: str, failback: Failback, done: FailedBack, cleanup: str
) -> dict[str, str]:
    """`finish-failback`'s results (see `charmcraft.yaml`)."""
    finish = done.finish
    results = {
        "state": "finished",
        "topics": json.dumps(failback.topics),
        "finished-at": finish.at,
        "records": str(finish.records),
        "mirrormaker": f"the copy back stopped on {unit}; every other unit stops it as it sees it",
        "fence": (
            f"client producers may not write {list_names(failback.topics)} here any more: they "
            f"write to {failback.source}"
        ),
        "left": json.dumps(finish.left),
        **groups_results(done.switches),
        "end-offsets": json.dumps(
            {"source": finish.source_end_offsets, "target": finish.target_end_offsets}
        ),
        "cleanup": cleanup,
        "summary": failback.model_copy(update={"finished": finish}).summary(),
    }
    if finish.forced:
        results["forced"] = json.dumps(finish.forced)
    return results
