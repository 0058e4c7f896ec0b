"""Command-line errors a user can cause are one clear line and exit 2, never a traceback."""

from __future__ import annotations

import os
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


def test_what_ringwatch_writes_is_owner_only(tmp_path: Path) -> None:
    """Store, quarantine and models hold events and labels: 0600 files in 0700 folders, whatever
    the caller's umask, which is put back afterwards."""
    events = tmp_path / "events.csv"
    events.write_text(
        "txn_id,ts,user_id,device_id,ip,merchant_id,amount,currency,event,status\n"
        "t1,2026-01-02T00:00:00Z,u1,d1,10.0.0.1,m1,5,USD,payment,approved\n"
        "t2,not-a-time,u1,d1,10.0.0.1,m1,5,USD,payment,approved\n",
        encoding="utf-8",
    )
    home = tmp_path / "home"
    before = os.umask(0o022)
    try:
        assert cli_main(["--home", str(home), "--no-progress", "ingest", str(events)]) == 0
        assert os.umask(0o022) == 0o022  # put back
    finally:
        os.umask(before)
    written = [p for p in home.rglob("*")]
    assert any(p.name == "store.sqlite" for p in written) and any(p.suffix == ".csv" for p in written)
    for p in [home, *written]:
        assert p.stat().st_mode & 0o077 == 0, (p, oct(p.stat().st_mode))
