# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Integration tests need a Juju controller on MicroK8s; without one they skip, saying why."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def _controller_unreachable() -> str | None:
    """Why no Juju controller can be used here, or `None` when one answers."""
    juju = shutil.which("juju")
    if juju is None:
        return "no `juju` command on this machine"
    try:
        subprocess.run(
            [juju, "show-controller", "--format", "json"],
            check=True,
            capture_output=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return "the Juju controller did not answer within 20 s"
    except subprocess.CalledProcessError as error:
        reason = (error.stderr or b"").decode(errors="replace").strip().splitlines()
        return f"no reachable Juju controller: {reason[-1] if reason else 'juju failed'}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every integration test, with the reason, when no controller is reachable."""
    reason = _controller_unreachable()
    if reason is None:
        return
    print(f"\nintegration tests skipped: {reason}")
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        item.add_marker(skip)
