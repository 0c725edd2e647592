# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Peer state: the operator's requests and each unit's MirrorMaker, in the peer relation.

A request made on any unit goes into that unit's databag; every unit follows the newest one it
sees (`newest_request`) and copies it into its own databag, so it outlives its author.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Literal

import ops
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from ._errors import NotReadyError
from ._options import ExactlyOnceSupport
from ._text import plural

REQUEST_KEY = "mirrormaker-request"
STATE_KEY = "mirrormaker-state"
TOPICS_KEY = "mirrormaker-topics"
RequestedState = Literal["running", "stopped", "finished"]


class FinishedMigration(BaseModel):
    """What `finish-migration` recorded: when, from which source, what moved."""

    model_config = ConfigDict(frozen=True)

    at: str
    source: str
    topics: list[str] = Field(default_factory=list)
    records: int = 0
    groups: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        """One line about the finished migration."""
        return (
            f"the migration from {self.source} was finished at {self.at}: "
            f"{plural(len(self.topics), 'topic')}, {plural(self.records, 'record')}, "
            f"{plural(len(self.groups), 'group')} switched"
        )


class MigrationRequest(BaseModel):
    """What an operator last asked for, as a unit recorded it in its peer databag.

    Requests are ordered by `seq` (one more than the newest the acting unit had seen), then by
    time and unit name, so every unit picks the same newest request. A `finished` request
    carries what `finish-migration` recorded.
    """

    model_config = ConfigDict(frozen=True)

    state: RequestedState = "stopped"
    seq: int = 0
    at: int = 0
    by: str = ""
    # Set when a unit stopped the migration itself because its source went away.
    reason: str = ""
    finished: FinishedMigration | None = None
    # The largest record MirrorMaker's producer must send (`max.request.size`), as the
    # preflight of a real start found it; 0: the producer's default.
    record_bytes: int = Field(default=0, ge=0)

    @property
    def fences(self) -> bool:
        """Whether this request fences the migrated topics: a migration not finished."""
        return self.seq > 0 and self.state != "finished"

    def order(self) -> tuple[int, int, str]:
        """The sort key: newest last."""
        return (self.seq, self.at, self.by)

    def raw(self) -> str:
        """The request as a unit records it in its databag."""
        unset = {key for key in ("reason", "record_bytes") if not getattr(self, key)}
        return self.model_dump_json(exclude_none=True, exclude=unset or None)


class UnitState(BaseModel):
    """What a unit publishes about its MirrorMaker node."""

    model_config = ConfigDict(frozen=True)

    service: str = "absent"
    exactly_once: ExactlyOnceSupport = Field(
        default="disabled",
        validation_alias=AliasChoices("exactly-once", "exactly_once"),
        serialization_alias="exactly-once",
    )


def newest_request(requests: Iterable[MigrationRequest]) -> MigrationRequest:
    """The request every unit follows: the newest one, or `stopped` when there is none."""
    return max(requests, key=MigrationRequest.order, default=MigrationRequest())


def exactly_once_for(wanted: bool, peers: Iterable[UnitState]) -> ExactlyOnceSupport:
    """The exactly-once support this node may run with.

    An existing MirrorMaker cluster must go through `preparing` on every node before any node
    runs `enabled` (KIP-618): while a peer still runs with it disabled, this node prepares.
    """
    if not wanted:
        return "disabled"
    if any(p.service == "active" and p.exactly_once == "disabled" for p in peers):
        return "preparing"
    return "enabled"


class PeerData:
    """The migration's keys in the host's peer relation, as this unit reads and writes them.

    Every unit writes its own databag only: the newest request it follows (`REQUEST_KEY`), the
    state of its MirrorMaker node (`STATE_KEY`) and the target topics it last saw the migration
    select (`TOPICS_KEY`); it reads every unit's. Data a unit cannot parse is skipped.
    """

    def __init__(self, model: ops.Model, relation_name: str):
        self.model = model
        self.relation_name = relation_name

    @property
    def relation(self) -> ops.Relation | None:
        """The peer relation, or None before Juju created it."""
        return self.model.get_relation(self.relation_name)

    def units(self) -> int:
        """How many units the host has, this one included."""
        relation = self.relation
        return 1 + (len(relation.units) if relation is not None else 0)

    def _unit_data(self, key: str) -> dict[ops.Unit, str]:
        relation = self.relation
        if relation is None:
            return {}
        units = [self.model.unit, *relation.units]
        return {unit: value for unit in units if (value := relation.data[unit].get(key))}

    def write(self, key: str, raw: str) -> None:
        """Set `key` in this unit's databag, unless it holds `raw` already (or no relation is)."""
        relation = self.relation
        if relation is not None and relation.data[self.model.unit].get(key) != raw:
            relation.data[self.model.unit][key] = raw

    def unit_values(self, key: str) -> dict[ops.Unit, str]:
        """Each unit's value of `key` in its own databag, where it is set."""
        return self._unit_data(key)

    def requests(self) -> list[MigrationRequest]:
        """The request every unit recorded."""
        requests = []
        for raw in self._unit_data(REQUEST_KEY).values():
            try:
                requests.append(MigrationRequest.model_validate_json(raw))
            except ValidationError:
                continue
        return requests

    def newest(self) -> MigrationRequest:
        """The request every unit follows."""
        return newest_request(self.requests())

    def finished(self) -> FinishedMigration | None:
        """What the finished migration recorded, if the newest request finished it."""
        newest = self.newest()
        if newest.state != "finished":
            return None
        return newest.finished or FinishedMigration(at="an unknown time", source="the source")

    def unit_states(self) -> dict[ops.Unit, UnitState]:
        """What each unit published about its MirrorMaker node."""
        states = {}
        for unit, raw in self._unit_data(STATE_KEY).items():
            try:
                states[unit] = UnitState.model_validate_json(raw)
            except ValidationError:
                continue
        return states

    def live_unit_states(self, service: str | None) -> dict[str, UnitState]:
        """Every unit's published state by unit name; this unit's `service` state if known.

        A peer that has published nothing yet is `absent`.
        """
        relation = self.relation
        states = self.unit_states()
        peers = relation.units if relation is not None else set()
        live = {unit: states.get(unit, UnitState()) for unit in (self.model.unit, *peers)}
        if service is not None:
            this = self.model.unit
            live[this] = UnitState(service=service, exactly_once=live[this].exactly_once)
        return {unit.name: state for unit, state in sorted(live.items(), key=lambda i: i[0].name)}

    def migrated_topics(self) -> list[str]:
        """The target topics any unit last saw the migration select."""
        names: set[str] = set()
        for raw in self._unit_data(TOPICS_KEY).values():
            try:
                listed = json.loads(raw)
            except ValueError:
                continue
            if isinstance(listed, list):
                names.update(name for name in listed if isinstance(name, str))
        return sorted(names)

    def publish_topics(self, names: Iterable[str]) -> None:
        """Publish the target topics this unit saw the migration select (the fence's list)."""
        self.write(TOPICS_KEY, json.dumps(sorted(set(names))))

    def publish_state(self, service: str, mode: ExactlyOnceSupport | None) -> None:
        """Publish this unit's MirrorMaker state; its exactly-once mode stays if `mode` is None."""
        previous = self.unit_states().get(self.model.unit, UnitState())
        state = UnitState(service=service, exactly_once=mode or previous.exactly_once)
        self.write(STATE_KEY, state.model_dump_json(by_alias=True))

    def follow_newest(self) -> MigrationRequest:
        """The newest request, copied into this unit's databag so it outlives its author."""
        request = self.newest()
        if request.seq > 0:
            self.write(REQUEST_KEY, request.raw())
        return request

    def record(
        self,
        state: RequestedState,
        reason: str = "",
        finished: FinishedMigration | None = None,
        record_bytes: int = 0,
    ) -> bool:
        """Record a request in this unit's databag, unless it is already what all follow.

        A stop the units made themselves (`reason`) is replaced by the operator's own stop; a
        running migration whose preflight found larger records is recorded again with them.

        Returns:
            Whether a new request was recorded.

        Raises:
            NotReadyError: while the peer relation does not exist yet.
        """
        relation = self.relation
        if relation is None:
            raise NotReadyError("the peer relation is not there yet: retry in a minute")
        newest = self.newest()
        same = newest.reason == reason and newest.record_bytes >= record_bytes
        if newest.state == state and newest.seq > 0 and same:
            return False
        request = MigrationRequest(
            state=state,
            seq=newest.seq + 1,
            at=time.time_ns(),
            by=self.model.unit.name,
            reason=reason,
            finished=finished,
            record_bytes=max(record_bytes, newest.record_bytes if state == "running" else 0),
        )
        relation.data[self.model.unit][REQUEST_KEY] = request.raw()
        return True
