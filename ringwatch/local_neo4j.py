"""``ringwatch neo4j start|stop|status|install``: the project's own local Neo4j server.

A thin wrapper over ``scripts/neo4j.sh`` (Neo4j 5.26 community from Maven Central jars, no Docker),
so the command line and the tests start the same server the same way. It needs the source
checkout (the script and ``neo4j/pom.xml``), Java 17 and Maven. ``admin`` runs ``neo4j-admin`` on
the stopped server's instance (the offline importer of ``ringwatch neo4j import``).
"""

from __future__ import annotations

import os
import tempfile
import threading
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from graph.errors import ConfigError, StoreUnavailableError

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "neo4j.sh"
VERBS = ("install", "start", "stop", "status")
DEFAULT_PASSWORD = "ringwatch-dev"


@dataclass(frozen=True, slots=True)
class LocalNeo4jResult:
    """What the script said and its exit code (``status``: 0 running, 3 stopped)."""

    verb: str
    returncode: int
    output: str

    @property
    def running(self) -> bool:
        return self.verb == "status" and self.returncode == 0


def bolt_uri() -> str:
    return f"bolt://127.0.0.1:{os.environ.get('NEO4J_BOLT_PORT', '7687')}"


def run(verb: str, timeout: float = 600) -> LocalNeo4jResult:
    """Run one verb of ``scripts/neo4j.sh`` with this process's environment.

    Raises:
        ConfigError: unknown verb, or the script is missing (not a source checkout).
        StoreUnavailableError: install/start/stop failed (the script's own message is included).
    """
    if verb not in VERBS:
        raise ConfigError(f"unknown neo4j command {verb!r}; use one of {', '.join(VERBS)}")
    if not SCRIPT.is_file():
        raise ConfigError(f"{SCRIPT} not found: `ringwatch neo4j` needs the ringwatch source checkout")
    done = subprocess.run(
        ["bash", str(SCRIPT), verb], capture_output=True, text=True, timeout=timeout, check=False
    )
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0 and not (verb == "status" and done.returncode == 3):
        raise StoreUnavailableError(f"local Neo4j {verb} failed (exit {done.returncode}): {output}")
    return LocalNeo4jResult(verb=verb, returncode=done.returncode, output=output)


@dataclass(frozen=True, slots=True)
class AdminResult:
    """What ``neo4j-admin`` printed, how long it took, the peak memory (RSS) of its JVM and the
    CPU seconds it used (user + system, all its threads)."""

    returncode: int
    output: str
    seconds: float
    peak_rss_bytes: int
    cpu_seconds: float = 0.0


def admin(args: list[str], timeout: float = 7200) -> AdminResult:
    """``neo4j-admin ARGS`` on the local instance (``scripts/neo4j.sh admin``; the server must be
    stopped). The script execs the JVM, so ``wait4`` reports the JVM's own peak memory.

    Raises:
        ConfigError: the script is missing (not a source checkout).
        StoreUnavailableError: neo4j-admin failed, or ran past ``timeout`` seconds (then killed).
    """
    if not SCRIPT.is_file():
        raise ConfigError(f"{SCRIPT} not found: `ringwatch neo4j import` needs the ringwatch source checkout")
    started = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(["bash", str(SCRIPT), "admin", *args], stdout=log, stderr=subprocess.STDOUT)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            # Reap the child here (not through Popen.wait) to get its own resource usage.
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    if proc.returncode < 0 and time.perf_counter() - started >= timeout:
        raise StoreUnavailableError(f"neo4j-admin {' '.join(args[:3])} ran past {timeout:.0f} s and was stopped")
    seconds = time.perf_counter() - started
    peak = usage.ru_maxrss * 1024  # kilobytes on Linux
    if proc.returncode != 0:
        raise StoreUnavailableError(f"neo4j-admin {' '.join(args[:3])} failed (exit {proc.returncode}): {output.strip()}")
    return AdminResult(returncode=proc.returncode, output=output.strip(), seconds=seconds, peak_rss_bytes=peak,
                       cpu_seconds=usage.ru_utime + usage.ru_stime)  # fmt: skip


def password() -> str:
    """The local server's password for user neo4j (``NEO4J_PASSWORD``, as the script uses it)."""
    return os.environ.get("NEO4J_PASSWORD", DEFAULT_PASSWORD)


def connection_hint() -> str:
    """The environment a shell needs to point ringwatch at the local server."""
    password = os.environ.get("NEO4J_PASSWORD", DEFAULT_PASSWORD)
    shown = "$NEO4J_PASSWORD" if "NEO4J_PASSWORD" in os.environ else password
    return f"export NEO4J_URI={bolt_uri()} NEO4J_USER=neo4j NEO4J_PASSWORD={shown}"
