# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Rendering (`_rendering`): `mm2.properties`, its secrets file and the Pebble layer of one node.

Pure functions of `MirrorMakerSettings` (built by `helpers.settings`). Rendered files are read
back with `helpers.load_properties`, which parses `.properties` as Java does, and JAAS entries
with `parse_jaas`, which parses them as Kafka does.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from charms.kafka_k8s.v0.mirrormaker import (
    FailbackSettings,
    MigrationConfig,
    MirrorMakerWorkload,
    OAuthClient,
    SourceCluster,
    TargetCluster,
    _rendering,
)
from tests.unit.helpers import (
    CLIENT_CERTIFICATE,
    CLIENT_KEY,
    FILE_PROVIDER,
    SOURCE_CA,
    load_properties,
    logical_lines,
    resolve_references,
    settings,
)

CA = SOURCE_CA
HOSTILE = [
    'p"q',
    "back\\slash\\",
    "a=b:c#d!e",
    " leading and trailing ",
    "\ttab",
    "new\nline\r\nand\fform",
    "ünïcödé-密码",
    "emoji-😀-𝄞",
    "\\u0041 not an escape",
    "#!=: start",
    "${file:/etc/passwd:x}",
    "semi;colon 'single' \"double\"",
    "\\",
    '\\"',
    "\\0\\101 octal",
]


# A reader of JAAS entries, following Kafka's JaasConfig ------------------------------------------


def parse_jaas(config: str) -> tuple[str, str, dict[str, str]]:
    """Parse one JAAS entry as Kafka's `JaasConfig` does with `java.io.StreamTokenizer`."""
    match = re.match(r"\s*([\w.$-]+)\s+(required|requisite|sufficient|optional)\s*", config)
    assert match, config
    position = match.end()
    options: dict[str, str] = {}
    escapes = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
    while config[position] != ";":
        key_match = re.match(r"([\w.$-]+)\s*=\s*\"", config[position:])
        assert key_match, config[position:]
        position += key_match.end()
        value: list[str] = []
        while config[position] != '"':
            char = config[position]
            assert char not in "\r\n", "a raw line break ends a quoted JAAS value"
            if char == "\\":
                position += 1
                char = config[position]
                if char in "01234567":
                    digits = re.match(r"[0-7]{1,3}", config[position:])
                    assert digits
                    value.append(chr(int(digits.group(), 8)))
                    position += len(digits.group())
                    continue
                char = escapes.get(char, char)
            value.append(char)
            position += 1
        options[key_match.group(1)] = "".join(value)
        position += 1
        while config[position] == " ":
            position += 1
    assert config[position + 1 :].strip() == ""
    return match.group(1), match.group(2), options


# Rendering `helpers.settings` --------------------------------------------------------------------


def rendered(**changes: object) -> dict[str, str]:
    """`mm2.properties` as MirrorMaker reads it: references resolved from the secrets file."""
    chosen = settings(**changes)
    files = {str(chosen.workload.mm2_secrets): chosen.mm2_secrets()}
    return resolve_references(load_properties(chosen.mm2_properties()), files)


# mm2.properties ----------------------------------------------------------------------------------


def test_default_properties_key_by_key():
    properties = rendered()
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    assert properties == {
        "clusters": "source,target",
        "source->target.enabled": "true",
        "target->source.enabled": "false",
        "source->target.emit.heartbeats.enabled": "true",
        "target->source.emit.heartbeats.enabled": "false",
        "offset-syncs.topic.location": "target",
        "replication.policy.class": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
        "config.providers": "file",
        "config.providers.file.class": FILE_PROVIDER,
        "config.providers.file.param.allowed.paths": "/etc/kafka/mm2-secrets.properties",
        "plugin.discovery": "service_load",
        "target.plugin.discovery": "service_load",
        "dedicated.mode.enable.internal.rest": "true",
        "listeners": "http://kafka-k8s-0.kafka-k8s-endpoints:8083",
        "rest.advertised.listener": "http",
        "rest.advertised.host.name": "kafka-k8s-0.kafka-k8s-endpoints",
        "rest.advertised.port": "8083",
        "source.bootstrap.servers": "10.0.0.5:9092,10.0.0.6:9092",
        "source.security.protocol": "SASL_PLAINTEXT",
        "source.sasl.mechanism": "SCRAM-SHA-512",
        "source.sasl.jaas.config": (
            f'{scram} required username="migrator" password="source-password";'
        ),
        "source.consumer.isolation.level": "read_committed",
        "target.bootstrap.servers": "kafka-k8s-0.svc:19092,kafka-k8s-1.svc:19092",
        "target.security.protocol": "SASL_PLAINTEXT",
        "target.sasl.mechanism": "SCRAM-SHA-512",
        "target.sasl.jaas.config": (
            f'{scram} required username="mirrormaker" password="target-password";'
        ),
        "target.consumer.isolation.level": "read_committed",
        "target.producer.enable.idempotence": "true",
        "target.producer.acks": "all",
        "target.producer.max.in.flight.requests.per.connection": "5",
        "target.producer.batch.size": "262144",
        "target.producer.linger.ms": "20",
        "target.producer.compression.type": "lz4",
        "source.consumer.fetch.min.bytes": "65536",
        "source.consumer.fetch.max.wait.ms": "200",
        "source.consumer.max.partition.fetch.bytes": "2097152",
        "source.consumer.max.poll.records": "2000",
        "offset.lag.max": "1000",
        "source->target.target.producer.linger.ms": "0",
        "target.exactly.once.source.support": "disabled",
        "target.offset.flush.interval.ms": "10000",
        "target.scheduled.rebalance.max.delay.ms": "60000",
        "topics": ".*",
        "topics.exclude": r".*[\-\.]internal,.*\.replica,__.*",
        "groups": ".*",
        "groups.exclude": "console-consumer-.*,connect-.*,__.*",
        "tasks.max": "6",
        "refresh.topics.enabled": "true",
        "refresh.topics.interval.seconds": "30",
        "refresh.groups.enabled": "true",
        "refresh.groups.interval.seconds": "30",
        "sync.topic.configs.enabled": "true",
        "sync.topic.configs.interval.seconds": "30",
        "sync.topic.acls.enabled": "false",
        "emit.checkpoints.enabled": "true",
        "emit.checkpoints.interval.seconds": "30",
        "sync.group.offsets.enabled": "true",
        "sync.group.offsets.interval.seconds": "30",
        "replication.factor": "3",
        "checkpoints.topic.replication.factor": "3",
        "heartbeats.topic.replication.factor": "3",
        "offset-syncs.topic.replication.factor": "3",
        "config.storage.replication.factor": "3",
        "offset.storage.replication.factor": "3",
        "status.storage.replication.factor": "3",
    }


def test_throughput_defaults_keep_durability_and_order():
    """Faster sending never trades away acks=all, idempotence or read_committed."""
    properties = rendered()
    assert properties["target.producer.acks"] == "all"
    assert properties["target.producer.enable.idempotence"] == "true"
    # An idempotent producer keeps each partition's order with at most five requests in flight.
    assert 1 <= int(properties["target.producer.max.in.flight.requests.per.connection"]) <= 5
    assert properties["source.consumer.isolation.level"] == "read_committed"
    # A batch stays well under the broker's default message.max.bytes (1 MiB).
    assert int(properties["target.producer.batch.size"]) <= 1_048_576 // 2
    # A source partition's fetch stays under the consumer's fetch.max.bytes default (50 MiB).
    assert int(properties["source.consumer.max.partition.fetch.bytes"]) <= 52_428_800


def test_throughput_defaults_follow_the_aliases_not_the_flow_options():
    """The tuning lines name the source's consumer and the target's producer, whatever is set."""
    text = _rendering.render_mm2_properties(
        settings(config=MigrationConfig(tasks_max=24, exactly_once=True))
    )
    lines = set(logical_lines(text))
    assert "target.producer.compression.type=lz4" in lines
    assert "source.consumer.max.poll.records=2000" in lines
    misplaced = ("source.producer.", "target.consumer.fetch")
    assert not any(line.startswith(misplaced) for line in lines)


def test_properties_file_is_ascii_and_has_no_duplicate_keys():
    text = _rendering.render_mm2_properties(settings())
    text.encode("ascii")
    keys = [line.split("=", 1)[0] for line in logical_lines(text)]
    assert len(keys) == len(set(keys))


def test_options_reach_the_properties():
    config = MigrationConfig.from_options(
        {
            "mirrormaker-topics": r"orders\..*, payments",
            "mirrormaker-topics-exclude": "",
            "mirrormaker-groups": "billing-.*",
            "mirrormaker-groups-exclude": "test-.*",
            "mirrormaker-tasks-max": 12,
            "mirrormaker-sync-group-offsets": False,
            "mirrormaker-sync-topic-configs": False,
            "mirrormaker-sync-topic-acls": True,
            "mirrormaker-exactly-once": True,
            "mirrormaker-refresh-interval": 5,
            "mirrormaker-replication-policy": "prefixed",
        }
    )
    properties = rendered(config=config)
    assert properties["topics"] == r"orders\..*,payments"
    assert properties["topics.exclude"] == ""
    assert properties["groups"] == "billing-.*"
    assert properties["groups.exclude"] == "test-.*"
    assert properties["tasks.max"] == "12"
    assert properties["sync.group.offsets.enabled"] == "false"
    assert properties["sync.topic.configs.enabled"] == "false"
    # The library copies topic ACLs itself (`_acls_to_copy`): MirrorMaker cannot filter them.
    assert properties["sync.topic.acls.enabled"] == "false"
    assert properties["target.exactly.once.source.support"] == "enabled"
    assert properties["replication.policy.class"] == (
        "org.apache.kafka.connect.mirror.DefaultReplicationPolicy"
    )
    for key in (
        "refresh.topics.interval.seconds",
        "refresh.groups.interval.seconds",
        "sync.group.offsets.interval.seconds",
        "emit.checkpoints.interval.seconds",
        "sync.topic.configs.interval.seconds",
    ):
        assert properties[key] == "5"


@pytest.mark.parametrize(("units", "factor"), [(1, "1"), (2, "2"), (3, "3"), (7, "3")])
def test_replication_factors_fit_the_units(units: int, factor: str):
    properties = rendered(units=units)
    keys = [key for key in properties if key.endswith("replication.factor")]
    assert len(keys) == 7
    assert {properties[key] for key in keys} == {factor}


@pytest.mark.parametrize(
    ("wanted", "mode", "expected"),
    [
        (False, None, "disabled"),
        (True, None, "enabled"),
        (True, "preparing", "preparing"),
        (True, "enabled", "enabled"),
    ],
)
def test_exactly_once_support(wanted: bool, mode: str | None, expected: str):
    config = MigrationConfig(exactly_once=wanted)
    properties = rendered(config=config, exactly_once_mode=mode)
    assert properties["target.exactly.once.source.support"] == expected
    assert properties["dedicated.mode.enable.internal.rest"] == "true"
    assert properties["source.consumer.isolation.level"] == "read_committed"


def test_sasl_ssl_source_with_ca_gets_a_pem_truststore():
    source = SourceCluster(
        name="old",
        bootstrap_servers=("old-0:9093",),
        username="u",
        password="p",
        sasl_mechanism="SCRAM-SHA-256",
        security_protocol="SASL_SSL",
        ca=CA,
    )
    properties = rendered(source=source)
    assert properties["source.security.protocol"] == "SASL_SSL"
    assert properties["source.sasl.mechanism"] == "SCRAM-SHA-256"
    assert properties["source.ssl.truststore.type"] == "PEM"
    assert properties["source.ssl.truststore.certificates"] == CA
    assert "target.ssl.truststore.type" not in properties


def test_plaintext_source_has_no_truststore():
    properties = rendered()
    assert not [key for key in properties if "ssl" in key]


def test_plain_mechanism_uses_the_plain_login_module():
    source = SourceCluster(
        name="old", bootstrap_servers=("h:1",), username="u", password="p", sasl_mechanism="PLAIN"
    )
    module, flag, options = parse_jaas(rendered(source=source)["source.sasl.jaas.config"])
    assert module == "org.apache.kafka.common.security.plain.PlainLoginModule"
    assert flag == "required"
    assert options == {"username": "u", "password": "p"}


# Every login of a Kafka client -------------------------------------------------------------------

OAUTH = OAuthClient(
    token_endpoint="https://idp.example:8443/realms/kafka/protocol/openid-connect/token",
    client_id="migrator",
    client_secret='s3cr"et\\',
    scope="kafka",
    ca=CA,
)


def source(**login: object) -> SourceCluster:
    return SourceCluster.model_validate({"name": "old", "bootstrap_servers": "h:1", **login})


def logins(properties: dict[str, str]) -> dict[str, str]:
    """The source's login settings, by their names after `source.`."""
    login = ("security.", "sasl.", "ssl.")
    return {
        key.removeprefix("source."): value
        for key, value in properties.items()
        if key.startswith(tuple(f"source.{part}" for part in login))
    }


def test_plaintext_source_logs_in_with_nothing():
    properties = rendered(source=source(security_protocol="PLAINTEXT"))
    assert logins(properties) == {"security.protocol": "PLAINTEXT"}
    assert (
        "source.sasl.jaas.config"
        not in settings(source=source(security_protocol="PLAINTEXT")).mm2_secrets()
    )


def test_ssl_source_verifies_the_brokers_with_its_ca():
    properties = rendered(source=source(security_protocol="SSL", ca=CA))
    assert logins(properties) == {
        "security.protocol": "SSL",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.certificates": CA,
    }


def test_mutual_tls_source_presents_its_certificate_and_refers_to_its_key():
    login = {"client_certificate": CLIENT_CERTIFICATE, "client_key": CLIENT_KEY}
    chosen = settings(source=source(security_protocol="SSL", ca=CA, **login))
    raw = load_properties(chosen.mm2_properties())
    assert raw["source.ssl.keystore.type"] == "PEM"
    assert raw["source.ssl.keystore.certificate.chain"] == CLIENT_CERTIFICATE
    assert raw["source.ssl.keystore.key"] == (
        "${file:/etc/kafka/mm2-secrets.properties:source.ssl.keystore.key}"
    )
    assert "PRIVATE KEY" not in chosen.mm2_properties()
    assert rendered(source=chosen.source)["source.ssl.keystore.key"] == CLIENT_KEY


def test_oauthbearer_source_fetches_tokens_with_client_credentials():
    chosen = settings(
        source=source(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER", oauth=OAUTH)
    )
    properties = rendered(source=chosen.source)
    assert logins(properties) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "OAUTHBEARER",
        "sasl.jaas.config": properties["source.sasl.jaas.config"],
        "sasl.login.callback.handler.class": (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"
        ),
        "sasl.oauthbearer.token.endpoint.url": OAUTH.token_endpoint,
    }
    module, flag, options = parse_jaas(properties["source.sasl.jaas.config"])
    assert (module, flag) == (
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule",
        "required",
    )
    assert options == {
        "clientId": "migrator",
        "clientSecret": 's3cr"et\\',
        "scope": "kafka",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.certificates": CA,
    }
    assert OAUTH.client_secret not in chosen.mm2_properties()
    # Kafka 4 lets the login reach only the URLs listed in this JVM property.
    service = dict(chosen.pebble_layer().get("services", {}))["mirrormaker"]
    environment = dict(service.get("environment", {}))
    assert environment["KAFKA_OPTS"].endswith(
        f" -Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={OAUTH.token_endpoint}"
    )


def test_a_ca_followed_by_a_reference_never_reaches_the_properties():
    """Kafka's config provider would resolve it to the target's JAAS config (the password)."""
    reference = "${file:/etc/kafka/mm2-secrets.properties:target.sasl.jaas.config}"
    with pytest.raises(ValidationError, match="ca must hold PEM certificates only"):
        source(username="u", password="p", security_protocol="SASL_SSL", ca=CA + reference)


@pytest.mark.parametrize("value", HOSTILE)
def test_any_secret_value_survives_properties_and_jaas(value: str):
    source = SourceCluster(name="old", bootstrap_servers=("h:1",), username=value, password=value)
    target = TargetCluster(bootstrap_servers=("t:1",), username="mirrormaker", password=value)
    properties = rendered(source=source, target=target)
    for alias in ("source", "target"):
        _, _, options = parse_jaas(properties[f"{alias}.sasl.jaas.config"])
        assert options["password"] == value
    _, _, options = parse_jaas(properties["source.sasl.jaas.config"])
    assert options["username"] == value


@pytest.mark.parametrize("value", HOSTILE)
def test_properties_escape_round_trips(value: str):
    assert load_properties(f"key={_rendering._properties_escape(value)}\n") == {"key": value}
    assert load_properties(f"key = {_rendering._properties_escape(value)}") == {"key": value}


def test_properties_escape_keeps_plain_values_readable():
    assert _rendering._properties_escape("http://host:8083") == "http://host:8083"
    assert _rendering._properties_escape("a=b") == "a=b"


def test_ca_with_line_breaks_survives():
    ca = CA.replace("\n", "\r\n") + "\n"
    source = SourceCluster(
        name="old",
        bootstrap_servers=("h:1",),
        username="u",
        password="p",
        security_protocol="SASL_SSL",
        ca=ca,
    )
    assert rendered(source=source)["source.ssl.truststore.certificates"] == ca


def test_regexes_with_backslashes_survive():
    config = MigrationConfig.from_options(
        {"mirrormaker-topics": r"orders\.v\d+", "mirrormaker-groups": r"g\\x"}
    )
    properties = rendered(config=config)
    assert properties["topics"] == r"orders\.v\d+"
    assert properties["groups"] == r"g\\x"


def test_promoted_topics_are_excluded_each_matching_itself_alone():
    config = MigrationConfig(promoted=frozenset({"orders.eu", "pay-ments_1"}))
    exclude = rendered(config=config)["topics.exclude"].split(",")
    assert exclude == [*MigrationConfig().topics_exclude, r"orders\.eu", r"pay\-ments_1"]
    assert re.fullmatch(exclude[-2], "orders.eu")
    assert not re.fullmatch(exclude[-2], "ordersXeu")
    assert config.select_topics(["orders.eu", "orders.us", "pay-ments_1"]) == ["orders.us"]


@pytest.mark.parametrize("value", HOSTILE)
def test_no_password_in_mm2_properties_only_references(value: str):
    """The passwords are only in the secrets file: MirrorMaker stores references in its topics.

    MirrorMaker copies `mm2.properties` into the connector configs it keeps in its config topic
    on the target; Kafka resolves `${file:...}` references only when a client is made.
    """
    source = SourceCluster(name="old", bootstrap_servers=("h:1",), username="u", password=value)
    target = TargetCluster(bootstrap_servers=("t:1",), username="mirrormaker", password=value)
    chosen = settings(source=source, target=target)
    text = chosen.mm2_properties()
    raw = load_properties(text)
    if value not in settings().mm2_properties():  # a lone backslash is in any rendering
        assert value not in text
        assert value not in "".join(raw.values())
    secrets = chosen.workload.mm2_secrets
    for alias in ("source", "target"):
        assert raw[f"{alias}.sasl.jaas.config"] == f"${{file:{secrets}:{alias}.sasl.jaas.config}}"
        _, _, options = parse_jaas(
            load_properties(chosen.mm2_secrets())[f"{alias}.sasl.jaas.config"]
        )
        assert options["password"] == value
    assert [key for key, item in raw.items() if item.startswith("${")] == [
        "source.sasl.jaas.config",
        "target.sasl.jaas.config",
    ]


def test_the_file_provider_may_read_only_the_secrets_file():
    workload = MirrorMakerWorkload(root=PurePosixPath("/srv/unit-1"))
    raw = load_properties(settings(workload=workload).mm2_properties())
    assert raw["config.providers.file.param.allowed.paths"] == (
        "/srv/unit-1/etc/kafka/mm2-secrets.properties"
    )
    assert raw["source.sasl.jaas.config"].startswith(
        "${file:/srv/unit-1/etc/kafka/mm2-secrets.properties:"
    )


# Layer -------------------------------------------------------------------------------------------


def test_layer_on_the_rock():
    layer = _rendering.mirrormaker_layer(settings())
    assert layer == {
        "summary": "MirrorMaker 2",
        "services": {
            "mirrormaker": {
                "override": "replace",
                "summary": "MirrorMaker 2 node migrating the source cluster into this one",
                "command": (
                    "/opt/kafka/bin/connect-mirror-maker.sh /etc/kafka/mm2.properties "
                    "--clusters target"
                ),
                "startup": "enabled",
                "user": "kafka",
                "group": "kafka",
                "environment": {
                    "KAFKA_HEAP_OPTS": "-Xms256m -Xmx1024m",
                    "KAFKA_OPTS": (
                        "-javaagent:/opt/kafka/libs/jmx_prometheus_javaagent.jar="
                        "9099:/etc/kafka/jmx_mirrormaker.yaml"
                    ),
                    "LOG_DIR": "/var/log/kafka",
                    "JAVA_HOME": "/usr/lib/jvm/java-18-openjdk-amd64",
                },
                "on-success": "restart",
                "on-failure": "restart",
                "backoff-delay": "5s",
                "backoff-limit": "60s",
                "kill-delay": "20s",
            }
        },
    }


@pytest.mark.parametrize(
    ("option", "workload_heap", "expected"),
    [
        (None, 1024, "-Xms256m -Xmx1024m"),
        (2048, 1024, "-Xms256m -Xmx2048m"),
        (256, 384, "-Xms256m -Xmx256m"),
    ],
)
def test_mirrormaker_heap_mb_sets_the_heap(option, workload_heap, expected):
    """`mirrormaker-heap-mb` wins; unset, the host's heap (1024 MiB in kafka-k8s) stays."""
    config = MigrationConfig.from_options(
        {} if option is None else {"mirrormaker-heap-mb": option}
    )
    workload = MirrorMakerWorkload(heap_mb=workload_heap)
    layer = _rendering.mirrormaker_layer(settings(config=config, workload=workload))
    environment = layer.get("services", {})["mirrormaker"].get("environment", {})
    assert environment["KAFKA_HEAP_OPTS"] == expected


def test_layer_and_properties_follow_the_workload_description():
    workload = MirrorMakerWorkload(
        root=PurePosixPath("/srv/unit-1"),
        user="me",
        group="us",
        rest_port=18083,
        metrics_port=19099,
        metrics_host="127.0.0.1",
        heap_mb=384,
        java_home=PurePosixPath("/usr/lib/jvm/java-17-openjdk-amd64"),
    )
    current = settings(workload=workload, unit_host="127.0.0.1")
    service = _rendering.mirrormaker_layer(current).get("services", {})["mirrormaker"]
    assert service.get("command") == (
        "/srv/unit-1/opt/kafka/bin/connect-mirror-maker.sh /srv/unit-1/etc/kafka/mm2.properties "
        "--clusters target"
    )
    assert service.get("user") == "me"
    assert service.get("group") == "us"
    assert service.get("environment") == {
        "KAFKA_HEAP_OPTS": "-Xms256m -Xmx384m",
        "KAFKA_OPTS": (
            "-javaagent:/srv/unit-1/opt/kafka/libs/jmx_prometheus_javaagent.jar="
            "127.0.0.1:19099:/srv/unit-1/etc/kafka/jmx_mirrormaker.yaml"
        ),
        "LOG_DIR": "/srv/unit-1/var/log/kafka",
        "JAVA_HOME": "/usr/lib/jvm/java-17-openjdk-amd64",
    }
    properties = load_properties(_rendering.render_mm2_properties(current))
    assert properties["listeners"] == "http://127.0.0.1:18083"
    assert properties["rest.advertised.port"] == "18083"


def test_jmx_rules_parse_and_cover_mirrormaker_metrics():
    rules = yaml.safe_load(_rendering.JMX_RULES)
    patterns = [re.compile(rule["pattern"]) for rule in rules["rules"]]
    bean = (
        "kafka.connect.mirror<type=MirrorSourceConnector, target=target, topic=orders, "
        "partition=3><>record-count"
    )
    matching = [p for p in patterns if p.fullmatch(bean)]
    assert matching
    assert matching[0].fullmatch(bean).groups() == ("target", "orders", "3", "record-count")  # type: ignore[union-attr]
    checkpoint = (
        "kafka.connect.mirror<type=MirrorCheckpointConnector, source=source, target=target, "
        "group=billing, topic=orders, partition=0><>checkpoint-latency-ms"
    )
    assert any(p.fullmatch(checkpoint) for p in patterns)
    status = (
        "kafka.connect<type=connector-task-metrics, connector=MirrorSourceConnector, task=0>"
        "<>status: running"
    )
    assert any(p.fullmatch(status) for p in patterns)


# A failback's copy back ------------------------------------------------------------------------


def failback(**changes: object) -> FailbackSettings:
    base = settings()
    writer = base.source.model_copy(update={"username": "writer", "password": "w-pw"})
    values: dict[str, object] = {
        "source": writer,
        "target": base.target,
        "topics": ("orders", "pay.eu"),
        "unit_host": base.unit_host,
        "units": 3,
    }
    return FailbackSettings.model_validate(values | changes)


def test_the_copy_back_flows_into_the_source_only_and_copies_nothing_else():
    copy = failback()
    props = load_properties(copy.properties())
    assert props["clusters"] == "source,failback"
    assert (props["failback->source.enabled"], props["source->failback.enabled"]) == (
        "true",
        "false",
    )
    assert props["topics"] == "orders,pay\\.eu"
    assert props["topics.exclude"] == ""
    for off in (
        "failback->source.emit.heartbeats.enabled",
        "source->failback.emit.heartbeats.enabled",
        "emit.checkpoints.enabled",
        "sync.group.offsets.enabled",
        "sync.topic.configs.enabled",
        "sync.topic.acls.enabled",
    ):
        assert props[off] == "false", off
    assert props["groups.exclude"] == ".*"
    assert props["offset-syncs.topic.location"] == "target"
    assert props["replication.policy.class"].endswith(".IdentityReplicationPolicy")
    factors = [k for k in props if k.endswith("replication.factor")]
    assert len(factors) == 5 and {props[k] for k in factors} == {"-1"}
    assert props["listeners"] == "http://kafka-k8s-0.kafka-k8s-endpoints:8084"
    secrets = str(copy.workload.failback_secrets)
    assert props["config.providers.file.param.allowed.paths"] == secrets
    resolved = resolve_references(props, {secrets: copy.secrets()})
    assert 'username="writer" password="w-pw"' in resolved["source.sasl.jaas.config"]
    assert 'username="mirrormaker"' in resolved["failback.sasl.jaas.config"]
    assert "w-pw" not in copy.properties()


def test_the_copy_back_runs_as_a_service_of_its_own():
    services: dict[str, Any] = dict(failback().pebble_layer().get("services", {}))
    [(name, service)] = services.items()
    assert name == "mirrormaker-failback"
    assert service["command"] == (
        "/opt/kafka/bin/connect-mirror-maker.sh /etc/kafka/mm2-failback.properties "
        "--clusters source"
    )
    environment = service["environment"]
    assert environment["LOG_DIR"] == "/var/log/kafka/failback"
    assert "KAFKA_OPTS" not in environment  # no JMX exporter of its own
    assert environment["KAFKA_HEAP_OPTS"] == "-Xms256m -Xmx1024m"
