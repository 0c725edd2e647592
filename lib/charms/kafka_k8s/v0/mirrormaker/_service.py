# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The MirrorMaker services, the migration's and a failback's: their files and Pebble layers."""

from __future__ import annotations

from pathlib import PurePosixPath

import ops

from ._names import FAILBACK_SERVICE, SERVICE
from ._options import FailbackSettings, MirrorMakerSettings, MirrorMakerWorkload
from ._rendering import JMX_RULES, mirrormaker_layer, render_mm2_properties, render_mm2_secrets


def _push_if_changed(
    container: ops.Container,
    path: PurePosixPath,
    content: str,
    *,
    secret: bool,
    user: str,
    group: str,
) -> bool:
    """Write a file into the container unless it already holds `content` with the right mode.

    Files holding secrets are mode 0600; every file is owned by the workload user. A file whose
    content is right but whose mode is not is written again, with the mode.

    Returns:
        Whether the content changed (a mode put right alone is no change to act on).
    """
    mode = 0o600 if secret else 0o644
    try:
        with container.pull(path) as current:
            same = current.read() == content
    except ops.pebble.PathError:
        same = False
    if same and container.list_files(path, itself=True)[0].permissions == mode:
        return False
    container.push(path, content, make_dirs=True, permissions=mode, user=user, group=group)
    return not same


class _Service:
    """A MirrorMaker service in its container: its files, its layer, its state.

    Subclasses name the service and say which files it reads and what its layer is.
    """

    name: str

    def __init__(self, container: ops.Container, workload: MirrorMakerWorkload | None = None):
        self.container = container
        self.workload = workload or MirrorMakerWorkload()

    def _write(self, path: PurePosixPath, content: str, *, secret: bool) -> bool:
        workload = self.workload
        return _push_if_changed(
            self.container, path, content, secret=secret, user=workload.user, group=workload.group
        )

    def _removed(self) -> tuple[PurePosixPath, ...]:
        """The files `stop` removes: those that hold or name the passwords."""
        return ()

    def state(self) -> str:
        """The Pebble state of the service: active, inactive, backoff, error, or absent."""
        services = self.container.get_services(self.name)
        if self.name not in services:
            return "absent"
        current = services[self.name].current  # "backoff" is not in ops' enum
        return current.value if isinstance(current, ops.pebble.ServiceStatus) else str(current)

    def _apply(self, changed: bool, layer: ops.pebble.LayerDict) -> None:
        """Bring the service up with this layer; restart it if its files or layer changed.

        Raises:
            ops.pebble.ChangeError: if Pebble cannot start the service.
        """
        before = self.container.get_plan().services.get(self.name)
        self.container.add_layer(self.name, layer, combine=True)
        after = self.container.get_plan().services.get(self.name)
        layer_changed = before is None or after is None or before.to_dict() != after.to_dict()
        state = self.state()
        if state in ("active", "backoff"):
            if changed or layer_changed:
                self.container.restart(self.name)
        else:
            self.container.start(self.name)

    def restart(self) -> bool:
        """Restart the service if it runs (or waits to be started again): all its tasks restart.

        Returns:
            Whether it was restarted.
        """
        if self.state() not in ("active", "backoff"):
            return False
        self.container.restart(self.name)
        return True

    def stop(self) -> None:
        """Stop the service, keep it from starting with the container, remove its secrets."""
        if self.name in self.container.get_plan().services:
            disabled: ops.pebble.LayerDict = {
                "services": {self.name: {"override": "merge", "startup": "disabled"}}
            }
            self.container.add_layer(self.name, disabled, combine=True)
            if self.state() in ("active", "backoff"):
                self.container.stop(self.name)
        for path in self._removed():
            if self.container.exists(path):
                self.container.remove_path(path)


class MirrorMakerService(_Service):
    """The migration's MirrorMaker in its container: its files, its layer, its service."""

    name = SERVICE

    def _removed(self) -> tuple[PurePosixPath, ...]:
        return (self.workload.mm2_properties, self.workload.mm2_secrets)

    def configure(self, settings: MirrorMakerSettings) -> bool:
        """Write the files MirrorMaker reads: `mm2.properties`, its secrets, its JMX rules.

        The passwords go only into the secrets file (mode 0600); `mm2.properties` refers to them,
        so the connector configs MirrorMaker stores in a topic hold no password.

        Returns:
            Whether `mm2.properties` or the secrets changed (MirrorMaker reads both at start).
        """
        workload = self.workload
        self._write(workload.jmx_config, JMX_RULES, secret=False)
        secrets = self._write(workload.mm2_secrets, render_mm2_secrets(settings), secret=True)
        config = self._write(workload.mm2_properties, render_mm2_properties(settings), secret=True)
        return secrets or config

    def run(self, settings: MirrorMakerSettings) -> None:
        """Write the files and bring the service up; restart it when its files or layer changed.

        A changed password (a rotation) changes only the secrets file: that restarts it too.

        Raises:
            ops.pebble.ChangeError: if Pebble cannot start the service.
        """
        self._apply(self.configure(settings), mirrormaker_layer(settings))


class FailbackService(_Service):
    """A failback's copy back in its container: MirrorMaker from this cluster to the source.

    It runs beside the migration's MirrorMaker, with files, a REST port and logs of its own.
    """

    name = FAILBACK_SERVICE

    def _removed(self) -> tuple[PurePosixPath, ...]:
        return (self.workload.failback_properties, self.workload.failback_secrets)

    def run(self, settings: FailbackSettings) -> None:
        """Write its files and bring the service up; restart it when they or its layer changed.

        Raises:
            ops.pebble.ChangeError: if Pebble cannot start the service.
        """
        workload = self.workload
        secrets = self._write(workload.failback_secrets, settings.secrets(), secret=True)
        config = self._write(workload.failback_properties, settings.properties(), secret=True)
        self._apply(secrets or config, settings.pebble_layer())
