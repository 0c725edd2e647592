# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""How messages count and clip: the wording shared by statuses and action results."""

from __future__ import annotations

from collections.abc import Sequence

_MAX_LISTED = 200
_STATUS_CHARS = 120


def list_names(names: Sequence[str]) -> str:
    """The names, comma-separated; past the first 200, how many more."""
    shown = ", ".join(names[:_MAX_LISTED])
    return f"{shown}, ... ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else shown


def plural(number: int, noun: str) -> str:
    """The number, with thousands separated, and the noun in the plural unless it is 1."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def clip(text: str, limit: int = _STATUS_CHARS) -> str:
    """The text, cut to `limit` characters with "..." if longer (a status message's length)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
