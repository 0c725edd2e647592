# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""No password of a Kafka client reaches a log, whatever the log level.

kafka-python logs its whole configuration, the SASL password with it, and every request at
DEBUG; ops forwards DEBUG records to `juju debug-log`. The charm's admin client and the
migration library's clients keep kafka-python's loggers at WARNING.
"""

from __future__ import annotations

import logging
import socket
import time

import pytest

from admin import AdminError, KafkaAdmin
from charms.kafka_k8s.v0 import mirrormaker as mm

PASSWORD = "pw-never-logged-4711"


def closed_port() -> str:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{closed.getsockname()[1]}"


def test_no_password_in_any_log_at_debug(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="kafka")
    caplog.set_level(logging.DEBUG, logger="kafka.admin.client")
    address = closed_port()
    source = mm.SourceCluster(
        name="old", bootstrap_servers=(address,), username="u", password=PASSWORD
    )
    target = mm.TargetCluster(bootstrap_servers=(address,), username="u", password=PASSWORD)
    began = time.monotonic()
    report = mm.migration_report(source, target, timeout=1)
    assert [problem.role for problem in report.problems] == ["source", "target"]
    with KafkaAdmin(address, "admin", PASSWORD, timeout=1) as admin:
        with pytest.raises(AdminError, match="setting the credentials of relation-1"):
            admin.upsert_user("relation-1", PASSWORD)
        with pytest.raises(AdminError, match="listing users"):
            admin.list_users()
    assert time.monotonic() - began < 30
    # kafka-python's records of the failed connections are there: the capture is not empty.
    kafka_records = [record for record in caplog.records if record.name.startswith("kafka.")]
    assert any("ECONNREFUSED" in record.getMessage() for record in kafka_records)
    assert all(record.levelno >= logging.WARNING for record in kafka_records)
    assert PASSWORD not in caplog.text
    assert not [record for record in caplog.records if PASSWORD in record.getMessage()]


def test_admin_requests_that_fail_say_what_they_were_for():
    with KafkaAdmin(closed_port(), "admin", "pw", timeout=1) as admin:
        with pytest.raises(AdminError) as raised:
            admin.acls_of("relation-1")
    assert str(raised.value).startswith("describing the ACLs of relation-1: KafkaTimeoutError")
