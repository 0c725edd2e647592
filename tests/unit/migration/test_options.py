# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The typed inputs (`_options`): the `mirrormaker-*` options, the workload.

What is wrong with a value is raised naming the option; the defaults are `charmcraft.yaml`'s;
topics are selected by whole-name regular expressions.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
import yaml
from pydantic import ValidationError

from charms.kafka_k8s.v0.mirrormaker import (
    InvalidOptionError,
    MigrationConfig,
    MirrorMakerWorkload,
    _options,
)
from tests.unit.helpers import REPO, settings

# The mirrormaker-* options -----------------------------------------------------------------------


def test_charmcraft_defaults_are_the_model_defaults():
    options = yaml.safe_load((REPO / "charmcraft.yaml").read_text())["config"]["options"]
    defaults = {
        name: option["default"]
        for name, option in options.items()
        if name.startswith("mirrormaker-") and "default" in option
    }
    unset = {
        "mirrormaker-source-credentials",
        "mirrormaker-failback-credentials",
        "mirrormaker-heap-mb",
    }
    assert set(defaults) | unset == {
        str(field.validation_alias)
        for field in MigrationConfig.model_fields.values()
        if field.validation_alias
    }
    assert MigrationConfig.from_options(defaults) == MigrationConfig()


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("mirrormaker-topics", "orders[", "'orders[' is not a valid regular expression"),
        ("mirrormaker-topics", "", "needs at least one regular expression"),
        ("mirrormaker-topics", " , ", "needs at least one regular expression"),
        ("mirrormaker-topics-exclude", "a, (b", "'(b' is not a valid regular expression"),
        ("mirrormaker-groups", "*", "'*' is not a valid regular expression"),
        ("mirrormaker-groups", "", "needs at least one regular expression"),
        ("mirrormaker-groups-exclude", "x{2,3}", "'x{2' is not a valid regular expression"),
        ("mirrormaker-topics", "{orders}", "a '{' must open a {n} or {n,} quantifier"),
        ("mirrormaker-tasks-max", 0, "greater than or equal to 1"),
        ("mirrormaker-tasks-max", 1001, "less than or equal to 1000"),
        ("mirrormaker-refresh-interval", 4, "greater than or equal to 5"),
        ("mirrormaker-refresh-interval", 86401, "less than or equal to 86400"),
        ("mirrormaker-replication-policy", "mirror", "'identity' or 'prefixed'"),
        ("mirrormaker-replication-policy", "", "'identity' or 'prefixed'"),
        ("mirrormaker-source-bootstrap-servers", "old-0", "'old-0' is not HOST:PORT"),
        ("mirrormaker-source-bootstrap-servers", "old-0:0", "'old-0:0' is not HOST:PORT"),
        ("mirrormaker-source-bootstrap-servers", "a:1,:9092", "':9092' is not HOST:PORT"),
        ("mirrormaker-source-bootstrap-servers", "old:99999", "'old:99999' is not HOST:PORT"),
        ("mirrormaker-source-bootstrap-servers", "old\nx=1:9092", "is not HOST:PORT"),
        ("mirrormaker-source-bootstrap-servers", "old\t1:9092", "is not HOST:PORT"),
        ("mirrormaker-source-bootstrap-servers", "old\x001:9092", "is not HOST:PORT"),
        ("mirrormaker-source-bootstrap-servers", "old\u20281:9092", "is not HOST:PORT"),
        ("mirrormaker-source-bootstrap-servers", "old:90\u00b2", "is not HOST:PORT"),
        ("mirrormaker-heap-mb", 255, "greater than or equal to 256"),
        ("mirrormaker-heap-mb", 65537, "less than or equal to 65536"),
        ("mirrormaker-source-role", "owner", "'consumer' or 'admin'"),
    ],
)
def test_bad_option_is_named(option: str, value: object, reason: str):
    with pytest.raises(InvalidOptionError) as caught:
        MigrationConfig.from_options({option: value})
    assert caught.value.option == option
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"invalid config {option}: ")
    assert caught.value.status().name == "blocked"


def test_options_are_split_and_trimmed_and_others_ignored():
    config = MigrationConfig.from_options(
        {
            "mirrormaker-topics": " a , b,,",
            "mirrormaker-source-bootstrap-servers": "old-0:9092, old-1:9092",
            "mirrormaker-source-credentials": "",
            "num-partitions": 3,
        }
    )
    assert config.topics == ("a", "b")
    assert config.source_bootstrap_servers == ("old-0:9092", "old-1:9092")
    assert config.source_credentials is None


def test_target_topic_follows_the_policy():
    assert MigrationConfig().target_topic("orders") == "orders"
    assert MigrationConfig(replication_policy="prefixed").target_topic("orders") == (
        "source.orders"
    )


# Selection ---------------------------------------------------------------------------------------


def test_select_matches_whole_names():
    names = ["orders", "orders.v2", "orders-internal", "payments", "xorders", "__consumer_offsets"]
    assert _options.select(names, [r"orders.*", "payments"], [r".*[\-\.]internal"]) == [
        "orders",
        "orders.v2",
        "payments",
    ]
    assert _options.select(names, ["order"], []) == []
    assert _options.select(names, [".*"], ["__.*"]) == sorted(set(names) - {"__consumer_offsets"})


def test_internal_topics_are_never_selected():
    assert _options.is_internal_topic("__consumer_offsets")
    assert _options.is_internal_topic("mm2-offsets.source.internal")
    assert _options.is_internal_topic("source.checkpoints.internal")
    assert not _options.is_internal_topic("orders")


# The workload ------------------------------------------------------------------------------------


@pytest.mark.parametrize("root", ["/srv/a:b", "/srv/a}b", "/srv/a,b", "/srv/$a"])
def test_a_root_that_references_cannot_name_is_refused(root: str):
    with pytest.raises(ValidationError, match="config references cannot"):
        MirrorMakerWorkload(root=PurePosixPath(root))


def test_secrets_stay_out_of_model_reprs():
    rendering = repr(settings())
    assert "source-password" not in rendering
    assert "target-password" not in rendering
