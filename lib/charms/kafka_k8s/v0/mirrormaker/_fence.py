# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The fence: the target topics no client of the host may write while the migration runs.

While a migration is requested and not finished, the topics it copies into are fenced: the
host withholds their WRITE from its client users, so nothing but MirrorMaker writes a copy. The
fenced topics are those any unit last saw the migration select (published in the peer data),
unless `mirrormaker-fence-target` is false.
"""

from __future__ import annotations

import json
import logging

import ops

from . import _clients
from ._errors import ClusterUnreachableError, InvalidOptionError
from ._options import MigrationConfig, MirrorMakerSettings, is_internal_topic, select
from ._peers import PeerData
from ._text import plural

logger = logging.getLogger(__name__)


class Fence:
    """Which target topics are fenced, from the options and the peer data; no cluster asked."""

    def __init__(self, model: ops.Model, peers: PeerData):
        self.model = model
        self.peers = peers

    def enabled(self) -> bool:
        """Whether `mirrormaker-fence-target` fences; an invalid config fences too."""
        try:
            return MigrationConfig.from_options(self.model.config).fence_target
        except InvalidOptionError:
            return True

    def topics(self) -> frozenset[str]:
        """The target topics no client of the host may write now.

        They are the topics the migration copies into, while it is requested (running or
        stopped) and not finished, unless `mirrormaker-fence-target` is false. Reading them
        stays allowed.
        """
        if not self.peers.newest().fences or not self.enabled():
            return frozenset()
        return frozenset(self.peers.migrated_topics())

    def text(self) -> str:
        """The fence as the status shows it, or "" when nothing is fenced."""
        fenced = sorted(self.topics())
        return f"writes fenced on {', '.join(fenced)}" if fenced else ""

    def results(self) -> dict[str, str]:
        """What the fence does now, as action results."""
        fenced = sorted(self.topics())
        if fenced:
            fence = f"writes fenced on {plural(len(fenced), 'topic')} until finish-migration"
        elif not self.enabled():
            fence = "off: mirrormaker-fence-target is false"
        else:
            fence = "no topic fenced"
        return {"fence": fence, "fenced-topics": json.dumps(fenced)}

    def publish_selection(self, settings: MirrorMakerSettings) -> None:
        """Publish the target topics the migration selects now, so the fence starts with it.

        Best effort: while the source does not answer, the first status refresh publishes them.
        """
        config = settings.config
        try:
            with _clients.ClusterClient(settings.source, "source") as source:
                topics = source.topics()
        except ClusterUnreachableError as error:
            logger.warning("fence waits for the source's topics: %s", error.message)
            return
        names = [t for t in topics if not is_internal_topic(t)]
        selected = select(names, config.topics, config.topics_exclude)
        self.peers.publish_topics(config.target_topic(topic) for topic in selected)
