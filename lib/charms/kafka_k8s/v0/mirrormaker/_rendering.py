# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Rendering: `mm2.properties`, its secrets file and the Pebble layer of one node.

Pure functions of `MirrorMakerSettings`, and for a failback's copy back of `FailbackSettings`.
The templates are `mm2.properties.j2` and `mm2-failback.properties.j2` beside this module (each
cluster's login from `mm2-login.j2`); every value in them is properties-escaped, and no password
is in them: they are in the secrets files (mode 0600) that Kafka's `FileConfigProvider` reads.
The JMX exporter's rules are `jmx_mirrormaker.yaml`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import jinja2
import ops

from ._names import FAILBACK_ALIAS, FAILBACK_SERVICE, SERVICE, SOURCE_ALIAS, TARGET_ALIAS

if TYPE_CHECKING:
    from ._clusters import KafkaCluster
    from ._options import FailbackSettings, MirrorMakerSettings, MirrorMakerWorkload


_POLICY_CLASSES = {
    "identity": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
    "prefixed": "org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
}


def jaas_escape(value: str) -> str:
    r"""Quote a value for a JAAS option between double quotes.

    Kafka parses `sasl.jaas.config` with `java.io.StreamTokenizer`: inside quotes a backslash
    escapes the next character, and a raw line break ends the string, so it becomes `\n`.
    """
    return (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )


def _properties_escape(value: str) -> str:
    r"""Escape the value of a `key=value` line so `java.util.Properties.load` reads it intact.

    After the separator only backslashes, line breaks and leading blanks are special. The file
    stays ASCII (Properties reads ISO 8859-1): other characters become `\uXXXX`, outside the
    BMP as a UTF-16 surrogate pair.
    """
    escaped = []
    for index, char in enumerate(value):
        code = ord(char)
        if char == "\\":
            escaped.append("\\\\")
        elif char in "\n\r\t\f":
            escaped.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}[char])
        elif char == " " and index == 0:
            escaped.append("\\ ")
        elif code > 0xFFFF:
            code -= 0x10000
            escaped.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        elif code > 0x7E or code < 0x20:
            escaped.append(f"\\u{code:04x}")
        else:
            escaped.append(char)
    return "".join(escaped)


def _property_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _properties_escape(str(value))


_HERE = Path(__file__).parent

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # noqa: S701 - a .properties file: every value is properties-escaped
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    finalize=_property_value,
)


_MM2 = _ENVIRONMENT.get_template("mm2.properties.j2")
_FAILBACK = _ENVIRONMENT.get_template("mm2-failback.properties.j2")

JMX_RULES = (_HERE / "jmx_mirrormaker.yaml").read_text()
"""The JMX exporter's rules for MirrorMaker's metrics (`MirrorMakerWorkload.jmx_config`)."""


def _secrets(clusters: Iterable[tuple[str, KafkaCluster]]) -> str:
    """The secrets of each cluster alias's login, as `FileConfigProvider` reads them.

    Each cluster's `sasl.jaas.config` (password or OAuth client secret) and the private key of
    its client certificate, when it has them.
    """
    lines = ["# Rendered by the kafka_k8s mirrormaker charm library. Read by MirrorMaker only."]
    for alias, cluster in clusters:
        if (jaas := cluster.jaas_config) is not None:
            lines.append(f"{alias}.sasl.jaas.config={_properties_escape(jaas)}")
        if cluster.tls and cluster.client_key:
            lines.append(f"{alias}.ssl.keystore.key={_properties_escape(cluster.client_key)}")
    return "\n".join(lines) + "\n"


def render_mm2_secrets(settings: MirrorMakerSettings) -> str:
    """The secrets `mm2.properties` refers to, as `FileConfigProvider` reads them."""
    return _secrets(((SOURCE_ALIAS, settings.source), (TARGET_ALIAS, settings.target)))


def render_mm2_properties(settings: MirrorMakerSettings) -> str:
    """Render `mm2.properties` for one MirrorMaker node; every value is properties-escaped."""
    return _MM2.render(
        settings=settings,
        config=settings.config,
        workload=settings.workload,
        unit_host=settings.unit_host,
        source=SOURCE_ALIAS,
        target=TARGET_ALIAS,
        clusters=((SOURCE_ALIAS, settings.source), (TARGET_ALIAS, settings.target)),
        secrets=settings.workload.mm2_secrets,
        policy_class=_POLICY_CLASSES[settings.config.replication_policy],
        rf=settings.replication_factor,
    )


def render_failback_secrets(settings: FailbackSettings) -> str:
    """The secrets `mm2-failback.properties` refers to: the failback user's, MirrorMaker's."""
    return _secrets(((SOURCE_ALIAS, settings.source), (FAILBACK_ALIAS, settings.target)))


def render_failback_properties(settings: FailbackSettings) -> str:
    """Render `mm2-failback.properties`, the copy back of a failback, for one node.

    The flow runs from this cluster (alias `failback`) into the source cluster (alias `source`),
    over the failed-back topics only, each escaped to match itself alone.
    """
    return _FAILBACK.render(
        settings=settings,
        config=settings.config,
        workload=settings.workload,
        unit_host=settings.unit_host,
        here=FAILBACK_ALIAS,
        old=SOURCE_ALIAS,
        clusters=((SOURCE_ALIAS, settings.source), (FAILBACK_ALIAS, settings.target)),
        secrets=settings.workload.failback_secrets,
        policy_class=_POLICY_CLASSES["identity"],
        topics=[re.escape(topic) for topic in settings.topics],
    )


def _service(
    workload: MirrorMakerWorkload,
    heap: int,
    clusters: Iterable[KafkaCluster],
    options: str = "",
    **service: object,
) -> ops.pebble.ServiceDict:
    """A MirrorMaker service as Pebble runs it: its user, heap, JDK, restarts; and `service`.

    `options` are its JVM's (`KAFKA_OPTS`), with the OAuth token endpoints its clusters' logins
    may reach.
    """
    endpoints = sorted({c.oauth.token_endpoint for c in clusters if c.oauth and c.sasl})
    if endpoints:
        # Kafka 4 lets its OAuth login reach no URL unless it is listed (CVE-2025-27817); 3.9.1
        # allows all unless listed; older releases ignore it.
        allowed = f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={','.join(endpoints)}"
        options = f"{options} {allowed}".strip()
    environment = {
        "KAFKA_HEAP_OPTS": f"-Xms{min(heap, 256)}m -Xmx{heap}m",
        "LOG_DIR": str(workload.logs),
        "JAVA_HOME": str(workload.java_home),
        **cast(dict[str, str], service.pop("environment", {})),
        **({"KAFKA_OPTS": options} if options else {}),
    }
    return cast(
        ops.pebble.ServiceDict,
        {
            "override": "replace",
            "startup": "enabled",
            "user": workload.user,
            "group": workload.group,
            **service,
            "environment": environment,
            "on-success": "restart",
            "on-failure": "restart",
            "backoff-delay": "5s",
            "backoff-limit": "60s",
            "kill-delay": "20s",
        },
    )


def mirrormaker_layer(settings: MirrorMakerSettings) -> ops.pebble.LayerDict:
    """The Pebble layer of a running `mirrormaker` service.

    `MirrorMakerService.stop` overrides `startup` to `disabled` once the migration stops.
    """
    workload = settings.workload
    metrics = f"{workload.metrics_host}:" if workload.metrics_host else ""
    agent = f"-javaagent:{workload.jmx_agent}={metrics}{workload.metrics_port}"
    service = _service(
        workload,
        settings.config.heap_mb or workload.heap_mb,
        (settings.source, settings.target),
        f"{agent}:{workload.jmx_config}",
        summary="MirrorMaker 2 node migrating the source cluster into this one",
        command=workload.command,
    )
    return {"summary": "MirrorMaker 2", "services": {SERVICE: service}}


def failback_layer(settings: FailbackSettings) -> ops.pebble.LayerDict:
    """The Pebble layer of a running failback service: MirrorMaker copying topics back.

    It logs under `failback/` in the workload's log directory, beside the migration's
    MirrorMaker, and serves no metrics.
    """
    workload = settings.workload
    service = _service(
        workload,
        settings.config.heap_mb or workload.heap_mb,
        (settings.source, settings.target),
        summary="MirrorMaker 2 node copying failed-back topics to the source cluster",
        command=workload.failback_command,
        environment={"LOG_DIR": str(workload.logs / "failback")},
    )
    return {"summary": "MirrorMaker 2, failing back", "services": {FAILBACK_SERVICE: service}}
