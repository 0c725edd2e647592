# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""`start-migration dry-run=true`: reach both clusters and say what the migration would copy."""

from __future__ import annotations

import json

from . import _clients
from ._options import MirrorMakerSettings, is_internal_topic, select
from ._queries import missing_source_rights
from ._text import list_names


def dry_run(settings: MirrorMakerSettings) -> dict[str, object]:
    """What a start would migrate, and what MirrorMaker's source user lacks, as action results.

    Raises:
        ClusterUnreachableError: if a cluster does not answer, or refuses the login.
    """
    config = settings.config
    with _clients.ClusterClient(settings.source, "source") as source:
        topics = source.topics()
        groups = source.groups()
        with _clients.ClusterClient(settings.target, "target") as target:
            existing = target.topics()
        selected = select(
            [t for t in topics if not is_internal_topic(t)],
            config.topics,
            config.topics_exclude,
        )
        missing = missing_source_rights(source, config, selected, existing)
    selected_groups = select(groups, config.groups, config.groups_exclude)
    results: dict[str, object] = {
        "dry-run": "nothing was started",
        "source": f"{settings.source.name}: reachable, {len(topics)} topics, {len(groups)} groups",
        "target": "reachable",
        "topic-count": str(len(selected)),
        "topics": list_names(selected),
        "partitions": str(sum(topics[t] for t in selected)),
        "group-count": str(len(selected_groups)),
        "groups": list_names(selected_groups),
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
    return results
