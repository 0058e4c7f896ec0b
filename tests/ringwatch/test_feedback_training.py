"""Verdicts loaded with ``ringwatch label`` flow into the next training run (issue 4).

``test_feedback.py`` checks that the store keeps the latest verdict (both stores, both load
orders). Here, on the embedded store: the targets the *next training run* learns from
(``gnn.training.split.targets``, as called by ``gnn.training.train.train`` inside ``ringwatch train``'s step)
change with each labels file, and an investigator's later 'legit' on an account that a
chargeback had labelled fraud takes it out of the positives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gnn.training.split
from gnn.artefact.model_artefact import SUPERVISED, UNSUPERVISED
from gnn.training.split import Targets
from gnn.training.train import TrainConfig
from graph.types import EVENT_KINDS, NodeType, Snapshot
from ringwatch import pipeline
from ringwatch.cli import main as cli_main
from ringwatch.settings import Settings
from tests.gnn.synth import SynthData, generate

pytestmark = pytest.mark.slow  # three (short) training runs

#: Two epochs: the runs only have to read their targets, not to learn well.
CONFIG = TrainConfig(device="cpu", epochs=2, patience=2, seed=7)
_PAY = EVENT_KINDS.index("payment")


def _iso(ts: pd.Series) -> pd.Series:
    return pd.to_datetime(ts.round(), unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_events(data: SynthData, path: Path) -> Path:
    ev = data.events.copy()
    ev["ts"] = _iso(ev["ts"])
    # The planted world names IPs "ip-u0001", "fam-ip3", ...: give each a real address.
    names = sorted(ev["ip"].dropna().unique())
    address = {n: f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i, n in enumerate(names, start=1)}
    ev["ip"] = ev["ip"].map(address)
    ev["currency"] = np.where(ev["amount"].notna(), "EUR", "")
    ev.to_csv(path, index=False, columns=["txn_id", "ts", "user_id", "device_id", "ip", "merchant_id", "amount", "currency", "event", "status"])
    return path


def _write_labels(rows: pd.DataFrame, source: str, path: Path) -> Path:
    out = rows[["entity", "entity_id", "label"]].copy()
    out["ts"] = _iso(rows["ts"])
    out["source"] = source
    out.to_csv(path, index=False)
    return path


class TargetsSpy:
    """Records what ``gnn.training.train.train`` learns from: every ``targets(snapshot)`` it calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[Snapshot, Targets]] = []
        real = gnn.training.split.targets

        def spy(snapshot: Snapshot) -> Targets:
            y = real(snapshot)
            self.calls.append((snapshot, y))
            return y

        monkeypatch.setattr(gnn.training.split, "targets", spy)

    def train(self, settings: Settings) -> tuple[str, set[str], Snapshot, Targets]:
        """One ``ringwatch train`` step: the artefact's mode, the positive accounts it learnt
        from, and its snapshot and targets (the same in every ``train`` call of the step)."""
        self.calls.clear()
        outcome = pipeline.step_train(settings, CONFIG)
        assert self.calls, "the training run did not compute its targets through gnn.training.split.targets"
        snap, y = self.calls[-1]
        for _, other in self.calls:
            assert np.array_equal(other.user, y.user) and np.array_equal(other.txn, y.txn)
        users = snap.nodes[NodeType.USER]
        return outcome.artefact.mode, set(users[y.user].tolist()), snap, y


def test_label_files_change_the_next_training_runs_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    data = generate()
    settings = Settings.load(tmp_path / "home")
    argv = ["--home", str(settings.home), "--no-progress"]
    assert cli_main([*argv, "ingest", str(_write_events(data, tmp_path / "events.csv"))]) == 0
    spy = TargetsSpy(monkeypatch)

    # 1. No verdicts yet: nothing to learn from, the run falls back to the anomaly score.
    mode, positives, _, y = spy.train(settings)
    assert mode == UNSUPERVISED and positives == set() and not y.txn.any()

    # 2. Chargebacks arrive through `ringwatch label`: exactly those accounts become positives.
    fraud = data.labels[data.labels["label"] == "fraud"]
    assert cli_main([*argv, "label", str(_write_labels(fraud, "chargeback", tmp_path / "chargebacks.csv"))]) == 0
    charged = set(fraud.loc[fraud["entity"] == "user", "entity_id"])
    assert len(charged) >= CONFIG.min_fraud_labels
    mode, positives, snap, y = spy.train(settings)
    assert positives == charged
    assert mode == SUPERVISED, "enough fraud labels: the next run trains GraphSAGE"
    txn_labelled = set(fraud.loc[fraud["entity"] == "transaction", "entity_id"])
    assert txn_labelled <= set(snap.transactions.txn_id[y.txn].tolist())

    # 3. An investigator clears one of them, later than its chargeback: out of the positives,
    #    and so are its payments, except those with a fraud verdict of their own (a
    #    transaction's own verdict wins, DESIGN §5).
    cleared = sorted(charged)[0]
    verdict = pd.DataFrame(
        {"entity": ["user"], "entity_id": [cleared], "label": ["legit"], "ts": [float(fraud["ts"].max()) + 86_400.0]}
    )
    assert cli_main([*argv, "label", str(_write_labels(verdict, "investigator", tmp_path / "cleared.csv"))]) == 0
    mode, positives, snap, y = spy.train(settings)
    assert positives == charged - {cleared}
    t = snap.transactions
    pays = (snap.nodes[NodeType.USER][t.user] == cleared) & (t.event == _PAY)
    own_verdict = np.isin(t.txn_id, list(txn_labelled))
    assert (pays & ~own_verdict).any() and not y.txn[pays & ~own_verdict].any()
    assert y.txn[pays & own_verdict].all()
