# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""A real Kubernetes API server on loopback: kube-apiserver with its etcd, for lightkube.

`KubeApiServer` starts etcd and kube-apiserver (cached by `runtime/fetch-kube.sh`) on free
loopback ports, with everything they write (etcd's data, the serving certificate, keys, the
token file, kubeconfigs, logs) in one temporary directory. Clients authenticate with static
tokens: `admin` (group `system:masters`) and `nobody` (no rights, so RBAC refuses it with 403,
as the API refuses an application that was not trusted).

No controller runs: no pods are scheduled, no load balancer gets an address and nothing is
garbage-collected. Tests play those parts (they set a node on a pod, an address on a load
balancer) and check what the charm wrote, ownerReferences included.
"""

from __future__ import annotations

import json
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from lightkube import Client, KubeConfig

from substrate.processes import (
    LOOPBACK,
    Started,
    SubstrateError,
    default_cache,
    free_port,
    kill_group,
    remove_tmp,
    spawn,
    tail,
)

FETCH_KUBE_SCRIPT = Path(__file__).resolve().parent / "runtime" / "fetch-kube.sh"
# Allocated as API data only: nothing routes to these addresses (no kube-proxy runs).
SERVICE_CIDR = "10.152.183.0/24"
NODE_PORT_RANGE = "30000-32767"


@dataclass
class KubeApiServer(Started):
    """etcd and kube-apiserver on loopback, started and stopped as one."""

    tmp: Path
    cache: Path = field(default_factory=default_cache)
    start_timeout: float = 120.0
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))
    nobody_token: str = field(default_factory=lambda: secrets.token_hex(16))
    url: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def bin(self) -> Path:
        """Where `fetch-kube.sh` put the binaries."""
        return self.cache / "kube" / "bin"

    @property
    def ca_file(self) -> Path:
        """The API server's self-signed serving certificate, which clients verify it with."""
        return self.tmp / "certs" / "apiserver.crt"

    def kubeconfig(self, token: str | None = None) -> Path:
        """A kubeconfig that logs in with `token` (the admin's by default)."""
        token = token or self.admin_token
        path = self.tmp / f"kubeconfig-{'admin' if token == self.admin_token else 'other'}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": "user", "user": {"token": token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "user"}}],
            "current-context": "local",
        }
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    def client(
        self, *, namespace: str | None = None, token: str | None = None, field_manager=None
    ) -> Client:
        """A lightkube client of this API server."""
        config = KubeConfig.from_file(self.kubeconfig(token))
        return Client(config=config, namespace=namespace, field_manager=field_manager)

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise SubstrateError(
                    f"{name} exited with {process.returncode}:\n{tail(self.tmp / f'{name}.log')}"
                )

    def _wait(self, url: str, expected: bytes, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            context = (
                ssl.create_default_context(cafile=str(self.ca_file))
                if url.startswith("https") and self.ca_file.exists()
                else None
            )
            if url.startswith("http:") or context is not None:
                try:
                    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
                    with urllib.request.urlopen(request, timeout=2, context=context) as answer:  # noqa: S310
                        body = answer.read()
                    if expected in body:
                        return
                    last = body[:200].decode(errors="replace")
                except (urllib.error.URLError, OSError) as error:
                    last = str(error)
            time.sleep(0.2)
        raise SubstrateError(f"{url} not ready after {self.start_timeout:.0f}s (last: {last})")

    def start(self) -> KubeApiServer:
        """Start etcd, then kube-apiserver, and wait until it is ready.

        Raises:
            SubstrateError: if a binary is missing or a process does not come up (with its log).
        """
        for name in ("etcd", "kube-apiserver"):
            if not (self.bin / name).exists():
                raise SubstrateError(f"no {name} in {self.bin}: run {FETCH_KUBE_SCRIPT}")
        self.tmp.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        tmp = self.tmp
        # One RSA key serves both service-account flags (the public half is derived from it).
        subprocess.run(
            ["openssl", "genrsa", "-out", str(tmp / "sa.key"), "2048"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        tokens = tmp / "tokens.csv"
        tokens.write_text(
            f'{self.admin_token},admin,uid-admin,"system:masters"\n'
            f"{self.nobody_token},nobody,uid-nobody\n"
        )
        tokens.chmod(0o600)
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd = f"http://{LOOPBACK}:{etcd_port}"
        peer = f"http://{LOOPBACK}:{peer_port}"
        self.processes["etcd"] = spawn(
            [
                str(self.bin / "etcd"),
                "--name=default",
                f"--data-dir={tmp / 'etcd'}",
                f"--listen-client-urls={etcd}",
                f"--advertise-client-urls={etcd}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--logger=zap",
                "--log-level=warn",
            ],
            log_file=tmp / "etcd.log",
        )
        self._wait(f"{etcd}/health", b'"health":"true"')
        self.url = f"https://{LOOPBACK}:{api_port}"
        self.processes["kube-apiserver"] = spawn(
            [
                str(self.bin / "kube-apiserver"),
                f"--etcd-servers={etcd}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={api_port}",
                f"--advertise-address={LOOPBACK}",
                # Its self-signed certificate goes here, not to /var/run/kubernetes.
                f"--cert-dir={tmp / 'certs'}",
                # A loopback advertise address is refused by the endpoint reconciler.
                "--endpoint-reconciler-type=none",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--service-node-port-range={NODE_PORT_RANGE}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={tmp / 'sa.key'}",
                f"--service-account-signing-key-file={tmp / 'sa.key'}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--profiling=false",
                "--v=1",
            ],
            log_file=tmp / "kube-apiserver.log",
            env={"HTTPS_PROXY": "", "HTTP_PROXY": "", "https_proxy": "", "http_proxy": ""},
        )
        self._wait(f"{self.url}/readyz", b"ok", token=self.admin_token)

    def log_files(self) -> list[Path]:
        """Etcd's and kube-apiserver's logs."""
        return [self.tmp / "etcd.log", self.tmp / "kube-apiserver.log"]

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd, and remove the temporary directory."""
        for name in ("kube-apiserver", "etcd"):
            kill_group(self.processes.pop(name, None))
        remove_tmp(self.tmp)
