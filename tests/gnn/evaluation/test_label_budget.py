"""``gnn.evaluation.label_budget``: which labels a fraction reveals, and what the shipped training makes of
them on the same held-out test split (issue 4, "Few labels, or none")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gnn.artefact.model_artefact import GRAPHSAGE
from gnn.core.tree_features import TREES_AGGREGATED
from gnn.evaluation.baselines import run_baselines
from gnn.evaluation.evaluate import JSON_FILE, evaluate
from gnn.evaluation.label_budget import LABEL_FRACTIONS, LabelBudget, label_budget, reveal_labels
from gnn.training.split import targets, txn_split, user_split
from gnn.training.train import TrainConfig
from graph.types import Snapshot
from tests.gnn.synth import SynthData

SEED = 7


def _fraud_accounts(snap: Snapshot) -> set[int]:
    """Accounts with a fraud verdict of their own or on one of their transactions."""
    ul, tl = snap.user_labels, snap.txn_labels
    out = set(ul.index[ul.is_fraud].tolist())
    out |= set(snap.transactions.user[tl.index[tl.is_fraud]].tolist())
    return out


# -- which labels are revealed ------------------------------------------------------------------


def test_hidden_labels_come_from_the_training_part_only(synth: SynthData) -> None:
    snap = synth.snapshot
    users, txns = user_split(snap), txn_split(snap)
    test_users = set(users.test.tolist())
    training_users = set(users.train.tolist()) | set(users.val.tolist())
    cases = _fraud_accounts(snap) & training_users
    assert len(cases) >= 20
    for f in LABEL_FRACTIONS:
        r = reveal_labels(snap, f, seed=SEED)
        assert set(r.cases.tolist()) == cases
        assert not set(r.hidden.tolist()) & test_users, "a test-split label was hidden"
        assert set(r.revealed.tolist()) | set(r.hidden.tolist()) == cases
        # The run sees exactly the revealed cases as fraud, and no label of the test part.
        assert _fraud_accounts(r.snapshot) == set(r.revealed.tolist())
        assert not set(r.snapshot.user_labels.index.tolist()) & test_users
        assert not set(r.snapshot.txn_labels.index.tolist()) & set(txns.test.tolist())
        # Legit verdicts of the training part stay.
        legit = snap.user_labels.index[~snap.user_labels.is_fraud]
        kept_legit = r.snapshot.user_labels.index[~r.snapshot.user_labels.is_fraud]
        assert set(kept_legit.tolist()) == set(legit.tolist()) & training_users
    assert reveal_labels(snap, 0.0, seed=SEED).revealed.size == 0
    assert reveal_labels(snap, 0.01, seed=SEED).revealed.size == 1  # at least one above 0 %
    assert reveal_labels(snap, 1.0, seed=SEED).hidden.size == 0


def test_revealed_labels_are_a_seeded_nested_draw(synth: SynthData) -> None:
    snap = synth.snapshot
    a = [reveal_labels(snap, f, seed=SEED).revealed for f in (0.1, 0.5, 1.0)]
    assert set(a[0].tolist()) <= set(a[1].tolist()) <= set(a[2].tolist())
    assert np.array_equal(a[1], reveal_labels(snap, 0.5, seed=SEED).revealed)
    assert not np.array_equal(a[1], reveal_labels(snap, 0.5, seed=SEED + 1).revealed)
    n = reveal_labels(snap, 1.0, seed=SEED).cases.size
    assert a[1].size == round(0.5 * n)


def test_the_input_snapshot_is_left_alone(synth: SynthData) -> None:
    before = targets(synth.snapshot)
    reveal_labels(synth.snapshot, 0.1, seed=SEED)
    after = targets(synth.snapshot)
    assert np.array_equal(before.user, after.user) and np.array_equal(before.txn, after.txn)


def test_fraction_out_of_range_names_the_field(synth: SynthData) -> None:
    from graph.errors import ValidationError

    with pytest.raises(ValidationError) as err:
        reveal_labels(synth.snapshot, 1.5)
    assert err.value.field == "fraction"


# -- what the shipped training makes of them ----------------------------------------------------

#: Fewer epochs than the default: the table's claims hold with them, at a fraction of the time.
CONFIG = TrainConfig(device="cpu", epochs=15, seed=SEED)


@pytest.fixture(scope="module")
def budget(synth: SynthData) -> LabelBudget:
    return label_budget(synth.snapshot, CONFIG)


def test_without_labels_it_falls_back_and_still_beats_random(budget: LabelBudget) -> None:
    none = budget.rows[0]
    assert none.fraction == 0.0 and none.mode == "unsupervised" and none.fraud_labels == 0
    assert none.trees_accounts is None  # nothing to fit the trees on
    n, k = budget.test_accounts
    assert none.accounts is not None and none.accounts.auprc > 3 * (k / n)
    n, k = budget.test_transactions
    assert none.transactions is not None and none.transactions.auprc > 3 * (k / n)


def test_too_few_labels_fall_back_and_all_of_them_train(budget: LabelBudget) -> None:
    modes = {r.fraction: r for r in budget.rows}
    assert modes[0.01].mode == "unsupervised" and modes[0.01].fraud_labels == 1
    assert modes[0.1].mode == "unsupervised" and modes[0.1].fraud_labels < CONFIG.min_fraud_labels
    full = modes[1.0]
    assert full.mode == "supervised" and full.fraud_labels == budget.cases >= CONFIG.min_fraud_labels
    assert full.trees_accounts is not None and full.epochs_run > 0


def test_more_labels_are_not_worse(budget: LabelBudget) -> None:
    few, full = budget.rows[1], budget.rows[-1]
    assert few.fraction == 0.01 and full.fraction == 1.0
    assert few.accounts is not None and full.accounts is not None
    assert full.accounts.auprc >= few.accounts.auprc
    assert few.transactions is not None and full.transactions is not None
    assert full.transactions.auprc >= few.transactions.auprc


def test_every_row_is_measured_on_the_same_test_split_with_all_its_labels(synth: SynthData, budget: LabelBudget) -> None:
    snap = synth.snapshot
    y = targets(snap)
    users, txns = user_split(snap), txn_split(snap)
    assert budget.test_accounts == (users.test.size, int(y.user[users.test].sum()))
    assert budget.test_transactions == (txns.test.size, int(y.txn[txns.test].sum()))
    for r in budget.rows:
        assert r.accounts is not None and (r.accounts.n, r.accounts.n_fraud) == budget.test_accounts
        assert r.transactions is not None and (r.transactions.n, r.transactions.n_fraud) == budget.test_transactions


def test_same_snapshot_and_seed_give_the_same_table(synth: SynthData, budget: LabelBudget) -> None:
    again = label_budget(synth.snapshot, CONFIG, fractions=(0.0, 0.1))
    first = budget.numbers()
    assert again.numbers()["rows"] == [r for r in first["rows"] if r["fraction"] in (0.0, 0.1)]  # type: ignore[union-attr]


def test_a_row_taken_from_the_main_run_equals_the_row_fitted_again(synth: SynthData, budget: LabelBudget) -> None:
    """Reuse is only a shortcut: where the revealed labels give the main run's training targets
    (here by construction: the main run is made on the 100 % reveal), the row is the same."""
    revealed = reveal_labels(synth.snapshot, 1.0, seed=SEED).snapshot
    main = run_baselines(revealed, CONFIG, names=(GRAPHSAGE, TREES_AGGREGATED))
    again = label_budget(synth.snapshot, CONFIG, fractions=(1.0,), main=main)
    assert again.rows[0].from_main == (GRAPHSAGE, TREES_AGGREGATED)
    row = again.numbers()["rows"][0]  # type: ignore[index]
    assert row.pop("from_main") == [GRAPHSAGE, TREES_AGGREGATED]
    fitted = budget.numbers()["rows"][-1]  # type: ignore[index]
    assert fitted.pop("from_main") == []
    assert row == fitted


def test_the_evaluation_report_carries_the_table(synth: SynthData, tmp_path: Path) -> None:
    report = evaluate(
        synth.snapshot, CONFIG, tmp_path, baselines=("rule_shared_device",), label_fractions=(0.0, 0.01)
    )
    text = report.report_path.read_text()
    assert "## Few labels: 0 % and 1 % of the fraud labels revealed" in text
    assert "| 0 % | unsupervised | 0 (0) |" in text and "| 1 % | unsupervised | 1 (" in text
    assert f"`min_fraud_labels` = {CONFIG.min_fraud_labels}" in text
    saved = json.loads((tmp_path / JSON_FILE).read_text())["label_budget"]
    assert [r["mode"] for r in saved["rows"]] == ["unsupervised", "unsupervised"]
    assert saved["seed"] == SEED and saved["min_fraud_labels"] == CONFIG.min_fraud_labels
