# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The clusters: where they are, and how a client logs in to them.

One login model serves both clusters: a security protocol (`PLAINTEXT`, `SSL`,
`SASL_PLAINTEXT`, `SASL_SSL`); over SASL a mechanism (`PLAIN`, `SCRAM-SHA-256`,
`SCRAM-SHA-512` with a username and password, or `OAUTHBEARER` with OIDC client credentials);
over TLS a CA to verify the brokers with (the system's CAs without one) and, for mutual TLS, a
client certificate and key. A combination Kafka would not take is refused when the model is
made, in the words of the credentials secret's keys. The source comes from that secret
(`source_from_secret`) or from a `kafka_client` relation's response (`source_from_relation`);
what is wrong with either is a `SourceError` that names the key or the relation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ._errors import SourceError, SourceGoneError
from ._rendering import jaas_escape
from ._tls import check_certificates, check_private_key

SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "OAUTHBEARER"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
_SASL_MECHANISMS: tuple[str, ...] = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "OAUTHBEARER")
_SECURITY_PROTOCOLS: tuple[str, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_PASSWORD_KEYS = ("username", "password")
_OAUTH_KEYS = ("oauth-token-endpoint", "oauth-client-id", "oauth-client-secret")
_OPTIONAL_OAUTH_KEYS = ("oauth-scope", "oauth-ca")
_TLS_KEYS = ("ca", "client-certificate", "client-key")
SECRET_KEYS = (
    "security-protocol",
    "sasl-mechanism",
    *_PASSWORD_KEYS,
    *_OAUTH_KEYS,
    *_OPTIONAL_OAUTH_KEYS,
    *_TLS_KEYS,
)
_KEYS_HINT = (
    "keys: security-protocol, sasl-mechanism; username, password (PLAIN, SCRAM); "
    "oauth-token-endpoint, oauth-client-id, oauth-client-secret, oauth-scope, oauth-ca "
    "(OAUTHBEARER); ca, client-certificate, client-key (SSL, SASL_SSL)"
)
_SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
_PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
_OAUTH_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"


def split(value: object) -> object:
    """Split a comma-separated option into its stripped, non-empty items."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def check_servers(servers: tuple[str, ...]) -> tuple[str, ...]:
    """Check each server is `HOST:PORT`, with no whitespace or control character anywhere.

    A line break in a host would end the `bootstrap.servers` line of `mm2.properties` early if
    it were ever written unescaped, and no host name holds one.
    """
    for server in servers:
        host, _, port = server.rpartition(":")
        printable = all(char.isprintable() and not char.isspace() for char in server)
        if (
            not host
            or not (port.isascii() and port.isdigit())
            or not 0 < int(port) < 65536
            or not printable
        ):
            raise ValueError(f"{server!r} is not HOST:PORT")
    return servers


class OAuthClient(BaseModel):
    """OIDC client credentials for OAUTHBEARER: where tokens come from, and as whom.

    `ca` verifies an `https` token endpoint (the system's CAs without it).
    """

    model_config = ConfigDict(frozen=True)

    token_endpoint: str
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1, repr=False)
    scope: str | None = None
    ca: str | None = Field(default=None, repr=False)

    @field_validator("token_endpoint")
    @classmethod
    def _an_http_url(cls, url: str) -> str:
        """An `http` or `https` URL with a host, and nothing a JVM option list would split.

        It goes into MirrorMaker's `KAFKA_OPTS` (the allowed URLs), which its start script
        splits on blanks and expands as file patterns, and into a list split on commas.
        """
        parts = urlsplit(url)
        plain = all(char.isprintable() and not char.isspace() for char in url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or not plain
            or any(char in url for char in ",*?[]")
        ):
            raise ValueError(
                "oauth-token-endpoint must be an http:// or https:// URL without a query"
            )
        return url

    @field_validator("ca")
    @classmethod
    def _pem_ca(cls, ca: str | None) -> str | None:
        return check_certificates(ca, "oauth-ca") if ca else None

    @model_validator(mode="after")
    def _ca_for_https(self) -> OAuthClient:
        if self.ca and not self.token_endpoint.startswith("https://"):
            raise ValueError("oauth-ca is set, so oauth-token-endpoint must be an https:// URL")
        return self

    @property
    def https(self) -> bool:
        """Whether tokens come over TLS."""
        return self.token_endpoint.startswith("https://")


class KafkaCluster(BaseModel):
    """How to reach and log in to a Kafka cluster."""

    model_config = ConfigDict(frozen=True)

    bootstrap_servers: tuple[str, ...] = Field(min_length=1)
    security_protocol: SecurityProtocol = "SASL_PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    oauth: OAuthClient | None = None
    ca: str | None = Field(default=None, repr=False)
    client_certificate: str | None = Field(default=None, repr=False)
    client_key: str | None = Field(default=None, repr=False)

    _split_servers = field_validator("bootstrap_servers", mode="before")(split)
    _valid_servers = field_validator("bootstrap_servers")(check_servers)

    @field_validator("ca", "client_certificate")
    @classmethod
    def _pem_certificates(cls, text: str | None, info: ValidationInfo) -> str | None:
        key = "ca" if info.field_name == "ca" else "client-certificate"
        return check_certificates(text, key) if text else None

    @model_validator(mode="before")
    @classmethod
    def _a_login_kafka_takes(cls, data: object) -> object:
        """Refuse what the protocol does not use, or lacks for its mechanism.

        Checked before the fields, so that keys of another login are named as such rather
        than as incomplete.
        """
        if not isinstance(data, dict):
            return data
        protocol = data.get("security_protocol", "SASL_PLAINTEXT")
        mechanism = data.get("sasl_mechanism", "SCRAM-SHA-512")
        has_password = bool(data.get("username") or data.get("password"))
        has_oauth = data.get("oauth") is not None
        if protocol not in ("SASL_PLAINTEXT", "SASL_SSL"):
            if has_password or has_oauth:
                what = "username and password" if has_password else "the oauth-* keys"
                raise ValueError(
                    f"{what} are set, but security-protocol {protocol} logs in with none: set "
                    "security-protocol SASL_PLAINTEXT or SASL_SSL, or remove them"
                )
        elif mechanism == "OAUTHBEARER":
            if not has_oauth:
                raise ValueError(f"sasl-mechanism OAUTHBEARER needs {', '.join(_OAUTH_KEYS)}")
            if has_password:
                raise ValueError(
                    "username and password are set, but sasl-mechanism OAUTHBEARER logs in with "
                    "oauth-client-id and oauth-client-secret: remove them"
                )
        elif has_oauth:
            raise ValueError(
                f"the oauth-* keys are set, so sasl-mechanism must be OAUTHBEARER, not {mechanism}"
            )
        elif not (data.get("username") and data.get("password")):
            raise ValueError(f"sasl-mechanism {mechanism} needs username and password")
        if protocol not in ("SSL", "SASL_SSL"):
            for key, field in (("ca", "ca"), ("client-certificate", "client_certificate")):
                if data.get(field):
                    raise ValueError(
                        f"{key} is set, so security-protocol must be SSL or SASL_SSL, "
                        f"not {protocol}"
                    )
        return data

    @model_validator(mode="after")
    def _a_client_certificate_with_its_key(self) -> KafkaCluster:
        """Mutual TLS needs both the certificate and its key, and the key must be its own."""
        if bool(self.client_certificate) != bool(self.client_key):
            given, needed = (
                ("client-certificate", "client-key")
                if self.client_certificate
                else ("client-key", "client-certificate")
            )
            raise ValueError(f"{given} is set without {needed}: mutual TLS needs both")
        if self.client_certificate and self.client_key:
            check_private_key(
                self.client_key, self.client_certificate, "client-key", "client-certificate"
            )
        return self

    @property
    def bootstrap(self) -> str:
        """The `bootstrap.servers` value."""
        return ",".join(self.bootstrap_servers)

    @property
    def sasl(self) -> bool:
        """Whether clients log in with SASL."""
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def tls(self) -> bool:
        """Whether connections are encrypted with TLS."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def principal(self) -> str:
        """Who the cluster sees logging in, in the operator's words."""
        if self.sasl and self.oauth is not None:
            return f"OAuth client {self.oauth.client_id}"
        if self.sasl:
            return f"user {self.username}"
        if self.client_certificate:
            return "the user of the client certificate"
        return f"the anonymous user ({self.security_protocol}, no login)"

    @property
    def jaas_config(self) -> str | None:
        """The `sasl.jaas.config` value, quoted for the JAAS parser; None without SASL.

        For OAUTHBEARER it holds the client credentials and, for an `https` token endpoint
        with its own CA, the SSL options Kafka's login handler reads from JAAS (the CA).
        """
        if not self.sasl:
            return None
        if self.oauth is not None:
            options = {"clientId": self.oauth.client_id, "clientSecret": self.oauth.client_secret}
            if self.oauth.scope:
                options["scope"] = self.oauth.scope
            if self.oauth.ca:
                options["ssl.truststore.type"] = "PEM"
                options["ssl.truststore.certificates"] = self.oauth.ca
            quoted = " ".join(f'{key}="{jaas_escape(value)}"' for key, value in options.items())
            return f"{_OAUTH_MODULE} required {quoted};"
        module = _PLAIN_MODULE if self.sasl_mechanism == "PLAIN" else _SCRAM_MODULE
        return (
            f'{module} required username="{jaas_escape(self.username or "")}" '
            f'password="{jaas_escape(self.password or "")}";'
        )


class SourceCluster(KafkaCluster):
    """The cluster to migrate from; `name` is how status messages call it."""

    name: str = Field(min_length=1)

    @property
    def unprotected(self) -> str | None:
        """What the status and `start-migration` say of a PLAINTEXT source; None otherwise."""
        if self.security_protocol != "PLAINTEXT":
            return None
        return "the copy reads an unauthenticated, unencrypted cluster (PLAINTEXT)"

    @classmethod
    def from_secret(
        cls,
        content: Mapping[str, str],
        bootstrap_servers: Sequence[str],
        *,
        secret_id: str,
        option: str = "mirrormaker-source-credentials",
    ) -> SourceCluster:
        """An external source from its credentials secret's content, checked key by key.

        Raises:
            SourceError: naming `option` and the key that is missing, unknown or invalid.
        """
        return source_from_secret(content, bootstrap_servers, secret_id=secret_id, option=option)

    @classmethod
    def from_relation(
        cls,
        name: str,
        *,
        endpoints: str,
        username: str,
        password: str,
        tls: bool,
        tls_ca: str | None,
        relation_name: str = "migration-source",
    ) -> SourceCluster:
        """A related source from its `kafka_client` response, checked field by field.

        Raises:
            SourceError: if the endpoints are not `HOST:PORT` or the CA is not a PEM certificate.
        """
        return source_from_relation(
            name,
            endpoints=endpoints,
            username=username,
            password=password,
            tls=tls,
            tls_ca=tls_ca,
            relation_name=relation_name,
        )


class TargetCluster(KafkaCluster):
    """The local cluster, reached with the host charm's MirrorMaker user."""


def _reason(error: ValidationError) -> str:
    """The first thing wrong, in the model's words (which are the secret's keys)."""
    first = error.errors()[0]
    return str(first["msg"]).removeprefix("Value error, ")


def _login_keys(content: Mapping[str, str], option: str, secret_id: str) -> tuple[str, str]:
    """The secret's protocol and mechanism, once its keys are known and none is missing.

    Raises:
        SourceGoneError: if a key the login needs is missing (credentials taken out).
        SourceError: if a key is unknown, or the protocol or mechanism is not Kafka's.
    """
    protocol = content.get("security-protocol") or "SASL_PLAINTEXT"
    mechanism = content.get("sasl-mechanism") or "SCRAM-SHA-512"
    needed: tuple[str, ...] = ()
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        needed = _OAUTH_KEYS if mechanism == "OAUTHBEARER" else _PASSWORD_KEYS
    unknown = sorted(set(content) - set(SECRET_KEYS))
    missing = [key for key in needed if not content.get(key)]
    if unknown or missing:
        problems = [f"missing key {', '.join(missing)}"] if missing else []
        problems += [f"unknown key {', '.join(unknown)}"] if unknown else []
        # Credentials taken out of the secret stop a running migration; an unknown key does not.
        error = SourceGoneError if missing else SourceError
        raise error(f"{option}: secret {secret_id} has {' and '.join(problems)} ({_KEYS_HINT})")
    if protocol not in _SECURITY_PROTOCOLS:
        raise SourceError(
            f"{option}: security-protocol must be one of {', '.join(_SECURITY_PROTOCOLS)}"
        )
    if mechanism not in _SASL_MECHANISMS:
        raise SourceError(f"{option}: sasl-mechanism must be one of {', '.join(_SASL_MECHANISMS)}")
    if "sasl-mechanism" in content and protocol not in ("SASL_PLAINTEXT", "SASL_SSL"):
        raise SourceError(
            f"{option}: sasl-mechanism is set, but security-protocol {protocol} uses no SASL: "
            "set security-protocol SASL_PLAINTEXT or SASL_SSL, or remove it"
        )
    return protocol, mechanism


def source_from_secret(
    content: Mapping[str, str],
    bootstrap_servers: Sequence[str],
    *,
    secret_id: str,
    option: str = "mirrormaker-source-credentials",
) -> SourceCluster:
    """The external source cluster from its credentials secret's content.

    Raises:
        SourceGoneError: naming `option` and the credentials key that is missing.
        SourceError: naming `option` and the key that is unknown or invalid, or the
            combination of keys Kafka would not take.
    """
    protocol, mechanism = _login_keys(content, option, secret_id)
    oauth = None
    if any(content.get(key) for key in (*_OAUTH_KEYS, *_OPTIONAL_OAUTH_KEYS)):
        oauth = {
            "token_endpoint": content.get("oauth-token-endpoint", ""),
            "client_id": content.get("oauth-client-id", ""),
            "client_secret": content.get("oauth-client-secret", ""),
            "scope": content.get("oauth-scope") or None,
            "ca": content.get("oauth-ca") or None,
        }
    try:
        return SourceCluster.model_validate(
            {
                "name": bootstrap_servers[0],
                "bootstrap_servers": tuple(bootstrap_servers),
                "security_protocol": protocol,
                "sasl_mechanism": mechanism,
                "username": content.get("username") or None,
                "password": content.get("password") or None,
                "oauth": oauth,
                "ca": content.get("ca") or None,
                "client_certificate": content.get("client-certificate") or None,
                "client_key": content.get("client-key") or None,
            }
        )
    except ValidationError as error:
        raise SourceError(f"{option}: {_reason(error)}") from None


def failback_source(
    source: SourceCluster,
    content: Mapping[str, str],
    *,
    secret_id: str,
    option: str = "mirrormaker-failback-credentials",
) -> SourceCluster:
    """The source cluster as the failback user, who may write there, logs in.

    The secret has the keys of the source's credentials secret; without `security-protocol`,
    its protocol and CA are the source's (the failback user logs in where the migration's
    user does).

    Raises:
        SourceGoneError: naming `option` and the credentials key that is missing.
        SourceError: naming `option` and the key that is unknown or invalid.
    """
    inherited: dict[str, str] = {}
    if "security-protocol" not in content:
        inherited["security-protocol"] = source.security_protocol
        if source.ca:
            inherited["ca"] = source.ca
    found = source_from_secret(
        {**inherited, **content}, source.bootstrap_servers, secret_id=secret_id, option=option
    )
    return found.model_copy(update={"name": source.name})


def source_from_relation(
    name: str,
    *,
    endpoints: str,
    username: str,
    password: str,
    tls: bool,
    tls_ca: str | None,
    relation_name: str = "migration-source",
) -> SourceCluster:
    """The related source cluster from its `kafka_client` response (SCRAM-SHA-512, as sent).

    A `tls-ca` without `tls` is not used, as the interface means it.

    Raises:
        SourceError: if the endpoints are not `HOST:PORT` or the CA is not PEM certificates.
    """
    if tls and tls_ca:
        try:
            check_certificates(tls_ca, "tls-ca")
        except ValueError as error:
            raise SourceError(
                f"{relation_name}: {name} sent a tls-ca that is not a PEM certificate: {error}"
            ) from None
    try:
        return SourceCluster.model_validate(
            {
                "name": name,
                "bootstrap_servers": endpoints,
                "username": username,
                "password": password,
                "security_protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
                "ca": (tls_ca or None) if tls else None,
            }
        )
    except ValidationError as error:
        if error.errors()[0]["loc"][:1] == ("bootstrap_servers",):
            raise SourceError(
                f"{relation_name}: {name} sent endpoints that are not HOST:PORT"
            ) from None
        raise SourceError(
            f"{relation_name}: {name} sent a login Kafka would not take: {_reason(error)}"
        ) from None
