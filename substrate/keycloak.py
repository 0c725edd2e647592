# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""A real OIDC provider on loopback, for OAUTHBEARER: Keycloak's server distribution.

`substrate/runtime/fetch-sources.sh` puts the distribution in the cache, built for an in-memory
database. `Keycloak` runs it from a temporary home (the built jars linked, not copied) with
`start --optimized`, HTTPS only on 127.0.0.1 with a certificate the test CA signed, a local
cache (no cluster transport listening anywhere), and a capped heap; it makes one realm, and
`add_client` a confidential client that gets tokens by client credentials. Brokers validate
those tokens against the realm's JWKS.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from substrate.old_cluster import TlsMaterial
from substrate.processes import (
    LOOPBACK,
    Started,
    SubstrateError,
    default_cache,
    format_log_tails,
    free_port,
    kill_group,
    random_password,
    remove_tmp,
    spawn,
    wait_until,
)

FETCH_SOURCES_SCRIPT = Path(__file__).resolve().parent / "runtime" / "fetch-sources.sh"
_ADMIN = "admin"


@dataclass
class Keycloak(Started):
    """One Keycloak server with one realm, on 127.0.0.1 over HTTPS."""

    tmp: Path
    tls: TlsMaterial
    cache: Path = field(default_factory=default_cache)
    heap_mb: int = 512
    realm: str = "kafka"
    start_timeout: float = 300.0
    port: int = 0
    admin_password: str = field(default_factory=random_password)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where it serves."""
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def issuer(self) -> str:
        """The realm's issuer (`iss` of its tokens)."""
        return f"{self.url}/realms/{self.realm}"

    @property
    def token_endpoint(self) -> str:
        """The realm's token endpoint."""
        return f"{self.issuer}/protocol/openid-connect/token"

    @property
    def jwks_url(self) -> str:
        """The realm's signing keys, for brokers to validate tokens with."""
        return f"{self.issuer}/protocol/openid-connect/certs"

    @property
    def log_file(self) -> Path:
        """Its console output."""
        return self.tmp / "keycloak.out"

    def log_files(self) -> list[Path]:
        """Its log files, for a failed test's report."""
        return [self.log_file]

    def _home(self) -> Path:
        """A home of its own: the built distribution's jars linked, the rest copied."""
        built = self.cache / "sources" / "keycloak"
        if not (built / "lib").is_dir():
            raise SubstrateError(f"no Keycloak in {built}: run {FETCH_SOURCES_SCRIPT}")
        home = self.tmp / "home"
        home.mkdir(parents=True)
        for entry in built.iterdir():
            if entry.name == "lib":
                (home / "lib").symlink_to(entry)
            elif entry.is_dir() and entry.name != "data":
                shutil.copytree(entry, home / entry.name)
            elif entry.is_file():
                shutil.copy2(entry, home / entry.name)
        return home

    def start(self) -> Keycloak:
        """Start it, wait until it serves, and make the realm.

        Raises:
            SubstrateError: with its log's tail, if it does not come up.
        """
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
            home = self._home()
            (self.tmp / "tls.pem").write_text(self.tls.certificate)
            (self.tmp / "tls.key").write_text(self.tls.key)
            (self.tmp / "tls.key").chmod(0o600)
            self.port = free_port()
            self.process = spawn(
                [
                    str(home / "bin" / "kc.sh"),
                    "start",
                    "--optimized",
                    "--cache=local",
                    "--http-enabled=false",
                    f"--http-host={LOOPBACK}",
                    f"--https-port={self.port}",
                    f"--http-management-port={free_port()}",
                    f"--https-certificate-file={self.tmp / 'tls.pem'}",
                    f"--https-certificate-key-file={self.tmp / 'tls.key'}",
                    "--hostname-strict=false",
                ],
                log_file=self.log_file,
                env={
                    "KC_BOOTSTRAP_ADMIN_USERNAME": _ADMIN,
                    "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
                    "JAVA_OPTS_KC_HEAP": f"-Xms64m -Xmx{self.heap_mb}m",
                },
            )
            wait_until(self._serving, timeout=self.start_timeout, interval=1.0, what="keycloak")
            self._admin("POST", "/admin/realms", {"realm": self.realm, "enabled": True})
        except BaseException as error:
            tails = format_log_tails(self.log_files())
            self.stop()
            if isinstance(error, Exception):
                raise SubstrateError(f"keycloak did not start: {error}\n{tails}") from error
            raise
        return self

    def add_client(self, client_id: str, secret: str) -> None:
        """A confidential client whose service account gets tokens by client credentials."""
        self._admin(
            "POST",
            f"/admin/realms/{self.realm}/clients",
            {
                "clientId": client_id,
                "enabled": True,
                "publicClient": False,
                "clientAuthenticatorType": "client-secret",
                "secret": secret,
                "serviceAccountsEnabled": True,
                "standardFlowEnabled": False,
                "directAccessGrantsEnabled": False,
            },
        )

    def _open(self, request: urllib.request.Request) -> Any:
        context = ssl.create_default_context(cadata=self.tls.ca)
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        with opener.open(request, timeout=30) as response:  # https only, on loopback
            body = response.read()
        return json.loads(body) if body else None

    def _serving(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise SubstrateError(f"keycloak exited with {self.process.returncode}")
        discovery = f"{self.url}/realms/master/.well-known/openid-configuration"
        try:
            return bool(self._open(urllib.request.Request(discovery)))  # noqa: S310
        except (OSError, ValueError):
            return False

    def _admin(self, method: str, path: str, body: object) -> None:
        """One call of the admin REST API, as the bootstrap admin."""
        form = {
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": _ADMIN,
            "password": self.admin_password,
        }
        token = self._open(
            urllib.request.Request(  # noqa: S310 - https://127.0.0.1
                f"{self.url}/realms/master/protocol/openid-connect/token",
                data=urllib.parse.urlencode(form).encode(),
                method="POST",
            )
        )["access_token"]
        request = urllib.request.Request(  # noqa: S310 - https://127.0.0.1
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method=method,
        )
        try:
            self._open(request)
        except urllib.error.HTTPError as error:
            raise SubstrateError(f"keycloak refused {method} {path}: {error.code}") from None

    def stop(self) -> None:
        """Kill it and remove its temporary directory."""
        kill_group(self.process)
        remove_tmp(self.tmp)
