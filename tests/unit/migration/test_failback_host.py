# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Failbacks in the host (`_failback_host`) under ops.testing in `host.HostCharm`.

`start-failback` and `finish-failback`, the copy back on each unit, what `migration-status` and
the status say, and the fence afterwards. The clusters are `helpers.FakeClusters`: the source
cluster is `source`, this cluster `target`; their `FakeLogs` synthesize the same record at the
same offset of a partition on both, so the copy back holds what it copied at the offsets it
started from. `host.promoted` is a migration whose wave 1 promoted `orders` at end offsets 100
and 200; `host.failing_back` has 50 records per partition written here since.
"""

from __future__ import annotations

import dataclasses
import json
import stat

import ops
import pytest
from ops import testing

from charms.kafka_k8s.v0.mirrormaker import _records
from tests.unit.helpers import (
    ACTIVE,
    FakeClusters,
    copied_back,
    failback_request,
    failing_back,
    load_properties,
    promoted_request,
    resolve_references,
)
from tests.unit.migration.host import (
    FAILBACK_PASSWORD,
    TARGET_PASSWORD,
    assert_no_secret_leaked,
    failback_credentials,
    fails,
    file,
    migration_status,
    promoted,
    properties,
    running_container,
    service,
    unit_request,
)

pytestmark = pytest.mark.usefixtures("clusters")

PROPERTIES = "/etc/kafka/mm2-failback.properties"
SECRETS = "/etc/kafka/mm2-failback-secrets.properties"
SEED_TOPIC = "mm2-offsets.failback.internal"
REFUSED_UNCHANGED = "nothing was changed"


def start(ctx: testing.Context, before: testing.State, **params: object) -> testing.State:
    return ctx.run(ctx.on.action("start-failback", params=params), before)


def finish(ctx: testing.Context, before: testing.State, **params: object) -> testing.State:
    return ctx.run(ctx.on.action("finish-failback", params=params), before)


def recorded(out: testing.State) -> dict:
    return json.loads(out.get_relations("cluster")[0].local_unit_data["mirrormaker-failback"])


def copy_back(ctx: testing.Context, out: testing.State) -> dict[str, str]:
    """The copy back's configuration as MirrorMaker reads it, references resolved."""
    files = {SECRETS: (file(ctx, out, SECRETS)).read_text()}
    return resolve_references(load_properties(file(ctx, out, PROPERTIES).read_text()), files)


def running_failback(**kwargs) -> testing.State:
    """The failback of `orders` runs: its copy back on this unit and on the peer."""
    return promoted(
        writer=failback_credentials(),
        local={"mirrormaker-failback": failback_request()},
        peer={"mirrormaker-failback-state": ACTIVE},
        container=running_container("mirrormaker-failback"),
        **kwargs,
    )


def assert_unchanged(clusters: FakeClusters, out: testing.State) -> None:
    """A refusal changed neither cluster, nor the peer data, nor the container."""
    assert clusters.written == {}
    assert SEED_TOPIC not in clusters.topics["source"]
    assert (clusters.switched, clusters.deleted) == ([], [])
    assert "mirrormaker-failback" not in out.get_relations("cluster")[0].local_unit_data
    assert service(out, "mirrormaker-failback") is None


# start-failback --------------------------------------------------------------------------------


def test_start_failback_copies_back_from_the_waves_end_offsets(ctx, clusters):
    failing_back(clusters)
    out = start(ctx, promoted(writer=failback_credentials()), topics="orders")

    results = ctx.action_results or {}
    assert results["state"] == "running"
    assert json.loads(results["start-offsets"]) == {"orders": [100, 200]}
    assert results["this-unit"] == "active"
    assert results["message"].startswith("failing back orders to old-0:9092: MirrorMaker copies")
    # Where each partition's copy back starts: Connect's record of the offset before the wave's
    # end, in the copy back's offsets topic on the source cluster, made for it.
    assert clusters.written == {
        ("source", SEED_TOPIC): [
            _records.encode_source_offset("failback", ("orders", 0), 99),
            _records.encode_source_offset("failback", ("orders", 1), 199),
        ]
    }
    assert SEED_TOPIC in clusters.topics["source"]
    current = recorded(out)["current"]
    assert (current["topics"], current["waves"]) == (["orders"], {"orders": 1})
    assert current["target_offsets"] == current["source_offsets"] == {"orders": [100, 200]}
    assert service(out, "mirrormaker-failback") == ops.pebble.ServiceStatus.ACTIVE
    assert service(out) is None  # the migration's MirrorMaker stays stopped
    copy = copy_back(ctx, out)
    assert copy["failback->source.enabled"] == "true"
    assert copy["source->failback.enabled"] == "false"
    assert copy["topics"] == "orders"
    assert copy["listeners"] == "http://kafka-k8s-0.kafka-k8s-endpoints:8084"
    assert copy["source.bootstrap.servers"] == "old-0:9092,old-1:9092"
    assert 'username="writer"' in copy["source.sasl.jaas.config"]
    assert f'password="{FAILBACK_PASSWORD}"' in copy["source.sasl.jaas.config"]
    assert f'password="{TARGET_PASSWORD}"' in copy["failback.sasl.jaas.config"]
    raw = file(ctx, out, PROPERTIES).read_text()
    assert FAILBACK_PASSWORD not in raw and TARGET_PASSWORD not in raw
    for path in (PROPERTIES, SECRETS):
        mode = file(ctx, out, path).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600
    assert out.unit_status == testing.ActiveStatus(
        "failing back orders to old-0:9092: finish-failback once migration-status says it is ready"
    )
    assert_no_secret_leaked(ctx, out)


def test_start_failback_refuses_without_write_credentials_and_changes_nothing(ctx, clusters):
    failing_back(clusters)
    message = fails(ctx, promoted(), "start-failback")
    assert message.startswith(
        "a failback writes on old-0:9092, and the migration's user there may only read: put the "
        "username and password of a user that may write there in a Juju secret, grant it to "
        "kafka-k8s and set mirrormaker-failback-credentials (the user needs READ, WRITE and "
        "DESCRIBE on the topics"
    )
    assert message.endswith(REFUSED_UNCHANGED)
    assert_unchanged(clusters, promoted())
    assert clusters.logins == []  # no cluster was asked


@pytest.mark.parametrize(
    ("state_of", "topics"), [("finished", "payments"), ("running", "pay.*"), ("finished", "(")]
)
def test_start_failback_refuses_a_topic_never_promoted(ctx, clusters, state_of, topics):
    failing_back(clusters)
    before = promoted(writer=failback_credentials(), state_of=state_of)
    message = fails(ctx, before, "start-failback", topics=topics)
    if topics == "(":
        assert message.startswith("topics: '(' is not a topic name or a valid regular expression")
    else:
        assert message == (
            f"topics: {topics!r} matches no promoted topic (promoted: orders): a topic no wave "
            "of finish-migration promoted never left the source cluster; nothing was changed"
        )
    assert_unchanged(clusters, ctx.run(ctx.on.update_status(), before))


def test_start_failback_refuses_before_any_migration(ctx):
    before = dataclasses.replace(promoted(), relations={promoted().get_relations("cluster")[0]})
    peers = before.get_relations("cluster")[0]
    empty = dataclasses.replace(peers, local_unit_data={})
    message = fails(ctx, dataclasses.replace(before, relations={empty}), "start-failback")
    assert message == "no migration: start-migration was never run; nothing was changed"


def test_start_failback_refuses_a_source_written_since_the_wave(ctx, clusters):
    failing_back(clusters)
    clusters.topics["source"]["orders"] = [103, 200]
    before = promoted(writer=failback_credentials())
    message = fails(ctx, before, "start-failback")
    assert message == (
        "the source cluster was written after the cutover: orders[0] (3 records) past the end "
        "offsets their wave recorded, records this cluster lacks. Nothing was changed: look at "
        "those records first, or run start-failback force=true to copy this cluster's records "
        "back after them"
    )
    assert_unchanged(clusters, before)

    out = start(ctx, before, force=True)
    assert json.loads((ctx.action_results or {})["forced"]) == [message.split(". Nothing")[0]]
    # The copy back goes on from the source cluster's end now.
    assert recorded(out)["current"]["source_offsets"] == {"orders": [103, 200]}


def test_start_failback_refuses_records_gone_here(ctx, clusters):
    failing_back(clusters)
    clusters.starts["target"]["orders"] = [120, 0]
    message = fails(ctx, promoted(writer=failback_credentials()), "start-failback")
    assert message.startswith(
        "this cluster no longer holds every record written since the cutover: orders[0] (from "
        "offset 100, now 120). Nothing was changed"
    )


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (
            {"source": {"orders": [100, 200, 0]}},
            "orders has 2 partitions here and 3 on the source",
        ),
        ({"source": {}}, "orders is not on the source cluster: create it there first"),
    ],
)
def test_start_failback_refuses_what_no_force_overrides(ctx, clusters, change, why):
    failing_back(clusters)
    if change["source"]:
        clusters.topics["source"].update(change["source"])
    else:
        del clusters.topics["source"]["orders"]
    message = fails(ctx, promoted(writer=failback_credentials()), "start-failback", force=True)
    assert message.startswith(f"cannot fail back: {why}")
    assert message.endswith("; nothing was changed")
    assert clusters.written == {}


def test_start_failback_refuses_the_prefixed_policy(ctx, clusters):
    failing_back(clusters)
    before = promoted(
        writer=failback_credentials(), options={"mirrormaker-replication-policy": "prefixed"}
    )
    message = fails(ctx, before, "start-failback")
    assert message.startswith("a failback copies topics back under their own names: it needs")


def test_a_refused_seed_leaves_no_topic_behind(ctx, clusters):
    failing_back(clusters)
    clusters.refused_writes.add("source")
    message = fails(ctx, promoted(writer=failback_credentials()), "start-failback")
    assert message == (
        "source cluster at h:1 refused the request: topic authorization failed: where the copy "
        f"back starts was not written to {SEED_TOPIC} (the failback user must be allowed to "
        "create and write it); nothing was changed"
    )
    assert clusters.deleted == [SEED_TOPIC]


def test_one_failback_at_a_time(ctx, clusters):
    failing_back(clusters)
    again = start(ctx, running_failback(), topics="orders")
    assert (ctx.action_results or {})["message"].endswith(": already requested")
    assert recorded(again)["seq"] == 1
    assert clusters.written == {}


# Every unit, the status, migration-status ------------------------------------------------------


def test_every_unit_runs_the_copy_back_it_sees(ctx, clusters):
    failing_back(clusters)
    before = promoted(
        writer=failback_credentials(), peer={"mirrormaker-failback": failback_request()}
    )
    out = ctx.run(ctx.on.update_status(), before)
    assert service(out, "mirrormaker-failback") == ops.pebble.ServiceStatus.ACTIVE
    assert recorded(out)["current"]["topics"] == ["orders"]
    state = out.get_relations("cluster")[0].local_unit_data["mirrormaker-failback-state"]
    assert json.loads(state)["service"] == "active"
    assert copy_back(ctx, out)["tasks.max"] == "6"


def test_revoked_failback_credentials_stop_the_copy_back(ctx, clusters):
    failing_back(clusters)
    out = ctx.run(ctx.on.update_status(), running_failback(granted=False))
    assert service(out, "mirrormaker-failback") == ops.pebble.ServiceStatus.INACTIVE
    assert not file(ctx, out, SECRETS).exists()
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(
        "failback of orders: mirrormaker-failback-credentials: secret "
    )
    assert "not found or not granted: run `juju grant-secret " in out.unit_status.message


def test_migration_status_reports_the_failback(ctx, clusters):
    copied_back(clusters)
    _, results = migration_status(ctx, running_failback(), **{"quiet-seconds": 3})
    assert results["failback-summary"] == (
        "failing back orders to old-0:9092: in sync (lag 0 records) and quiet: ready for "
        "finish-failback"
    )
    shown = json.loads(results["failback"])
    assert (shown["ready-to-finish"], shown["lag"], shown["reasons"]) == (True, 0, [])
    [orders] = shown["copy-back"]
    assert (orders["source-records"], orders["target-records"]) == (100, 100)
    assert clusters.pauses == [3]  # the finished migration has no report of its own


def test_migration_status_says_how_far_the_copy_back_is(ctx, clusters):
    copied_back(clusters)
    clusters.topics["source"]["orders"] = [120, 250]
    clusters.written_here_while_watched = {"orders": [0, 4]}
    _, results = migration_status(ctx, running_failback())
    shown = json.loads(results["failback"])
    assert shown["ready-to-finish"] is False
    assert shown["reasons"][:2] == [
        "topic orders: 34 records behind",
        "this cluster is still written: 4 records arrived on orders in the last 10 s; stop its "
        "producers",
    ]
    assert results["failback-summary"].startswith(
        "failing back orders to old-0:9092: lag 34 records; topic orders: 34 records behind"
    )


# finish-failback -------------------------------------------------------------------------------


def test_finish_failback(ctx, clusters):
    copied_back(clusters)
    out = finish(ctx, running_failback())

    results = ctx.action_results or {}
    assert results["state"] == "finished"
    assert (results["re-read"], results["skip"], results["records"]) == ("0", "0", "100")
    [group] = json.loads(results["groups"])
    assert (group["group"], group["switched"], group["exact"]) == ("billing", True, True)
    # billing resumes on the source cluster where it stood here, by content.
    assert clusters.switched == [("billing", {("orders", 0): 120, ("orders", 1): 230})]
    assert clusters.commits["source"]["billing"]["orders"] == {0: 120, 1: 230}
    # The migration's MirrorMaker would resume orders after the records copied back.
    assert clusters.written[("target", "mm2-offsets.source.internal")] == [
        _records.encode_source_offset("source", ("orders", 0), 149),
        _records.encode_source_offset("source", ("orders", 1), 249),
    ]
    assert json.loads(results["end-offsets"])["source"] == {"orders": [150, 250]}
    assert results["cleanup"] == "none was left"
    assert results["fence"] == (
        "client producers may not write orders here any more: they write to old-0:9092"
    )
    assert results["summary"].startswith("orders failed back to old-0:9092 at ")
    assert results["summary"].endswith(": 100 records copied back, 1 group moved")
    assert service(out, "mirrormaker-failback") == ops.pebble.ServiceStatus.INACTIVE
    failbacks = recorded(out)
    assert "current" not in failbacks
    [done] = failbacks["done"]
    assert done["finished"]["groups"] == ["billing"]
    [wave] = unit_request(out)["waves"]  # type: ignore[misc]
    assert (wave["topics"], wave["failed_back"]) == ([], ["orders"])
    assert out.unit_status == testing.ActiveStatus(
        "orders failed back to old-0:9092; writes fenced here"
    )
    with ctx(ctx.on.update_status(), out) as manager:
        fenced = manager.charm.migration.fenced_topics()
        assert fenced.covers("orders") and fenced.known() == ["orders"]
    assert_no_secret_leaked(ctx, out)


def test_finish_failback_deletes_the_copy_backs_topics(ctx, clusters):
    failing_back(clusters)
    before = promoted(writer=failback_credentials(), peer={"mirrormaker-failback-state": ACTIVE})
    out = start(ctx, before)
    copied_back(clusters)
    for topic in ("mm2-configs.failback.internal", "failback.heartbeats"):
        clusters.topics["source"][topic] = [3]
    finish(ctx, out)
    assert set(clusters.deleted) == {
        SEED_TOPIC,
        "mm2-configs.failback.internal",
        "failback.heartbeats",
    }
    assert (ctx.action_results or {})["cleanup"].startswith("deleted ")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"written_here_while_watched": {"orders": [5, 0]}}, "this cluster is still written: 5"),
        ({"members_on_target": {"billing": 2}}, "group billing: 2 consumers still read from this"),
        ({"behind": True}, "topic orders: 50 records behind"),
        (
            {"failback_offsets": {("orders", 0): 140, ("orders", 1): 249}},
            "MirrorMaker has not yet recorded the copy back of the last records of orders[0]",
        ),
    ],
)
def test_finish_failback_refuses_unless_in_sync_and_quiet(ctx, clusters, change, why):
    copied_back(clusters)
    if change.pop("behind", False):
        clusters.topics["source"]["orders"] = [100, 250]
    for name, value in change.items():
        setattr(clusters, name, value)
    before = running_failback()
    message = fails(ctx, before, "finish-failback")
    assert message.startswith("not ready to finish the failback: ")
    assert why in message
    assert message.endswith(
        "Nothing was changed: wait or fix what is listed, or run finish-failback force=true"
    )
    assert (clusters.switched, clusters.deleted, clusters.written) == ([], [], {})
    assert clusters.claims == {}


def test_finish_failback_refuses_consumers_already_on_the_source(ctx, clusters):
    copied_back(clusters)
    clusters.members["billing"] = 2
    finish(ctx, running_failback())
    [group] = json.loads((ctx.action_results or {})["groups"])
    assert group["switched"] is False
    assert group["note"] == (
        "group billing has 2 members on the source cluster: its consumers have moved already"
    )
    assert json.loads((ctx.action_results or {})["left"]) == ["billing"]


def test_of_two_units_finishing_at_once_one_goes_on(ctx, clusters):
    copied_back(clusters)
    clusters.claims["mm2-cutover.source.1.failback-1.internal"] = "kafka-k8s/2"
    message = fails(ctx, running_failback(), "finish-failback")
    assert message == (
        "kafka-k8s/2 finished this failback at the same moment: nothing was changed here; see "
        "migration-status"
    )
    assert (clusters.switched, clusters.written) == ([], {})


def test_after_the_finish_it_finishes_once_and_the_topic_is_not_promoted(ctx, clusters):
    copied_back(clusters)
    out = finish(ctx, running_failback())
    message = fails(ctx, out, "finish-failback")
    assert message.startswith("orders failed back to old-0:9092 at ")
    assert message.endswith("; nothing was changed")
    message = fails(ctx, out, "start-failback")
    assert message == (
        "no topic was promoted: only topics that a wave of finish-migration moved to this "
        "cluster fail back; nothing was changed"
    )
    _, results = migration_status(ctx, out)
    [done] = json.loads(results["failbacks"])
    assert done["finished"]["records"] == 100
    assert "failback" not in results


def test_a_running_migration_copies_a_failed_back_topic_again(ctx, clusters):
    copied_back(clusters)
    before = running_failback(state_of="running")
    before = dataclasses.replace(
        before, containers={running_container("mirrormaker", "mirrormaker-failback")}
    )
    out = finish(ctx, before)
    # MirrorMaker no longer leaves orders out, and writes it again; clients may not.
    assert properties(ctx, out)["topics.exclude"] == ".*[\\-\\.]internal,.*\\.replica,__.*"
    with ctx(ctx.on.update_status(), out) as manager:
        assert "orders" not in manager.charm.migration.promoted_topics()
        assert manager.charm.migration.fenced_topics().covers("orders")


def test_start_migration_refuses_to_begin_anew_while_a_failback_runs(ctx, clusters):
    copied_back(clusters)
    before = running_failback()
    message = fails(ctx, before, "start-migration", force=True)
    assert message == (
        "a failback of orders runs: a new migration would copy them both ways at once. Nothing "
        "was changed; run finish-failback first"
    )
    request = json.loads(before.get_relations("cluster")[0].local_unit_data["mirrormaker-request"])
    assert request == json.loads(promoted_request())


def test_what_stands_in_the_migrations_way_shows_before_the_failback(ctx, clusters):
    failing_back(clusters)
    stopped = promoted_request("stopped", reason="the source is gone")
    before = promoted(
        writer=failback_credentials(),
        local={"mirrormaker-failback": failback_request(), "mirrormaker-request": stopped},
        container=running_container("mirrormaker-failback"),
    )
    out = ctx.run(ctx.on.update_status(), before)
    assert out.unit_status == testing.BlockedStatus(
        "MirrorMaker stopped: the source is gone (copied data and offsets stay; start-migration "
        "resumes, stop-migration clears this)"
    )
    assert service(out, "mirrormaker-failback") == ops.pebble.ServiceStatus.ACTIVE
