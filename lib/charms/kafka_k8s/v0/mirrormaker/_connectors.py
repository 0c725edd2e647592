# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""MirrorMaker's connectors and tasks, as Kafka Connect records them on the target."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ._text import clip

# How long a failed connector's or task's error may be, in statuses and results.
ERROR_CHARS = 240


class ConnectorState(BaseModel):
    """What Kafka Connect last recorded for one MirrorMaker connector (`task` None) or task.

    `since` is when Connect recorded that state (its status record's timestamp, in seconds since
    the epoch), None when it recorded none yet.
    """

    model_config = ConfigDict(frozen=True)

    connector: str
    task: int | None = None
    state: str
    trace: str | None = Field(default=None, repr=False)
    since: float | None = None

    @property
    def name(self) -> str:
        """How Connect names it: the connector, or `CONNECTOR-TASK`."""
        return self.connector if self.task is None else f"{self.connector}-{self.task}"

    @property
    def error(self) -> str | None:
        """Its error trace as one line (`trace_summary`), None without one."""
        return trace_summary(self.trace)


def _short_exception(line: str) -> str:
    """`a.b.SomeException: message` as `SomeException: message`."""
    name, colon, message = line.partition(":")
    return name.rsplit(".", 1)[-1] + colon + message


def trace_summary(trace: str | None) -> str | None:
    """A Java stack trace as one line: the exception and its root cause, without packages."""
    if not trace:
        return None
    lines = [line.strip() for line in trace.strip().splitlines() if line.strip()]
    summary = _short_exception(lines[0])
    causes = [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by:")]
    if causes:
        summary += f"; caused by {_short_exception(causes[-1])}"
    return clip(summary, ERROR_CHARS)


def _json_object(value: bytes | None) -> dict[str, Any]:
    try:
        parsed = json.loads(value) if value else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def connector_states(
    configs: Mapping[str, bytes | None],
    statuses: Mapping[str, bytes | None],
    times: Mapping[str, float] | None = None,
) -> list[ConnectorState]:
    """Each live connector and each of its current tasks, from Connect's config and status topics.

    Args:
        configs: the latest value of each key of the config topic; only the `connector-NAME`
            and `commit-NAME` (`{"tasks": N}`) records are read, never a connector's settings.
        statuses: the latest value of each key of the status topic (`status-connector-NAME`,
            `status-task-NAME-N`: `{"state": ..., "trace": ...}`).
        times: when each record of the status topic was written, in seconds since the epoch.

    A current task without a status record yet is `UNASSIGNED`, as Connect reports it.
    """
    states = []
    for key in sorted(configs):
        if not key.startswith("connector-") or configs[key] is None:
            continue
        connector = key.removeprefix("connector-")
        tasks = _json_object(configs.get(f"commit-{connector}")).get("tasks", 0)
        numbers = range(int(tasks) if isinstance(tasks, int) else 0)
        for task, status in [
            (None, f"status-connector-{connector}"),
            *((n, f"status-task-{connector}-{n}") for n in numbers),
        ]:
            recorded = _json_object(statuses.get(status))
            states.append(
                ConnectorState(
                    connector=connector,
                    task=task,
                    state=str(recorded.get("state", "UNASSIGNED")),
                    trace=recorded.get("trace"),
                    since=(times or {}).get(status) if recorded else None,
                )
            )
    return states
