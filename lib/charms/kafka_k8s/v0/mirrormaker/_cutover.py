# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""`finish-migration`: the cutover in waves, its checks, what each wave records, its results.

A wave (`finish-migration topics=...`) promotes some of the migrated topics; without `topics`
the last wave promotes everything left and finishes the migration. A wave may happen when the
report on its topics finds nothing in the way (in sync by content, the source quiet on them,
no open transaction, their groups free to move, no MirrorMaker task failing) and MirrorMaker
has recorded the copy of their last records. Then the groups that read only promoted topics
are switched exactly (`_switch`), and the wave is recorded with the topics' end offsets on
both clusters. A group that also reads topics not promoted yet is named and left for a later
wave. `Migration` claims the wave first (one claim per step, on the target: of two units
finishing at once exactly one goes on), then records it, stops MirrorMaker copying the topics,
and lifts their fence.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, NamedTuple

import ops

from . import _switch
from ._clients import TopicOffsets
from ._clusters import KafkaCluster, SourceCluster
from ._connections import CLIENT_TIMEOUT
from ._display import groups_table, switch_results
from ._errors import ClusterUnreachableError, MigrationError
from ._identities import ClientAccess
from ._names import SOURCE_ALIAS
from ._options import MigrationConfig, MirrorMakerSettings, topic_patterns
from ._peers import FinishedMigration, UnitState, Wave
from ._queries import fetch_snapshot
from ._records import internal_topics
from ._report import QUIET_SECONDS, MigrationReport, build_report
from ._switch import Clients, GroupSwitch, PromotedEnds, SwitchRefusedError, unsettled_topics
from ._text import list_names, plural

if TYPE_CHECKING:
    from ._migration import Migration

# Where a unit claims a step of the cutover on the target: a topic under MirrorMaker's
# reserved `mm2-` prefix, so no client can create it first.
_CLAIM_PREFIX = "mm2-cutover."


class CutoverRefusedError(MigrationError):
    """A wave or the finish cannot happen now; the message says why. Nothing was changed."""


class CutoverCheck(NamedTuple):
    """The report the cutover is judged by, and what stands in its way."""

    report: MigrationReport
    blockers: list[str]

    def refusal(self) -> str:
        """Why `finish-migration` refuses, and what to do."""
        return (
            f"not ready for cutover: {'; '.join(self.blockers)}. Nothing was changed: wait or "
            "fix what is listed, or run finish-migration force=true"
        )


class Promotion(NamedTuple):
    """What a wave did: its record, the groups it switched or left, and its check.

    `remaining` are the migrated topics left for later waves; none after the last wave, which
    finishes the migration.
    """

    wave: Wave
    switches: list[GroupSwitch]
    check: CutoverCheck
    remaining: list[str]

    @property
    def final(self) -> bool:
        """Whether the wave promoted everything left: the migration is finished."""
        return not self.remaining


def claim(clients: Clients, migration: int, step: int, unit: str, replication_factor: int) -> None:
    """Claim a step (a wave, or the finish) of a migration for `unit`, before it changes anything.

    Of two units finishing (or promoting a wave) at the same moment, exactly one creates the
    step's topic on the target; the other fails here, having changed nothing. The unit that
    holds the claim may go on again (a run cut off after its claim).

    Raises:
        CutoverRefusedError: if another unit claimed the step.
        ClusterUnreachableError: if the target does not answer.
    """
    topic = f"{_CLAIM_PREFIX}{SOURCE_ALIAS}.{migration}.{step}.internal"
    holder = clients.target_logs.claim(topic, unit, replication_factor)
    if holder != unit:
        raise CutoverRefusedError(
            f"{holder or 'another unit'} finished this migration, or promoted its wave {step}, "
            "at the same moment: nothing was changed here; see migration-status"
        )


def waves_results(waves: Sequence[Wave]) -> dict[str, str]:
    """The waves promoted so far in a migration, as `migration-status` results."""
    if not waves:
        return {}
    return {
        "waves": json.dumps([wave.model_dump(mode="json") for wave in waves]),
        "waves-done": "; ".join(wave.summary() for wave in waves),
    }


def promoted_ends(waves: Sequence[Wave], config: MigrationConfig) -> dict[str, PromotedEnds]:
    """The topics earlier waves promoted, with both clusters' end offsets then."""
    return {
        topic: PromotedEnds(
            tuple(wave.source_end_offsets.get(topic, ())),
            tuple(wave.target_end_offsets.get(config.target_topic(topic), ())),
        )
        for wave in waves
        for topic in wave.topics
    }


def wave_topics(
    remaining: Collection[str], chosen: str | None, promoted: Collection[str]
) -> list[str]:
    """The migrated topics a wave promotes: `chosen` names them, or all that remain.

    `chosen` is a comma-separated list of topic names or regular expressions, each matched in
    full against the migrated topics not promoted yet.

    Raises:
        CutoverRefusedError: naming an expression that is not valid or matches no such topic.
    """
    if not chosen:
        return sorted(remaining)
    found: set[str] = set()
    for item, pattern in topic_patterns(chosen, CutoverRefusedError):
        matched = {topic for topic in remaining if pattern.fullmatch(topic)}
        if not matched:
            earlier = sorted(topic for topic in promoted if pattern.fullmatch(topic))
            why = (
                f"{list_names(earlier)} was promoted in an earlier wave"
                if earlier
                else "it matches no migrated topic that is not promoted yet"
            )
            raise CutoverRefusedError(f"topics: {item!r}: {why}; nothing was changed")
        found |= matched
    return sorted(found)


def check_cutover(
    clients: Clients,
    config: MigrationConfig,
    units: Mapping[str, UnitState] | None,
    *,
    source: str,
    topics: Collection[str] | None = None,
    promoted: Collection[str] = (),
    fenced: Collection[str] = (),
    quiet_seconds: float = QUIET_SECONDS,
) -> CutoverCheck:
    """Whether a wave of `topics` (everything left when None) may happen now.

    The source is watched for `quiet_seconds`. `units` None judges a stopped migration by its
    data alone: no MirrorMaker runs to be checked, nor its records of the copy. A group that
    reads `topics` and others neither in them nor `promoted` is left for a later wave and
    holds up nothing; `fenced` topics the source no longer shows hold up the last wave.

    Raises:
        ClusterUnreachableError: if a cluster does not answer.
    """
    snapshot = fetch_snapshot(
        clients.source,
        clients.target,
        config,
        only=None if topics is None else set(topics),
        units=units,
        quiet_seconds=quiet_seconds,
        fenced=fenced,
    )
    if units is None:
        snapshot = snapshot.model_copy(update={"connectors": None})
    if topics is not None and snapshot.source_groups:
        everything = clients.source.topics()
        reading = clients.source.committed_offsets(
            [group.group for group in snapshot.source_groups],
            [*config.select_topics(everything), *promoted],
        )
        moving = set(topics) | set(promoted)
        staying = [g for g in snapshot.source_groups if set(reading.get(g.group, {})) <= moving]
        snapshot = snapshot.model_copy(update={"source_groups": staying})
    report = build_report(snapshot, config, source=source)
    return CutoverCheck(report, blockers(clients, report, settled=units is not None))


def blockers(
    clients: Clients, report: MigrationReport, *, settled: bool, copy: str = "copy"
) -> list[str]:
    """What stands in a step's way: the report's reasons, and a copy not recorded yet.

    With `settled`, MirrorMaker must have committed (as copied) the last record of every
    partition: a node that stops hands its tasks to others, which copy again what follows
    their committed offsets.

    Raises:
        ClusterUnreachableError: if a cluster does not answer.
    """
    found = list(report.reasons)
    if not report.problems and settled:
        unsettled = unsettled_topics(clients, {t.topic: t.partitions for t in report.topics})
        if unsettled:
            found.append(
                f"MirrorMaker has not yet recorded the {copy} of the last records of "
                f"{list_names(unsettled)} (it does every 10 s)"
            )
    return found


def _ends(offsets: Mapping[str, TopicOffsets]) -> dict[str, list[int]]:
    return {topic: list(found.end) for topic, found in sorted(offsets.items())}


def promote_with(
    clients: Clients,
    config: MigrationConfig,
    *,
    source: str,
    topics: str | None = None,
    waves: Sequence[Wave] = (),
    units: Mapping[str, UnitState] | None = None,
    fenced: Collection[str] = (),
    force: bool = False,
    by: str = "",
    prepare: Callable[[bool], None] | None = None,
    quiet_seconds: float = QUIET_SECONDS,
    access: ClientAccess | None = None,
) -> Promotion:
    """Check a wave, then switch its groups and say what to record; the host does the rest.

    Args:
        clients: the clients of both clusters.
        config: the migration options.
        source: how messages name the source.
        topics: what `finish-migration topics=...` chose (`wave_topics`); None: all that remain.
        waves: the waves promoted before in this migration.
        units: each unit's MirrorMaker state; None for a stopped migration.
        fenced: the fenced target topics (the last wave needs the source to show them all).
        force: go on although the check found something in the way.
        by: the unit that promotes the wave, for its record.
        prepare: called once the wave may go on and before anything changes, with whether it
            is the last wave: the host claims the step there (and stops MirrorMaker before the
            last); what it raises stops the wave.
        quiet_seconds: how long the source must take no write to the wave's topics.
        access: the host's client users: each switch names those that resume its group.

    Raises:
        CutoverRefusedError: if the wave may not happen; nothing was changed.
        ClusterUnreachableError: if a cluster does not answer.
    """
    earlier = promoted_ends(waves, config)
    config = config.model_copy(update={"promoted": frozenset(earlier)})
    remaining = config.select_topics(clients.source.topics())
    chosen = wave_topics(remaining, topics, earlier)
    final = set(chosen) == set(remaining)
    check = check_cutover(
        clients,
        config,
        units,
        source=source,
        topics=None if final else chosen,
        promoted=earlier,
        fenced=fenced,
        quiet_seconds=quiet_seconds,
    )
    if check.blockers and not force:
        raise CutoverRefusedError(check.refusal())
    checked = {topic.topic: topic.source_end_offset for topic in check.report.topics}
    source_ends = clients.source.offsets({t.topic: t.partitions for t in check.report.topics})
    written = {
        topic: sum(offsets.end) - checked[topic]
        for topic, offsets in source_ends.items()
        if sum(offsets.end) != checked[topic]
    }
    if written and not force:
        raise CutoverRefusedError(
            f"the source was written since the check: {list_names(sorted(written))}; nothing "
            "was changed: stop its producers and run finish-migration again"
        )
    names = {config.target_topic(topic) for topic in chosen}
    existing = clients.target.topics()
    target_ends = clients.target.offsets({n: existing[n] for n in sorted(names) if n in existing})
    if prepare is not None:
        prepare(final)
    switches = _switch.switch_groups_with(
        clients, config, wave=chosen, promoted=earlier, access=access
    )
    wave = Wave(
        number=len(waves) + 1,
        at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        by=by,
        topics=chosen,
        target_topics=sorted(names),
        records=sum(t.source_records for t in check.report.topics if t.topic in chosen),
        groups=[switch.group for switch in switches if switch.switched],
        left=[switch.group for switch in switches if not switch.switched],
        source_end_offsets=_ends(source_ends),
        target_end_offsets=_ends(target_ends),
    )
    return Promotion(wave, switches, check, sorted(set(remaining) - set(chosen)))


def promote(
    source: KafkaCluster,
    target: KafkaCluster,
    config: MigrationConfig,
    topics: str | None = None,
    *,
    waves: Sequence[Wave] = (),
    units: Mapping[str, UnitState] | None = None,
    force: bool = False,
    prepare: Callable[[bool], None] | None = None,
    quiet_seconds: float = QUIET_SECONDS,
    timeout: float = CLIENT_TIMEOUT,
) -> Promotion:
    """Promote a wave as `finish-migration topics=...` does, outside a charm (see `promote_with`).

    `prepare` is called before anything changes, with whether the wave is the last: stop
    MirrorMaker there before the last, as `finish-migration` does. The caller then records the
    wave, restarts MirrorMaker with its topics promoted (`MigrationConfig.promoted`), denies
    MirrorMaker's user WRITE on them, and lifts their fence.

    Raises:
        CutoverRefusedError: if the wave may not happen; nothing was changed.
        ClusterUnreachableError: if a cluster does not answer.
    """
    name = source.name if isinstance(source, SourceCluster) else source.bootstrap
    clients = Clients.of(source, target, timeout)
    try:
        return promote_with(
            clients,
            config,
            source=name,
            topics=topics,
            waves=waves,
            units=units,
            force=force,
            prepare=prepare,
            quiet_seconds=quiet_seconds,
        )
    finally:
        clients.close()


def finished_migration(
    source: str, waves: Sequence[Wave], switches: Sequence[GroupSwitch]
) -> FinishedMigration:
    """What the finished migration records: now, every wave's topics, the switched groups."""
    return FinishedMigration(
        at=waves[-1].at if waves else datetime.now(timezone.utc).isoformat(timespec="seconds"),
        source=source,
        topics=sorted({topic for wave in waves for topic in wave.target_topics}),
        records=sum(wave.records for wave in waves),
        groups=sorted({group for wave in waves for group in wave.groups}),
        waves=len(waves),
    )


def groups_results(switches: Sequence[GroupSwitch]) -> dict[str, str]:
    """The switched groups as action results: the sums, each group, and the table."""
    return {
        "re-read": str(sum(switch.re_read for switch in switches)),
        "skip": str(sum(switch.skip for switch in switches)),
        "groups": json.dumps(
            [
                {**switch.totals(), "partitions": [p.as_json() for p in switch.partitions]}
                for switch in switches
            ]
        ),
        "table": groups_table(switches),
    }


def finish_results(
    unit: str,
    finished: FinishedMigration,
    *,
    fenced: Collection[str],
    promotion: Promotion,
    waves: Sequence[Wave],
) -> dict[str, str]:
    """`finish-migration`'s results when it finished the migration (see `charmcraft.yaml`)."""
    results = {
        "state": "finished",
        "source": finished.source,
        "finished-at": finished.at,
        "mirrormaker": f"stopped on {unit}; every other unit stops it as it sees the request",
        "fence": f"lifted from {plural(len(fenced), 'topic')}" if fenced else "none was on",
        "wave": str(promotion.wave.number),
        "left": json.dumps(promotion.wave.left),
        "topics": json.dumps(promotion.wave.topics),
        "waves": json.dumps([wave.model_dump(mode="json") for wave in waves]),
        **groups_results(promotion.switches),
        "summary": finished.summary(),
    }
    if promotion.check.blockers:
        results["forced"] = json.dumps(list(promotion.check.blockers))
    return results


def wave_results(unit: str, promotion: Promotion) -> dict[str, str]:
    """`finish-migration topics=...`'s results when it promoted a wave (see `charmcraft.yaml`)."""
    wave, remaining = promotion.wave, promotion.remaining
    results = {
        "state": "running",
        "wave": str(wave.number),
        "promoted-at": wave.at,
        "topics": json.dumps(wave.topics),
        "remaining-topics": json.dumps(list(remaining)),
        "mirrormaker": (
            f"restarted on {unit} without the promoted topics; every other unit does as it sees "
            "the wave, and none may write them any more"
        ),
        "fence": f"lifted from {plural(len(wave.target_topics), 'topic')}",
        "left": json.dumps(wave.left),
        **groups_results(promotion.switches),
        "summary": (
            f"{wave.summary()}; {plural(len(remaining), 'topic')} left to migrate"
            + (f"; left for a later wave: {', '.join(wave.left)}" if wave.left else "")
        ),
        "end-offsets": json.dumps(
            {"source": wave.source_end_offsets, "target": wave.target_end_offsets}
        ),
    }
    if promotion.check.blockers:
        results["forced"] = json.dumps(list(promotion.check.blockers))
    return results


def clean_up(clients: Clients, migrated: Collection[str]) -> str:
    """Delete MirrorMaker's own topics on the target, the claims too; what, or why not."""
    try:
        claims = [t for t in clients.target_logs.topics() if t.startswith(_CLAIM_PREFIX)]
        deleted = clients.target_logs.delete_topics([*internal_topics(migrated), *claims])
    except ClusterUnreachableError as error:
        return f"MirrorMaker's topics were not deleted: {error.message}"
    return f"deleted {', '.join(deleted)}" if deleted else "none of MirrorMaker's topics left"


class CutoverActions(ops.Object):
    """`switch-group` and `finish-migration` (a wave, or the last one), from any unit."""

    def __init__(self, migration: Migration):
        super().__init__(migration, "cutover")
        self.migration = migration
        charm = migration.charm
        charm.framework.observe(charm.on["switch-group"].action, self._on_switch_group)
        charm.framework.observe(charm.on["finish-migration"].action, self._on_finish_migration)

    def _on_switch_group(self, event: ops.ActionEvent) -> None:
        migration = self.migration
        group = str(event.params.get("group") or "")
        dry_run = bool(event.params.get("dry-run", False))
        if not group:
            event.fail("name the consumer group to switch: group=NAME")
            return
        try:
            settings = migration.settings()
            clients = Clients.of(settings.source, settings.target, CLIENT_TIMEOUT)
            promoted = promoted_ends(migration.peers.newest().waves, settings.config)
            try:
                [switch] = _switch.switch_groups_with(
                    clients,
                    settings.config,
                    [group],
                    dry_run=dry_run,
                    promoted=promoted,
                    access=migration.clients(),
                )
            finally:
                clients.close()
        except SwitchRefusedError as error:
            event.fail(f"{error.message}; nothing was changed")
            return
        except MigrationError as error:
            event.fail(error.message)
            return
        event.set_results(switch_results(switch, dry_run=dry_run))

    def _on_finish_migration(self, event: ops.ActionEvent) -> None:
        migration = self.migration
        if (finished := migration.peers.finished()) is not None:
            event.fail(f"{finished.summary()}; it finishes once, nothing was changed")
            return
        if migration.peers.newest().seq == 0 or migration.peers.relation is None:
            event.fail("no migration to finish: start-migration was never run; nothing changed")
            return
        if (settings := migration.settings_for(event)) is None:
            return
        clients = Clients.of(settings.source, settings.target, CLIENT_TIMEOUT)
        try:
            self._finish(event, settings, clients)
        except CutoverRefusedError as error:
            event.fail(error.message)
        except ClusterUnreachableError as error:
            migration.reconcile()
            event.fail(
                f"{error.message}: the migration is not finished and no wave was promoted, "
                "MirrorMaker runs as requested before; run finish-migration again"
            )
        finally:
            clients.close()

    def _claim(self, clients: Clients, settings: MirrorMakerSettings, final: bool) -> None:
        """Claim this step of the cutover (`claim`); stop MirrorMaker before the last.

        Raises:
            CutoverRefusedError: if another unit claimed the step.
            ClusterUnreachableError: if the target does not answer.
        """
        newest = self.migration.peers.newest()
        unit, rf = self.model.unit.name, settings.replication_factor
        claim(clients, newest.migration, len(newest.waves) + 1, unit, rf)
        if final:
            self.migration.service.stop()

    def _finish(
        self, event: ops.ActionEvent, settings: MirrorMakerSettings, clients: Clients
    ) -> None:
        """Promote a wave, or the last one: check, claim, switch the groups, record, lift.

        A stopped migration is judged by its data alone: no MirrorMaker runs to be checked.

        Raises:
            CutoverRefusedError: if the wave may not happen; nothing was changed.
            ClusterUnreachableError: if a cluster does not answer; nothing is recorded then.
        """
        migration = self.migration
        newest = migration.peers.newest()
        fenced = migration.fenced_topics()
        unit = self.model.unit.name
        promotion = promote_with(
            clients,
            settings.config,
            source=settings.source.name,
            topics=event.params.get("topics") or None,
            waves=newest.waves,
            units=None if newest.state == "stopped" else migration.live_unit_states(),
            fenced=fenced.known(),
            force=bool(event.params.get("force", False)),
            by=unit,
            prepare=lambda final: self._claim(clients, settings, final),
            access=migration.clients(),
        )
        waves = [*newest.waves, promotion.wave]
        if not promotion.final:
            migration.peers.record_wave(promotion.wave)
            migration.reconcile()
            migration.on.fence_changed.emit()
            event.set_results(wave_results(unit, promotion))
            return
        finished = finished_migration(settings.source.name, waves, promotion.switches)
        migration.peers.record_wave(promotion.wave, finished=finished)
        migration.reconcile()
        migration.on.fence_changed.emit()
        results = finish_results(
            unit, finished, fenced=fenced.known(), promotion=promotion, waves=waves
        )
        if event.params.get("cleanup", False):
            results["cleanup"] = clean_up(clients, finished.topics)
            results["copied-acls"] = self._remove_copied_acls(clients)
        event.set_results(results)

    def _remove_copied_acls(self, clients: Clients) -> str:
        """Remove the ACLs copied for the host's client users: from the record, then the target."""
        migration = self.migration
        removed = migration.copies.remove(migration.peers.newest().seq)
        if not removed:
            return "none was copied"
        try:
            clients.target.delete_acls(removed)
        except ClusterUnreachableError as error:
            return (
                f"{len(removed)} no longer granted; MirrorMaker's user did not delete them "
                f"({error.message}): the host revokes them from its users"
            )
        return f"removed {len(removed)}"
