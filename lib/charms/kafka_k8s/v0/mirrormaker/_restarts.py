# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Failed MirrorMaker connectors and tasks restart themselves, with backoff, a few times a day.

A task that fails inside a running MirrorMaker (a transient authorization error during a
rotation, a record the target refused) stays FAILED: Pebble sees a healthy process. Kafka
Connect records the failure, with its error and its time, in its status topic on the target
(`_connectors`). The leader unit reads it on each reconcile and, once the backoff has passed
since the failure, asks Connect to restart the failed connectors and tasks wherever they run
(`ClusterClient.request_restarts`): the n-th restart of the day waits `RestartPolicy.delay(n)`,
one minute for the first, doubling up to an hour; past `RestartPolicy.per_day` restarts in 24
hours it stops restarting, and the status blocks with the error and what to do.

The leader records its restarts in its peer databag (`RESTARTS_KEY`): every unit's status shows
them, and a new leader goes on counting from them. `restart-mirrormaker` starts the count anew,
and with `all=true` asks every unit to restart its MirrorMaker process (`RestartLog.everyone`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

import ops
from pydantic import BaseModel, ConfigDict, ValidationError

from . import _clients, _queries
from ._clusters import KafkaCluster
from ._connections import CLIENT_TIMEOUT, STATUS_TIMEOUT
from ._connectors import ConnectorState
from ._errors import ClusterUnreachableError
from ._names import SOURCE_ALIAS
from ._peers import PeerData
from ._report import Shown
from ._text import clip, list_names, plural

if TYPE_CHECKING:
    from ._migration import Migration
    from ._options import MirrorMakerSettings

logger = logging.getLogger(__name__)

RESTARTS_KEY = "mirrormaker-restarts"
DAY = 86400.0


class RestartPolicy(BaseModel):
    """How soon and how often failed connectors and tasks are restarted."""

    model_config = ConfigDict(frozen=True)

    # Seconds from a failure to its first restart of the day; each later one waits twice as
    # long as the one before, up to `max_delay`.
    first_delay: float = 60.0
    max_delay: float = 3600.0
    per_day: int = 8

    def delay(self, restarts: int) -> float:
        """Seconds from a failure to its restart, after `restarts` restarts in the last day."""
        return min(self.first_delay * 2**restarts, self.max_delay)


def _utc(moment: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(moment))


class RestartLog(BaseModel):
    """The restarts of failed connectors and tasks in the last day, and what failed last.

    `times` are the restarts, in seconds since the epoch. `cleared` is when `restart-mirrormaker`
    started the count anew (restarts before it do not count), `everyone` when it last asked
    every unit to restart its MirrorMaker process.
    """

    model_config = ConfigDict(frozen=True)

    times: tuple[float, ...] = ()
    tasks: tuple[str, ...] = ()
    error: str = ""
    cleared: float = 0.0
    everyone: float = 0.0

    def today(self, now: float) -> tuple[float, ...]:
        """The restarts that count now: within the last day, and since the count was cleared."""
        since = max(now - DAY, self.cleared)
        return tuple(moment for moment in self.times if moment > since)

    def restarted(self, now: float, failed: Sequence[ConnectorState]) -> RestartLog:
        """This log with a restart of `failed` at `now`; restarts older than a day are dropped."""
        return self.model_copy(
            update={
                "times": (*self.today(now), now),
                "tasks": tuple(state.name for state in failed),
                "error": (failed[0].error or "") if failed else "",
            }
        )

    @classmethod
    def merged(cls, logs: Iterable[RestartLog]) -> RestartLog:
        """One log of the logs every unit published: what the newest restart recorded."""
        logs = list(logs)
        if not logs:
            return cls()
        newest = max(logs, key=lambda log: log.times[-1] if log.times else 0.0)
        return cls(
            times=tuple(sorted({moment for log in logs for moment in log.times})),
            tasks=newest.tasks,
            error=newest.error,
            cleared=max(log.cleared for log in logs),
            everyone=max(log.everyone for log in logs),
        )

    def results(self, now: float, policy: RestartPolicy) -> dict[str, object]:
        """The log as `migration-status` and `restart-mirrormaker` show it (JSON-ready)."""
        today = self.today(now)
        return {
            "today": len(today),
            "limit-per-day": policy.per_day,
            "last": (
                {
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.times[-1])),
                    "tasks": list(self.tasks),
                    "error": self.error,
                }
                if self.times
                else None
            ),
        }


class Verdict(BaseModel):
    """What to do about the failed connectors and tasks now.

    `restarts` counts the restarts of the last day before this one; `due` is when the next
    restart may be made (for `exhausted`, when the oldest restart leaves the day).
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["wait", "restart", "exhausted"]
    failed: tuple[ConnectorState, ...]
    restarts: int
    due: float

    def shown(self, policy: RestartPolicy, *, restarted: bool = False) -> Shown:
        """The status that shows the failure and its restarts."""
        names = list_names([state.name for state in self.failed])
        error = self.failed[0].error or "no error recorded"
        if self.kind == "exhausted":
            return "blocked", clip(
                f"MirrorMaker {names} failed after {plural(self.restarts, 'restart')} today; "
                f"fix the cause, then run restart-mirrormaker: {error}"
            )
        number = f"{self.restarts + 1} of {policy.per_day} today"
        when = f"restarted at {_utc(self.due)}" if restarted else f"due {_utc(self.due)}"
        return "maintenance", clip(f"MirrorMaker {names} failed; restart {number} {when}: {error}")


def judge(
    states: Sequence[ConnectorState], log: RestartLog, policy: RestartPolicy, now: float
) -> Verdict | None:
    """Whether to restart the failed connectors and tasks now; None when none failed.

    The next restart is due `policy.delay(n)` after the newest failure, or after the last
    restart if that came later (Connect may not have restarted the task yet), with n the
    restarts in the last day; none once n reaches `policy.per_day`.
    """
    failed = tuple(state for state in states if state.state == "FAILED")
    if not failed:
        return None
    today = log.today(now)
    if len(today) >= policy.per_day:
        return Verdict(kind="exhausted", failed=failed, restarts=len(today), due=today[0] + DAY)
    # A failure recorded without a time is taken as old: the last restart still spaces them.
    since = max(state.since or 0.0 for state in failed)
    due = max(since, today[-1] if today else 0.0) + policy.delay(len(today))
    kind: Literal["wait", "restart"] = "restart" if now >= due else "wait"
    return Verdict(kind=kind, failed=failed, restarts=len(today), due=due)


def restart_failed(
    target: KafkaCluster,
    failed: Sequence[ConnectorState] | None = None,
    timeout: float = STATUS_TIMEOUT,
) -> list[ConnectorState]:
    """Ask Connect to restart failed connectors and tasks, wherever they run.

    Args:
        target: the cluster MirrorMaker copies into, as its user reaches it.
        failed: the failed connectors and tasks; those Connect records as failed now if None.
        timeout: seconds each request may take.

    Returns:
        The failed connectors and tasks whose restart was asked for.

    Raises:
        ClusterUnreachableError: if the target does not answer or take the request.
    """
    with _clients.ClusterClient(target, "target", timeout) as client:
        if failed is None:
            states = client.connector_states(SOURCE_ALIAS)
            failed = [state for state in states if state.state == "FAILED"]
        if failed:
            client.request_restarts(SOURCE_ALIAS, {state.connector for state in failed})
    return list(failed)


def watch(
    target: KafkaCluster,
    states: Sequence[ConnectorState],
    log: RestartLog,
    policy: RestartPolicy,
    now: float,
    *,
    act: bool = True,
) -> tuple[Shown | None, RestartLog]:
    """Restart the failed connectors and tasks if due (and `act`); what to show, the new log.

    Without `act` (a unit that is not the leader) nothing is restarted: the status says when
    the leader will.
    """
    verdict = judge(states, log, policy, now)
    if verdict is None:
        return None, log
    if not act or verdict.kind != "restart":
        return verdict.shown(policy), log
    try:
        restart_failed(target, verdict.failed)
    except ClusterUnreachableError as error:
        logger.warning("failed MirrorMaker tasks not restarted: %s", error.message)
        return verdict.shown(policy), log
    logger.warning(
        "asked MirrorMaker to restart %s (restart %d today): %s",
        ", ".join(state.name for state in verdict.failed),
        verdict.restarts + 1,
        verdict.failed[0].error,
    )
    restarted = verdict.model_copy(update={"due": now})
    return restarted.shown(policy, restarted=True), log.restarted(now, verdict.failed)


class Restarts:
    """The restart log in the peer relation: every unit's, merged; this unit writes its own."""

    def __init__(self, peers: PeerData, policy: RestartPolicy | None = None):
        self.peers = peers
        self.policy = policy or RestartPolicy()

    def log(self) -> RestartLog:
        """The restarts every unit recorded, merged; a log a unit cannot parse is skipped."""
        logs = []
        for raw in self.peers.unit_values(RESTARTS_KEY).values():
            try:
                logs.append(RestartLog.model_validate_json(raw))
            except ValidationError:
                continue
        return RestartLog.merged(logs)

    def record(self, log: RestartLog) -> None:
        """Publish the log in this unit's databag."""
        self.peers.write(RESTARTS_KEY, log.model_dump_json())


class RestartActions(ops.Object):
    """`restart-mirrormaker`, the leader's restarts of failed tasks, a unit's part in `all=true`.

    Its stored state remembers the `restart-mirrormaker all=true` request this unit followed
    last (-1: none seen yet), so a unit restarts its MirrorMaker once per request.
    """

    _stored = ops.StoredState()

    def __init__(self, migration: Migration):
        super().__init__(migration, "restarts")
        self.migration = migration
        self._stored.set_default(followed_restart=-1.0)
        charm = migration.charm
        charm.framework.observe(charm.on["restart-mirrormaker"].action, self._on_restart)

    def watch(
        self, settings: MirrorMakerSettings, states: Sequence[ConnectorState]
    ) -> Shown | None:
        """How failed connectors and tasks show; on the leader, restart them when due."""
        if not any(state.state == "FAILED" for state in states):
            return None
        restarts = self.migration.restarts
        log = restarts.log()
        shown, after = watch(
            settings.target,
            states,
            log,
            restarts.policy,
            _queries.now(),
            act=self.model.unit.is_leader(),
        )
        if after != log:
            restarts.record(after)
        return shown

    def follow_request(self) -> None:
        """Restart MirrorMaker once for a `restart-mirrormaker all=true` this unit has not seen.

        A unit that never looked before (a new unit) takes the newest request as seen.
        """
        requested = self.migration.restarts.log().everyone
        followed = self._stored.followed_restart
        self._stored.followed_restart = max(requested, followed)
        if 0 <= followed < requested and self.migration.service.restart():
            logger.info("restarted MirrorMaker, as restart-mirrormaker all=true asked")

    def _on_restart(self, event: ops.ActionEvent) -> None:
        migration = self.migration
        everyone = bool(event.params.get("all", False))
        if migration.requested_state != "running":
            event.fail("no migration runs, so MirrorMaker runs on no unit: start-migration")
            return
        if (settings := migration.settings_for(event)) is None:
            return
        now = _queries.now()
        results: dict[str, str] = {}
        try:
            failed = restart_failed(settings.target, timeout=CLIENT_TIMEOUT)
            results["restarted-tasks"] = json.dumps([state.name for state in failed])
        except ClusterUnreachableError as error:
            results["restarted-tasks"] = json.dumps([])
            results["tasks-not-restarted"] = error.message
        cleared = {"cleared": now, **({"everyone": now} if everyone else {})}
        migration.restarts.record(migration.restarts.log().model_copy(update=cleared))
        if everyone:
            self._stored.followed_restart = now
        service = migration.service
        restarted = service.restart()
        this = "restarted" if restarted else f"not restarted: MirrorMaker is {service.state()}"
        others = " every other unit restarts its own as it sees the request;" if everyone else ""
        event.set_results(
            {
                **results,
                "this-unit": this,
                "all": str(everyone).lower(),
                "message": (
                    f"MirrorMaker on {self.model.unit.name} {this};{others} Connect restarts the "
                    "failed connectors and tasks where they run; the daily count of automatic "
                    "restarts starts anew"
                ),
            }
        )
