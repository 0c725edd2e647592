# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""`finish-migration`: the checks before the cutover, what it records, and its results.

The cutover may happen when the report finds nothing in the way (the target in sync by
content, the source quiet, every group translatable) and MirrorMaker has recorded the copy of
the last records of every partition. `Migration` stops MirrorMaker, switches the groups
(`_switch`), records the finished migration and lifts the fence between these steps.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timezone
from typing import NamedTuple

from ._display import groups_table
from ._errors import ClusterUnreachableError
from ._options import MirrorMakerSettings
from ._peers import FinishedMigration, UnitState
from ._queries import fetch_snapshot
from ._records import internal_topics
from ._report import QUIET_SECONDS, MigrationReport, build_report
from ._switch import Clients, GroupSwitch, unsettled_topics
from ._text import list_names, plural


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


def check_cutover(
    clients: Clients, settings: MirrorMakerSettings, units: Mapping[str, UnitState] | None
) -> CutoverCheck:
    """Whether the cutover may happen now, watching the source for `QUIET_SECONDS`.

    `units` None judges a stopped migration by its data alone: no MirrorMaker runs to be
    checked, nor its records of the copy.

    Raises:
        ClusterUnreachableError: if a cluster does not answer.
    """
    config = settings.config
    snapshot = fetch_snapshot(
        clients.source, clients.target, config, units=units, quiet_seconds=QUIET_SECONDS
    )
    if units is None:
        snapshot = snapshot.model_copy(update={"connectors": None})
    report = build_report(snapshot, config, source=settings.source.name)
    blockers = list(report.reasons)
    if not report.problems and units is not None:
        unsettled = unsettled_topics(clients, {t.topic: t.partitions for t in report.topics})
        if unsettled:
            blockers.append(
                "MirrorMaker has not yet recorded the copy of the last records of "
                f"{list_names(unsettled)} (it does every 10 s)"
            )
    return CutoverCheck(report, blockers)


def finished_migration(
    source: str, report: MigrationReport, switches: Sequence[GroupSwitch]
) -> FinishedMigration:
    """What the finished migration records: now, the migrated topics and the switched groups."""
    return FinishedMigration(
        at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        source=source,
        topics=[topic.target_topic for topic in report.topics],
        records=report.source_records,
        groups=[switch.group for switch in switches if switch.switched],
    )


def finish_results(
    unit: str,
    finished: FinishedMigration,
    *,
    fenced: Collection[str],
    switches: Sequence[GroupSwitch],
    blockers: Sequence[str],
) -> dict[str, str]:
    """`finish-migration`'s results (see `charmcraft.yaml`)."""
    results = {
        "state": "finished",
        "source": finished.source,
        "finished-at": finished.at,
        "mirrormaker": f"stopped on {unit}; every other unit stops it as it sees the request",
        "fence": f"lifted from {plural(len(fenced), 'topic')}" if fenced else "none was on",
        "re-read": str(sum(switch.re_read for switch in switches)),
        "skip": str(sum(switch.skip for switch in switches)),
        "groups": json.dumps(
            [
                {**switch.totals(), "partitions": [p.as_json() for p in switch.partitions]}
                for switch in switches
            ]
        ),
        "table": groups_table(switches),
        "summary": finished.summary(),
    }
    if blockers:
        results["forced"] = json.dumps(list(blockers))
    return results


def clean_up(clients: Clients, migrated: Collection[str]) -> str:
    """Delete MirrorMaker's own topics on the target; what was deleted, or why not."""
    try:
        deleted = clients.target_logs.delete_topics(internal_topics(migrated))
    except ClusterUnreachableError as error:
        return f"MirrorMaker's topics were not deleted: {error.message}"
    return f"deleted {', '.join(deleted)}" if deleted else "none of MirrorMaker's topics left"
