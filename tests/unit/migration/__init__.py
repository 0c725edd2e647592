# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.

import pytest

# `host` asserts on what the host charm shows: pytest explains its failures as a test module's.
pytest.register_assert_rewrite("tests.unit.migration.host")
