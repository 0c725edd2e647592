# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The `certificates` relation under ops.testing: request, certificate, renewal, removal.

`Provider` plays the tls-certificates provider: it reads the unit's request from the relation
and answers with a certificate its own CA signed, as self-signed-certificates would.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import stat

import pytest
from charmlibs.interfaces.tls_certificates import (
    Certificate,
    CertificateRequestAttributes,
    CertificateSigningRequest,
    PrivateKey,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ops import testing

from tests.unit.helpers import (
    RESTARTS,
    client_relation,
    host,
    load_properties,
    properties,
    restart_queued,
    running,
)
from tls import TlsError, certificate_request, server_tls

DAY = datetime.timedelta(days=1)


class Provider:
    """A certificates provider with its own CA."""

    def __init__(self, name: str = "test CA") -> None:
        self.key = PrivateKey.generate()
        self.ca = Certificate.generate_self_signed_ca(
            CertificateRequestAttributes(common_name=name, is_ca=True), self.key, 30 * DAY
        )

    @staticmethod
    def requests(state: testing.State) -> list[CertificateSigningRequest]:
        relation = state.get_relations("certificates")[0]
        raw = json.loads(relation.local_unit_data.get("certificate_signing_requests", "[]"))
        return [
            CertificateSigningRequest.from_string(r["certificate_signing_request"]) for r in raw
        ]

    def sign(self, state: testing.State, validity: datetime.timedelta = 10 * DAY) -> testing.State:
        """Answer every request of the unit, as the provider's relation-changed would."""
        relation = state.get_relations("certificates")[0]
        certificates = []
        for csr in self.requests(state):
            certificate = Certificate.generate(csr, self.ca, self.key, validity)
            certificates.append(
                {
                    "certificate_signing_request": str(csr),
                    "certificate": str(certificate),
                    "ca": str(self.ca),
                    "chain": [str(certificate), str(self.ca)],
                }
            )
        answered = dataclasses.replace(
            relation, remote_app_data={"certificates": json.dumps(certificates)}
        )
        return dataclasses.replace(state, relations={*(state.relations - {relation}), answered})


def certificates() -> testing.Relation:
    return testing.Relation("certificates", remote_app_name="self-signed-certificates")


def related(ctx, etc, **kw) -> testing.State:
    """A running broker (plain listener) that has just been related to a provider."""
    before, _ = running(ctx, etc, **kw)
    relation = certificates()
    joined = dataclasses.replace(before, relations={*before.relations, relation})
    return ctx.run(ctx.on.relation_changed(relation), joined)


def signed(ctx, etc, provider: Provider, **kw) -> testing.State:
    asked = related(ctx, etc, **kw)
    answered = provider.sign(asked)
    return ctx.run(ctx.on.relation_changed(answered.get_relations("certificates")[0]), answered)


def test_the_request_names_the_unit_and_its_key_stays_on_the_unit(ctx, etc):
    out = related(ctx, etc)

    (csr,) = Provider.requests(out)
    assert csr.common_name == "kafka-k8s-0"
    assert csr.sans_dns == {
        "kafka-k8s-0",
        "kafka-k8s-0.kafka-k8s-endpoints",
        "kafka-k8s-0.kafka-k8s-endpoints.kafka-model",
        "kafka-k8s-0.kafka-k8s-endpoints.kafka-model.svc.cluster.local",
    }
    keys = [s for s in out.secrets if "private-key" in (s.label or "")]
    assert [s.owner for s in keys] == ["unit"]
    key = keys[0].latest_content["private-key"]
    everything_shared = json.dumps(
        [dict(r.local_unit_data) | dict(r.local_app_data) for r in out.relations]
    )
    assert key.splitlines()[1] not in everything_shared
    # Until the certificate arrives the broker keeps serving the plain listener.
    assert properties((etc / "server.properties").read_text())["listeners"].startswith(
        "CLIENT://0.0.0.0:9092,"
    )
    assert out.unit_status == testing.WaitingStatus(
        "waiting for this unit's certificate (certificates relation)"
    )


def test_a_certificate_moves_the_client_listener_to_sasl_ssl_at_the_units_turn(ctx, etc):
    provider = Provider()

    out = signed(ctx, etc, provider)

    text = (etc / "server.properties").read_text()
    props = load_properties(text)
    assert props["listeners"] == (
        "CLIENT://0.0.0.0:9093,INTERNAL://0.0.0.0:19092,CONTROLLER://0.0.0.0:9097"
    )
    assert props["advertised.listeners"] == (
        f"CLIENT://{host(0)}:9093,INTERNAL://{host(0)}:19092,CONTROLLER://{host(0)}:9097"
    )
    assert props["listener.security.protocol.map"] == (
        "CLIENT:SASL_SSL,INTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    )
    assert props["ssl.keystore.type"] == "PEM"
    assert props["ssl.keystore.key"].startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8
    chain = props["ssl.keystore.certificate.chain"]
    (csr,) = Provider.requests(out)
    assert Certificate.from_string(chain).common_name == csr.common_name
    assert str(provider.ca) not in chain  # the root is the clients' to trust, not sent
    assert stat.S_IMODE((etc / "server.properties").stat().st_mode) == 0o600
    assert (etc / "tls-ca.pem").read_text().strip() == str(provider.ca)
    assert "PRIVATE KEY" not in (etc / "tls-chain.pem").read_text()
    # Its expiry is published for the leader's alert rule on it.
    expires = Certificate.from_string(chain).expiry_time
    published = out.get_relations("cluster")[0].local_unit_data["certificate-expiry"]
    assert expires is not None and published == f"{expires.timestamp():.0f}"
    # The hook never restarts a running broker: it asks for its turn.
    assert restart_queued(out)
    assert out.unit_status == testing.MaintenanceStatus(
        "waiting for this unit's turn to restart its broker"
    )


def test_its_turn_restarts_it_with_the_ready_check_on_9093(ctx, etc, lock_worker):
    out = signed(ctx, etc, Provider())

    turned = ctx.run(ctx.on.update_status(), out)

    check = turned.get_container("kafka").layers["kafka"].checks["kafka-ready"]
    assert check.tcp == {"port": 9093}
    assert turned.unit_status == testing.ActiveStatus("broker and controller, TLS")


def test_kafka_client_gets_tls_the_ca_and_the_ssl_endpoints(ctx, etc, kafka):
    provider = Provider()
    client = client_relation()

    out = signed(ctx, etc, provider, relations=[client])

    data = out.get_relation(client.id).local_app_data
    assert data["endpoints"] == ",".join(f"{host(n)}:9093" for n in (0, 1, 2))
    tls = out.get_secret(id=data["secret-tls"]).latest_content
    assert tls["tls"] == "true"
    assert tls["tls-ca"].strip() == str(provider.ca)


def test_a_renewed_certificate_rolls_the_broker(ctx, etc, lock_worker):
    provider = Provider()
    on_tls = ctx.run(ctx.on.update_status(), signed(ctx, etc, provider))
    assert not restart_queued(on_tls)
    before = load_properties((etc / "server.properties").read_text())

    renewed = provider.sign(on_tls)  # the same request, a new certificate
    out = ctx.run(ctx.on.relation_changed(renewed.get_relations("certificates")[0]), renewed)

    after = load_properties((etc / "server.properties").read_text())
    chain = "ssl.keystore.certificate.chain"
    assert after[chain] != before[chain]
    assert after["ssl.keystore.key"] == before["ssl.keystore.key"]
    assert restart_queued(out)


def test_while_the_provider_signs_a_new_request_the_served_certificate_stays(ctx, etc):
    provider = Provider()
    on_tls = signed(ctx, etc, provider)
    before = (etc / "server.properties").read_text()
    relation = on_tls.get_relations("certificates")[0]
    # The unit asked again (a renewal removes the old request): nothing is assigned for now.
    pending = dataclasses.replace(relation, remote_app_data={})

    out = ctx.run(
        ctx.on.relation_changed(pending),
        dataclasses.replace(on_tls, relations={*(on_tls.relations - {relation}), pending}),
    )

    assert (etc / "server.properties").read_text() == before
    assert out.unit_status.name != "waiting"


def test_removing_the_relation_returns_to_the_plain_listener_and_says_so(ctx, etc, lock_worker):
    on_tls = ctx.run(ctx.on.update_status(), signed(ctx, etc, Provider()))

    out = ctx.run(ctx.on.relation_broken(on_tls.get_relations("certificates")[0]), on_tls)

    props = load_properties((etc / "server.properties").read_text())
    assert props["listeners"].startswith("CLIENT://0.0.0.0:9092,")
    assert "ssl.keystore.key" not in props
    assert not (etc / "tls-ca.pem").exists()
    assert restart_queued(out)
    assert out.unit_status == testing.MaintenanceStatus(
        "certificates relation removed: clients go back to SASL_PLAINTEXT on port 9092 at "
        "this unit's turn to restart"
    )


def test_a_new_unit_waits_for_its_certificate_before_starting(ctx):
    from tests.unit.helpers import MODEL, cluster, container, credentials_secret

    secret = credentials_secret()
    state = testing.State(
        leader=True,
        model=MODEL,
        containers={container()},
        relations={cluster(secret), certificates(), RESTARTS},
        secrets={secret},
    )

    out = ctx.run(ctx.on.config_changed(), state)

    assert out.get_container("kafka").plan.services == {}
    assert out.unit_status == testing.WaitingStatus(
        "waiting for this unit's certificate (certificates relation)"
    )


def test_a_refused_request_blocks_with_the_providers_reason(ctx, etc):
    asked = related(ctx, etc)
    relation = asked.get_relations("certificates")[0]
    (csr,) = Provider.requests(asked)
    error = {"code": 102, "name": "DOMAIN_NOT_ALLOWED", "message": "domain not allowed"}
    refused = dataclasses.replace(
        relation,
        remote_app_data={"request_errors": json.dumps([{"csr": str(csr), "error": error}])},
    )

    out = ctx.run(
        ctx.on.relation_changed(refused),
        dataclasses.replace(asked, relations={*(asked.relations - {relation}), refused}),
    )

    assert out.unit_status == testing.BlockedStatus(
        "the certificates provider refused this unit's request: domain not allowed"
    )


# --- the pure parts -----------------------------------------------------------------------


def test_the_external_address_is_a_san_an_ip_or_a_name():
    by_ip = certificate_request("kafka-k8s", 2, "m", ["203.0.113.7"])
    by_name = certificate_request("kafka-k8s", 2, "m", ["lb.example.com"])

    assert by_ip.sans_ip == {"203.0.113.7"}
    assert by_name.sans_dns is not None and "lb.example.com" in by_name.sans_dns
    assert by_name.sans_ip is None


def test_a_certificate_for_another_key_or_expired_is_refused():
    provider = Provider()
    key, other = PrivateKey.generate(), PrivateKey.generate()
    csr = certificate_request("kafka-k8s", 0, "m").generate_csr(key)
    certificate = Certificate.generate(csr, provider.ca, provider.key, DAY)

    with pytest.raises(TlsError, match="not for this unit's private key"):
        server_tls(certificate, provider.ca, [], other)
    later = datetime.datetime.now(datetime.timezone.utc) + 2 * DAY
    with pytest.raises(TlsError, match="not valid now"):
        server_tls(certificate, provider.ca, [], key, now=later)
    with pytest.raises(TlsError, match="a CA certificate"):
        server_tls(provider.ca, provider.ca, [], provider.key)


def test_after_the_removal_kafka_client_is_told_plain_text(ctx, etc, kafka, lock_worker):
    client = client_relation()
    on_tls = signed(ctx, etc, Provider(), relations=[client])

    out = ctx.run(ctx.on.relation_broken(on_tls.get_relations("certificates")[0]), on_tls)

    data = out.get_relation(client.id).local_app_data
    assert data["endpoints"] == ",".join(f"{host(n)}:9092" for n in (0, 1, 2))
    assert out.get_secret(id=data["secret-tls"]).latest_content == {"tls": "false"}


# --- what a provider sends is hostile until checked (issue 26, item 7) ---------------------

# PEM-shaped, but no certificate: what a broken or hostile provider may send.
GARBLED = "-----BEGIN CERTIFICATE-----\nMIIBgarbled\n-----END CERTIFICATE-----"


def _answer(state: testing.State, entries: list[dict]) -> testing.State:
    relation = state.get_relations("certificates")[0]
    answered = dataclasses.replace(relation, remote_app_data={"certificates": json.dumps(entries)})
    return dataclasses.replace(state, relations={*(state.relations - {relation}), answered})


def _entry(provider: Provider, csr: CertificateSigningRequest, **changes: object) -> dict:
    certificate = Certificate.generate(csr, provider.ca, provider.key, 10 * DAY)
    entry = {
        "certificate_signing_request": str(csr),
        "certificate": str(certificate),
        "ca": str(provider.ca),
        "chain": [str(certificate), str(provider.ca)],
    }
    return entry | changes


def _unit_key(state: testing.State) -> PrivateKey:
    (secret,) = [s for s in state.secrets if "private-key" in (s.label or "")]
    return PrivateKey.from_string(secret.latest_content["private-key"])


def _every_event(ctx, state: testing.State) -> testing.State:
    """The events that read the certificates relation: the library's handlers, and reconcile."""
    relation = state.get_relations("certificates")[0]
    for event in (ctx.on.relation_changed(relation), ctx.on.update_status()):
        state = ctx.run(event, state)
    return ctx.run(ctx.on.config_changed(), state)


@pytest.mark.parametrize("garbled", ["certificate", "ca", "chain"])
def test_a_certificate_that_does_not_parse_fails_no_hook_and_the_served_one_stays(
    ctx, etc, lock_worker, garbled
):
    provider = Provider()
    on_tls = ctx.run(ctx.on.update_status(), signed(ctx, etc, provider))
    served = (etc / "server.properties").read_text()
    (csr,) = Provider.requests(on_tls)
    bad = _entry(provider, csr, **{garbled: [GARBLED] if garbled == "chain" else GARBLED})

    out = _every_event(ctx, _answer(on_tls, [bad]))

    assert (etc / "server.properties").read_text() == served
    relation = out.get_relations("certificates")[0]
    what = {"certificate": "the certificate", "ca": "the CA"}.get(
        garbled, "a certificate of the chain"
    )
    assert out.unit_status == testing.BlockedStatus(
        f"certificates relation {relation.id}: {what} sent by the provider does not parse; "
        "the broker keeps serving its certificate"
    )


def test_another_units_garbled_certificate_keeps_no_unit_from_its_own(ctx, etc, lock_worker):
    provider = Provider()
    asked = related(ctx, etc)
    (csr,) = Provider.requests(asked)
    other_key = PrivateKey.generate()
    other = certificate_request("kafka-k8s", 1, "kafka-model").generate_csr(other_key)

    answered = _answer(
        asked, [_entry(provider, other, certificate=GARBLED), _entry(provider, csr)]
    )
    out = _every_event(ctx, answered)

    props = load_properties((etc / "server.properties").read_text())
    assert props["listeners"].startswith("CLIENT://0.0.0.0:9093,")
    assert (etc / "tls-ca.pem").read_text().strip() == str(provider.ca)
    assert out.unit_status.name != "blocked"


def test_a_certificate_not_signed_by_the_given_ca_is_not_served(ctx, etc):
    provider, stranger = Provider(), Provider("another CA")
    asked = related(ctx, etc)
    (csr,) = Provider.requests(asked)

    out = _every_event(ctx, _answer(asked, [_entry(stranger, csr, ca=str(provider.ca))]))

    props = load_properties((etc / "server.properties").read_text())
    assert props["listeners"].startswith("CLIENT://0.0.0.0:9092,")
    assert "ssl.keystore.key" not in props
    relation = out.get_relations("certificates")[0]
    assert out.unit_status == testing.BlockedStatus(
        f"certificates relation {relation.id}: the certificate is not signed by the CA the "
        "provider sent; it is not served"
    )


def test_a_certificate_without_the_units_names_is_not_served(ctx, etc, lock_worker):
    provider = Provider()
    on_tls = ctx.run(ctx.on.update_status(), signed(ctx, etc, provider))
    served = (etc / "server.properties").read_text()
    (csr,) = Provider.requests(on_tls)
    elsewhere = CertificateRequestAttributes(common_name="kafka-k8s-0", sans_dns={"evil.example"})
    certificate = Certificate.generate(
        elsewhere.generate_csr(_unit_key(on_tls)), provider.ca, provider.key, 10 * DAY
    )

    entry = _entry(provider, csr, certificate=str(certificate), chain=[str(certificate)])
    out = _every_event(ctx, _answer(on_tls, [entry]))

    assert (etc / "server.properties").read_text() == served
    relation = out.get_relations("certificates")[0]
    assert out.unit_status == testing.BlockedStatus(
        f"certificates relation {relation.id}: the certificate's SANs lack this unit's "
        "kafka-k8s-0, kafka-k8s-0.kafka-k8s-endpoints and 2 more; the broker keeps serving its "
        "certificate"
    )


def _signed(subject: str, issuer: x509.Certificate | None, issuer_key, public_key, names=()):
    """A certificate made with `cryptography`.

    charmlibs' `Certificate.generate` names its CA's own issuer as the issuer, so it cannot make
    a chain through an intermediate.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - DAY)
        .not_valid_after(now + DAY)
        .add_extension(x509.BasicConstraints(ca=not names, path_length=None), critical=True)
    )
    if names:
        sans = [x509.DNSName(n) for n in names]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def test_a_chain_through_an_intermediate_is_verified_and_served():
    root_key, middle_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    root = _signed("root CA", None, root_key, root_key.public_key())
    middle = _signed("intermediate CA", root, root_key, middle_key.public_key())
    key = PrivateKey.generate()
    public = serialization.load_pem_private_key(str(key).encode(), None).public_key()
    request = certificate_request("kafka-k8s", 0, "m")
    leaf = _signed("kafka-k8s-0", middle, middle_key, public, sorted(request.sans_dns or ()))

    def pem(certificate: x509.Certificate) -> Certificate:
        return Certificate.from_string(
            certificate.public_bytes(serialization.Encoding.PEM).decode()
        )

    served = server_tls(
        pem(leaf), pem(root), [pem(leaf), pem(middle), pem(root)], key, request=request
    )

    assert served.chain == f"{str(pem(leaf)).strip()}\n{str(pem(middle)).strip()}\n"
    with pytest.raises(TlsError, match="not signed by the CA"):
        server_tls(pem(leaf), pem(root), [pem(leaf)], key, request=request)  # no intermediate
