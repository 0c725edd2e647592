# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Who may do what on the cluster: what no relation user may get, and MirrorMaker's rights.

Kafka's own topics (`__consumer_offsets`, `__transaction_state`) and everything MirrorMaker
uses on this cluster (its `mm2-*` topics, among them the config topic that holds its connector
configs, its heartbeats and checkpoints, its worker group and transactional ids) are reserved:
`client_topic_problem` refuses a `kafka-client` topic or prefix that names or covers one, and
`reserved_denials` are the DENY bindings an `admin` relation user gets for them.

The internal `mirrormaker` user is not a super user: the leader grants it `mirrormaker_acls`,
the rights MirrorMaker 2 needs on this cluster, through `KafkaAdmin`, and caps its writes with
`mirrormaker-throttle-mb-per-second` (`throttle_mirrormaker`, a Kafka client quota).
"""

from __future__ import annotations

from collections.abc import Collection

from admin import Acl, KafkaAdmin
from charms.kafka_k8s.v0.mirrormaker import MIRRORMAKER_NAMES
from models import MIRRORMAKER_USER

# A prefix grant (`abc*`) needs this many characters before the `*`, as Canonical's charm asks.
MIN_PREFIX = 3
RESERVED_TOPIC_PREFIXES = ("__", *MIRRORMAKER_NAMES.topic_prefixes)
RESERVED_TOPIC_SUFFIXES = (".internal", "-internal")
RESERVED_TOPICS = MIRRORMAKER_NAMES.topics
RESERVED_GROUPS = MIRRORMAKER_NAMES.groups
RESERVED_TRANSACTIONAL_ID_PREFIXES = MIRRORMAKER_NAMES.transactional_id_prefixes
_RESERVED = (
    "Kafka's and the migration's (__*, mm2-*, *.internal, *-internal, "
    f"{', '.join(RESERVED_TOPICS)})"
)


def _reserved_topic(topic: str) -> bool:
    return (
        topic.startswith(RESERVED_TOPIC_PREFIXES)
        or topic.endswith(RESERVED_TOPIC_SUFFIXES)
        or topic in RESERVED_TOPICS
    )


def client_topic_problem(topic: str) -> str | None:
    """Why a `kafka-client` relation may not be granted this topic, or `None` if it may.

    A topic ending in `*` asks for a prefix; the prefix must have at least `MIN_PREFIX`
    characters and cover no reserved name, so `*`, `ab*` and `mm*` are refused.
    """
    prefix = topic[:-1] if topic.endswith("*") else None
    if "*" in (prefix if prefix is not None else topic) or (
        prefix is not None and len(prefix) < MIN_PREFIX
    ):
        return (
            f"topic {topic!r}: a wildcard needs a prefix of at least {MIN_PREFIX} characters "
            "before a final '*'"
        )
    if prefix is None:
        if _reserved_topic(topic):
            return f"topic {topic!r} is reserved: {_RESERVED} topics are never granted"
        return None
    covered = [
        name
        for name in RESERVED_TOPIC_PREFIXES
        if name.startswith(prefix) or prefix.startswith(name)
    ]
    covered += [name for name in RESERVED_TOPICS if name.startswith(prefix)]
    covered += [prefix] if _reserved_topic(prefix) else []
    if covered:
        return f"topic {topic!r} would cover {covered[0]}: {_RESERVED} topics are never granted"
    return None


def reserved_denials() -> list[Acl]:
    """DENY bindings on every reserved resource, for a relation user with rights on all of them.

    Kafka checks DENY before ALLOW, so an `admin` relation user with ALL on every topic, group
    and transactional id still reaches none of the reserved ones.
    """
    denials = [
        Acl(resource="TOPIC", name=name, pattern="PREFIXED", operation="ALL", permission="DENY")
        for name in RESERVED_TOPIC_PREFIXES
    ]
    denials += [
        Acl(resource="TOPIC", name=name, pattern="LITERAL", operation="ALL", permission="DENY")
        for name in RESERVED_TOPICS
    ]
    denials += [
        Acl(resource="GROUP", name=name, pattern="LITERAL", operation="ALL", permission="DENY")
        for name in RESERVED_GROUPS
    ]
    denials += [
        Acl(
            resource="TRANSACTIONAL_ID",
            name=name,
            pattern="PREFIXED",
            operation="ALL",
            permission="DENY",
        )
        for name in RESERVED_TRANSACTIONAL_ID_PREFIXES
    ]
    return denials


def mirrormaker_acls(
    *, sync_topic_acls: bool = False, promoted: Collection[str] = ()
) -> list[Acl]:
    """What the `mirrormaker` user may do on this cluster: what MirrorMaker 2 needs, no more.

    - Topics, any name (with the identity policy a copy keeps the source's name): create them,
      add partitions (ALTER), write records, read them back and describe them (its own topics,
      and offset commits of translated groups need READ), read and set configs.
    - Groups, any name: READ and DESCRIBE, to join its worker group and to commit and read
      the translated offsets of the source's groups.
    - Transactional ids of its worker and tasks (exactly-once), and idempotent writes.
    - DELETE on its own topics only (`mm2-*`, heartbeats, checkpoints): `finish-migration
      cleanup=true` removes them.
    - CLUSTER ALTER only with `sync_topic_acls`: creating ACLs needs it.
    - A DENY of WRITE on each `promoted` topic: a wave handed it to the clients, and a
      MirrorMaker node that has not seen the wave yet must not copy into it.

    Not granted: deleting any other topic, records or groups, describing or changing ACLs or
    users (unless `sync_topic_acls`), and broker configs.
    """
    topic_operations = (
        "CREATE",
        "ALTER",
        "WRITE",
        "READ",
        "DESCRIBE",
        "DESCRIBE_CONFIGS",
        "ALTER_CONFIGS",
    )
    acls = [
        Acl(resource="TOPIC", name="*", pattern="LITERAL", operation=operation)
        for operation in topic_operations
    ]
    acls += [
        Acl(resource="TOPIC", name=prefix, pattern="PREFIXED", operation="DELETE")
        for prefix in MIRRORMAKER_NAMES.topic_prefixes
    ]
    acls += [
        Acl(resource="TOPIC", name=topic, pattern="LITERAL", operation="DELETE")
        for topic in MIRRORMAKER_NAMES.topics
    ]
    acls += [
        Acl(resource="GROUP", name="*", pattern="LITERAL", operation=operation)
        for operation in ("READ", "DESCRIBE")
    ]
    acls += [
        Acl(resource="TRANSACTIONAL_ID", name=name, pattern="PREFIXED", operation=operation)
        for name in RESERVED_TRANSACTIONAL_ID_PREFIXES
        for operation in ("WRITE", "DESCRIBE")
    ]
    acls.append(
        Acl(
            resource="CLUSTER",
            name="kafka-cluster",
            pattern="LITERAL",
            operation="IDEMPOTENT_WRITE",
        )
    )
    if sync_topic_acls:
        acls.append(
            Acl(resource="CLUSTER", name="kafka-cluster", pattern="LITERAL", operation="ALTER")
        )
    acls += [
        Acl(resource="TOPIC", name=topic, pattern="LITERAL", operation="WRITE", permission="DENY")
        for topic in sorted(promoted)
    ]
    return acls


def grant_mirrormaker(
    admin: KafkaAdmin, *, sync_topic_acls: bool = False, promoted: Collection[str] = ()
) -> None:
    """Make the `mirrormaker` user's ACLs exactly `mirrormaker_acls`.

    Raises:
        AdminError: if the cluster refuses or does not answer.
    """
    admin.grant(
        MIRRORMAKER_USER, mirrormaker_acls(sync_topic_acls=sync_topic_acls, promoted=promoted)
    )


MIB = 1024 * 1024


def producer_rate_per_broker(mb_per_second: int, brokers: int) -> float | None:
    """The `producer_byte_rate` quota per broker that caps writes at `mb_per_second` (MiB/s).

    Kafka enforces a client quota on each broker for the bytes sent to that broker: an equal
    share on each of `brokers` adds up to the cap. None (no quota) for 0.
    """
    if mb_per_second <= 0:
        return None
    return float(round(mb_per_second * MIB / max(brokers, 1)))


def throttle_mirrormaker(admin: KafkaAdmin, mb_per_second: int, brokers: int) -> None:
    """Cap what MirrorMaker's user writes into this cluster at `mb_per_second` MiB/s (0: no cap).

    A quota on the user (every producer it runs: the copy, offset syncs, checkpoints and
    Connect's own topics), changed without restarting anything; set only when it differs.

    Raises:
        AdminError: if the cluster refuses or does not answer.
    """
    wanted = producer_rate_per_broker(mb_per_second, brokers)
    if admin.producer_byte_rate(MIRRORMAKER_USER) != wanted:
        admin.set_producer_byte_rate(MIRRORMAKER_USER, wanted)
