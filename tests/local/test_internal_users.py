# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The internal SCRAM users across broker restarts: why the leader writes them through the API.

The rolling-restart status test was withdrawn (8a0e678) because, after the tests before it, a
restarted unit refused SCRAM logins, the admin's and the inter-broker replica fetchers' alike.
Here the same restarts (one broker killed with `kill -9` and restarted by Pebble, another
restarted by Pebble) run on two clusters: one whose internal users exist only as the storage
format's `--add-scram` bootstrap records, as before, and one whose users the charm's leader also
wrote through the admin API once the cluster served (`rolling.ensure_internal_users`). Each
broker is then asked, on its own, to accept the internal users' logins; the SCRAM records in
each node's metadata log and snapshots are counted with Kafka's `DumpLogSegments`.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from admin import AdminError, KafkaAdmin
from models import ADMIN_USER
from substrate.processes import SubstrateError, tool_env, wait_until
from substrate.units import NewCluster, Unit


@pytest.fixture
def bootstrap_only(kafka_cache: Path, local_tmp: Path) -> Iterator[NewCluster]:
    """Three units whose internal users are only the storage format's bootstrap records."""
    tmp = Path(tempfile.mkdtemp(prefix="boot-", dir=local_tmp))
    with NewCluster(tmp, cache=kafka_cache, size=3, write_internal_users=False) as cluster:
        yield cluster


def _logins(cluster: NewCluster) -> dict[str, bool]:
    """Whether each broker, asked alone, accepts each internal SCRAM user."""
    answers = {}
    for unit in cluster.units:
        for user, password in cluster.credentials.scram_users.items():
            with KafkaAdmin(unit.node.client_address, user, password, timeout=8) as admin:
                answers[f"{unit.index}:{user}"] = admin.can_log_in()
    return answers


def _scram_records(unit: Unit) -> dict[str, int]:
    """UserScramCredential records in each file of a node's metadata log directory."""
    directory = Path(unit.paths.data) / "data/__cluster_metadata-0"
    counts = {}
    for path in sorted([*directory.glob("*.log"), *directory.glob("*.checkpoint")]):
        dump = subprocess.run(
            [
                f"{unit.paths.bin}/kafka-run-class.sh",
                "kafka.tools.DumpLogSegments",
                "--cluster-metadata-decoder",
                "--files",
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=tool_env(),
        )
        counts[path.name] = dump.stdout.count("USER_SCRAM_CREDENTIAL_RECORD")
    return counts


def _restart_two(cluster: NewCluster) -> None:
    """Kill broker 1 (Pebble restarts it), then restart broker 0 through Pebble."""
    admin = AdminClient(cluster.admin_config())
    for future in admin.create_topics([NewTopic("probe", 6, 3)]).values():
        future.result(timeout=60)
    killed = cluster.kill_broker(1)
    wait_until(
        lambda: cluster.units[1].broker_pid() not in (None, killed),
        timeout=60,
        what="Pebble to restart broker 1",
    )
    unit = cluster.units[0]
    before = unit.broker_pid()
    unit.container.restart("kafka")
    wait_until(lambda: unit.broker_pid() not in (None, before), timeout=60, what="a new broker 0")


def _in_sync(cluster: NewCluster) -> bool:
    bootstrap = ",".join(node.internal_address for node in cluster.nodes)
    try:
        with KafkaAdmin(bootstrap, ADMIN_USER, cluster.admin_password, timeout=8) as admin:
            health = admin.cluster_health()
    except AdminError:
        return False
    return health.in_sync and len(health.brokers) == len(cluster.units)


def test_bootstrap_only_users_after_restarts(bootstrap_only: NewCluster):
    """What the charm did before: printed, as the evidence of the cause (see README)."""
    _restart_two(bootstrap_only)
    try:
        wait_until(lambda: _in_sync(bootstrap_only), timeout=120, what="in-sync replicas")
        synced = True
    except SubstrateError:
        synced = False
    logins = _logins(bootstrap_only)
    refused = sorted(name for name, ok in logins.items() if not ok)
    print(f"\nbootstrap-only users: in sync after the restarts: {synced}; refused: {refused}")
    for unit in bootstrap_only.units:
        print(f"node {unit.index} SCRAM records: {_scram_records(unit)}")
    # Plain accept/refuse per broker, so the tier's log carries the comparison.
    assert logins


def test_users_written_through_the_api_survive_restarts(new_cluster: NewCluster):
    """The fix: every broker accepts every internal user after the same restarts."""
    _restart_two(new_cluster)
    wait_until(lambda: _in_sync(new_cluster), timeout=180, what="in-sync replicas")

    logins = _logins(new_cluster)

    assert [name for name, ok in logins.items() if not ok] == []
    for unit in new_cluster.units:
        print(f"\nnode {unit.index} SCRAM records: {_scram_records(unit)}")
