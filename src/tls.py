# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""TLS on the client-facing listeners: the unit's certificate from the `certificates` relation.

- `certificate_request` is what a unit asks the provider to sign: its pod's DNS names and the
  addresses clients reach it at (the external address too, with expose-external) as SANs.
- `server_tls` turns a signed certificate and the unit's private key into `ServerTls`, what
  `server.properties` embeds as a PEM keystore. Every certificate the broker serves, the first
  one, a renewal, or one a test's CA signed, goes through it: it must be for the unit's key,
  no CA, valid now, signed (through the chain's intermediates) by the CA sent with it, and
  name among its SANs every name and address the unit asked for.
- `TlsCertificates` is the thin part: the relation through `charmlibs-interfaces-tls-certificates`
  (`TLSCertificatesRequiresV4`, one certificate per unit). The library makes the private key on
  the unit and keeps it in a secret of the unit's own; it never leaves the unit, and on the
  unit it is only in `server.properties` (mode 0600). What the provider sends is hostile until
  checked: the charm reads the entries for this unit's own requests itself, one by one, so a
  certificate, CA or chain that does not parse, there or in another unit's entry, fails no
  hook; a refused one is reported with the reason (`rejected`), and the broker keeps the
  certificate it serves.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import itertools
import json
import logging
from collections.abc import Callable, Iterable

import ops
from charmlibs.interfaces.tls_certificates import (
    Certificate,
    CertificateRequestAttributes,
    CertificateSigningRequest,
    Mode,
    PrivateKey,
    TLSCertificatesError,
    TLSCertificatesRequiresV4,
)
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = logging.getLogger(__name__)

CERTIFICATES_RELATION = "certificates"


class TlsError(Exception):
    """A certificate the broker cannot serve."""


class ServerTls(BaseModel):
    """The certificate the client listeners present, with its key and the CA clients trust."""

    model_config = ConfigDict(frozen=True)

    chain: str = Field(min_length=1)  # PEM: the unit's certificate, then intermediates
    ca: str = Field(min_length=1)  # PEM: what clients verify the chain with
    key: str = Field(min_length=1, repr=False)  # PEM, unencrypted PKCS#8 (Kafka reads no other)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the unit's certificate (DER), as `openssl x509 -fingerprint` shows it."""
        leaf = x509.load_pem_x509_certificate(self.chain.encode())  # the first in the file
        return hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()

    @property
    def expires(self) -> float | None:
        """When the unit's certificate expires, in seconds since the epoch; None if unreadable."""
        try:
            leaf = x509.load_pem_x509_certificate(self.chain.encode())
        except ValueError:
            return None
        return leaf.not_valid_after_utc.timestamp()


_END = "-----END CERTIFICATE-----"


def unit_names(app: str, number: int, model: str) -> list[str]:
    """The DNS names of a unit's pod, short to fully qualified (Juju's headless service)."""
    pod = f"{app}-{number}"
    service = f"{pod}.{app}-endpoints"
    return [pod, service, f"{service}.{model}", f"{service}.{model}.svc.cluster.local"]


def certificate_request(
    app: str, number: int, model: str, addresses: Iterable[str] = ()
) -> CertificateRequestAttributes:
    """What a unit asks the provider to sign.

    Args:
        app: the application's name.
        number: the unit's number (its pod's ordinal).
        model: the model (Kubernetes namespace).
        addresses: more names or IP addresses clients reach the unit at: its pod's address and,
            with expose-external, the address outside clients connect to.
    """
    names = set(unit_names(app, number, model))
    ips: set[str] = set()
    for address in addresses:
        if not address:
            continue
        try:
            ips.add(str(ipaddress.ip_address(address)))
        except ValueError:
            names.add(address)
    return CertificateRequestAttributes(
        common_name=f"{app}-{number}", sans_dns=sorted(names), sans_ip=sorted(ips)
    )


def _pkcs8(key: PrivateKey) -> str:
    loaded = serialization.load_pem_private_key(str(key).encode(), password=None)
    return loaded.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _x509(certificate: Certificate) -> x509.Certificate:
    return x509.load_pem_x509_certificate(str(certificate).encode())


def _check_signed(leaf: Certificate, intermediates: list[Certificate], ca: Certificate) -> None:
    """Raise `TlsError` unless each certificate is signed by the next, the last by the CA."""
    path = [_x509(c) for c in (leaf, *intermediates, ca)]
    for child, issuer in itertools.pairwise(path):
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise TlsError("the certificate is not signed by the CA the provider sent") from None


_Request = CertificateRequestAttributes | CertificateSigningRequest


def _check_names(certificate: Certificate, request: _Request) -> None:
    """Raise `TlsError` unless the certificate names every name and address requested."""
    named = {*(certificate.sans_dns or ()), *(certificate.sans_ip or ())}
    missing = sorted({*(request.sans_dns or ()), *(request.sans_ip or ())} - named)
    if missing:
        more = f" and {len(missing) - 2} more" if len(missing) > 2 else ""
        raise TlsError(f"the certificate's SANs lack this unit's {', '.join(missing[:2])}{more}")


def server_tls(
    certificate: Certificate,
    ca: Certificate,
    chain: Iterable[Certificate],
    key: PrivateKey,
    *,
    request: _Request | None = None,
    now: datetime.datetime | None = None,
) -> ServerTls:
    """What the broker serves, from a certificate the provider signed and the unit's key.

    Args:
        certificate: the unit's certificate.
        ca: the CA the provider sent with it: what clients verify the chain with.
        chain: the provider's chain; what is neither the certificate nor the CA is an
            intermediate, in order from the certificate to the CA.
        key: the unit's private key.
        request: what the unit asked for: its names and addresses must be among the SANs.
        now: the time to check the validity at.

    Raises:
        TlsError: if the certificate is not for this key, is a CA, is not valid now, is not
            signed by the CA, or lacks a requested name.
    """
    if not certificate.matches_private_key(key):
        raise TlsError("the certificate is not for this unit's private key")
    if certificate.is_ca:
        raise TlsError("the provider sent a CA certificate, not a server certificate")
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    if not certificate.validity_start_time <= moment < certificate.expiry_time:
        raise TlsError(f"the certificate is not valid now (until {certificate.expiry_time})")
    leaf = str(certificate).strip()
    root = str(ca).strip()
    intermediates = [c for c in chain if str(c).strip() not in (leaf, root) and str(c).strip()]
    _check_signed(certificate, intermediates, ca)
    if request is not None:
        _check_names(certificate, request)
    return ServerTls(
        chain="\n".join([leaf, *(str(c).strip() for c in intermediates)]) + "\n",
        ca=root + "\n",
        key=_pkcs8(key),
    )


def read_server_tls(chain: str, ca: str, key: PrivateKey | None) -> ServerTls | None:
    """The certificate the broker last served (its PEM files on the unit), if still usable."""
    if key is None or not chain.strip() or not ca.strip():
        return None
    try:
        certificates = [
            Certificate.from_string(block + _END)
            for block in chain.split(_END)
            if "-----BEGIN CERTIFICATE-----" in block
        ]
        return server_tls(certificates[0], Certificate.from_string(ca), certificates[1:], key)
    except (TlsError, TLSCertificatesError, ValueError, IndexError):
        return None


class _ProvidedCertificate(BaseModel):
    """One entry of the provider's `certificates` list, as sent: text, checked before use."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    certificate_signing_request: str
    certificate: str
    ca: str
    chain: list[str] | None = None
    revoked: bool | None = None


def _provided(data: ops.RelationDataContent) -> list[_ProvidedCertificate]:
    """The provider's entries; those that are not entries at all are left out."""
    try:
        raw = json.loads(data.get("certificates") or "[]")
    except ValueError:
        return []
    entries = []
    for item in raw if isinstance(raw, list) else []:
        try:
            entries.append(_ProvidedCertificate.model_validate(item))
        except ValidationError:
            continue
    return entries


def _parse(text: str, what: str) -> Certificate:
    try:
        return Certificate.from_string(text)
    except (TLSCertificatesError, ValueError):
        raise TlsError(f"{what} sent by the provider does not parse") from None


def offered_tls(
    entry: _ProvidedCertificate,
    key: PrivateKey,
    request: _Request,
    *,
    now: datetime.datetime | None = None,
) -> tuple[datetime.datetime, ServerTls]:
    """What the broker would serve from one of the provider's entries, and when it starts.

    Raises:
        TlsError: if the certificate, CA or chain does not parse, or `server_tls` refuses it.
    """
    certificate = _parse(entry.certificate, "the certificate")
    ca = _parse(entry.ca, "the CA")
    chain = [_parse(pem, "a certificate of the chain") for pem in entry.chain or ()]
    served = server_tls(certificate, ca, chain, key, request=request, now=now)
    return certificate.validity_start_time, served


class _Requirer(TLSCertificatesRequiresV4):
    """The library's requirer, whose own handlers never fail a hook on what a provider sent.

    Whenever it looks at the relation (its handlers of relation-created and -changed,
    leader-elected and the refresh events, and `sync()`), the library parses every certificate
    of every unit in the provider's data, and one PEM-shaped certificate that does not parse
    raises out of the hook, on every unit. Its requests are sent before that point; what it
    would then store and announce, the charm reads itself (`TlsCertificates.assigned`).
    """

    def _configure(self, event: ops.EventBase | None = None) -> None:
        try:
            super()._configure(event)
        except TLSCertificatesError as error:
            logger.warning("certificates relation: the provider's data does not parse: %s", error)


class TlsCertificates(ops.Object):
    """The `certificates` relation: one certificate per unit, renewed by the library.

    Args:
        charm: the charm.
        request: what this unit asks to be signed, computed when the library needs it (every
            hook it handles), so it must read only what the unit recorded.
        refresh_events: more events after which the request is compared and sent again.
    """

    def __init__(
        self,
        charm: ops.CharmBase,
        request: Callable[[], CertificateRequestAttributes],
        refresh_events: list[ops.BoundEvent] | None = None,
    ):
        super().__init__(charm, CERTIFICATES_RELATION)
        self.charm = charm
        self.requirer = _Requirer(
            charm,
            CERTIFICATES_RELATION,
            certificate_requests=lambda _capabilities: [request()],
            mode=Mode.UNIT,
            refresh_events=refresh_events or [],
        )

    @property
    def relation(self) -> ops.Relation | None:
        """The `certificates` relation, while there is one."""
        return self.charm.model.get_relation(CERTIFICATES_RELATION)

    @property
    def private_key(self) -> PrivateKey | None:
        """This unit's private key, once the library made it."""
        try:
            return self.requirer.private_key
        except (TLSCertificatesError, ops.ModelError, ValueError):
            return None

    def _requests(self) -> list[CertificateSigningRequest]:
        """This unit's requests on the relation (its own data)."""
        try:
            return [
                request.certificate_signing_request
                for request in self.requirer.get_csrs_from_requirer_relation_data()
            ]
        except (TLSCertificatesError, ops.ModelError, ValueError) as error:
            logger.warning("certificates relation: this unit's requests do not parse: %s", error)
            return []

    def _offers(self) -> list[tuple[datetime.datetime, ServerTls] | TlsError]:
        """Each entry the provider sent for one of this unit's requests, checked."""
        relation = self.relation
        key = self.private_key
        if relation is None or relation.app is None or key is None:
            return []
        requests = {str(csr).strip(): csr for csr in self._requests()}
        offers: list[tuple[datetime.datetime, ServerTls] | TlsError] = []
        try:
            entries = _provided(relation.data[relation.app])
        except ops.ModelError:
            return []
        for entry in entries:
            csr = requests.get(entry.certificate_signing_request.strip())
            if csr is None or entry.revoked:
                continue
            try:
                offers.append(offered_tls(entry, key, csr))
            except TlsError as error:
                logger.warning("certificate from the provider not used: %s", error)
                offers.append(error)
        return offers

    def assigned(self) -> ServerTls | None:
        """The newest valid certificate the provider signed for this unit's current request."""
        usable = [offer for offer in self._offers() if not isinstance(offer, TlsError)]
        return max(usable, key=lambda item: item[0])[1] if usable else None

    def rejected(self) -> str | None:
        """Why the certificate the provider sent for this unit is not served, if it is not.

        `None` while a usable one is there, or none was sent.
        """
        offers = self._offers()
        if any(not isinstance(offer, TlsError) for offer in offers):
            return None
        errors = [str(offer) for offer in offers if isinstance(offer, TlsError)]
        return errors[0] if errors else None

    def refused(self) -> str | None:
        """Why the provider refused this unit's request, if it did."""
        if self.relation is None:
            return None
        try:
            errors = self.requirer.get_request_errors()
        except (TLSCertificatesError, ops.ModelError, ValueError):
            return None
        return errors[0].error.message if errors else None

    def sync(self) -> None:
        """Send the current request if it changed (a new SAN): the provider signs it again."""
        if self.relation is not None:
            self.requirer.sync()

    def pending_status(self) -> ops.StatusBase:
        """What a unit with the relation but no usable certificate waits for, or why not."""
        relation = self.relation
        rejected = self.rejected() if relation is not None else None
        if relation is not None and rejected is not None:
            return ops.BlockedStatus(
                f"certificates relation {relation.id}: {rejected}; it is not served"
            )
        if refused := self.refused():
            return ops.BlockedStatus(
                f"the certificates provider refused this unit's request: {refused[:80]}"
            )
        return ops.WaitingStatus("waiting for this unit's certificate (certificates relation)")

    def statuses(
        self, *, assigned: bool, client_tls: bool, client_port: int
    ) -> list[ops.StatusBase]:
        """What TLS waits for: a certificate, a valid one, or the restart that leaves it.

        Args:
            assigned: whether this unit has a usable certificate to serve.
            client_tls: whether the running broker serves its clients over TLS.
            client_port: the port clients reach this unit's broker on.
        """
        relation = self.relation
        if relation is not None:
            if not assigned:
                return [self.pending_status()]
            rejected = self.rejected()
            if rejected is None:
                return []
            return [
                ops.BlockedStatus(
                    f"certificates relation {relation.id}: {rejected}; the broker keeps "
                    "serving its certificate"
                )
            ]
        if client_tls:
            return [
                ops.MaintenanceStatus(
                    "certificates relation removed: clients go back to SASL_PLAINTEXT on port "
                    f"{client_port} at this unit's turn to restart"
                )
            ]
        return []
