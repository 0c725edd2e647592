# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The access report: what each source user may do there, and what its client user will lack.

`migration-status format=access` reads, as the migration's source user, every ACL binding of
the source (Kafka answers a user with DESCRIBE on the cluster) and every user's quotas
(DESCRIBE_CONFIGS on the cluster, Kafka 2.6 and later). Beside each source user it sets the
client user the operator mapped it to (`ClientAccess`) and every right that client user will
not hold here: neither granted by the host (its topics and prefix, the mapped groups and
transactional ids) nor copied (`_acls`, with `mirrormaker-sync-topic-acls`). Rights are judged
as they will be after the cutover, without the fence. What could not be read is said; quotas
are listed, none is set here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from . import _clients
from ._acls import acls_to_copy, selected_topics
from ._clusters import SourceCluster
from ._connections import CLIENT_TIMEOUT
from ._display import _table
from ._errors import ClusterUnreachableError
from ._identities import ClientAccess, ClientUser
from ._options import MigrationConfig
from ._report import ReportPart
from ._rights import AclBinding
from ._text import plural

_T = TypeVar("_T")
# What the source user needs to be shown each part, for the report's "could not read".
_NEEDS = {
    "ACLs": "grant it DESCRIBE on the cluster",
    "quotas": "grant it DESCRIBE_CONFIGS on the cluster (Kafka 2.6 or later answers)",
}


class PrincipalAccess(ReportPart):
    """One source user: its ACLs and quotas there, its client user here, and what that lacks."""

    principal: str
    acls: list[AclBinding]
    quotas: dict[str, float]
    application: str | None = None
    client_user: str | None = None
    lacks: list[str]
    note: str | None = None


class AccessReport(ReportPart):
    """Every source user's rights, beside its client user's here; what could not be read."""

    source: str
    principals: list[PrincipalAccess]
    unreadable: list[str]

    def summary(self) -> str:
        """One line: how many source users, how many mapped, how many rights missing."""
        mapped = sum(1 for p in self.principals if p.client_user)
        missing = sum(len(p.lacks) for p in self.principals if p.client_user)
        text = (
            f"{plural(len(self.principals), 'source user')} on {self.source}, {mapped} mapped "
            f"to a client user here; the mapped ones lack {plural(missing, 'right')}"
        )
        if self.unreadable:
            text += f"; could not read {len(self.unreadable)} part(s)"
        return text


def _renamed(acl: AclBinding, config: MigrationConfig) -> AclBinding:
    """A source binding with its topic named as the replication policy names it here."""
    if acl.resource != "TOPIC" or (acl.pattern, acl.name) == ("LITERAL", "*"):
        return acl
    return acl.model_copy(update={"name": config.target_topic(acl.name)})


def _lacks(
    allows: Sequence[AclBinding],
    user: ClientUser,
    copies: Sequence[AclBinding],
    config: MigrationConfig,
) -> list[str]:
    """Each right the source user had that its client user will not hold here."""
    held = [*user.rights, *copies]
    return [
        acl.text()
        for acl in allows
        if not any(right.covers(_renamed(acl, config)) for right in held)
    ]


def _principal(
    principal: str,
    acls: Sequence[AclBinding],
    quotas: Mapping[str, float],
    access: ClientAccess,
    *,
    config: MigrationConfig,
    source_user: str,
    copies: Sequence[AclBinding],
) -> PrincipalAccess:
    allows = [acl for acl in acls if acl.permission == "ALLOW"]
    denies = len(acls) - len(allows)
    part: dict[str, Any] = {
        "principal": principal,
        "acls": list(acls),
        "quotas": dict(quotas),
        "lacks": [acl.text() for acl in allows],
    }
    identity = access.identity_of(principal)
    user = access.user_of(identity.application) if identity else None
    if principal == "User:*":
        part["note"] = "every user of the source: not copied; a client user here holds its own"
    elif principal == f"User:{source_user}":
        part |= {"lacks": [], "note": "the migration's source user: no application needs it"}
    elif not allows and denies:
        part["note"] = f"{plural(denies, 'DENY binding')} only: not copied, nothing is denied here"
    elif identity is None:
        part["note"] = f"no application is mapped to it: map one in {access.option}"
    elif user is None:
        part["application"] = identity.application
        part["note"] = f"mapped to {identity.application}, which is not related: relate it"
    else:
        own = [copy for copy in copies if copy.principal == f"User:{user.username}"]
        part |= {
            "application": identity.application,
            "client_user": user.username,
            "lacks": _lacks(allows, user, own, config),
        }
    if denies and not part.get("note"):
        part["note"] = f"{plural(denies, 'DENY binding')} not copied: nothing is denied here"
    return PrincipalAccess.model_validate(part)


def build_access_report(
    source: str,
    acls: Sequence[AclBinding] | None,
    quotas: Mapping[str, Mapping[str, float]] | None,
    config: MigrationConfig,
    access: ClientAccess,
    *,
    source_user: str,
    target_user: str,
    topics: Sequence[str],
    copied: Sequence[AclBinding] = (),
    unreadable: Sequence[str] = (),
) -> AccessReport:
    """The report from what was read of the source (`None`: could not be read).

    With `mirrormaker-sync-topic-acls`, what the next copy would copy counts as held, with what
    was `copied` already.
    """
    acls, quotas = acls or [], quotas or {}
    copies = list(copied)
    if config.sync_topic_acls:
        copies += acls_to_copy(acls, config, access, topics, target_user=target_user)
    principals = sorted({acl.principal for acl in acls} | set(quotas))
    return AccessReport(
        source=source,
        principals=[
            _principal(
                principal,
                [acl for acl in acls if acl.principal == principal],
                quotas.get(principal, {}),
                access,
                config=config,
                source_user=source_user,
                copies=copies,
            )
            for principal in principals
        ],
        unreadable=list(unreadable),
    )


def _read(query: Callable[[], _T], what: str, unreadable: list[str]) -> _T | None:
    """The answer of a query, or None with what could not be read (and why) in `unreadable`."""
    try:
        return query()
    except ClusterUnreachableError as error:
        unreadable.append(f"{what}: {error.message}; {_NEEDS[what]}")
        return None


def access_report(
    source: SourceCluster,
    config: MigrationConfig,
    access: ClientAccess,
    *,
    target_user: str,
    copied: Sequence[AclBinding] = (),
    timeout: float = CLIENT_TIMEOUT,
) -> AccessReport:
    """Read the source's ACLs and quotas as the migration's source user, and build the report.

    Raises:
        ClusterUnreachableError: if the source does not answer at all.
    """
    unreadable: list[str] = []
    with _clients.ClusterClient(source, "source", timeout) as client:
        topics = selected_topics(client.topics(), config)
        acls = _read(client.acls, "ACLs", unreadable)
        quotas = _read(client.client_quotas, "quotas", unreadable)
    return build_access_report(
        source.name,
        acls,
        quotas,
        config,
        access,
        source_user=source.username or "",  # a login without a user name matches no ACL
        target_user=target_user,
        topics=topics,
        copied=copied,
        unreadable=unreadable,
    )


def _number(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:g}"


def format_access_table(report: AccessReport) -> str:
    """The report as plain text: one row per source user, then what each mapped one lacks."""
    rows = [
        (
            p.principal,
            p.application or "-",
            p.client_user or "-",
            len(p.acls),
            ", ".join(f"{name}={_number(value)}" for name, value in sorted(p.quotas.items()))
            or "-",
            len(p.lacks) if p.client_user else "-",
            p.note or "",
        )
        for p in report.principals
    ]
    headers = ("SOURCE USER", "APPLICATION", "CLIENT USER", "ACLS", "QUOTAS", "LACKS", "NOTE")
    lines = [report.summary(), "", *_table(headers, rows)]
    lines += [f"{p.principal} lacks: {'; '.join(p.lacks)}" for p in report.principals if p.lacks]
    lines += [f"could not read {part}" for part in report.unreadable]
    return "\n".join(lines)


def access_results(report: AccessReport) -> dict[str, str]:
    """The report as `migration-status format=access` results: JSON lists and the table."""
    return {
        "summary": report.summary(),
        "source": report.source,
        "principals": json.dumps([p.as_json() for p in report.principals]),
        "unreadable": json.dumps(report.unreadable),
        "table": format_access_table(report),
    }
