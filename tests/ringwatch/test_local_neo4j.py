"""``ringwatch neo4j``: the CLI drives the same script the tests use, and reports state truly."""

from __future__ import annotations

from pathlib import Path

import pytest

from graph.errors import ConfigError
from ringwatch import local_neo4j
from ringwatch.cli import main as cli_main
from tests.conftest import Neo4jServer, skip_outside_ci


def test_unknown_verb_is_refused() -> None:
    with pytest.raises(ConfigError, match="restart"):
        local_neo4j.run("restart")


def test_status_of_an_instance_that_never_ran_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEO4J_INSTANCE_DIR", str(tmp_path / "nothing"))
    assert cli_main(["neo4j", "status"]) == 3
    assert "stopped" in capsys.readouterr().out


@pytest.mark.neo4j
def test_status_sees_the_running_test_server(
    neo4j_server: Neo4jServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if not neo4j_server.managed:
        skip_outside_ci("external server (RINGWATCH_TEST_NEO4J_URI): not started by scripts/neo4j.sh")
    for key, value in neo4j_server.env.items():
        monkeypatch.setenv(key, value)
    assert cli_main(["neo4j", "status"]) == 0
    out = capsys.readouterr().out
    assert "running" in out and neo4j_server.uri in out
    assert "NEO4J_PASSWORD=$NEO4J_PASSWORD" in out  # the hint never prints a password it was given
