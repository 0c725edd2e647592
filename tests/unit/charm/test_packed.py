# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The packed charm: only what `charmcraft.yaml`'s parts stage, run from its own copy.

`packed_layout` lays the charm out as `charmcraft pack` would: the uv plugin's copy of `src/` and
`lib/` (charmcraft's `get_charm_copy_commands`), what each `dump` part stages, and the metadata
files charmcraft writes from `charmcraft.yaml`. A child Python, whose import path holds only that
copy and the installed dependencies, runs install and config-changed under ops.testing with the
copy as the charm's root: a file the parts forget (a template) fails the hook there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.unit.helpers import REPO

RUN_HOOKS = """
import json, sys
from pathlib import Path

import ops
import yaml
from ops import testing

import charm
from charms.kafka_k8s.v0 import mirrormaker

root = Path(sys.argv[1])
meta, config, actions = (
    yaml.safe_load((root / name).read_text())
    for name in ("metadata.yaml", "config.yaml", "actions.yaml")
)
ctx = testing.Context(
    charm.KafkaK8sCharm, meta=meta, config=config, actions=actions, charm_root=root
)
fmt = testing.Exec(["/opt/kafka/bin/kafka-storage.sh", "format"])
# The broker is not ready yet, so no hook reaches for a Kafka cluster.
down = testing.CheckInfo(
    "kafka-ready", level=ops.pebble.CheckLevel.READY, status=ops.pebble.CheckStatus.DOWN
)
check = {"override": "replace", "level": "ready", "tcp": {"port": 9092}}
kafka = testing.Container(
    "kafka",
    can_connect=True,
    execs={fmt},
    layers={"kafka": ops.pebble.Layer({"checks": {"kafka-ready": check}})},
    check_infos={down},
)
state = testing.State(
    leader=True,
    containers={kafka},
    relations={testing.PeerRelation("cluster")},
    planned_units=1,
)
for event in ("install", "config_changed"):
    state = ctx.run(getattr(ctx.on, event)(), state)
fs = state.get_container("kafka").get_filesystem(ctx)
settings = mirrormaker.MirrorMakerSettings(
    source=mirrormaker.SourceCluster(
        name="old", bootstrap_servers="old:9092", username="u", password="p"
    ),
    target=mirrormaker.TargetCluster(bootstrap_servers="new:19092", username="u", password="p"),
    unit_host="kafka-0.kafka-endpoints",
)
print(json.dumps({
    "charm_file": charm.__file__,
    "library_file": mirrormaker.__file__,
    "mm2_properties": settings.mm2_properties(),
    "status": [state.unit_status.name, state.unit_status.message],
    "server_properties": (fs / "etc/kafka/server.properties").read_text(),
    "jmx": (fs / "etc/kafka/jmx_prometheus.yaml").read_text(),
}))
"""


def packed_layout(target: Path) -> Path:
    """Lay the charm out in `target` as `charmcraft pack` would, from `charmcraft.yaml`'s parts.

    Raises:
        AssertionError: on a part this function does not know how to stage.
    """
    from charmcraft.models.metadata import CharmMetadata
    from charmcraft.models.project import CharmcraftProject, PlatformCharm
    from charmcraft.utils.parts import get_charm_copy_commands

    with warnings.catch_warnings():
        # charmcraft reads its own deprecated `charmhub` field while validating any project.
        warnings.filterwarnings("ignore", "The 'charmhub' field", DeprecationWarning)
        project = CharmcraftProject.from_yaml_file(REPO / "charmcraft.yaml")
        assert isinstance(project, PlatformCharm)
        metadata = CharmMetadata.from_charm(project).marshal()
    for name, part in project.parts.items():
        plugin = part.get("plugin")
        if plugin == "uv":
            # What charmcraft's uv plugin runs: `cp --archive --recursive` of src/ and lib/.
            for command in get_charm_copy_commands(REPO, target):
                subprocess.run(command, shell=True, check=True)  # noqa: S602 - charmcraft's own
        elif plugin == "dump":
            source = REPO / part.get("source", ".")
            for entry in part.get("stage", []):
                origin = source / entry
                if origin.is_dir():
                    shutil.copytree(origin, target / entry)
                else:
                    (target / entry).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / entry)
        else:
            raise AssertionError(f"part {name}: plugin {plugin} is not laid out by this test")
    raw = yaml.safe_load((REPO / "charmcraft.yaml").read_text())
    (target / "metadata.yaml").write_text(yaml.safe_dump(metadata))
    (target / "config.yaml").write_text(yaml.safe_dump(raw.get("config", {})))
    (target / "actions.yaml").write_text(yaml.safe_dump(raw.get("actions", {})))
    return target


@pytest.fixture
def packed() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        yield packed_layout(Path(directory))


def test_the_parts_stage_the_templates(packed: Path):
    assert sorted(p.name for p in (packed / "templates").iterdir()) == sorted(
        p.name for p in (REPO / "templates").iterdir()
    )
    assert (packed / "src/charm.py").exists()
    library = packed / "lib/charms/kafka_k8s/v0/mirrormaker"
    assert sorted(p.name for p in library.iterdir() if p.name != "__pycache__") == sorted(
        p.name
        for p in (REPO / "lib/charms/kafka_k8s/v0/mirrormaker").iterdir()
        if p.name != "__pycache__"
    )
    assert not (packed / "tests").exists()
    assert not (packed / "substrate").exists()


def test_install_and_config_changed_run_from_the_packed_copy(packed: Path):
    # The runner's directory comes first on its import path: one of its own, so that no stray
    # module in a shared directory (a `models.py` in /tmp) shadows the charm's.
    with tempfile.TemporaryDirectory() as runner:
        script = Path(runner) / "run.py"
        script.write_text(RUN_HOOKS)
        result = subprocess.run(
            [sys.executable, "-W", "ignore", str(script), str(packed)],
            env={"PYTHONPATH": f"{packed / 'src'}:{packed / 'lib'}", "PATH": "/usr/bin:/bin"},
            cwd=packed,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["charm_file"].startswith(str(packed))
    # The migration library is a package: its modules and its template load from the copy.
    assert out["library_file"] == str(packed / "lib/charms/kafka_k8s/v0/mirrormaker/__init__.py")
    assert "source.bootstrap.servers=old:9092" in out["mm2_properties"]
    assert out["status"] == ["waiting", "waiting for the broker to accept clients"]
    assert "process.roles=broker,controller" in out["server_properties"]
    assert "kafka_server" in out["jmx"]
