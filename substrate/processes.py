# Copyright 2025 The kafka-k8s authors.
# See LICENSE file for licensing details.
"""Processes, ports, logs and waits of the local runtime; the Kafka client settings it uses.

Every process runs in its own process group; `kill_processes` finds what a supervisor (Pebble)
started by a marker in its command line or environment. Ports are allocated dynamically on
127.0.0.1, never twice in one process. Nothing here talks to anything but loopback.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar, cast

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from models import SCRAM_MECHANISM

FETCH_SCRIPT = Path(__file__).resolve().parent / "runtime" / "fetch.sh"
LOOPBACK = "127.0.0.1"
TAIL_LINES = 80
# AF_UNIX socket paths are limited to 108 bytes on Linux.
MAX_SOCKET_PATH = 100


def default_cache() -> Path:
    """The cache directory `fetch.sh` fills: `$KAFKA_K8S_CACHE` or `~/.cache/kafka-k8s-test`."""
    env = os.environ.get("KAFKA_K8S_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kafka-k8s-test"


def java_home() -> Path:
    """This machine's JDK: `$JAVA_HOME`, else the one the `java` on PATH belongs to.

    Raises:
        SubstrateError: if there is no `java`.
    """
    if home := os.environ.get("JAVA_HOME"):
        return Path(home)
    found = shutil.which("java")
    if found is None:
        raise SubstrateError("no java on PATH: install a JDK 17 (apt-get install openjdk-17-jdk)")
    return Path(found).resolve().parent.parent


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for running one of the rock-like root's bin scripts from a test.

    The scripts run the JDK `JAVA_HOME` names, as in the rock; a test's own process sets it.
    """
    return {**os.environ, "JAVA_HOME": str(java_home()), **extra}


def keep_tmp() -> bool:
    """Whether to keep temporary directories after stopping (`KAFKA_K8S_KEEP_TMP=1`)."""
    return os.environ.get("KAFKA_K8S_KEEP_TMP", "") not in ("", "0", "false")


_Started = TypeVar("_Started", bound="Started")


class Started:
    """A piece of the runtime that `start` brings up and `stop` ends.

    In a `with` block it is stopped on the way out, also when the block fails.
    """

    def start(self: _Started) -> _Started:
        """Bring it up; itself."""
        raise NotImplementedError

    def stop(self) -> None:
        """End every process it started."""
        raise NotImplementedError

    def __enter__(self: _Started) -> _Started:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def remove_tmp(tmp: Path) -> None:
    """Kill what still runs from `tmp`, then remove it (kept with `KAFKA_K8S_KEEP_TMP=1`)."""
    kill_processes(f"{tmp.resolve()}/")
    if not keep_tmp():
        shutil.rmtree(tmp, ignore_errors=True)


class SubstrateError(Exception):
    """A process of the substrate did not start or answer in time."""


_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 that this process has not handed out before.

    Raises:
        SubstrateError: if no new free port turns up.
    """
    with _ports_lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((LOOPBACK, 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise SubstrateError("no free TCP port on 127.0.0.1")


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _proc_text(pid: int, name: str) -> str:
    try:
        raw = Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def find_processes(*needles: str, environ: bool = False) -> list[int]:
    """Pids of live processes whose command line contains every one of `needles`.

    Args:
        needles: strings that must all occur.
        environ: also match processes whose environment holds every needle (Pebble's own
            command line does not name its directory; its `PEBBLE` variable does).
    """
    own = {os.getpid(), os.getppid()}
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in own:
            continue
        texts = [_proc_text(pid, "cmdline")]
        if environ:
            texts.append(_proc_text(pid, "environ"))
        if any(text and all(needle in text for needle in needles) for text in texts):
            pids.append(pid)
    return pids


def kill_processes(*needles: str, timeout: float = 15.0) -> list[int]:
    """SIGKILL every process whose command line or environment holds all `needles`.

    Repeats until none is left (a supervisor may restart a child in between) or `timeout`.

    Returns:
        The pids that were killed.
    """
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while pids := find_processes(*needles, environ=True):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return killed


def kill_group(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGKILL a process started with `start_new_session=True`, its group, and reap it."""
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)


def spawn(
    command: list[str],
    *,
    log_file: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a process in its own session and process group, output appended to `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=tool_env(**(env or {})),
            cwd=cwd,
            start_new_session=True,
        )


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last `lines` lines of a text file, or a note that it is missing."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 256 * lines))
            text = handle.read().decode(errors="replace")
    except OSError as error:
        return f"({error.strerror})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def format_log_tails(files: Iterable[Path], lines: int = TAIL_LINES) -> str:
    """Each file's tail under a header naming it."""
    sections = [f"----- {path} (last {lines} lines) -----\n{tail(path, lines)}" for path in files]
    return "\n".join(sections)


def wait_until(
    condition: Callable[[], bool], *, timeout: float, interval: float = 0.5, what: str
) -> None:
    """Poll `condition` until it holds.

    Raises:
        SubstrateError: naming `what` if it does not hold within `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise SubstrateError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


ClientConfig = dict[str, str | int | float | bool]
"""A confluent-kafka client configuration, typed as confluent-kafka's constructors take it."""


def sasl_config(bootstrap: str, username: str, password: str) -> ClientConfig:
    """A confluent-kafka client configuration for SASL_PLAINTEXT with SCRAM-SHA-512."""
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": SCRAM_MECHANISM,
        "sasl.username": username,
        "sasl.password": password,
    }


def tls_config(bootstrap: str, username: str, password: str, ca: str) -> ClientConfig:
    """A confluent-kafka client configuration for SASL_SSL with SCRAM-SHA-512, trusting `ca`.

    The broker's name is verified against its certificate (librdkafka's default, set here).
    """
    return {
        **sasl_config(bootstrap, username, password),
        "security.protocol": "SASL_SSL",
        "ssl.ca.pem": ca,
        "ssl.endpoint.identification.algorithm": "https",
    }


def broker_count(config: ClientConfig, timeout: float = 5.0) -> int:
    """How many brokers the cluster reports, or 0 when it does not answer."""
    admin = AdminClient({**config, "log_level": 3})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return 0
    return len(metadata.brokers)


def random_password() -> str:
    """A random password like the charm would generate."""
    return secrets.token_urlsafe(24)


def current_user() -> tuple[str, str]:
    """The user and group names this process runs as (the workload runs as them too)."""
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def iter_log_files(objects: Iterable[object]) -> Iterator[Path]:
    """The log files of every cluster-like object (anything with `log_files()`) in `objects`."""
    seen: set[Path] = set()
    for obj in objects:
        method = getattr(obj, "log_files", None)
        if not callable(method):
            continue
        for path in cast("Iterable[Path]", method()):
            if path not in seen:
                seen.add(path)
                yield path
