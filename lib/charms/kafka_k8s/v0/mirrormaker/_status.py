# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""`migration-status`: the migration report, the access report, or the finished migration.

The report is queried now, from the unit the action runs on (`_queries`, `_report`); the access
report lists each source user's rights beside what its client user here holds (`_access`). Both
add the fence, the operator's map of client identities and the copied ACLs; the migration report
also the waves done, MirrorMaker's restarts today and the failbacks (`_failback_host`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import ops

from . import _cutover, _queries
from ._access import access_report, access_results
from ._display import report_results
from ._errors import MigrationError
from ._queries import migration_report
from ._report import QUIET_SECONDS, unknown_results

if TYPE_CHECKING:
    from ._migration import Migration


class StatusAction(ops.Object):
    """`migration-status` on any unit: results only, nothing changed."""

    def __init__(self, migration: Migration):
        super().__init__(migration, "status")
        self.migration = migration
        charm = migration.charm
        charm.framework.observe(charm.on["migration-status"].action, self._on_migration_status)

    def _client_results(self) -> dict[str, str]:
        """The operator's map and the copied ACLs, as results."""
        migration = self.migration
        return {
            "client-identities": json.dumps(migration.clients().as_json()),
            "copied-acls": json.dumps([acl.as_json() for acl in migration.copied_acls()]),
        }

    def _on_migration_status(self, event: ops.ActionEvent) -> None:
        if event.params.get("format") == "access":
            self._access_report(event)
            return
        migration = self.migration
        quiet_seconds = float(event.params.get("quiet-seconds", QUIET_SECONDS))
        shared = {
            **migration.fence.results(),
            **self._client_results(),
            **migration.failback.results(quiet_seconds),
        }
        waves = _cutover.waves_results(migration.peers.newest().waves)
        if (finished := migration.peers.finished()) is not None:
            summary = finished.summary()
            event.set_results(
                {
                    "requested": "finished",
                    "summary": summary,
                    "ready-for-cutover": "false",
                    "reasons": json.dumps([summary]),
                    "finished": json.dumps(finished.model_dump(mode="json")),
                    **waves,
                    **shared,
                }
            )
            return
        units = migration.live_unit_states()
        log = migration.restarts.log()
        restarts = log.results(_queries.now() if log.times else 0.0, migration.restarts.policy)
        requested = {
            "requested": migration.requested_state,
            "restarts": json.dumps(restarts),
            **waves,
        }
        try:
            settings = migration.settings()
        except MigrationError as error:
            event.set_results({**requested, **unknown_results(error.message, units), **shared})
            return
        topic = event.params.get("topic") or None
        report = migration_report(
            settings.source,
            settings.target,
            settings.config,
            units=units,
            lag_threshold=int(event.params.get("lag-threshold", 0)),
            topic=topic,
            quiet_seconds=quiet_seconds,
            fenced=migration.fenced_topics().known(),
        )
        if topic and not report.topics and not report.problems:
            event.fail(
                f"topic {topic} is not migrated: the source has no such topic, or the "
                "mirrormaker-topics options do not select it"
            )
            return
        results = report_results(report, table=event.params.get("format") == "table")
        event.set_results({**requested, **results, **shared})

    def _access_report(self, event: ops.ActionEvent) -> None:
        """`format=access`: each source user's rights beside its client user's."""
        migration = self.migration
        try:
            settings = migration.settings()
            report = access_report(
                settings.source,
                settings.config,
                migration.clients(),
                target_user=settings.target.username or "",
                copied=migration.copied_acls(),
            )
        except MigrationError as error:
            event.fail(error.message)
            return
        event.set_results(
            {
                "requested": migration.requested_state,
                **access_results(report),
                **self._client_results(),
            }
        )
