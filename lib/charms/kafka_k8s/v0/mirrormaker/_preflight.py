# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The preflight: what no restart fixes, found before the copy starts.

`start-migration dry-run=true` reaches both clusters, says what the migration would copy and
runs the preflight; a real `start-migration` runs it too, refuses to start on what would fail
the copy (unless `force=true`), and makes the preparations it found on the target first.

`inspect` asks both clusters (bounded queries, `_capacity`); `judge` is pure: from those facts
and the options it finds, for each selected topic and for the clusters,

- records larger than MirrorMaker's producer or the copy accept: the producer's
  `max.request.size` follows the largest record limit of the selected topics (recorded with the
  request, so every unit renders the same), and a copy whose `max.message.bytes` would be
  smaller than its source's is raised (an existing copy) or created with it (a copy MirrorMaker
  would create without it: the source's limit comes from its brokers' own file, which
  MirrorMaker does not copy);
- what the target cannot hold: copies whose names collide with its topics, partitions past what
  a broker should carry, replication factors past its size, bytes past its free storage;
- the source's Kafka release.

Each finding is one line saying what is found and what to do.
"""

from __future__ import annotations

import json
import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict

from . import _capacity
from ._capacity import DEFAULT_MESSAGE_MAX_BYTES, TopicDetails
from ._connections import CLIENT_TIMEOUT
from ._errors import ClusterUnreachableError, PreflightError
from ._options import MigrationConfig, MirrorMakerSettings, is_internal_topic, select
from ._queries import missing_source_rights
from ._text import list_names

logger = logging.getLogger(__name__)

# The producer's own `max.request.size`: the largest record MirrorMaker sends unless set.
DEFAULT_MAX_REQUEST_SIZE = 1048576
# A broker's `socket.request.max.bytes`: no request, so no record, is larger.
MAX_REQUEST_BYTES = 104857600
# Partition replicas one broker should carry at most: Apache Kafka's guidance since 1.1
# (KAFKA-5642; "Apache Kafka Supports 200K Partitions Per Cluster", 4,000 per broker).
REPLICAS_PER_BROKER = 4000
# The oldest source release the migration is tested with (design: 2.8 to 4.x).
TESTED_SOURCE = (2, 8)
# A copy needing more than this share of the target's free storage is warned about.
STORAGE_SHARE = 0.8
# Kafka treats these alike in topic names (metrics); a topic colliding so cannot be created.
_COLLIDING = str.maketrans(".", "_")
_TOPIC_NAME_MAX = 249

Level = Literal["blocks", "warns", "sets"]


class Finding(BaseModel):
    """One line of the preflight: what it found, and what to do (or what the start does)."""

    model_config = ConfigDict(frozen=True)

    level: Level
    text: str

    def line(self) -> str:
        """The finding as the operator reads it."""
        return f"{self.level}: {self.text}"


class TargetFacts(BaseModel):
    """The target as the preflight sees it."""

    model_config = ConfigDict(frozen=True)

    topics: dict[str, int] = {}  # every topic with its partitions
    record_limits: dict[str, int] = {}  # the limits of the copies that exist already
    brokers: int = 1
    free_bytes: int | None = None
    replicas: int = 0  # partition replicas it carries now


class Facts(BaseModel):
    """Both clusters as the preflight sees them, for the selected topics."""

    model_config = ConfigDict(frozen=True)

    source: dict[str, TopicDetails]
    target: TargetFacts
    source_version: tuple[int, ...] | None = None


class Preflight(BaseModel):
    """What the preflight found, and what a real start prepares on the target."""

    model_config = ConfigDict(frozen=True)

    findings: list[Finding] = []
    # The largest record MirrorMaker's producer must send: its `max.request.size`.
    record_bytes: int = DEFAULT_MAX_REQUEST_SIZE
    # Existing copies whose `max.message.bytes` is raised, and copies created with theirs:
    # partitions, replication factor and configs.
    raise_limits: dict[str, int] = {}
    create: dict[str, tuple[int, int, dict[str, str]]] = {}

    @property
    def blockers(self) -> list[Finding]:
        """The findings that would fail the copy: a real start refuses them."""
        return [finding for finding in self.findings if finding.level == "blocks"]

    def results(self) -> dict[str, str]:
        """The action results: one line per finding, blockers first."""
        order = {"blocks": 0, "warns": 1, "sets": 2}
        lines = [f.line() for f in sorted(self.findings, key=lambda f: order[f.level])]
        return {
            "preflight": json.dumps(lines or ["nothing found that would stop the copy"]),
            "preflight-blockers": str(len(self.blockers)),
        }


def _size(value: int) -> str:
    return f"{value:,} bytes" if value < 1 << 20 else f"{value / (1 << 20):,.1f} MiB"


def _record_findings(
    facts: Facts, config: MigrationConfig, replication: int
) -> tuple[list[Finding], int, dict[str, int], dict[str, tuple[int, int, dict[str, str]]]]:
    """Records larger than the producer or the copy accept, and what the start sets."""
    findings: list[Finding] = []
    raise_limits: dict[str, int] = {}
    create: dict[str, tuple[int, int, dict[str, str]]] = {}
    # The producer's default takes a topic that has the brokers' default limit.
    limits = [d.record_limit for d in facts.source.values() if d.record_limit <= MAX_REQUEST_BYTES]
    large = [limit for limit in limits if limit > DEFAULT_MESSAGE_MAX_BYTES]
    record_bytes = max([DEFAULT_MAX_REQUEST_SIZE, *large])
    for topic, details in sorted(facts.source.items()):
        limit = details.record_limit
        copy = config.target_topic(topic)
        if limit > MAX_REQUEST_BYTES:
            findings.append(
                Finding(
                    level="blocks",
                    text=f"topic {topic} accepts records up to {_size(limit)}, more than any "
                    f"broker takes in one request ({_size(MAX_REQUEST_BYTES)}): lower its "
                    "max.message.bytes on the source, or exclude it with "
                    "mirrormaker-topics-exclude",
                )
            )
            continue
        existing = facts.target.record_limits.get(copy)
        if copy in facts.target.topics:
            copy_limit = existing or DEFAULT_MESSAGE_MAX_BYTES
        else:
            copy_limit = limit if details.limit_copied else DEFAULT_MESSAGE_MAX_BYTES
        if copy_limit < limit:
            if copy in facts.target.topics:
                raise_limits[copy] = limit
                done = f"its copy {copy} accepts {_size(copy_limit)}: raised to"
            else:
                configs = {**details.configs, "max.message.bytes": str(limit)}
                create[copy] = (details.partitions, replication, configs)
                done = f"its copy {copy} would get {_size(copy_limit)}: created with"
            findings.append(
                Finding(
                    level="sets",
                    text=f"topic {topic} accepts records up to {_size(limit)} "
                    f"(max.message.bytes on the source); {done} max.message.bytes={limit} "
                    "before MirrorMaker starts",
                )
            )
        if limit > DEFAULT_MESSAGE_MAX_BYTES:
            findings.append(
                Finding(
                    level="sets",
                    text=f"topic {topic} accepts records up to {_size(limit)}: MirrorMaker's "
                    f"producer sends up to max.request.size={record_bytes}",
                )
            )
    return findings, record_bytes, raise_limits, create


def _capacity_findings(facts: Facts, config: MigrationConfig, replication: int) -> list[Finding]:
    """What the target cannot hold: names, partitions, replicas, bytes."""
    findings: list[Finding] = []
    target = facts.target
    folded = {name.translate(_COLLIDING): name for name in target.topics}
    for topic in sorted(facts.source):
        copy = config.target_topic(topic)
        other = folded.get(copy.translate(_COLLIDING))
        if other is not None and other != copy:
            findings.append(
                Finding(
                    level="blocks",
                    text=f"topic {topic}: this cluster cannot create its copy {copy}, which "
                    f"collides with its topic {other} (Kafka takes '.' and '_' alike in topic "
                    f"names): rename or delete {other} here, or exclude {topic} with "
                    "mirrormaker-topics-exclude",
                )
            )
        elif len(copy) > _TOPIC_NAME_MAX:
            findings.append(
                Finding(
                    level="blocks",
                    text=f"topic {topic[:40]}...: its copy's name is longer than Kafka's "
                    f"{_TOPIC_NAME_MAX} characters: use mirrormaker-replication-policy=identity "
                    "or exclude it with mirrormaker-topics-exclude",
                )
            )
    thinner = sorted(t for t, d in facts.source.items() if d.replication_factor > replication)
    if thinner:
        factors = sorted({facts.source[t].replication_factor for t in thinner})
        findings.append(
            Finding(
                level="warns",
                text=f"{len(thinner)} topics ({list_names(thinner)}) have replication factor "
                f"{'/'.join(map(str, factors))} on the source; their copies get {replication}, "
                "as many as this cluster's units allow: add units before the cutover for the "
                "same durability",
            )
        )
    new = sum(
        d.partitions * replication
        for t, d in facts.source.items()
        if config.target_topic(t) not in target.topics
    )
    per_broker = (target.replicas + new) / max(target.brokers, 1)
    if per_broker > REPLICAS_PER_BROKER:
        findings.append(
            Finding(
                level="warns",
                text=f"the copies bring this cluster to {per_broker:,.0f} partition replicas "
                f"per broker, past the {REPLICAS_PER_BROKER:,} a Kafka broker should carry: "
                "add units first, or migrate in parts (mirrormaker-topics)",
            )
        )
    sizes = [d.size_bytes for d in facts.source.values()]
    if sizes and all(size is not None for size in sizes):
        needed = sum(size or 0 for size in sizes) * replication
        if target.free_bytes is None:
            findings.append(
                Finding(
                    level="warns",
                    text=f"the copies need about {_size(needed)} here ({replication} replicas), "
                    "and this cluster's free storage is unknown (its log dirs are not "
                    "described to MirrorMaker's user): check that it fits",
                )
            )
        elif needed > target.free_bytes * STORAGE_SHARE:
            level: Level = "blocks" if needed > target.free_bytes else "warns"
            findings.append(
                Finding(
                    level=level,
                    text=f"the copies need about {_size(needed)} here ({replication} "
                    f"replicas), and this cluster has {_size(target.free_bytes)} free: grow "
                    "its storage, or migrate in parts (mirrormaker-topics)",
                )
            )
    elif sizes:
        findings.append(
            Finding(
                level="warns",
                text="the source's size is unknown: its user may not describe the log dirs "
                "(DESCRIBE on the cluster); check that the copies fit this cluster's storage",
            )
        )
    return findings


def _version_findings(version: tuple[int, ...] | None) -> list[Finding]:
    if version is None:
        return [Finding(level="warns", text="the source's Kafka release is unknown")]
    shown = ".".join(map(str, version))
    if version < (0, 11):
        return [
            Finding(
                level="blocks",
                text=f"the source runs Kafka {shown}: MirrorMaker 2 cannot read its topic "
                "configs (DescribeConfigs, Kafka 0.11): upgrade it first",
            )
        ]
    if version[:2] < TESTED_SOURCE:
        tested = ".".join(map(str, TESTED_SOURCE))
        return [
            Finding(
                level="warns",
                text=f"the source runs Kafka {shown}, older than the {tested} this migration "
                "is tested from: try it on a copy of a few topics first (mirrormaker-topics)",
            )
        ]
    return []


def judge(facts: Facts, config: MigrationConfig, replication: int) -> Preflight:
    """The preflight's findings and preparations, from both clusters' facts (pure)."""
    findings, record_bytes, raise_limits, create = _record_findings(facts, config, replication)
    findings += _capacity_findings(facts, config, replication)
    findings += _version_findings(facts.source_version)
    return Preflight(
        findings=findings, record_bytes=record_bytes, raise_limits=raise_limits, create=create
    )


def inspect(
    source: _capacity.CapacityClient,
    target: _capacity.CapacityClient,
    config: MigrationConfig,
    selected: list[str],
) -> Facts:
    """Both clusters' facts for the selected topics.

    Raises:
        ClusterUnreachableError: if a cluster does not answer, or refuses.
    """
    details = source.topic_details(selected)
    topics = target.topics()
    copies = [config.target_topic(t) for t in details if config.target_topic(t) in topics]
    limits = {name: copy.record_limit for name, copy in target.topic_details(copies).items()}
    brokers, free = target.storage()
    replicas = sum(
        d.partitions * d.replication_factor for d in target.topic_details(topics).values()
    )
    return Facts(
        source=details,
        target=TargetFacts(
            topics=topics,
            record_limits=limits,
            brokers=brokers,
            free_bytes=free,
            replicas=replicas,
        ),
        source_version=source.kafka_version(),
    )


def preflight(settings: MirrorMakerSettings) -> tuple[Preflight, dict[str, object]]:
    """The preflight, and what a start would migrate (the dry run's results).

    Raises:
        ClusterUnreachableError: if a cluster does not answer, or refuses the login.
    """
    config = settings.config
    with _capacity.CapacityClient(settings.source, "source") as source:
        topics = source.topics()
        groups = source.groups()
        selected = select(
            [t for t in topics if not is_internal_topic(t)], config.topics, config.topics_exclude
        )
        with _capacity.CapacityClient(settings.target, "target") as target:
            facts = inspect(source, target, config, selected)
        missing = missing_source_rights(source, config, selected, facts.target.topics)
    selected_groups = select(groups, config.groups, config.groups_exclude)
    found = judge(facts, config, settings.replication_factor)
    results: dict[str, object] = {
        "source": f"{settings.source.name}: reachable, {len(topics)} topics, {len(groups)} groups",
        "target": "reachable",
        "topic-count": str(len(selected)),
        "topics": list_names(selected),
        "partitions": str(sum(topics[t] for t in selected)),
        "group-count": str(len(selected_groups)),
        "groups": list_names(selected_groups),
        **found.results(),
    }
    if missing:
        results["missing-rights"] = json.dumps(missing)
    warnings = [settings.source.unprotected] if settings.source.unprotected else []
    if not selected:
        warnings.append(
            "no source topic matches mirrormaker-topics and mirrormaker-topics-exclude"
        )
    if warnings:
        results["warning"] = "; ".join(warnings)
    return found, results


def dry_run(settings: MirrorMakerSettings) -> dict[str, object]:
    """What a start would migrate, what its user lacks, and the preflight, as action results.

    Raises:
        ClusterUnreachableError: if a cluster does not answer, or refuses the login.
    """
    _, results = preflight(settings)
    return {"dry-run": "nothing was started", **results}


def prepare(settings: MirrorMakerSettings, found: Preflight) -> None:
    """Before a real start: raise the copies' record limits, create the copies that need one.

    Raises:
        ClusterUnreachableError: if the target does not answer, or refuses.
    """
    with _capacity.CapacityClient(settings.target, "target", CLIENT_TIMEOUT) as target:
        target.set_record_limits(found.raise_limits)
        target.create_topics(found.create)


def checked_preflight(settings: MirrorMakerSettings, *, force: bool) -> Preflight:
    """The preflight of a real start, and its preparations on the target.

    Raises:
        PreflightError: if it found what would fail the copy, or a cluster did not answer,
            and the start is not forced; nothing was changed then.
        ClusterUnreachableError: if the target refused a preparation.
    """
    try:
        found, _ = preflight(settings)
    except ClusterUnreachableError as error:
        if not force:
            raise PreflightError(
                f"{error.message}: the preflight could not run; nothing was started (run "
                "start-migration force=true to start without it)"
            ) from None
        logger.warning("starting without the preflight: %s", error.message)
        return Preflight()
    if found.blockers and not force:
        lines = "; ".join(finding.text for finding in found.blockers)
        raise PreflightError(
            f"the preflight found what would fail the copy: {lines}. Nothing was started; "
            "fix it, or run start-migration force=true to start all the same"
        )
    prepare(settings, found)
    return found
