# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""A certificates provider for the local tier: a CA made by the test signs the units' requests.

`CertificateAuthority.issue` does what a tls-certificates provider and the charm do together:
the unit's request is the charm's own (`tls.certificate_request`), the provider's CA signs it,
and the charm's own `tls.server_tls` turns the signed certificate and the unit's key into what
`server.properties` embeds, exactly as when the certificate arrives on the relation.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from charmlibs.interfaces.tls_certificates import (
    Certificate,
    CertificateRequestAttributes,
    PrivateKey,
)

from tls import ServerTls, certificate_request, server_tls


@dataclass
class CertificateAuthority:
    """A CA of the test's own, and the certificates it issued."""

    name: str = "kafka-k8s local test CA"
    validity: datetime.timedelta = datetime.timedelta(days=2)
    key: PrivateKey = field(default_factory=PrivateKey.generate)
    certificate: Certificate | None = None

    def __post_init__(self) -> None:
        if self.certificate is None:
            attributes = CertificateRequestAttributes(common_name=self.name, is_ca=True)
            self.certificate = Certificate.generate_self_signed_ca(
                attributes, self.key, self.validity
            )

    @property
    def ca(self) -> Certificate:
        """The CA's certificate."""
        if self.certificate is None:
            raise ValueError("no CA certificate")
        return self.certificate

    @property
    def pem(self) -> str:
        """The CA's certificate in PEM: what clients trust."""
        return str(self.ca) + "\n"

    def issue(
        self, app: str, number: int, model: str, addresses: list[str], key: PrivateKey
    ) -> ServerTls:
        """Sign the unit's request (made with its key) and build what its broker serves."""
        request = certificate_request(app, number, model, addresses)
        csr = request.generate_csr(key)
        signed = Certificate.generate(csr, self.ca, self.key, self.validity)
        return server_tls(signed, self.ca, [signed, self.ca], key)
