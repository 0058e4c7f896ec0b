"""Loading events and labels needs no model code: `ringwatch ingest` and `label` never import
PyTorch (about 0.8 GB of memory and seconds of start-up), so they run small on a loader box."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_PROBE = """
import sys
from ringwatch.cli import main
home, events, labels = sys.argv[1:4]
assert main(["--home", home, "--no-progress", "ingest", events]) == 0
assert main(["--home", home, "--no-progress", "label", labels]) == 0
print("heavy:", sorted(m for m in ("torch", "torch_geometric", "sklearn") if m in sys.modules))
"""


def test_ingest_and_label_do_not_import_torch(tmp_path: Path) -> None:
    events = tmp_path / "events.csv"
    events.write_text(
        "txn_id,ts,user_id,device_id,ip,merchant_id,amount,currency,event,status\n"
        "t1,2026-01-02T00:00:00Z,u1,d1,10.0.0.1,m1,5,USD,payment,approved\n",
        encoding="utf-8",
    )
    labels = tmp_path / "labels.csv"
    labels.write_text("entity,entity_id,label,ts,source\nuser,u1,fraud,2026-01-05T00:00:00Z,chargeback\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "home"), str(events), str(labels)],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stdout, done.stdout
