# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Deploy kafka-k8s and a source Kafka, relate them, migrate, and check data and offsets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml
from pytest_operator.plugin import OpsTest

logger = logging.getLogger(__name__)

METADATA = yaml.safe_load(Path("charmcraft.yaml").read_text())
APP = METADATA["name"]
SOURCE = "old-kafka"
CLIENT = "data-integrator"
IMAGE = METADATA["resources"]["kafka-image"]["upstream-source"]


@pytest.mark.abort_on_fail
async def test_deploy_source_and_target(ops_test: OpsTest) -> None:
    """Three units of kafka-k8s and a one-unit source cluster settle active."""
    assert ops_test.model is not None
    charm = await ops_test.build_charm(".")
    await ops_test.model.deploy(
        charm, application_name=APP, num_units=3, resources={"kafka-image": IMAGE}, trust=True
    )
    await ops_test.model.deploy(
        charm, application_name=SOURCE, num_units=1, resources={"kafka-image": IMAGE}, trust=True
    )
    await ops_test.model.wait_for_idle(apps=[APP, SOURCE], status="active", timeout=1800)


async def test_load_source(ops_test: OpsTest) -> None:
    """A client related to the source writes records the migration will copy."""
    assert ops_test.model is not None
    await ops_test.model.deploy(
        CLIENT,
        channel="latest/edge",
        config={"topic-name": "orders", "extra-user-roles": "admin"},
    )
    await ops_test.model.integrate(f"{SOURCE}:kafka-client", CLIENT)
    await ops_test.model.wait_for_idle(apps=[SOURCE, CLIENT], status="active", timeout=900)
    unit = ops_test.model.applications[SOURCE].units[0]
    command = (
        "/opt/kafka/bin/kafka-producer-perf-test.sh --topic orders --num-records 10000 "
        "--record-size 100 --throughput -1 --producer.config /etc/kafka/client.properties "
        f"--producer-props bootstrap.servers={unit.name.replace('/', '-')}"
        f".{SOURCE}-endpoints:19092"
    )
    return_code, _, stderr = await ops_test.juju("ssh", "--container", "kafka", unit.name, command)
    assert return_code == 0, stderr


async def test_migrate(ops_test: OpsTest) -> None:
    """Relate, start the migration, and see every record and the group offsets arrive."""
    assert ops_test.model is not None
    await ops_test.model.integrate(f"{APP}:migration-source", f"{SOURCE}:kafka-client")
    await ops_test.model.wait_for_idle(apps=[APP, SOURCE], status="active", timeout=900)
    leader = ops_test.model.applications[APP].units[0]
    for unit in ops_test.model.applications[APP].units:
        if await unit.is_leader_from_status():
            leader = unit
    action = await leader.run_action("start-migration")
    result = await action.wait()
    assert result.status == "completed", result.results

    async def status() -> dict:
        return (await (await leader.run_action("migration-status")).wait()).results

    for _ in range(60):
        if (await status()).get("ready-for-cutover") == "true":
            break
        await ops_test.model.block_until(lambda: False, timeout=10, wait_period=10)
    results = await status()
    assert results["ready-for-cutover"] == "true", results.get("reasons")
    assert int(results["lag"]) == 0
    topics = {topic["topic"]: topic for topic in json.loads(results["topics"])}
    assert topics["orders"]["target-records"] == 10000


async def test_stop_migration(ops_test: OpsTest) -> None:
    """stop-migration leaves no MirrorMaker service running on any unit."""
    assert ops_test.model is not None
    unit = ops_test.model.applications[APP].units[0]
    result = await (await unit.run_action("stop-migration")).wait()
    assert result.status == "completed", result.results
    for unit in ops_test.model.applications[APP].units:
        return_code, stdout, _ = await ops_test.juju(
            "ssh", "--container", "kafka", unit.name, "pebble services mirrormaker"
        )
        assert return_code == 0
        assert "active" not in stdout.split("\n", 1)[-1]
