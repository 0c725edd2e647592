# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The report's text: the tables `format_table` prints and the actions' results.

Kept free of the report's and the switch's code at run time (they are only type-checked
here): `MigrationReport.results()` calls into this module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._text import plural

if TYPE_CHECKING:
    from ._report import MigrationReport, ReportPart, UnitStatus
    from ._switch import GroupSwitch


_SWITCH_HEADERS = (
    "TOPIC|PARTITION|SOURCE COMMITTED|TARGET OFFSET|RE-READ|SKIP|RESULT|MIRRORMAKER OFFSET|"
    "MIRRORMAKER RE-READ"
)


_GROUPS_HEADERS = "GROUP|SWITCHED|RE-READ|SKIP|EXACT|MIRRORMAKER RE-READ|RESUMED BY|NOTE"


def _switch_table(switch: GroupSwitch) -> str:
    """A group's partitions as a table, with notes below."""
    rows = [
        (
            p.topic,
            p.partition,
            p.source_committed,
            _or_dash(p.target_offset),
            _or_dash(p.re_read),
            _or_dash(p.skip),
            p.result,
            _or_dash(p.mirrormaker_offset),
            _or_dash(p.mirrormaker_re_read),
        )
        for p in switch.partitions
    ]
    lines = _table(_SWITCH_HEADERS.split("|"), rows)
    lines += [f"{p.topic}[{p.partition}]: {p.note}" for p in switch.partitions if p.note]
    if switch.resumed_by:
        lines.append(f"resumed by: {switch.resumed_by}")
    return "\n".join(lines)


def groups_table(switches: Sequence[GroupSwitch]) -> str:
    """One row per group: whether it was switched, what its consumers re-read and skip."""
    rows = [
        (
            s.group,
            _yes(s.switched),
            s.re_read,
            s.skip,
            _yes(s.exact),
            _or_dash(s.mirrormaker_re_read),
            _or_dash(s.resumed_by),
            s.note or "",
        )
        for s in switches
    ]
    return "\n".join(_table(_GROUPS_HEADERS.split("|"), rows))


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Rows under headers, in left-aligned columns two spaces apart; numbers with commas."""
    cells = [list(headers)] + [
        [
            f"{cell:,}" if isinstance(cell, int) and not isinstance(cell, bool) else str(cell)
            for cell in row
        ]
        for row in rows
    ]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _or_dash(value: object) -> object:
    return "-" if value is None else value


_Row = tuple[object, ...]


def _topic_rows(report: MigrationReport) -> list[_Row]:
    return [
        (
            t.topic,
            t.partitions,
            t.source_end_offset,
            _or_dash(t.target_end_offset),
            t.source_records,
            t.target_records,
            t.lag,
        )
        for t in report.topics
    ]


def _partition_rows(report: MigrationReport) -> list[_Row]:
    return [
        (
            p.partition,
            p.source_start_offset,
            p.source_end_offset,
            _or_dash(p.target_start_offset),
            _or_dash(p.target_end_offset),
            p.lag,
        )
        for p in report.partitions
    ]


def _group_rows(report: MigrationReport) -> list[_Row]:
    return [
        (
            g.group,
            _yes(g.active),
            g.members,
            t.topic,
            t.source_committed,
            _or_dash(t.target_committed),
            t.lag,
            _yes(g.synced and not t.missing_partitions),
        )
        for g in report.groups
        for t in g.topics
    ]


def _held_rows(report: MigrationReport) -> list[_Row]:
    return [
        (
            f"{h.topic}[{h.partition}]",
            h.records,
            _or_dash(h.transactional_id),
            _or_dash(h.producer_id),
            _or_dash(h.since),
            _yes(h.hanging),
        )
        for h in report.open_transactions
    ]


def _unit_rows(report: MigrationReport) -> list[_Row]:
    return [(u.unit, u.service, u.exactly_once) for u in report.units or ()]


def _task_rows(report: MigrationReport) -> list[_Row]:
    return [
        (t.name, t.state, t.error or "") for c in report.connectors or () for t in c.with_tasks()
    ]


_SECTIONS: tuple[tuple[str, Callable[[MigrationReport], list[_Row]]], ...] = (
    ("TOPIC|PARTITIONS|SOURCE END|TARGET END|SOURCE RECORDS|TARGET RECORDS|LAG", _topic_rows),
    ("PARTITION|SOURCE START|SOURCE END|TARGET START|TARGET END|LAG", _partition_rows),
    ("GROUP|ACTIVE|MEMBERS|TOPIC|SOURCE COMMITTED|TARGET COMMITTED|LAG|SYNCED", _group_rows),
    ("OPEN TRANSACTION ON|RECORDS HELD|TRANSACTIONAL ID|PRODUCER ID|SINCE|HANGING", _held_rows),
    ("UNIT|SERVICE|EXACTLY-ONCE", _unit_rows),
    ("CONNECTOR/TASK|STATE|ERROR", _task_rows),
)


def format_table(report: MigrationReport) -> str:
    """The report as plain text: the verdict and its reasons, then one table per section."""
    lines = [report.summary()[1], f"ready for cutover: {_yes(report.ready_for_cutover)}"]
    lines += [f"  - {reason}" for reason in report.reasons]
    for headers, rows in _SECTIONS:
        if found := rows(report):
            lines += ["", *_table(headers.split("|"), found)]
    return "\n".join(lines)


def _json(items: Iterable[ReportPart] | None) -> str:
    return json.dumps(None if items is None else [item.as_json() for item in items])


def unit_results(units: Iterable[UnitStatus]) -> dict[str, dict[str, str]]:
    """Each unit's MirrorMaker state, keyed by the unit's name with `/` as `-`."""
    return {
        unit.unit.replace("/", "-"): {"service": unit.service, "exactly-once": unit.exactly_once}
        for unit in units
    }


def report_results(report: MigrationReport, *, table: bool = False) -> dict[str, Any]:
    """The report as `migration-status` action results.

    Keys are hyphenated; lists of things named by topics, groups or connectors (names that are
    not valid result keys) are JSON strings. `charmcraft.yaml` describes the shape.
    """
    results: dict[str, Any] = {
        "summary": report.summary()[1],
        "ready-for-cutover": "true" if report.ready_for_cutover else "false",
        "reasons": json.dumps(report.reasons),
        "source": report.source,
    }
    if report.units is not None:
        results["units"] = unit_results(report.units)
    if table:
        results["table"] = format_table(report)
        return results
    problems = {problem.role: problem.message for problem in report.problems}
    results |= {
        "clusters": {role: problems.get(role, "reachable") for role in ("source", "target")},
        "lag": str(report.lag),
        "lag-threshold": str(report.lag_threshold),
        "source-records": str(report.source_records),
        "target-records": str(report.target_records),
        "quiet-seconds": f"{report.quiet_seconds:g}",
        "source-writes": _json(report.source_writes),
        "open-transactions": _json(report.open_transactions),
        "topics": _json(report.topics),
        "groups": _json(report.groups),
        "connectors": _json(report.connectors),
    }
    if report.topic is not None:
        results["partitions"] = _json(report.partitions)
    return results


def switch_results(switch: GroupSwitch, *, dry_run: bool) -> dict[str, str]:
    """A switched group as `switch-group` results."""
    kept = [p for p in switch.partitions if p.result == "kept"]
    if dry_run:
        message = "dry run: computed, nothing committed"
    elif not switch.switched:
        message = "no partition could be matched: nothing committed"
    elif switch.exact:
        message = (
            f"group {switch.group} resumes on this cluster right after the records it read on "
            "the source: 0 re-read, 0 skipped"
        )
    else:
        message = (
            f"group {switch.group} resumes on this cluster skipping nothing; "
            f"{plural(switch.re_read, 'record')} come again where MirrorMaker copied them twice"
        )
    if kept:
        message += (
            f"; {plural(len(kept), 'partition')} not matched: MirrorMaker's offsets stay there "
            "(see the notes)"
        )
    mirrormaker = switch.mirrormaker_re_read
    resumed = {"resumed-by": switch.resumed_by} if switch.resumed_by else {}
    return {
        **resumed,
        "group": switch.group,
        "dry-run": "true" if dry_run else "false",
        "switched": "true" if switch.switched else "false",
        "exact": "true" if switch.exact else "false",
        "re-read": str(switch.re_read),
        "skip": str(switch.skip),
        "mirrormaker-re-read": "unknown" if mirrormaker is None else str(mirrormaker),
        "partitions": _json(switch.partitions),
        "table": _switch_table(switch),
        "message": message,
    }
