# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Fixtures of the local tier: real Kafka, ZooKeeper and Pebble processes on loopback.

The session starts by running `substrate/runtime/fetch.sh` and `fetch-kube.sh`, which fill the
cache (Kafka jars, Pebble, kube-apiserver and etcd) or say which tool is missing; a missing tool
fails the session, it never skips it. The modules that migrate from other Kafka releases or log
in through an OIDC provider run `fetch-sources.sh` too (`sources_cache`).
When a test fails, the tails of the log files of the clusters its fixtures started are added to
its report.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from substrate import processes
from substrate.keycloak import FETCH_SOURCES_SCRIPT
from substrate.kube import FETCH_KUBE_SCRIPT, KubeApiServer
from substrate.old_cluster import OldCluster
from substrate.units import NewCluster

FETCH_TIMEOUT = 1800


def _fetch(script: Path) -> str:
    """Run one fetch script; its last line of output is the path it filled."""
    try:
        result = subprocess.run(
            ["bash", str(script)],
            capture_output=True,
            text=True,
            timeout=FETCH_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script} did not finish in {FETCH_TIMEOUT}s", pytrace=False)
    if result.returncode != 0:
        pytest.fail(
            f"the local tier cannot run: {script} exited with "
            f"{result.returncode}\n{result.stderr.strip()}",
            pytrace=False,
        )
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else ""


@pytest.fixture(scope="session", autouse=True)
def kafka_cache() -> Path:
    """Run the fetch scripts once per session and return the cache path; fail if they cannot.

    `fetch.sh` fills the Kafka jars and Pebble, `fetch-kube.sh` the Kubernetes API server.
    """
    cache = _fetch(processes.FETCH_SCRIPT)
    _fetch(FETCH_KUBE_SCRIPT)
    return Path(cache) if cache else processes.default_cache()


@pytest.fixture(scope="session")
def sources_cache(kafka_cache: Path) -> Path:
    """Run `fetch-sources.sh` once, for the modules that need it: Kafka 2.8 and 4, Keycloak."""
    _fetch(FETCH_SOURCES_SCRIPT)
    return kafka_cache


@pytest.fixture(scope="session")
def local_tmp() -> Iterator[Path]:
    """A short temporary directory for the session's clusters (Pebble sockets need short paths).

    Not pytest's `tmp_path_factory`: pytest-operator, installed with the integration group,
    replaces it with one that only works under tox. After the session every process still
    running under this directory is killed, and the directory is removed.
    """
    base = Path(tempfile.mkdtemp(prefix="kafka-k8s-local-")).resolve()
    yield base
    stragglers = processes.kill_processes(f"{base}/")
    if stragglers:
        sys.stderr.write(f"\nkilled {len(stragglers)} stray processes under {base}\n")
    if not processes.keep_tmp():
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def old_cluster(kafka_cache: Path, local_tmp: Path) -> Iterator[OldCluster]:
    """A one-broker ZooKeeper-mode Kafka with SCRAM-SHA-512 and ACLs: the source."""
    tmp = Path(tempfile.mkdtemp(prefix="old-", dir=local_tmp))
    with OldCluster(tmp, cache=kafka_cache, size=1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def new_cluster(
    kafka_cache: Path, local_tmp: Path, request: pytest.FixtureRequest
) -> Iterator[NewCluster]:
    """Units of the charm's Kafka, each under its own Pebble: the target.

    Three, or as many as the test module's `UNITS` says.
    """
    tmp = Path(tempfile.mkdtemp(prefix="new-", dir=local_tmp))
    size = getattr(request.module, "UNITS", 3)
    with NewCluster(tmp, cache=kafka_cache, size=size) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def kube_api(kafka_cache: Path, local_tmp: Path) -> Iterator[KubeApiServer]:
    """One real kube-apiserver (and its etcd) for the session, started when a test needs it."""
    with KubeApiServer(local_tmp / "kube", cache=kafka_cache) as server:
        yield server


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """On failure, attach the log tails of the clusters the test's fixtures started."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    files = list(processes.iter_log_files(funcargs.values()))
    if files:
        report.sections.append(
            ("kafka, zookeeper and pebble logs", processes.format_log_tails(files))
        )
