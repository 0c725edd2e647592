# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Issue 22, every login Kafka offers: one old cluster serves them all, MirrorMaker copies each.

One ZooKeeper-mode Kafka 3.9 broker has a listener per login: PLAINTEXT, SSL, SSL with client
certificates required, SASL_PLAINTEXT with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, SASL_SSL, and
SASL_SSL with OAUTHBEARER, whose tokens it validates against a real OIDC provider's keys
(Keycloak, on loopback over HTTPS). One unit of the charm's Kafka is the target. For each login
the source is what the library makes of the credentials secret's content, as the charm reads
it; the dry run's rights probe and the report log in with kafka-python as the library does,
MirrorMaker (the library's service under real Pebble) with the rendered `mm2.properties`. A small
topic of each login arrives record by record, and `switch-group` moves its group exactly (for
SCRAM-SHA-512, today's source, `finish-migration` does). Wrong logins against the real listeners
are named for what they are.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic, ScramMechanism

from charms.kafka_k8s.v0.mirrormaker import (
    MigrationConfig,
    MirrorMakerSettings,
    SourceCluster,
    TargetCluster,
    migration_report,
)
from charms.kafka_k8s.v0.mirrormaker._preflight import dry_run
from substrate.keycloak import Keycloak
from substrate.migration import (
    MIGRATOR,
    MIGRATOR_PASSWORD,
    MirrorMakers,
    commit_offsets,
    committed,
    finish,
    misread_partitions,
    produce,
    switch_groups,
    target_cluster,
    wait_copied,
)
from substrate.old_cluster import (
    OAuthValidation,
    OldCluster,
    TlsMaterial,
    client_certificate,
    make_ca,
)
from substrate.processes import LOOPBACK
from substrate.units import NewCluster

LOGINS = (
    "plaintext",
    "ssl",
    "mtls",
    "plain",
    "scram-sha-256",
    "scram-sha-512",
    "sasl-ssl",
    "oauthbearer",
)
PARTITIONS = 2
RECORDS = 30
# Where each group has read to on the source, per partition.
READ = {0: 9, 1: 4}
# The login whose migration is finished (finish-migration) rather than only switched.
FINISHED = "scram-sha-512"
OAUTH_CLIENT = "kafka-migrator"
OAUTH_SECRET = "oauth-client-secret-1618"


@dataclass
class Logins:
    """The module's clusters, and what each login's credentials secret holds."""

    old: OldCluster
    new: NewCluster
    tls: TlsMaterial
    keycloak: Keycloak
    certificate: str
    key: str

    @property
    def target(self) -> TargetCluster:
        return target_cluster(self.new)

    def log_files(self) -> list[Path]:
        """Every cluster's logs, for a failed test's report."""
        return [*self.old.log_files(), *self.new.log_files(), *self.keycloak.log_files()]

    def secret(self, login: str) -> dict[str, str]:
        """The content of the credentials secret an operator would write for `login`."""
        password = {"username": MIGRATOR, "password": MIGRATOR_PASSWORD}
        return {
            "plaintext": {"security-protocol": "PLAINTEXT"},
            "ssl": {"security-protocol": "SSL", "ca": self.tls.ca},
            "mtls": {
                "security-protocol": "SSL",
                "ca": self.tls.ca,
                "client-certificate": self.certificate,
                "client-key": self.key,
            },
            "plain": {**password, "sasl-mechanism": "PLAIN"},
            "scram-sha-256": {**password, "sasl-mechanism": "SCRAM-SHA-256"},
            "scram-sha-512": password,
            "sasl-ssl": {**password, "security-protocol": "SASL_SSL", "ca": self.tls.ca},
            "oauthbearer": {
                "security-protocol": "SASL_SSL",
                "ca": self.tls.ca,
                "sasl-mechanism": "OAUTHBEARER",
                "oauth-token-endpoint": self.keycloak.token_endpoint,
                "oauth-client-id": OAUTH_CLIENT,
                "oauth-client-secret": OAUTH_SECRET,
                "oauth-scope": "profile",
                "oauth-ca": self.tls.ca,
            },
        }[login]

    def bootstrap(self, login: str) -> str:
        """The old cluster's listener of `login`."""
        if login == "scram-sha-512":
            return self.old.bootstrap
        if login == "sasl-ssl":
            return self.old.tls_bootstrap
        return self.old.login_bootstrap(login)  # type: ignore[arg-type]

    def source(self, login: str, **changes: str) -> SourceCluster:
        """The source as the charm reads it from `mirrormaker-source-credentials`."""
        return SourceCluster.from_secret(
            {**self.secret(login), **changes},
            self.bootstrap(login).split(","),
            secret_id=f"secret:{login}",
        )


def _topic(login: str) -> str:
    return f"login-{login}"


def _group(login: str) -> str:
    return f"group-{login}"


@pytest.fixture(scope="module")
def logins(sources_cache: Path, local_tmp: Path) -> Iterator[Logins]:
    """Keycloak and the target start at once; then the old cluster, which needs the keys."""
    tls = make_ca(Path(tempfile.mkdtemp(prefix="ca-", dir=local_tmp)))
    certificate, key = client_certificate(tls, MIGRATOR)
    keycloak = Keycloak(Path(tempfile.mkdtemp(prefix="kc-", dir=local_tmp)), tls, sources_cache)
    new = NewCluster(Path(tempfile.mkdtemp(prefix="new-", dir=local_tmp)), sources_cache, size=1)
    with contextlib.ExitStack() as stack:
        stack.callback(keycloak.stop)
        started: list[BaseException] = []

        def start_keycloak() -> None:
            try:
                keycloak.start()
            except BaseException as error:
                started.append(error)

        began = time.monotonic()
        thread = threading.Thread(target=start_keycloak, daemon=True)
        thread.start()
        stack.enter_context(new)
        thread.join()
        if started:
            raise started[0]
        keycloak.add_client(OAUTH_CLIENT, OAUTH_SECRET)
        old = OldCluster(
            Path(tempfile.mkdtemp(prefix="old-", dir=local_tmp)),
            cache=sources_cache,
            tls=tls,
            logins=("plaintext", "ssl", "mtls", "plain", "scram-sha-256", "oauthbearer"),
            oauth=OAuthValidation(keycloak.jwks_url, keycloak.issuer, tls.ca),
            plain_users={MIGRATOR: MIGRATOR_PASSWORD},
        )
        stack.enter_context(old)
        print(f"\nKeycloak, the target and the old cluster up in {time.monotonic() - began:.0f}s")
        old.add_scram_user(MIGRATOR, MIGRATOR_PASSWORD)
        old.add_scram_user(MIGRATOR, MIGRATOR_PASSWORD, mechanism=ScramMechanism.SCRAM_SHA_256)
        for principal in (f"User:{MIGRATOR}", f"User:CN={MIGRATOR}", f"User:{OAUTH_CLIENT}"):
            old.grant_reader(principal)
        old.grant_reader("User:ANONYMOUS")  # PLAINTEXT and SSL without a client certificate
        admin = AdminClient(old.admin_config())
        topics = [NewTopic(_topic(login), PARTITIONS, 1) for login in LOGINS]
        for future in admin.create_topics(topics).values():
            future.result(timeout=60)
        for login in LOGINS:
            produce(old.admin_config(), _topic(login), 0, RECORDS)
            commit_offsets(
                old.admin_config(),
                _group(login),
                {(_topic(login), p): offset for p, offset in READ.items()},
            )
        yield Logins(old, new, tls, keycloak, certificate, key)


@pytest.mark.parametrize("login", LOGINS)
def test_a_migration_through_each_login(logins: Logins, login: str):
    began = time.monotonic()
    source = logins.source(login)
    topic, group = _topic(login), _group(login)
    config = MigrationConfig.from_options(
        {
            "mirrormaker-topics": topic,
            "mirrormaker-groups": group,
            "mirrormaker-refresh-interval": 5,
        }
    )
    # start-migration dry-run=true: both clusters reached, the rights probed, as the library does.
    settings = MirrorMakerSettings(
        source=source, target=logins.target, config=config, unit_host=LOOPBACK
    )
    checked = dry_run(settings)
    assert (checked["topics"], checked["groups"]) == (topic, group)
    assert "missing-rights" not in checked
    assert ("warning" in checked) == (login == "plaintext")
    report = migration_report(source, logins.target, config)
    assert report.problems == []
    assert [t.source_end_offset for t in report.topics] == [RECORDS]

    checked_at = time.monotonic()
    nodes = MirrorMakers.on(logins.new, source, logins.target, config)
    nodes.run()
    try:
        twice = wait_copied(logins.old.admin_config(), logins.new.admin_config(), [topic], 300)
        copied_at = time.monotonic()
        # Kafka 3.9 in ZooKeeper mode, today's source: the whole cutover, finish-migration.
        switches = finish(nodes, source, logins.target, config) if login == FINISHED else []
    finally:
        nodes.stop()
    stopped_at = time.monotonic()
    # switch-group: the group's consumers resume on the target at the exact next record.
    [switch] = switches or switch_groups(source, logins.target, config, [group])
    assert switch.switched and switch.exact, switch
    assert (switch.re_read, switch.skip) == (0, 0)
    moved = committed(logins.new.admin_config(), group)
    old_config, new_config = logins.old.admin_config(), logins.new.admin_config()
    assert misread_partitions(old_config, new_config, topic, group, READ) == []
    print(
        f"\n{login}: {RECORDS} records copied ({twice} twice), group moved to "
        f"{sorted(moved.values())}{' by finish-migration' if switches else ''}, in "
        f"{time.monotonic() - began:.0f}s (checks {checked_at - began:.0f}s, copy "
        f"{copied_at - checked_at:.0f}s, stop {stopped_at - copied_at:.0f}s, switch "
        f"{time.monotonic() - stopped_at:.0f}s)"
    )


@pytest.mark.parametrize(
    ("login", "listener", "changes", "named"),
    [
        pytest.param(
            "plaintext", "ssl", {}, "(with security-protocol PLAINTEXT; a TLS listener", id="tls"
        ),
        pytest.param(
            "ssl",
            "plaintext",
            {},
            "TLS handshake failed: if this address is no TLS listener, security-protocol must be "
            "PLAINTEXT or SASL_PLAINTEXT",
            id="plain",
        ),
        pytest.param("ssl", "mtls", {}, "set client-certificate and client-key", id="no-cert"),
        pytest.param(
            "scram-sha-512", "plaintext", {}, "the listener takes no SASL login", id="no-sasl"
        ),
        pytest.param(
            "oauthbearer",
            "oauthbearer",
            {"oauth-client-secret": "wrong"},
            f"refused client {OAUTH_CLIENT}: HTTP 401 unauthorized_client",
            id="token-endpoint",
        ),
    ],
)
def test_a_wrong_login_is_named(logins: Logins, login, listener, changes, named):
    source = SourceCluster.from_secret(
        {**logins.secret(login), **changes},
        logins.bootstrap(listener).split(","),
        secret_id=f"secret:{login}",
    )
    report = migration_report(source, logins.target, timeout=2)
    assert [problem.role for problem in report.problems] == ["source"]
    message = report.problems[0].message
    assert named in message, message
    assert MIGRATOR_PASSWORD not in message and OAUTH_SECRET not in message
    print(f"\n{login} at the {listener} listener: {message}")


def test_no_login_secret_in_any_log(logins: Logins):
    key_body = logins.key.splitlines()[1]
    for path in logins.new.log_files():
        text = path.read_text(errors="replace")
        for secret in (MIGRATOR_PASSWORD, OAUTH_SECRET, key_body):
            assert secret not in text, f"a secret is in {path}"
