# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""`start-migration dry-run=true` (`_preflight`) under ops.testing in `host.HostCharm`.

Both clusters are reached and the selection reported; nothing is started or requested.
"""

from __future__ import annotations

import pytest
from ops import testing

from tests.unit.migration.host import (
    SOURCE_PASSWORD,
    TARGET_PASSWORD,
    assert_no_secret_leaked,
    credentials,
    external,
    start,
    state,
)

pytestmark = pytest.mark.usefixtures("clusters")


def test_dry_run_reports_the_selection_and_starts_nothing(ctx, clusters):
    secret = credentials()
    out = start(ctx, state(config=external(secret), secrets=(secret,)), **{"dry-run": True})
    results = ctx.action_results or {}
    assert results["dry-run"] == "nothing was started"
    assert results["source"] == "old-0:9092: reachable, 3 topics, 3 groups"
    assert results["target"] == "reachable"
    assert results["topics"] == "orders, payments"
    assert results["topic-count"] == "2"
    assert results["partitions"] == "3"
    assert results["groups"] == "billing, shipping"
    assert results["group-count"] == "2"
    assert "mirrormaker" not in out.get_container("kafka").plan.services
    assert "mirrormaker-request" not in out.get_relations("cluster")[0].local_unit_data
    assert ("source", "migrator", SOURCE_PASSWORD) in clusters.logins
    assert ("target", "mirrormaker", TARGET_PASSWORD) in clusters.logins
    assert_no_secret_leaked(ctx, out)


def test_dry_run_warns_when_nothing_matches(ctx):
    secret = credentials()
    config = external(secret, **{"mirrormaker-topics": "nothing-.*"})
    start(ctx, state(config=config, secrets=(secret,)), **{"dry-run": True})
    assert "no source topic matches" in (ctx.action_results or {})["warning"]


@pytest.mark.parametrize("role", ["source", "target"])
def test_dry_run_with_an_unreachable_cluster_fails(ctx, clusters, role):
    clusters.unreachable.add(role)
    secret = credentials()
    with pytest.raises(testing.ActionFailed) as failed:
        start(ctx, state(config=external(secret), secrets=(secret,)), **{"dry-run": True})
    assert failed.value.message == f"{role} cluster at h:1 did not answer: timed out"


def test_dry_run_without_source_fails(ctx):
    with pytest.raises(testing.ActionFailed) as failed:
        start(ctx, state(), **{"dry-run": True})
    assert failed.value.message.startswith("no source cluster to migrate from")
