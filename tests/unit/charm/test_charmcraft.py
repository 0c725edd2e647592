# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""charmcraft.yaml, validated by charmcraft's own models, and matched against the charm's code."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

import identities
from config import BrokerConfig
from tests.unit.helpers import REPO

CHARMCRAFT_YAML = REPO / "charmcraft.yaml"

# charmcraft's own validator reads its deprecated `charmhub` field while validating any project,
# and pydantic warns on that read: the warning is charmcraft's, not about our file.
CHARMHUB_DEPRECATION = "ignore:The 'charmhub' field is deprecated:DeprecationWarning"


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(CHARMCRAFT_YAML.read_text())


@pytest.mark.filterwarnings(CHARMHUB_DEPRECATION)
def test_charmcraft_accepts_the_project():
    from charmcraft.models.metadata import CharmMetadata
    from charmcraft.models.project import CharmcraftProject, PlatformCharm

    project = CharmcraftProject.from_yaml_file(CHARMCRAFT_YAML)

    assert isinstance(project, PlatformCharm)  # the unified format, with platforms
    assert project.name == "kafka-k8s"
    assert project.base == "ubuntu@24.04"
    metadata = CharmMetadata.from_charm(project)  # what `charmcraft pack` writes
    assert (metadata.containers or {})["kafka"]["resource"] == "kafka-image"
    assert (metadata.resources or {})["kafka-image"]["type"] == "oci-image"
    assert (metadata.peers or {})["cluster"]["interface"] == "cluster"
    assert (metadata.provides or {})["kafka-client"]["interface"] == "kafka_client"
    assert (metadata.requires or {})["migration-source"]["interface"] == "kafka_client"


def test_config_options_are_valid_juju_config(raw):
    from charmcraft.models.config import JujuConfig

    config = JujuConfig.model_validate(raw["config"])

    assert config.options


def test_every_option_is_a_broker_field_a_mirrormaker_option_or_the_identities(raw):
    broker_options = {field.alias for field in BrokerConfig.model_fields.values()}
    options = set(raw["config"]["options"])

    assert broker_options <= options
    others = {o for o in options - broker_options if not o.startswith("mirrormaker-")}
    # charm-refresh's option, which it reads itself, and the identity map of the cutover.
    assert others == {"pause-after-unit-refresh", identities.OPTION}


def test_broker_defaults_match_the_model(raw):
    options = raw["config"]["options"]
    names = [str(field.alias) for field in BrokerConfig.model_fields.values()]
    defaults = {name: options[name]["default"] for name in names}

    assert BrokerConfig.from_options(defaults) == BrokerConfig()


def test_migration_actions_exist(raw):
    # charmcraft 4.5's `JujuActions` model cannot be instantiated (its name regex is a pydantic
    # private attribute), and the project model keeps actions as a plain dict: check by hand.
    actions = raw["actions"]

    assert {
        "start-migration",
        "stop-migration",
        "migration-status",
        "switch-group",
        "finish-migration",
    } <= set(actions)
    assert actions["start-migration"]["params"]["dry-run"]["type"] == "boolean"
    assert actions["start-migration"]["params"]["force"]["default"] is False
    assert actions["migration-status"]["params"]["quiet-seconds"]["default"] == 10
    assert actions["switch-group"]["required"] == ["group"]
    assert set(actions["finish-migration"]["params"]) == {"topics", "force", "cleanup"}
    assert all(action.get("description") for action in actions.values())
    assert all(action.get("additionalProperties") is False for action in actions.values())


def test_the_library_snippet_declares_what_charmcraft_yaml_declares(raw):
    from charms.kafka_k8s.v0 import mirrormaker

    snippet = yaml.safe_load((mirrormaker.__doc__ or "").split("```yaml")[1].split("```")[0])
    assert set(snippet["actions"]) <= set(raw["actions"])
    for name, action in snippet["actions"].items():
        assert set(action.get("params", {})) == set(raw["actions"][name].get("params", {}))
    assert set(snippet["config"]["options"]) <= set(raw["config"]["options"])
