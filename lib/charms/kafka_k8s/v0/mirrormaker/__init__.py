# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
r"""Migrate an existing Kafka cluster into this one with MirrorMaker 2.

Every unit of the host charm runs one MirrorMaker 2 node (dedicated mode, KIP-710) as a Pebble
service in its Kafka workload container; together the nodes form one distributed MirrorMaker
cluster that copies topics, records, topic configs, topic ACLs and consumer-group offsets from a
source cluster into the local one, without writing to the source.

The source is either the `migration-source` relation (interface `kafka_client`, requirer side of
`data_platform_helpers.interfaces`) or any reachable Kafka named by the
`mirrormaker-source-bootstrap-servers` option plus a Juju user secret in
`mirrormaker-source-credentials`: `security-protocol` (PLAINTEXT, SSL, SASL_PLAINTEXT,
SASL_SSL), over SASL `sasl-mechanism` with `username` and `password` (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512) or `oauth-token-endpoint`, `oauth-client-id`, `oauth-client-secret`,
`oauth-scope`, `oauth-ca` (OAUTHBEARER), over TLS `ca` and, for mutual TLS,
`client-certificate` and `client-key`. Every secret value reaches MirrorMaker only through its
0600 secrets file. The actions `start-migration` (with `dry-run`), `stop-migration`,
`migration-status`, `switch-group`, `finish-migration`, `restart-mirrormaker`, `start-failback`
and `finish-failback` work from any unit: a request goes into the acting unit's peer databag,
and every unit follows the newest request it sees.

Before a real start, and in a dry run, a preflight looks for what no restart fixes: records
larger than MirrorMaker's producer or the copies accept (a real start sets the producer's
`max.request.size` and the copies' `max.message.bytes` to fit them), copies the local cluster
cannot create or hold, and the source's Kafka release; a real start refuses what would fail the
copy unless `force=true`.

The cutover: while a migration is requested and not finished, the topics it copies into are
fenced (`fenced_topics()`: every topic it copied into and every name MirrorMaker's topic
selection matches; the host withholds from its client users the rights to write, create, delete
or alter them). The fence only grows until a topic's wave. The verdict "ready for cutover" needs
the target in sync by content (what a `read_committed` consumer reads), the source quiet (its log
end offsets still) and no transaction open on it. `switch-group` and `finish-migration` move
consumer groups exactly: from MirrorMaker's offset syncs, both clusters' records are matched by
content, so a moved consumer reads every record it had not read on the source and none it had.
`finish-migration topics=...` promotes a wave: its groups switch, MirrorMaker stops copying its
topics (and never copies into them again), their fence lifts, and the wave is recorded with both
clusters' end offsets. Without `topics` it promotes everything left, stops MirrorMaker and
records the finished migration. Each step is claimed on the target first: of two units
finishing at once, one goes on.

The way back: `start-failback [topics=...]` copies the records written to promoted topics since
their wave back to the source cluster, with a MirrorMaker flow of its own on every unit (the
Pebble service `mirrormaker-failback`) that starts at the end offsets the wave recorded. It
writes there as a user given for it alone (`mirrormaker-failback-credentials`; the migration's
user stays read-only), and refuses a topic no wave promoted or a source cluster written since
the wave. `migration-status` reports its lag by content and whether this cluster is quiet;
`finish-failback` then moves every group of the topics back exactly, deletes the copy back's
topics there (`mm2-*.failback.internal`, `failback.heartbeats`), and fences the topics here
for client producers; a running migration copies them again, from after the copied-back
records.

Applications keep their identity: the host passes its client users and the operator's map of
what each application was on the source (`ClientAccess`: its user there, its consumer groups and
transactional ids; `parse_client_identities` reads and checks such a map). Each switched group
then names the client users that may resume it; with `mirrormaker-sync-topic-acls` the leader
copies the ALLOW topic ACLs of each mapped source user under its client user's name (never a
DENY, `User:*` or MirrorMaker's user), records them (`copied_acls()`) and `finish-migration
cleanup=true` removes them; `migration-status format=access` lists each source user's ACLs and
quotas beside what its client user here will lack.

## Adopting it

Copy this folder, whole, to `lib/charms/kafka_k8s/v0/mirrormaker/`: its modules, its
`mm2.properties.j2` template and its `jmx_mirrormaker.yaml` rules. (It is not published on
Charmhub: the `kafka_k8s` namespace there is Canonical's charm's, so `charmcraft fetch-lib` would
look in theirs, and fetch-lib takes single files.) Add its `PYDEPS` to the charm's dependencies
(its one Kafka client is kafka-python, pure Python), and declare in `charmcraft.yaml` what it
handles. A charm with separate files puts `requires:` in `metadata.yaml`, the options under
`options:` in `config.yaml` and the actions at the top level of `actions.yaml`. `type: secret`
needs Juju 3.1 or later; on older Juju declare `mirrormaker-source-credentials` as `type: string`
(the library reads a secret ID either way). Whenever it makes a client, the library sets the
`kafka` logger (kafka-python's) to WARNING if it is lower: kafka-python logs the SASL password at
DEBUG, and ops forwards DEBUG records to `juju debug-log`. The workload container must be a Kafka
image with `/opt/kafka/bin/connect-mirror-maker.sh` and the JMX exporter agent at
`/opt/kafka/libs/jmx_prometheus_javaagent.jar` (the charmed-kafka rock); a peer relation must exist
(any name; `cluster` by default):

```yaml
requires:
  migration-source:
    interface: kafka_client
    limit: 1
    optional: true
config:
  options:
    mirrormaker-source-bootstrap-servers: {type: string, default: ""}
    mirrormaker-source-credentials: {type: secret}
    mirrormaker-topics: {type: string, default: ".*"}
    mirrormaker-topics-exclude: {type: string, default: ".*[\\-\\.]internal, .*\\.replica, __.*"}
    mirrormaker-groups: {type: string, default: ".*"}
    mirrormaker-groups-exclude: {type: string, default: "console-consumer-.*, connect-.*, __.*"}
    mirrormaker-tasks-max: {type: int, default: 6}
    mirrormaker-sync-group-offsets: {type: boolean, default: true}
    mirrormaker-sync-topic-configs: {type: boolean, default: true}
    mirrormaker-sync-topic-acls: {type: boolean, default: false}
    mirrormaker-exactly-once: {type: boolean, default: false}
    mirrormaker-refresh-interval: {type: int, default: 30}
    mirrormaker-replication-policy: {type: string, default: identity}
    mirrormaker-heap-mb: {type: int}
    mirrormaker-source-role: {type: string, default: consumer}
    mirrormaker-fence-target: {type: boolean, default: true}
    mirrormaker-throttle-mb-per-second: {type: int, default: 0}
    mirrormaker-failback-credentials: {type: secret}
actions:
  start-migration:
    params: {dry-run: {type: boolean, default: false}, force: {type: boolean, default: false}}
  stop-migration: {}
  migration-status:
    params:
      format: {type: string, enum: [json, table, access], default: json}
      topic: {type: string}
      lag-threshold: {type: integer, minimum: 0, default: 0}
      quiet-seconds: {type: integer, minimum: 1, maximum: 600, default: 10}
  switch-group:
    params: {group: {type: string}, dry-run: {type: boolean, default: false}}
    required: [group]
  finish-migration:
    params:
      topics: {type: string}
      force: {type: boolean, default: false}
      cleanup: {type: boolean, default: false}
  restart-mirrormaker:
    params: {all: {type: boolean, default: false}}
  start-failback:
    params: {topics: {type: string}, force: {type: boolean, default: false}}
  finish-failback:
    params: {force: {type: boolean, default: false}}
```

(kafka-k8s's own `charmcraft.yaml` has the same entries with their descriptions.) The host
creates a SCRAM user for MirrorMaker on its own cluster and grants it the rights MirrorMaker
needs there (kafka-k8s's `acls.mirrormaker_acls`; `MIRRORMAKER_NAMES` lists the topics, groups
and transactional ids MirrorMaker uses, which no client of the host should be granted: its
connector configs live in the `mm2-configs.*` topic), passes the library the cluster as that
user reaches it, routes its state-changing events (and `on.fence_changed`) to one reconcile,
grants its client users' ACLs without what `fenced_topics()` fences (a `FencedTopics`: topics by
name, MirrorMaker's selections, the promoted topics that are not fenced) and then, on the
leader, calls `fence_applied()` (MirrorMaker starts only once the leader has), denies
MirrorMaker's user WRITE on `promoted_topics()`, keeps `copied_acls()` in its client users'
grants, passes its client users (`clients`, optional), and shows the library's status in
collect-status. The library never sets a status itself:

```python
from charms.kafka_k8s.v0.mirrormaker import Migration, MirrorMakerWorkload, TargetCluster


class KafkaCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.migration = Migration(
            self,
            target=self._migration_target,  # None until the broker serves
            unit_host=self._host,  # the address the other units reach this one at
            container="kafka",
            peer_relation="cluster",
            workload=MirrorMakerWorkload(rest_port=8083, metrics_port=9099),
            clients=self._client_access,  # ClientAccess(identities=..., users=...)
        )
        for event in (self.on.config_changed, self.on.update_status, self.on.secret_changed,
                      self.on["migration-source"].relation_changed,
                      self.on["cluster"].relation_changed, self.on["kafka"].pebble_ready,
                      self.migration.on.fence_changed):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.collect_unit_status, self._on_collect_status)
        framework.observe(self.on.collect_app_status, self._on_collect_status)

    def _migration_target(self) -> TargetCluster | None:
        if not self.broker_ready():
            return None
        return TargetCluster(
            bootstrap_servers=self.internal_addresses(),  # ("kafka-0.kafka-endpoints:19092",)
            username="mirrormaker",
            password=self.mirrormaker_password(),
        )

    def _reconcile(self, _: ops.EventBase) -> None:
        ...  # the broker first; MirrorMaker's user may not write self.migration.promoted_topics()
        fenced = self.migration.fenced_topics()
        ...  # clients get no WRITE, CREATE, DELETE, ALTER on what `fenced` covers; then:
        if self.unit.is_leader():
            self.migration.fence_applied(fenced)
        self.migration.reconcile()

    def _on_collect_status(self, event: ops.CollectStatusEvent) -> None:
        if status := self.migration.status():
            event.add_status(status)  # before the charm's own ActiveStatus
        event.add_status(ops.ActiveStatus())
```

A MirrorMaker connector or task that fails inside a running node restarts by itself: the leader
asks Kafka Connect to restart it one minute after it failed, then 2, 4, ... up to 60 minutes,
at most 8 times a day; past that the status blocks with the error and `restart-mirrormaker`
(after fixing the cause) starts again. `MigrationConfig.throttle_mb_per_second` is the host's to
apply: kafka-k8s sets it as a `producer_byte_rate` quota on its MirrorMaker user.

While MirrorMaker runs, the status says how far the migration is ("migrating from old: 5 topics,
lag 1,204 records", "in sync with old: ready for cutover") or what is wrong (a cluster that does
not answer or refuses the login, a failed MirrorMaker task). `reconcile()` computes it with
bounded queries, once per hook however often the host calls it; `status()` only reads what it
stored. The status is this unit's: add it to the unit status, and to the app status only on
the leader if at all; add it before the charm's own `ActiveStatus`, since ops keeps the first
of equal priority.

What the host's callables must do: `target` is called on every hook, collect-status included,
so it must be cheap, without side effects or network calls, and return `None` until the broker
serves and the password (and CA) exist; it is read again on every reconcile, so a new password
or CA reaches MirrorMaker at once. Its `bootstrap_servers` is a tuple of `HOST:PORT` (a
comma-separated string is accepted too). `unit_host` is an address the other units reach and
that MirrorMaker can bind its REST listener to (`listeners=http://<unit_host>:8083`).

What the library keeps in the host's model: the unit keys `mirrormaker-request`,
`mirrormaker-state`, `mirrormaker-topics`, `mirrormaker-restarts`, `mirrormaker-failback` and
`mirrormaker-failback-state` in the peer relation's unit databags, the app key
`mirrormaker-fence-applied` (the leader's), the StoredState handle `mirrormaker-migration`, and
on the target one `mm2-cutover.*` topic per wave and per finished failback (its claim).
MirrorMaker's metrics are served on `MirrorMakerWorkload.metrics_port` (9099): add `*:9099` to
the host's scrape jobs. A failback's MirrorMaker serves its internal REST on
`failback_rest_port` (8084) and no metrics. On Kubernetes no port needs opening for the units
to reach each other.

## The public API

`__all__` is the API: `Migration` for a host charm; the cluster and option models;
`MirrorMakerWorkload` (where the container keeps Kafka, its user, MirrorMaker's ports and
heap), `MirrorMakerSettings` (everything one node's `mm2.properties` and Pebble layer are made
from) and `MirrorMakerService` (applies them to an `ops.Container`, also a real Pebble's outside
Juju); the `MigrationError` family, each error with the status that shows it; the report:
`migration_report(source, target, config)` queries both clusters as `migration-status` does,
`MigrationReport.results()` gives the action's results and `format_table(report)` prints it;
`switch_groups(source, target, config, groups)` moves groups as `switch-group` does, each
`GroupSwitch` saying what moved; `promote(source, target, config, topics)` checks and promotes a
wave as `finish-migration` does (a `Promotion` with its `Wave`; `CutoverRefusedError` when it
may not); the failback: `start_failback` checks one and sets where its copy back starts (a
`Failback`), `FailbackSettings` and `FailbackService` run the copy back on a unit,
`failback_report` judges it (a `FailbackCheck`) and `finish_failback` moves its groups back (a
`FailedBack` with its `FailbackFinish`; `FailbackRefusedError` when it may not), and
`copy_back_topics` names what the copy back makes on the source cluster; `FencedTopics` and
`TopicSelection` describe the fence; the client identities:
`ClientIdentity`, `ClientUser`, `ClientAccess`, `AclBinding` and `parse_client_identities`, and
`access_report(source, config, access, target_user=...)` with `format_access_table`, the report
`format=access` gives; and `admin_client(**config)`,
a kafka-python admin client that keeps kafka-python's loggers quiet and closes when it cannot
connect, for a host that asks its own cluster with the same client. The modules (`_options`,
`_clients`, ...) are private and may change within `LIBAPI` 0.
"""

from ._access import AccessReport, access_report, format_access_table
from ._clusters import KafkaCluster, OAuthClient, SourceCluster, TargetCluster
from ._connections import admin_client
from ._cutover import CutoverRefusedError, Promotion, promote
from ._display import format_table
from ._errors import (
    ClusterUnreachableError,
    InvalidOptionError,
    MigrationError,
    NotReadyError,
    SourceError,
    SourceGoneError,
)
from ._failback import (
    Failback,
    FailbackCheck,
    FailbackFinish,
    FailbackRefusedError,
    FailedBack,
    copy_back_topics,
    failback_report,
    finish_failback,
    start_failback,
)
from ._fence import FencedTopics, TopicSelection
from ._identities import ClientAccess, ClientIdentity, ClientUser, parse_client_identities
from ._migration import Migration
from ._names import MIRRORMAKER_NAMES, MirrorMakerNames
from ._options import FailbackSettings, MigrationConfig, MirrorMakerSettings, MirrorMakerWorkload
from ._peers import UnitState, Wave
from ._queries import migration_report
from ._report import MigrationReport
from ._rights import AclBinding
from ._service import FailbackService, MirrorMakerService
from ._switch import GroupSwitch, switch_groups

# The unique Charmhub library identifier, never change it
LIBID = "73df6b64b18841119bd7003567f919fd"

# Increment this major API version when introducing breaking changes
LIBAPI = 0

# Increment this PATCH version before using `charmcraft publish-lib` or reset
# to 0 if you are raising the major API version
LIBPATCH = 10

PYDEPS = [
    "pydantic>=2.7",
    "jinja2>=3.1",
    "data-platform-helpers>=1.1",
    "kafka-python>=3.0",
    # The codecs kafka-python needs to read compressed records (the cutover compares records
    # by content; MirrorMaker writes lz4 here, a source may use any): wheels, no system library.
    "lz4>=4.3",
    "zstandard>=0.23",
    "python-snappy>=0.7",
]


__all__ = [  # noqa: RUF022 - grouped by what each name is for
    # The host charm's object.
    "Migration",
    # The clusters, the options, and how the host's container runs MirrorMaker.
    "KafkaCluster",
    "OAuthClient",
    "SourceCluster",
    "TargetCluster",
    "MigrationConfig",
    "MirrorMakerWorkload",
    "MirrorMakerSettings",
    "MirrorMakerService",
    # What MirrorMaker uses on the target: its user's rights, and what no client may get.
    "MirrorMakerNames",
    "MIRRORMAKER_NAMES",
    # The fence: what no client may write while migrating, and MirrorMaker's topic selection.
    "FencedTopics",
    "TopicSelection",
    # What can go wrong; each error knows the status that shows it.
    "MigrationError",
    "InvalidOptionError",
    "SourceError",
    "SourceGoneError",
    "NotReadyError",
    "ClusterUnreachableError",
    "CutoverRefusedError",
    # The migration report and the group switch, outside a charm too.
    "UnitState",
    "MigrationReport",
    "migration_report",
    "format_table",
    "GroupSwitch",
    "switch_groups",
    # The cutover in waves, outside a charm too.
    "Wave",
    "Promotion",
    "promote",
    # The way back: a failback of promoted topics to the source cluster, outside a charm too.
    "Failback",
    "FailbackCheck",
    "FailbackFinish",
    "FailedBack",
    "FailbackRefusedError",
    "FailbackSettings",
    "FailbackService",
    "start_failback",
    "failback_report",
    "finish_failback",
    "copy_back_topics",
    # Applications that keep their identity: the operator's map, the host's client users, their
    # rights, and the access report.
    "ClientIdentity",
    "ClientUser",
    "ClientAccess",
    "AclBinding",
    "parse_client_identities",
    "AccessReport",
    "access_report",
    "format_access_table",
    # kafka-python's admin client as the library makes it, for the host's own queries.
    "admin_client",
]
