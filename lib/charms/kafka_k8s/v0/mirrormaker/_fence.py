# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The fence: the target topics no client of the host may write while the migration runs.

While a migration is requested and not finished, the topics it copies into are fenced, unless
`mirrormaker-fence-target` is false. Fenced are:

- every target topic any unit ever saw the migration select in this migration: each unit
  publishes the union of what it saw and what its peers published (`FENCE_KEY`), so the fence
  only grows, whatever the source lists later (its user losing DESCRIBE, topics deleted there,
  a pattern that matches nothing);
- every name MirrorMaker's own topic selection matches, existing or not: the current options'
  and the one each unit's running MirrorMaker was started with. A topic is thus fenced before
  MirrorMaker creates it.

A wave of `finish-migration topics=...` lifts the fence from its topics (they are `promoted`),
and finishing the migration lifts it whole. The host grants its clients' ACLs with the fence
and then tells the library (`Migration.fence_applied`); MirrorMaker starts, or takes a new
topic selection, only once the leader has published that the fence covers that selection.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

import ops
from pydantic import BaseModel, ConfigDict, ValidationError

from . import _clients
from ._errors import ClusterUnreachableError, InvalidOptionError
from ._options import MigrationConfig, MirrorMakerSettings, is_internal_topic, select
from ._peers import PeerData
from ._text import plural

logger = logging.getLogger(__name__)

# In each unit's databag: the fenced topics it knows of, and its MirrorMaker's selection.
FENCE_KEY = "mirrormaker-topics"
# In the application's databag: the selections the leader's grants fence (the leader writes it).
FENCE_APPLIED_KEY = "mirrormaker-fence-applied"

# Regular-expression characters that end a pattern's literal beginning.
_SPECIAL = set(".^$*+?()[]{}|\\")
# After an escape, these stand for themselves; any other escape (`\d`, `\Q`) ends it.
_ESCAPED_LITERALS = set(".^$*+?()[]{}|\\/-_")


def _alternatives(pattern: str) -> list[str]:
    """The pattern split at its top-level `|` (outside groups and character classes)."""
    parts, current, depth, in_class, escaped = [], [], 0, False, False
    for char in pattern:
        if escaped:
            current.append(char)
            escaped = False
            continue
        if char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def literal_beginning(pattern: str) -> tuple[str, bool]:
    r"""What every name the pattern matches in full begins with, and whether it is all of it.

    `orders\..*` gives `("orders.", False)`, `payments` gives `("payments", True)`, `.*` and
    `(?i)orders` give `("", False)`. A character a quantifier makes optional or repeatable
    (`ab?`, `ab*`, `ab{2}`) ends the beginning before it; `ab+` keeps one `b`. Anything this
    cannot read ends the beginning early, which only widens what it stands for.
    """
    literal = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        step = 1
        if char == "\\":
            if index + 1 >= len(pattern) or pattern[index + 1] not in _ESCAPED_LITERALS:
                return "".join(literal), False
            char, step = pattern[index + 1], 2
        elif char in _SPECIAL:
            return "".join(literal), False
        following = pattern[index + step : index + step + 1]
        if following in ("?", "*", "{"):
            return "".join(literal), False
        literal.append(char)
        index += step
        if following == "+":
            return "".join(literal), False
    return "".join(literal), True


class TopicSelection(BaseModel):
    """A MirrorMaker topic selection: the target topics it copies into, whether they exist or not.

    `include` and `exclude` are MirrorMaker's `topics` and `topics.exclude` over source names;
    `target_prefix` is what the replication policy puts before them on the target.
    """

    model_config = ConfigDict(frozen=True)

    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    target_prefix: str = ""

    @classmethod
    def of(cls, config: MigrationConfig) -> TopicSelection:
        """The selection the options give MirrorMaker (the promoted topics are not fenced)."""
        return cls(
            include=config.topics,
            exclude=config.topics_exclude,
            target_prefix=config.target_prefix,
        )

    def matches(self, target_topic: str) -> bool:
        """Whether MirrorMaker would copy into this target topic."""
        if not target_topic.startswith(self.target_prefix):
            return False
        source = target_topic[len(self.target_prefix) :]
        return not is_internal_topic(source) and bool(select([source], self.include, self.exclude))

    def acl_patterns(self) -> tuple[set[str], set[str]]:
        """ACL patterns that cover every name this selection matches: literal names, prefixes.

        A pattern's literal beginning becomes a prefix (the whole name when it is all literal);
        a pattern without one gives the empty prefix: any name.
        """
        literals, prefixes = set(), set()
        for pattern in self.include:
            for alternative in _alternatives(pattern):
                beginning, whole = literal_beginning(alternative)
                name = self.target_prefix + beginning
                if whole:
                    if self.matches(name):
                        literals.add(name)
                else:
                    prefixes.add(name)
        return literals, prefixes


class FencedTopics(BaseModel):
    """The target topics no client of the host may write, create, delete or alter now.

    `names` are the topics the migration copied into or selected (the fence's memory),
    `selections` MirrorMaker's selections, which fence every name they match, and `promoted`
    the topics waves promoted: they are never fenced. Empty when nothing is fenced.
    """

    model_config = ConfigDict(frozen=True)

    names: frozenset[str] = frozenset()
    selections: tuple[TopicSelection, ...] = ()
    promoted: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        """Whether nothing is fenced."""
        return not self.selections and not (self.names - self.promoted)

    def covers(self, topic: str) -> bool:
        """Whether clients may not write, create, delete or alter this target topic now."""
        if topic in self.promoted:
            return False
        return topic in self.names or any(s.matches(topic) for s in self.selections)

    def known(self) -> list[str]:
        """The fenced topics known by name, sorted."""
        return sorted(self.names - self.promoted)

    def acl_patterns(self) -> tuple[frozenset[str], frozenset[str]]:
        """ACL patterns covering every fenced topic: literal names and prefixes.

        A prefix may cover promoted topics too, and the empty prefix covers any name.
        """
        literals = set(self.names)
        prefixes: set[str] = set()
        for selection in self.selections:
            more_literals, more_prefixes = selection.acl_patterns()
            literals |= more_literals
            prefixes |= more_prefixes
        literals = {n for n in literals - self.promoted if not n.startswith(tuple(prefixes))}
        return frozenset(literals), frozenset(prefixes)


class _Publication(BaseModel):
    """What one unit publishes for the fence (`FENCE_KEY`)."""

    model_config = ConfigDict(frozen=True)

    migration: int | None = None
    topics: list[str] = []
    selection: TopicSelection | None = None

    @classmethod
    def parse(cls, raw: str) -> _Publication | None:
        """A unit's publication; a bare list (an earlier release's) holds only topics."""
        try:
            data = json.loads(raw)
            if isinstance(data, list):
                return cls(topics=[name for name in data if isinstance(name, str)])
            return cls.model_validate(data)
        except (ValueError, ValidationError):
            return None


class _Applied(BaseModel):
    """What the leader publishes once its grants fence these selections (`FENCE_APPLIED_KEY`)."""

    model_config = ConfigDict(frozen=True)

    selections: list[TopicSelection] = []


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

    def _config(self) -> MigrationConfig | None:
        try:
            return MigrationConfig.from_options(self.model.config)
        except InvalidOptionError:
            return None

    def _publications(self, migration: int) -> dict[ops.Unit, _Publication]:
        """Each unit's publication for this migration (an earlier release's counts for any)."""
        found = {}
        for unit, raw in self.peers.unit_values(FENCE_KEY).items():
            publication = _Publication.parse(raw)
            if publication is not None and publication.migration in (None, migration):
                found[unit] = publication
        return found

    def topics(self) -> FencedTopics:
        """The target topics no client of the host may write now (see the module's docstring).

        Reading them stays allowed.
        """
        newest = self.peers.newest()
        if not newest.fences or not self.enabled():
            return FencedTopics()
        publications = self._publications(newest.migration).values()
        config = self._config()
        found = [p.selection for p in publications if p.selection is not None]
        found += [TopicSelection.of(config)] if config is not None else []
        selections = {selection.model_dump_json(): selection for selection in found}
        return FencedTopics(
            names=frozenset(name for p in publications for name in p.topics),
            selections=tuple(selections[key] for key in sorted(selections)),
            promoted=newest.promoted_targets,
        )

    def text(self) -> str:
        """The fence as the status shows it, or "" when nothing is fenced by name."""
        fenced = self.topics().known()
        return f"writes fenced on {', '.join(fenced)}" if fenced else ""

    def results(self) -> dict[str, str]:
        """What the fence does now, as action results."""
        fenced = self.topics()
        known = fenced.known()
        if not fenced.empty:
            fence = f"writes fenced on {plural(len(known), 'topic')} until finish-migration"
            if fenced.selections:
                fence += ", and on every topic mirrormaker-topics selects"
        elif not self.enabled():
            fence = "off: mirrormaker-fence-target is false"
        else:
            fence = "no topic fenced"
        results = {"fence": fence, "fenced-topics": json.dumps(known)}
        if fenced.promoted:
            results["promoted-topics"] = json.dumps(sorted(fenced.promoted))
        return results

    def publish(self, selected: Iterable[str] = ()) -> None:
        """Publish this unit's fence: what it and its peers saw, with `selected` added."""
        own = self._publications(self.peers.newest().migration).get(self.model.unit)
        self._publish(selected, own.selection if own else None)

    def publish_running(self, running: TopicSelection | None) -> None:
        """Publish the selection this unit's MirrorMaker runs with now (None: it does not run)."""
        self._publish((), running)

    def _publish(self, selected: Iterable[str], running: TopicSelection | None) -> None:
        newest = self.peers.newest()
        if newest.seq == 0:
            return  # no migration was ever requested: nothing to fence
        publications = self._publications(newest.migration).values()
        names = {name for p in publications for name in p.topics} | set(selected)
        publication = _Publication(
            migration=newest.migration,
            topics=sorted(names - newest.promoted_targets),
            selection=running,
        )
        self.peers.write(FENCE_KEY, publication.model_dump_json(exclude_none=True))

    def publish_selection(self, settings: MirrorMakerSettings) -> None:
        """Publish the target topics the migration selects now, so the fence starts with them.

        Asked of the source when a migration is requested; a source that does not answer is
        logged, and the next status refresh publishes them. The selection itself fences every
        name it matches meanwhile.
        """
        config = settings.config
        try:
            with _clients.ClusterClient(settings.source, "source") as source:
                topics = source.topics()
        except ClusterUnreachableError as error:
            logger.warning("fence waits for the source's topics: %s", error.message)
            return
        self.publish(config.target_topic(topic) for topic in config.select_topics(topics))

    def applied(self, fenced: FencedTopics) -> None:
        """On the leader: the host's grants now fence `fenced`; units may run its selections."""
        if not self.model.unit.is_leader():
            return
        applied = _Applied(selections=list(fenced.selections))
        self.peers.write_app(FENCE_APPLIED_KEY, applied.model_dump_json())

    def waits_for(self, selection: TopicSelection) -> bool:
        """Whether MirrorMaker must wait to run this selection: the leader has not fenced it."""
        if not self.enabled():
            return False
        try:
            raw = self.peers.app_value(FENCE_APPLIED_KEY) or "{}"
            applied = _Applied.model_validate_json(raw)
        except ValidationError:
            return True
        return selection not in applied.selections
