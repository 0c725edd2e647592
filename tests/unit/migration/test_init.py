# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The library as a package (`__init__.py`): its header, its dependencies, what it imports."""

from __future__ import annotations

import re

from charms.kafka_k8s.v0 import mirrormaker as mm
from tests.unit.helpers import REPO


def test_library_header():
    package = REPO / "lib/charms/kafka_k8s/v0/mirrormaker"
    source = "\n".join(module.read_text() for module in sorted(package.glob("*.py")))
    assert re.fullmatch(r"[0-9a-f]{32}", mm.LIBID)
    assert (mm.LIBAPI, mm.LIBPATCH) == (0, 10)
    # One Kafka client library, pure Python: an adopting charm installs nothing else for Kafka.
    assert {dep.split(">")[0] for dep in mm.PYDEPS} == {
        "pydantic",
        "jinja2",
        "data-platform-helpers",
        "kafka-python",
        "lz4",
        "zstandard",
        "python-snappy",
    }
    assert not re.search(r"^(from|import) confluent_kafka\b", source, re.M)
    assert "from src" not in source
    assert not re.search(r"^(from|import) (workload|config|charm|cluster|admin)\b", source, re.M)
