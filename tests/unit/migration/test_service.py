# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The MirrorMaker service in its container (`_service`), under ops.testing in `host.HostCharm`.

What the service does is asserted where the host's actions start and stop it
(`test_migration.py`); here what is the service's own: a file's mode put right.
"""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path

import pytest
from ops import testing

from tests.unit.migration.host import credentials, external, start, state

pytestmark = pytest.mark.usefixtures("clusters")


def test_a_wrong_mode_is_put_right_though_the_content_is_unchanged(ctx):
    secret = credentials()
    with tempfile.TemporaryDirectory() as directory:
        etc = Path(directory)
        mount = testing.Mount(location="/etc/kafka", source=etc)
        kafka = testing.Container("kafka", can_connect=True, mounts={"etc": mount})
        out = start(ctx, state(config=external(secret), secrets=(secret,), container=kafka))
        rendered = (etc / "mm2.properties").read_text()
        (etc / "mm2.properties").chmod(0o644)

        ctx.run(ctx.on.config_changed(), out)

        assert (etc / "mm2.properties").read_text() == rendered
        assert stat.S_IMODE((etc / "mm2.properties").stat().st_mode) == 0o600
