# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The charm's admin client (`admin.KafkaAdmin`) against a closed loopback port."""

from __future__ import annotations

import pytest

from admin import AdminError, KafkaAdmin
from tests.unit.helpers import closed_port


def test_admin_requests_that_fail_say_what_they_were_for():
    with KafkaAdmin(closed_port(), "admin", "pw", timeout=1) as admin:
        with pytest.raises(AdminError) as raised:
            admin.acls_of("relation-1")
    assert str(raised.value).startswith("describing the ACLs of relation-1: KafkaTimeoutError")
