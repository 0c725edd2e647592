# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Refreshing the charm in place (`juju refresh`), one unit at a time, also mid-migration.

Canonical's `charm-refresh` (PyPI) runs the refresh: on Kubernetes it holds the StatefulSet's
rolling-update partition so that one pod at a time, the highest unit first, is replaced with the
new charm revision, checks before and after the first unit that the refresh may go on, lets a
unit's workload start only when the refresh allows it, and moves the partition down one unit
once the charm says the unit just refreshed is healthy (`next_unit_allowed_to_refresh`).

- `KafkaRefresh` is the charm's part of it: its checks before the refresh (every broker
  registered, every partition in sync, no password rotation under way) and which versions it
  refreshes from (the same Kafka major release).
- `next_unit_may_refresh` is the health a refreshed unit must reach before the next unit goes:
  its broker registered, every partition in sync and, while a migration is requested, its
  MirrorMaker running again. A pure function of what the charm read: the charm uses it with
  charm-refresh, the local tier with its own roll (`tests/local/test_long_migration.py`).
- `open_refresh` makes charm-refresh's object, or says why there is none.

What a migration keeps across a refresh lives outside the pod: the request and the fenced topics
in the peer relation, MirrorMaker's progress (its committed source offsets and the copies) in
topics on this cluster, the fence in Kafka's ACLs. A replaced unit's MirrorMaker starts again
from its committed offsets; the other units' keep copying meanwhile.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable

import charm_refresh
import httpx
import lightkube
import ops

from admin import ClusterHealth

logger = logging.getLogger(__name__)
# charm-refresh talks to Kubernetes with httpx, which logs every request at INFO.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

WORKLOAD_NAME = "Kafka"
CHARM_NAME = "kafka-k8s"
OCI_RESOURCE = "kafka-image"


def next_unit_may_refresh(
    health: ClusterHealth, node_id: int, *, mirrormaker: str | None
) -> str | None:
    """Why the next unit may not refresh yet, or `None` once this refreshed unit is healthy.

    Args:
        health: the cluster as the admin client sees it now.
        node_id: this unit's broker.
        mirrormaker: this unit's MirrorMaker service state while a migration is requested;
            `None` when none is.
    """
    if node_id not in health.brokers:
        return "its broker has not joined the cluster again"
    if not health.in_sync:
        lagging = len(health.under_replicated)
        return f"{lagging} partitions are not back in sync"
    if mirrormaker is not None and mirrormaker != "active":
        return f"its MirrorMaker is {mirrormaker}, not running again"
    return None


def pre_refresh_problem(health: ClusterHealth, node_ids: Iterable[int]) -> str | None:
    """What stands in the way of a refresh before it starts, as charm-refresh shows it (64 chars).

    Args:
        health: the cluster as the admin client sees it now.
        node_ids: every unit's broker.
    """
    missing = sorted(set(node_ids) - health.brokers)
    if missing:
        return f"Brokers {', '.join(map(str, missing))} not registered"
    if not health.in_sync:
        return f"{len(health.under_replicated)} partitions under-replicated"
    return None


@dataclasses.dataclass(eq=False)
class KafkaRefresh(charm_refresh.CharmSpecificKubernetes):
    """What kafka-k8s tells charm-refresh: its checks, and the versions it refreshes from.

    `checks` reports what stands in the refresh's way now (admin queries), as a short message;
    `None` when nothing does. `rotating` says whether a password rotation is under way.
    """

    checks: Callable[[], str | None] = lambda: None
    rotating: Callable[[], bool] = lambda: False

    def run_pre_refresh_checks_after_1_unit_refreshed(self) -> None:
        """Checks that hold with one unit refreshed and its broker stopped."""
        if self.rotating():
            raise charm_refresh.PrecheckFailed("Password rotation in progress")

    def run_pre_refresh_checks_before_any_units_refreshed(self) -> None:
        """Checks of the healthy cluster, before any unit refreshed."""
        self.run_pre_refresh_checks_after_1_unit_refreshed()
        if problem := self.checks():
            raise charm_refresh.PrecheckFailed(problem[:64])

    @classmethod
    def is_compatible(
        cls,
        *,
        old_charm_version: charm_refresh.CharmVersion,
        new_charm_version: charm_refresh.CharmVersion,
        old_workload_version: str,
        new_workload_version: str,
    ) -> bool:
        """The charm's own rule, and no Kafka major or minor release going backwards."""
        if not super().is_compatible(
            old_charm_version=old_charm_version,
            new_charm_version=new_charm_version,
            old_workload_version=old_workload_version,
            new_workload_version=new_workload_version,
        ):
            return False
        old = tuple(int(part) for part in old_workload_version.split(".")[:2])
        new = tuple(int(part) for part in new_workload_version.split(".")[:2])
        return old[0] == new[0] and new >= old


@dataclasses.dataclass(frozen=True)
class Refresh:
    """charm-refresh's object in this hook, or why there is none.

    `untrusted`: the application may not patch its StatefulSet (`juju trust`); charm-refresh
    then sets the application status itself, and the charm must not.
    """

    refresh: charm_refresh.Common | None = None
    untrusted: bool = False
    # Why charm-refresh could not look at the refresh: Kubernetes' API did not answer.
    problem: str | None = None

    @property
    def in_progress(self) -> bool:
        """Whether a refresh is under way."""
        return self.refresh is not None and self.refresh.in_progress

    @property
    def workload_allowed(self) -> bool:
        """Whether this unit's broker may start (always, without charm-refresh)."""
        return self.refresh is None or self.refresh.workload_allowed_to_start

    def unit_status(self) -> ops.StatusBase | None:
        """The refresh's unit status that comes before every other."""
        if self.problem:
            return ops.MaintenanceStatus(f"charm-refresh: {self.problem}"[:120])
        return self.refresh.unit_status_higher_priority if self.refresh else None

    def app_status(self) -> ops.StatusBase | None:
        """The refresh's application status that comes before every other."""
        return self.refresh.app_status_higher_priority if self.refresh else None

    def quiet_status(self, *, running: bool) -> ops.StatusBase | None:
        """The refresh's unit status that only shows when nothing else has a message."""
        if self.refresh is None:
            return None
        return self.refresh.unit_status_lower_priority(workload_is_running=running)


def open_refresh(checks: Callable[[], str | None], rotating: Callable[[], bool]) -> Refresh:
    """charm-refresh's object for this hook, made once per hook as it requires.

    Without its peer relation yet, on a unit being removed, or outside Kubernetes (no API
    configuration: the local tier, ops.testing), there is none, and the charm runs as without a
    refresh; so it does without `juju trust`, which charm-refresh says in the application
    status. An API that does not answer is said in the unit status, and fails no hook.
    """
    specific = KafkaRefresh(
        workload_name=WORKLOAD_NAME,
        charm_name=CHARM_NAME,
        oci_resource_name=OCI_RESOURCE,
        checks=checks,
        rotating=rotating,
    )
    try:
        return Refresh(charm_refresh.Kubernetes(specific))
    except charm_refresh.KubernetesJujuAppNotTrusted:
        return Refresh(untrusted=True)
    except (charm_refresh.PeerRelationNotReady, charm_refresh.UnitTearingDown):
        return Refresh()
    except lightkube.ConfigError:
        return Refresh()
    except (lightkube.ApiError, httpx.HTTPError) as error:
        logger.warning("charm-refresh could not ask Kubernetes: %s", error)
        return Refresh(problem=f"Kubernetes' API did not answer: {error}")
