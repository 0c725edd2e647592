# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The fence (`_fence`): the topics no client may write, and MirrorMaker's topic selection.

The selection's ACL patterns without a cluster; then under ops.testing in `host.HostCharm`:
while a migration is requested and not finished, the topics any unit saw it select in this
migration are fenced, and every name its selection matches, unless `mirrormaker-fence-target`
is false; the fence only grows until a wave promotes a topic or the migration finishes.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from ops import testing

from charms.kafka_k8s.v0.mirrormaker import FencedTopics, TopicSelection, _fence
from tests.unit.migration.host import migration_status, peers, request, running

pytestmark = pytest.mark.usefixtures("clusters")


# The selection, without a cluster ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "beginning"),
    [
        ("orders", ("orders", True)),
        (r"orders\..*", ("orders.", False)),
        (r"orders\.eu", ("orders.eu", True)),
        (".*", ("", False)),
        ("ord(ers|ering)", ("ord", False)),
        ("orders?", ("order", False)),
        ("orders*", ("order", False)),
        ("orders+", ("orders", False)),
        ("ab{2}", ("a", False)),
        ("(?i)orders", ("", False)),
        (r"\d+orders", ("", False)),
        ("pay[a-z]+", ("pay", False)),
    ],
)
def test_a_patterns_literal_beginning(pattern, beginning):
    assert _fence.literal_beginning(pattern) == beginning


def test_acl_patterns_cover_every_name_the_selection_matches():
    selection = TopicSelection(
        include=(r"orders\..*|payments", "audit", ".*-eu"), exclude=("audit",)
    )
    literals, prefixes = selection.acl_patterns()
    assert literals == {"payments"}  # audit is excluded
    assert prefixes == {"orders.", ""}  # .*-eu begins with anything
    prefixed = TopicSelection(include=(r"orders\..*",), target_prefix="source.")
    assert prefixed.acl_patterns() == (set(), {"source.orders."})
    assert prefixed.matches("source.orders.eu")
    assert not prefixed.matches("orders.eu")
    assert not prefixed.matches("source.orders.internal")


def test_promoted_topics_are_never_fenced():
    fenced = FencedTopics(
        names=frozenset({"orders.eu", "payments"}),
        selections=(TopicSelection(include=(r"orders\..*",)),),
        promoted=frozenset({"orders.eu"}),
    )
    assert not fenced.covers("orders.eu")
    assert fenced.covers("orders.us")  # not created yet, but MirrorMaker would copy it
    assert fenced.covers("payments")
    assert not fenced.covers("audit")
    assert fenced.known() == ["payments"]
    assert fenced.acl_patterns() == (frozenset({"payments"}), frozenset({"orders."}))
    assert FencedTopics(promoted=frozenset({"orders"})).empty


# Under ops.testing -------------------------------------------------------------------------------


def test_the_fence_follows_the_migration(ctx, clusters):
    out = ctx.run(ctx.on.update_status(), running())
    published = json.loads(out.get_relations("cluster")[0].local_unit_data["mirrormaker-topics"])
    assert published["topics"] == ["orders", "payments"]
    _, results = migration_status(ctx, out)
    assert results["fence"] == (
        "writes fenced on 2 topics until finish-migration, and on every topic "
        "mirrormaker-topics selects"
    )
    assert json.loads(results["fenced-topics"]) == ["orders", "payments"]


def test_the_fence_is_the_union_of_what_the_units_saw(ctx):
    cluster = peers(
        {"mirrormaker-topics": json.dumps(["orders"])},
        {"mirrormaker-topics": "not json"},
        local={
            "mirrormaker-request": request("stopped", 2),
            "mirrormaker-topics": json.dumps(["audit"]),
        },
    )
    out = ctx.run(ctx.on.update_status(), dataclasses.replace(running(), relations={cluster}))
    assert out.unit_status == testing.ActiveStatus(
        "migration stopped; writes fenced on audit, orders"
    )


def test_the_fence_can_be_turned_off(ctx):
    before = running(**{"mirrormaker-fence-target": False})
    out = ctx.run(ctx.on.update_status(), before)
    assert out.unit_status == testing.ActiveStatus(
        "migrating from old-0:9092: 2 topics, lag 100 records"
    )
    _, results = migration_status(ctx, out)
    assert results["fence"] == "off: mirrormaker-fence-target is false"
    assert json.loads(results["fenced-topics"]) == []


def fenced_relation(topics: list[str], **local: str) -> testing.PeerRelation:
    published = json.dumps({"migration": 1, "topics": topics})
    return peers(
        local={
            "mirrormaker-request": json.dumps(
                {"state": "running", "seq": 1, "at": 1, "by": "kafka-k8s/0", "migration": 1}
            ),
            "mirrormaker-topics": published,
            **local,
        }
    )


def test_the_fence_holds_when_the_source_stops_showing_the_topics(ctx, clusters):
    """Issue 23: the fence was what the units last saw: a source user losing DESCRIBE lifted it."""
    clusters.in_sync()
    clusters.topics["source"] = {"__consumer_offsets": [9]}  # orders and payments hidden
    before = dataclasses.replace(running(), relations={fenced_relation(["orders", "payments"])})
    out = ctx.run(ctx.on.update_status(), before)
    _, results = migration_status(ctx, out)
    assert json.loads(results["fenced-topics"]) == ["orders", "payments"]
    published = json.loads(out.get_relations("cluster")[0].local_unit_data["mirrormaker-topics"])
    assert published["topics"] == ["orders", "payments"]
    why = (
        "the source does not show orders, payments any more: its user may have lost DESCRIBE "
        "on them, or they were deleted there; they stay fenced until finish-migration"
    )
    assert json.loads(results["reasons"])[0] == why
    assert out.unit_status == testing.ActiveStatus(
        "migrating from old-0:9092: 0 topics, lag 0 records; the source does not show orders, "
        "payments any more: its user may ..."
    )


def test_the_fence_holds_when_the_pattern_matches_nothing(ctx, clusters):
    clusters.in_sync()
    before = dataclasses.replace(
        running(**{"mirrormaker-topics": "nothing-matches"}),
        relations={fenced_relation(["orders", "payments"])},
    )
    out = ctx.run(ctx.on.update_status(), before)
    _, results = migration_status(ctx, out)
    assert json.loads(results["fenced-topics"]) == ["orders", "payments"]
    assert json.loads(results["reasons"])[0] == (
        "mirrormaker-topics no longer selects orders, payments: they stay fenced until "
        "finish-migration"
    )


def test_the_fence_grows_with_what_peers_saw_and_forgets_another_migration(ctx):
    local = fenced_relation(["orders"])
    relation = dataclasses.replace(
        local,
        peers_data={
            1: {"mirrormaker-topics": json.dumps({"migration": 1, "topics": ["refunds"]})},
            2: {"mirrormaker-topics": json.dumps({"migration": 0, "topics": ["old-run"]})},
        },
    )
    out = ctx.run(ctx.on.update_status(), dataclasses.replace(running(), relations={relation}))
    published = json.loads(out.get_relations("cluster")[0].local_unit_data["mirrormaker-topics"])
    assert published["topics"] == ["orders", "payments", "refunds"]
