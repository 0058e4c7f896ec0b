"""``ringwatch neo4j start|stop|status|install``: the project's own local Neo4j server.

A thin wrapper over ``scripts/neo4j.sh`` (Neo4j 5.26 community from Maven Central jars, no Docker),
so the command line and the tests start the same server the same way. It needs the source
checkout (the script and ``neo4j/pom.xml``), Java 17 and Maven.
"""

from __future__ import annotations

import os
import subprocess
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


def connection_hint() -> str:
    """The environment a shell needs to point ringwatch at the local server."""
    password = os.environ.get("NEO4J_PASSWORD", DEFAULT_PASSWORD)
    shown = "$NEO4J_PASSWORD" if "NEO4J_PASSWORD" in os.environ else password
    return f"export NEO4J_URI={bolt_uri()} NEO4J_USER=neo4j NEO4J_PASSWORD={shown}"
