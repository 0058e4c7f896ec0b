"""Loading into the real embedded store: a second load of the same file inserts nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from graph.sqlite_store import SQLiteGraphStore
from ingestion.loader import load_events, load_labels


def test_second_load_into_sqlite_inserts_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 300
    frame = pd.DataFrame(
        {
            "txn_id": [f"t{i:04d}" for i in range(n)],
            "ts": (pd.Timestamp("2024-02-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"))
            .strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user_id": [f"u{i}" for i in rng.integers(0, 40, n)],
            "device_id": [f"d{i}" for i in rng.integers(0, 30, n)],
            "ip": [f"10.0.{a}.{b}" for a, b in rng.integers(0, 4, (n, 2))],
            "merchant_id": [f"m{i}" for i in rng.integers(0, 6, n)],
            "amount": np.round(rng.gamma(2.0, 25.0, n), 2),
            "currency": "USD",
            "event": "payment",
            "status": "approved",
        }
    )
    frame.loc[7, "ip"] = "not-an-ip"
    events = tmp_path / "events.csv"
    frame.to_csv(events, index=False)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "entity,entity_id,label,ts,source\nuser,u1,fraud,2024-02-05T00:00:00Z,chargeback\n", encoding="utf-8"
    )

    store = SQLiteGraphStore(tmp_path / "store.sqlite")
    try:
        first = load_events(events, store, quarantine_dir=tmp_path / "q", batch_size=128)
        assert (first.loaded, first.duplicates, first.quarantined) == (n - 1, 0, 1)
        second = load_events(events, store, quarantine_dir=tmp_path / "q", batch_size=128)
        assert (second.loaded, second.duplicates, second.quarantined) == (0, n - 1, 1)
        assert load_labels(labels, store, quarantine_dir=tmp_path / "q").loaded == 1
        assert load_labels(labels, store, quarantine_dir=tmp_path / "q").loaded == 0
        snap = store.snapshot()
        assert len(snap.transactions) == n - 1
        assert len(snap.user_labels) == 1
    finally:
        store.close()
