# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The source cluster as Juju gives it (`_source`), under ops.testing in `host.HostCharm`.

The credentials secret and the options that name it, the `migration-source` relation, what is
wrong with either, and a source that goes away while MirrorMaker runs: it stops MirrorMaker.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import ops
import pytest
from ops import testing

from charms.kafka_k8s.v0.mirrormaker._peers import MigrationRequest
from tests.unit.helpers import (
    CLIENT_CERTIFICATE,
    CLIENT_KEY,
    FENCED,
    LAGGING,
    MM2,
    MM2_SECRETS,
    RELATION_PASSWORD,
    SOURCE_CA,
    source_relation,
)
from tests.unit.migration.host import (
    assert_no_secret_leaked,
    credentials,
    external,
    file,
    peers,
    properties,
    request,
    service,
    start,
    state,
    unit_request,
)

pytestmark = pytest.mark.usefixtures("clusters")


def not_requested(out: Any) -> bool:
    return "mirrormaker-request" not in out.get_relations("cluster")[0].local_unit_data


# The credentials secret --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"sasl-mechanism": "SCRAM-SHA-256"}, {"source.sasl.mechanism": "SCRAM-SHA-256"}),
        (
            {"sasl-mechanism": "PLAIN"},
            {"source.sasl.mechanism": "PLAIN"},
        ),
        (
            {"security-protocol": "SASL_SSL", "ca": SOURCE_CA},
            {
                "source.security.protocol": "SASL_SSL",
                "source.ssl.truststore.type": "PEM",
                "source.ssl.truststore.certificates": SOURCE_CA,
            },
        ),
        ({"security-protocol": "SASL_SSL"}, {"source.security.protocol": "SASL_SSL"}),
    ],
)
def test_optional_secret_keys_reach_the_properties(ctx, content, expected):
    secret = credentials(**content)
    out = start(ctx, state(config=external(secret), secrets=(secret,)))
    rendered = properties(ctx, out)
    for key, value in expected.items():
        assert rendered[key] == value


def test_a_plaintext_source_is_said_to_be_read_unprotected(ctx):
    secret = testing.Secret(tracked_content={"security-protocol": "PLAINTEXT"})
    out = start(ctx, state(config=external(secret), secrets=(secret,)))
    assert (ctx.action_results or {})["warning"] == (
        "the copy reads an unauthenticated, unencrypted cluster (PLAINTEXT)"
    )
    rendered = properties(ctx, out)
    assert rendered["source.security.protocol"] == "PLAINTEXT"
    assert not [key for key in rendered if key.startswith(("source.sasl", "source.ssl"))]
    # Before the fence: the status is clipped at 120 characters.
    assert out.unit_status.name == "active"
    assert out.unit_status.message.startswith(
        LAGGING.format(source="old-0:9092") + "; source PLAINTEXT: unauthenticated, unencrypted; "
    )


def test_every_secret_value_of_a_login_stays_in_the_secrets_file(ctx):
    """The client key and the OAuth client secret are references in mm2.properties."""
    secret = testing.Secret(
        tracked_content={
            "security-protocol": "SASL_SSL",
            "sasl-mechanism": "OAUTHBEARER",
            "oauth-token-endpoint": "https://idp.example/token",
            "oauth-client-id": "migrator",
            "oauth-client-secret": "oauth-client-secret-value",
            "ca": SOURCE_CA,
            "client-certificate": CLIENT_CERTIFICATE,
            "client-key": CLIENT_KEY,
        }
    )
    out = start(ctx, state(config=external(secret), secrets=(secret,)))
    text = file(ctx, out, MM2).read_text()
    assert "oauth-client-secret-value" not in text
    assert "PRIVATE KEY" not in text
    secrets = file(ctx, out, MM2_SECRETS)
    assert secrets.stat().st_mode & 0o777 == 0o600
    rendered = properties(ctx, out)
    assert rendered["source.ssl.keystore.key"] == CLIENT_KEY
    assert 'clientSecret="oauth-client-secret-value"' in rendered["source.sasl.jaas.config"]
    shown = json.dumps(ctx.action_results) + out.unit_status.message
    shown += "".join(log.message for log in ctx.juju_log)
    assert "oauth-client-secret-value" not in shown
    assert "PRIVATE KEY" not in shown


# Source problems ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"password": None}, "missing key password"),
        ({"username": "", "password": ""}, "missing key username, password"),
        ({"user": "x"}, "unknown key user"),
        ({"sasl-mechanism": "GSSAPI"}, "sasl-mechanism must be one of SCRAM-SHA-512"),
        ({"security-protocol": "TLS"}, "security-protocol must be one of PLAINTEXT, SSL"),
        ({"security-protocol": "SASL_SSL", "ca": "not a pem"}, "ca must hold PEM certificates"),
        ({"ca": SOURCE_CA}, "ca is set, so security-protocol must be SSL or SASL_SSL"),
    ],
)
def test_bad_credentials_secret(ctx, content, message):
    secret = credentials(**content)
    before = state(config=external(secret), secrets=(secret,))
    out = ctx.run(ctx.on.config_changed(), before)
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith("mirrormaker-source-credentials: ")
    assert message in out.unit_status.message
    with pytest.raises(testing.ActionFailed) as failed:
        start(ctx, before)
    assert message in failed.value.message
    assert failed.value.state is not None
    assert not_requested(failed.value.state)
    assert_no_secret_leaked(ctx, out)


def test_secret_not_granted(ctx):
    secret = credentials()
    out = ctx.run(ctx.on.config_changed(), state(config=external(secret)))
    assert out.unit_status == testing.BlockedStatus(
        f"mirrormaker-source-credentials: secret {secret.id} not found or not granted: run "
        f"`juju grant-secret {secret.id} kafka-k8s`"
    )


def test_bootstrap_servers_without_credentials(ctx):
    out = ctx.run(ctx.on.config_changed(), state(config=external()))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(
        "mirrormaker-source-bootstrap-servers is set but mirrormaker-source-credentials is not"
    )


def test_credentials_without_bootstrap_servers(ctx):
    secret = credentials()
    config = {"mirrormaker-source-credentials": secret.id}
    out = ctx.run(ctx.on.config_changed(), state(config=config, secrets=(secret,)))
    assert out.unit_status.name == "blocked"
    assert "mirrormaker-source-bootstrap-servers is empty" in out.unit_status.message


def test_relation_and_options_together_are_blocked(ctx):
    secret = credentials()
    relation, relation_secrets = source_relation()
    before = state(
        config=external(secret), secrets=(secret, *relation_secrets), relations=(relation,)
    )
    out = ctx.run(ctx.on.config_changed(), before)
    assert out.unit_status == testing.BlockedStatus(
        "two sources: remove the migration-source relation or unset "
        "mirrormaker-source-bootstrap-servers"
    )
    with pytest.raises(testing.ActionFailed) as failed:
        start(ctx, before)
    assert "two sources" in failed.value.message


def test_start_without_source_fails(ctx):
    with pytest.raises(testing.ActionFailed) as failed:
        start(ctx, state())
    assert failed.value.message == (
        "no source cluster to migrate from: relate migration-source to a Kafka application, or "
        "set mirrormaker-source-bootstrap-servers and mirrormaker-source-credentials"
    )
    assert failed.value.state is not None
    assert not_requested(failed.value.state)


def test_requested_without_source_stops_and_says_why(ctx):
    cluster = peers({"mirrormaker-request": request("running", 1)}, {})
    out = ctx.run(ctx.on.config_changed(), state(cluster=cluster))
    assert out.unit_status == testing.BlockedStatus(
        "MirrorMaker stopped: the source is gone: the migration-source relation was removed or "
        "the mirrormaker-source-* options unset (copied data and offsets stay; start-migration "
        "resumes, stop-migration clears this)"
    )
    assert "mirrormaker" not in out.get_container("kafka").plan.services
    assert unit_request(out)["state"] == "stopped"


# The relation path -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "role"),
    [({}, "consumer"), ({"mirrormaker-source-role": "admin"}, "admin")],
)
def test_relation_created_requests_the_configured_role_on_all_topics(ctx, config, role):
    relation = testing.Relation("migration-source", remote_app_name="old-kafka")
    out = ctx.run(ctx.on.relation_created(relation), state(config=config, relations=(relation,)))
    data = out.get_relation(relation.id).local_app_data
    assert data["version"] == "v1"
    [sent] = json.loads(data["requests"])
    assert sent["resource"] == "*"
    assert sent["extra-user-roles"] == role


def test_start_with_relation_source(ctx):
    relation, secrets = source_relation()
    out = start(ctx, state(relations=(relation,), secrets=secrets))
    rendered = properties(ctx, out)
    assert rendered["source.bootstrap.servers"] == "old-kafka-0:9092,old-kafka-1:9092"
    assert rendered["source.security.protocol"] == "SASL_PLAINTEXT"
    assert rendered["source.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="relation-7" password="{RELATION_PASSWORD}";'
    )
    assert out.unit_status == testing.ActiveStatus(LAGGING.format(source="old-kafka") + FENCED)
    assert (ctx.action_results or {})["source"] == "old-kafka"
    assert_no_secret_leaked(ctx, out)


def test_relation_source_with_tls(ctx):
    relation, secrets = source_relation(tls=True)
    out = start(ctx, state(relations=(relation,), secrets=secrets))
    rendered = properties(ctx, out)
    assert rendered["source.security.protocol"] == "SASL_SSL"
    assert rendered["source.ssl.truststore.certificates"] == SOURCE_CA


@pytest.mark.parametrize("running", [True, False])
def test_relation_waiting_for_credentials(ctx, running):
    relation, _ = source_relation(data={})
    local = {"mirrormaker-request": request("running", 1)} if running else {}
    out = ctx.run(
        ctx.on.relation_changed(relation),
        state(relations=(relation,), cluster=peers({}, {}, local=local)),
    )
    if running:  # it sent them before the migration started: they were revoked since
        assert out.unit_status == testing.BlockedStatus(
            "MirrorMaker stopped: migration-source: old-kafka no longer sends credentials "
            "(copied data and offsets stay; start-migration resumes, stop-migration clears this)"
        )
    else:
        assert out.unit_status == testing.ActiveStatus("broker")
    assert "mirrormaker" not in out.get_container("kafka").plan.services


@pytest.mark.parametrize("field", ["secret-user", "secret-tls", "secret-extra"])
def test_relation_naming_a_secret_it_cannot_read_blocks_without_raising(ctx, field):
    """relation-changed: data-platform-helpers reads the secrets first; no unit goes in error."""
    relation, secrets = source_relation(tls=True)
    response = json.loads(relation.remote_app_data["requests"])
    response[0][field] = "secret:d0esn0tex1stabcdefgh"
    relation, _ = source_relation(data={"version": "v1", "requests": json.dumps(response)})

    out = ctx.run(ctx.on.relation_changed(relation), state(relations=(relation,), secrets=secrets))

    assert out.unit_status == testing.BlockedStatus(
        f"migration-source: old-kafka no longer sends credentials: its {field} "
        "secret:d0esn0tex1stabcdefgh cannot be read (revoked, removed or not granted)"
    )
    assert "mirrormaker" not in out.get_container("kafka").plan.services


def test_relation_with_malformed_data(ctx):
    relation, secrets = source_relation(data={"version": "v1", "requests": "not json ["})
    out = ctx.run(ctx.on.config_changed(), state(relations=(relation,), secrets=secrets))
    assert out.unit_status == testing.BlockedStatus(
        "migration-source: old-kafka sent data that is not a kafka_client response"
    )


def test_relation_with_bad_endpoints(ctx):
    relation, secrets = source_relation()
    data = dict(relation.remote_app_data)
    response = json.loads(data["requests"])
    response[0]["endpoints"] = "old-kafka-0"
    data["requests"] = json.dumps(response)
    relation, _ = source_relation(data=data)
    with pytest.raises(testing.ActionFailed) as failed:
        start(ctx, state(relations=(relation,), secrets=secrets))
    assert failed.value.message == (
        "migration-source: old-kafka sent endpoints that are not HOST:PORT"
    )


# A source that goes away stops MirrorMaker -------------------------------------------------------


GONE = " (copied data and offsets stay; start-migration resumes, stop-migration clears this)"


def assert_stopped(ctx: testing.Context, out: testing.State, reason: str) -> None:
    """MirrorMaker stopped, its files gone, a stop recorded for every unit, the reason shown."""
    assert service(out) == ops.pebble.ServiceStatus.INACTIVE
    assert out.get_container("kafka").plan.services["mirrormaker"].startup == "disabled"
    assert not file(ctx, out, MM2).exists()
    assert not file(ctx, out, MM2_SECRETS).exists()
    assert unit_request(out)["state"] == "stopped"
    assert unit_request(out)["reason"] == reason
    assert out.unit_status == testing.BlockedStatus(f"MirrorMaker stopped: {reason}{GONE}")
    assert out.app_status == out.unit_status
    assert_no_secret_leaked(ctx, out)


def test_revoked_credentials_secret_stops_mirrormaker(ctx):
    secret = credentials()
    started = start(ctx, state(config=external(secret), secrets=(secret,)))

    revoked = ctx.run(ctx.on.update_status(), dataclasses.replace(started, secrets=frozenset()))

    assert_stopped(
        ctx,
        revoked,
        f"mirrormaker-source-credentials: secret {secret.id} not found or not granted: run "
        f"`juju grant-secret {secret.id} kafka-k8s`",
    )


def test_password_taken_out_of_the_secret_stops_mirrormaker(ctx):
    secret = credentials()
    started = start(ctx, state(config=external(secret), secrets=(secret,)))
    content = {"username": "migrator"}
    emptied = dataclasses.replace(secret, tracked_content=content, latest_content=content)

    out = ctx.run(ctx.on.secret_changed(emptied), dataclasses.replace(started, secrets={emptied}))

    assert service(out) == ops.pebble.ServiceStatus.INACTIVE
    assert "has missing key password" in str(unit_request(out)["reason"])


def test_unset_credentials_option_stops_mirrormaker(ctx):
    secret = credentials()
    started = start(ctx, state(config=external(secret), secrets=(secret,)))

    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(started, config=external()))

    assert service(out) == ops.pebble.ServiceStatus.INACTIVE
    assert str(unit_request(out)["reason"]).startswith(
        "mirrormaker-source-bootstrap-servers is set but mirrormaker-source-credentials is not"
    )


def test_removed_source_relation_stops_mirrormaker(ctx):
    relation, secrets = source_relation()
    started = start(ctx, state(relations=(relation,), secrets=secrets))

    out = ctx.run(ctx.on.relation_broken(started.get_relation(relation.id)), started)

    assert_stopped(
        ctx,
        out,
        "the source is gone: the migration-source relation was removed or the "
        "mirrormaker-source-* options unset",
    )


def test_revoked_relation_credentials_stop_mirrormaker(ctx):
    relation, secrets = source_relation()
    started = start(ctx, state(relations=(relation,), secrets=secrets))

    out = ctx.run(ctx.on.update_status(), dataclasses.replace(started, secrets=frozenset()))

    user = json.loads(relation.remote_app_data["requests"])[0]["secret-user"]
    assert_stopped(
        ctx,
        out,
        f"migration-source: old-kafka no longer sends credentials: its secret-user {user} "
        "cannot be read (revoked, removed or not granted)",
    )


def test_a_peer_that_lost_the_source_stops_this_unit(ctx):
    secret = credentials()
    started = start(ctx, state(config=external(secret), secrets=(secret,)))
    stop = MigrationRequest(state="stopped", seq=2, at=2000, by="kafka-k8s/1", reason="gone")
    cluster = dataclasses.replace(
        started.get_relations("cluster")[0], peers_data={1: {"mirrormaker-request": stop.raw()}}
    )

    out = ctx.run(
        ctx.on.relation_changed(cluster, remote_unit=1),
        dataclasses.replace(started, relations={cluster}),
    )

    assert service(out) == ops.pebble.ServiceStatus.INACTIVE
    assert out.unit_status == testing.BlockedStatus(f"MirrorMaker stopped: gone{GONE}")


def test_after_a_stop_for_a_lost_source_start_resumes_and_stop_clears(ctx):
    secret = credentials()
    before = state(config=external(secret), secrets=(secret,))
    started = start(ctx, before)
    lost = ctx.run(ctx.on.update_status(), dataclasses.replace(started, secrets=frozenset()))
    regranted = dataclasses.replace(lost, secrets={secret})

    resumed = start(ctx, regranted)
    cleared = ctx.run(ctx.on.action("stop-migration"), lost)

    assert service(resumed) == ops.pebble.ServiceStatus.ACTIVE
    assert unit_request(resumed)["state"] == "running"
    assert "reason" not in unit_request(resumed)
    assert "reason" not in unit_request(cleared)
    assert cleared.unit_status.message.startswith("mirrormaker-source-credentials: secret")


def test_a_typo_in_an_option_keeps_mirrormaker_running(ctx):
    secret = credentials()
    started = start(ctx, state(config=external(secret), secrets=(secret,)))
    typo = credentials(**{"sasl-mechanisms": "PLAIN"})

    out = ctx.run(
        ctx.on.config_changed(),
        dataclasses.replace(started, config=external(typo), secrets={secret, typo}),
    )

    assert service(out) == ops.pebble.ServiceStatus.ACTIVE
    assert unit_request(out)["state"] == "running"
    assert "unknown key sasl-mechanisms" in out.unit_status.message
