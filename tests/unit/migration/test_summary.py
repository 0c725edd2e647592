# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The status while this unit runs MirrorMaker (`_summary`), under ops.testing in `host.HostCharm`.

It is queried once per hook and stored, so collect-status never waits for a cluster; between
refreshes it remembers the source's end offsets, and since when they have not moved.
"""

from __future__ import annotations

import pytest
from ops import testing

from charms.kafka_k8s.v0.mirrormaker import _connections
from tests.unit.helpers import FENCED, LAGGING
from tests.unit.migration.host import running

pytestmark = pytest.mark.usefixtures("clusters")


def test_status_while_lagging_is_refreshed_on_update_status(ctx, clusters):
    out = ctx.run(ctx.on.update_status(), running())
    lagging = testing.ActiveStatus(LAGGING.format(source="old-0:9092") + FENCED)
    assert (out.unit_status, out.app_status) == (lagging, lagging)
    assert set(clusters.timeouts) == {_connections.STATUS_TIMEOUT}
    clusters.in_sync()
    again = ctx.run(ctx.on.update_status(), out)
    ready = "in sync with old-0:9092: ready for cutover" + FENCED
    assert again.unit_status == testing.ActiveStatus(ready)


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("unreachable", "source cluster at h:1 did not answer: timed out"),
        ("refused", "source cluster at h:1 refused the login of migrator: invalid credentials"),
    ],
)
def test_status_when_the_source_fails(ctx, clusters, problem, message):
    getattr(clusters, problem).add("source")
    out = ctx.run(ctx.on.update_status(), running())
    assert out.unit_status == testing.BlockedStatus(message)
    assert out.app_status == testing.BlockedStatus(message)


def test_status_does_not_query_the_clusters_in_collect_status(ctx, clusters):
    out = ctx.run(ctx.on.update_status(), running())
    assert len(clusters.logins) == 2
    ctx.run(ctx.on.action("stop-migration"), out)
    assert len(clusters.logins) == 2


def test_status_summary_is_dropped_once_stopped(ctx, clusters):
    out = ctx.run(ctx.on.update_status(), running())
    stopped = ctx.run(ctx.on.action("stop-migration"), out)
    assert stopped.unit_status == testing.ActiveStatus("migration stopped" + FENCED)


def test_the_status_says_ready_once_the_source_stayed_quiet_between_refreshes(ctx, clusters):
    clusters.in_sync()
    clusters.tick = 4.0
    first = ctx.run(ctx.on.update_status(), running())
    assert first.unit_status == testing.ActiveStatus(
        "migrating from old-0:9092: 2 topics, lag 0 records; the source has been quiet for 0 s "
        "of the 10 s the cutover waits f..."
    )
    second = ctx.run(ctx.on.update_status(), first)
    assert "quiet for 4 s of the 10 s" in second.unit_status.message
    clusters.tick = 60.0
    third = ctx.run(ctx.on.update_status(), second)
    assert third.unit_status == testing.ActiveStatus(
        "in sync with old-0:9092: ready for cutover" + FENCED
    )
    clusters.topics["source"]["orders"][0] += 5
    clusters.topics["target"]["orders"][0] += 5
    written = ctx.run(ctx.on.update_status(), third)
    assert (
        "the source is still written: 5 records arrived on orders" in written.unit_status.message
    )
