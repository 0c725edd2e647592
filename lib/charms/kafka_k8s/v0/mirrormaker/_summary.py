# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The status summary while this unit runs MirrorMaker: queried once per hook, then stored.

`Migration.reconcile()` refreshes it with bounded queries of both clusters; `Migration.status()`
only reads what was stored, so collect-status never waits for a cluster. Between refreshes
the stored state also remembers the source's end offsets, and since when they have not moved:
the source is quiet for as long as they stay put.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence

import ops

from . import _clients, _queries
from ._connections import STATUS_TIMEOUT
from ._connectors import ConnectorState
from ._options import MirrorMakerSettings
from ._peers import MigrationRequest, UnitState
from ._report import QUIET_SECONDS, MigrationSnapshot, Quiet, Shown, build_report
from ._text import clip, plural


class StatusSummary:
    """The stored summary: the kind and message of the status, and the source's quiet."""

    def __init__(self, stored: ops.framework.BoundStoredState):
        self._stored = stored
        self._stored.set_default(summary="", source_ends="", quiet_since=0.0)

    def clear(self) -> None:
        """Forget the summary: MirrorMaker does not run here."""
        self._stored.summary = ""

    def shown(self) -> Shown | None:
        """The stored kind and message, or None before the first refresh."""
        if not self._stored.summary:
            return None
        kind, message = json.loads(self._stored.summary)
        return kind, message

    def refresh(
        self,
        settings: MirrorMakerSettings,
        units: Mapping[str, UnitState],
        fenced: Collection[str] = (),
        failed_as: Callable[[Sequence[ConnectorState]], Shown | None] = lambda _: None,
    ) -> list[str] | None:
        """Query both clusters and store the summary; `fenced` the fenced target topics.

        `failed_as` is given MirrorMaker's connectors and tasks, and says how to show those
        that failed (their restarts do), if any did.

        Returns:
            The target topics the migration selects now (for the fence), or None when the
            source did not answer.
        """
        with (
            _clients.ClusterClient(settings.source, "source", STATUS_TIMEOUT) as source,
            _clients.ClusterClient(settings.target, "target", STATUS_TIMEOUT) as target,
        ):
            snapshot = _queries.fetch_snapshot(
                source, target, settings.config, units=units, fenced=fenced
            )
        selected = None
        if not any(problem.role == "source" for problem in snapshot.problems):
            snapshot = snapshot.model_copy(update={"quiet": self._quiet(snapshot)})
            selected = [settings.config.target_topic(t) for t in snapshot.source_topics]
        report = build_report(snapshot, settings.config, source=settings.source.name)
        shown = failed_as(snapshot.connectors) if snapshot.connectors is not None else None
        self._stored.summary = json.dumps(report.summary(shown))
        return selected

    def _quiet(self, snapshot: MigrationSnapshot) -> Quiet:
        """How long the source's log end offsets have stayed as they are now, across refreshes.

        Log ends, not last stable offsets: records written inside a transaction count.
        """
        ends = {
            topic: sum(snapshot.source_log_ends.get(topic, offsets.end))
            for topic, offsets in snapshot.source_topics.items()
        }
        now = _queries.now()
        try:
            before = json.loads(self._stored.source_ends) if self._stored.source_ends else None
        except ValueError:
            before = None
        if before == ends:
            return Quiet(required=QUIET_SECONDS, watched=now - self._stored.quiet_since)
        self._stored.source_ends = json.dumps(ends)
        self._stored.quiet_since = now
        writes = {t: n - before.get(t, n) for t, n in ends.items()} if before else {}
        return Quiet(required=QUIET_SECONDS, watched=0, writes=writes)


# What the status adds while MirrorMaker reads a PLAINTEXT source.
UNPROTECTED = "source PLAINTEXT: unauthenticated, unencrypted"


def summary_status(
    shown: Shown, *, restarts_today: int, unprotected: bool, notes: str
) -> ops.StatusBase:
    """The stored summary as a status.

    An active one counts today's restarts, says that a PLAINTEXT source is read unprotected,
    and adds `notes` (the waves, the fence).
    """
    kind, message = shown
    if kind == "blocked":
        return ops.BlockedStatus(message)
    if kind == "maintenance":
        return ops.MaintenanceStatus(message)
    if restarts_today:
        message += f"; {plural(restarts_today, 'MirrorMaker restart')} today"
    parts = [message, UNPROTECTED if unprotected else "", notes]
    return ops.ActiveStatus(clip("; ".join(part for part in parts if part)))


def waves_text(request: MigrationRequest) -> str:
    """The waves promoted so far, as the status shows them, or ""."""
    if not request.waves:
        return ""
    promoted = plural(len(request.promoted), "topic")
    return f"{promoted} promoted in {plural(len(request.waves), 'wave')}"
