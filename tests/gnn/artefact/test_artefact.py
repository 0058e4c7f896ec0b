from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gnn.artefact.model_artefact import CURRENT, ModelArtefact
from gnn.core.thresholds import Thresholds
from gnn.serving.scoring import score_snapshot
from graph.errors import ModelError, ValidationError
from tests.gnn.synth import SynthData


def test_save_load_round_trip_gives_identical_scores(tmp_path: Path, trained: ModelArtefact, synth: SynthData) -> None:
    path = trained.save(tmp_path)
    assert path == tmp_path / f"model-{trained.version}.pt"
    assert (tmp_path / CURRENT).read_text().strip() == path.name
    loaded = ModelArtefact.load(tmp_path)
    assert loaded.version == trained.version
    assert loaded.mode == trained.mode == "supervised"
    assert loaded.account_thresholds == trained.account_thresholds
    assert loaded.metrics == trained.metrics
    assert loaded.model_config == trained.model_config
    a = score_snapshot(trained, synth.snapshot)
    b = score_snapshot(loaded, synth.snapshot)
    np.testing.assert_array_equal(a.account_scores, b.account_scores)
    np.testing.assert_array_equal(a.txn_scores, b.txn_scores)
    assert a.account_tiers == b.account_tiers
    assert ModelArtefact.load(tmp_path, trained.version).version == trained.version


def test_current_moves_to_latest_save(tmp_path: Path, trained: ModelArtefact) -> None:
    trained.save(tmp_path)
    other = trained.with_thresholds(account=Thresholds(medium=0.1, high=0.2))
    import dataclasses

    renamed = dataclasses.replace(other, version="manual-1")
    renamed.save(tmp_path)
    assert ModelArtefact.load(tmp_path).version == "manual-1"
    assert ModelArtefact.load(tmp_path, trained.version).account_thresholds == trained.account_thresholds
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_missing_model_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="ringwatch train"):
        ModelArtefact.load(tmp_path)
    with pytest.raises(ModelError, match="ringwatch train"):
        ModelArtefact.load(tmp_path, "20260101-000000-abcdef")


def test_bad_version_and_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="version"):
        ModelArtefact.load(tmp_path, "../etc/passwd")
    (tmp_path / "model-broken.pt").write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="cannot read"):
        ModelArtefact.load(tmp_path, "broken")


def test_with_thresholds_changes_tiers_not_scores(trained: ModelArtefact, synth: SynthData) -> None:
    strict = trained.with_thresholds(account=Thresholds(medium=0.999999, high=1.0))
    assert strict.transaction_thresholds == trained.transaction_thresholds
    a = score_snapshot(trained, synth.snapshot)
    b = score_snapshot(strict, synth.snapshot)
    np.testing.assert_array_equal(a.account_scores, b.account_scores)
    assert sum(t.rank for t in b.account_tiers) < sum(t.rank for t in a.account_tiers)


def test_saving_removes_temp_files_of_a_save_that_died_and_keeps_a_live_ones(tmp_path: Path, trained: ModelArtefact) -> None:
    """kill -9 during a save leaves its temporary file; the next save clears it, but never one
    that a running process is still writing."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    models = tmp_path / "models"
    models.mkdir()
    dead = models / f".model-20260101-000000-abcdef.pt.{dead_pid}.k3j_x9"
    live = models / f".model-20260101-000000-abcdef.pt.{os.getpid()}.q1w2e3"
    other = models / ".keep-me"
    for p in (dead, live, other):
        p.write_bytes(b"partial")
    trained.save(models)
    assert not dead.exists() and live.exists() and other.exists()
    assert not [p for p in models.glob(".*") if p not in (live, other)]  # this save left none
