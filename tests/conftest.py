"""Session fixtures shared by every test package: a real Neo4j server for the ``neo4j`` tests.

The server is the project's own (``scripts/neo4j.sh``: Neo4j 5.26 from Maven Central jars), started
once per test session as a separate instance (``.neo4j/test``, Bolt 17687, HTTP 17474, so a
developer's own server on the default ports is left alone; ``RINGWATCH_TEST_NEO4J_BOLT_PORT`` and
``_HTTP_PORT`` move it) and stopped by its PID at the end.

``RINGWATCH_TEST_NEO4J_URI`` (+ ``_USER``, ``_PASSWORD``) points the tests at an existing server
instead. The tests delete everything in that database: never point it at real data.

In CI (``CI`` set) a server that cannot be started fails the run. Locally, and only then, the
Neo4j tests are skipped, with a banner at the end of the run saying so.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "neo4j.sh"
INSTANCE_DIR = REPO / ".neo4j" / "test"
TEST_BOLT_PORT = int(os.environ.get("RINGWATCH_TEST_NEO4J_BOLT_PORT", "17687"))
TEST_HTTP_PORT = int(os.environ.get("RINGWATCH_TEST_NEO4J_HTTP_PORT", "17474"))
TEST_PASSWORD = "ringwatch-test"

_skip_reason: list[str] = []


def skip_outside_ci(reason: str) -> None:
    """Skip a test that cannot run here, but only outside CI: with ``CI`` set it fails instead,
    so that nothing is skipped in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test, but: {reason}", pytrace=False)
    pytest.skip(f"{reason} (skipped because CI is unset; never skipped in CI)")


@dataclass(slots=True)
class Neo4jServer:
    """A live Neo4j for tests. ``managed`` servers were started here and can be stopped and
    started again (fault tests); external ones cannot."""

    uri: str
    user: str
    password: str
    http_url: str | None
    managed: bool
    env: dict[str, str] = field(default_factory=dict)
    #: False when another test session had already started this instance: leave it running.
    owned: bool = True

    def _script(self, verb: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), verb],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop(self) -> None:
        """Stop the server by its PID (managed servers only)."""
        if not self.managed:
            skip_outside_ci("cannot stop an external Neo4j (RINGWATCH_TEST_NEO4J_URI)")
        done = self._script("stop")
        assert done.returncode == 0, done.stderr

    def start(self) -> None:
        """Start it again after ``stop`` and wait until Bolt answers."""
        done = self._script("start")
        assert done.returncode == 0, done.stdout + done.stderr

    def is_running(self) -> bool:
        return self._script("status", timeout=30).returncode == 0


def _start_managed() -> Neo4jServer:
    env = {
        "NEO4J_INSTANCE_DIR": str(INSTANCE_DIR),
        "NEO4J_BOLT_PORT": str(TEST_BOLT_PORT),
        "NEO4J_HTTP_PORT": str(TEST_HTTP_PORT),
        "NEO4J_PASSWORD": TEST_PASSWORD,
    }
    server = Neo4jServer(
        uri=f"bolt://127.0.0.1:{TEST_BOLT_PORT}",
        user="neo4j",
        password=TEST_PASSWORD,
        http_url=f"http://127.0.0.1:{TEST_HTTP_PORT}",
        managed=True,
        env=env,
    )
    done = server._script("start", timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/neo4j.sh start failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    server.owned = "already running" not in done.stdout
    return server


@pytest.fixture(scope="session")
def neo4j_server() -> Iterator[Neo4jServer]:
    """The session's Neo4j. Skips (locally only, loudly) or fails (in CI) when none can run."""
    external = os.environ.get("RINGWATCH_TEST_NEO4J_URI")
    if external:
        yield Neo4jServer(
            uri=external,
            user=os.environ.get("RINGWATCH_TEST_NEO4J_USER", "neo4j"),
            password=os.environ.get("RINGWATCH_TEST_NEO4J_PASSWORD", ""),
            http_url=None,
            managed=False,
        )
        return
    try:
        server = _start_managed()
    except Exception as exc:  # noqa: BLE001 - any failure means "no Neo4j here"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Neo4j tests, but Neo4j did not start: {exc}", pytrace=False)
        _skip_reason.append(str(exc).splitlines()[0])
        pytest.skip(f"NEO4J TESTS SKIPPED (CI unset): {exc}")
    try:
        yield server
    finally:
        if server.owned:
            server._script("stop")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skip_reason:
        bar = "!" * 78
        terminalreporter.write_line(bar, red=True, bold=True)
        terminalreporter.write_line("NEO4J INTEGRATION TESTS WERE SKIPPED: no Neo4j could be started.", red=True, bold=True)
        terminalreporter.write_line(f"reason: {_skip_reason[0]}", red=True)
        terminalreporter.write_line("They never skip in CI. Run `scripts/neo4j.sh install` (needs mvn, java 17).", red=True)
        terminalreporter.write_line(bar, red=True, bold=True)
