# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Rendering: `mm2.properties`, its secrets file and the Pebble layer of one node.

Pure functions of `MirrorMakerSettings`. The template is `mm2.properties.j2` beside this
module; every value in it is properties-escaped, and no password is in it: they are in the
secrets file (mode 0600) that Kafka's `FileConfigProvider` reads. The JMX exporter's rules are
`jmx_mirrormaker.yaml`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
import ops

from ._names import SERVICE, SOURCE_ALIAS, TARGET_ALIAS

if TYPE_CHECKING:
    from ._options import MirrorMakerSettings


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

JMX_RULES = (_HERE / "jmx_mirrormaker.yaml").read_text()
"""The JMX exporter's rules for MirrorMaker's metrics (`MirrorMakerWorkload.jmx_config`)."""


def render_mm2_secrets(settings: MirrorMakerSettings) -> str:
    """The secrets `mm2.properties` refers to, as `FileConfigProvider` reads them.

    Each cluster's `sasl.jaas.config` (password or OAuth client secret) and the private key of
    its client certificate, when it has them.
    """
    lines = ["# Rendered by the kafka_k8s mirrormaker charm library. Read by MirrorMaker only."]
    for alias, cluster in ((SOURCE_ALIAS, settings.source), (TARGET_ALIAS, settings.target)):
        if (jaas := cluster.jaas_config) is not None:
            lines.append(f"{alias}.sasl.jaas.config={_properties_escape(jaas)}")
        if cluster.tls and cluster.client_key:
            lines.append(f"{alias}.ssl.keystore.key={_properties_escape(cluster.client_key)}")
    return "\n".join(lines) + "\n"


def render_mm2_properties(settings: MirrorMakerSettings) -> str:
    """Render `mm2.properties` for one MirrorMaker node; every value is properties-escaped."""
    return _MM2.render(
        settings=settings,
        config=settings.config,
        workload=settings.workload,
        unit_host=settings.unit_host,
        source=SOURCE_ALIAS,
        target=TARGET_ALIAS,
        policy_class=_POLICY_CLASSES[settings.config.replication_policy],
        rf=settings.replication_factor,
    )


def mirrormaker_layer(settings: MirrorMakerSettings) -> ops.pebble.LayerDict:
    """The Pebble layer of a running `mirrormaker` service.

    `MirrorMakerService.stop` overrides `startup` to `disabled` once the migration stops.
    """
    workload = settings.workload
    metrics = f"{workload.metrics_host}:" if workload.metrics_host else ""
    heap = settings.config.heap_mb or workload.heap_mb
    options = (
        f"-javaagent:{workload.jmx_agent}={metrics}{workload.metrics_port}:{workload.jmx_config}"
    )
    endpoints = sorted(
        {c.oauth.token_endpoint for c in (settings.source, settings.target) if c.oauth and c.sasl}
    )
    if endpoints:
        # Kafka 4 lets its OAuth login reach no URL unless it is listed (CVE-2025-27817); 3.9.1
        # allows all unless listed; older releases ignore it.
        options += f" -Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={','.join(endpoints)}"
    return {
        "summary": "MirrorMaker 2",
        "services": {
            SERVICE: {
                "override": "replace",
                "summary": "MirrorMaker 2 node migrating the source cluster into this one",
                "command": workload.command,
                "startup": "enabled",
                "user": workload.user,
                "group": workload.group,
                "environment": {
                    "KAFKA_HEAP_OPTS": f"-Xms{min(heap, 256)}m -Xmx{heap}m",
                    "KAFKA_OPTS": options,
                    "LOG_DIR": str(workload.logs),
                    "JAVA_HOME": str(workload.java_home),
                },
                "on-success": "restart",
                "on-failure": "restart",
                "backoff-delay": "5s",
                "backoff-limit": "60s",
                "kill-delay": "20s",
            },
        },
    }
