# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""MirrorMaker's connectors and tasks, as Kafka Connect records them on the target."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ConnectorState(BaseModel):
    """What Kafka Connect last recorded for one MirrorMaker connector (`task` None) or task."""

    model_config = ConfigDict(frozen=True)

    connector: str
    task: int | None = None
    state: str
    trace: str | None = Field(default=None, repr=False)


def _json_object(value: bytes | None) -> dict[str, Any]:
    try:
        parsed = json.loads(value) if value else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def connector_states(
    configs: Mapping[str, bytes | None], statuses: Mapping[str, bytes | None]
) -> list[ConnectorState]:
    """Each live connector and each of its current tasks, from Connect's config and status topics.

    Args:
        configs: the latest value of each key of the config topic; only the `connector-NAME`
            and `commit-NAME` (`{"tasks": N}`) records are read, never a connector's settings.
        statuses: the latest value of each key of the status topic (`status-connector-NAME`,
            `status-task-NAME-N`: `{"state": ..., "trace": ...}`).

    A current task without a status record yet is `UNASSIGNED`, as Connect reports it.
    """
    states = []
    for key in sorted(configs):
        if not key.startswith("connector-") or configs[key] is None:
            continue
        connector = key.removeprefix("connector-")
        recorded = _json_object(statuses.get(f"status-connector-{connector}"))
        states.append(
            ConnectorState(
                connector=connector,
                state=str(recorded.get("state", "UNASSIGNED")),
                trace=recorded.get("trace"),
            )
        )
        tasks = _json_object(configs.get(f"commit-{connector}")).get("tasks", 0)
        for task in range(int(tasks) if isinstance(tasks, int) else 0):
            recorded = _json_object(statuses.get(f"status-task-{connector}-{task}"))
            states.append(
                ConnectorState(
                    connector=connector,
                    task=task,
                    state=str(recorded.get("state", "UNASSIGNED")),
                    trace=recorded.get("trace"),
                )
            )
    return states
