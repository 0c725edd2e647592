#!/usr/bin/env python3
# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""kafka-k8s: Apache Kafka 3.9 in KRaft mode that migrates existing clusters into itself.

Wiring only: the parts are built in `__init__`, every state-changing event goes to one
idempotent `_reconcile`, and status is set only in collect-status.
"""

from __future__ import annotations

import logging

import ops

from admin import AdminError, KafkaAdmin
from charms.kafka_k8s.v0.mirrormaker import Migration, TargetCluster
from client_provider import KafkaClients
from cluster import ClusterState
from config import BrokerConfig, InvalidConfigError
from models import ADMIN_USER, MIRRORMAKER_USER, Workload
from observability import Observability
from workload import BrokerSettings, KafkaWorkload, WorkloadError

logger = logging.getLogger(__name__)

CONTAINER = "kafka"


class KafkaK8sCharm(ops.CharmBase):
    """Apache Kafka on Kubernetes, with cluster migration."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        workload = Workload()
        self.cluster = ClusterState(self)
        self.broker = KafkaWorkload(self.unit.get_container(CONTAINER), workload)
        self.clients = KafkaClients(self, fenced=lambda: self.migration.fenced_topics())
        self.migration = Migration(
            self,
            target=self._migration_target,
            unit_host=lambda: self.cluster.this_node.host,
            container=CONTAINER,
            workload=workload.mirrormaker(),
        )
        self.observability = Observability(
            self, nodes=lambda: self.cluster.nodes, this_host=lambda: self.cluster.this_node.host
        )
        self._problem: ops.StatusBase | None = None

        for event in (
            self.on.install,
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.leader_elected,
            self.on.update_status,
            self.on.secret_changed,
            self.on[CONTAINER].pebble_ready,
            self.on[CONTAINER].pebble_check_recovered,
            self.on.cluster_relation_created,
            self.on.cluster_relation_joined,
            self.on.cluster_relation_changed,
            self.on.cluster_relation_departed,
            self.clients.handler.on.resource_requested,
            self.on["kafka-client"].relation_changed,
            self.on["kafka-client"].relation_broken,
            self.on["migration-source"].relation_changed,
            self.on["migration-source"].relation_broken,
            self.migration.requirer.on.resource_created,
            self.migration.requirer.on.endpoints_changed,
            self.migration.on.fence_changed,
            *self.observability.relation_events,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.secret_rotate, self._on_secret_rotate)
        framework.observe(self.on.collect_unit_status, self._on_collect_unit_status)
        framework.observe(self.on.collect_app_status, self._on_collect_app_status)

    def _broker_settings(self) -> BrokerSettings | None:
        """The broker's settings, or `None` with `self._problem` saying what is missing."""
        try:
            config = BrokerConfig.from_options(self.config)
        except InvalidConfigError as error:
            self._problem = ops.BlockedStatus(str(error))
            return None
        cluster_id = self.cluster.cluster_id
        credentials = self.cluster.credentials
        voters = self.cluster.voters
        if not cluster_id or credentials is None:
            self._problem = ops.WaitingStatus("waiting for the leader to initialise the cluster")
            return None
        if voters is None:
            self._problem = ops.WaitingStatus("waiting for units to join the controller quorum")
            return None
        return BrokerSettings(
            node=self.cluster.this_node,
            voters=voters,
            cluster_id=cluster_id,
            credentials=credentials,
            config=config,
        )

    def _admin(self, settings: BrokerSettings) -> KafkaAdmin:
        bootstrap = ",".join(node.internal_address for node in self.cluster.nodes)
        return KafkaAdmin(bootstrap, ADMIN_USER, settings.credentials.admin_password)

    def _migration_target(self) -> TargetCluster | None:
        """This cluster as MirrorMaker reaches it, once the broker serves."""
        credentials = self.cluster.credentials
        if credentials is None or not self.broker.can_connect() or not self.broker.is_ready():
            return None
        return TargetCluster(
            bootstrap_servers=tuple(node.internal_address for node in self.cluster.nodes),
            username=MIRRORMAKER_USER,
            password=credentials.mirrormaker_password,
        )

    def _reconcile(self, _: ops.EventBase) -> None:
        """Bring the broker, the relations and the migration to what is asked of them."""
        self._reconcile_broker()
        self.migration.reconcile()

    def _reconcile_broker(self) -> None:
        self._problem = None
        self.observability.reconcile()
        if not self.broker.can_connect():
            self._problem = ops.WaitingStatus("waiting for the kafka container")
            return
        self.cluster.initialise()
        settings = self._broker_settings()
        if settings is None:
            return
        try:
            self.broker.reconcile(settings)
        except WorkloadError as error:
            self._problem = ops.BlockedStatus(str(error))
            return
        if not self.unit.is_leader() or not self.broker.is_ready():
            return
        endpoints = ",".join(node.client_address for node in self.cluster.nodes)
        try:
            self.clients.reconcile(self._admin(settings), endpoints)
        except AdminError as error:
            logger.warning("kafka-client relations not reconciled: %s", error)
            self._problem = ops.MaintenanceStatus(
                "waiting for the cluster to accept admin requests"
            )

    def _on_secret_rotate(self, event: ops.SecretRotateEvent) -> None:
        """Rotate the SCRAM passwords of the internal users: in Kafka first, then the secret."""
        if not self.cluster.is_credentials_secret(event.secret):
            return
        settings = self._broker_settings()
        rotated = self.cluster.rotated_credentials()
        if settings is None or rotated is None:
            return
        admin = self._admin(settings)
        try:
            for user in (ADMIN_USER, MIRRORMAKER_USER):
                admin.upsert_user(user, rotated.password(user))
        except AdminError as error:
            logger.warning("internal passwords not rotated, will retry: %s", error)
            return
        self.cluster.store_credentials(rotated)
        # Juju sends secret-changed to the other units, never to the leader that owns the secret:
        # the leader re-renders its own files now, from the new passwords it already holds.
        try:
            self.broker.reconcile(settings.model_copy(update={"credentials": rotated}))
        except WorkloadError as error:
            self._problem = ops.BlockedStatus(str(error))

    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if self._problem is None and not self.broker.can_connect():
            self._problem = ops.WaitingStatus("waiting for the kafka container")
        if self._problem is None and self._broker_settings() is not None:
            if not self.broker.is_running():
                self._problem = ops.MaintenanceStatus("starting the broker")
            elif not self.broker.is_ready():
                self._problem = ops.WaitingStatus("waiting for the broker to accept clients")
        if self._problem is not None:
            event.add_status(self._problem)
        if migration := self.migration.status():
            event.add_status(migration)
        event.add_status(ops.ActiveStatus(self._role_message()))

    def _role_message(self) -> str:
        voters = self.cluster.voter_ids or []
        this = self.cluster.this_node.node_id
        return "broker and controller" if this in voters else "broker"

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        for relation_id, error in sorted(self.clients.errors.items()):
            event.add_status(ops.BlockedStatus(f"kafka-client relation {relation_id}: {error}"))
        if migration := self.migration.status():
            event.add_status(migration)
        event.add_status(ops.ActiveStatus())


if __name__ == "__main__":  # pragma: nocover
    ops.main(KafkaK8sCharm)
