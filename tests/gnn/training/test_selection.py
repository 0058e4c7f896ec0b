"""Model selection: the winner on validation AUPRC ships, is recorded, and scores the same after
saving, whichever candidate it is."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from gnn.artefact.model_artefact import GRAPHSAGE, ModelArtefact, metadata_file_name
from gnn.core.metrics import auprc
from gnn.serving.scoring import score_snapshot
from gnn.training.candidates import CandidateRun, CandidateScores, fit_candidates
from gnn.training.selection import CANDIDATES, MIN_VALIDATION_FRAUDS, select, ship, train_and_select
from gnn.training.split import Split, Targets
from graph.errors import ValidationError
from tests.gnn.conftest import CONFIG
from tests.gnn.synth import SynthData, generate


@pytest.fixture(scope="module")
def run(synth: SynthData, trained: ModelArtefact) -> CandidateRun:
    return fit_candidates(synth.snapshot, CONFIG, names=CANDIDATES, artefact=trained)


def _fake_run(account: dict[str, list[float]], txn: dict[str, list[float]]) -> CandidateRun:
    y_user = np.array([1, 0, 0, 1, 0, 0], dtype=bool)
    y_txn = np.array([0, 1, 0, 0], dtype=bool)

    def every(n: int) -> Split:  # everything is validation
        return Split(train=np.arange(0), val=np.arange(n), test=np.arange(0))

    return CandidateRun(
        scores=tuple(CandidateScores(n, np.array(account[n]), np.array(txn[n]), 0.0) for n in account),
        targets=Targets(user=y_user, txn=y_txn),
        users=every(6),
        txns=every(4),
        artefact=None,
        aggregate_names=(),
    )


def _run_of(n: int, n_fraud: int, separation: float, seed: int = 0) -> CandidateRun:
    """Every candidate scores ``n`` validation accounts and transactions the same way: frauds
    shifted up by ``separation`` standard deviations."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=bool)
    y[:n_fraud] = True
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + separation * y)))
    every = Split(train=np.arange(0), val=np.arange(n), test=np.arange(0))
    return CandidateRun(
        scores=tuple(CandidateScores(c, s, s, 0.0) for c in CANDIDATES),
        targets=Targets(user=y, txn=y),
        users=every,
        txns=every,
        artefact=None,
        aggregate_names=(),
    )


def test_a_validation_split_without_signal_is_called_noise() -> None:
    sel = select(_run_of(2000, 40, separation=0.0))
    assert "cannot tell the candidates apart" in sel.warning and "includes chance (0.5)" in sel.warning
    assert "40 frauds" in sel.warning and sel.winner in sel.warning
    few = select(_run_of(2000, MIN_VALIDATION_FRAUDS - 1, separation=3.0))
    assert f"{MIN_VALIDATION_FRAUDS - 1} frauds (fewer than {MIN_VALIDATION_FRAUDS})" in few.warning
    assert select(_run_of(2000, 40, separation=2.0)).warning == ""
    # Recorded with the artefact's selection.
    assert type(sel).from_dict(json.loads(json.dumps(sel.to_dict()))) == sel


def test_the_highest_validation_sum_wins_and_graphsage_wins_ties() -> None:
    good = [0.9, 0.1, 0.2, 0.8, 0.1, 0.3]  # both frauds on top: AUPRC 1
    poor = [0.1, 0.9, 0.2, 0.8, 0.1, 0.3]
    txn_good, txn_poor = [0.1, 0.9, 0.2, 0.3], [0.9, 0.1, 0.2, 0.3]
    run = _fake_run(
        {"graphsage": poor, "trees_aggregated": good, "hybrid": poor, "trees_known_fraud": poor},
        {"graphsage": txn_good, "trees_aggregated": txn_good, "hybrid": txn_good, "trees_known_fraud": txn_good},
    )
    sel = select(run)
    assert sel.winner == "trees_aggregated"
    assert [c.name for c in sel.candidates] == list(CANDIDATES)
    assert sel.get("trees_aggregated").accounts_val_auprc == 1.0
    assert sel.get("graphsage").accounts_val_auprc == pytest.approx(auprc(np.array(poor), run.targets.user))
    # Better accounts but much worse transactions loses: the sum decides.
    run = _fake_run(
        {"graphsage": poor, "trees_aggregated": good, "hybrid": poor, "trees_known_fraud": poor},
        {"graphsage": txn_good, "trees_aggregated": txn_poor, "hybrid": txn_good, "trees_known_fraud": txn_good},
    )
    assert select(run).winner == "graphsage"
    tie = _fake_run({n: good for n in CANDIDATES}, {n: txn_good for n in CANDIDATES})
    assert select(tie).winner == GRAPHSAGE


def test_a_validation_split_without_fraud_counts_zero() -> None:
    run = _fake_run({"graphsage": [0.5] * 6, "hybrid": [0.9, 0, 0, 0.9, 0, 0]}, {"graphsage": [0.5] * 4, "hybrid": [0.5] * 4})
    run = dataclasses.replace(run, targets=Targets(user=run.targets.user, txn=np.zeros(4, dtype=bool)))
    sel = select(run, ("graphsage", "hybrid"))
    assert math.isnan(sel.get("hybrid").transactions_val_auprc)
    assert sel.winner == "hybrid" and sel.get("hybrid").total == 1.0


def test_selection_records_every_candidate_and_ships_the_winner(run: CandidateRun, trained: ModelArtefact) -> None:
    sel = select(run)
    art = ship(trained, run, sel, CONFIG)
    assert art.selection == sel and art.scorer == sel.winner
    best = max(sel.candidates, key=lambda c: c.total)
    assert sel.winner == best.name
    for c in sel.candidates:
        s = run.get(c.name)
        assert c.accounts_val_auprc == pytest.approx(auprc(s.account[run.users.val], run.targets.user[run.users.val]))
        assert c.transactions_val_auprc == pytest.approx(auprc(s.txn[run.txns.val], run.targets.txn[run.txns.val]))
    # The recorded metrics are the shipped scorer's, not GraphSAGE's when trees won.
    assert art.metrics.accounts_val is not None
    assert art.metrics.accounts_val.auprc == pytest.approx(sel.get(sel.winner).accounts_val_auprc)


@pytest.mark.parametrize("family", ["trees_aggregated", "hybrid"])
def test_a_tree_winner_scores_the_same_through_the_artefact_after_saving(
    family: str, run: CandidateRun, trained: ModelArtefact, synth: SynthData, tmp_path: Path
) -> None:
    sel = dataclasses.replace(select(run), winner=family)  # ship this family whoever won
    art = ship(trained, run, sel, CONFIG)
    assert art.scorer == family and art.trees is not None and art.version != trained.version
    assert art.state_dict.keys() == trained.state_dict.keys()  # GraphSAGE stays in the artefact
    art.save(tmp_path)
    loaded = ModelArtefact.load(tmp_path)
    assert loaded.scorer == family and loaded.selection == sel
    result = score_snapshot(loaded, synth.snapshot)
    fitted = run.get(family)
    np.testing.assert_array_equal(result.account_scores, fitted.account)
    np.testing.assert_array_equal(result.txn_scores, fitted.txn)
    assert result.scorer == family
    # Tiers come from thresholds calibrated on this scorer's validation scores.
    assert loaded.account_thresholds == art.account_thresholds
    assert sum(t.value == "high" for t in result.account_tiers) > 0
    meta = json.loads((tmp_path / metadata_file_name(art.version)).read_text())
    assert meta["scorer"] == family and meta["selection"]["winner"] == family
    assert {c["name"] for c in meta["selection"]["candidates"]} == set(CANDIDATES)
    assert "rule" in meta["selection"]


def test_graphsage_winner_scores_with_the_network(run: CandidateRun, trained: ModelArtefact, synth: SynthData) -> None:
    art = ship(trained, run, dataclasses.replace(select(run), winner=GRAPHSAGE), CONFIG)
    assert art.version == trained.version and art.trees is None
    np.testing.assert_array_equal(
        score_snapshot(art, synth.snapshot).account_scores, score_snapshot(trained, synth.snapshot).account_scores
    )


def test_format_1_artefacts_still_load_as_graphsage(trained: ModelArtefact, synth: SynthData) -> None:
    old = trained.to_dict()
    old["format"] = 1
    for key in ("scorer", "trees", "selection", "promotion"):
        del old[key]
    loaded = ModelArtefact.from_dict(old)
    assert loaded.scorer == GRAPHSAGE and loaded.selection is None
    np.testing.assert_array_equal(
        score_snapshot(loaded, synth.snapshot).account_scores, score_snapshot(trained, synth.snapshot).account_scores
    )


def test_a_tree_scorer_needs_its_trees(trained: ModelArtefact) -> None:
    with pytest.raises(ValidationError, match="trees"):
        dataclasses.replace(trained, scorer="hybrid")
    with pytest.raises(ValidationError, match="scorer"):
        dataclasses.replace(trained, scorer="random_forest")


def test_too_few_labels_stays_unsupervised_without_selection() -> None:
    data = generate(with_labels=False)
    art = train_and_select(data.snapshot, CONFIG)
    assert art.mode == "unsupervised" and art.selection is None and art.shipped == "anomaly"


def test_candidates_must_include_graphsage(synth: SynthData) -> None:
    with pytest.raises(ValidationError):
        train_and_select(synth.snapshot, CONFIG, candidates=("trees_aggregated",))
