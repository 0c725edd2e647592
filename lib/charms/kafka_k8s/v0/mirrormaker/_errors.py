# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""What can go wrong with a migration; each error knows the status that shows it."""

from __future__ import annotations

import ops


class MigrationError(Exception):
    """Why the migration cannot run as configured; the message tells the operator what to do."""

    waiting = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def status(self) -> ops.StatusBase:
        """The status that shows this problem."""
        if self.waiting:
            return ops.WaitingStatus(self.message)
        return ops.BlockedStatus(self.message)


class InvalidOptionError(MigrationError):
    """A `mirrormaker-*` option holds a value the migration cannot use."""

    def __init__(self, option: str, reason: str):
        super().__init__(f"invalid config {option}: {reason}")
        self.option = option
        self.reason = reason


class SourceError(MigrationError):
    """The source cluster is not configured, configured twice, or its credentials are wrong."""


class SourceGoneError(SourceError):
    """The source, or access to it, was taken away: no source, credentials revoked or removed.

    Unlike an option with a typo, this stops a running migration on every unit: MirrorMaker
    must not keep copying with credentials it no longer has. The copied data and MirrorMaker's
    offsets stay, so `start-migration` resumes once a source is back.
    """


class NotReadyError(MigrationError):
    """Something the migration needs is not there yet; it comes without operator action."""

    waiting = True


class ClusterUnreachableError(MigrationError):
    """A cluster did not answer an admin request within the timeout, or refused it.

    `refused` is set when the cluster turned the user's login down (wrong credentials).
    """

    def __init__(self, message: str, *, refused: bool = False):
        super().__init__(message)
        self.refused = refused


class PreflightError(MigrationError):
    """The preflight of a real start found what would fail the copy, or could not run."""
