# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The names MirrorMaker and the library use: cluster aliases, the service, groups, topics."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

SERVICE = "mirrormaker"
SOURCE_ALIAS = "source"
TARGET_ALIAS = "target"
# The failback's copy back runs as its own service, and its MirrorMaker names this cluster
# `failback`: its topics on the source cluster are then `mm2-*.failback.internal` and
# `failback.heartbeats`.
FAILBACK_SERVICE = "mirrormaker-failback"
FAILBACK_ALIAS = "failback"
_STATUS_READER_GROUP = "kafka-k8s-migration-status"

# A group that need not exist: describing it tells whether the user may describe every group.
RIGHTS_PROBE_GROUP = "kafka-k8s-migration-rights-probe"


class MirrorMakerNames(BaseModel):
    """The names MirrorMaker and the migration status use on the target cluster.

    The host's MirrorMaker user needs rights on them (and on the topics it copies), and no
    client of the target may be granted any: the config topic (`mm2-configs.*`) holds the
    connector configs, the offsets, status, offset-syncs and checkpoints topics drive the copy.
    """

    model_config = ConfigDict(frozen=True)

    topic_prefixes: tuple[str, ...]
    topics: tuple[str, ...]
    groups: tuple[str, ...]
    transactional_id_prefixes: tuple[str, ...]


MIRRORMAKER_NAMES = MirrorMakerNames(
    # mm2-configs., mm2-offsets., mm2-status. and mm2-offset-syncs.<source>.internal
    topic_prefixes=("mm2-",),
    # Heartbeats, the source's heartbeats under the prefixed policy, and checkpoints.
    topics=("heartbeats", f"{SOURCE_ALIAS}.heartbeats", f"{SOURCE_ALIAS}.checkpoints.internal"),
    # The worker group of the flow (`group.id`), and the migration status's reader.
    groups=(f"{SOURCE_ALIAS}-mm2", _STATUS_READER_GROUP),
    # Exactly-once: the worker's and the tasks' transactional ids (KIP-618).
    transactional_id_prefixes=(f"{SOURCE_ALIAS}-mm2", f"connect-cluster-{SOURCE_ALIAS}-mm2"),
)
