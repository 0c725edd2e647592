# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""The exporters' metrics as Prometheus scrapes them, and `promtool test rules` on them.

`scrape` and `parse` read a JMX exporter's `/metrics` over HTTP on loopback; `Scraper` does it
in the background for the units' broker and MirrorMaker exporters, with the labels the charm's
scrape jobs add (`juju_unit`, `kafka_service`), and keeps every scrape; `run_promtool` runs
the project's own promtool (built by `runtime/fetch.sh` into the cache), for instance on rule
tests made from them.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from substrate.processes import LOOPBACK, SubstrateError, default_cache

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    """One sample of an exposition: a metric name, its labels and its value."""

    name: str
    labels: dict[str, str]
    value: float


def scrape(port: int, timeout: float = 30) -> str:
    """The text exposition an exporter on loopback serves."""
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=timeout) as response:
        return response.read().decode()


def parse(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition.

    Raises:
        SubstrateError: on a line that is not a sample, a comment or blank.
    """
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        if match is None:
            raise SubstrateError(f"not an exposition line: {line}")
        name, labels, value = match.groups()
        samples.append(Sample(name, dict(LABEL.findall(labels or "")), float(value)))
    return samples


def find(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    """The samples of that name whose labels include these."""
    return [
        sample
        for sample in samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


@dataclass(frozen=True)
class Target:
    """One exporter, as a scrape job lists it: its port and the labels the job adds."""

    port: int
    labels: dict[str, str]


@dataclass
class Scrape:
    """What one round of scrapes found: each target's samples, and whether it answered."""

    at: float
    samples: list[Sample] = field(default_factory=list)
    up: list[Sample] = field(default_factory=list)


@dataclass
class Scraper:
    """Scrapes every target every `interval` seconds in a daemon thread, until stopped.

    Each sample gets its target's labels; `up` is 1 for a target that answered, else 0, as
    Prometheus records it.
    """

    targets: list[Target]
    interval: float = 3.0
    scrapes: list[Scrape] = field(default_factory=list)
    _stopped: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Scraper:
        """Start scraping."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop scraping, after the round under way."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def once(self) -> Scrape:
        """One round of scrapes, kept."""
        found = Scrape(at=time.time())
        for target in self.targets:
            try:
                samples = parse(scrape(target.port, timeout=self.interval + 5))
            except OSError:
                samples = None
            up = 0.0 if samples is None else 1.0
            found.up.append(Sample("up", dict(target.labels), up))
            for sample in samples or ():
                found.samples.append(
                    Sample(sample.name, {**sample.labels, **target.labels}, sample.value)
                )
        self.scrapes.append(found)
        return found

    def _run(self) -> None:
        while not self._stopped.is_set():
            began = time.monotonic()
            self.once()
            self._stopped.wait(max(0.0, self.interval - (time.monotonic() - began)))


def promtool(cache: Path | None = None) -> Path:
    """The promtool `runtime/fetch.sh` built.

    Raises:
        SubstrateError: if it is not there.
    """
    binary = (cache or default_cache()) / "bin" / "promtool"
    if not binary.exists():
        raise SubstrateError(f"no promtool at {binary}: run substrate/runtime/fetch.sh")
    return binary


def run_promtool(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Promtool with these arguments (`test rules FILE`, `check rules FILE`); its outcome."""
    return subprocess.run(
        [str(promtool(cache)), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
