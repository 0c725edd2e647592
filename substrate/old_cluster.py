# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The foreign old cluster: the Kafka a team migrates away from, on loopback.

`OldCluster` runs `size` brokers as plain subprocesses (not under Pebble) with SASL_PLAINTEXT,
SCRAM-SHA-512 and ACLs, as the migration guide assumes. Its `release` is the main jars'
Kafka 3.9 in ZooKeeper mode by default, Kafka 2.8 in ZooKeeper mode, or the newest Kafka 4 in
KRaft mode (one combined node); the other releases' jars come from their own directories of the
cache (`substrate/runtime/fetch-sources.sh`). With TLS material (`make_ca`) it has a SASL_SSL
listener too, and with `logins` one listener per login a source may offer: PLAINTEXT, SSL, SSL
with client certificates required, SASL PLAIN, SCRAM-SHA-256, and OAUTHBEARER whose tokens it
validates against an OIDC provider's JWKS (`substrate.keycloak`).
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from files import jaas_escape, properties_escape, scram_jaas
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
    """A CA the test made, and a certificate it signed for 127.0.0.1 and localhost.

    `directory` keeps the CA's key, to sign client certificates with (`client_certificate`).
    """

    ca: str
    certificate: str
    key: str
    directory: Path | None = None


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise SubstrateError("openssl is not installed: the TLS tests generate a CA with it")
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise SubstrateError(f"openssl {args[0]} failed: {result.stderr[-1000:]}")


def _sign(directory: Path, name: str, subject: str, extensions: str, days: str = "2") -> None:
    """A new key `name.key` (PKCS#8) and `name.pem`, signed by the CA in `directory`."""
    _openssl(
        *("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key"),
        *("-out", f"{name}.csr", "-subj", subject),
        cwd=directory,
    )
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(
        *("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key"),
        *("-CAcreateserial", "-days", days, "-out", f"{name}.pem", "-extfile", f"{name}.ext"),
        cwd=directory,
    )
    for path in directory.iterdir():
        path.chmod(0o600)


def make_ca(directory: Path, name: str = "kafka-k8s test CA") -> TlsMaterial:
    """A new CA, and a server certificate it signed (PKCS#8 key, no passphrase)."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
        *("-keyout", "ca.key", "-out", "ca.pem", "-subj", f"/CN={name}"),
        *("-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        cwd=directory,
    )
    _sign(directory, "broker", "/CN=localhost", f"subjectAltName=IP:{LOOPBACK},DNS:localhost\n")
    return TlsMaterial(
        ca=(directory / "ca.pem").read_text(),
        certificate=(directory / "broker.pem").read_text(),
        key=(directory / "broker.key").read_text(),
        directory=directory,
    )


def client_certificate(tls: TlsMaterial, name: str) -> tuple[str, str]:
    """A client certificate for `CN=name` that the CA signed, and its PKCS#8 key.

    Brokers that require client certificates know its user as `User:CN=name`.
    """
    if tls.directory is None:
        raise SubstrateError("this TLS material keeps no CA key to sign with")
    _sign(tls.directory, f"client-{name}", f"/CN={name}", "extendedKeyUsage=clientAuth\n")
    return (
        (tls.directory / f"client-{name}.pem").read_text(),
        (tls.directory / f"client-{name}.key").read_text(),
    )


# Releases and logins -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KafkaRelease:
    """A Kafka line an old cluster runs: where its jars are, and how it keeps its metadata.

    `line` "3.9" is the main jars (`fetch.sh`); the others come from `sources/kafka-<line>/libs`
    in the cache (`fetch-sources.sh`).
    """

    line: str
    metadata: Literal["zookeeper", "kraft"] = "zookeeper"
    log4j2: bool = False

    def jars(self, cache: Path) -> Path:
        """The directory of its jars."""
        if self.line == MAIN.line:
            return cache / "libs"
        return cache / "sources" / f"kafka-{self.line}" / "libs"

    def version(self, cache: Path) -> str:
        """The release's version, from its broker jar's name (`kafka_2.13-2.8.2.jar`).

        Raises:
            SubstrateError: if its jars are not in the cache.
        """
        found = sorted(self.jars(cache).glob("kafka_2.13-*.jar"))
        if not found:
            raise SubstrateError(f"no Kafka {self.line} jars in {self.jars(cache)}: fetch them")
        return found[-1].name.removeprefix("kafka_2.13-").removesuffix(".jar")


MAIN = KafkaRelease("3.9")
KAFKA_2_8 = KafkaRelease("2.8")
KAFKA_4 = KafkaRelease("4", metadata="kraft", log4j2=True)

LOG4J2 = """\
# Local test tier, Kafka 4 (log4j2): INFO to $LOG_DIR/<the script's log file>.
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/${sys:kafka.log.file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""

Login = Literal["plaintext", "ssl", "mtls", "plain", "scram-sha-256", "oauthbearer"]


@dataclass(frozen=True)
class _Listener:
    """A listener of a login: its name, its security protocol and its settings."""

    name: str
    protocol: str
    settings: tuple[str, ...] = ()


@dataclass(frozen=True)
class OAuthValidation:
    """How brokers validate OAUTHBEARER tokens: the provider's keys, issuer, and its CA.

    A token must name `audience` (Keycloak's tokens name `account`); its user is its
    `principal_claim` (`azp`: the client id).
    """

    jwks_url: str
    issuer: str
    ca: str
    audience: str = "account"
    principal_claim: str = "azp"


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
    # One listener per login, by login.
    login_ports: dict[str, int] = field(default_factory=dict)
    # The KRaft controller's listener.
    controller_port: int = 0

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
    """A Kafka cluster with SASL_PLAINTEXT, SCRAM-SHA-512 and ACLs, and the listeners asked for.

    The foreign cluster of the migration guide: `size` brokers (and a ZooKeeper, in ZooKeeper
    mode), started as plain subprocesses. The `admin` super-user exists before the brokers
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
    release: KafkaRelease = MAIN
    # One listener per login; `ssl`, `mtls` and `oauthbearer` need `tls`, `oauthbearer` `oauth`.
    logins: tuple[Login, ...] = ()
    oauth: OAuthValidation | None = None
    # The users of the PLAIN listener and their passwords (PLAIN keeps them in its JAAS).
    plain_users: Mapping[str, str] = field(default_factory=dict)
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

    def login_bootstrap(self, login: Login) -> str:
        """Comma-separated addresses of the brokers' listeners of one login."""
        return ",".join(f"{LOOPBACK}:{broker.login_ports[login]}" for broker in self.brokers)

    def admin_config(self) -> ClientConfig:
        """A confluent-kafka configuration logging in as the admin user."""
        return sasl_config(self.bootstrap, self.admin_username, self.admin_password)

    def _env(self, log_dir: Path) -> dict[str, str]:
        options = "-Dzookeeper.sasl.client=false -Dzookeeper.admin.enableServer=false"
        if self.oauth is not None:
            # Kafka 4 lets brokers fetch keys only from listed URLs (3.9.1 allows all).
            options += f" -Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={self.oauth.jwks_url}"
        env = {
            "LOG_DIR": str(log_dir),
            "KAFKA_HEAP_OPTS": f"-Xms64m -Xmx{self.heap_mb}m",
            "KAFKA_OPTS": options,
        }
        if self.release.log4j2:
            log4j2 = self.tmp / "log4j2.properties"
            env["KAFKA_LOG4J_OPTS"] = f"-Dlog4j2.configurationFile={log4j2}"
        return env

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

    def _login_listeners(self) -> dict[str, _Listener]:
        """The listener of each login asked for, with its settings."""
        tls = self.tls
        needs_tls = [login for login in self.logins if login in ("ssl", "mtls", "oauthbearer")]
        if needs_tls and tls is None:
            raise SubstrateError(f"the logins {needs_tls} need TLS material")
        keystore = _keystore(tls) if tls is not None else ()
        listeners: dict[str, _Listener] = {}
        for login in self.logins:
            if login == "plaintext":
                listeners[login] = _Listener("OPEN", "PLAINTEXT")
            elif login == "ssl":
                listeners[login] = _Listener("SSLONLY", "SSL", keystore)
            elif login == "mtls" and tls is not None:
                listeners[login] = _Listener(
                    "MTLS",
                    "SSL",
                    (
                        *keystore,
                        "ssl.client.auth=required",
                        "ssl.truststore.type=PEM",
                        f"ssl.truststore.certificates={properties_escape(tls.ca)}",
                    ),
                )
            elif login == "plain":
                users = {self.admin_username: self.admin_password, **self.plain_users}
                jaas = f'username="{jaas_escape(self.admin_username)}" '
                jaas += f'password="{jaas_escape(self.admin_password)}" '
                jaas += " ".join(f'user_{u}="{jaas_escape(p)}"' for u, p in users.items())
                module = "org.apache.kafka.common.security.plain.PlainLoginModule"
                listeners[login] = _Listener(
                    "PLAIN",
                    "SASL_PLAINTEXT",
                    (
                        "sasl.enabled.mechanisms=PLAIN",
                        "plain.sasl.jaas.config="
                        + properties_escape(f"{module} required {jaas};"),
                    ),
                )
            elif login == "scram-sha-256":
                module = "org.apache.kafka.common.security.scram.ScramLoginModule"
                listeners[login] = _Listener(
                    "SCRAM256",
                    "SASL_PLAINTEXT",
                    (
                        "sasl.enabled.mechanisms=SCRAM-SHA-256",
                        f"scram-sha-256.sasl.jaas.config={module} required;",
                    ),
                )
            elif login == "oauthbearer":
                listeners[login] = _Listener("OAUTH", "SASL_SSL", (*keystore, *self._oauth()))
        return listeners

    def _oauth(self) -> tuple[str, ...]:
        """A listener's settings to validate OAUTHBEARER tokens against the provider's keys."""
        if self.oauth is None:
            raise SubstrateError("the oauthbearer login needs the OIDC provider's keys (oauth)")
        module = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
        # The validator reads the SSL settings for the keys' https endpoint from JAAS; the
        # broker's own login on this listener (never used: brokers talk on SASL_PLAINTEXT) is
        # Kafka's unsecured one, which needs a subject.
        jaas = f'{module} required unsecuredLoginStringClaim_sub="{self.admin_username}" '
        jaas += 'ssl.truststore.type="PEM" '
        jaas += f'ssl.truststore.certificates="{jaas_escape(self.oauth.ca)}";'
        handler = "org.apache.kafka.common.security.oauthbearer."
        handler += "OAuthBearerValidatorCallbackHandler"
        return (
            "sasl.enabled.mechanisms=OAUTHBEARER",
            f"oauthbearer.sasl.jaas.config={properties_escape(jaas)}",
            f"oauthbearer.sasl.server.callback.handler.class={handler}",
            f"oauthbearer.sasl.oauthbearer.jwks.endpoint.url={self.oauth.jwks_url}",
            f"oauthbearer.sasl.oauthbearer.expected.issuer={self.oauth.issuer}",
            f"oauthbearer.sasl.oauthbearer.expected.audience={self.oauth.audience}",
            f"oauthbearer.sasl.oauthbearer.sub.claim.name={self.oauth.principal_claim}",
        )

    def _server_properties(self, broker: OldBroker) -> str:
        replication = min(self.size, 3)
        jaas = properties_escape(scram_jaas(self.admin_username, self.admin_password))
        listeners = [f"SASL_PLAINTEXT://{broker.address}"]
        advertised = list(listeners)
        protocols = ["SASL_PLAINTEXT:SASL_PLAINTEXT"]
        extra = [f"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={jaas}"]
        if broker.routed_advertised_port:
            listeners.append(f"ROUTED://{broker.routed_address}")
            advertised.append(f"ROUTED://{LOOPBACK}:{broker.routed_advertised_port}")
            protocols.append("ROUTED:SASL_PLAINTEXT")
            extra.append(f"listener.name.routed.scram-sha-512.sasl.jaas.config={jaas}")
        if self.tls is not None:
            listeners.append(f"TLS://{broker.tls_address}")
            advertised.append(f"TLS://{broker.tls_address}")
            protocols.append("TLS:SASL_SSL")
            extra.append(f"listener.name.tls.scram-sha-512.sasl.jaas.config={jaas}")
            extra += [f"listener.name.tls.{line}" for line in _keystore(self.tls)]
        for login, listener in self._login_listeners().items():
            address = f"{LOOPBACK}:{broker.login_ports[login]}"
            listeners.append(f"{listener.name}://{address}")
            advertised.append(f"{listener.name}://{address}")
            protocols.append(f"{listener.name}:{listener.protocol}")
            prefix = f"listener.name.{listener.name.lower()}."
            extra += [prefix + line for line in listener.settings]
        if self.release.metadata == "kraft":
            listeners.append(f"CONTROLLER://{LOOPBACK}:{broker.controller_port}")
            protocols.append("CONTROLLER:PLAINTEXT")
            metadata = [
                f"node.id={broker.broker_id}",
                "process.roles=broker,controller",
                f"controller.quorum.voters={broker.broker_id}@{LOOPBACK}:{broker.controller_port}",
                "controller.listener.names=CONTROLLER",
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                # The controller's listener takes no login: its (loopback) clients are brokers.
                f"super.users=User:{self.admin_username};User:ANONYMOUS",
            ]
        else:
            metadata = [
                f"broker.id={broker.broker_id}",
                "authorizer.class.name=kafka.security.authorizer.AclAuthorizer",
                f"super.users=User:{self.admin_username}",
                f"zookeeper.connect={self.zk_connect}",
                "zookeeper.set.acl=false",
                "zookeeper.connection.timeout.ms=30000",
            ]
        return "\n".join(
            [
                *metadata,
                f"listeners={','.join(listeners)}",
                f"advertised.listeners={','.join(advertised)}",
                f"listener.security.protocol.map={','.join(protocols)}",
                *extra,
                "inter.broker.listener.name=SASL_PLAINTEXT",
                f"sasl.mechanism.inter.broker.protocol={SCRAM_MECHANISM}",
                f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
                "allow.everyone.if.no.acl.found=false",
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

    def _format(self, broker: OldBroker, properties: Path) -> None:
        """KRaft: format the node's storage, with the admin's SCRAM credentials in it."""
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        scram = f"{SCRAM_MECHANISM}=[name={self.admin_username},password={self.admin_password}]"
        # One argument: an id that begins with "-" would read as an option after "-t".
        command = [str(self.bin / "kafka-storage.sh"), "format", f"--cluster-id={cluster_id}"]
        command += ["-c", str(properties), "--add-scram", scram]
        env = tool_env(**{**self._env(broker.log_dir), "KAFKA_HEAP_OPTS": "-Xmx128m"})
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).replace(self.admin_password, "***")
            raise SubstrateError(f"formatting the KRaft storage failed:\n{output[-2000:]}")

    def _start_broker(self, broker: OldBroker) -> None:
        (broker.directory / "data").mkdir(parents=True, exist_ok=True)
        properties = broker.directory / "server.properties"
        properties.write_text(self._server_properties(broker))
        properties.chmod(0o600)
        if self.release.metadata == "kraft":
            self._format(broker, properties)
        broker.process = spawn(
            [str(self.bin / "kafka-server-start.sh"), str(properties)],
            log_file=broker.log_dir / "server.out",
            env=self._env(broker.log_dir),
        )

    def start(self) -> OldCluster:
        """Start ZooKeeper (or format KRaft), create the admin, start the brokers, wait for them.

        Raises:
            SubstrateError: with the log tails, if the cluster does not come up.
        """
        self.tmp.mkdir(parents=True, exist_ok=True)
        try:
            jars = self.release.jars(self.cache)
            self.release.version(self.cache)
            self.paths = make_rock_root(self.tmp / "rock", self.cache, jars)
            (self.tmp / "log4j2.properties").write_text(LOG4J2)
            if self.release.metadata == "kraft" and self.size != 1:
                raise SubstrateError("a KRaft old cluster is one combined node")
            if self.release.metadata == "zookeeper":
                self._start_zookeeper()
                self._create_admin()
            self.brokers = [
                OldBroker(index, free_port(), self.tmp / f"b{index}") for index in range(self.size)
            ]
            for broker, port in zip(self.brokers, self.routed_ports, strict=False):
                broker.routed_port, broker.routed_advertised_port = free_port(), port
            for broker in self.brokers:
                broker.tls_port = free_port() if self.tls is not None else 0
                broker.login_ports = {login: free_port() for login in self.logins}
                broker.controller_port = free_port()
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

    def add_scram_user(
        self,
        name: str,
        password: str,
        timeout: float = 30.0,
        mechanism: ScramMechanism = ScramMechanism.SCRAM_SHA_512,
    ) -> None:
        """Create (or update) a SCRAM user and wait until every broker accepts it.

        The wait logs in with SCRAM-SHA-512, so for another `mechanism` it only creates.

        Raises:
            SubstrateError: if a broker still refuses the login after `timeout` seconds.
        """
        admin = AdminClient({**self.admin_config(), "log_level": 3})
        upsert = UserScramCredentialUpsertion(
            name, ScramCredentialInfo(mechanism, 4096), password.encode()
        )
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout)
        if mechanism != ScramMechanism.SCRAM_SHA_512:
            return
        for broker in self.brokers:
            config = sasl_config(broker.address, name, password)
            wait_until(
                lambda config=config: broker_count(config, timeout=3.0) > 0,
                timeout=timeout,
                what=f"broker {broker.broker_id} to accept user {name}",
            )

    def grant_reader(self, principal: str) -> None:
        """Let `principal` read and describe every topic, group and the cluster, and no more.

        What a migration's source user needs: READ and DESCRIBE_CONFIGS on topics, READ and
        DESCRIBE on groups, DESCRIBE on the cluster (its ACLs).
        """
        bindings = [
            AclBinding(
                kind,
                name,
                ResourcePatternType.LITERAL,
                principal,
                "*",
                operation,
                AclPermissionType.ALLOW,
            )
            for kind, name, operations in (
                (ResourceType.TOPIC, "*", (AclOperation.READ, AclOperation.DESCRIBE_CONFIGS)),
                (ResourceType.GROUP, "*", (AclOperation.READ, AclOperation.DESCRIBE)),
                (ResourceType.BROKER, "kafka-cluster", (AclOperation.DESCRIBE,)),
            )
            for operation in operations
        ]
        admin = AdminClient(self.admin_config())
        for future in admin.create_acls(bindings).values():
            future.result(timeout=30)

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


def _keystore(tls: TlsMaterial) -> tuple[str, ...]:
    """A listener's PEM keystore: the broker's certificate and key."""
    return (
        "ssl.keystore.type=PEM",
        f"ssl.keystore.certificate.chain={properties_escape(tls.certificate)}",
        f"ssl.keystore.key={properties_escape(tls.key)}",
    )
