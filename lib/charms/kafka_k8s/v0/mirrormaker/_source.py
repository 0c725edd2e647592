# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The source cluster as Juju gives it: the `migration-source` relation, or options and a secret.

The thin adapter around `SourceCluster.from_secret` and `SourceCluster.from_relation`: it reads
the relation's `kafka_client` response or the credentials secret, and turns whatever is wrong
with them into a `SourceError` that names the relation, the option or the secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import ops
from data_platform_helpers.interfaces import (
    KafkaRequestModel,
    KafkaResponseModel,
    ResourceRequirerEventHandler,
)
from pydantic import ValidationError

from ._clusters import SourceCluster, source_from_relation, source_from_secret
from ._errors import NotReadyError, SourceError, SourceGoneError
from ._options import MigrationConfig

logger = logging.getLogger(__name__)

_CREDENTIALS_OPTION = "mirrormaker-source-credentials"
# The fields of a kafka_client response that name the secrets it shares.
_SECRET_FIELDS = ("secret-user", "secret-tls", "secret-extra")


class _TolerantRequirer(ResourceRequirerEventHandler):
    """The `kafka_client` requirer handler, logging what it cannot read instead of raising.

    The remote application writes what this handler parses; data-platform-helpers raises on
    data that is not JSON, of an unknown version, or answering a request never made. That
    would put the unit in error: the migration's status names the relation and the problem
    instead (`SourceReader.source`).
    """

    @property
    def requests_made(self) -> list[KafkaRequestModel]:
        """The requests this side sends."""
        return list(self._requests)  # pyright: ignore[reportReturnType]

    def _on_relation_changed_event(self, event: ops.RelationChangedEvent) -> None:
        try:
            super()._on_relation_changed_event(event)
        except (ValueError, TypeError, KeyError, ops.ModelError) as error:
            # ops.ModelError: a secret the response names cannot be read (SecretNotFoundError).
            logger.warning(
                "%s relation %s: data not read (%s); see the unit status",
                event.relation.name,
                event.relation.id,
                type(error).__name__,
            )


class SourceReader:
    """Reads the source cluster from the host's relation, options and secrets."""

    def __init__(self, charm: ops.CharmBase, relation_name: str):
        self.model = charm.model
        self.relation_name = relation_name
        # The least the kafka_client interface offers that MirrorMaker needs: `consumer` on
        # every topic (read and describe them). Canonical's Kafka grants no right to describe
        # topic configs, other groups or ACLs with it; `admin` would (as a super user, with a
        # rolling restart of the source). `mirrormaker-source-role` chooses; the README says
        # what each migrates, and the status names a right MirrorMaker lacks.
        role = (
            "admin" if self.model.config.get("mirrormaker-source-role") == "admin" else "consumer"
        )
        self.requirer = _TolerantRequirer(
            charm,
            relation_name,
            [KafkaRequestModel(resource="*", extra_user_roles=role)],
            KafkaResponseModel,
        )

    def source(self, config: MigrationConfig, *, running: bool) -> SourceCluster | None:
        """The source cluster, or `None` when none is configured.

        Args:
            config: the migration options.
            running: whether a migration runs: a relation that stops sending credentials then
                took them away (`SourceGoneError`), rather than not having sent them yet.

        Raises:
            SourceError: if both or half a source are configured, or credentials are wrong.
            NotReadyError: while the related source has not answered yet.
        """
        relation = self.model.get_relation(self.relation_name)
        if relation is not None and config.source_bootstrap_servers:
            raise SourceError(
                f"two sources: remove the {self.relation_name} relation or unset "
                "mirrormaker-source-bootstrap-servers"
            )
        if relation is not None:
            return self._related_source(relation, running=running)
        if config.source_bootstrap_servers:
            return self._external_source(config)
        if config.source_credentials is not None:
            raise SourceGoneError(
                "mirrormaker-source-credentials is set but mirrormaker-source-bootstrap-servers"
                " is empty: set the source's HOST:PORT list"
            )
        return None

    def no_source(self) -> SourceError:
        """The error that says no source is configured, and how to configure one."""
        return SourceError(
            f"no source cluster to migrate from: relate {self.relation_name} to a Kafka "
            "application, or set mirrormaker-source-bootstrap-servers and "
            "mirrormaker-source-credentials"
        )

    def _external_source(self, config: MigrationConfig) -> SourceCluster:
        option = _CREDENTIALS_OPTION
        if config.source_credentials is None:
            raise SourceGoneError(
                "mirrormaker-source-bootstrap-servers is set but mirrormaker-source-credentials"
                " is not: put username and password in a Juju secret, grant it to "
                f"{self.model.app.name} and set its ID in {option}"
            )
        secret_id = config.source_credentials
        content = self.secret(secret_id, option)
        return source_from_secret(
            content, config.source_bootstrap_servers, secret_id=secret_id, option=option
        )

    def secret(self, secret_id: str, option: str) -> dict[str, str]:
        """The content of the Juju secret an option names.

        Raises:
            SourceGoneError: if it is not there, or not granted, saying how to grant it.
        """
        try:
            return self.model.get_secret(id=secret_id).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            raise SourceGoneError(
                f"{option}: secret {secret_id} not found or not granted: run "
                f"`juju grant-secret {secret_id} {self.model.app.name}`"
            ) from None

    def _related_source(self, relation: ops.Relation, *, running: bool) -> SourceCluster:
        name = relation.app.name if relation.app else self.relation_name
        version = relation.data[relation.app].get("version") if relation.app else None
        if version not in (None, "v0", "v1"):
            raise SourceError(
                f"{self.relation_name}: {name} sent kafka_client version {version[:20]!r}, "
                "not v0 or v1"
            )
        if unreadable := self._unreadable_secret(relation):
            field, secret_id = unreadable
            # Revoked or removed while migrating, it stops the migration; else it blocks it.
            error = SourceGoneError if running else SourceError
            raise error(
                f"{self.relation_name}: {name} no longer sends credentials: its {field} "
                f"{secret_id[:80]} cannot be read (revoked, removed or not granted)"
            )
        try:
            contract = self.requirer.interface.build_model(relation.id, component=relation.app)
            answers = list(contract.requests)
        except (ValidationError, ValueError, ops.ModelError):
            raise SourceError(
                f"{self.relation_name}: {name} sent data that is not a kafka_client response"
            ) from None
        asked = {request.resource for request in self.requirer.requests_made}
        for answer in answers:
            if answer.resource and answer.resource not in asked:
                raise SourceError(
                    f"{self.relation_name}: {name} answered for topic {answer.resource[:60]!r}"
                    f", not the {', '.join(sorted(asked))!r} asked for"
                )
        responses = [answer for answer in answers if answer.username and answer.password]
        response = responses[0] if responses else None
        if response is None or not response.endpoints:
            if running:
                # It sent them before the migration could start: they were revoked since.
                raise SourceGoneError(f"{self.relation_name}: {name} no longer sends credentials")
            raise NotReadyError(f"waiting for {name} to send credentials on {relation.name}")
        return source_from_relation(
            name,
            endpoints=response.endpoints,
            username=response.username or "",
            password=response.password or "",
            tls=bool(response.tls),
            tls_ca=response.tls_ca,
            relation_name=self.relation_name,
        )

    def _unreadable_secret(self, relation: ops.Relation) -> tuple[str, str] | None:
        """The first secret the response names (its field and ID) that this unit cannot read.

        The response's `secret-user`, `secret-tls` and `secret-extra`, in a v1 `requests` list
        or at the top of a v0 databag; what is not a response is left to the interface's model.
        """
        data = relation.data[relation.app] if relation.app else {}
        answers: list[object] = [data]
        try:
            listed = json.loads(data.get("requests") or "[]")
        except ValueError:
            listed = []
        if isinstance(listed, list):
            answers += listed
        for answer in answers:
            if not isinstance(answer, Mapping):
                continue
            for field in _SECRET_FIELDS:
                secret_id = answer.get(field)
                if not isinstance(secret_id, str) or not secret_id:
                    continue
                try:
                    self.model.get_secret(id=secret_id).get_content()
                except ops.ModelError:  # SecretNotFoundError, or permission denied
                    return field, secret_id
        return None
