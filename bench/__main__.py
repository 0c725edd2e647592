# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Run benchmarks: `python -m bench [--quick]` runs them all, `python -m bench NAME [ARGS]` one.

Every subcommand accepts `--quick` (smaller loads, fewer repeats), so options given without a
name go to each of them.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "status": "bench.status",
    "throughput": "bench.throughput",
}


def main(argv: list[str]) -> int:
    """Dispatch to one subcommand with the remaining arguments, or run every subcommand."""
    if argv and argv[0] in ("-h", "--help"):
        names = "|".join(SUBCOMMANDS)
        print(f"usage: python -m bench [--quick] | python -m bench {{{names}}} [ARGS]")
        return 0
    named = bool(argv) and not argv[0].startswith("-")
    if named and argv[0] not in SUBCOMMANDS:
        print(f"unknown benchmark {argv[0]!r}: choose from {', '.join(SUBCOMMANDS)}")
        return 2
    chosen = [argv[0]] if named else list(SUBCOMMANDS)
    failed = 0
    for name in chosen:
        module = importlib.import_module(SUBCOMMANDS[name])
        failed += module.main(argv[1:] if named else argv) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
