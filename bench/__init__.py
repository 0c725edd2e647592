# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Benchmarks of kafka-k8s on the local tier: `python -m bench [SUBCOMMAND ...]`.

Each subcommand is a module of this package with a `main(argv) -> int`; results go to
`bench/results/` (git-ignored). Benchmarks measure and report; they assert nothing about time.
"""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
