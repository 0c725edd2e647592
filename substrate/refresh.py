# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""A refresh of the charm on the local runtime: one unit's pod replaced by a newer revision's.

No Juju and no Kubernetes run here, so neither charm-refresh nor a StatefulSet replaces the
pods; what they do to one unit is done by `replace_unit`, and the roll's order and gate are the
caller's (the local tier's: the highest unit first, the next once `refresh.next_unit_may_refresh`
says so, as the charm tells charm-refresh).

- `new_revision` copies the charm's code (`src/`, `lib/`, `templates/` and this `substrate/`)
  into a directory and raises the migration library's `LIBPATCH`: a newer revision of the charm.
- `replace_unit` stops the unit's services as a pod's termination does (Pebble stops them, each
  within its kill-delay), loses what the pod's filesystem held (the files the charm rendered in
  `etc/kafka`, Pebble's state), keeps its storage (`var/lib/kafka`), starts a new Pebble, and
  runs the new revision's code on it in a process of its own (`python -m substrate.refresh`):
  the broker's reconcile and, while a migration is requested, MirrorMaker's service.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from substrate.processes import SubstrateError
from substrate.units import NewCluster, Unit

REPO = Path(__file__).resolve().parent.parent
CODE = ("src", "lib", "templates", "substrate")
LIBRARY = Path("lib/charms/kafka_k8s/v0/mirrormaker/__init__.py")
_LIBPATCH = re.compile(r"^LIBPATCH = (\d+)$", re.MULTILINE)
# The files the rock ships in etc/kafka; everything else there is the charm's, and the pod's.
ROCK_FILES = ("log4j.properties", "tools-log4j.properties")


def new_revision(directory: Path) -> int:
    """Copy the charm's code into `directory` with the library's LIBPATCH one higher.

    Returns:
        The new revision's LIBPATCH.
    """
    for part in CODE:
        shutil.copytree(
            REPO / part, directory / part, ignore=shutil.ignore_patterns("__pycache__")
        )
    library = directory / LIBRARY
    text = library.read_text()
    match = _LIBPATCH.search(text)
    if match is None:
        raise SubstrateError(f"no LIBPATCH in {library}")
    bumped = int(match.group(1)) + 1
    library.write_text(_LIBPATCH.sub(f"LIBPATCH = {bumped}", text, count=1))
    return bumped


def replace_unit(
    cluster: NewCluster, unit: Unit, revision: Path, mirrormaker: str | None
) -> dict[str, object]:
    """Replace the unit's pod with one running the charm revision in `revision`.

    Args:
        cluster: the unit's cluster.
        unit: the unit to replace.
        revision: a directory `new_revision` filled.
        mirrormaker: the unit's `MirrorMakerSettings` as JSON, while a migration is requested.

    Returns:
        What the new revision's process reports: its LIBPATCH and where its code was.

    Raises:
        SubstrateError: if the new revision's process fails.
    """
    container = unit.container
    running = [name for name, info in container.get_services().items() if info.is_running()]
    if running:
        container.stop(*running)
    unit.pebble.stop()
    etc = Path(unit.paths.etc)
    for path in etc.iterdir():
        if path.name in ROCK_FILES:
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    shutil.rmtree(unit.pebble.pebble_dir, ignore_errors=True)
    unit.pebble.start()
    spec = {
        "socket": str(unit.pebble.socket_path),
        "unit": f"{cluster.app}/{unit.index}",
        "broker": unit.settings.model_dump_json(),
        "mirrormaker": mirrormaker,
    }
    path = os.pathsep.join(str(revision / part) for part in ("", "lib", "src"))
    result = subprocess.run(
        [sys.executable, "-m", "substrate.refresh"],
        input=json.dumps(spec),
        env={**os.environ, "PYTHONPATH": path},
        cwd=revision,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise SubstrateError(f"the new revision failed on unit {unit.index}:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    """The new revision's code on the new pod: reconcile the broker, then MirrorMaker."""
    import ops
    import ops.pebble

    import workload
    from charms.kafka_k8s.v0 import mirrormaker
    from substrate.units import model_backend

    spec = json.load(sys.stdin)
    client = ops.pebble.Client(socket_path=spec["socket"])
    container = ops.Container("kafka", model_backend(spec["unit"]), pebble_client=client)
    settings = workload.BrokerSettings.model_validate_json(spec["broker"])
    workload.KafkaWorkload(container, settings.workload).reconcile(settings)
    if spec["mirrormaker"]:
        node = mirrormaker.MirrorMakerSettings.model_validate_json(spec["mirrormaker"])
        mirrormaker.MirrorMakerService(container, node.workload).run(node)
    report = {"libpatch": mirrormaker.LIBPATCH, "code": str(Path(workload.__file__).parent)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
