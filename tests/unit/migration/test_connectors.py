# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""MirrorMaker's connectors and tasks (`_connectors`), as Kafka Connect records them."""

from __future__ import annotations

import json

from charms.kafka_k8s.v0.mirrormaker import _connectors
from charms.kafka_k8s.v0.mirrormaker._connectors import ConnectorState
from tests.unit.helpers import TRACE


def test_connector_states_from_connects_topics():
    configs = {
        "connector-MirrorSourceConnector": b'{"secret": "never parsed"}',
        "commit-MirrorSourceConnector": b'{"tasks":2}',
        "task-MirrorSourceConnector-0": b"{}",
        "connector-MirrorCheckpointConnector": None,
        "commit-MirrorCheckpointConnector": b'{"tasks":1}',
        "session-key": b"{}",
    }
    statuses = {
        "status-connector-MirrorSourceConnector": b'{"state":"RUNNING","trace":null}',
        "status-task-MirrorSourceConnector-0": json.dumps(
            {"state": "FAILED", "trace": TRACE, "worker_id": "source->target"}
        ).encode(),
        "status-task-MirrorSourceConnector-5": b'{"state":"UNASSIGNED"}',
        "status-connector-MirrorCheckpointConnector": b'{"state":"RUNNING"}',
        "status-topic-orders:connector-MirrorSourceConnector": b'{"topic":{}}',
    }
    times = {"status-task-MirrorSourceConnector-0": 1_700_000_000.5}
    states = _connectors.connector_states(configs, statuses, times)
    assert [(s.connector, s.task, s.state) for s in states] == [
        ("MirrorSourceConnector", None, "RUNNING"),
        ("MirrorSourceConnector", 0, "FAILED"),
        ("MirrorSourceConnector", 1, "UNASSIGNED"),
    ]
    assert states[1].trace == TRACE
    assert (states[1].name, states[1].since) == ("MirrorSourceConnector-0", 1_700_000_000.5)
    assert (states[0].name, states[0].since) == ("MirrorSourceConnector", None)


def test_trace_summary_keeps_the_exception_and_its_root_cause():
    assert _connectors.trace_summary(TRACE) == (
        "ConnectException: Unrecoverable exception from producer send callback; caused by "
        "RecordTooLargeException: The message is 1500087 bytes"
    )
    assert _connectors.trace_summary(None) is None
    long = _connectors.trace_summary("java.lang.Error: " + "x" * 1000) or ""
    assert len(long) == _connectors.ERROR_CHARS


def test_connector_states_survive_bad_records():
    configs = {"connector-A": b"{}", "commit-A": b"not json"}
    statuses = {"status-connector-A": b"[1, 2]"}
    assert _connectors.connector_states(configs, statuses) == [
        ConnectorState(connector="A", state="UNASSIGNED")
    ]
