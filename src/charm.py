#!/usr/bin/env python3
# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""kafka-k8s: Apache Kafka 3.9 in KRaft mode that migrates existing clusters into itself.

Wiring only: the parts are built in `__init__`, every state-changing event goes to one
idempotent `_reconcile`, and status is set only in collect-status.
"""

from __future__ import annotations

import hashlib
import json
import logging

import ops
from charmlibs.interfaces.tls_certificates import CertificateRequestAttributes
from charmlibs.rollingops import OperationResult, RollingOpsManager, RollingOpsStatus

import refresh
import rolling
from acls import grant_mirrormaker, throttle_mirrormaker
from admin import AdminError, KafkaAdmin
from charms.kafka_k8s.v0.mirrormaker import (
    InvalidOptionError,
    Migration,
    MigrationConfig,
    TargetCluster,
)
from client_provider import ClientEndpoints, KafkaClients
from cluster import ClusterState
from config import BrokerConfig, InvalidConfigError
from external import ExternalAddress, ExternalState, KubeServices, kube_client, reconcile_external
from models import MIRRORMAKER_USER, InternalCredentials, Workload
from observability import Observability
from rolling import RestartOutcome, apply_dynamic_options, apply_pending, restart_in_turn
from tls import (
    CERTIFICATES_RELATION,
    ServerTls,
    TlsCertificates,
    certificate_request,
    read_server_tls,
)
from workload import BrokerSettings, KafkaWorkload, WorkloadError

logger = logging.getLogger(__name__)

CONTAINER = "kafka"
RESTART_RELATION = "restart"
RESTART = "restart"
# In the peer application data: a digest of the internal users' passwords last written through
# the admin API.
INTERNAL_USERS_KEY = "internal-users-written"


class KafkaK8sCharm(ops.CharmBase):
    """Apache Kafka on Kubernetes, with cluster migration."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        workload = Workload()
        self.cluster = ClusterState(self)
        self.broker = KafkaWorkload(self.unit.get_container(CONTAINER), workload)
        self.clients = KafkaClients(
            self,
            fenced=lambda: self.migration.fenced_topics(),
            copied=lambda: self.migration.copied_acls(),
        )
        self.migration = Migration(
            self,
            target=self._migration_target,
            unit_host=lambda: self.cluster.this_node.host,
            container=CONTAINER,
            workload=workload.mirrormaker(),
            clients=self.clients.access,
        )
        self.observability = Observability(
            self,
            nodes=lambda: self.cluster.nodes,
            this_host=lambda: self.cluster.this_node.host,
            migrating=lambda: self.migration.requested_state == "running",
            storage=self.cluster.storage_bytes,
            certificates=self.cluster.certificate_expiries,
        )
        # The library also handles secret-remove for every secret this application owns: it
        # removes the revision no unit reads any more, the internal credentials' too (a second
        # removal of the same revision would fail the hook, so the charm does not do it itself).
        self.tls = TlsCertificates(
            self, self._certificate_request, refresh_events=[self.on.config_changed]
        )
        self.services = KubeServices(
            lambda: kube_client(self.model.name), self.app.name, self.model.name
        )
        self.restarts = RollingOpsManager(
            self,
            peer_relation_name=RESTART_RELATION,
            callback_targets={RESTART: self._restart_broker},
        )
        # `juju refresh`: charm-refresh replaces one unit at a time (src/refresh.py).
        self.refresh = refresh.open_refresh(self._refresh_checks, self._rotating)
        self._problem: ops.StatusBase | None = None
        self._rotation: ops.StatusBase | None = None
        # New internal passwords this hook set, before the secret shows them (rotation).
        self._rotated: InternalCredentials | None = None
        # This hook's look at the external Services; `None` until reconcile takes it.
        self._external: ExternalState | None = None

        for event in (
            self.on.install,
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.leader_elected,
            self.on.update_status,
            self.on.secret_changed,
            self.on[CONTAINER].pebble_ready,
            self.on.data_storage_attached,
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
            self.tls.requirer.on.certificate_available,
            self.on[CERTIFICATES_RELATION].relation_changed,
            self.on[CERTIFICATES_RELATION].relation_broken,
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
            tls=self._server_tls(),
            external=self._external_address(),
        )

    def _server_tls(self) -> ServerTls | None:
        """This unit's certificate, while the `certificates` relation is there.

        While the provider signs a changed or renewed request, the certificate the broker
        serves stays (read back from the unit), so the listener never drops back to plain text.
        """
        if self.tls.relation is None:
            return None
        assigned = self.tls.assigned()
        if assigned is not None or not self.broker.can_connect():
            return assigned
        chain, ca = self.broker.served_tls()
        return read_server_tls(chain, ca, self.tls.private_key)

    def _recorded_external_address(self) -> ExternalAddress | None:
        recorded = self.cluster.external_addresses().get(self.cluster.this_node.node_id)
        return ExternalAddress.parse(recorded) if recorded else None

    def _external_address(self) -> ExternalAddress | None:
        """The address outside clients reach this broker at.

        From this hook's look at the Services, else the one this unit recorded: collect-status
        and the restart callback never call the Kubernetes API.
        """
        if self._external is not None:
            return self._external.address
        return self._recorded_external_address()

    def _reconcile_external(self, config: BrokerConfig) -> None:
        """Services for expose-external (the leader's), and this unit's external address."""
        leader = self.unit.is_leader()
        try:
            state, exposed = reconcile_external(
                self.services,
                config.expose_external,
                port=self.cluster.this_node.ports.external,
                number=self.cluster.this_node.node_id,
                units=range(self.app.planned_units()) if leader else None,
                recorded=self._recorded_external_address(),
                exposed=self.cluster.external_services,
            )
        finally:
            self.services.close()
        if leader:
            self.cluster.record_external_services(exposed)
        self.cluster.record_external_address(state.address.address if state.address else None)
        self._external = state
        # A new external address is a new SAN: the library sends the changed request.
        self.tls.sync()

    def _certificate_request(self) -> CertificateRequestAttributes:
        """What this unit asks the `certificates` provider to sign (read by the library)."""
        external = self._recorded_external_address()
        return certificate_request(
            self.app.name,
            self.cluster.this_node.node_id,
            self.model.name,
            [external.host] if external else [],
        )

    def _client_endpoints(self, settings: BrokerSettings) -> ClientEndpoints:
        nodes = self.cluster.nodes
        tls = settings.tls
        internal = [node.client_tls_address if tls else node.client_address for node in nodes]
        external = self.cluster.external_addresses()
        unavailable = (
            "waiting for the brokers' external addresses"
            if settings.config.expose_external != "false"
            else ClientEndpoints.model_fields["external_unavailable"].default
        )
        return ClientEndpoints(
            internal=",".join(internal),
            external=",".join(external[n.node_id] for n in nodes if n.node_id in external),
            external_unavailable=unavailable,
            tls_ca=tls.ca if tls else None,
        )

    def _admin(self, settings: BrokerSettings) -> KafkaAdmin:
        """An admin client of the cluster that logs in, also in the middle of a rotation.

        Raises:
            AdminError: if the cluster does not answer or accepts no admin password.
        """
        bootstrap = ",".join(node.internal_address for node in self.cluster.nodes)
        return rolling.admin_client(bootstrap, settings.credentials, KafkaAdmin)

    def _migration_target(self) -> TargetCluster | None:
        """This cluster as MirrorMaker reaches it, once the broker serves."""
        credentials = self._rotated or self.cluster.credentials
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
        self._allow_next_unit()

    def _allow_next_unit(self) -> None:
        """Mid-refresh, once this refreshed unit is healthy again: let the next unit go.

        Healthy is `refresh.next_unit_may_refresh`: its broker registered, every partition in
        sync and, while a migration is requested, its MirrorMaker running again. Asked on every
        reconcile until it holds.
        """
        current = self.refresh.refresh
        if current is None or not current.in_progress or current.next_unit_allowed_to_refresh:
            return
        if not current.workload_allowed_to_start or not self.broker.can_connect():
            return
        if not self.broker.is_ready():
            return
        settings = self._broker_settings()
        if settings is None:
            return
        requested = self.migration.requested_state == "running"
        try:
            with self._admin(settings) as admin:
                health = admin.cluster_health()
        except AdminError as error:
            self._problem = ops.MaintenanceStatus(f"refresh: the cluster does not answer: {error}")
            return
        mirrormaker = self.migration.service.state() if requested else None
        waiting = refresh.next_unit_may_refresh(
            health, self.cluster.this_node.node_id, mirrormaker=mirrormaker
        )
        if waiting is None:
            current.next_unit_allowed_to_refresh = True
            logger.info("refreshed unit healthy: the next unit may refresh")
            return
        self._problem = ops.MaintenanceStatus(f"refresh waits before the next unit: {waiting}")

    def _refresh_checks(self) -> str | None:
        """What stands in the way of a refresh before it starts (charm-refresh asks)."""
        settings = self._broker_settings()
        if settings is None:
            return "Cluster not initialised"
        try:
            with self._admin(settings) as admin:
                health = admin.cluster_health()
        except AdminError:
            return "Cluster does not answer admin requests"
        return refresh.pre_refresh_problem(health, (node.node_id for node in self.cluster.nodes))

    def _rotating(self) -> bool:
        credentials = self.cluster.credentials
        return credentials is not None and bool(credentials.pending)

    def _reconcile_broker(self) -> None:
        self._problem = None
        self.observability.reconcile()
        if not self.broker.can_connect():
            self._problem = ops.WaitingStatus("waiting for the kafka container")
            return
        self.cluster.initialise()
        try:
            self._reconcile_external(BrokerConfig.from_options(self.config))
        except InvalidConfigError:
            pass  # `_broker_settings` reports it
        settings = self._broker_settings()
        if settings is None:
            return
        if not self.refresh.workload_allowed and not self.broker.is_running():
            # Mid-refresh, this unit's new revision starts its broker once charm-refresh says.
            self._problem = ops.WaitingStatus("waiting for the refresh to let this unit start")
            return
        self.cluster.record_certificate_expiry(settings.tls.expires if settings.tls else None)
        if not self._apply(settings):
            return
        if not self.unit.is_leader() or not self.broker.is_ready():
            return
        endpoints = self._client_endpoints(settings)
        try:
            with self._admin(settings) as admin:
                self._write_internal_users(admin, settings)
                apply_dynamic_options(admin, settings.config)
                grant_mirrormaker(
                    admin,
                    sync_topic_acls=bool(self.config.get("mirrormaker-sync-topic-acls")),
                    promoted=self.migration.promoted_topics(),
                )
                self._throttle_mirrormaker(admin)
                self._measure_storage(admin)
                self._advance_rotation(admin, settings)
                fenced = self.migration.fenced_topics()
                if self.clients.reconcile(admin, endpoints):
                    self.migration.fence_applied(fenced)
        except AdminError as error:
            logger.warning("the cluster did not take admin requests: %s", error)
            self._problem = ops.MaintenanceStatus(
                "waiting for the cluster to accept admin requests"
            )

    def _apply(self, settings: BrokerSettings) -> bool:
        """Write the broker's files, start it, and ask for a turn to restart it if it must.

        Returns:
            Whether the workload took the settings (else `self._problem` says why).
        """
        if settings.tls is None and self.tls.relation is not None and not self.broker.is_running():
            # A broker that starts now would serve plain text beside brokers that serve TLS.
            self._problem = self.tls.pending_status()
            return False
        try:
            must_restart = self.broker.reconcile(settings)
        except WorkloadError as error:
            self._problem = ops.BlockedStatus(str(error))
            return False
        record = self.broker.started_with() if self.broker.is_running() else None
        self.cluster.record_inter_broker_user(record.inter_broker_user if record else None)
        if must_restart and self.model.get_relation(RESTART_RELATION) is not None:
            self.restarts.request_async_lock(RESTART)
        return True

    def _throttle_mirrormaker(self, admin: KafkaAdmin) -> None:
        """On the leader: cap MirrorMaker's writes at `mirrormaker-throttle-mb-per-second`.

        While the migration's options are invalid the quota stays as it is (the migration's
        status names the option).
        """
        try:
            config = MigrationConfig.from_options(self.config)
        except InvalidOptionError:
            return
        throttle_mirrormaker(admin, config.throttle_mb_per_second, len(self.cluster.nodes))

    def _measure_storage(self, admin: KafkaAdmin) -> None:
        """On the leader: record each broker's data volume, for the storage alert rules."""
        try:
            sizes = admin.log_dir_bytes(node.node_id for node in self.cluster.nodes)
        except AdminError as error:
            logger.info("the brokers' storage was not measured: %s", error)
            return
        self.cluster.record_storage_bytes(sizes)

    def _write_internal_users(self, admin: KafkaAdmin, settings: BrokerSettings) -> None:
        """On the leader, once the cluster serves: write the internal users through the API.

        The storage format's `--add-scram` users are bootstrap records only (see README). Done
        once per set of passwords.
        """
        if settings.credentials.pending:
            return  # a rotation under way sets its own; the committed ones are written after
        users = settings.credentials.scram_users
        digest = hashlib.sha256(json.dumps(users, sort_keys=True).encode()).hexdigest()
        relation = self.cluster.relation
        if relation is None or relation.data[self.app].get(INTERNAL_USERS_KEY) == digest:
            return
        rolling.ensure_internal_users(admin, settings.credentials)
        relation.data[self.app][INTERNAL_USERS_KEY] = digest

    def _advance_rotation(self, admin: KafkaAdmin, settings: BrokerSettings) -> None:
        """On the leader: carry a rotation whose passwords are pending in the secret.

        The new replication user's password is only set while no broker logs in with it; then
        each pending password is set in Kafka, and the secret makes them current. Any step
        that fails is retried by the next reconcile.
        """
        credentials = settings.credentials
        if not credentials.pending:
            return
        behind = self.cluster.units_on(credentials.inter_broker_user)
        if behind:
            self._rotation = ops.MaintenanceStatus(
                f"password rotation waits for {', '.join(behind)} to restart"
            )
            return
        apply_pending(admin, credentials)
        committed = credentials.committed()
        self.cluster.store_credentials(committed)
        logger.info("internal passwords rotated; the brokers restart one at a time")
        # Juju sends secret-changed to the other units, never to the leader that owns the
        # secret: the leader applies the new passwords itself now, MirrorMaker's too (the
        # migration's reconcile follows in this hook; it reads them from `_rotated`).
        self._rotated = committed
        self._apply(settings.model_copy(update={"credentials": committed}))

    def _on_secret_rotate(self, event: ops.SecretRotateEvent) -> None:
        """Rotate the internal passwords: stored as pending first, then carried by reconcile."""
        if not self.cluster.is_credentials_secret(event.secret):
            return
        self.cluster.begin_rotation()
        self._reconcile(event)

    def _restart_broker(self) -> OperationResult:
        """The rolling-restart lock's callback: this unit's turn to restart its broker."""
        settings = self._broker_settings()
        if settings is None or not self.broker.can_connect():
            return OperationResult.RELEASE
        try:
            admin = self._admin(settings)
        except AdminError as error:
            logger.warning("no restart now, the cluster does not answer: %s", error)
            return OperationResult.RETRY_RELEASE
        with admin:
            outcome = restart_in_turn(
                self.broker,
                settings,
                admin,
                timeout=rolling.SYNC_TIMEOUT,
                interval=rolling.SYNC_INTERVAL,
            )
        record = self.broker.started_with()
        self.cluster.record_inter_broker_user(record.inter_broker_user if record else None)
        logger.info("rolling restart turn: %s", outcome.value)
        return {
            RestartOutcome.DONE: OperationResult.RELEASE,
            RestartOutcome.CLUSTER_NOT_IN_SYNC: OperationResult.RETRY_RELEASE,
            RestartOutcome.NOT_BACK_IN_SYNC: OperationResult.RETRY_HOLD,
        }[outcome]

    def _on_collect_unit_status(self, event: ops.CollectStatusEvent) -> None:
        if first := self.refresh.unit_status():
            event.add_status(first)  # charm-refresh's comes before every other
            return
        self._find_broker_problem()
        # What TLS and external access wait for comes first: it outlasts a broker's start.
        for status in (*self._tls_statuses(), *self._external_statuses()):
            event.add_status(status)
        if self._problem is not None:
            event.add_status(self._problem)
        if identities := self.clients.identities_problem:
            event.add_status(ops.BlockedStatus(identities))
        if self._rotation is not None:
            event.add_status(self._rotation)
        if self.restarts.state.status in (RollingOpsStatus.WAITING, RollingOpsStatus.GRANTED):
            event.add_status(
                ops.MaintenanceStatus("waiting for this unit's turn to restart its broker")
            )
        if migration := self.migration.status():
            event.add_status(migration)
        running = self.broker.can_connect() and self.broker.is_running()
        if quiet := self.refresh.quiet_status(running=running):
            event.add_status(quiet)  # before the role, which is always said
        event.add_status(ops.ActiveStatus(self._role_message()))

    def _find_broker_problem(self) -> None:
        """Unless the hook found a problem: what the broker waits for, in `_problem`."""
        if self._problem is None and not self.broker.can_connect():
            self._problem = ops.WaitingStatus("waiting for the kafka container")
        if self._problem is None and self._broker_settings() is not None:
            if not self.broker.is_running():
                self._problem = ops.MaintenanceStatus("starting the broker")
            elif not self.broker.is_ready():
                self._problem = ops.WaitingStatus("waiting for the broker to accept clients")

    def _tls_statuses(self) -> list[ops.StatusBase]:
        if not self.broker.can_connect():
            return []
        record = self.broker.started_with() if self.broker.is_running() else None
        return self.tls.statuses(
            assigned=self._server_tls() is not None,
            client_tls=record is not None and record.client_tls,
            client_port=self.cluster.this_node.ports.client,
        )

    def _external_statuses(self) -> list[ops.StatusBase]:
        external = self._external
        if external is None:
            return []
        if external.blocked:
            return [ops.BlockedStatus(external.blocked)]
        return [ops.WaitingStatus(external.waiting)] if external.waiting else []

    def _role_message(self) -> str:
        voters = self.cluster.voter_ids or []
        this = self.cluster.this_node.node_id
        role = "broker and controller" if this in voters else "broker"
        record = self.broker.started_with() if self.broker.can_connect() else None
        if record is not None and record.client_tls:
            role += ", TLS"
        external = self._recorded_external_address()
        return f"{role}, external {external.address}" if external else role

    def _on_collect_app_status(self, event: ops.CollectStatusEvent) -> None:
        if self.refresh.untrusted:
            return  # charm-refresh says to run `juju trust`; the charm must not set one
        if first := self.refresh.app_status():
            event.add_status(first)
            return
        for relation_id, error in sorted(self.clients.errors.items()):
            event.add_status(ops.BlockedStatus(f"kafka-client relation {relation_id}: {error}"))
        if identities := self.clients.identities_problem:
            event.add_status(ops.BlockedStatus(identities))
        # The operator's map of client identities, before the migration's own active status.
        if mapped := self.clients.access().summary():
            event.add_status(ops.ActiveStatus(mapped))
        if migration := self.migration.status():
            event.add_status(migration)
        event.add_status(ops.ActiveStatus())


if __name__ == "__main__":  # pragma: nocover
    ops.main(KafkaK8sCharm)
