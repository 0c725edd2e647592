# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The client applications of the host's cluster, and the identities they had on the source.

An application that moves keeps its identity: the operator maps it, by its application name, to
the user it was on the source cluster, its consumer groups and its transactional ids
(`parse_client_identities` reads the host's option). The host says who its client users are and
what it grants them (`ClientUser`). With both (`ClientAccess`) the library names the relation
that resumes a switched group, copies a mapped user's topic ACLs under its relation user's name,
and reports what each source user's relation user will lack.

No two applications may share a group or a transactional id, nor take one that MirrorMaker or
the migration status uses, nor one under a relation user's own prefix (`relation-`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from ._errors import InvalidOptionError
from ._names import MIRRORMAKER_NAMES
from ._rights import AclBinding

IDENTITIES_OPTION = "kafka-client-identities"
# The prefix of every kafka_client relation user's name, and so of its groups and transactional
# ids: a name under it belongs to a relation of the host's own.
RELATION_PREFIX = "relation-"
# A transactional-id prefix (`abc*`) needs this many characters before the `*`.
_MIN_PREFIX = 3
_KEYS = ("user", "groups", "transactional-ids")
_NAME = re.compile(r"[^\s*,]+")


class ClientIdentity(BaseModel):
    """What an application was on the source cluster, as the operator mapped it.

    `user` is its principal's name there (`User:<user>`); `groups` exact group names;
    `transactional_ids` exact ids, or prefixes ending in `*`.
    """

    model_config = ConfigDict(frozen=True)

    application: str
    user: str | None = None
    groups: tuple[str, ...] = ()
    transactional_ids: tuple[str, ...] = ()

    @property
    def principal(self) -> str | None:
        """Its principal on the source cluster."""
        return f"User:{self.user}" if self.user else None

    def as_json(self) -> dict[str, Any]:
        """The mapping as the option spells it, under the application's name."""
        return {
            "application": self.application,
            "user": self.user,
            "groups": list(self.groups),
            "transactional-ids": list(self.transactional_ids),
        }


class ClientUser(BaseModel):
    """A client user of the host's cluster: the relation and application it serves, its rights.

    `rights` are the ALLOW bindings the host grants it once no fence holds (its own prefix and
    topics, the mapped groups and transactional ids), not the ACLs the library copied for it.
    `relation` names it in messages (`kafka-client relation 7`).
    """

    model_config = ConfigDict(frozen=True)

    username: str
    application: str
    relation: str
    rights: tuple[AclBinding, ...] = ()

    def may(self, resource: str, name: str, operation: str) -> bool:
        """Whether its rights allow `operation` on the resource `name` of type `resource`."""
        return any(right.allows(resource, name, operation) for right in self.rights)


class ClientAccess(BaseModel):
    """Who uses the host's cluster: its client users and the operator's map of identities.

    `problem` says why the option is not applied as it is set (it is invalid: the host keeps
    the last valid map, which `identities` then holds).
    """

    model_config = ConfigDict(frozen=True)

    identities: tuple[ClientIdentity, ...] = ()
    users: tuple[ClientUser, ...] = ()
    option: str = IDENTITIES_OPTION
    problem: str | None = None

    def user_of(self, application: str) -> ClientUser | None:
        """The client user of an application, if it is related."""
        return next((user for user in self.users if user.application == application), None)

    def identity_of(self, principal: str) -> ClientIdentity | None:
        """The identity mapped to a source principal (`User:billing`), if any."""
        return next((i for i in self.identities if i.principal == principal), None)

    def mapped_users(self) -> dict[str, ClientUser]:
        """The relation user of each mapped source principal whose application is related."""
        mapped = {}
        for identity in self.identities:
            user = self.user_of(identity.application)
            if identity.principal is not None and user is not None:
                mapped[identity.principal] = user
        return mapped

    def resumed_by(self, group: str) -> str:
        """Which client users may use a consumer group here, or that none may and what to do."""
        users = [user for user in self.users if user.may("GROUP", group, "READ")]
        if not users:
            return (
                f"no client user may use group {group}: map it to its application in {self.option}"
            )
        return "; ".join(f"{user.relation} ({user.application})" for user in users)

    def as_json(self) -> list[dict[str, Any]]:
        """The map, with each application's client user here (`null` while not related)."""
        mapped = []
        for identity in self.identities:
            user = self.user_of(identity.application)
            mapped.append({**identity.as_json(), "client-user": user.username if user else None})
        return mapped

    def summary(self) -> str:
        """The map in one line, for a status: each application, as whom, and its user here."""
        parts = []
        for identity in self.identities:
            user = self.user_of(identity.application)
            here = user.username if user else "not related"
            parts.append(f"{identity.application} as {identity.user or '-'} ({here})")
        return f"identities: {', '.join(parts)}" if parts else ""


def _names(value: object, what: str) -> tuple[str, ...]:
    """A list of names, or one comma-separated string of them.

    Raises:
        ValueError: naming what is not a list of names.
    """
    if isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{what} must be a list of names")
    return tuple(value)


def _check_group(group: str) -> str | None:
    """Why no application may be given this group, or None."""
    if not _NAME.fullmatch(group):
        return f"group {group!r} must be one exact name, without spaces, commas or '*'"
    if group in MIRRORMAKER_NAMES.groups:
        return f"group {group} is the migration's own"
    if group.startswith(RELATION_PREFIX):
        return f"group {group} is under the prefix of a client relation user ({RELATION_PREFIX})"
    return None


def _check_transactional_id(name: str) -> str | None:
    """Why no application may be given this transactional id or prefix, or None."""
    prefix = name.removesuffix("*")
    if not _NAME.fullmatch(prefix) or (name.endswith("*") and len(prefix) < _MIN_PREFIX):
        return (
            f"transactional id {name!r} must be one name, or a prefix of at least {_MIN_PREFIX} "
            "characters before a final '*'"
        )
    for reserved in (*MIRRORMAKER_NAMES.transactional_id_prefixes, RELATION_PREFIX):
        if prefix.startswith(reserved) or (name.endswith("*") and reserved.startswith(prefix)):
            return f"transactional id {name} would reach {reserved}*, which is no application's"
    return None


def _overlap(first: str, second: str) -> bool:
    """Whether two transactional ids or prefixes (a final `*`) can name the same id."""
    a, b = first.removesuffix("*"), second.removesuffix("*")
    if a == b:
        return True
    return (first.endswith("*") and b.startswith(a)) or (second.endswith("*") and a.startswith(b))


def _identity(application: object, entry: object) -> ClientIdentity:
    """One application's mapping, checked on its own.

    Raises:
        ValueError: naming the application and what is wrong.
    """
    if not isinstance(application, str) or not _NAME.fullmatch(application):
        raise ValueError(f"{application!r} is not an application name")
    if not isinstance(entry, Mapping):
        raise ValueError(f"{application}: give user, groups and transactional-ids")
    unknown = sorted(str(key) for key in entry if key not in _KEYS)
    if unknown:
        raise ValueError(
            f"{application}: unknown key {', '.join(unknown)} (keys: {', '.join(_KEYS)})"
        )
    user = entry.get("user")
    if user is not None:
        user = str(user).removeprefix("User:")
        if not _NAME.fullmatch(user):
            raise ValueError(f"{application}: user {user!r} must be one user of the source")
    groups = _names(entry.get("groups", []), f"{application}: groups")
    transactional_ids = _names(
        entry.get("transactional-ids", []), f"{application}: transactional-ids"
    )
    problems = [_check_group(group) for group in groups]
    problems += [_check_transactional_id(name) for name in transactional_ids]
    if found := [problem for problem in problems if problem]:
        raise ValueError(f"{application}: {found[0]}")
    return ClientIdentity(
        application=application,
        user=user,
        groups=groups,
        transactional_ids=transactional_ids,
    )


def _shared(identities: Sequence[ClientIdentity]) -> str | None:
    """What two applications would share (a user, a group, a transactional id), or None."""
    for index, first in enumerate(identities):
        for second in identities[index + 1 :]:
            both = f"both {first.application} and {second.application}"
            if first.user and first.user == second.user:
                return f"user {first.user} is mapped to {both}"
            if shared := sorted(set(first.groups) & set(second.groups)):
                return f"group {shared[0]} is mapped to {both}"
            for a in first.transactional_ids:
                for b in second.transactional_ids:
                    if _overlap(a, b):
                        return f"transactional ids {a} and {b} overlap: {both} would share one"
    return None


def parse_client_identities(
    value: object, option: str = IDENTITIES_OPTION
) -> tuple[ClientIdentity, ...]:
    """The operator's map, from the option's YAML (or JSON), checked whole.

    ```yaml
    billing-app: {user: billing, groups: [billing], transactional-ids: [billing-tx-*]}
    ```

    Raises:
        InvalidOptionError: naming the option and the first thing wrong in it.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return ()
    try:
        loaded = yaml.safe_load(str(value))
    except yaml.YAMLError:
        raise InvalidOptionError(option, "is not YAML or JSON") from None
    if not isinstance(loaded, Mapping):
        raise InvalidOptionError(
            option,
            "must map application names to their user, groups and transactional-ids on the source",
        )
    try:
        identities = [_identity(app, entry) for app, entry in loaded.items()]
    except ValueError as error:
        raise InvalidOptionError(option, str(error)) from None
    if (shared := _shared(identities)) is not None:
        raise InvalidOptionError(option, shared)
    return tuple(sorted(identities, key=lambda identity: identity.application))
