# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""What more than one unit test module uses: state builders, fakes, readers and constants.

- kafka-k8s under ops.testing: `MODEL`, `PASSWORDS`, `host`, `container`, `credentials_secret`,
  `cluster`, `read`, `serving`, a leader whose broker serves with an external source, and
  `running`, a unit whose broker runs (with `RESTARTS`, `restart_queued`, `client_relation` and
  `properties`, a plain reader of the files the charm renders).
- The migration library: `CHARMCRAFT`, `MM2`, `LAGGING`, `FENCED`, `source_relation` (a
  `migration-source` relation and its secrets), the passwords, CAs, client certificates and
  keys the tests look for (`certificate`, `pem` and `pem_key` make more), and
  `settings`, one MirrorMaker node's `MirrorMakerSettings`. Its host charm under ops.testing is
  in `migration/host.py`.
- The migration report without clusters: `snapshot` and `report` (an in-sync migration of
  `orders`, judged by `build_report`), `offsets`, `RUNNING` connectors and a failed task's `TRACE`.
- Fakes: `FakeKafka` for the charm's admin, `FakeClusters` and `FakeClient` for the library's
  `ClusterClient` (topics, offsets, groups, ACLs and quotas), `FakeLogs` for its `LogClient`;
  `conftest.py` installs them as fixtures.
  `record`, `source_log` and `copies` build logs the way MirrorMaker copies them.
- `load_properties`, a reader of `.properties` files that follows `java.util.Properties.load`,
  and `resolve_references`, which resolves `${file:PATH:KEY}` as Kafka's `FileConfigProvider`.
- `closed_port`, a loopback address where nothing listens, for real clients, and
  `loopback_server`, one that hands each connection to a handler (`http_answer` answers HTTP).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import re
import socket
import ssl
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import ops
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ops import testing

from admin import Acl, AdminError, ClusterHealth
from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import (
    ClusterUnreachableError,
    _capacity,
    _clients,
    _connectors,
    _fence,
    _records,
    _report,
    _transactions,
)
from charms.kafka_k8s.v0.mirrormaker._report import GroupOffsets, MigrationSnapshot

REPO = Path(__file__).resolve().parents[2]
CHARMCRAFT = yaml.safe_load((REPO / "charmcraft.yaml").read_text())

# kafka-k8s under ops.testing -------------------------------------------------------------------

MODEL = testing.Model(name="kafka-model")
FORMAT = testing.Exec(["/opt/kafka/bin/kafka-storage.sh", "format"])
CHOWN = testing.Exec(["chown", "-R"])
PASSWORDS = {
    "admin-password": "old-admin-pw",
    "controller-password": "controller-pw",
    "mirrormaker-password": "old-mm-pw",
    "replication-a-password": "old-replication-pw",
    "inter-broker-user": "replication-a",
}
CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"


def host(number: int) -> str:
    """A unit's address as the charm names it: completed by the pod's DNS search path."""
    return f"kafka-k8s-{number}.kafka-k8s-endpoints"


def container(*, ready: bool = True, **kwargs) -> testing.Container:
    """The workload container; `ready=False` makes the broker's readiness check fail."""
    if not ready:
        check: ops.pebble.CheckDict = {
            "override": "replace",
            "level": "ready",
            "tcp": {"port": 9092},
        }
        kwargs["layers"] = {"kafka": ops.pebble.Layer({"checks": {"kafka-ready": check}})}
        kwargs["check_infos"] = {
            testing.CheckInfo(
                "kafka-ready",
                level=ops.pebble.CheckLevel.READY,
                status=ops.pebble.CheckStatus.DOWN,
            )
        }
    return testing.Container("kafka", can_connect=True, execs={FORMAT, CHOWN}, **kwargs)


def credentials_secret(content: dict[str, str] = PASSWORDS, **kwargs) -> testing.Secret:
    kwargs.setdefault("owner", "app")
    return testing.Secret(tracked_content=content, label="internal-credentials", **kwargs)


def cluster(secret: testing.Secret, voters=(0, 1, 2), peers=(1, 2)) -> testing.PeerRelation:
    """The peer relation of a cluster the leader has already initialised."""
    return testing.PeerRelation(
        "cluster",
        local_app_data={
            "cluster-id": CLUSTER_ID,
            "controller-voters": json.dumps(list(voters)),
            "internal-credentials": secret.id,
        },
        peers_data={number: {} for number in peers},
    )


def read(ctx: testing.Context, state: testing.State, path: str) -> str:
    root = state.get_container("kafka").get_filesystem(ctx)
    return (root / path.lstrip("/")).read_text()


def mm2_resolved(ctx: testing.Context, state: testing.State) -> dict[str, str]:
    """`mm2.properties` as MirrorMaker reads it, its references resolved from its secrets file."""
    files = {MM2_SECRETS: read(ctx, state, MM2_SECRETS)}
    return resolve_references(load_properties(read(ctx, state, MM2)), files)


# The password of the source credentials secret that `serving` configures.
SERVING_SOURCE_PASSWORD = "source-pw"


def serving(
    ctx: testing.Context, etc: Path | None = None, /, **config: Any
) -> tuple[testing.State, testing.Secret]:
    """A leader whose broker serves, with an external source configured.

    With `etc`, the container's `/etc/kafka` is that directory and outlives the run: the
    broker's start record in it tells later runs which replication user the broker runs with.
    """
    mounts = {} if etc is None else {"etc": testing.Mount(location="/etc/kafka", source=etc)}
    internal = credentials_secret()
    source = testing.Secret(
        tracked_content={"username": "migrator", "password": SERVING_SOURCE_PASSWORD}
    )
    options: dict[str, str | int | float | bool] = {
        "mirrormaker-source-bootstrap-servers": "old-0:9092",
        "mirrormaker-source-credentials": source.id,
    }
    options.update(config)  # type: ignore[arg-type]
    state = testing.State(
        leader=True,
        model=MODEL,
        config=options,
        containers={container(mounts=mounts)},
        relations={cluster(internal)},
        secrets={internal, source},
    )
    started = ctx.run(ctx.on.config_changed(), state)
    broker = started.get_container("kafka")
    ready = testing.CheckInfo(
        "kafka-ready", level=ops.pebble.CheckLevel.READY, status=ops.pebble.CheckStatus.UP
    )
    broker = dataclasses.replace(broker, check_infos={ready})
    return dataclasses.replace(started, containers={broker}), source


RESTARTS = testing.PeerRelation("restart")
# What the peers of `running` publish: their broker runs with replication user `replication-a`.
ON_A = {"broker-inter-broker-user": "replication-a"}


def running(ctx, etc: Path, *, leader: bool = True, peers=(1, 2), unit_data=ON_A, **kw):
    """A unit whose broker runs, started by the charm (its start record is in /etc/kafka)."""
    secret = kw.pop("secret", None) or credentials_secret(rotate=ops.SecretRotate.MONTHLY)
    relation = dataclasses.replace(
        cluster(secret, peers=peers), peers_data={n: dict(unit_data) for n in peers}
    )
    state = testing.State(
        leader=leader,
        model=MODEL,
        containers={container(mounts={"etc": testing.Mount(location="/etc/kafka", source=etc)})},
        relations={relation, RESTARTS, *kw.pop("relations", ())},
        secrets={secret, *kw.pop("secrets", ())},
        **kw,
    )
    return ctx.run(ctx.on.config_changed(), state), secret


def restart_queued(out: testing.State) -> bool:
    queue = out.get_relations("restart")[0].local_unit_data.get("operations") or "[]"
    return bool(json.loads(queue))


def client_relation(roles: str = "consumer") -> testing.Relation:
    return testing.Relation(
        "kafka-client",
        remote_app_name="orders-app",
        remote_app_data={"topic": "orders", "extra-user-roles": roles},
    )


def properties(text: str) -> dict[str, str]:
    """A `.properties` file as a dict (keys here never hold an escaped `=`)."""
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


# The migration library -------------------------------------------------------------------------

MM2 = "/etc/kafka/mm2.properties"
MM2_SECRETS = "/etc/kafka/mm2-secrets.properties"
LAGGING = "migrating from {source}: 2 topics, lag 100 records"
# What the status adds while the migration fences the topics it copies into.
FENCED = "; writes fenced on orders, payments"
RELATION_PASSWORD = "relation-secret-pw"


def certificate(subject: str, issuer: str, *, ca: bool) -> tuple[x509.Certificate, Any]:
    """A certificate for `subject` signed by a new key in the name of `issuer`, and the key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    return builder.sign(key, hashes.SHA256()), key


def pem(made: x509.Certificate) -> str:
    """A certificate as PEM text."""
    return made.public_bytes(serialization.Encoding.PEM).decode()


def pem_key(key: Any, *, pkcs8: bool = True) -> str:
    """A private key as PEM text: PKCS#8 (what Kafka reads), else the traditional form."""
    form = (
        serialization.PrivateFormat.PKCS8
        if pkcs8
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    return key.private_bytes(
        serialization.Encoding.PEM, form, serialization.NoEncryption()
    ).decode()


# The CA of the source cluster: in the credentials secret, or sent on `migration-source`.
SOURCE_CA = pem(certificate("kafka-k8s unit test CA", "kafka-k8s unit test CA", ca=True)[0])
# A client certificate and its key (mutual TLS), and a key of another certificate.
_CLIENT, _CLIENT_KEY = certificate("migrator", "kafka-k8s unit test CA", ca=False)
CLIENT_CERTIFICATE, CLIENT_KEY = pem(_CLIENT), pem_key(_CLIENT_KEY)
OTHER_KEY = pem_key(certificate("other", "other", ca=False)[1])
# A PEM-shaped CA that no TLS library would parse.
FAKE_CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def source_relation(*, tls: bool = False, data: dict[str, str] | None = None):
    """The `migration-source` relation with a v1 kafka_client response, and its secrets."""
    user = testing.Secret(
        tracked_content={"username": "relation-7", "password": RELATION_PASSWORD}
    )
    secrets = [user]
    response = {
        "resource": "*",
        "request-id": "abc",
        "salt": "salt",
        "endpoints": "old-kafka-0:9092,old-kafka-1:9092",
        "secret-user": user.id,
    }
    if tls:
        tls_secret = testing.Secret(tracked_content={"tls": "true", "tls-ca": SOURCE_CA})
        secrets.append(tls_secret)
        response["secret-tls"] = tls_secret.id
    remote = {"version": "v1", "requests": json.dumps([response])} if data is None else data
    relation = testing.Relation(
        "migration-source", remote_app_name="old-kafka", remote_app_data=remote
    )
    return relation, tuple(secrets)


def fence_applied(**options: object) -> dict[str, str]:
    """The leader's word, in app data, that its grants fence these options' topic selection."""
    selection = mm.TopicSelection.of(mm.MigrationConfig.from_options(options))
    applied = {"selections": [selection.model_dump(mode="json")]}
    return {_fence.FENCE_APPLIED_KEY: json.dumps(applied)}


def settings(**changes: object) -> mm.MirrorMakerSettings:
    """One node's settings: an external source, a two-broker target, three units."""
    base: dict[str, object] = {
        "source": mm.SourceCluster(
            name="old-kafka",
            bootstrap_servers=("10.0.0.5:9092", "10.0.0.6:9092"),
            username="migrator",
            password="source-password",
        ),
        "target": mm.TargetCluster(
            bootstrap_servers=("kafka-k8s-0.svc:19092", "kafka-k8s-1.svc:19092"),
            username="mirrormaker",
            password="target-password",
        ),
        "unit_host": "kafka-k8s-0.kafka-k8s-endpoints",
        "units": 3,
    }
    base.update(changes)
    return mm.MirrorMakerSettings.model_validate(base)


# A failback of a promoted wave -------------------------------------------------------------------

# Wave 1 promoted `orders` (two partitions) at these end offsets on both clusters.
WAVE_ENDS = {"orders": [100, 200]}
WAVE = {
    "number": 1,
    "at": "2026-01-02T03:04:05+00:00",
    "by": "kafka-k8s/1",
    "topics": ["orders"],
    "target_topics": ["orders"],
    "records": 300,
    "groups": ["billing"],
    "source_end_offsets": WAVE_ENDS,
    "target_end_offsets": WAVE_ENDS,
}
FAILBACK = {
    "number": 1,
    "migration": 1,
    "at": "2026-01-03T00:00:00+00:00",
    "by": "kafka-k8s/1",
    "source": "old-0:9092",
    "topics": ["orders"],
    "waves": {"orders": 1},
    "target_offsets": WAVE_ENDS,
    "source_offsets": WAVE_ENDS,
}
ACTIVE = json.dumps({"service": "active", "exactly-once": "disabled"})


def promoted_request(state: str = "finished", *, seq: int = 3, **more: object) -> str:
    """The request of migration 1 once its wave 1 promoted `orders` (and finished it)."""
    request: dict[str, object] = {"state": state, "seq": seq, "at": 1000, "by": "kafka-k8s/1"}
    request |= {"migration": 1, "waves": [WAVE], **more}
    if state == "finished":
        request["finished"] = {"at": WAVE["at"], "source": "old-0:9092", "topics": ["orders"]}
    return json.dumps(request)


def failback_request(*, current: bool = True, seq: int = 1, by: str = "kafka-k8s/1") -> str:
    """The failbacks as a unit recorded them: the failback of `orders` runs (or none does)."""
    return json.dumps(
        {"seq": seq, "at": 1000, "by": by, "current": FAILBACK if current else None, "done": []}
    )


def failing_back(clusters: FakeClusters) -> None:
    """Since wave 1, `orders` took 50 records per partition here, and `billing` read some.

    The source cluster was not written since; `billing` has no consumers on either cluster.
    """
    clusters.topics["source"]["orders"] = list(WAVE_ENDS["orders"])
    clusters.topics["target"]["orders"] = [150, 250]
    clusters.topics["target"]["mm2-offsets.source.internal"] = [9]
    clusters.groups["target"] = ["billing"]
    clusters.commits["target"]["billing"] = {"orders": {0: 120, 1: 230}}
    clusters.members["billing"] = 0


def copied_back(clusters: FakeClusters) -> None:
    """The copy back holds every record written here since the wave."""
    failing_back(clusters)
    clusters.topics["source"]["orders"] = [150, 250]


# The migration report, judged from a snapshot without clusters ---------------------------------

CONFIG = mm.MigrationConfig()
RUNNING = [
    _connectors.ConnectorState(connector="MirrorSourceConnector", state="RUNNING"),
    _connectors.ConnectorState(connector="MirrorSourceConnector", task=0, state="RUNNING"),
]
# The trace Kafka Connect records for a task that failed.
TRACE = (
    "org.apache.kafka.connect.errors.ConnectException: Unrecoverable exception from producer "
    "send callback\n\tat org.apache.kafka.connect.runtime.WorkerSourceTask.x(W.java:343)\n"
    "Caused by: org.apache.kafka.common.errors.RecordTooLargeException: The message is 1500087 "
    "bytes\n\tat y(Y.java:1)\n"
)


def offsets(*ends: int, starts: tuple[int, ...] | None = None) -> _clients.TopicOffsets:
    return _clients.TopicOffsets(start=starts or (0,) * len(ends), end=ends)


def snapshot(**fields: object) -> MigrationSnapshot:
    """An in-sync migration of `orders` (two partitions) with group `billing` at its end."""
    defaults: dict[str, object] = {
        "source_topics": {"orders": offsets(100, 200)},
        "target_topics": {"orders": offsets(100, 200)},
        "source_groups": [GroupOffsets(group="billing", offsets={"orders": {0: 100, 1: 200}})],
        "target_groups": {"billing": {"orders": {0: 100, 1: 200}}},
        "connectors": RUNNING,
        "units": {"kafka-k8s/0": mm.UnitState(service="active")},
    }
    return MigrationSnapshot.model_validate(defaults | fields)


def report(config: mm.MigrationConfig = CONFIG, /, **fields: object) -> mm.MigrationReport:
    """The report on `snapshot(**fields)`; `lag_threshold` and `topic` go to the report."""
    threshold = fields.pop("lag_threshold", 0)
    topic = fields.pop("topic", None)
    return _report.build_report(
        snapshot(**fields),
        config,
        source="old",
        lag_threshold=int(threshold),  # type: ignore[arg-type]
        topic=topic,  # type: ignore[arg-type]
    )


# Fakes -----------------------------------------------------------------------------------------


class FakeRefresh:
    """charm-refresh's `Kubernetes` object as the charm reads it, with the values a test sets.

    The real one asks Kubernetes (lightkube) and Juju's hook tools directly, which ops.testing
    does not give; Canonical's data charms test their integration the same way.
    """

    def __init__(self, *, in_progress: bool = False, allowed: bool = True) -> None:
        self.in_progress = in_progress
        self.workload_allowed_to_start = allowed
        self.allowed_next: list[bool] = []
        self.app_status_higher_priority: ops.StatusBase | None = None
        self.unit_status_higher_priority: ops.StatusBase | None = None
        self.quiet: ops.StatusBase | None = None

    @property
    def next_unit_allowed_to_refresh(self) -> bool:
        return bool(self.allowed_next)

    @next_unit_allowed_to_refresh.setter
    def next_unit_allowed_to_refresh(self, value: bool) -> None:
        assert value is True and self.workload_allowed_to_start
        self.allowed_next.append(value)

    def unit_status_lower_priority(self, *, workload_is_running: bool = True):
        return self.quiet


class FakeKafka:
    """SCRAM users and ACLs of a pretend cluster, in memory, behind `KafkaAdmin`'s methods.

    The real `KafkaAdmin` would connect to brokers with 15 s timeouts; unit tests must never
    construct it, so the autouse `kafka` fixture swaps this in wherever the charm looks it up.
    """

    def __init__(self) -> None:
        self.users: dict[str, str] = {}
        self.acls: dict[str, set[Acl]] = {}
        self.upserts: list[tuple[str, str]] = []
        self.logins: list[tuple[str, str]] = []
        self.closed = 0
        self.error: Exception | None = None
        # With `verify`, a login must match the password Kafka holds (else one is trusted).
        self.verify = False
        self.login: tuple[str, str] = ("", "")
        # Fail the n-th upsert from now (1 = the next one), as a refusing cluster would.
        self.fail_upsert_at: int | None = None
        self.cluster_defaults: dict[str, str] = {}
        self.config_changes: list[dict[str, str]] = []
        self.brokers = frozenset({0, 1, 2})
        self.under_replicated: tuple[str, ...] = ()
        # Each user's producer_byte_rate quota, and every change of one.
        self.quotas: dict[str, float] = {}
        self.quota_changes: list[tuple[str, float | None]] = []
        # Each broker's data volume, as DescribeLogDirs tells it.
        self.storage_bytes = 10 * 1024**3

    def connect(self, bootstrap: str, username: str, password: str, **_: object) -> FakeKafka:
        self.logins.append((username, password))
        self.login = (username, password)
        return self

    def __enter__(self) -> FakeKafka:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed += 1

    def _answer(self) -> None:
        if self.error is not None:
            raise self.error
        username, password = self.login
        if self.verify and self.users.get(username) != password:
            raise AdminError(f"authentication of {username} failed: invalid credentials")

    def can_log_in(self) -> bool:
        try:
            self._answer()
        except AdminError:
            return False
        return True

    def cluster_health(self) -> ClusterHealth:
        self._answer()
        return ClusterHealth(brokers=self.brokers, under_replicated=self.under_replicated)

    def cluster_configs(self, names) -> dict[str, str]:
        self._answer()
        return {name: value for name, value in self.cluster_defaults.items() if name in names}

    def set_cluster_configs(self, configs: dict[str, str]) -> None:
        self._answer()
        self.config_changes.append(dict(configs))
        self.cluster_defaults.update(configs)

    def upsert_user(self, username: str, password: str) -> None:
        self._answer()
        if self.fail_upsert_at is not None:
            self.fail_upsert_at -= 1
            if self.fail_upsert_at == 0:
                self.fail_upsert_at = None
                raise AdminError(f"setting the credentials of {username}: timed out")
        self.upserts.append((username, password))
        self.users[username] = password

    def list_users(self) -> set[str]:
        self._answer()
        return set(self.users)

    def delete_user(self, username: str) -> None:
        self._answer()
        self.acls.pop(username, None)
        self.users.pop(username, None)

    def retire_user(self, username: str) -> None:
        self.revoke_all(username)
        self.upsert_user(username, f"retired-{len(self.upserts)}")

    def acls_of(self, username: str) -> set[Acl]:
        self._answer()
        return set(self.acls.get(username, set()))

    def grant(self, username: str, acls) -> None:
        self._answer()
        acls = set(acls)
        if any(acl.pattern == "PREFIXED" and not acl.name for acl in acls):
            # What Kafka answers to a PREFIXED binding with an empty name.
            raise AdminError(f"granting ACLs to {username}: INVALID_REQUEST (empty prefix)")
        self.acls[username] = acls

    def revoke_all(self, username: str) -> None:
        self._answer()
        self.acls.pop(username, None)

    def log_dir_bytes(self, brokers) -> dict[int, int]:
        self._answer()
        return dict.fromkeys(brokers, self.storage_bytes)

    def producer_byte_rate(self, username: str) -> float | None:
        self._answer()
        return self.quotas.get(username)

    def set_producer_byte_rate(self, username: str, rate: float | None) -> None:
        self._answer()
        self.quota_changes.append((username, rate))
        if rate is None:
            self.quotas.pop(username, None)
        else:
            self.quotas[username] = rate


RUNNING_CONNECTORS = (
    _connectors.ConnectorState(connector="MirrorCheckpointConnector", state="RUNNING"),
    _connectors.ConnectorState(connector="MirrorCheckpointConnector", task=0, state="RUNNING"),
    _connectors.ConnectorState(connector="MirrorSourceConnector", state="RUNNING"),
    _connectors.ConnectorState(connector="MirrorSourceConnector", task=0, state="RUNNING"),
    _connectors.ConnectorState(connector="MirrorSourceConnector", task=1, state="RUNNING"),
)


class FakeClusters:
    """What `ClusterClient` would read from the source and the target.

    By default the target lags: `orders` misses 50 records of partition 1, `payments` is not
    there yet, and group `billing` has no offsets on the target.
    """

    def __init__(self) -> None:
        self.topics = {
            "source": {"orders": [100, 200], "payments": [50], "__consumer_offsets": [9] * 3},
            "target": {"orders": [100, 150], "heartbeats": [3]},
        }
        self.starts: dict[str, dict[str, list[int]]] = {"source": {}, "target": {}}
        self.groups = {"source": ["billing", "console-consumer-1", "shipping"], "target": []}
        self.commits: dict[str, dict[str, _clients.GroupCommits]] = {
            "source": {"billing": {"orders": {0: 100, 1: 120}}},
            "target": {},
        }
        self.members = {"billing": 2}
        # What `FakeLogs` reads and writes: records (synthesized where none are given), offset
        # syncs, MirrorMaker's committed source offsets, commits and deletions, waits.
        self.records: dict[str, dict[tuple[str, int], list[_records.Record]]] = {
            "source": {},
            "target": {},
        }
        self.syncs: list[_records.OffsetSync] = []
        self.mirrormaker_offsets: dict[tuple[str, int], int] | None = None
        # A failback's copy back: its offset syncs and committed offsets (read on the source),
        # its connectors, the records written (by role and topic) and who may not write.
        self.failback_syncs: list[_records.OffsetSync] = []
        self.failback_offsets: dict[tuple[str, int], int] | None = None
        self.failback_connectors = list(RUNNING_CONNECTORS[2:])
        self.written: dict[tuple[str, str], list[tuple[bytes, bytes]]] = {}
        self.refused_writes: set[str] = set()
        self.switched: list[tuple[str, dict[tuple[str, int], int]]] = []
        self.deleted: list[str] = []
        self.pauses: list[float] = []
        self.written_while_watched: dict[str, list[int]] = {}
        self.written_here_while_watched: dict[str, list[int]] = {}
        self.members_on_target: dict[str, int] = {}
        # Log end offsets above the ends in `topics` (a transaction holds them, and those it
        # writes while the source is watched), the open transactions `open_transactions`
        # answers, and the claims made on the target.
        self.log_ends: dict[str, list[int]] = {}
        self.held_while_watched: dict[str, list[int]] = {}
        self.transactions = _transactions.OpenTransactions()
        self.max_timeout_ms: int | None = None
        self.claims: dict[str, str] = {}
        self.clock = 1_000_000.0
        self.tick = 60.0
        self.connectors = list(RUNNING_CONNECTORS)
        self.acls: dict[str, list[mm.AclBinding]] = {"source": [], "target": []}
        # The users' quotas on the source, and the parts of the ACL answers a user may not read.
        self.quotas: dict[str, dict[str, float]] = {}
        self.unreadable: dict[str, str] = {}
        # The connectors whose failed tasks Connect was asked to restart, one list per request.
        self.restart_requests: list[list[str]] = []
        self.missing_rights: list[str] = []
        self.rights_checked: list[tuple[list[str], bool, bool]] = []
        # What the preflight reads (`_capacity`): per role, details beyond the partitions of
        # `topics` (replication factor, record limit, configs, size), the target's brokers and
        # free bytes, the source's Kafka release; what a start prepared.
        self.details: dict[str, dict[str, dict[str, object]]] = {"source": {}, "target": {}}
        self.storage = {"source": (1, None), "target": (3, 1 << 40)}
        self.version: tuple[int, ...] | None = (3, 9)
        self.created: dict[str, tuple[int, int, dict[str, str]]] = {}
        self.raised: dict[str, int] = {}
        self.unreachable: set[str] = set()
        self.refused: set[str] = set()
        self.logins: list[tuple[str, str | None, str | None]] = []
        self.timeouts: list[float] = []
        self.closed: list[str] = []

    def __call__(self, cluster: mm.KafkaCluster, role: str, timeout: float = 10.0) -> FakeClient:
        self.logins.append((role, cluster.username, cluster.password))
        self.timeouts.append(timeout)
        client = FakeClient(self, role)
        client.cluster, client.timeout = cluster, timeout
        return client

    def logs(
        self, cluster: mm.KafkaCluster, role: str, timeout: float = 10.0, flow: str = "source"
    ) -> FakeLogs:
        return FakeLogs(self, role, flow)

    def now(self) -> float:
        """The library's clock: each reading is `tick` seconds after the last."""
        self.clock += self.tick
        return self.clock

    def pause(self, seconds: float) -> None:
        """The wait while a cluster is watched: the writes it saw happen now.

        `written_while_watched` are the source's; `written_here_while_watched` the target's,
        which a failback watches.
        """
        self.pauses.append(seconds)
        for role, written in (
            ("source", self.written_while_watched),
            ("target", self.written_here_while_watched),
        ):
            for topic, added in written.items():
                ends = self.topics[role][topic]
                self.topics[role][topic] = [end + n for end, n in zip(ends, added, strict=True)]
        for topic, added in self.held_while_watched.items():
            ends = self.log_ends.get(topic, self.topics["source"][topic])
            self.log_ends[topic] = [end + n for end, n in zip(ends, added, strict=True)]

    def in_sync(self) -> None:
        """The target caught up with every topic, `billing` is synced and has no consumers."""
        for name in ("orders", "payments"):
            self.topics["target"][name] = list(self.topics["source"][name])
        self.commits["target"] = {"billing": {"orders": {0: 100, 1: 120}}}
        self.members["billing"] = 0


class FakeClient:
    cluster: mm.KafkaCluster | None = None
    timeout: float = 10.0

    def __init__(self, clusters: FakeClusters, role: str):
        self.clusters = clusters
        self.role = role

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.clusters.closed.append(self.role)

    def _answer(self) -> None:
        if self.role in self.clusters.refused:
            raise ClusterUnreachableError(
                f"{self.role} cluster at h:1 refused the login of migrator: invalid credentials",
                refused=True,
            )
        if self.role in self.clusters.unreachable:
            raise ClusterUnreachableError(f"{self.role} cluster at h:1 did not answer: timed out")

    def topics(self) -> dict[str, int]:
        self._answer()
        return {name: len(offsets) for name, offsets in self.clusters.topics[self.role].items()}

    def groups(self) -> list[str]:
        self._answer()
        return self.clusters.groups[self.role]

    def end_offsets(self, topics: Mapping[str, int]) -> dict[str, list[int]]:
        self._answer()
        return {name: list(self.clusters.topics[self.role][name]) for name in topics}

    def log_end_offsets(self, topics: Mapping[str, int]) -> dict[str, list[int]]:
        ends = self.end_offsets(topics)
        held = self.clusters.log_ends if self.role == "source" else {}
        return {name: list(held.get(name, end)) for name, end in ends.items()}

    def open_transactions(self, partitions) -> _transactions.OpenTransactions:
        self._answer()
        wanted = set(partitions)
        found = self.clusters.transactions
        held = [t for t in found.transactions if (t.topic, t.partition) in wanted]
        return found.model_copy(update={"transactions": held})

    def transaction_max_timeout_ms(self) -> int | None:
        self._answer()
        return self.clusters.max_timeout_ms

    def offsets(self, topics: Mapping[str, int]) -> dict[str, _clients.TopicOffsets]:
        ends = self.end_offsets(topics)
        starts = self.clusters.starts[self.role]
        return {
            name: _clients.TopicOffsets(
                start=tuple(starts.get(name, [0] * len(end))), end=tuple(end)
            )
            for name, end in ends.items()
        }

    def committed_offsets(
        self, groups: Sequence[str], topics: Collection[str]
    ) -> dict[str, _clients.GroupCommits]:
        self._answer()
        commits = self.clusters.commits[self.role]
        return {
            group: {t: p for t, p in commits.get(group, {}).items() if t in topics}
            for group in groups
        }

    def describe_groups(self, groups: Sequence[str]) -> dict[str, tuple[str, int]]:
        self._answer()
        members = (
            self.clusters.members if self.role == "source" else self.clusters.members_on_target
        )
        return {g: ("stable" if members.get(g) else "empty", members.get(g, 0)) for g in groups}

    def connector_states(self, source_alias: str) -> list[_connectors.ConnectorState]:
        self._answer()
        if source_alias == "failback":
            assert self.role == "source"
            return self.clusters.failback_connectors
        assert source_alias == "source"
        return self.clusters.connectors

    def request_restarts(self, source_alias: str, connectors: Collection[str]) -> None:
        self._answer()
        assert (self.role, source_alias) == ("target", "source")
        self.clusters.restart_requests.append(sorted(connectors))

    def missing_rights(
        self, topics: Collection[str], *, groups: bool = False, acls: bool = False
    ) -> list[str]:
        self._answer()
        assert self.role == "source"
        self.clusters.rights_checked.append((sorted(topics), groups, acls))
        return list(self.clusters.missing_rights)

    def _readable(self, what: str) -> None:
        if what in self.clusters.unreadable:
            raise ClusterUnreachableError(
                f"{self.role} cluster at h:1 refused the request: {self.clusters.unreadable[what]}"
            )

    def acls(self) -> list[mm.AclBinding]:
        self._answer()
        self._readable("acls")
        return list(self.clusters.acls[self.role])

    def topic_details(self, topics: Collection[str]) -> dict[str, _capacity.TopicDetails]:
        self._answer()
        found = self.clusters.topics[self.role]
        given = self.clusters.details[self.role]
        return {
            name: _capacity.TopicDetails.model_validate(
                {
                    "partitions": len(found[name]),
                    "replication_factor": 1,
                    "record_limit": _capacity.DEFAULT_MESSAGE_MAX_BYTES,
                    "size_bytes": 1000 * len(found[name]),
                    **given.get(name, {}),
                }
            )
            for name in topics
            if name in found
        }

    def storage(self) -> tuple[int, int | None]:
        self._answer()
        return self.clusters.storage[self.role]

    def kafka_version(self) -> tuple[int, ...] | None:
        self._answer()
        return self.clusters.version

    def create_topics(self, topics) -> None:
        self._answer()
        self.clusters.created.update(topics)

    def set_record_limits(self, limits) -> None:
        self._answer()
        self.clusters.raised.update(limits)

    def create_acls(self, acls: Sequence[mm.AclBinding]) -> None:
        self._answer()
        self._readable("create_acls")
        self.clusters.acls[self.role] += [
            a for a in acls if a not in self.clusters.acls[self.role]
        ]

    def delete_acls(self, acls: Sequence[mm.AclBinding]) -> None:
        self._answer()
        self._readable("delete_acls")
        self.clusters.acls[self.role] = [a for a in self.clusters.acls[self.role] if a not in acls]

    def client_quotas(self) -> dict[str, dict[str, float]]:
        self._answer()
        self._readable("quotas")
        return {user: dict(quotas) for user, quotas in self.clusters.quotas.items()}


# A reader of the .properties format, following java.util.Properties.load ----------------------


def logical_lines(text: str) -> list[str]:
    """Java's `Properties.LineReader`: comments, blank lines and continuations."""
    natural = re.split(r"\r\n|\r|\n", text)
    lines: list[str] = []
    current: str | None = None
    for raw in natural:
        line = raw.lstrip(" \t\f")
        if current is None:
            if not line or line[0] in "#!":
                continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            current = (current or "") + line[:-1]
            continue
        lines.append((current or "") + line)
        current = None
    if current is not None:
        lines.append(current)
    return lines


def _unescape(text: str) -> str:
    """Java's `Properties.loadConvert`, then UTF-16 surrogate pairs joined."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        index += 1
        if char != "\\":
            out.append(char)
            continue
        char = text[index]
        index += 1
        if char == "u":
            digits = text[index : index + 4]
            if len(digits) != 4 or not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                raise ValueError(f"Malformed \\uxxxx encoding: {digits!r}")
            out.append(chr(int(digits, 16)))
            index += 4
        else:
            out.append({"t": "\t", "r": "\r", "n": "\n", "f": "\f"}.get(char, char))
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16")


def load_properties(text: str) -> dict[str, str]:
    """Parse a .properties file as `java.util.Properties.load` does (ISO 8859-1 input)."""
    text.encode("latin-1")
    properties: dict[str, str] = {}
    for line in logical_lines(text):
        key_end = len(line)
        value_start = len(line)
        has_separator = False
        backslash = False
        for position, char in enumerate(line):
            if char in "=:" and not backslash:
                key_end, value_start, has_separator = position, position + 1, True
                break
            if char in " \t\f" and not backslash:
                key_end, value_start = position, position + 1
                break
            backslash = char == "\\" and not backslash
        while value_start < len(line):
            char = line[value_start]
            if char not in " \t\f":
                if not has_separator and char in "=:":
                    has_separator = True
                else:
                    break
            value_start += 1
        properties[_unescape(line[:key_end])] = _unescape(line[value_start:])
    return properties


# Kafka's config references, as ConfigTransformer resolves them with FileConfigProvider --------

FILE_PROVIDER = "org.apache.kafka.common.config.provider.FileConfigProvider"
_REFERENCE = re.compile(r"\$\{([^}]*?):(([^}]*?):)?([^}]*?)\}")


def resolve_references(properties: Mapping[str, str], files: Mapping[str, str]) -> dict[str, str]:
    """`properties` with every `${file:PATH:KEY}` replaced by KEY of the properties file PATH.

    As Kafka does: only providers named in `config.providers` with `FileConfigProvider` as
    class resolve; a path outside `allowed.paths` or a missing key leaves the reference as is.
    `files` holds the text of each file by its path.
    """
    names = [name.strip() for name in properties.get("config.providers", "").split(",")]
    providers = {
        name for name in names if properties.get(f"config.providers.{name}.class") == FILE_PROVIDER
    }

    def lookup(match: re.Match[str]) -> str:
        provider, path, key = match.group(1), match.group(3), match.group(4)
        allowed = properties.get(f"config.providers.{provider}.param.allowed.paths")
        if provider not in providers or path is None or path not in files:
            return match.group(0)
        if allowed is not None and not any(path.startswith(a) for a in allowed.split(",")):
            return match.group(0)
        return load_properties(files[path]).get(key, match.group(0))

    return {key: _REFERENCE.sub(lookup, value) for key, value in properties.items()}


def record(offset: int, text: str, timestamp: int = 1_000) -> _records.Record:
    """A record whose key and value are `text`."""
    return _records.Record(offset, (text.encode(), text.encode(), (), timestamp))


def source_log(offsets: list[int]) -> list[_records.Record]:
    return [record(offset, f"r{offset}") for offset in offsets]


def copies(source: list[_records.Record], runs: list[tuple[int, int]], first: int = 0):
    """The target: each run copies source[start:end], written from target offset `first` on."""
    target = []
    for start, end in runs:
        for item in source[start:end]:
            target.append(_records.Record(first + len(target), item.content))
    return target


class FakeLogs:
    """What `LogClient` would read from one cluster, and the commits and writes it would make.

    A partition without records in `FakeClusters.records` holds, at every offset between its
    start and end, a record named after the source partition and offset: the target's copy at
    the same offset. `flow` is the MirrorMaker flow whose offset syncs and committed offsets it
    reads: the migration's (`source`) or a failback's copy back (`failback`, on the source).
    """

    def __init__(self, clusters: FakeClusters, role: str, flow: str = "source"):
        self.clusters = clusters
        self.role = role
        self.flow = flow

    def __enter__(self) -> FakeLogs:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def _partition_records(self, partition: tuple[str, int]) -> list[_records.Record]:
        given = self.clusters.records[self.role].get(partition)
        if given is not None:
            return given
        topic, number = partition
        ends = self.clusters.topics[self.role].get(topic)
        if ends is None or number >= len(ends):
            return []
        starts = self.clusters.starts[self.role].get(topic, [0] * len(ends))
        return [record(o, f"{topic}-{number}-{o}") for o in range(starts[number], ends[number])]

    def read(self, ranges, limit: int = _records._WALK_LIMIT):
        read = {}
        for partition, (start, end) in ranges.items():
            found = [r for r in self._partition_records(partition) if start <= r.offset < end]
            read[partition] = (found[:limit], len(found) <= limit)
        return read

    def first_offsets_at(self, times):
        return {
            partition: next(
                (r.offset for r in self._partition_records(partition) if r.content[3] >= at), None
            )
            for partition, at in times.items()
        }

    def offset_syncs(self, wanted):
        found = {}
        syncs = self.clusters.syncs if self.flow == "source" else self.clusters.failback_syncs
        for sync in reversed(syncs):
            key = (sync.topic, sync.partition)
            if key in wanted and key not in found:
                if wanted[key] is None or sync.upstream <= wanted[key]:
                    found[key] = sync
        return found

    def source_offsets(self):
        given, read = self.clusters.mirrormaker_offsets, "source"
        if self.flow == "failback":
            given, read = self.clusters.failback_offsets, "target"
        if given is not None:
            return dict(given)
        return {
            (topic, number): end - 1
            for topic, ends in self.clusters.topics[read].items()
            for number, end in enumerate(ends)
        }

    def commit(self, group: str, offsets) -> None:
        self.clusters.switched.append((group, dict(offsets)))
        commits = self.clusters.commits[self.role].setdefault(group, {})
        for (topic, number), offset in offsets.items():
            commits.setdefault(topic, {})[number] = offset

    def create_compacted(self, topic: str) -> bool:
        if topic in self.clusters.topics[self.role]:
            return False
        self.clusters.topics[self.role][topic] = [0]
        return True

    def write(self, topic: str, records) -> None:
        if self.role in self.clusters.refused_writes:
            raise ClusterUnreachableError(
                f"{self.role} cluster at h:1 refused the request: topic authorization failed"
            )
        self.clusters.written.setdefault((self.role, topic), []).extend(records)

    def delete_topics(self, names) -> list[str]:
        existing = sorted(set(names) & set(self.clusters.topics[self.role]))
        self.clusters.deleted += existing
        return existing

    def topics(self) -> dict[str, int]:
        return {name: len(ends) for name, ends in self.clusters.topics[self.role].items()}

    def claim(self, topic: str, holder: str, replication_factor: int = 1) -> str:
        """The first claim of a topic wins, as CreateTopics creates a topic once."""
        if topic not in self.clusters.claims:
            self.clusters.claims[topic] = holder
            self.clusters.topics[self.role][topic] = [1]
        return self.clusters.claims[topic]


# Real clients on loopback ----------------------------------------------------------------------


@contextlib.contextmanager
def loopback_server(handle: Callable[[socket.socket], None]) -> Iterator[str]:
    """A server on loopback that hands each connection to `handle`; its `HOST:PORT`."""
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.1)

        def serve() -> None:
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                with connection:
                    connection.settimeout(2)
                    with contextlib.suppress(ssl.SSLError, OSError):
                        handle(connection)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        try:
            yield f"127.0.0.1:{listener.getsockname()[1]}"
        finally:
            stop.set()
            server.join()


def http_answer(
    status: int, body: bytes, requests: list[bytes] | None = None
) -> Callable[[socket.socket], None]:
    """A handler that answers each HTTP request with `status` and a JSON `body`.

    What each request sent (head and body) is appended to `requests`.
    """

    def handle(connection: socket.socket) -> None:
        received = b""
        while b"\r\n\r\n" not in received and (chunk := connection.recv(65536)):
            received += chunk
        length = re.search(rb"(?i)content-length: *(\d+)", received)
        while length and len(received.partition(b"\r\n\r\n")[2]) < int(length.group(1)):
            received += connection.recv(65536)
        if requests is not None:
            requests.append(received)
        connection.sendall(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )

    return handle


def closed_port() -> str:
    """`127.0.0.1:PORT` where nothing listens: a client's connection is refused at once."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{closed.getsockname()[1]}"
