# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Fixtures of the unit tests: the charm's context, a pretend Kafka and pretend clusters.

The fakes themselves are in `helpers.py`; `etc` is the container's `/etc/kafka`, kept between
runs. The migration library's tests run their own host charm (`migration/conftest.py`).
"""

from __future__ import annotations

import pathlib
import tempfile

import pytest
from charmlibs.rollingops._peer._worker import PeerRollingOpsAsyncWorker
from ops import testing

import charm
import client_provider
import refresh
from charm import KafkaK8sCharm
from charms.kafka_k8s.v0.mirrormaker import _capacity, _clients, _queries, _records
from tests.unit.helpers import FakeClusters, FakeKafka, FakeRefresh


@pytest.fixture(autouse=True)
def kafka(monkeypatch: pytest.MonkeyPatch) -> FakeKafka:
    fake = FakeKafka()
    monkeypatch.setattr(charm, "KafkaAdmin", fake.connect)
    monkeypatch.setattr(client_provider, "KafkaAdmin", fake.connect)
    return fake


@pytest.fixture(autouse=True)
def refreshing(monkeypatch: pytest.MonkeyPatch) -> FakeRefresh:
    """charm-refresh's object, faked: no refresh under way unless a test says so."""
    fake = FakeRefresh()
    monkeypatch.setattr(refresh, "open_refresh", lambda *_: refresh.Refresh(fake))  # type: ignore[arg-type]
    return fake


@pytest.fixture(autouse=True)
def no_sync_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rolling-restart turn looks at the (fake) cluster without pausing between looks."""
    monkeypatch.setattr("rolling.SYNC_INTERVAL", 0)


@pytest.fixture(autouse=True)
def lock_worker(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The rolling-ops worker a leader starts when it grants itself the lock, faked.

    The real one is a background Python from the charm's venv that dispatches the
    lock-granted hook through `juju-exec` ten seconds later; tests emit that hook themselves.
    """
    started: list[str] = []
    monkeypatch.setattr(
        PeerRollingOpsAsyncWorker, "start", lambda worker: started.append(worker.model.unit.name)
    )
    return started


@pytest.fixture
def clusters(monkeypatch: pytest.MonkeyPatch) -> FakeClusters:
    """The migration library's admin queries, answered by `FakeClusters`.

    Modules that run the library in a charm use it for every test, with
    `pytestmark = pytest.mark.usefixtures("clusters")`; the report's tests call the real
    `ClusterClient`, so it is not autouse.
    """
    fake = FakeClusters()
    monkeypatch.setattr(_clients, "ClusterClient", fake)
    monkeypatch.setattr(_capacity, "CapacityClient", fake)
    monkeypatch.setattr(_records, "LogClient", fake.logs)
    monkeypatch.setattr(_queries, "_pause", fake.pause)
    monkeypatch.setattr(_queries, "now", fake.now)
    return fake


@pytest.fixture
def ctx() -> testing.Context[KafkaK8sCharm]:
    return testing.Context(KafkaK8sCharm)


@pytest.fixture
def etc():
    """/etc/kafka of the container, kept between runs as the pod's filesystem is."""
    with tempfile.TemporaryDirectory() as directory:
        yield pathlib.Path(directory)
