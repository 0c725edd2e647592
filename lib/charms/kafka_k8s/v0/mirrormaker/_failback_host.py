# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Failbacks in the host charm: `start-failback`, `finish-failback`, the copy back on each unit.

The Juju side of `_failback`. A failback is recorded in the peer relation as the migration's
requests are: in the acting unit's databag (`FAILBACK_KEY`), and every unit follows the newest
record and copies it into its own. While one runs, every unit runs the copy back
(`FailbackService`) and publishes its state (`FAILBACK_STATE_KEY`); the failback user's
credentials come from the `mirrormaker-failback-credentials` secret. Once finished, its topics
are fenced on this cluster for the host's client producers (`fenced`), until a later wave
promotes them again.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

import ops
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._clusters import SourceCluster, failback_source
from ._connections import CLIENT_TIMEOUT
from ._errors import ClusterUnreachableError, MigrationError, NotReadyError
from ._failback import (
    Failback,
    FailbackRefusedError,
    check_failback,
    chosen_topics,
    clean_up_copy_back,
    finish_failback_with,
    finish_results,
    plan_failback,
    reverse_clients,
    seed_copy_back,
    start_results,
)
from ._fence import FencedTopics
from ._names import FAILBACK_ALIAS, SOURCE_ALIAS
from ._options import FailbackSettings, MirrorMakerSettings, MirrorMakerWorkload
from ._peers import UnitState
from ._service import FailbackService
from ._switch import Clients
from ._text import list_names

if TYPE_CHECKING:
    from ._migration import Migration

logger = logging.getLogger(__name__)

# In each unit's databag: the newest failback record it follows, and its copy back's state.
FAILBACK_KEY = "mirrormaker-failback"
FAILBACK_STATE_KEY = "mirrormaker-failback-state"
_OPTION = "mirrormaker-failback-credentials"
# The statuses that say something stands in the way.
_PRESSING = ("blocked", "waiting")


class FailbackRequest(BaseModel):
    """The failbacks as a unit recorded them: the one running, if any, and those done.

    Ordered as the migration's requests are, by `seq`, then time and unit, so every unit
    follows the same newest record.
    """

    model_config = ConfigDict(frozen=True)

    seq: int = 0
    at: int = 0
    by: str = ""
    current: Failback | None = None
    done: list[Failback] = Field(default_factory=list)

    def order(self) -> tuple[int, int, str]:
        """The sort key: newest last."""
        return (self.seq, self.at, self.by)


class Failbacks(ops.Object):
    """The failbacks of the host's migration: their actions, their service, status and fence."""

    def __init__(
        self, migration: Migration, container: ops.Container, workload: MirrorMakerWorkload
    ):
        super().__init__(migration, "failback")
        self.migration = migration
        self.service = FailbackService(container, workload)
        on = migration.charm.on
        self.framework.observe(on["start-failback"].action, self._on_start_failback)
        self.framework.observe(on["finish-failback"].action, self._on_finish_failback)

    # The peer data ------------------------------------------------------------------------------

    def newest(self) -> FailbackRequest:
        """The failback record every unit follows."""
        requests = []
        for raw in self.migration.peers.unit_values(FAILBACK_KEY).values():
            try:
                requests.append(FailbackRequest.model_validate_json(raw))
            except ValidationError:
                continue
        return max(requests, key=FailbackRequest.order, default=FailbackRequest())

    def current(self) -> Failback | None:
        """The failback running in this migration, if any."""
        current = self.newest().current
        migration = self.migration.peers.newest().migration
        return current if current is not None and current.migration == migration else None

    def _done(self) -> list[Failback]:
        """The failbacks finished in this migration, oldest first."""
        migration = self.migration.peers.newest().migration
        return [failback for failback in self.newest().done if failback.migration == migration]

    def _record(self, current: Failback | None, done: list[Failback]) -> None:
        """Record the failbacks in this unit's databag, as the newest record.

        Raises:
            NotReadyError: while the peer relation does not exist yet.
        """
        if self.migration.peers.relation is None:
            raise NotReadyError("the peer relation is not there yet: retry in a minute")
        newest = self.newest()
        unit = self.model.unit.name
        request = FailbackRequest(
            seq=newest.seq + 1, at=time.time_ns(), by=unit, current=current, done=done
        )
        self.migration.peers.write(FAILBACK_KEY, request.model_dump_json(exclude_none=True))

    def _units(self) -> dict[str, UnitState]:
        """Every unit's copy back, this unit's read from Pebble now."""
        service = self.service.state() if self.service.container.can_connect() else None
        return self.migration.peers.live_unit_states(service, FAILBACK_STATE_KEY)

    # The clusters -------------------------------------------------------------------------------

    def _writer(self, settings: MirrorMakerSettings) -> SourceCluster:
        """The source cluster as the failback user, who may write there, reaches it.

        Raises:
            FailbackRefusedError: without the credentials, saying what to grant.
            SourceError: if the secret is not granted, or its content is wrong.
        """
        app, name = self.model.app.name, settings.source.name
        secret_id = settings.config.failback_credentials
        if secret_id is None:
            raise FailbackRefusedError(
                f"a failback writes on {name}, and the migration's user there may only read: "
                "put the username and password of a user that may write there in a Juju secret, "
                f"grant it to {app} and set {_OPTION} (the user needs READ, WRITE and DESCRIBE "
                "on the topics, READ and DESCRIBE on their consumer groups and on the group "
                f"{FAILBACK_ALIAS}-mm2, and CREATE, READ, WRITE, DESCRIBE, DESCRIBE_CONFIGS and "
                f"DELETE on the topics mm2-*.{FAILBACK_ALIAS}.internal and "
                f"{FAILBACK_ALIAS}.heartbeats); nothing was changed"
            )
        content = self.migration.sources.secret(secret_id, _OPTION)
        return failback_source(settings.source, content, secret_id=secret_id, option=_OPTION)

    def _settings(self, failback: Failback) -> FailbackSettings:
        """This unit's copy back of the failback.

        Raises:
            MigrationError: saying what is wrong or missing.
        """
        settings = self.migration.settings()
        return FailbackSettings(
            source=self._writer(settings),
            target=settings.target,
            topics=tuple(failback.topics),
            config=settings.config,
            unit_host=settings.unit_host,
            units=settings.units,
            workload=settings.workload,
        )

    def _clients(self) -> tuple[MirrorMakerSettings, Clients]:
        """The settings, and the failback's clients of both clusters.

        Raises:
            MigrationError: saying what is wrong or missing.
        """
        settings = self.migration.settings()
        return settings, reverse_clients(self._writer(settings), settings.target, CLIENT_TIMEOUT)

    # Reconcile, status, fence -------------------------------------------------------------------

    def reconcile(self) -> None:
        """Bring this unit's copy back to the newest failback, and publish its state.

        A failback whose settings cannot be made (credentials revoked, say) stops the copy back
        here; `status()` says why, and it resumes from its offsets once they can.
        """
        peers = self.migration.peers
        newest = self.newest()
        if newest.seq == 0:
            return  # no failback was ever started
        peers.write(FAILBACK_KEY, newest.model_dump_json(exclude_none=True))
        current = self.current()
        if current is None:
            self.service.stop()
        else:
            try:
                self.service.run(self._settings(current))
            except MigrationError as error:
                logger.warning("the copy back does not run here: %s", error.message)
                self.service.stop()
            except ops.pebble.ChangeError:
                logger.warning("the copy back did not start; Pebble retries it")
        state = UnitState(service=self.service.state())
        peers.write(FAILBACK_STATE_KEY, state.model_dump_json(by_alias=True))

    def status(self, migration: ops.StatusBase | None) -> ops.StatusBase | None:
        """The status to show, of the failback or of the `migration` beside it.

        What stands in the way (blocked, waiting) first, the failback's before the migration's;
        then a failback's progress before the migration's.
        """
        own = self._status()
        if own is None:
            return migration
        if migration is not None and migration.name in _PRESSING and own.name not in _PRESSING:
            return migration
        return own

    def _status(self) -> ops.StatusBase | None:
        """The failback's status: while one runs, or once done in a finished migration."""
        current = self.current()
        if current is None:
            done = self._done()
            if not done or self.migration.peers.newest().state != "finished":
                return None
            topics = sorted({topic for failback in done for topic in failback.topics})
            return ops.ActiveStatus(
                f"{list_names(topics)} failed back to {done[-1].source}; writes fenced here"
            )
        names = list_names(current.topics)
        try:
            self._settings(current)
        except MigrationError as error:
            return type(error.status())(f"failback of {names}: {error.message}")
        if not self.service.container.can_connect():
            return None
        if self.service.state() != "active":
            return ops.MaintenanceStatus(f"starting MirrorMaker to fail back {names}")
        return ops.ActiveStatus(
            f"failing back {names} to {current.source}: finish-failback once migration-status "
            "says it is ready"
        )

    def fenced(self, fenced: FencedTopics) -> FencedTopics:
        """`fenced`, and the topics failed back in this migration and not promoted again."""
        names = frozenset(topic for failback in self._done() for topic in failback.topics)
        if not names or not self.migration.fence.enabled():
            return fenced
        return fenced.model_copy(update={"names": fenced.names | names})

    def refuses_start(self) -> str | None:
        """Why `start-migration` may not begin a new migration now: a failback runs."""
        current = self.current()
        if current is None or self.migration.peers.finished() is None:
            return None
        return (
            f"a failback of {list_names(current.topics)} runs: a new migration would copy them "
            "both ways at once. Nothing was changed; run finish-failback first"
        )

    def results(self, quiet_seconds: float) -> dict[str, str]:
        """`migration-status` results of the failbacks: the running one checked now, those done."""
        done = self._done()
        results = (
            {"failbacks": json.dumps([f.model_dump(mode="json") for f in done])} if done else {}
        )
        current = self.current()
        if current is None:
            return results
        shown: dict[str, Any] = current.model_dump(mode="json")
        try:
            settings, clients = self._clients()
            try:
                check = check_failback(
                    clients,
                    settings.config,
                    current,
                    units=self._units(),
                    quiet_seconds=quiet_seconds,
                )
            finally:
                clients.close()
        except MigrationError as error:
            shown |= {"ready-to-finish": False, "reasons": [error.message]}
            summary = f"failback of {list_names(current.topics)}: {error.message}"
        else:
            shown |= {
                "lag": check.report.lag,
                "ready-to-finish": not check.blockers,
                "reasons": check.blockers,
                "copy-back": [topic.as_json() for topic in check.report.topics],
                "this-cluster-writes": [w.as_json() for w in check.report.source_writes or ()],
            }
            summary = check.summary(current)
        return {**results, "failback": json.dumps(shown), "failback-summary": summary}

    # Actions ------------------------------------------------------------------------------------

    def _on_start_failback(self, event: ops.ActionEvent) -> None:
        request = self.migration.peers.newest()
        if request.seq == 0:
            event.fail("no migration: start-migration was never run; nothing was changed")
            return
        try:
            topics = chosen_topics(request.promoted, event.params.get("topics") or None)
            if (current := self.current()) is not None:
                if set(current.topics) == set(topics):
                    event.set_results(
                        {
                            "state": "running",
                            "topics": json.dumps(current.topics),
                            "message": f"{current.summary()}: already requested",
                        }
                    )
                    return
                raise FailbackRefusedError(
                    f"{current.summary()}: one failback at a time, run finish-failback first; "
                    "nothing was changed"
                )
            settings, clients = self._clients()
            try:
                failback = plan_failback(
                    clients,
                    settings.config,
                    request.waves,
                    topics,
                    force=bool(event.params.get("force", False)),
                    number=self.newest().seq + 1,
                    migration=request.migration,
                    by=self.model.unit.name,
                    source=settings.source.name,
                )
                seed_copy_back(clients, failback)
            finally:
                clients.close()
            self._record(failback, list(self.newest().done))
        except MigrationError as error:
            event.fail(error.message)
            return
        self.migration.reconcile()
        event.set_results(
            start_results(self.model.unit.name, failback, this_unit=self.service.state())
        )

    def _claim(self, clients: Clients, settings: MirrorMakerSettings, failback: Failback) -> None:
        """Claim the finish of this failback on this cluster, then stop the copy back here.

        Of two units finishing at once, one creates the claim's topic (as a wave's claim).

        Raises:
            FailbackRefusedError: if another unit claimed it.
            ClusterUnreachableError: if this cluster does not answer.
        """
        unit = self.model.unit.name
        topic = (
            f"mm2-cutover.{SOURCE_ALIAS}.{failback.migration}.failback-{failback.number}.internal"
        )
        holder = clients.source_logs.claim(topic, unit, settings.replication_factor)
        if holder != unit:
            raise FailbackRefusedError(
                f"{holder or 'another unit'} finished this failback at the same moment: nothing "
                "was changed here; see migration-status"
            )
        self.service.stop()

    def _on_finish_failback(self, event: ops.ActionEvent) -> None:
        current = self.current()
        if current is None:
            done = self._done()
            event.fail(
                f"{done[-1].summary()}; nothing was changed"
                if done
                else "no failback runs: start-failback first; nothing was changed"
            )
            return
        try:
            settings, clients = self._clients()
        except MigrationError as error:
            event.fail(error.message)
            return
        try:
            done = finish_failback_with(
                clients,
                settings.config,
                current,
                units=self._units(),
                force=bool(event.params.get("force", False)),
                by=self.model.unit.name,
                prepare=lambda: self._claim(clients, settings, current),
                access=self.migration.clients(),
            )
            finished = current.model_copy(update={"finished": done.finish})
            self._record(None, [*self.newest().done, finished])
            self.migration.peers.record_failed_back(current.topics)
            self.migration.reconcile()
            cleanup = clean_up_copy_back(clients)
        except ClusterUnreachableError as error:
            self.migration.reconcile()
            event.fail(
                f"{error.message}: the failback is not finished and the copy back runs as "
                "before; run finish-failback again"
            )
            return
        except MigrationError as error:
            event.fail(error.message)
            return
        finally:
            clients.close()
        self.migration.on.fence_changed.emit()
        event.set_results(finish_results(self.model.unit.name, current, done, cleanup))
