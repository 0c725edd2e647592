# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The host charm's object: it routes the host's reconcile and the actions to the modules.

Reading Juju is done by `_source` (the source cluster), `_peers` (requests and unit states),
`_fence` (the fenced topics), `_summary` (the stored status), `_acls` (the copied ACLs' record)
and `_restarts` (the restarts of failed tasks); the work by `_service` (MirrorMaker in its
container), `_queries` and `_report` (migration-status), `_access` (its access report),
`_restarts` (restarting failed tasks), `_preflight` (start-migration's preflight, dry-run or
not), `_switch` (switch-group) and `_cutover` (finish-migration); `_failback_host` handles
start-failback and finish-failback itself. The host's client users and the operator's map of
their identities come from the host (`clients`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence

import ops
from pydantic import ValidationError

from . import _cutover, _queries, _restarts, _switch
from ._access import access_report, access_results
from ._acls import AclCopies, copy_acls
from ._clients import CLIENT_TIMEOUT, STATUS_TIMEOUT
from ._connectors import ConnectorState
from ._display import report_results, switch_results
from ._errors import (
    ClusterUnreachableError,
    MigrationError,
    NotReadyError,
    PreflightError,
    SourceGoneError,
)
from ._failback_host import Failbacks
from ._fence import Fence, FencedTopics, TopicSelection
from ._identities import ClientAccess
from ._options import MigrationConfig, MirrorMakerSettings, MirrorMakerWorkload, TargetCluster
from ._peers import PeerData, RequestedState, UnitState, exactly_once_for
from ._preflight import Preflight, dry_run, preflight, prepare
from ._queries import migration_report
from ._report import QUIET_SECONDS, Shown, unknown_results
from ._restarts import Restarts
from ._rights import AclBinding
from ._service import MirrorMakerService
from ._source import SourceReader
from ._summary import StatusSummary
from ._switch import Clients, SwitchRefusedError
from ._text import clip, plural

logger = logging.getLogger(__name__)


class _FenceChangedEvent(ops.EventBase):
    """The target topics fenced from client writers may have changed: grant the clients again."""


class _MigrationEvents(ops.ObjectEvents):
    """What the migration tells its host."""

    fence_changed = ops.EventSource(_FenceChangedEvent)


class Migration(ops.Object):
    """The migration of a source cluster into the host charm's cluster.

    It handles `start-migration`, `stop-migration`, `migration-status`, `switch-group`,
    `finish-migration` and `restart-mirrormaker` itself, and requests credentials on the
    source relation. The host calls `reconcile()` from its reconcile and shows `status()` in
    collect-status. While MirrorMaker runs, `reconcile()` also queries both clusters (bounded
    by `STATUS_TIMEOUT` per query) and keeps the summary in a stored state, so `status()` never
    queries a cluster. On the leader it also restarts MirrorMaker's failed connectors and
    tasks, with backoff (`_restarts`).

    While a migration is requested and not finished, `fenced_topics()` says which target topics
    no client of the host may write, create, delete or alter: the host grants its client users'
    ACLs without those rights, again on `on.fence_changed`, and on the leader then calls
    `fence_applied`. MirrorMaker starts, or takes a new topic selection, only once the leader
    has done so. `promoted_topics()` are the topics MirrorMaker's user must not write any more.
    With `mirrormaker-sync-topic-acls` the leader copies the topic ACLs of the source users
    mapped to the host's client users; the host keeps `copied_acls()` in those users' grants
    until `finish-migration cleanup=true` removes them.
    """

    on = _MigrationEvents()  # pyright: ignore[reportAssignmentType]
    _stored = ops.StoredState()

    def __init__(
        self,
        charm: ops.CharmBase,
        *,
        target: Callable[[], TargetCluster | None],
        unit_host: Callable[[], str],
        container: str = "kafka",
        peer_relation: str = "cluster",
        source_relation: str = "migration-source",
        workload: MirrorMakerWorkload | None = None,
        clients: Callable[[], ClientAccess] = ClientAccess,
    ):
        """Wire the migration into the host charm.

        Args:
            charm: the host charm.
            target: the local cluster as MirrorMaker's user reaches it; `None` until it serves.
            unit_host: the address of this unit the other units reach (its MirrorMaker REST).
            container: the workload container that has Kafka's `bin/connect-mirror-maker.sh`.
            peer_relation: the host's peer relation.
            source_relation: the `kafka_client` requirer endpoint for a Juju-managed source.
            workload: paths, user, ports and heap of MirrorMaker; the rock's by default.
            clients: the host's client users and the operator's map of their identities on
                the source; cheap, no network (none by default).
        """
        super().__init__(charm, "mirrormaker-migration")
        self.summary = StatusSummary(self._stored)
        # The `restart-mirrormaker all=true` request this unit followed last (-1: none seen yet).
        self._stored.set_default(followed_restart=-1.0)
        # The status queries run once per hook, however often the host reconciles in it.
        self._refreshed = False
        self.charm = charm
        self._target = target
        self._unit_host = unit_host
        self.service = MirrorMakerService(charm.unit.get_container(container), workload)
        self.peers = PeerData(charm.model, peer_relation)
        self.fence = Fence(charm.model, self.peers)
        self.copies = AclCopies(self.peers)
        self.clients = clients
        self.restarts = Restarts(self.peers)
        self.sources = SourceReader(charm, source_relation)
        self.requirer = self.sources.requirer
        self.failback = Failbacks(self, self.service.container, self.service.workload)
        framework = charm.framework
        framework.observe(charm.on["start-migration"].action, self._on_start_migration)
        framework.observe(charm.on["stop-migration"].action, self._on_stop_migration)
        framework.observe(charm.on["migration-status"].action, self._on_migration_status)
        framework.observe(charm.on["switch-group"].action, self._on_switch_group)
        framework.observe(charm.on["finish-migration"].action, self._on_finish_migration)
        framework.observe(charm.on["restart-mirrormaker"].action, self._on_restart_mirrormaker)

    # Reading the model -------------------------------------------------------------------------

    def _target_cluster(self) -> TargetCluster | None:
        """The host's `target`, or None while it cannot describe the cluster yet.

        A host whose `target` builds a `TargetCluster` before it has every value (an empty
        password, say) is waiting, not broken: the validation error is logged, not raised.
        """
        try:
            return self._target()
        except ValidationError as error:
            logger.info("this cluster is not described yet: %s", error.error_count())
            return None

    @property
    def requested_state(self) -> RequestedState:
        """Whether the operator last asked for the migration to run, to stop, or finished it."""
        return self.peers.newest().state

    def fenced_topics(self) -> FencedTopics:
        """The target topics no client of the host may write now (see `_fence`).

        Computed from the options and peer data: it queries no cluster. Topics failed back
        are fenced too (`_failback_host`).
        """
        return self.failback.fenced(self.fence.topics())

    def fence_applied(self, fenced: FencedTopics) -> None:
        """On the leader, once the host granted every client's ACLs with `fenced`.

        MirrorMaker starts on a unit (or takes a new topic selection) only once the leader has
        applied a fence that covers the selection. Elsewhere it does nothing.
        """
        self.fence.applied(fenced)

    def promoted_topics(self) -> frozenset[str]:
        """The target topics MirrorMaker's user must never write again in this migration.

        Those promoted in waves, and every migrated topic once finished: a MirrorMaker node that
        has not seen the wave yet is refused by the target instead of copying into them.
        """
        newest = self.peers.newest()
        finished = set(newest.finished.topics) if newest.finished else set()
        return frozenset(newest.promoted_targets | finished)

    def copied_acls(self) -> list[AclBinding]:
        """The ACLs the leader copied for the host's client users and that are not removed.

        A host that makes its users' ACLs exactly its grants keeps these in them.
        """
        return self.copies.listed()

    def _client_results(self) -> dict[str, str]:
        """The operator's map and the copied ACLs, as `migration-status` results."""
        return {
            "client-identities": json.dumps(self.clients().as_json()),
            "copied-acls": json.dumps([acl.as_json() for acl in self.copied_acls()]),
        }

    def settings(self) -> MirrorMakerSettings:
        """This unit's MirrorMaker settings from config, source, target and peers.

        Raises:
            MigrationError: saying what is wrong or missing.
        """
        newest = self.peers.newest()
        config = MigrationConfig.from_options(self.model.config).model_copy(
            update={"promoted": newest.promoted}
        )
        running = newest.state == "running"
        source = self.sources.source(config, running=running)
        if source is None and running:
            raise SourceGoneError(
                f"the source is gone: the {self.sources.relation_name} relation was removed or "
                "the mirrormaker-source-* options unset"
            )
        if source is None:
            raise self.sources.no_source()
        target = self._target_cluster()
        if target is None:
            raise NotReadyError("waiting for this cluster to serve before migrating into it")
        states = self.peers.unit_states()
        states.pop(self.model.unit, None)
        return MirrorMakerSettings(
            source=source,
            target=target,
            config=config,
            unit_host=self._unit_host(),
            units=self.peers.units(),
            exactly_once_mode=exactly_once_for(config.exactly_once, states.values()),
            workload=self.service.workload,
            record_bytes=self.peers.newest().record_bytes,
        )

    def _live_unit_states(self) -> dict[str, UnitState]:
        """Every unit's published MirrorMaker state, this unit's read from Pebble now."""
        can_connect = self.service.container.can_connect()
        return self.peers.live_unit_states(self.service.state() if can_connect else None)

    # Reconcile and status ----------------------------------------------------------------------

    def reconcile(self) -> None:
        """Bring this unit's MirrorMaker to the newest request, and publish its state.

        A running migration whose options turn invalid keeps running as it was; `status()` says
        what to fix. A source that is gone (no source, credentials revoked or removed) stops it:
        this unit records a stop that every unit follows, with the reason `status()` shows.
        The copied data and MirrorMaker's offsets stay; `start-migration` resumes. MirrorMaker
        starts, or takes a new topic selection, once the leader has fenced that selection;
        until then a running MirrorMaker keeps the selection it has.
        """
        if not self.service.container.can_connect():
            return
        self.failback.reconcile()  # first: a copy back that ends stops before MirrorMaker
        request = self.peers.follow_newest()
        self.copies.prune()
        settings = None
        if request.state != "running":
            self.service.stop()
            self.fence.publish_running(None)
        else:
            try:
                settings = self.settings()
            except SourceGoneError as error:
                logger.warning("stopping the migration: %s", error.message)
                self.service.stop()
                self.fence.publish_running(None)
                if self.peers.relation is not None:
                    self.peers.record("stopped", reason=error.message)
            except MigrationError as error:
                logger.info("migration not applied: %s", error.message)
            else:
                self._run(settings)
        self.peers.publish_state(
            self.service.state(), settings.exactly_once_support if settings else None
        )
        self._refresh_summary(settings)

    def _run(self, settings: MirrorMakerSettings) -> None:
        """Run MirrorMaker with these settings once the leader fenced their selection.

        Meanwhile a MirrorMaker that runs keeps its files (and its selection), and still
        follows a request to restart every unit's.
        """
        selection = TopicSelection.of(settings.config)
        waiting = self.fence.waits_for(selection)
        try:
            if waiting:
                logger.info("MirrorMaker waits for the leader to fence its topic selection")
            else:
                self.service.run(settings)
            self._follow_restart_request()
        except ops.pebble.ChangeError:
            logger.warning("MirrorMaker did not start; Pebble retries it")
        if not waiting:
            self.fence.publish_running(selection)
            self._copy_topic_acls(settings)

    def _copy_topic_acls(self, settings: MirrorMakerSettings) -> None:
        """On the leader, with `mirrormaker-sync-topic-acls`: copy the mapped users' topic ACLs."""
        if not settings.config.sync_topic_acls or not self.model.unit.is_leader():
            return
        try:
            copied = copy_acls(
                settings.source, settings.target, settings.config, self.clients(), STATUS_TIMEOUT
            )
        except ClusterUnreachableError as error:
            logger.warning("topic ACLs not copied: %s", error.message)
            return
        self.copies.record(copied, self.peers.newest().seq)
        logger.info("copied %d topic ACLs from %s", len(copied), settings.source.name)

    def _refresh_summary(self, settings: MirrorMakerSettings | None) -> None:
        """Refresh the status summary once per hook while this unit runs MirrorMaker.

        The target topics the source selects are published for the fence.
        """
        if settings is None or self.service.state() != "active":
            self.summary.clear()
            return
        if self._refreshed:
            return
        self._refreshed = True
        selected = self.summary.refresh(
            settings,
            self._live_unit_states(),
            self.fenced_topics().known(),
            lambda states: self._watch(settings, states),
        )
        self.fence.publish(selected or ())

    def _watch(
        self, settings: MirrorMakerSettings, states: Sequence[ConnectorState]
    ) -> Shown | None:
        """How failed connectors and tasks show; on the leader, restart them when due."""
        if not any(state.state == "FAILED" for state in states):
            return None
        log = self.restarts.log()
        shown, after = _restarts.watch(
            settings.target,
            states,
            log,
            self.restarts.policy,
            _queries.now(),
            act=self.model.unit.is_leader(),
        )
        if after != log:
            self.restarts.record(after)
        return shown

    def _follow_restart_request(self) -> None:
        """Restart MirrorMaker once for a `restart-mirrormaker all=true` this unit has not seen.

        A unit that never looked before (a new unit) takes the newest request as seen.
        """
        requested = self.restarts.log().everyone
        followed = self._stored.followed_restart
        self._stored.followed_restart = max(requested, followed)
        if 0 <= followed < requested and self.service.restart():
            logger.info("restarted MirrorMaker, as restart-mirrormaker all=true asked")

    def status(self) -> ops.StatusBase | None:
        """The status to show for the migration, or `None` when there is nothing to say."""
        if (failback := self.failback.status()) is not None:
            return failback
        newest = self.peers.newest()
        if newest.state == "finished":
            return None
        if newest.state == "stopped" and newest.reason:
            return ops.BlockedStatus(
                f"MirrorMaker stopped: {newest.reason} (copied data and offsets stay; "
                "start-migration resumes, stop-migration clears this)"
            )
        running = newest.state == "running"
        try:
            config = MigrationConfig.from_options(self.model.config)
            source = self.sources.source(config, running=running)
        except NotReadyError as error:
            return error.status() if running else None
        except MigrationError as error:
            return error.status()
        fence = "; ".join(text for text in (self._waves_text(), self.fence.text()) if text)
        if not running:
            return ops.ActiveStatus(clip(f"migration stopped; {fence}")) if fence else None
        if source is None:
            return self.sources.no_source().status()
        if self._target_cluster() is None:
            return ops.WaitingStatus(f"waiting for this cluster to migrate from {source.name}")
        if not self.service.container.can_connect():
            return None
        if self.service.state() != "active":
            return self._starting(config, source.name)
        if (shown := self.summary.shown()) is None:
            return ops.ActiveStatus(f"migrating from {source.name}")
        return self._summary_status(shown, fence)

    def _summary_status(self, shown: Shown, fence: str) -> ops.StatusBase:
        """The stored summary as a status; an active one counts today's restarts and the fence."""
        kind, message = shown
        if kind == "blocked":
            return ops.BlockedStatus(message)
        if kind == "maintenance":
            return ops.MaintenanceStatus(message)
        log = self.restarts.log()
        if log.times and (restarts := len(log.today(_queries.now()))):
            message += f"; {plural(restarts, 'MirrorMaker restart')} today"
        return ops.ActiveStatus(clip(f"{message}; {fence}" if fence else message))

    def _waves_text(self) -> str:
        """The waves promoted so far, as the status shows them, or ""."""
        newest = self.peers.newest()
        if not newest.waves:
            return ""
        promoted = plural(len(newest.promoted), "topic")
        return f"{promoted} promoted in {plural(len(newest.waves), 'wave')}"

    def _starting(self, config: MigrationConfig, source: str) -> ops.StatusBase:
        """The status while MirrorMaker does not run yet: it starts, or waits for the fence."""
        if self.fence.waits_for(TopicSelection.of(config)):
            return ops.WaitingStatus(
                "waiting for the leader to fence the migrated topics before MirrorMaker starts "
                f"to migrate from {source}"
            )
        return ops.MaintenanceStatus(f"starting MirrorMaker to migrate from {source}")

    # Actions -----------------------------------------------------------------------------------

    def _settings_for(self, event: ops.ActionEvent) -> MirrorMakerSettings | None:
        """This unit's settings, or None with the action failed saying what is wrong."""
        try:
            return self.settings()
        except MigrationError as error:
            event.fail(error.message)
            return None

    def _on_start_migration(self, event: ops.ActionEvent) -> None:
        if event.params.get("dry-run", False):
            try:
                event.set_results(dry_run(self.settings()))
            except MigrationError as error:
                event.fail(error.message)
            return
        if (refusal := self.failback.refuses_start()) is not None:
            event.fail(refusal)
            return
        finished = self.peers.finished()
        if finished is not None and not event.params.get("force", False):
            event.fail(
                f"{finished.summary()}: records written to this cluster since then would be "
                "mixed with a fresh copy of the source. Nothing was changed; run start-migration "
                "force=true to migrate again all the same"
            )
            return
        force = bool(event.params.get("force", False))
        try:
            settings = self.settings()
            found = self._preflight(settings, force=force)
            recorded = self.peers.record("running", record_bytes=found.record_bytes)
        except MigrationError as error:
            event.fail(error.message)
            return
        if recorded:
            self.fence.publish_selection(settings)
        # The host grants its clients' ACLs with the fence (and, on the leader, says so) before
        # this unit's MirrorMaker may start.
        self.on.fence_changed.emit()
        self.reconcile()
        name = settings.source.name
        this_unit = self.service.state()
        message = (
            f"the migration from {name} was already requested"
            if not recorded
            else f"migrating from {name}: MirrorMaker runs on {self.model.unit.name}, and every "
            "other unit starts it as it sees the request"
            if this_unit == "active"
            else f"migrating from {name}: every unit starts MirrorMaker once the leader has "
            "fenced the migrated topics"
        )
        event.set_results(
            {
                "state": "running",
                "source": name,
                "this-unit": this_unit,
                "fenced-topics": json.dumps(self.fenced_topics().known()),
                "message": message,
            }
        )

    def _preflight(self, settings: MirrorMakerSettings, *, force: bool) -> Preflight:
        """The preflight of a real start, and its preparations on the target.

        Raises:
            PreflightError: if it found what would fail the copy, or a cluster did not answer,
                and the start is not forced; nothing was changed then.
            ClusterUnreachableError: if the target refused a preparation.
        """
        try:
            found, _ = preflight(settings)
        except ClusterUnreachableError as error:
            if not force:
                raise PreflightError(
                    f"{error.message}: the preflight could not run; nothing was started (run "
                    "start-migration force=true to start without it)"
                ) from None
            logger.warning("starting without the preflight: %s", error.message)
            return Preflight()
        if found.blockers and not force:
            lines = "; ".join(finding.text for finding in found.blockers)
            raise PreflightError(
                f"the preflight found what would fail the copy: {lines}. Nothing was started; "
                "fix it, or run start-migration force=true to start all the same"
            )
        prepare(settings, found)
        return found

    def _on_stop_migration(self, event: ops.ActionEvent) -> None:
        if (finished := self.peers.finished()) is not None:
            event.set_results(
                {"state": "finished", "message": f"{finished.summary()}; nothing to stop"}
            )
            return
        try:
            recorded = self.peers.record("stopped")
        except MigrationError as error:
            event.fail(error.message)
            return
        self.reconcile()
        event.set_results(
            {
                "state": "stopped",
                "this-unit": self.service.state(),
                "message": (
                    f"MirrorMaker stopped on {self.model.unit.name}; every other unit stops it "
                    "as it sees the request; migrated data stays"
                    if recorded
                    else "the migration was already stopped"
                ),
            }
        )

    def _on_migration_status(self, event: ops.ActionEvent) -> None:
        if event.params.get("format") == "access":
            self._access_report(event)
            return
        topic = event.params.get("topic") or None
        quiet_seconds = float(event.params.get("quiet-seconds", QUIET_SECONDS))
        units = self._live_unit_states()
        if (finished := self.peers.finished()) is not None:
            summary = finished.summary()
            event.set_results(
                {
                    "requested": "finished",
                    "summary": summary,
                    "ready-for-cutover": "false",
                    "reasons": json.dumps([summary]),
                    "finished": json.dumps(finished.model_dump(mode="json")),
                    **_cutover.waves_results(self.peers.newest().waves),
                    **self.fence.results(),
                    **self._client_results(),
                    **self.failback.results(quiet_seconds),
                }
            )
            return
        log = self.restarts.log()
        restarts = log.results(_queries.now() if log.times else 0.0, self.restarts.policy)
        requested = {
            "requested": self.requested_state,
            "restarts": json.dumps(restarts),
            **_cutover.waves_results(self.peers.newest().waves),
        }
        try:
            settings = self.settings()
        except MigrationError as error:
            results = unknown_results(error.message, units)
            event.set_results(
                {
                    **requested,
                    **results,
                    **self.fence.results(),
                    **self._client_results(),
                    **self.failback.results(quiet_seconds),
                }
            )
            return
        report = migration_report(
            settings.source,
            settings.target,
            settings.config,
            units=units,
            lag_threshold=int(event.params.get("lag-threshold", 0)),
            topic=topic,
            quiet_seconds=quiet_seconds,
            fenced=self.fenced_topics().known(),
        )
        if topic and not report.topics and not report.problems:
            event.fail(
                f"topic {topic} is not migrated: the source has no such topic, or the "
                "mirrormaker-topics options do not select it"
            )
            return
        results = report_results(report, table=event.params.get("format") == "table")
        event.set_results(
            {
                **requested,
                **results,
                **self.fence.results(),
                **self._client_results(),
                **self.failback.results(quiet_seconds),
            }
        )

    def _access_report(self, event: ops.ActionEvent) -> None:
        """`migration-status format=access`: each source user's rights beside its client user's."""
        try:
            settings = self.settings()
            report = access_report(
                settings.source,
                settings.config,
                self.clients(),
                target_user=settings.target.username,
                copied=self.copied_acls(),
            )
        except MigrationError as error:
            event.fail(error.message)
            return
        event.set_results(
            {"requested": self.requested_state, **access_results(report), **self._client_results()}
        )

    def _on_switch_group(self, event: ops.ActionEvent) -> None:
        group = str(event.params.get("group") or "")
        dry_run = bool(event.params.get("dry-run", False))
        if not group:
            event.fail("name the consumer group to switch: group=NAME")
            return
        try:
            settings = self.settings()
            clients = Clients.of(settings.source, settings.target, CLIENT_TIMEOUT)
            promoted = _cutover.promoted_ends(self.peers.newest().waves, settings.config)
            try:
                [switch] = _switch.switch_groups_with(
                    clients,
                    settings.config,
                    [group],
                    dry_run=dry_run,
                    promoted=promoted,
                    access=self.clients(),
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
        if (finished := self.peers.finished()) is not None:
            event.fail(f"{finished.summary()}; it finishes once, nothing was changed")
            return
        if self.peers.newest().seq == 0 or self.peers.relation is None:
            event.fail("no migration to finish: start-migration was never run; nothing changed")
            return
        if (settings := self._settings_for(event)) is None:
            return
        clients = Clients.of(settings.source, settings.target, CLIENT_TIMEOUT)
        try:
            self._finish(event, settings, clients)
        except _cutover.CutoverRefusedError as error:
            event.fail(error.message)
        except ClusterUnreachableError as error:
            self.reconcile()
            event.fail(
                f"{error.message}: the migration is not finished and no wave was promoted, "
                "MirrorMaker runs as requested before; run finish-migration again"
            )
        finally:
            clients.close()

    def _claim(self, clients: Clients, settings: MirrorMakerSettings, final: bool) -> None:
        """Claim this step of the cutover (`_cutover.claim`); stop MirrorMaker before the last.

        Raises:
            CutoverRefusedError: if another unit claimed the step.
            ClusterUnreachableError: if the target does not answer.
        """
        newest = self.peers.newest()
        unit, rf = self.model.unit.name, settings.replication_factor
        _cutover.claim(clients, newest.migration, len(newest.waves) + 1, unit, rf)
        if final:
            self.service.stop()

    def _finish(
        self, event: ops.ActionEvent, settings: MirrorMakerSettings, clients: Clients
    ) -> None:
        """Promote a wave, or the last one: check, claim, switch the groups, record, lift.

        A stopped migration is judged by its data alone: no MirrorMaker runs to be checked.

        Raises:
            CutoverRefusedError: if the wave may not happen; nothing was changed.
            ClusterUnreachableError: if a cluster does not answer; nothing is recorded then.
        """
        newest = self.peers.newest()
        fenced = self.fenced_topics()
        promotion = _cutover.promote_with(
            clients,
            settings.config,
            source=settings.source.name,
            topics=event.params.get("topics") or None,
            waves=newest.waves,
            units=None if newest.state == "stopped" else self._live_unit_states(),
            fenced=fenced.known(),
            force=bool(event.params.get("force", False)),
            by=self.model.unit.name,
            prepare=lambda final: self._claim(clients, settings, final),
            access=self.clients(),
        )
        waves = [*newest.waves, promotion.wave]
        if not promotion.final:
            self.peers.record_wave(promotion.wave)
            self.reconcile()
            self.on.fence_changed.emit()
            event.set_results(_cutover.wave_results(self.model.unit.name, promotion))
            return
        finished = _cutover.finished_migration(settings.source.name, waves, promotion.switches)
        self.peers.record_wave(promotion.wave, finished=finished)
        self.reconcile()
        self.on.fence_changed.emit()
        results = _cutover.finish_results(
            self.model.unit.name,
            finished,
            fenced=fenced.known(),
            promotion=promotion,
            waves=waves,
        )
        if event.params.get("cleanup", False):
            results["cleanup"] = _cutover.clean_up(clients, finished.topics)
            results["copied-acls"] = self._remove_copied_acls(clients)
        event.set_results(results)

    def _remove_copied_acls(self, clients: Clients) -> str:
        """Remove the ACLs copied for the host's client users: from the record, then the target."""
        removed = self.copies.remove(self.peers.newest().seq)
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

    def _on_restart_mirrormaker(self, event: ops.ActionEvent) -> None:
        everyone = bool(event.params.get("all", False))
        if self.requested_state != "running":
            event.fail("no migration runs, so MirrorMaker runs on no unit: start-migration")
            return
        if (settings := self._settings_for(event)) is None:
            return
        now = _queries.now()
        results: dict[str, str] = {}
        try:
            failed = _restarts.restart_failed(settings.target, timeout=CLIENT_TIMEOUT)
            results["restarted-tasks"] = json.dumps([state.name for state in failed])
        except ClusterUnreachableError as error:
            results["restarted-tasks"] = json.dumps([])
            results["tasks-not-restarted"] = error.message
        cleared = {"cleared": now, **({"everyone": now} if everyone else {})}
        self.restarts.record(self.restarts.log().model_copy(update=cleared))
        if everyone:
            self._stored.followed_restart = now
        restarted = self.service.restart()
        unit = self.model.unit.name
        this = (
            "restarted" if restarted else f"not restarted: MirrorMaker is {self.service.state()}"
        )
        others = " every other unit restarts its own as it sees the request;" if everyone else ""
        event.set_results(
            {
                **results,
                "this-unit": this,
                "all": str(everyone).lower(),
                "message": (
                    f"MirrorMaker on {unit} {this};{others} Connect restarts the failed "
                    "connectors and tasks where they run; the daily count of automatic restarts "
                    "starts anew"
                ),
            }
        )
