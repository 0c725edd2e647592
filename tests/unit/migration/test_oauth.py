# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""OAUTHBEARER for kafka-python (`_oauth`): client-credentials tokens, and what goes wrong.

Against real HTTP(S) servers on loopback: the request a token endpoint gets, a token reused
until it is due, an endpoint that refuses the client, one that does not answer (bounded by the
timeout), one whose certificate `oauth-ca` did not sign, and answers that hold no token.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
from pathlib import Path

import pytest

from charms.kafka_k8s.v0.mirrormaker import OAuthClient, _oauth
from tests.unit.helpers import SOURCE_CA, certificate, http_answer, loopback_server, pem, pem_key

SECRET = "cl!ent:secret/+"


def client(endpoint: str, **changes: object) -> OAuthClient:
    fields = {
        "token_endpoint": f"http://{endpoint}/token",
        "client_id": "kafka migrator",
        "client_secret": SECRET,
        "scope": "kafka",
    }
    return OAuthClient.model_validate(fields | changes)


def test_a_token_is_asked_with_client_credentials_and_reused_until_due():
    requests: list[bytes] = []
    answer = json.dumps({"access_token": "t0k3n", "expires_in": 300}).encode()
    with loopback_server(http_answer(200, answer, requests)) as endpoint:
        tokens = _oauth.ClientCredentialsTokens(client(endpoint), timeout=5)
        assert tokens.token() == "t0k3n"
        assert tokens.token() == "t0k3n"
    assert len(requests) == 1
    head, _, body = requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /token HTTP/1.1")
    assert body == b"grant_type=client_credentials&scope=kafka"
    # RFC 6749, 2.3.1: each part form-encoded, then Basic; never in the URL or the body.
    pair = base64.b64encode(b"kafka%20migrator:cl%21ent%3Asecret/%2B").decode()
    assert f"Authorization: Basic {pair}".encode() in head
    assert SECRET.encode() not in requests[0]


def test_a_token_past_most_of_its_lifetime_is_asked_again(monkeypatch: pytest.MonkeyPatch):
    requests: list[bytes] = []
    answer = json.dumps({"access_token": "t", "expires_in": 10}).encode()
    clock = [1000.0]
    monkeypatch.setattr(_oauth.time, "monotonic", lambda: clock[0])
    with loopback_server(http_answer(200, answer, requests)) as endpoint:
        tokens = _oauth.ClientCredentialsTokens(client(endpoint), timeout=5)
        tokens.token()
        clock[0] += 7.9
        tokens.token()
        clock[0] += 0.2
        tokens.token()
    assert len(requests) == 2


@pytest.mark.parametrize(
    ("status", "body", "message", "refused"),
    [
        (
            401,
            b'{"error":"invalid_client","error_description":"Invalid client credentials"}',
            "refused client kafka migrator: HTTP 401 invalid_client: Invalid client credentials"
            " (check oauth-client-id, oauth-client-secret and oauth-scope)",
            True,
        ),
        (400, b'{"error":"invalid_scope"}', "HTTP 400 invalid_scope (check", True),
        (503, b"busy", "refused client kafka migrator: HTTP 503 (check", False),
        (200, b"<html>", "answered with no JSON", False),
        (200, b'{"token_type":"Bearer"}', "answered without an access_token", False),
    ],
)
def test_an_endpoint_that_gives_no_token_is_named(status, body, message, refused):
    with loopback_server(http_answer(status, body)) as endpoint:
        with pytest.raises(_oauth.TokenEndpointError) as raised:
            _oauth.ClientCredentialsTokens(client(endpoint), timeout=5).token()
    assert raised.value.message.startswith(f"token endpoint http://{endpoint}/token ")
    assert message in raised.value.message
    assert raised.value.refused is refused
    assert SECRET not in raised.value.message


def test_an_endpoint_that_does_not_answer_is_bounded():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        endpoint = f"127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        with pytest.raises(_oauth.TokenEndpointError) as raised:
            _oauth.ClientCredentialsTokens(client(endpoint), timeout=1).token()
        assert time.monotonic() - began < 5
    assert raised.value.message == (
        f"token endpoint http://{endpoint}/token did not answer: timed out"
    )
    assert not raised.value.refused


def test_an_https_endpoint_the_oauth_ca_did_not_sign_is_named(tmp_path: Path):
    made, key = certificate("127.0.0.1", "another CA", ca=False)
    (tmp_path / "server.pem").write_text(pem(made))
    (tmp_path / "server.key").write_text(pem_key(key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")

    def handle(connection: socket.socket) -> None:
        context.wrap_socket(connection, server_side=True).close()

    with loopback_server(handle) as endpoint:
        tokens = _oauth.ClientCredentialsTokens(
            client(endpoint, token_endpoint=f"https://{endpoint}/token", ca=SOURCE_CA), timeout=5
        )
        with pytest.raises(_oauth.TokenEndpointError) as raised:
            tokens.token()
    assert raised.value.message.startswith(
        f"token endpoint https://{endpoint}/token: TLS handshake failed, the CA (oauth-ca, else "
        "the system's CAs) did not verify its certificate: certificate verify failed: "
    )
    assert raised.value.refused
