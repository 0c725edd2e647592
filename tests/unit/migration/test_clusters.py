# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The clusters and their logins (`_clusters`): every login Kafka offers, and what is refused.

The source comes from the credentials secret (`source_from_secret`) or a `kafka_client`
response (`source_from_relation`); each wrong key, value or combination is a `SourceError`
naming the key, and credentials taken out of the secret a `SourceGoneError`.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import SourceError, SourceGoneError, TargetCluster, _clusters
from tests.unit.helpers import (
    CLIENT_CERTIFICATE,
    CLIENT_KEY,
    FAKE_CA,
    OTHER_KEY,
    SOURCE_CA,
    certificate,
    pem_key,
)

OPTION = "mirrormaker-source-credentials"
REFERENCE = "${file:/etc/kafka/mm2-secrets.properties:target.sasl.jaas.config}"
ENDPOINT = "https://idp.example/realms/kafka/protocol/openid-connect/token"
OAUTH = {
    "security-protocol": "SASL_SSL",
    "sasl-mechanism": "OAUTHBEARER",
    "oauth-token-endpoint": ENDPOINT,
    "oauth-client-id": "migrator",
    "oauth-client-secret": "client-secret",
}
MTLS = {
    "security-protocol": "SSL",
    "ca": SOURCE_CA,
    "client-certificate": CLIENT_CERTIFICATE,
    "client-key": CLIENT_KEY,
}
SCRAM = {"username": "migrator", "password": "pw"}


def from_secret(content: dict[str, str]) -> mm.SourceCluster:
    return _clusters.source_from_secret(content, ["old-0:9092"], secret_id="secret:x")


# Bootstrap servers -------------------------------------------------------------------------------


@pytest.mark.parametrize("servers", ["", "host", "host:port", "host:1 2", "[::1]", "host:70000"])
def test_cluster_models_refuse_bad_bootstrap_servers(servers: str):
    with pytest.raises(ValidationError):
        TargetCluster.model_validate(
            {"bootstrap_servers": servers, "username": "u", "password": "p"}
        )


def test_cluster_models_split_comma_separated_servers():
    cluster = TargetCluster.model_validate(
        {"bootstrap_servers": "[::1]:9092, 10.0.0.1:9092", "username": "u", "password": "p"}
    )
    assert cluster.bootstrap_servers == ("[::1]:9092", "10.0.0.1:9092")
    assert cluster.bootstrap == "[::1]:9092,10.0.0.1:9092"


# Every login from the credentials secret ---------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "login"),
    [
        pytest.param({"security-protocol": "PLAINTEXT"}, ("PLAINTEXT", None, None), id="plain"),
        pytest.param({"security-protocol": "SSL"}, ("SSL", None, None), id="ssl-system-cas"),
        pytest.param({"security-protocol": "SSL", "ca": SOURCE_CA}, ("SSL", None, None), id="ssl"),
        pytest.param(MTLS, ("SSL", None, None), id="mutual-tls"),
        pytest.param(SCRAM, ("SASL_PLAINTEXT", "SCRAM-SHA-512", "migrator"), id="scram-512"),
        pytest.param(
            {**SCRAM, "sasl-mechanism": "SCRAM-SHA-256"},
            ("SASL_PLAINTEXT", "SCRAM-SHA-256", "migrator"),
            id="scram-256",
        ),
        pytest.param(
            {**SCRAM, "sasl-mechanism": "PLAIN"},
            ("SASL_PLAINTEXT", "PLAIN", "migrator"),
            id="plain-mechanism",
        ),
        pytest.param(
            {**SCRAM, "security-protocol": "SASL_SSL", "ca": SOURCE_CA},
            ("SASL_SSL", "SCRAM-SHA-512", "migrator"),
            id="sasl-ssl",
        ),
        pytest.param(
            {**SCRAM, **MTLS, "security-protocol": "SASL_SSL"},
            ("SASL_SSL", "SCRAM-SHA-512", "migrator"),
            id="sasl-ssl-and-mutual-tls",
        ),
        pytest.param(OAUTH, ("SASL_SSL", "OAUTHBEARER", None), id="oauthbearer"),
        pytest.param(
            {
                **OAUTH,
                "security-protocol": "SASL_PLAINTEXT",
                "oauth-scope": "kafka",
                "oauth-ca": SOURCE_CA,
            },
            ("SASL_PLAINTEXT", "OAUTHBEARER", None),
            id="oauthbearer-scope-and-ca",
        ),
    ],
)
def test_every_login_from_the_secret(content: dict[str, str], login: tuple):
    source = from_secret(content)
    protocol, mechanism, username = login
    assert source.security_protocol == protocol
    assert (source.sasl_mechanism if source.sasl else None) == mechanism
    assert source.username == username
    assert source.unprotected == (
        "the copy reads an unauthenticated, unencrypted cluster (PLAINTEXT)"
        if protocol == "PLAINTEXT"
        else None
    )
    assert (source.jaas_config is None) == (not source.sasl)


def test_the_principal_names_who_logs_in():
    assert from_secret(SCRAM).principal == "user migrator"
    assert from_secret(OAUTH).principal == "OAuth client migrator"
    assert from_secret(MTLS).principal == "the user of the client certificate"
    assert from_secret({"security-protocol": "PLAINTEXT"}).principal == (
        "the anonymous user (PLAINTEXT, no login)"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # Keys.
        ({**SCRAM, "user": "x"}, "secret secret:x has unknown key user (keys: "),
        ({"security-protocol": "TLS"}, "security-protocol must be one of PLAINTEXT, SSL, SASL_"),
        ({**SCRAM, "sasl-mechanism": "GSSAPI"}, "sasl-mechanism must be one of SCRAM-SHA-512"),
        (
            {"security-protocol": "PLAINTEXT", "sasl-mechanism": "PLAIN"},
            "sasl-mechanism is set, but security-protocol PLAINTEXT uses no SASL",
        ),
        (
            {**SCRAM, "security-protocol": "SSL"},
            "username and password are set, but security-protocol SSL logs in with none",
        ),
        (
            {**SCRAM, "oauth-client-id": "x"},
            "the oauth-* keys are set, so sasl-mechanism must be OAUTHBEARER",
        ),
        ({**OAUTH, **SCRAM}, "username and password are set, but sasl-mechanism OAUTHBEARER"),
        # Certificates.
        ({**SCRAM, "ca": SOURCE_CA}, "ca is set, so security-protocol must be SSL or SASL_SSL"),
        ({"security-protocol": "SSL", "ca": "not a pem"}, "ca must hold PEM certificates only"),
        (
            {"security-protocol": "SSL", "ca": FAKE_CA},
            "ca holds a certificate that does not parse",
        ),
        (
            {"security-protocol": "SSL", "ca": SOURCE_CA + REFERENCE},
            "ca must hold PEM certificates only",
        ),
        (
            {"security-protocol": "SSL", "ca": f"Certificate:\n  Data: ...\n{SOURCE_CA}"},
            "ca must hold PEM certificates only",
        ),
        (
            {**MTLS, "client-key": ""},
            "client-certificate is set without client-key: mutual TLS needs both",
        ),
        (
            {"security-protocol": "SSL", "client-key": CLIENT_KEY},
            "client-key is set without client-certificate",
        ),
        ({**MTLS, "client-key": OTHER_KEY}, "client-key does not match client-certificate"),
        ({**MTLS, "client-certificate": FAKE_CA}, "client-certificate holds a certificate that"),
        ({**MTLS, "client-key": "not a key"}, "client-key must be one unencrypted PKCS#8 key"),
        ({**MTLS, "client-key": CLIENT_KEY + REFERENCE}, "client-key must be one unencrypted"),
        (
            {**MTLS, "client-key": pem_key(certificate("x", "x", ca=False)[1], pkcs8=False)},
            "it holds a EC PRIVATE KEY (not PKCS#8): convert it with `openssl pkcs8 -topk8",
        ),
        (
            {**MTLS, "security-protocol": "PLAINTEXT", "ca": ""},
            "client-certificate is set, so security-protocol must be SSL or SASL_SSL",
        ),
        # OAUTHBEARER.
        (
            {**OAUTH, "oauth-token-endpoint": "idp:8443/token"},
            "must be an http:// or https:// URL",
        ),
        (
            {**OAUTH, "oauth-token-endpoint": "ftp://idp/token"},
            "must be an http:// or https:// URL",
        ),
        ({**OAUTH, "oauth-token-endpoint": "https://idp/t?a=b"}, "https:// URL without a query"),
        ({**OAUTH, "oauth-token-endpoint": "https://idp/a b"}, "https:// URL without a query"),
        (
            {**OAUTH, "oauth-token-endpoint": "http://idp/token", "oauth-ca": SOURCE_CA},
            "oauth-ca is set, so oauth-token-endpoint must be an https:// URL",
        ),
        ({**OAUTH, "oauth-ca": FAKE_CA}, "oauth-ca holds a certificate that does not parse"),
        ({**OAUTH, "oauth-ca": SOURCE_CA + REFERENCE}, "oauth-ca must hold PEM certificates only"),
    ],
)
def test_bad_secret_content_names_the_key(content: dict[str, str], message: str):
    with pytest.raises(SourceError) as raised:
        from_secret(content)
    assert not isinstance(raised.value, SourceGoneError)
    assert raised.value.message.startswith(f"{OPTION}: ")
    assert message in raised.value.message


def test_an_encrypted_key_is_refused_as_such():
    key = certificate("x", "x", ca=False)[1].private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    with pytest.raises(SourceError, match="it holds an encrypted key"):
        from_secret({**MTLS, "client-key": key.decode()})


@pytest.mark.parametrize(
    ("content", "missing"),
    [
        ({"username": "migrator"}, "missing key password"),
        ({"username": "", "password": ""}, "missing key username, password"),
        ({**OAUTH, "oauth-client-secret": ""}, "missing key oauth-client-secret"),
        (
            {"security-protocol": "SASL_SSL", "sasl-mechanism": "OAUTHBEARER"},
            "missing key oauth-token-endpoint, oauth-client-id, oauth-client-secret",
        ),
    ],
)
def test_credentials_taken_out_of_the_secret_are_gone(content: dict[str, str], missing: str):
    """A running migration stops: MirrorMaker must not copy with credentials it lost."""
    with pytest.raises(SourceGoneError) as raised:
        from_secret(content)
    assert f"{OPTION}: secret secret:x has {missing} (keys: " in raised.value.message


def test_no_secret_value_in_a_model_repr():
    shown = repr(from_secret({**OAUTH, "oauth-ca": SOURCE_CA})) + repr(from_secret(MTLS))
    shown += repr(from_secret({**SCRAM, "password": "the-password"}))
    for secret in ("client-secret", "PRIVATE KEY", "the-password", "CERTIFICATE"):
        assert secret not in shown


# The relation's response -------------------------------------------------------------------------


def test_the_source_of_a_relation_response():
    source = _clusters.source_from_relation(
        "old", endpoints="h:1,h:2", username="u", password="p", tls=True, tls_ca=SOURCE_CA
    )
    assert source.bootstrap_servers == ("h:1", "h:2")
    assert (source.security_protocol, source.ca) == ("SASL_SSL", SOURCE_CA)
    plain = _clusters.source_from_relation(
        "old", endpoints="h:1", username="u", password="p", tls=False, tls_ca=SOURCE_CA
    )
    assert (plain.security_protocol, plain.ca) == ("SASL_PLAINTEXT", None)
    with pytest.raises(mm.SourceError, match="old sent endpoints that are not HOST:PORT"):
        _clusters.source_from_relation(
            "old", endpoints="h", username="u", password="p", tls=True, tls_ca=None
        )


@pytest.mark.parametrize(
    ("tls_ca", "reason"),
    [
        ("nope", "tls-ca must hold PEM certificates only"),
        (FAKE_CA, "tls-ca holds a certificate that does not parse"),
        (SOURCE_CA + REFERENCE, "tls-ca must hold PEM certificates only"),
    ],
)
def test_a_relation_tls_ca_must_be_pem_certificates(tls_ca: str, reason: str):
    with pytest.raises(mm.SourceError) as raised:
        _clusters.source_from_relation(
            "old", endpoints="h:1", username="u", password="p", tls=True, tls_ca=tls_ca
        )
    assert raised.value.message.startswith(
        "migration-source: old sent a tls-ca that is not a PEM certificate: "
    )
    assert reason in raised.value.message


def test_the_failback_user_logs_in_where_the_source_user_does():
    source = from_secret({**SCRAM, "security-protocol": "SASL_SSL", "ca": SOURCE_CA})
    option = "mirrormaker-failback-credentials"
    writer = _clusters.failback_source(
        source, {"username": "writer", "password": "w"}, secret_id="secret:y", option=option
    )
    assert (writer.name, writer.bootstrap_servers) == (source.name, source.bootstrap_servers)
    assert (writer.security_protocol, writer.ca, writer.username) == (
        "SASL_SSL",
        SOURCE_CA,
        "writer",
    )
    # A secret that names its protocol takes nothing of the source's.
    plain = _clusters.failback_source(
        source, {**SCRAM, "security-protocol": "SASL_PLAINTEXT"}, secret_id="secret:y"
    )
    assert (plain.security_protocol, plain.ca) == ("SASL_PLAINTEXT", None)
    with pytest.raises(SourceGoneError) as gone:
        _clusters.failback_source(source, {"username": "writer"}, secret_id="secret:y")
    assert gone.value.message.startswith(f"{option}: secret secret:y has missing key password")
