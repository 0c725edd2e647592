# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The host charm's object: wiring. It routes the host's reconcile and the actions to the modules.

`Migration` builds the parts and keeps the reconcile, the status and the two actions that start
and stop the migration. Reading Juju is done by `_source` (the source cluster), `_peers`
(requests, waves and unit states), `_fence` (the fenced topics), `_summary` (the stored status),
`_acls` (the copied ACLs' record) and `_restarts` (the restarts of failed tasks); the work by
`_service` (MirrorMaker in its container) and `_preflight` (start-migration's preflight, dry-run
or not). The other actions are handled where their concern lives: `migration-status` in
`_status`, `switch-group` and `finish-migration` in `_cutover`, `restart-mirrormaker` in
`_restarts`, `start-failback` and `finish-failback` in `_failback_host` (which also runs the
failback's copy back on this unit, and says what it fences). The host's client users and the
operator's map of their identities come from the host (`clients`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import ops
from pydantic import ValidationError

from . import _queries
from ._acls import AclCopies, copy_acls
from ._clusters import TargetCluster
from ._connections import STATUS_TIMEOUT
from ._cutover import CutoverActions
from ._errors import (
    ClusterUnreachableError,
    MigrationError,
    NotReadyError,
    SourceGoneError,
)
from ._failback_host import Failbacks
from ._fence import Fence, FencedTopics, TopicSelection
from ._identities import ClientAccess
from ._options import MigrationConfig, MirrorMakerSettings, MirrorMakerWorkload
from ._peers import PeerData, RequestedState, UnitState, exactly_once_for
from ._preflight import checked_preflight, dry_run
from ._restarts import RestartActions, Restarts
from ._rights import AclBinding
from ._service import MirrorMakerService
from ._source import SourceReader
from ._status import StatusAction
from ._summary import StatusSummary, summary_status, waves_text
from ._text import clip

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
        framework = charm.framework
        framework.observe(charm.on["start-migration"].action, self._on_start_migration)
        framework.observe(charm.on["stop-migration"].action, self._on_stop_migration)
        # The other actions, each handled by the module of its concern.
        self.status_action = StatusAction(self)
        self.cutover = CutoverActions(self)
        self.restarter = RestartActions(self)
        self.failback = Failbacks(self, self.service.container, self.service.workload)

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

    def live_unit_states(self) -> dict[str, UnitState]:
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
            self.restarter.follow_request()
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
            self.live_unit_states(),
            self.fenced_topics().known(),
            lambda states: self.restarter.watch(settings, states),
        )
        self.fence.publish(selected or ())

    def status(self) -> ops.StatusBase | None:
        """The status to show for the migration, or `None` when there is nothing to say.

        A failback's, unless the migration's is more pressing (`Failbacks.status`).
        """
        return self.failback.status(self._status())

    def _status(self) -> ops.StatusBase | None:
        """The migration's own status."""
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
        fence = "; ".join(text for text in (waves_text(newest), self.fence.text()) if text)
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
        log = self.restarts.log()
        today = len(log.today(_queries.now())) if log.times else 0
        return summary_status(
            shown, restarts_today=today, unprotected=bool(source.unprotected), notes=fence
        )

    def _starting(self, config: MigrationConfig, source: str) -> ops.StatusBase:
        """The status while MirrorMaker does not run yet: it starts, or waits for the fence."""
        if self.fence.waits_for(TopicSelection.of(config)):
            return ops.WaitingStatus(
                "waiting for the leader to fence the migrated topics before MirrorMaker starts "
                f"to migrate from {source}"
            )
        return ops.MaintenanceStatus(f"starting MirrorMaker to migrate from {source}")

    # Actions -----------------------------------------------------------------------------------

    def settings_for(self, event: ops.ActionEvent) -> MirrorMakerSettings | None:
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
            found = checked_preflight(settings, force=force)
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
        warning = {"warning": settings.source.unprotected} if settings.source.unprotected else {}
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
                **warning,
                "state": "running",
                "source": name,
                "this-unit": this_unit,
                "fenced-topics": json.dumps(self.fenced_topics().known()),
                "message": message,
            }
        )

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
