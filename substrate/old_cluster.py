# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The foreign old cluster the migration guide assumes: ZooKeeper-mode Kafka 3.9 with SCRAM.

`OldCluster` runs one ZooKeeper and N brokers with SASL_PLAINTEXT, SCRAM-SHA-512 and ACLs as
plain subprocesses (not under Pebble), optionally with a SASL_SSL listener whose certificate a
CA made by `make_ca` signed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from files import properties_escape, scram_jaas
from models import ADMIN_USER, SCRAM_MECHANISM, WorkloadPaths
from substrate.processes import (
    LOOPBACK,
    ClientConfig,
    Started,
    SubstrateError,
    broker_count,
    default_cache,
    format_log_tails,
    free_port,
    kill_group,
    port_open,
    random_password,
    remove_tmp,
    sasl_config,
    spawn,
    tool_env,
    wait_until,
)
from substrate.units import make_rock_root

# TLS material ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsMaterial:
    """A CA the test made, and a broker certificate it signed for 127.0.0.1 and localhost."""

    ca: str
    certificate: str
    key: str


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise SubstrateError("openssl is not installed: the TLS tests generate a CA with it")
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise SubstrateError(f"openssl {args[0]} failed: {result.stderr[-1000:]}")


def make_ca(directory: Path, name: str = "kafka-k8s test CA") -> TlsMaterial:
    """A new CA, and a broker certificate it signed (PKCS#8 key, no passphrase)."""
    directory.mkdir(parents=True, exist_ok=True)
    days = "2"
    _openssl(
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", days),
        *("-keyout", "ca.key", "-out", "ca.pem", "-subj", f"/CN={name}"),
        *("-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        cwd=directory,
    )
    _openssl(
        *("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key"),
        *("-out", "broker.csr", "-subj", "/CN=localhost"),
        cwd=directory,
    )
    (directory / "broker.ext").write_text(f"subjectAltName=IP:{LOOPBACK},DNS:localhost\n")
    _openssl(
        *("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key"),
        *("-CAcreateserial", "-days", days, "-out", "broker.pem", "-extfile", "broker.ext"),
        cwd=directory,
    )
    for path in directory.iterdir():
        path.chmod(0o600)
    return TlsMaterial(
        ca=(directory / "ca.pem").read_text(),
        certificate=(directory / "broker.pem").read_text(),
        key=(directory / "broker.key").read_text(),
    )


# The old cluster ---------------------------------------------------------------------------------


@dataclass
class OldBroker:
    """One broker of the old cluster."""

    broker_id: int
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    # A second SASL_PLAINTEXT listener, ROUTED, bound here and advertising another port (a
    # proxy's): clients that bootstrap through the proxy keep going through it.
    routed_port: int = 0
    routed_advertised_port: int = 0
    # A SASL_SSL listener, TLS, when the cluster has TLS material.
    tls_port: int = 0

    @property
    def tls_address(self) -> str:
        """`HOST:PORT` of its SASL_SSL listener."""
        return f"{LOOPBACK}:{self.tls_port}"

    @property
    def routed_address(self) -> str:
        """`HOST:PORT` the ROUTED listener binds."""
        return f"{LOOPBACK}:{self.routed_port}"

    @property
    def address(self) -> str:
        """`HOST:PORT` of its SASL_PLAINTEXT listener."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def log_dir(self) -> Path:
        """Where its log files go."""
        return self.directory / "logs"


@dataclass
class OldCluster(Started):
    """A ZooKeeper-mode Kafka 3.9 cluster with SASL_PLAINTEXT, SCRAM-SHA-512 and ACLs.

    The foreign cluster of the migration guide: one ZooKeeper and `size` brokers, started as
    plain subprocesses (not under Pebble). The `admin` super-user exists before the brokers
    start; everyone else needs ACLs (`allow.everyone.if.no.acl.found=false`).
    """

    tmp: Path
    cache: Path = field(default_factory=default_cache)
    size: int = 1
    heap_mb: int = 256
    admin_username: str = ADMIN_USER
    admin_password: str = field(default_factory=random_password)
    start_timeout: float = 120.0
    zk_port: int = 0
    # Per broker, the port its ROUTED listener advertises; empty: no ROUTED listener.
    routed_ports: tuple[int, ...] = ()
    # With TLS material, every broker also has a SASL_SSL listener with its certificate.
    tls: TlsMaterial | None = None
    brokers: list[OldBroker] = field(default_factory=list)
    zookeeper: subprocess.Popen[bytes] | None = None
    paths: WorkloadPaths | None = None

    @property
    def bin(self) -> Path:
        """The bin scripts this cluster runs."""
        if self.paths is None:
            raise SubstrateError("old cluster is not set up")
        return Path(self.paths.bin)

    @property
    def zk_connect(self) -> str:
        """ZooKeeper's `HOST:PORT`."""
        return f"{LOOPBACK}:{self.zk_port}"

    @property
    def bootstrap(self) -> str:
        """Comma-separated addresses of all brokers."""
        return ",".join(broker.address for broker in self.brokers)

    @property
    def tls_bootstrap(self) -> str:
        """Comma-separated addresses of the brokers' SASL_SSL listeners."""
        return ",".join(broker.tls_address for broker in self.brokers)

    def admin_config(self) -> ClientConfig:
        """A confluent-kafka configuration logging in as the admin user."""
        return sasl_config(self.bootstrap, self.admin_username, self.admin_password)

    def _env(self, log_dir: Path) -> dict[str, str]:
        return {
            "LOG_DIR": str(log_dir),
            "KAFKA_HEAP_OPTS": f"-Xms64m -Xmx{self.heap_mb}m",
            "KAFKA_OPTS": "-Dzookeeper.sasl.client=false -Dzookeeper.admin.enableServer=false",
        }

    def _start_zookeeper(self) -> None:
        directory = self.tmp / "zk"
        (directory / "data").mkdir(parents=True, exist_ok=True)
        self.zk_port = free_port()
        config = directory / "zoo.cfg"
        config.write_text(
            f"dataDir={directory / 'data'}\n"
            f"clientPort={self.zk_port}\n"
            f"clientPortAddress={LOOPBACK}\n"
            "tickTime=2000\ninitLimit=5\nsyncLimit=2\nmaxClientCnxns=0\n"
            "admin.enableServer=false\n"
            "4lw.commands.whitelist=srvr,ruok\n"
        )
        self.zookeeper = spawn(
            [str(self.bin / "zookeeper-server-start.sh"), str(config)],
            log_file=directory / "logs" / "zookeeper.out",
            env=self._env(directory / "logs"),
        )

        def serving() -> bool:
            if self.zookeeper is not None and self.zookeeper.poll() is not None:
                raise SubstrateError(f"zookeeper exited with {self.zookeeper.returncode}")
            try:
                with socket.create_connection((LOOPBACK, self.zk_port), timeout=1) as sock:
                    sock.sendall(b"srvr")
                    return b"Mode:" in sock.recv(4096)
            except OSError:
                return False

        wait_until(serving, timeout=60, what="zookeeper")

    def _create_admin(self) -> None:
        log_dir = self.tmp / "zk" / "logs"
        command = [
            str(self.bin / "kafka-configs.sh"),
            "--zookeeper",
            self.zk_connect,
            "--alter",
            "--add-config",
            f"{SCRAM_MECHANISM}=[password={self.admin_password}]",
            "--entity-type",
            "users",
            "--entity-name",
            self.admin_username,
        ]
        env = tool_env(**{**self._env(log_dir), "KAFKA_HEAP_OPTS": "-Xmx128m"})
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).replace(self.admin_password, "***")
            raise SubstrateError(f"creating the admin SCRAM user failed:\n{output[-2000:]}")

    def _server_properties(self, broker: OldBroker) -> str:
        replication = min(self.size, 3)
        jaas = properties_escape(scram_jaas(self.admin_username, self.admin_password))
        listeners = [f"SASL_PLAINTEXT://{broker.address}"]
        advertised = list(listeners)
        protocols = ["SASL_PLAINTEXT:SASL_PLAINTEXT"]
        extra = []
        if broker.routed_advertised_port:
            listeners.append(f"ROUTED://{broker.routed_address}")
            advertised.append(f"ROUTED://{LOOPBACK}:{broker.routed_advertised_port}")
            protocols.append("ROUTED:SASL_PLAINTEXT")
            extra.append(f"listener.name.routed.scram-sha-512.sasl.jaas.config={jaas}")
        if self.tls is not None:
            listeners.append(f"TLS://{broker.tls_address}")
            advertised.append(f"TLS://{broker.tls_address}")
            protocols.append("TLS:SASL_SSL")
            extra += [
                f"listener.name.tls.scram-sha-512.sasl.jaas.config={jaas}",
                "listener.name.tls.ssl.keystore.type=PEM",
                "listener.name.tls.ssl.keystore.certificate.chain="
                + properties_escape(self.tls.certificate),
                f"listener.name.tls.ssl.keystore.key={properties_escape(self.tls.key)}",
            ]
        return "\n".join(
            [
                f"broker.id={broker.broker_id}",
                f"listeners={','.join(listeners)}",
                f"advertised.listeners={','.join(advertised)}",
                f"listener.security.protocol.map={','.join(protocols)}",
                *extra,
                "security.inter.broker.protocol=SASL_PLAINTEXT",
                f"sasl.mechanism.inter.broker.protocol={SCRAM_MECHANISM}",
                f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
                f"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={jaas}",
                "authorizer.class.name=kafka.security.authorizer.AclAuthorizer",
                f"super.users=User:{self.admin_username}",
                "allow.everyone.if.no.acl.found=false",
                f"zookeeper.connect={self.zk_connect}",
                "zookeeper.set.acl=false",
                "zookeeper.connection.timeout.ms=30000",
                f"log.dirs={broker.directory / 'data'}",
                "num.partitions=1",
                f"default.replication.factor={replication}",
                f"offsets.topic.replication.factor={replication}",
                f"transaction.state.log.replication.factor={replication}",
                f"transaction.state.log.min.isr={min(replication, 2)}",
                "group.initial.rebalance.delay.ms=0",
                "",
            ]
        )

    def _start_broker(self, broker: OldBroker) -> None:
        (broker.directory / "data").mkdir(parents=True, exist_ok=True)
        properties = broker.directory / "server.properties"
        properties.write_text(self._server_properties(broker))
        properties.chmod(0o600)
        broker.process = spawn(
            [str(self.bin / "kafka-server-start.sh"), str(properties)],
            log_file=broker.log_dir / "server.out",
            env=self._env(broker.log_dir),
        )

    def start(self) -> OldCluster:
        """Start ZooKeeper, create the admin user, start the brokers and wait for them.

        Raises:
            SubstrateError: with the log tails, if the cluster does not come up.
        """
        self.tmp.mkdir(parents=True, exist_ok=True)
        try:
            self.paths = make_rock_root(self.tmp / "rock", self.cache)
            self._start_zookeeper()
            self._create_admin()
            self.brokers = [
                OldBroker(index, free_port(), self.tmp / f"b{index}") for index in range(self.size)
            ]
            for broker, port in zip(self.brokers, self.routed_ports, strict=False):
                broker.routed_port, broker.routed_advertised_port = free_port(), port
            if self.tls is not None:
                for broker in self.brokers:
                    broker.tls_port = free_port()
            for broker in self.brokers:
                self._start_broker(broker)
            self.wait_ready(timeout=self.start_timeout)
        except BaseException as error:
            tails = format_log_tails(self.log_files())
            self.stop()
            if isinstance(error, Exception):
                raise SubstrateError(f"old cluster did not start: {error}\n{tails}") from error
            raise
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until every broker answers the admin and the cluster reports all of them."""
        config = self.admin_config()

        def ready() -> bool:
            for broker in self.brokers:
                if broker.process is not None and broker.process.poll() is not None:
                    raise SubstrateError(
                        f"old broker {broker.broker_id} exited with {broker.process.returncode}"
                    )
            return all(port_open(b.port) for b in self.brokers) and broker_count(config) >= len(
                self.brokers
            )

        wait_until(ready, timeout=timeout, interval=1.0, what="the old cluster's brokers")

    def add_scram_user(self, name: str, password: str, timeout: float = 30.0) -> None:
        """Create (or update) a SCRAM-SHA-512 user and wait until every broker accepts it.

        Raises:
            SubstrateError: if a broker still refuses the login after `timeout` seconds.
        """
        admin = AdminClient({**self.admin_config(), "log_level": 3})
        upsert = UserScramCredentialUpsertion(
            name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), password.encode()
        )
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout)
        for broker in self.brokers:
            config = sasl_config(broker.address, name, password)
            wait_until(
                lambda config=config: broker_count(config, timeout=3.0) > 0,
                timeout=timeout,
                what=f"broker {broker.broker_id} to accept user {name}",
            )

    def log_files(self) -> list[Path]:
        """ZooKeeper's and every broker's log files."""
        files = sorted((self.tmp / "zk" / "logs").glob("*"))
        for broker in self.brokers:
            files += sorted(broker.log_dir.glob("*"))
        return [path for path in files if path.suffix in (".log", ".out")]

    def stop(self) -> None:
        """Kill every process of the cluster and remove its temporary directory."""
        for broker in self.brokers:
            kill_group(broker.process)
        kill_group(self.zookeeper)
        remove_tmp(self.tmp)
