# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The MirrorMaker service: its files and its Pebble layer in the workload container."""

from __future__ import annotations

from pathlib import PurePosixPath

import ops

from ._names import SERVICE
from ._options import MirrorMakerSettings, MirrorMakerWorkload
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


class MirrorMakerService:
    """MirrorMaker in its container: its files, its layer, its service."""

    def __init__(self, container: ops.Container, workload: MirrorMakerWorkload | None = None):
        self.container = container
        self.workload = workload or MirrorMakerWorkload()

    def _write(self, path: PurePosixPath, content: str, *, secret: bool) -> bool:
        workload = self.workload
        return _push_if_changed(
            self.container, path, content, secret=secret, user=workload.user, group=workload.group
        )

    def state(self) -> str:
        """The Pebble state of the service: active, inactive, backoff, error, or absent."""
        services = self.container.get_services(SERVICE)
        if SERVICE not in services:
            return "absent"
        current = services[SERVICE].current  # "backoff" is not in ops' enum
        return current.value if isinstance(current, ops.pebble.ServiceStatus) else str(current)

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
        changed = self.configure(settings)
        before = self.container.get_plan().services.get(SERVICE)
        self.container.add_layer(SERVICE, mirrormaker_layer(settings), combine=True)
        after = self.container.get_plan().services.get(SERVICE)
        layer_changed = before is None or after is None or before.to_dict() != after.to_dict()
        state = self.state()
        if state in ("active", "backoff"):
            if changed or layer_changed:
                self.container.restart(SERVICE)
        else:
            self.container.start(SERVICE)

    def restart(self) -> bool:
        """Restart the service if it runs (or waits to be started again): all its tasks restart.

        Returns:
            Whether it was restarted.
        """
        if self.state() not in ("active", "backoff"):
            return False
        self.container.restart(SERVICE)
        return True

    def stop(self) -> None:
        """Stop the service, keep it from starting with the container, remove its secrets."""
        if SERVICE in self.container.get_plan().services:
            disabled: ops.pebble.LayerDict = {
                "services": {SERVICE: {"override": "merge", "startup": "disabled"}}
            }
            self.container.add_layer(SERVICE, disabled, combine=True)
            if self.state() in ("active", "backoff"):
                self.container.stop(SERVICE)
        for path in (self.workload.mm2_properties, self.workload.mm2_secrets):
            if self.container.exists(path):
                self.container.remove_path(path)
