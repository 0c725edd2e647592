# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Failed MirrorMaker connectors and tasks restart themselves (`_restarts`), and on demand.

The backoff, the daily bound and the log are pure; the leader's restarts, the statuses every
unit shows and the `restart-mirrormaker` action run in the host charm, against `FakeClusters`
(whose `restart_requests` records what Connect was asked to restart).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from ops import testing

from charms.kafka_k8s.v0.mirrormaker import TargetCluster, _restarts
from charms.kafka_k8s.v0.mirrormaker._connectors import ConnectorState
from charms.kafka_k8s.v0.mirrormaker._restarts import DAY, RestartLog, RestartPolicy, judge
from charms.kafka_k8s.v0.mirrormaker._text import clip
from tests.unit.helpers import FENCED, LAGGING, FakeClusters, settings
from tests.unit.migration.host import credentials, external, peers, request, running, state

pytestmark = pytest.mark.usefixtures("clusters")

POLICY = RestartPolicy()
NOW = 1_000_000.0
BOOM = "org.apache.kafka.connect.errors.ConnectException: boom\n\tat x(X.java:1)"
# The status past the bound: what to do first, then as much of the error as fits.
EXHAUSTED = clip(
    "MirrorMaker MirrorSourceConnector-0 failed after 8 restarts today; fix the cause, then run "
    "restart-mirrormaker: ConnectException: boom"
)


def failed(since: float | None = NOW - 10, task: int | None = 0) -> ConnectorState:
    return ConnectorState(
        connector="MirrorSourceConnector", task=task, state="FAILED", trace=BOOM, since=since
    )


def log(*times: float, cleared: float = 0.0, everyone: float = 0.0) -> RestartLog:
    return RestartLog(
        times=times,
        tasks=("MirrorSourceConnector-0",),
        error="boom",
        cleared=cleared,
        everyone=everyone,
    )


# The backoff and the bound -------------------------------------------------------------------


def test_backoff_starts_at_a_minute_and_doubles_up_to_an_hour():
    assert [POLICY.delay(n) for n in range(8)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_first_restart_comes_a_minute_after_the_failure():
    waiting = judge([failed(since=NOW - 30)], RestartLog(), POLICY, NOW)
    assert waiting is not None
    assert (waiting.kind, waiting.due, waiting.restarts) == ("wait", NOW + 30, 0)
    due = judge([failed(since=NOW - 30)], RestartLog(), POLICY, NOW + 30)
    assert due is not None and due.kind == "restart"


def test_nothing_failed_nothing_to_do():
    running = ConnectorState(connector="MirrorSourceConnector", task=0, state="RUNNING")
    assert judge([running], log(NOW - 100), POLICY, NOW) is None


def test_each_restart_waits_twice_as_long_after_the_failure_or_the_last_restart():
    # Failed again 10 s after the first restart: the second waits 2 minutes from the failure.
    verdict = judge([failed(since=NOW - 10)], log(NOW - 20), POLICY, NOW)
    assert verdict is not None and (verdict.kind, verdict.due) == ("wait", NOW + 110)
    # Connect has not restarted the task yet (its failure is older than the restart).
    verdict = judge([failed(since=NOW - 500)], log(NOW - 20), POLICY, NOW)
    assert verdict is not None and verdict.due == NOW - 20 + 120


def test_past_the_daily_bound_it_stops_and_says_what_to_do():
    times = [NOW - 3600 * n for n in range(8, 0, -1)]
    verdict = judge([failed()], log(*times), POLICY, NOW)
    assert verdict is not None
    assert (verdict.kind, verdict.restarts, verdict.due) == ("exhausted", 8, times[0] + DAY)
    kind, message = verdict.shown(POLICY)
    assert kind == "blocked"
    assert message == EXHAUSTED


def test_restarts_older_than_a_day_or_before_a_clearing_do_not_count():
    times = (NOW - DAY - 1, NOW - 600, NOW - 60)
    assert log(*times).today(NOW) == (NOW - 600, NOW - 60)
    assert log(*times, cleared=NOW - 300).today(NOW) == (NOW - 60,)


def test_the_logs_of_every_unit_merge_into_the_newest():
    older = log(NOW - 600, everyone=NOW - 900)
    newer = RestartLog(times=(NOW - 60,), tasks=("MirrorCheckpointConnector",), error="x")
    merged = RestartLog.merged([newer, older, RestartLog(cleared=NOW - 700)])
    assert merged == RestartLog(
        times=(NOW - 600, NOW - 60),
        tasks=("MirrorCheckpointConnector",),
        error="x",
        cleared=NOW - 700,
        everyone=NOW - 900,
    )
    assert RestartLog.merged([]) == RestartLog()


def test_a_restart_is_logged_with_what_failed():
    after = RestartLog(times=(NOW - DAY - 5,)).restarted(NOW, [failed(), failed(task=1)])
    assert after.times == (NOW,)
    assert after.tasks == ("MirrorSourceConnector-0", "MirrorSourceConnector-1")
    assert after.error == "ConnectException: boom"


def test_watch_asks_connect_once_due_and_keeps_the_log(clusters: FakeClusters):
    target = running_target()
    shown, after = _restarts.watch(target, [failed(since=NOW - 5)], RestartLog(), POLICY, NOW)
    assert clusters.restart_requests == []
    assert after == RestartLog()
    assert shown is not None and shown[0] == "maintenance"
    shown, after = _restarts.watch(target, [failed(since=NOW - 60)], RestartLog(), POLICY, NOW)
    assert clusters.restart_requests == [["MirrorSourceConnector"]]
    assert after.times == (NOW,)
    assert shown == (
        "maintenance",
        "MirrorMaker MirrorSourceConnector-0 failed; restart 1 of 8 today restarted at "
        "13:46:40 UTC: ConnectException: boom",
    )


def test_watch_without_acting_restarts_nothing(clusters: FakeClusters):
    target = running_target()
    shown, after = _restarts.watch(
        target, [failed(since=NOW - 600)], RestartLog(), POLICY, NOW, act=False
    )
    assert clusters.restart_requests == []
    assert after == RestartLog()
    assert shown is not None and "restart 1 of 8 today due" in shown[1]


def test_a_target_that_does_not_answer_logs_no_restart(clusters: FakeClusters):
    clusters.unreachable.add("target")
    shown, after = _restarts.watch(
        running_target(), [failed(NOW - 600)], RestartLog(), POLICY, NOW
    )
    assert after == RestartLog()
    assert shown is not None and shown[0] == "maintenance"


def running_target() -> TargetCluster:
    return settings().target


# In the host charm: the leader restarts, every unit shows it -------------------------------------


def restart_log(out: testing.State) -> dict[str, object]:
    return json.loads(out.get_relations("cluster")[0].local_unit_data["mirrormaker-restarts"])


def failing(clusters: FakeClusters, since: float) -> None:
    clusters.tick = 0.0
    clusters.clock = NOW
    clusters.connectors[3] = failed(since=since)


def test_the_leader_restarts_a_failed_task_once_the_backoff_passed(ctx, clusters):
    failing(clusters, since=NOW - 30)
    out = ctx.run(ctx.on.update_status(), running())
    assert clusters.restart_requests == []
    assert out.unit_status == testing.MaintenanceStatus(
        "MirrorMaker MirrorSourceConnector-0 failed; restart 1 of 8 today due 13:47:10 UTC: "
        "ConnectException: boom"
    )
    clusters.clock = NOW + 30
    out = ctx.run(ctx.on.update_status(), out)
    assert clusters.restart_requests == [["MirrorSourceConnector"]]
    assert restart_log(out)["times"] == [NOW + 30]
    assert out.unit_status == testing.MaintenanceStatus(
        "MirrorMaker MirrorSourceConnector-0 failed; restart 1 of 8 today restarted at "
        "13:47:10 UTC: ConnectException: boom"
    )


def test_a_unit_that_is_not_the_leader_shows_the_failure_and_restarts_nothing(ctx, clusters):
    failing(clusters, since=NOW - 600)
    out = ctx.run(ctx.on.update_status(), dataclasses.replace(running(), leader=False))
    assert clusters.restart_requests == []
    assert isinstance(out.unit_status, testing.MaintenanceStatus)
    assert "mirrormaker-restarts" not in out.get_relations("cluster")[0].local_unit_data


def with_peer_log(base: testing.State, restarts: RestartLog) -> testing.State:
    cluster = base.get_relations("cluster")[0]
    assert isinstance(cluster, testing.PeerRelation)
    data = {**cluster.peers_data[1], "mirrormaker-restarts": restarts.model_dump_json()}
    relation = testing.PeerRelation(
        "cluster",
        local_unit_data=dict(cluster.local_unit_data),
        peers_data={**cluster.peers_data, 1: data},
    )
    return dataclasses.replace(base, relations={relation})


def test_a_new_leader_goes_on_counting_and_blocks_past_the_bound(ctx, clusters):
    failing(clusters, since=NOW - 30)
    times = tuple(NOW - 3600 * n for n in range(8, 0, -1))
    out = ctx.run(ctx.on.update_status(), with_peer_log(running(), log(*times)))
    assert clusters.restart_requests == []
    assert out.unit_status == testing.BlockedStatus(EXHAUSTED)


def test_once_running_again_the_status_counts_the_restarts_of_the_day(ctx, clusters):
    clusters.tick = 0.0
    clusters.clock = NOW
    out = ctx.run(ctx.on.update_status(), with_peer_log(running(), log(NOW - 600)))
    assert out.unit_status == testing.ActiveStatus(
        LAGGING.format(source="old-0:9092") + "; 1 MirrorMaker restart today" + FENCED
    )


def test_migration_status_shows_the_restarts_and_the_last_error(ctx, clusters):
    clusters.tick = 0.0
    clusters.clock = NOW
    ctx.run(ctx.on.action("migration-status"), with_peer_log(running(), log(NOW - 600)))
    assert json.loads(ctx.action_results["restarts"]) == {  # type: ignore[index]
        "today": 1,
        "limit-per-day": 8,
        "last": {
            "at": "1970-01-12T13:36:40Z",
            "tasks": ["MirrorSourceConnector-0"],
            "error": "boom",
        },
    }


# restart-mirrormaker -----------------------------------------------------------------------------


def test_restart_mirrormaker_restarts_failed_tasks_and_this_unit_and_clears_the_count(
    ctx, clusters
):
    failing(clusters, since=NOW - 30)
    times = tuple(NOW - 3600 * n for n in range(8, 0, -1))
    out = ctx.run(ctx.on.action("restart-mirrormaker"), with_peer_log(running(), log(*times)))
    assert clusters.restart_requests == [["MirrorSourceConnector"]]
    results = ctx.action_results or {}
    assert results["this-unit"] == "restarted"
    assert json.loads(results["restarted-tasks"]) == ["MirrorSourceConnector-0"]
    assert restart_log(out)["cleared"] == NOW
    # The bound starts anew: the next failure waits a minute again, not blocked.
    clusters.connectors[3] = failed(since=NOW + 5)
    out = ctx.run(ctx.on.update_status(), out)
    assert isinstance(out.unit_status, testing.MaintenanceStatus)
    assert "restart 1 of 8 today due" in out.unit_status.message


def test_restart_mirrormaker_all_restarts_every_unit_once(ctx, clusters):
    clusters.tick = 0.0
    clusters.clock = NOW
    out = ctx.run(ctx.on.action("restart-mirrormaker", params={"all": True}), running())
    assert (ctx.action_results or {})["all"] == "true"
    everyone = restart_log(out)["everyone"]
    assert everyone == NOW
    # Another unit that followed an older request restarts once as it sees it, not twice.
    other = with_peer_log(dataclasses.replace(running(), leader=False), RestartLog(everyone=NOW))
    stored = testing.StoredState(
        owner_path="HostCharm/Migration[mirrormaker-migration]/RestartActions[restarts]",
        content={"followed_restart": NOW - 500},
    )
    out = ctx.run(ctx.on.update_status(), dataclasses.replace(other, stored_states={stored}))
    assert restarted(ctx) == 1
    ctx.run(ctx.on.update_status(), out)
    assert restarted(ctx) == 1  # the log of both runs: no second restart


def restarted(ctx: testing.Context) -> int:
    return sum(
        "restarted MirrorMaker, as restart-mirrormaker" in line.message for line in ctx.juju_log
    )


def test_a_new_unit_does_not_follow_an_old_request_to_restart_every_unit(ctx, clusters):
    clusters.tick = 0.0
    ctx.run(ctx.on.update_status(), with_peer_log(running(), RestartLog(everyone=NOW)))
    assert restarted(ctx) == 0


def test_restart_mirrormaker_needs_a_running_migration(ctx):
    secret = credentials()
    stopped = state(
        config=external(secret),
        secrets=(secret,),
        cluster=peers(local={"mirrormaker-request": request("stopped", 1)}),
    )
    with pytest.raises(testing.ActionFailed, match="no migration runs"):
        ctx.run(ctx.on.action("restart-mirrormaker"), stopped)


def test_restart_mirrormaker_restarts_this_unit_when_the_target_does_not_answer(ctx, clusters):
    clusters.unreachable.add("target")
    ctx.run(ctx.on.action("restart-mirrormaker"), running())
    results = ctx.action_results or {}
    assert results["this-unit"] == "restarted"
    assert "did not answer" in results["tasks-not-restarted"]
