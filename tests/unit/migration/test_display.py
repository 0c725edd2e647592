# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The report's text (`_display`): the action's results and the table `format_table` prints."""

from __future__ import annotations

import json

from charms.kafka_k8s.v0 import mirrormaker as mm
from charms.kafka_k8s.v0.mirrormaker import _display
from tests.unit.helpers import offsets, report


def test_results_for_one_topic_carry_its_partitions():
    result = report(topic="orders", target_topics={"orders": offsets(100, 150)})
    results = _display.report_results(result)
    assert [p["lag"] for p in json.loads(results["partitions"])] == [0, 50]
    assert "partitions" not in _display.report_results(report())


def test_table_has_a_section_for_each_part():
    table = mm.format_table(report(topic="orders"))
    lines = table.splitlines()
    assert lines[:2] == ["in sync with old: ready for cutover", "ready for cutover: yes"]
    for header in ("TOPIC", "PARTITION ", "GROUP", "UNIT", "CONNECTOR/TASK"):
        assert any(line.startswith(header) for line in lines), header


def test_table_numbers_have_thousands_separators():
    big = {"orders": offsets(1_000_000, 2_000_000)}
    table = mm.format_table(report(source_topics=big, target_topics=big, source_groups=[]))
    assert "3,000,000" in table
