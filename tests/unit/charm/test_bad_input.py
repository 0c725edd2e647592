# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Bad input to kafka-k8s in one table: what the operator sees, and that it names the cause.

Each row changes a serving leader (`helpers.serving`: broker ready, an external source
configured) in one way, runs one hook or action, and expects either a blocked status or a
failed action whose message holds the row's text. A hook that raised would fail the row with
`UncaughtCharmError`. No row may show a password or secret value anywhere the operator can read:
status, action results, failure message or the charm's log.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping

import pytest
from ops import testing

from tests.unit.helpers import (
    CHARMCRAFT,
    CLIENT_CERTIFICATE,
    FAKE_CA,
    OTHER_KEY,
    PASSWORDS,
    RELATION_PASSWORD,
    SERVING_SOURCE_PASSWORD,
    SOURCE_CA,
    FakeClusters,
    serving,
    source_relation,
)

pytestmark = pytest.mark.usefixtures("clusters")

SECRET_VALUES = (SERVING_SOURCE_PASSWORD, RELATION_PASSWORD, *PASSWORDS.values(), "PRIVATE KEY")
CONFIGURED: set[str] = set()
EXTERNAL = ("mirrormaker-source-bootstrap-servers", "mirrormaker-source-credentials")

Change = Callable[[testing.State, testing.Secret, FakeClusters], testing.State]
Trigger = Callable[[testing.Context, testing.State], str]


# Changes to a serving leader ---------------------------------------------------------------------


def config(**options: object) -> Change:
    """Set config options, by their Python-safe names (`num_partitions` for num-partitions)."""
    changed = {name.replace("_", "-"): value for name, value in options.items()}
    CONFIGURED.update(changed)

    def change(state: testing.State, _: testing.Secret, __: FakeClusters) -> testing.State:
        merged = {**state.config, **changed}
        return dataclasses.replace(
            state, config={k: v for k, v in merged.items() if v is not None}
        )

    return change


def secret_content(**content: str | None) -> Change:
    """Change the source credentials secret: `None` removes a key, `_` in names becomes `-`."""

    def change(state: testing.State, source: testing.Secret, _: FakeClusters) -> testing.State:
        merged = dict(source.tracked_content)
        for key, value in content.items():
            merged.pop(key.replace("_", "-"), None)
            if value is not None:
                merged[key.replace("_", "-")] = value
        new = dataclasses.replace(source, tracked_content=merged, latest_content=merged)
        return dataclasses.replace(state, secrets={*(state.secrets - {source}), new})

    return change


def secret_not_granted(state: testing.State, source: testing.Secret, _: FakeClusters):
    return dataclasses.replace(state, secrets=state.secrets - {source})


def relation(
    data: Mapping[str, str] | None = None,
    *,
    response: Mapping[str, object] | None = None,
    keep_options: bool = False,
) -> Change:
    """Replace the external source by a `migration-source` relation, its response changed.

    `data` replaces the whole remote app data; a `None` in `response` removes that key.
    """

    def change(state: testing.State, _: testing.Secret, __: FakeClusters) -> testing.State:
        good, secrets = source_relation()
        remote = dict(good.remote_app_data)
        if response:
            answer = json.loads(remote["requests"])[0]
            answer.update(response)
            remote["requests"] = json.dumps([{k: v for k, v in answer.items() if v is not None}])
        related, _unused = source_relation(data=dict(data) if data is not None else remote)
        options = {k: v for k, v in state.config.items() if keep_options or k not in EXTERNAL}
        return dataclasses.replace(
            state,
            config=options,
            relations={*state.relations, related},
            secrets={*state.secrets, *secrets},
        )

    return change


# What the leader recorded of a kafka-client request it served: data-platform-helpers' "data".
ORDERS = {"resource": "orders", "extra-user-roles": "consumer"}
CLIENT_RELATION_ID = 77


def client(data: Mapping[str, str], *, granted: Mapping[str, str] | None = None) -> Change:
    """Add a kafka-client relation with this remote data; `granted` is what was served before."""

    def change(state: testing.State, _: testing.Secret, __: FakeClusters) -> testing.State:
        local = {"data": json.dumps(dict(granted))} if granted else {}
        related = testing.Relation(
            "kafka-client",
            id=CLIENT_RELATION_ID,
            remote_app_name="orders-app",
            remote_app_data=dict(data),
            local_app_data=local,
        )
        return dataclasses.replace(state, relations={*state.relations, related})

    return change


def no_source(state: testing.State, _: testing.Secret, __: FakeClusters) -> testing.State:
    options = {k: v for k, v in state.config.items() if k not in EXTERNAL}
    return dataclasses.replace(state, config=options)


def cluster_fails(role: str, problem: str) -> Change:
    """A cluster that is down (`unreachable`) or refuses the password (`refused`).

    The fake `ClusterClient` raises the library's errors as kafka-python's failures surface.
    """

    def change(state: testing.State, _: testing.Secret, clusters: FakeClusters) -> testing.State:
        getattr(clusters, problem).add(role)
        return state

    return change


def unchanged(state: testing.State, _: testing.Secret, __: FakeClusters) -> testing.State:
    return state


def finished(state: testing.State, _: testing.Secret, __: FakeClusters) -> testing.State:
    """The migration was finished (by this unit, as `finish-migration` records it)."""
    done = {"at": "2026-01-02T03:04:05+00:00", "source": "old-0:9092", "records": 7}
    request = {"state": "finished", "seq": 2, "at": 1, "by": "kafka-k8s/0", "finished": done}
    peers = state.get_relations("cluster")[0]
    data = {**peers.local_unit_data, "mirrormaker-request": json.dumps(request)}
    return dataclasses.replace(
        state,
        relations={*(state.relations - {peers}), dataclasses.replace(peers, local_unit_data=data)},
    )


def promoted(**content: str | None) -> Change:
    """A migration finished in one wave that promoted `orders`.

    With `content`, a failback credentials secret holding it is set in
    `mirrormaker-failback-credentials`.
    """
    options = config(mirrormaker_failback_credentials=None)

    def change(state: testing.State, source: testing.Secret, clusters: FakeClusters):
        ends = {"orders": [100, 200]}
        wave = {"number": 1, "at": "2026-01-02T03:04:05+00:00", "topics": ["orders"]}
        wave |= {"by": "kafka-k8s/0", "source_end_offsets": ends, "target_end_offsets": ends}
        request = {"state": "finished", "seq": 2, "at": 1, "by": "kafka-k8s/0", "migration": 1}
        request |= {"finished": {"at": wave["at"], "source": "old-0:9092"}, "waves": [wave]}
        peers = state.get_relations("cluster")[0]
        data = {**peers.local_unit_data, "mirrormaker-request": json.dumps(request)}
        cluster = dataclasses.replace(peers, local_unit_data=data)
        state = dataclasses.replace(state, relations={*(state.relations - {peers}), cluster})
        if not content:
            return options(state, source, clusters)
        secret = testing.Secret(
            tracked_content={k.replace("_", "-"): v for k, v in content.items() if v}
        )
        return dataclasses.replace(
            state,
            config={**state.config, "mirrormaker-failback-credentials": secret.id},
            secrets={*state.secrets, secret},
        )

    return change


def failback_not_granted(state: testing.State, source: testing.Secret, clusters: FakeClusters):
    granted = promoted(username="writer", password="pw")(state, source, clusters)
    return dataclasses.replace(granted, secrets=state.secrets)


# What runs, and the message the operator reads ---------------------------------------------------


def blocked_after(event: str) -> Trigger:
    def trigger(ctx: testing.Context, state: testing.State) -> str:
        out = ctx.run(getattr(ctx.on, event)(), state)
        assert out.unit_status.name == "blocked", out.unit_status
        return out.unit_status.message

    trigger.__name__ = event
    return trigger


def changed(ctx: testing.Context, state: testing.State, endpoint: str) -> testing.State:
    """relation-changed of the one relation on `endpoint`: data-platform-helpers reads first."""
    (related,) = [r for r in state.relations if r.endpoint == endpoint]
    return ctx.run(ctx.on.relation_changed(related, remote_unit=0), state)


def source_changed(ctx: testing.Context, state: testing.State) -> str:
    out = changed(ctx, state, "migration-source")
    assert out.unit_status.name == "blocked", out.unit_status
    return out.unit_status.message


def client_changed(ctx: testing.Context, state: testing.State) -> str:
    """On the leader the app status names the kafka-client relation."""
    out = changed(ctx, state, "kafka-client")
    assert out.app_status.name == "blocked", out.app_status
    assert out.app_status.message.startswith(f"kafka-client relation {CLIENT_RELATION_ID}: ")
    return out.app_status.message


def blocked_while_running(ctx: testing.Context, state: testing.State) -> str:
    """Start the migration past its preflight, then let update-status query the clusters."""
    started = ctx.run(ctx.on.action("start-migration", params={"force": True}), state)
    out = ctx.run(ctx.on.update_status(), started)
    assert out.unit_status.name == "blocked", out.unit_status
    assert out.app_status.name == "blocked", out.app_status
    return out.unit_status.message


def action_fails(name: str, **params: object) -> Trigger:
    def trigger(ctx: testing.Context, state: testing.State) -> str:
        with pytest.raises(testing.ActionFailed) as failed:
            ctx.run(ctx.on.action(name, params=params), state)
        return failed.value.message

    return trigger


config_changed = blocked_after("config_changed")
start = action_fails("start-migration")
dry_run = action_fails("start-migration", **{"dry-run": True})
NOT_PEM = "ca must hold PEM certificates only"
# What Kafka's config provider would resolve to the target's JAAS config, were it written.
TARGET_JAAS = "${file:/etc/kafka/mm2-secrets.properties:target.sasl.jaas.config}"
OTHER_CLIENT = {"client_certificate": CLIENT_CERTIFICATE, "client_key": OTHER_KEY}
UNREADABLE = "secret:d0esn0tex1stabcdefgh"

CASES = [
    # Broker options.
    pytest.param(config(num_partitions=0), config_changed, "invalid config num-partitions: "),
    pytest.param(config(num_partitions=10001), config_changed, "invalid config num-partitions"),
    pytest.param(
        config(log_retention_hours=0), config_changed, "log-retention-hours: must be -1 or at"
    ),
    pytest.param(
        config(log_retention_hours=-2), config_changed, "invalid config log-retention-hours"
    ),
    pytest.param(config(broker_heap_mb=10), config_changed, "invalid config broker-heap-mb: "),
    pytest.param(config(broker_heap_mb=70000), config_changed, "invalid config broker-heap-mb"),
    pytest.param(
        config(expose_external="ingress"),
        config_changed,
        "invalid config expose-external: input should be 'false', 'nodeport' or 'loadbalancer'",
    ),
    # Migration options.
    pytest.param(
        config(mirrormaker_topics="orders["), config_changed, "mirrormaker-topics: 'orders['"
    ),
    pytest.param(
        config(mirrormaker_topics=""), config_changed, "needs at least one regular expression"
    ),
    pytest.param(
        config(mirrormaker_topics_exclude="("), config_changed, "mirrormaker-topics-exclude: '('"
    ),
    pytest.param(config(mirrormaker_groups="*x"), config_changed, "mirrormaker-groups: '*x'"),
    pytest.param(
        config(mirrormaker_groups_exclude="a{"), config_changed, "mirrormaker-groups-exclude: 'a{'"
    ),
    pytest.param(config(mirrormaker_tasks_max=0), config_changed, "mirrormaker-tasks-max: "),
    pytest.param(config(mirrormaker_tasks_max=5000), start, "mirrormaker-tasks-max: "),
    pytest.param(
        config(mirrormaker_refresh_interval=1), config_changed, "mirrormaker-refresh-interval: "
    ),
    pytest.param(config(mirrormaker_refresh_interval=100000), dry_run, "refresh-interval: "),
    pytest.param(
        config(mirrormaker_replication_policy="mirrored"),
        config_changed,
        "mirrormaker-replication-policy: input should be 'identity' or 'prefixed'",
    ),
    pytest.param(
        config(mirrormaker_source_bootstrap_servers="old-0"), config_changed, "'old-0' is not HOST"
    ),
    pytest.param(
        config(mirrormaker_source_bootstrap_servers="old-0:99999"), start, "'old-0:99999' is not"
    ),
    pytest.param(
        config(mirrormaker_source_bootstrap_servers="old-0\nevil=1:9092"),
        config_changed,
        "'old-0\\nevil=1:9092' is not HOST:PORT",
    ),
    pytest.param(
        config(mirrormaker_source_bootstrap_servers="old 0:9092"), start, "'old 0:9092' is not"
    ),
    pytest.param(config(mirrormaker_heap_mb=100), config_changed, "mirrormaker-heap-mb: input"),
    pytest.param(config(mirrormaker_heap_mb=70000), start, "invalid config mirrormaker-heap-mb"),
    pytest.param(
        config(mirrormaker_throttle_mb_per_second=-1),
        start,
        "invalid config mirrormaker-throttle-mb-per-second",
    ),
    pytest.param(
        config(mirrormaker_source_role="owner"),
        config_changed,
        "mirrormaker-source-role: input should be 'consumer' or 'admin'",
    ),
    # The operator's map of client identities: refused whole, naming what is wrong.
    pytest.param(
        config(kafka_client_identities="billing-app: {group: billing}"),
        config_changed,
        "invalid config kafka-client-identities: billing-app: unknown key group (keys: user,",
    ),
    pytest.param(
        config(kafka_client_identities="a: {groups: [source-mm2]}"),
        config_changed,
        "kafka-client-identities: a: group source-mm2 is the migration's own",
    ),
    pytest.param(
        config(kafka_client_identities="a: {groups: [g]}\nb: {user: x, groups: [g]}"),
        config_changed,
        "kafka-client-identities: group g is mapped to both a and b",
    ),
    pytest.param(
        config(kafka_client_identities="a: {transactional-ids: [relation-3-*]}"),
        config_changed,
        "transactional id relation-3-* would reach relation-*",
    ),
    pytest.param(
        config(mirrormaker_source_credentials=None),
        config_changed,
        "mirrormaker-source-bootstrap-servers is set but mirrormaker-source-credentials is not",
    ),
    pytest.param(
        config(mirrormaker_source_bootstrap_servers=""),
        config_changed,
        "mirrormaker-source-credentials is set but mirrormaker-source-bootstrap-servers is empty",
    ),
    # The source credentials secret.
    pytest.param(secret_content(password=None), config_changed, "has missing key password"),
    pytest.param(
        secret_content(username="", password=""), start, "missing key username, password"
    ),
    pytest.param(secret_content(user="migrator"), config_changed, "has unknown key user"),
    pytest.param(
        secret_content(sasl_mechanism="GSSAPI"), config_changed, "sasl-mechanism must be one of"
    ),
    pytest.param(
        secret_content(security_protocol="TLS"), dry_run, "security-protocol must be one of"
    ),
    pytest.param(
        secret_content(security_protocol="SASL_SSL", ca="not a pem"), config_changed, NOT_PEM
    ),
    pytest.param(
        secret_content(ca=SOURCE_CA), config_changed, "ca is set, so security-protocol must"
    ),
    # Every login: certificates that do not parse, keys that do not match, keys of another.
    pytest.param(
        secret_content(security_protocol="SASL_SSL", ca=FAKE_CA),
        start,
        "ca holds a certificate that does not parse",
    ),
    pytest.param(
        secret_content(security_protocol="SASL_SSL", ca=SOURCE_CA + TARGET_JAAS),
        config_changed,
        NOT_PEM,
    ),
    pytest.param(
        secret_content(
            username=None,
            password=None,
            security_protocol="SSL",
            client_certificate=CLIENT_CERTIFICATE,
        ),
        config_changed,
        "client-certificate is set without client-key: mutual TLS needs both",
    ),
    pytest.param(
        secret_content(username=None, password=None, security_protocol="SSL", **OTHER_CLIENT),
        dry_run,
        "client-key does not match client-certificate",
    ),
    pytest.param(
        secret_content(security_protocol="PLAINTEXT"),
        config_changed,
        "username and password are set, but security-protocol PLAINTEXT logs in with none",
    ),
    pytest.param(
        secret_content(sasl_mechanism="OAUTHBEARER", security_protocol="SASL_SSL"),
        config_changed,
        "has missing key oauth-token-endpoint, oauth-client-id, oauth-client-secret",
    ),
    pytest.param(
        secret_content(
            username=None,
            password=None,
            sasl_mechanism="OAUTHBEARER",
            oauth_token_endpoint="idp.example/token",
            oauth_client_id="migrator",
            oauth_client_secret="s",
        ),
        start,
        "oauth-token-endpoint must be an http:// or https:// URL",
    ),
    pytest.param(secret_not_granted, config_changed, "not found or not granted: run `juju grant"),
    pytest.param(secret_not_granted, start, "not found or not granted"),
    # The migration-source relation.
    pytest.param(
        relation({"version": "v1", "requests": "{not json"}),
        config_changed,
        "migration-source: old-kafka sent data that is not a kafka_client response",
    ),
    pytest.param(
        relation({"version": "v9", "requests": "[]"}),
        start,
        "old-kafka sent kafka_client version 'v9', not v0 or v1",
    ),
    pytest.param(
        relation({"version": "v1", "requests": "{not json"}),
        source_changed,
        "migration-source: old-kafka sent data that is not a kafka_client response",
    ),
    pytest.param(
        relation({"version": "v9", "requests": "[]"}),
        source_changed,
        "migration-source: old-kafka sent kafka_client version 'v9', not v0 or v1",
    ),
    pytest.param(
        relation(response={"resource": "orders"}),
        source_changed,
        "migration-source: old-kafka answered for topic 'orders', not the",
    ),
    # kafka-client relations: the leader's app status names the relation.
    pytest.param(
        client({"version": "v1", "requests": "{not json"}), client_changed, "requests is not JSON"
    ),
    pytest.param(
        client({"version": "v9", "requests": "[]"}),
        client_changed,
        "unknown interface version 'v9'",
    ),
    pytest.param(
        client({"version": "v1", "requests": json.dumps([{"resource": 5}])}),
        client_changed,
        "malformed request",
    ),
    pytest.param(
        client({"version": "v1", "requests": json.dumps({"resource": "orders"})}),
        client_changed,
        "requests is not a JSON list",
    ),
    pytest.param(
        client({"topic": "payments", "extra-user-roles": "consumer"}, granted=ORDERS),
        client_changed,
        "topic changed from 'orders' to 'payments' after the relation was made: remove the",
    ),
    pytest.param(
        client({"topic": "orders", "extra-user-roles": "producer"}, granted=ORDERS),
        client_changed,
        "extra-user-roles changed from 'consumer' to 'producer' after the relation was made",
    ),
    pytest.param(
        client({"topic": "orders", "consumer-group-prefix": "*"}),
        client_changed,
        "malformed request (consumer-group-prefix: ",
    ),
    pytest.param(
        client({"topic": "orders", "secret-mtls": "secret:d0000000000000000000"}),
        client_changed,
        "secret-mtls names a secret kafka-k8s cannot read (removed, or not granted)",
    ),
    pytest.param(
        client(
            {
                "version": "v1",
                "requests": json.dumps(
                    [
                        {"resource": "orders", "request-id": "a", "salt": "s"},
                        {"resource": "__consumer_offsets", "request-id": "b", "salt": "t"},
                    ]
                ),
            }
        ),
        client_changed,
        "request b: topic '__consumer_offsets' is reserved",
    ),
    pytest.param(
        client({"version": "v1", "requests": json.dumps([["orders"]])}),
        client_changed,
        "request 1: malformed request (TypeError)",
    ),
    pytest.param(
        client({"topic": "orders", "external-node-connectivity": "true"}),
        client_changed,
        "asks for external endpoints: expose-external is false: set it to nodeport or",
    ),
    pytest.param(
        relation(response={"endpoints": "old-kafka-0"}),
        start,
        "old-kafka sent endpoints that are not HOST:PORT",
    ),
    pytest.param(
        relation(response={"endpoints": "old-kafka-0:9092,old\tkafka-1:9092"}),
        start,
        "old-kafka sent endpoints that are not HOST:PORT",
    ),
    pytest.param(
        relation(response={"secret-user": None}),
        start,
        "waiting for old-kafka to send credentials on migration-source",
    ),
    pytest.param(
        relation(response={"endpoints": ""}), dry_run, "waiting for old-kafka to send credentials"
    ),
    pytest.param(
        relation(keep_options=True), config_changed, "two sources: remove the migration-source"
    ),
    # A secret the response names that this unit cannot read: no hook raises.
    pytest.param(
        relation(response={"secret-user": UNREADABLE}),
        source_changed,
        f"old-kafka no longer sends credentials: its secret-user {UNREADABLE} cannot be read",
    ),
    pytest.param(
        relation(response={"secret-tls": UNREADABLE}),
        source_changed,
        f"old-kafka no longer sends credentials: its secret-tls {UNREADABLE} cannot be read",
    ),
    pytest.param(
        relation(response={"secret-extra": UNREADABLE}),
        start,
        f"old-kafka no longer sends credentials: its secret-extra {UNREADABLE} cannot be read",
    ),
    pytest.param(
        relation(response={"secret-user": UNREADABLE}),
        config_changed,
        "migration-source: old-kafka no longer sends credentials: its secret-user",
    ),
    # Action parameters, and actions that cannot be done.
    pytest.param(no_source, start, "no source cluster to migrate from: relate migration-source"),
    pytest.param(no_source, dry_run, "no source cluster to migrate from"),
    pytest.param(
        unchanged, action_fails("migration-status", topic="nope"), "topic nope is not migrated"
    ),
    pytest.param(
        cluster_fails("source", "unreachable"),
        action_fails("migration-status", format="access"),
        "source cluster at h:1 did not answer",
    ),
    # The cutover: switch-group and finish-migration, before and after the finish.
    pytest.param(
        unchanged,
        action_fails("switch-group", group="nobody"),
        "group nobody does not exist on the source cluster; nothing was changed",
    ),
    pytest.param(
        unchanged,
        action_fails("switch-group", group="billing"),
        "group billing has 2 members on the source cluster: stop its consumers there first",
    ),
    pytest.param(
        unchanged,
        action_fails("switch-group", group="shipping"),
        "group shipping has no committed offsets on the migrated topics; nothing was changed",
    ),
    pytest.param(
        unchanged,
        action_fails("finish-migration"),
        "no migration to finish: start-migration was never run",
    ),
    pytest.param(
        finished,
        action_fails("finish-migration"),
        "was finished at 2026-01-02T03:04:05+00:00: 0 topics, 7 records, 0 groups switched; it "
        "finishes once, nothing was changed",
    ),
    pytest.param(
        finished,
        start,
        "would be mixed with a fresh copy of the source. Nothing was changed; run "
        "start-migration force=true",
    ),
    # The way back: start-failback and finish-failback that cannot be done.
    pytest.param(
        unchanged,
        action_fails("start-failback"),
        "no migration: start-migration was never run; nothing was changed",
    ),
    pytest.param(
        promoted(),
        action_fails("start-failback"),
        "a failback writes on old-0:9092, and the migration's user there may only read: put the "
        "username and password of a user that may write there in a Juju secret",
    ),
    pytest.param(
        failback_not_granted,
        action_fails("start-failback"),
        "not found or not granted: run `juju grant-secret ",
    ),
    pytest.param(
        promoted(username="writer"),
        action_fails("start-failback"),
        "mirrormaker-failback-credentials: secret ",
    ),
    pytest.param(
        promoted(username="writer", password="pw", sasl_mechanism="GSSAPI"),
        action_fails("start-failback"),
        "mirrormaker-failback-credentials: sasl-mechanism must be one of",
    ),
    pytest.param(
        promoted(),
        action_fails("start-failback", topics="payments"),
        "topics: 'payments' matches no promoted topic (promoted: orders): a topic no wave of "
        "finish-migration promoted never left the source cluster; nothing was changed",
    ),
    pytest.param(
        promoted(),
        action_fails("finish-failback"),
        "no failback runs: start-failback first; nothing was changed",
    ),
    # Clusters that do not answer, or refuse the credentials.
    pytest.param(
        cluster_fails("source", "unreachable"), dry_run, "source cluster at h:1 did not answer"
    ),
    pytest.param(
        cluster_fails("target", "unreachable"), dry_run, "target cluster at h:1 did not answer"
    ),
    pytest.param(
        cluster_fails("source", "refused"), dry_run, "refused the login of migrator: invalid"
    ),
    pytest.param(
        cluster_fails("source", "unreachable"),
        blocked_while_running,
        "source cluster at h:1 did not answer: timed out",
    ),
    # A real start runs the preflight: a cluster that does not answer starts nothing.
    pytest.param(
        cluster_fails("source", "unreachable"),
        start,
        "did not answer: timed out: the preflight could not run; nothing was started",
    ),
    pytest.param(
        cluster_fails("source", "refused"),
        blocked_while_running,
        "source cluster at h:1 refused the login of migrator: invalid credentials",
    ),
]


@pytest.mark.parametrize(("change", "trigger", "cause"), CASES)
def test_bad_input_is_named_and_leaks_nothing(
    ctx: testing.Context,
    clusters: FakeClusters,
    change: Change,
    trigger: Trigger,
    cause: str,
) -> None:
    state, source = serving(ctx)
    bad = change(state, source, clusters)

    message = trigger(ctx, bad)

    assert cause in message
    assert (clusters.switched, clusters.deleted) == ([], [])
    shown = [message, json.dumps(ctx.action_results or {})]
    shown += [log.message for log in ctx.juju_log]
    leaked = [value for value in SECRET_VALUES for text in shown if value in text]
    assert leaked == []


def test_the_table_covers_every_option_that_can_be_wrong() -> None:
    options = CHARMCRAFT["config"]["options"]
    # charm-refresh's own option: it reads it, and says in the app status when it is wrong.
    can_be_wrong = {
        name
        for name, option in options.items()
        if option["type"] != "boolean" and name != "pause-after-unit-refresh"
    }
    assert can_be_wrong <= CONFIGURED
    assert len(CASES) >= 25
