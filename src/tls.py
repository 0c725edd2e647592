# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""TLS on the client-facing listeners: the unit's certificate from the `certificates` relation.

- `certificate_request` is what a unit asks the provider to sign: its pod's DNS names and the
  addresses clients reach it at (the external address too, with expose-external) as SANs.
- `server_tls` turns a signed certificate and the unit's private key into `ServerTls`, what
  `server.properties` embeds as a PEM keystore. Every certificate the broker serves, the first
  one, a renewal, or one a test's CA signed, goes through it.
- `TlsCertificates` is the thin part: the relation through `charmlibs-interfaces-tls-certificates`
  (`TLSCertificatesRequiresV4`, one certificate per unit). The library makes the private key on
  the unit and keeps it in a secret of the unit's own; it never leaves the unit, and on the
  unit it is only in `server.properties` (mode 0600).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
from collections.abc import Callable, Iterable

import ops
from charmlibs.interfaces.tls_certificates import (
    Certificate,
    CertificateRequestAttributes,
    Mode,
    PrivateKey,
    TLSCertificatesError,
    TLSCertificatesRequiresV4,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict, Field

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


def server_tls(
    certificate: Certificate,
    ca: Certificate,
    chain: Iterable[Certificate],
    key: PrivateKey,
    *,
    now: datetime.datetime | None = None,
) -> ServerTls:
    """What the broker serves, from a certificate the provider signed and the unit's key.

    Raises:
        TlsError: if the certificate is not for this key, is a CA, or is not valid now.
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
    intermediates = [
        pem for pem in (str(c).strip() for c in chain) if pem not in (leaf, root) and pem
    ]
    return ServerTls(
        chain="\n".join([leaf, *intermediates]) + "\n",
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
    except (TlsError, ValueError, IndexError):
        return None


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
        self.requirer = TLSCertificatesRequiresV4(
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

    def assigned(self) -> ServerTls | None:
        """The newest valid certificate the provider signed for this unit's current request."""
        if self.relation is None:
            return None
        try:
            certificates, key = self.requirer.get_assigned_certificates()
        except (TLSCertificatesError, ops.ModelError, ValueError) as error:
            logger.warning("certificates relation unreadable: %s", error)
            return None
        usable = []
        for provided in certificates:
            if provided.revoked or key is None:
                continue
            try:
                usable.append(
                    (
                        provided.certificate.validity_start_time,
                        server_tls(provided.certificate, provided.ca, provided.chain, key),
                    )
                )
            except TlsError as error:
                logger.warning("certificate from the provider not used: %s", error)
        return max(usable, key=lambda item: item[0])[1] if usable else None

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
