# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""No password in any log at any level, with the charm's status and migration code at DEBUG.

In Juju, ops sets the root logger to DEBUG and forwards every record to `juju debug-log`. Here
the root logger is at DEBUG too, and every record of every logger is captured, whatever filter
or level a library sets for its own loggers. The charm runs its broker, kafka-client, status
and migration paths under ops.testing, with the library's cluster client faked where it would
reach the network; then one real kafka-python client of the library tries a closed loopback
port with a password. Each password used is then searched for in every captured record and in
what ops.testing forwarded to the Juju log.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import socket
from collections.abc import Iterator

import pytest
from ops import testing

from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import _clients
from tests.unit.helpers import (
    PASSWORDS,
    RELATION_PASSWORD,
    SERVING_SOURCE_PASSWORD,
    serving,
    source_relation,
)

# The library's real cluster client: the `clusters` fixture replaces it inside the tests.
REAL_CLUSTER_CLIENT = _clients.ClusterClient
CLOSED_PORT_PASSWORD = "closed-port-pw-4711"


@pytest.fixture
def debug(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of every logger, the root at DEBUG as ops sets it in Juju."""
    caplog.set_level(logging.DEBUG)
    yield caplog


def open_sockets() -> set[socket.socket]:
    return {
        obj for obj in gc.get_objects() if isinstance(obj, socket.socket) and obj.fileno() >= 0
    }


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def logged(records: list[logging.LogRecord], ctx: testing.Context) -> list[str]:
    """Every captured record, formatted with its arguments and traceback, and the Juju log."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts = [formatter.format(record) for record in records]
    texts += [repr(record.args) for record in records]
    return texts + [line.message for line in ctx.juju_log]


@pytest.mark.usefixtures("clusters")
def test_no_password_in_any_log_at_debug(ctx, debug):
    state, _ = serving(ctx)
    client = testing.Relation(
        "kafka-client",
        remote_app_name="orders-app",
        remote_app_data={"topic": "orders", "extra-user-roles": "producer,consumer"},
    )
    state = dataclasses.replace(state, relations={*state.relations, client})
    state = ctx.run(ctx.on.relation_changed(client, remote_unit=0), state)
    state = ctx.run(ctx.on.action("start-migration", params={"dry-run": True}), state)
    state = ctx.run(ctx.on.action("start-migration"), state)
    state = ctx.run(ctx.on.update_status(), state)
    for params in ({}, {"format": "table"}, {"topic": "orders"}):
        state = ctx.run(ctx.on.action("migration-status", params=params), state)
    [internal] = [s for s in state.secrets if s.label == "internal-credentials"]
    state = ctx.run(ctx.on.secret_rotate(internal), state)
    state = ctx.run(ctx.on.action("stop-migration"), state)

    relation, relation_secrets = source_relation()
    related = dataclasses.replace(
        state,
        config={},
        relations={*state.relations, relation},
        secrets={*state.secrets, *relation_secrets},
    )
    related = ctx.run(ctx.on.action("start-migration"), related)
    ctx.run(ctx.on.update_status(), related)

    unreachable = mm.SourceCluster(
        name="closed",
        bootstrap_servers=(f"127.0.0.1:{closed_port()}",),
        username="migrator",
        password=CLOSED_PORT_PASSWORD,
    )
    before = open_sockets()
    with pytest.raises(mm.ClusterUnreachableError):
        REAL_CLUSTER_CLIENT(unreachable, "source", timeout=1.0).committed_offsets(["g"], ["t"])
    # kafka-python 3.0 keeps the sockets of refused connections open in its finished
    # coroutines: close them, or their ResourceWarning fails a later test.
    for leaked in open_sockets() - before:
        leaked.close()

    rotated = dict(state.get_secret(id=internal.id).latest_content)
    client_secret = state.get_relation(client.id).local_app_data["secret-user"]
    passwords = {
        *PASSWORDS.values(),
        *rotated.values(),
        SERVING_SOURCE_PASSWORD,
        RELATION_PASSWORD,
        CLOSED_PORT_PASSWORD,
        state.get_secret(id=client_secret).latest_content["password"],
    }
    records = debug.records
    texts = logged(records, ctx)
    assert len(texts) > 100  # the paths above did log, at DEBUG too
    assert any(record.levelno == logging.DEBUG for record in records)
    leaks = sorted({p for p in passwords for text in texts if p in text})
    assert leaks == []
