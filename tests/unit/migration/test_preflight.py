# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""`start-migration` and its preflight (`_preflight`) under ops.testing in `host.HostCharm`.

With `dry-run=true` both clusters are reached, the selection and the preflight's lines
reported, and nothing is started, requested or changed; a real start refuses what the preflight
blocks (unless forced) and prepares what it sets.
"""

from __future__ import annotations

import json

import pytest
from ops import testing

from charms.kafka_k8s.v0.mirrormaker import MigrationConfig, _capacity, _preflight
from tests.unit.migration.host import (
    SOURCE_PASSWORD,
    TARGET_PASSWORD,
    assert_no_secret_leaked,
    credentials,
    external,
    fails,
    properties,
    start,
    state,
    unit_request,
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


# --- the preflight: what no restart fixes (issue 26, item 3) --------------------------------

MIB = 1 << 20


def _dry_run(ctx, **options: object) -> dict[str, object]:
    secret = credentials()
    start(ctx, state(config=external(secret, **options), secrets=(secret,)), **{"dry-run": True})
    return dict(ctx.action_results or {})


def _lines(results: dict[str, object]) -> list[str]:
    return json.loads(str(results["preflight"]))


def test_nothing_found_is_said_so(ctx):
    results = _dry_run(ctx)
    assert _lines(results) == ["nothing found that would stop the copy"]
    assert results["preflight-blockers"] == "0"


def test_large_records_set_the_producer_and_the_copies_limits(ctx, clusters):
    clusters.details["source"] = {
        # A limit of its own: MirrorMaker copies it into the copy it creates.
        "orders": {"record_limit": 2 * MIB, "limit_copied": True},
        # The source brokers' own limit: MirrorMaker's copy would get this cluster's default.
        "payments": {"record_limit": 4 * MIB, "configs": {"cleanup.policy": "compact"}},
    }
    clusters.topics["target"]["orders"] = [100, 150]
    clusters.details["target"] = {"orders": {"record_limit": 1048588}}

    lines = _lines(_dry_run(ctx))

    assert lines == [
        "sets: topic orders accepts records up to 2.0 MiB (max.message.bytes on the source); "
        "its copy orders accepts 1.0 MiB: raised to max.message.bytes=2097152 before "
        "MirrorMaker starts",
        "sets: topic orders accepts records up to 2.0 MiB: MirrorMaker's producer sends up to "
        "max.request.size=4194304",
        "sets: topic payments accepts records up to 4.0 MiB (max.message.bytes on the source); "
        "its copy payments would get 1.0 MiB: created with max.message.bytes=4194304 "
        "before MirrorMaker starts",
        "sets: topic payments accepts records up to 4.0 MiB: MirrorMaker's producer sends up "
        "to max.request.size=4194304",
    ]
    assert not clusters.created and not clusters.raised  # a dry run changes nothing


def test_a_real_start_prepares_the_copies_and_renders_the_producers_limit(ctx, clusters):
    clusters.details["source"] = {
        "payments": {"record_limit": 4 * MIB, "configs": {"cleanup.policy": "compact"}},
    }
    secret = credentials()

    out = start(ctx, state(config=external(secret), secrets=(secret,)))

    assert clusters.created == {
        "payments": (1, 3, {"cleanup.policy": "compact", "max.message.bytes": str(4 * MIB)})
    }
    assert unit_request(out)["record_bytes"] == 4 * MIB
    props = properties(ctx, out)
    assert props["target.producer.max.request.size"] == str(4 * MIB)
    assert "target.producer.buffer.memory" not in props  # 32 MiB hold two of them


def test_records_larger_than_any_request_block_the_start(ctx, clusters):
    clusters.details["source"] = {"orders": {"record_limit": 200 * MIB, "limit_copied": True}}
    secret = credentials()
    before = state(config=external(secret), secrets=(secret,))

    message = fails(ctx, before, "start-migration")

    assert message.startswith(
        "the preflight found what would fail the copy: topic orders accepts records up to "
        "200.0 MiB, more than any broker takes in one request (100.0 MiB)"
    )
    assert message.endswith("run start-migration force=true to start all the same")


def test_a_copy_that_collides_with_a_topic_here_blocks_and_force_starts(ctx, clusters):
    clusters.topics["source"]["orders.eu"] = [10]
    clusters.topics["target"]["orders_eu"] = [3]
    secret = credentials()
    before = state(config=external(secret), secrets=(secret,))

    lines = _lines(_dry_run(ctx))
    message = fails(ctx, before, "start-migration")
    forced = start(ctx, before, force=True)

    assert lines[0] == (
        "blocks: topic orders.eu: this cluster cannot create its copy orders.eu, which collides "
        "with its topic orders_eu (Kafka takes '.' and '_' alike in topic names): rename or "
        "delete orders_eu here, or exclude orders.eu with mirrormaker-topics-exclude"
    )
    assert "collides with its topic orders_eu" in message
    assert unit_request(forced)["state"] == "running"


def test_more_bytes_than_this_cluster_has_free_block(ctx, clusters):
    clusters.details["source"] = {"orders": {"size_bytes": 400 * MIB}}
    clusters.storage["target"] = (3, 1000 * MIB)

    lines = _lines(_dry_run(ctx))

    assert lines[0] == (
        "blocks: the copies need about 1,200.0 MiB here (3 replicas), and this cluster has "
        "1,000.0 MiB free: grow its storage, or migrate in parts (mirrormaker-topics)"
    )


def test_unknown_free_storage_and_thinner_replicas_and_an_old_source_are_warned(ctx, clusters):
    clusters.details["source"] = {"orders": {"replication_factor": 5}}
    clusters.storage["target"] = (3, None)
    clusters.version = (2, 1)

    lines = _lines(_dry_run(ctx))

    assert lines == [
        "warns: 1 topics (orders) have replication factor 5 on the source; their copies get 3, "
        "as many as this cluster's units allow: add units before the cutover for the same "
        "durability",
        "warns: the copies need about 9,000 bytes here (3 replicas), and this cluster's free "
        "storage is unknown (its log dirs are not described to MirrorMaker's user): check that "
        "it fits",
        "warns: the source runs Kafka 2.1, older than the 2.8 this migration is tested from: try "
        "it on a copy of a few topics first (mirrormaker-topics)",
    ]


def test_more_partitions_than_a_broker_should_carry_are_warned():
    facts = _preflight.Facts(
        source={
            "clicks": _capacity.TopicDetails(
                partitions=5000, replication_factor=1, record_limit=1048588, size_bytes=0
            )
        },
        target=_preflight.TargetFacts(brokers=3, replicas=1000, free_bytes=1 << 40),
        source_version=(3, 9),
    )

    found = _preflight.judge(facts, MigrationConfig(), replication=3)

    assert [f.line() for f in found.findings] == [
        "warns: the copies bring this cluster to 5,333 partition replicas per broker, past the "
        "4,000 a Kafka broker should carry: add units first, or migrate in parts "
        "(mirrormaker-topics)"
    ]
    assert found.blockers == []


def test_an_unreachable_source_stops_a_real_start_unless_forced(ctx, clusters):
    clusters.unreachable.add("source")
    secret = credentials()
    before = state(config=external(secret), secrets=(secret,))

    message = fails(ctx, before, "start-migration")
    forced = start(ctx, before, force=True)

    assert message == (
        "source cluster at h:1 did not answer: timed out: the preflight could not run; nothing "
        "was started (run start-migration force=true to start without it)"
    )
    assert unit_request(forced)["state"] == "running"
