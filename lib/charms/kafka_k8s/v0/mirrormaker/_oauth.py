# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""OAUTHBEARER for kafka-python: client-credentials tokens from an OIDC token endpoint.

MirrorMaker logs in with Kafka's own `OAuthBearerLoginCallbackHandler`; the library's status,
cutover and dry-run queries log in the same way through `ClientCredentialsTokens`, a
kafka-python token provider. Each request to the endpoint is bounded by a timeout, goes to it
directly (no proxy from the environment), verifies an `https` endpoint against `oauth-ca` (the
system's CAs without it), and sends the client's credentials in a Basic authorization header
(RFC 6749, section 2.3.1), never in a URL. What goes wrong is a `TokenEndpointError` in the
operator's words: which endpoint, and whether it refused the client or did not answer.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from kafka.net.sasl.oauth import AbstractTokenProvider

from ._clusters import OAuthClient
from ._tls import client_context

# A token is fetched again once this share of its lifetime has passed.
_RENEW_AT = 0.8
# The lifetime assumed for a token whose answer names none (seconds).
_DEFAULT_LIFETIME = 300.0
_MAX_ANSWER = 1_000_000


class TokenEndpointError(Exception):
    """The token endpoint refused the client (`refused`) or gave no token."""

    def __init__(self, message: str, *, refused: bool = False):
        super().__init__(message)
        self.message = message
        self.refused = refused


def _tls_failure(error: BaseException) -> str | None:
    """Why a TLS handshake failed, if it did."""
    reason = getattr(error, "reason", error)
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {reason.verify_message}"
    if isinstance(reason, ssl.SSLError):
        return str(reason.reason or reason)
    return None


def _answer_error(error: urllib.error.HTTPError) -> str:
    """The endpoint's own words for a refusal (RFC 6749 `error`, `error_description`)."""
    try:
        answer = json.loads(error.read(_MAX_ANSWER) or b"{}")
    except (ValueError, OSError):
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    words = [str(answer[key])[:100] for key in ("error", "error_description") if answer.get(key)]
    return f"HTTP {error.code}" + (f" {': '.join(words)}" if words else "")


class ClientCredentialsTokens(AbstractTokenProvider):
    """A kafka-python token provider for OIDC client credentials; tokens are reused until due.

    Thread-safe: kafka-python asks from its I/O thread, the library first from its own.
    """

    def __init__(self, client: OAuthClient, timeout: float):
        super().__init__()
        self.client = client
        self.timeout = timeout
        handlers: list[Any] = [urllib.request.ProxyHandler({})]
        if client.https:
            handlers.append(urllib.request.HTTPSHandler(context=client_context(client.ca)))
        self._opener = urllib.request.build_opener(*handlers)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._due = 0.0

    def token(self) -> str:
        """A valid access token, fetched if there is none or it is due.

        Raises:
            TokenEndpointError: if the endpoint refuses the client or gives no token.
        """
        with self._lock:
            if self._token is None or time.monotonic() >= self._due:
                self._token, lifetime = self._fetch()
                self._due = time.monotonic() + lifetime * _RENEW_AT
            return self._token

    def _fetch(self) -> tuple[str, float]:
        """A new token and its lifetime in seconds, from the endpoint."""
        client = self.client
        where = f"token endpoint {client.token_endpoint}"
        form = {"grant_type": "client_credentials"}
        if client.scope:
            form["scope"] = client.scope
        pair = f"{urllib.parse.quote(client.client_id)}:{urllib.parse.quote(client.client_secret)}"
        request = urllib.request.Request(  # noqa: S310 - the model allows http(s) URLs only
            client.token_endpoint,
            data=urllib.parse.urlencode(form).encode(),
            headers={
                "Authorization": f"Basic {base64.b64encode(pair.encode()).decode()}",
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                answer = json.loads(response.read(_MAX_ANSWER))
        except urllib.error.HTTPError as error:
            raise TokenEndpointError(
                f"{where} refused client {client.client_id}: {_answer_error(error)} (check "
                "oauth-client-id, oauth-client-secret and oauth-scope)",
                refused=error.code in (400, 401, 403),
            ) from None
        except (urllib.error.URLError, OSError) as error:
            if (failure := _tls_failure(error)) is not None:
                raise TokenEndpointError(
                    f"{where}: TLS handshake failed, the CA (oauth-ca, else the system's CAs) "
                    f"did not verify its certificate: {failure}",
                    refused=True,
                ) from None
            reason = getattr(error, "reason", error)
            raise TokenEndpointError(f"{where} did not answer: {reason or 'timed out'}") from None
        except ValueError:
            raise TokenEndpointError(f"{where} answered with no JSON") from None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenEndpointError(f"{where} answered without an access_token")
        lifetime = answer.get("expires_in")
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = _DEFAULT_LIFETIME
        return token, float(lifetime)
