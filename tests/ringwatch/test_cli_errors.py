"""Command-line errors a user can cause are one clear line and exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringwatch.cli import main as cli_main


@pytest.mark.parametrize("command", [["ingest", "events.csv"], ["label", "labels.csv"], ["train"], ["evaluate"]])
def test_a_home_that_cannot_be_created_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for name in ("events.csv", "labels.csv"):
        (tmp_path / name).write_text("txn_id,ts,user_id\n", encoding="utf-8")
    args = [str(tmp_path / c) if c.endswith(".csv") else c for c in command]
    assert cli_main(["--home", str(blocker / "home"), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot create {blocker / 'home'}" in err and "--home" in err, err
