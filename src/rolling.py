# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Changing a running cluster without an outage: rolling restarts, dynamic options, rotation.

- `restart_in_turn` is what a unit does while it holds the rolling-restart lock: restart its
  broker if it runs with other settings, then wait until the broker is back and every partition
  is in sync, so the next unit may go. The charm's lock callback runs it; the local tier runs it
  unit by unit as the lock would.
- `apply_dynamic_options` sets the options Kafka changes at run time as cluster-wide broker
  defaults: no broker restarts for them.
- `apply_pending` and `admin_client` carry a password rotation: the pending passwords are already
  in the secret; each is set in Kafka on its own, admin's last; a client logs in with admin's
  current password, or the pending one once Kafka holds it.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

from admin import AdminError, KafkaAdmin
from config import BrokerConfig
from models import ADMIN_USER, InternalCredentials
from workload import BrokerSettings, KafkaWorkload

logger = logging.getLogger(__name__)

# How long a unit holding the lock waits for the cluster to be in sync, before and after its
# restart; the lock is kept (or given back, before) and the wait is retried after.
SYNC_TIMEOUT = 300.0
SYNC_INTERVAL = 5.0

AdminFactory = Callable[[str, str, str], KafkaAdmin]


class RestartOutcome(enum.Enum):
    """How a turn with the rolling-restart lock ended."""

    DONE = "the broker runs the current settings and every partition is in sync"
    CLUSTER_NOT_IN_SYNC = "partitions were under-replicated before the restart"
    NOT_BACK_IN_SYNC = "the restarted broker is not back in sync yet"


def _wait_in_sync(
    admin: KafkaAdmin,
    node_id: int | None,
    *,
    timeout: float,
    interval: float,
    sleep: Callable[[float], None],
) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            health = admin.cluster_health()
            if (node_id is None or node_id in health.brokers) and health.in_sync:
                return True
            logger.info(
                "waiting for %d under-replicated partitions%s",
                len(health.under_replicated),
                "" if node_id is None else f" and broker {node_id}",
            )
        except AdminError as error:
            logger.info("waiting for the cluster to answer: %s", error)
        if time.monotonic() >= deadline:
            return False
        sleep(interval)


def restart_in_turn(
    broker: KafkaWorkload,
    settings: BrokerSettings,
    admin: KafkaAdmin,
    *,
    timeout: float = SYNC_TIMEOUT,
    interval: float = SYNC_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
) -> RestartOutcome:
    """One unit's turn with the rolling-restart lock.

    Idempotent: a turn retried after its restart only waits for the cluster again.

    Args:
        broker: this unit's broker.
        settings: what the broker must run with.
        admin: an admin client of the cluster, to read which partitions are in sync.
        timeout: how long to wait for in-sync, before and after the restart.
        interval: seconds between two looks at the cluster.
        sleep: how to wait (tests pass a fake).
    """
    node = settings.node.node_id
    if broker.needs_restart(settings):
        # Never take a broker away while another replica is missing: that could leave a
        # partition below min.insync.replicas.
        if not _wait_in_sync(admin, None, timeout=timeout, interval=interval, sleep=sleep):
            return RestartOutcome.CLUSTER_NOT_IN_SYNC
        logger.info("restarting broker %s to apply new settings", node)
        broker.restart(settings)
        # Give the cluster's metadata a moment to show the old process gone, so the wait below
        # cannot read, from a broker not yet told, that all is as before.
        sleep(interval)
    if not _wait_in_sync(admin, node, timeout=timeout, interval=interval, sleep=sleep):
        return RestartOutcome.NOT_BACK_IN_SYNC
    return RestartOutcome.DONE


def apply_dynamic_options(admin: KafkaAdmin, config: BrokerConfig) -> dict[str, str]:
    """Set the dynamic options that differ, as cluster-wide broker defaults.

    Returns:
        What was changed.
    """
    wanted = config.dynamic_configs()
    current = admin.cluster_configs(wanted)
    changed = {name: value for name, value in wanted.items() if current.get(name) != value}
    if changed:
        admin.set_cluster_configs(changed)
        logger.info("set %s without a restart", ", ".join(sorted(changed)))
    return changed


def admin_client(
    bootstrap: str, credentials: InternalCredentials, connect: AdminFactory = KafkaAdmin
) -> KafkaAdmin:
    """An admin client that logs in: with admin's current password, else a pending one.

    A rotation that stopped after setting admin's new password in Kafka but before storing it
    as current leaves Kafka holding the pending one: both are tried.

    Raises:
        AdminError: if the cluster accepts neither.
    """
    passwords = credentials.admin_passwords()
    for password in passwords:
        admin = connect(bootstrap, ADMIN_USER, password)
        if len(passwords) == 1 or admin.can_log_in():
            return admin
        admin.close()
    raise AdminError("the cluster accepts neither the current nor the pending admin password")


def apply_pending(admin: KafkaAdmin, credentials: InternalCredentials) -> None:
    """Set every pending password in Kafka, one user at a time, admin's last.

    Setting a password again is harmless, so a rotation that failed half-way is finished by
    running this again. Admin's comes last: until then the current one logs in.

    Raises:
        AdminError: when Kafka refuses one; those before it are set, those after it are not.
    """
    users = sorted(credentials.pending, key=lambda user: (user == ADMIN_USER, user))
    for user in users:
        admin.upsert_user(user, credentials.pending[user])
        logger.info("pending password of %s set in Kafka", user)


def ensure_internal_users(admin: KafkaAdmin, credentials: InternalCredentials) -> None:
    """Write every internal SCRAM user through the admin API, as real metadata records.

    The storage format's `--add-scram` users are bootstrap records; see README ("The broker")
    for why the charm does not rely on them once the cluster serves.

    Raises:
        AdminError: when Kafka refuses one.
    """
    for user, password in credentials.scram_users.items():
        admin.upsert_user(user, password)
