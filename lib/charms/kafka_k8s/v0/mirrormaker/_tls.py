# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""PEM certificates and keys: what is accepted, and the TLS context a client verifies with.

A CA or a client certificate is accepted only as PEM `CERTIFICATE` blocks and whitespace, each
block one that the standard library's `ssl` parses: the text goes into `mm2.properties`, where
Kafka's config providers would resolve any `${...}` reference written beside it. A client key
is one unencrypted PKCS#8 `PRIVATE KEY` block (what Kafka's PEM keystore reads) that matches its
certificate. `ssl` loads a key only from a file: it reads it from an anonymous memory file
(`memfd_create`, never on disk) or, where there is none, from a 0600 temporary file removed
at once.
"""

from __future__ import annotations

import contextlib
import os
import re
import ssl
import tempfile
from collections.abc import Iterator

_CERTIFICATE = r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----"
_CERTIFICATES = re.compile(rf"\s*(?:{_CERTIFICATE}\s*)+")
_PKCS8_KEY = re.compile(
    r"\s*-----BEGIN PRIVATE KEY-----[A-Za-z0-9+/=\s]+-----END PRIVATE KEY-----\s*"
)
_PEM_LABEL = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")


def check_certificates(text: str, key: str) -> str:
    """The PEM certificates of a secret's or a relation's `key`, checked.

    Raises:
        ValueError: naming `key`, if it holds anything but PEM certificates `ssl` parses.
    """
    if not _CERTIFICATES.fullmatch(text):
        raise ValueError(
            f"{key} must hold PEM certificates only (-----BEGIN CERTIFICATE----- blocks), "
            "nothing before, between or after them"
        )
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=text)
    except ssl.SSLError as error:
        raise ValueError(
            f"{key} holds a certificate that does not parse ({_reason(error)})"
        ) from None
    return text


def check_private_key(key_text: str, certificate: str, key: str, certificate_key: str) -> str:
    """A client key, checked: PKCS#8 PEM, unencrypted, and the key of `certificate`.

    Raises:
        ValueError: naming `key` (and `certificate_key`), saying what is wrong.
    """
    if not _PKCS8_KEY.fullmatch(key_text):
        labels = _PEM_LABEL.findall(key_text)
        if "ENCRYPTED PRIVATE KEY" in labels:
            found = "an encrypted key"
        elif labels and labels[0].endswith("PRIVATE KEY"):
            found = f"a {labels[0]} (not PKCS#8)"
        else:
            found = "no PEM private key alone"
        raise ValueError(
            f"{key} must be one unencrypted PKCS#8 key (-----BEGIN PRIVATE KEY-----), as Kafka's"
            f" PEM keystore reads it; it holds {found}: convert it with "
            "`openssl pkcs8 -topk8 -nocrypt -in KEY`"
        )
    try:
        load_client_certificate(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), certificate, key_text)
    except ssl.SSLError as error:
        if "KEY_VALUES_MISMATCH" in str(error):
            raise ValueError(f"{key} does not match {certificate_key}") from None
        raise ValueError(f"{key} does not parse as a private key ({_reason(error)})") from None
    return key_text


def _reason(error: ssl.SSLError) -> str:
    """What `ssl` says, without its source location."""
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(error.reason or error))


@contextlib.contextmanager
def _memory_file(text: str) -> Iterator[str]:
    """A path to `text` that only this process reads, gone when the block ends."""
    if hasattr(os, "memfd_create"):
        descriptor = os.memfd_create("kafka-k8s-client-key", os.MFD_CLOEXEC)
        try:
            os.write(descriptor, text.encode())
            yield f"/proc/self/fd/{descriptor}"
        finally:
            os.close(descriptor)
        return
    descriptor, path = tempfile.mkstemp(prefix="kafka-k8s-", suffix=".pem")  # mode 0600
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        yield path
    finally:
        os.unlink(path)


def load_client_certificate(context: ssl.SSLContext, certificate: str, key: str) -> None:
    """Give `context` the client certificate (chain) and its key, from memory.

    Raises:
        ssl.SSLError: if they do not parse or do not match.
    """
    with _memory_file(f"{key.strip()}\n{certificate.strip()}\n") as path:
        context.load_cert_chain(path)


def client_context(
    ca: str | None, certificate: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """A TLS client context that verifies the server (against `ca`, else the system's CAs).

    With a certificate and key, the client presents them (mutual TLS).
    """
    context = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
    if certificate and key:
        load_client_certificate(context, certificate, key)
    return context
