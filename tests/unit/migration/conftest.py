# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Fixtures of the migration library's tests: the context of the host charm, `host.HostCharm`.

Here `ctx` runs `HostCharm` on the project's `charmcraft.yaml` instead of kafka-k8s (the `ctx`
of `tests/unit/conftest.py`); the modules that run it also use the `clusters` fixture.
"""

from __future__ import annotations

import pytest
from ops import testing

from tests.unit.helpers import CHARMCRAFT
from tests.unit.migration.host import META, HostCharm


@pytest.fixture(autouse=True)
def target_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HostCharm, "target_ready", True)


@pytest.fixture
def ctx() -> testing.Context[HostCharm]:
    return testing.Context(
        HostCharm, meta=META, actions=CHARMCRAFT["actions"], config=CHARMCRAFT["config"]
    )
