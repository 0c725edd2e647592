# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""`juju refresh` with charm-refresh, as kafka-k8s wires it (issue 26, item 5).

charm-refresh's own object needs a real Juju and Kubernetes (hook tools, the StatefulSet's
partition), so here it is `helpers.FakeRefresh` with the values each test sets, as Canonical's
data charms test theirs. What is kafka-k8s's own is real: a refreshed unit's broker starts only
when the refresh allows it, the next unit goes only once this one is healthy (broker back, every
partition in sync, MirrorMaker running again while a migration is requested), the refresh's
statuses come first, and the checks and compatibility rule charm-refresh asks for.
"""

from __future__ import annotations

import dataclasses
import json

import charm_refresh
import httpx
import ops
import pytest
from ops import testing

import refresh
from admin import ClusterHealth
from tests.unit.helpers import REPO, running, serving

pytestmark = pytest.mark.usefixtures("clusters")
# The charm's own, before the autouse `refreshing` fixture replaces it for the charm's tests.
OPEN_REFRESH = refresh.open_refresh


def _upgraded(state: testing.State) -> testing.State:
    """The unit's pod as a refresh leaves it: a new container, nothing running in it."""
    fresh = dataclasses.replace(
        state.get_container("kafka"), layers={}, service_statuses={}, check_infos=frozenset()
    )
    return dataclasses.replace(state, containers={fresh})


def test_a_refreshed_unit_waits_for_the_refresh_before_starting_its_broker(ctx, refreshing):
    state, _ = serving(ctx)
    started = ctx.run(ctx.on.action("start-migration"), state)
    refreshing.in_progress, refreshing.workload_allowed_to_start = True, False

    out = ctx.run(ctx.on.upgrade_charm(), _upgraded(started))

    assert out.get_container("kafka").plan.services == {}
    assert out.unit_status == testing.WaitingStatus(
        "waiting for the refresh to let this unit start"
    )
    # The migration's request and its fenced topics are in the peer relation, not the pod.
    before, after = (s.get_relations("cluster")[0].local_unit_data for s in (started, out))
    assert after["mirrormaker-request"] == before["mirrormaker-request"]
    assert after["mirrormaker-topics"] == before["mirrormaker-topics"]
    assert refreshing.allowed_next == []


def test_the_next_unit_goes_once_broker_partitions_and_mirrormaker_are_back(
    ctx, refreshing, kafka
):
    state, _ = serving(ctx)
    started = ctx.run(ctx.on.action("start-migration"), state)
    refreshing.in_progress = True
    kafka.under_replicated = ("orders-0",)

    lagging = ctx.run(ctx.on.update_status(), started)
    kafka.under_replicated = ()
    healthy = ctx.run(ctx.on.update_status(), lagging)

    assert lagging.unit_status == testing.MaintenanceStatus(
        "refresh waits before the next unit: 1 partitions are not back in sync"
    )
    assert refreshing.allowed_next == [True]
    assert healthy.get_container("kafka").service_statuses["mirrormaker"] == (
        ops.pebble.ServiceStatus.ACTIVE
    )


def test_mid_refresh_a_pod_whose_container_does_not_answer_waits(ctx, refreshing):
    state, _ = serving(ctx)
    refreshing.in_progress = True
    gone = dataclasses.replace(state.get_container("kafka"), can_connect=False)

    out = ctx.run(ctx.on.update_status(), dataclasses.replace(state, containers={gone}))

    assert out.unit_status == testing.WaitingStatus("waiting for the kafka container")
    assert refreshing.allowed_next == []


@pytest.mark.parametrize(
    ("brokers", "lagging", "mirrormaker", "waiting"),
    [
        ({1, 2}, (), None, "its broker has not joined the cluster again"),
        ({0, 1, 2}, ("orders-0", "orders-1"), None, "2 partitions are not back in sync"),
        ({0, 1, 2}, (), "backoff", "its MirrorMaker is backoff, not running again"),
        ({0, 1, 2}, (), "active", None),
        ({0, 1, 2}, (), None, None),  # no migration requested
    ],
)
def test_a_refreshed_unit_is_healthy_once_broker_partitions_and_mirrormaker_are_back(
    brokers, lagging, mirrormaker, waiting
):
    health = ClusterHealth(brokers=frozenset(brokers), under_replicated=lagging)
    assert refresh.next_unit_may_refresh(health, 0, mirrormaker=mirrormaker) == waiting


def test_no_refresh_in_progress_asks_nothing(ctx, refreshing, kafka):
    state, _ = serving(ctx)
    logins = len(kafka.logins)

    ctx.run(ctx.on.update_status(), state)

    assert refreshing.allowed_next == []
    assert len(kafka.logins) == logins + 1  # the leader's own reconcile, no refresh check


def test_the_refreshs_statuses_come_first(ctx, refreshing, etc):
    refreshing.unit_status_higher_priority = ops.BlockedStatus("Refresh incompatible")
    refreshing.app_status_higher_priority = ops.BlockedStatus("Rollback with juju refresh")

    out, _ = running(ctx, etc)

    assert out.unit_status == testing.BlockedStatus("Refresh incompatible")
    assert out.app_status == testing.BlockedStatus("Rollback with juju refresh")


def test_the_quiet_refresh_status_replaces_the_role_only(ctx, refreshing, etc):
    refreshing.quiet = ops.ActiveStatus("Kafka 3.9.0 running; Charm revision 12")

    out, _ = running(ctx, etc)

    assert out.unit_status == testing.ActiveStatus("Kafka 3.9.0 running; Charm revision 12")


def test_without_trust_the_charm_leaves_the_app_status_to_charm_refresh(ctx, etc, monkeypatch):
    monkeypatch.setattr(refresh, "open_refresh", lambda *_: refresh.Refresh(untrusted=True))

    out, _ = running(ctx, etc)

    assert out.app_status == testing.UnknownStatus()
    assert out.unit_status == testing.ActiveStatus("broker and controller")


# --- what charm-refresh asks of kafka-k8s ----------------------------------------------------


@pytest.mark.parametrize(
    ("brokers", "lagging", "problem"),
    [
        ({0, 2}, (), "Brokers 1 not registered"),
        ({0, 1, 2}, ("orders-3",), "1 partitions under-replicated"),
        ({0, 1, 2}, (), None),
    ],
)
def test_a_refresh_starts_only_on_a_cluster_whose_brokers_are_all_in(brokers, lagging, problem):
    health = ClusterHealth(brokers=frozenset(brokers), under_replicated=lagging)
    assert refresh.pre_refresh_problem(health, [0, 1, 2]) == problem


def test_the_leaders_check_asks_the_cluster(ctx, kafka):
    state, _ = serving(ctx)
    kafka.under_replicated = ("orders-0", "orders-1")

    with ctx(ctx.on.update_status(), state) as manager:
        manager.run()
        problem = manager.charm._refresh_checks()

    assert problem == "2 partitions under-replicated"


@pytest.fixture
def specific(monkeypatch) -> refresh.KafkaRefresh:
    monkeypatch.chdir(REPO)  # charm-refresh reads refresh_versions.toml from the charm's root
    return refresh.KafkaRefresh(
        workload_name=refresh.WORKLOAD_NAME,
        charm_name=refresh.CHARM_NAME,
        oci_resource_name=refresh.OCI_RESOURCE,
    )


def test_pre_refresh_checks_refuse_an_unhealthy_cluster_or_a_rotation(specific):
    specific.checks = lambda: "2 partitions under-replicated"
    with pytest.raises(charm_refresh.PrecheckFailed, match="2 partitions under-replicated"):
        specific.run_pre_refresh_checks_before_any_units_refreshed()

    specific.checks = lambda: None
    specific.run_pre_refresh_checks_before_any_units_refreshed()
    specific.rotating = lambda: True
    with pytest.raises(charm_refresh.PrecheckFailed, match="Password rotation in progress"):
        specific.run_pre_refresh_checks_after_1_unit_refreshed()


@pytest.mark.parametrize(
    ("old", "new", "compatible"),
    [
        ("3.9.0", "3.9.0", True),
        ("3.9.0", "3.9.1", True),
        ("3.9.0", "4.0.0", False),
        ("3.9.1", "3.8.0", False),
    ],
)
def test_refreshes_keep_the_kafka_major_and_go_forwards(specific, old, new, compatible):
    version = charm_refresh.CharmVersion("3/1.0.0")
    assert (
        specific.is_compatible(
            old_charm_version=version,
            new_charm_version=version,
            old_workload_version=old,
            new_workload_version=new,
        )
        is compatible
    )


def test_charmcraft_declares_what_charm_refresh_needs():
    import yaml

    declared = yaml.safe_load((REPO / "charmcraft.yaml").read_text())
    assert declared["peers"]["refresh-v-three"] == {"interface": "refresh"}
    assert {"pre-refresh-check", "force-refresh-start", "resume-refresh"} <= set(
        declared["actions"]
    )
    assert declared["config"]["options"]["pause-after-unit-refresh"]["default"] == "first"
    assert "refresh_versions.toml" in declared["parts"]["templates"]["stage"]
    assert json.dumps(declared["resources"][refresh.OCI_RESOURCE]).count("@sha256:") == 1


def test_without_its_peer_relation_or_on_a_departing_unit_the_charm_runs_without_it(
    monkeypatch,
):
    monkeypatch.chdir(REPO)

    def refuse(_specific):
        raise charm_refresh.PeerRelationNotReady

    monkeypatch.setattr(charm_refresh, "Kubernetes", refuse)
    opened = OPEN_REFRESH(lambda: None, lambda: False)

    assert opened.refresh is None and not opened.untrusted and opened.workload_allowed
    assert opened.unit_status() is None and opened.quiet_status(running=True) is None


def test_a_kubernetes_api_that_does_not_answer_fails_no_hook_and_is_said(monkeypatch):
    monkeypatch.chdir(REPO)

    def unreachable(_specific):
        raise httpx.ConnectError("connection refused")

    monkeypatch.setattr(charm_refresh, "Kubernetes", unreachable)
    opened = OPEN_REFRESH(lambda: None, lambda: False)

    assert opened.refresh is None and opened.workload_allowed
    assert opened.unit_status() == ops.MaintenanceStatus(
        "charm-refresh: Kubernetes' API did not answer: connection refused"
    )
