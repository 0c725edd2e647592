# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Writing the broker's files: escaping for `.properties` and JAAS, and write-if-changed."""

from __future__ import annotations

from pathlib import PurePosixPath

import ops


def jaas_escape(value: str) -> str:
    r"""Quote a value for a JAAS option between double quotes.

    Kafka parses `sasl.jaas.config` with `java.io.StreamTokenizer`: inside quotes a backslash
    escapes the next character, and a raw line break ends the string, so it becomes `\n`.
    """
    return (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )


def properties_escape(value: str) -> str:
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


def scram_jaas(username: str, password: str) -> str:
    """A `sasl.jaas.config` value for a SCRAM login."""
    return (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{jaas_escape(username)}" password="{jaas_escape(password)}";'
    )


def push_if_changed(
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
