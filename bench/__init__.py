"""Benchmarks of kafka-k8s on the local tier: `python -m bench [SUBCOMMAND ...]`.

Each subcommand is a module of this package with a `main(argv) -> int`; results go to
`bench/results/` (git-ignored). Benchmarks measure and report; they assert nothing about time.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
for _path in (REPO / "src", REPO / "lib", REPO):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
