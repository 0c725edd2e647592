# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The host of the migration library under ops.testing: `HostCharm`, and what its tests share.

`HostCharm` is a minimal charm on the project's `charmcraft.yaml` that adopts the library exactly
as its module docstring shows; its admin queries go to `helpers.FakeClusters` instead of real
clusters (the test modules that run it use the `clusters` fixture). `conftest.py` makes `ctx` run
it. Here too are the state builders (`state`, `running`, `peers`, `credentials`, ...), the readers
of the state out (`properties`, `service`, `unit_request`, ...) and the action runners (`start`,
`migration_status`, `fails`) the test modules share. How kafka-k8s itself wires the library is in
`charm/test_migration.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import ops
import pytest
from ops import testing

from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import Migration, TargetCluster, _records
from tests.unit.helpers import (
    ACTIVE,
    CHARMCRAFT,
    RELATION_PASSWORD,
    FakeClusters,
    mm2_resolved,
    promoted_request,
)

META = {key: CHARMCRAFT[key] for key in ("name", "containers", "peers", "provides", "requires")}
SOURCE_PASSWORD = 'so"urce\\pass=word #1'
TARGET_PASSWORD = "target-secret-pw"
FAILBACK_PASSWORD = "fail'back pw"
SECRETS = (SOURCE_PASSWORD, TARGET_PASSWORD, RELATION_PASSWORD, FAILBACK_PASSWORD)


def host(number: int) -> str:
    return f"kafka-k8s-{number}.kafka-k8s-endpoints"


class HostCharm(ops.CharmBase):
    """The smallest host: the target and this unit's address, one reconcile, collect-status.

    Its leader says it applied the fence before the library reconciles, as a host that grants
    its clients' ACLs with it does.
    Its client users and their identities on the source are `access` (none by default).
    """

    target_ready = True
    access = mm.ClientAccess()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.migration = Migration(
            self, target=self._target, unit_host=self._host, clients=lambda: self.access
        )
        for event in (
            self.on.config_changed,
            self.on.update_status,
            self.on.secret_changed,
            self.on.kafka_pebble_ready,
            self.on.cluster_relation_changed,
            self.on["migration-source"].relation_changed,
            self.on["migration-source"].relation_broken,
            self.migration.on.fence_changed,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(self.on.collect_app_status, self._on_collect_app_status)

    def _host(self) -> str:
        return host(int(self.unit.name.split("/")[1]))

    def _target(self) -> TargetCluster | None:
        if not self.target_ready:
            return None
        return TargetCluster(
            bootstrap_servers=tuple(f"{host(n)}:19092" for n in range(3)),
            username="mirrormaker",
            password=TARGET_PASSWORD,
        )

    def _reconcile(self, _: ops.EventBase) -> None:
        if self.unit.is_leader():
            self.migration.fence_applied(self.migration.fenced_topics())
        self.migration.reconcile()

    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if status := self.migration.status():
            event.add_status(status)
        event.add_status(ops.ActiveStatus("broker"))

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        if status := self.migration.status():
            event.add_status(status)
        event.add_status(ops.ActiveStatus())


# The host's client users ------------------------------------------------------------------------

# What billing-app was on the source: user billing, group billing, transactional ids billing-tx-*.
BILLING = mm.ClientIdentity(
    application="billing-app",
    user="billing",
    groups=("billing",),
    transactional_ids=("billing-tx-*",),
)


def binding(resource: str, name: str, operation: str, **fields: str) -> mm.AclBinding:
    """An ALLOW binding of `relation-7` (or `principal`), LITERAL unless `pattern` says."""
    fields.setdefault("principal", "User:relation-7")
    return mm.AclBinding(resource=resource, name=name, operation=operation, **fields)


def billing_user(*rights: mm.AclBinding) -> mm.ClientUser:
    """billing-app's relation user, `relation-7`: group billing, its own prefix, and `rights`."""
    own = (
        binding("GROUP", "relation-7-", "READ", pattern="PREFIXED"),
        binding("GROUP", "billing", "READ"),
    )
    return mm.ClientUser(
        username="relation-7",
        application="billing-app",
        relation="kafka-client relation 7",
        rights=(*own, *rights),
    )


def billing_access(*rights: mm.AclBinding) -> mm.ClientAccess:
    """The host's client users: billing-app mapped and related as `relation-7`."""
    return mm.ClientAccess(identities=(BILLING,), users=(billing_user(*rights),))


# State builders ----------------------------------------------------------------------------------


def credentials(**content: str) -> testing.Secret:
    content = {"username": "migrator", "password": SOURCE_PASSWORD, **content}
    return testing.Secret(tracked_content={k: v for k, v in content.items() if v is not None})


def external(secret: testing.Secret | None = None, **options: object) -> dict[str, object]:
    config: dict[str, object] = {"mirrormaker-source-bootstrap-servers": "old-0:9092,old-1:9092"}
    if secret is not None:
        config["mirrormaker-source-credentials"] = secret.id
    return config | options


def request(state: str, seq: int, by: str = "kafka-k8s/1", at: int = 1000) -> str:
    return json.dumps({"state": state, "seq": seq, "at": at, "by": by})


def peers(
    *data: dict[str, str], local: dict[str, str] | None = None, app: dict[str, str] | None = None
) -> testing.PeerRelation:
    return testing.PeerRelation(
        "cluster",
        local_unit_data=local or {},
        local_app_data=app or {},
        peers_data={number: dict(d) for number, d in enumerate(data, start=1)},
    )


def running_container(*services: str, **kwargs) -> testing.Container:
    """A container in which MirrorMaker (or these services) already runs."""
    layers, statuses = {}, {}
    for name in services or ("mirrormaker",):
        layer = {
            "services": {name: {"override": "replace", "command": "mm", "startup": "enabled"}}
        }
        layers[name] = ops.pebble.Layer(layer)  # type: ignore[arg-type]
        statuses[name] = ops.pebble.ServiceStatus.ACTIVE
    return testing.Container(
        "kafka", can_connect=True, layers=layers, service_statuses=statuses, **kwargs
    )


def state(
    *,
    config: Mapping[str, object] | None = None,
    secrets: tuple[testing.Secret, ...] = (),
    relations: tuple[testing.RelationBase, ...] = (),
    cluster: testing.PeerRelation | None = None,
    container: testing.Container | None = None,
    leader: bool = True,
) -> testing.State:
    return testing.State(
        leader=leader,
        config=dict(config or {}),  # type: ignore[arg-type]
        secrets=secrets,
        relations=(cluster or peers({}, {}), *relations),
        containers={container or testing.Container("kafka", can_connect=True)},
    )


def running(**kwargs: object) -> testing.State:
    """A running migration seen from unit 0, with two peers whose MirrorMaker runs too."""
    secret = credentials()
    active = json.dumps({"service": "active", "exactly-once": "disabled"})
    cluster = peers(
        {"mirrormaker-state": active},
        {"mirrormaker-state": active},
        local={"mirrormaker-request": request("running", 1)},
    )
    return state(
        config=external(secret, **kwargs),
        secrets=(secret,),
        cluster=cluster,
        container=running_container(),
    )


# A failback -------------------------------------------------------------------------------------


def failback_credentials(**content: str) -> testing.Secret:
    """The failback user's secret: `writer`, who may write on the source cluster."""
    content = {"username": "writer", "password": FAILBACK_PASSWORD, **content}
    return testing.Secret(tracked_content={k: v for k, v in content.items() if v is not None})


def promoted(
    *,
    writer: testing.Secret | None = None,
    state_of: str = "finished",
    local: dict[str, str] | None = None,
    peer: dict[str, str] | None = None,
    container: testing.Container | None = None,
    granted: bool = True,
    options: Mapping[str, object] | None = None,
) -> testing.State:
    """Unit 0 of a migration whose wave 1 promoted `orders`; finished unless `state_of` says.

    With `writer`, `mirrormaker-failback-credentials` names it (granted unless `granted` is
    false); `local` and `peer` add to this unit's and a peer's databags; `options` to its config.
    """
    source = credentials()
    config = external(source, **(options or {}))
    secrets: tuple[testing.Secret, ...] = (source,)
    if writer is not None:
        config["mirrormaker-failback-credentials"] = writer.id
        secrets += (writer,) if granted else ()
    cluster = peers(
        {"mirrormaker-state": ACTIVE, **(peer or {})},
        local={"mirrormaker-request": promoted_request(state_of), **(local or {})},
    )
    return state(config=config, secrets=secrets, cluster=cluster, container=container)


def switchable(clusters: FakeClusters) -> None:
    """`billing` has no consumers on the source, and MirrorMaker left offset syncs."""
    clusters.members["billing"] = 0
    clusters.syncs = [
        _records.OffsetSync("orders", 0, 50, 50),
        _records.OffsetSync("orders", 1, 100, 100),
    ]


# Readers, checks and actions ---------------------------------------------------------------------


def properties(ctx: testing.Context, out: testing.State) -> dict[str, str]:
    """`mm2.properties` as MirrorMaker reads it: references resolved from the secrets file."""
    return mm2_resolved(ctx, out)


def file(ctx: testing.Context, out: testing.State, path: str) -> Path:
    return out.get_container("kafka").get_filesystem(ctx) / path.lstrip("/")


def service(out: testing.State, name: str = "mirrormaker") -> ops.pebble.ServiceStatus | None:
    return out.get_container("kafka").service_statuses.get(name)


def unit_request(out: testing.State) -> dict[str, object]:
    return json.loads(out.get_relations("cluster")[0].local_unit_data["mirrormaker-request"])


def unit_state(out: testing.State) -> dict[str, object]:
    return json.loads(out.get_relations("cluster")[0].local_unit_data["mirrormaker-state"])


def assert_no_secret_leaked(ctx: testing.Context, out: testing.State) -> None:
    shown = [out.unit_status.message, json.dumps(ctx.action_results or {})]
    shown += [log.message for log in ctx.juju_log]
    for secret in SECRETS:
        assert not [text for text in shown if secret in text]


def start(ctx: testing.Context, before: testing.State, **params: object) -> testing.State:
    return ctx.run(ctx.on.action("start-migration", params=params), before)


# An action result key: lowercase words and digits joined by hyphens.
RESULT_KEY = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def result_keys(results: Mapping[str, object]) -> set[str]:
    """Every key of nested action results."""
    keys = set(results)
    for value in results.values():
        if isinstance(value, Mapping):
            keys |= result_keys(value)
    return keys


def migration_status(ctx: testing.Context, before: testing.State, **params: object):
    out = ctx.run(ctx.on.action("migration-status", params=params), before)
    results = ctx.action_results or {}
    assert result_keys(results) <= {key for key in result_keys(results) if RESULT_KEY.match(key)}
    return out, results


def fails(ctx: testing.Context, before: testing.State, action: str, **params: object) -> str:
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action(action, params=params), before)
    return failed.value.message
