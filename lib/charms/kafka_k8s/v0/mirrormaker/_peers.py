# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Peer state: the operator's requests and each unit's MirrorMaker, in the peer relation.

A request made on any unit goes into that unit's databag; every unit follows the newest one it
sees (`newest_request`) and copies it into its own databag, so it outlives its author. A
request carries the migration it belongs to and the waves promoted in it so far.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from typing import Literal

import ops
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from ._errors import NotReadyError
from ._options import ExactlyOnceSupport
from ._text import list_names, plural

REQUEST_KEY = "mirrormaker-request"
STATE_KEY = "mirrormaker-state"
RequestedState = Literal["running", "stopped", "finished"]


class Wave(BaseModel):
    """What a wave of `finish-migration topics=...` recorded: its topics left the migration.

    The end offsets are each partition's, by topic, on both clusters when the wave was promoted:
    MirrorMaker had copied every record before them, and nothing after them on the target is
    a copy. The way back starts there. A topic failed back since (`finish-failback`) leaves
    `topics` for `failed_back`: it is migrated again, and a later wave may promote it anew.
    """

    model_config = ConfigDict(frozen=True)

    number: int
    at: str
    by: str
    topics: list[str]
    target_topics: list[str] = Field(default_factory=list)
    records: int = 0
    groups: list[str] = Field(default_factory=list)
    left: list[str] = Field(default_factory=list)
    source_end_offsets: dict[str, list[int]] = Field(default_factory=dict)
    target_end_offsets: dict[str, list[int]] = Field(default_factory=dict)
    failed_back: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        """One line about the wave."""
        by = f", by {self.by}" if self.by else ""
        back = f"; failed back since: {list_names(self.failed_back)}" if self.failed_back else ""
        return (
            f"wave {self.number} ({self.at}{by}): {list_names(self.topics) or 'no topic left'}; "
            f"{plural(self.records, 'record')}, {plural(len(self.groups), 'group')} switched{back}"
        )

    def without(self, topics: Collection[str]) -> Wave:
        """The wave once these of its topics failed back (its target names are its topics')."""
        gone = sorted(set(self.topics) & set(topics))
        if not gone:
            return self
        return self.model_copy(
            update={
                "topics": [t for t in self.topics if t not in gone],
                "target_topics": [t for t in self.target_topics if t not in gone],
                "failed_back": sorted({*self.failed_back, *gone}),
            }
        )


class FinishedMigration(BaseModel):
    """What `finish-migration` recorded: when, from which source, what moved."""

    model_config = ConfigDict(frozen=True)

    at: str
    source: str
    topics: list[str] = Field(default_factory=list)
    records: int = 0
    groups: list[str] = Field(default_factory=list)
    waves: int = 1

    def summary(self) -> str:
        """One line about the finished migration."""
        waves = f" in {self.waves} waves" if self.waves > 1 else ""
        return (
            f"the migration from {self.source} was finished at {self.at}{waves}: "
            f"{plural(len(self.topics), 'topic')}, {plural(self.records, 'record')}, "
            f"{plural(len(self.groups), 'group')} switched"
        )


class MigrationRequest(BaseModel):
    """What an operator last asked for, as a unit recorded it in its peer databag.

    Requests are ordered by `seq` (one more than the newest the acting unit had seen), then by
    time and unit name, so every unit picks the same newest request. A `finished` request
    carries what `finish-migration` recorded. `migration` is the `seq` of the request that
    started this migration (0 for one started before it was recorded); `waves` are the waves
    promoted in it so far, each with its topics.
    """

    model_config = ConfigDict(frozen=True)

    state: RequestedState = "stopped"
    seq: int = 0
    at: int = 0
    by: str = ""
    # Set when a unit stopped the migration itself because its source went away.
    reason: str = ""
    finished: FinishedMigration | None = None
    migration: int = 0
    waves: list[Wave] = Field(default_factory=list)
    # The largest record MirrorMaker's producer must send (`max.request.size`), as the
    # preflight of a real start found it; 0: the producer's default.
    record_bytes: int = Field(default=0, ge=0)

    @property
    def fences(self) -> bool:
        """Whether this request fences the migrated topics: a migration not finished."""
        return self.seq > 0 and self.state != "finished"

    @property
    def promoted(self) -> frozenset[str]:
        """The source topics the waves of this migration promoted."""
        return frozenset(topic for wave in self.waves for topic in wave.topics)

    @property
    def promoted_targets(self) -> frozenset[str]:
        """The target topics the waves of this migration promoted."""
        return frozenset(topic for wave in self.waves for topic in wave.target_topics)

    def order(self) -> tuple[int, int, str]:
        """The sort key: newest last."""
        return (self.seq, self.at, self.by)

    def raw(self) -> str:
        """The request as a unit records it in its databag."""
        exclude = {
            name
            for name, empty in (
                ("reason", not self.reason),
                ("record_bytes", not self.record_bytes),
                ("migration", not self.migration),
                ("waves", not self.waves),
            )
            if empty
        }
        return self.model_dump_json(exclude_none=True, exclude=exclude)


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

    Every unit writes its own databag only: the newest request it follows (`REQUEST_KEY`) and
    the state of its MirrorMaker node (`STATE_KEY`); it reads every unit's (the fence keeps
    its own keys, through `unit_values` and `write`). Data a unit cannot parse is skipped.
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

    def unit_values(self, key: str) -> dict[ops.Unit, str]:
        """Every unit's value of a key, this unit's included; units without one are left out."""
        relation = self.relation
        if relation is None:
            return {}
        units = [self.model.unit, *relation.units]
        return {unit: value for unit in units if (value := relation.data[unit].get(key))}

    def write(self, key: str, raw: str) -> None:
        """Write a key of this unit's databag, unless it holds that value already."""
        relation = self.relation
        if relation is not None and relation.data[self.model.unit].get(key) != raw:
            relation.data[self.model.unit][key] = raw

    def app_value(self, key: str) -> str:
        """A key of the application's databag, or ""."""
        relation = self.relation
        return relation.data[self.model.app].get(key, "") if relation is not None else ""

    def write_app(self, key: str, raw: str) -> None:
        """On the leader: write a key of the application's databag, unless it holds that value."""
        relation = self.relation
        if relation is not None and relation.data[self.model.app].get(key, "") != raw:
            relation.data[self.model.app][key] = raw

    def requests(self) -> list[MigrationRequest]:
        """The request every unit recorded."""
        requests = []
        for raw in self.unit_values(REQUEST_KEY).values():
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

    def unit_states(self, key: str = STATE_KEY) -> dict[ops.Unit, UnitState]:
        """What each unit published about its MirrorMaker node (or under `key`, another one)."""
        states = {}
        for unit, raw in self.unit_values(key).items():
            try:
                states[unit] = UnitState.model_validate_json(raw)
            except ValidationError:
                continue
        return states

    def live_unit_states(self, service: str | None, key: str = STATE_KEY) -> dict[str, UnitState]:
        """Every unit's published state by unit name; this unit's `service` state if known.

        A peer that has published nothing yet is `absent`. `key` is where the units publish it.
        """
        relation = self.relation
        states = self.unit_states(key)
        peers = relation.units if relation is not None else set()
        live = {unit: states.get(unit, UnitState()) for unit in (self.model.unit, *peers)}
        if service is not None:
            this = self.model.unit
            live[this] = UnitState(service=service, exactly_once=live[this].exactly_once)
        return {unit.name: state for unit, state in sorted(live.items(), key=lambda i: i[0].name)}

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
        running migration whose preflight found larger records is recorded again with them. A
        start after a finished migration (or the first one) begins a new migration, without
        waves; any other request keeps the migration and its waves.

        Returns:
            Whether a new request was recorded.

        Raises:
            NotReadyError: while the peer relation does not exist yet.
        """
        newest = self._newest_or_raise()
        same = newest.reason == reason and newest.record_bytes >= record_bytes
        if newest.state == state and newest.seq > 0 and same:
            return False
        fresh = state == "running" and (newest.seq == 0 or newest.state == "finished")
        self._append(
            newest,
            state=state,
            reason=reason,
            finished=finished,
            migration=newest.seq + 1 if fresh else newest.migration,
            waves=[] if fresh else list(newest.waves),
            record_bytes=max(record_bytes, newest.record_bytes if state == "running" else 0),
        )
        return True

    def record_wave(self, wave: Wave, finished: FinishedMigration | None = None) -> None:
        """Record a promoted wave: the newest request again, with the wave added.

        With `finished`, the wave was the last: the request finishes the migration.

        Raises:
            NotReadyError: while the peer relation does not exist yet.
        """
        newest = self._newest_or_raise()
        self._append(
            newest,
            state="finished" if finished is not None else newest.state,
            reason="" if finished is not None else newest.reason,
            finished=finished,
            migration=newest.migration,
            waves=[*newest.waves, wave],
            record_bytes=0 if finished is not None else newest.record_bytes,
        )

    def record_failed_back(self, topics: Collection[str]) -> None:
        """Record that these promoted topics failed back: the newest request, without them.

        They leave their waves (each wave keeps its number and says they failed back), so they
        are not promoted any more: a running migration copies and fences them again, and a
        later wave may promote them anew.

        Raises:
            NotReadyError: while the peer relation does not exist yet.
        """
        newest = self._newest_or_raise()
        self._append(
            newest,
            state=newest.state,
            reason=newest.reason,
            finished=newest.finished,
            migration=newest.migration,
            waves=[wave.without(topics) for wave in newest.waves],
            record_bytes=newest.record_bytes,
        )

    def _newest_or_raise(self) -> MigrationRequest:
        if self.relation is None:
            raise NotReadyError("the peer relation is not there yet: retry in a minute")
        return self.newest()

    def _append(self, newest: MigrationRequest, **fields: object) -> None:
        """Write the request after `newest` into this unit's databag."""
        request = MigrationRequest.model_validate(
            {"seq": newest.seq + 1, "at": time.time_ns(), "by": self.model.unit.name, **fields}
        )
        relation = self.relation
        assert relation is not None
        relation.data[self.model.unit][REQUEST_KEY] = request.raw()
