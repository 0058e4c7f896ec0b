"""Quality with few labels: 0 %, 1 %, 10 % and 100 % of the fraud labels revealed.

Real teams start with almost no labels. ``label_budget`` replays that on a snapshot whose labels
are all known, on the time-ordered split of ``gnn.training.train``: ``reveal_labels`` keeps a
seeded, nested share of the training part's fraud cases, the shipped training runs on them (so
with few labels it falls back to the unsupervised score), and every run is measured on the same
test split against every label of the test part. ``trees_aggregated`` is fitted on the same
revealed labels, to compare. The same snapshot, config and fractions give the same numbers on
the CPU.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gnn.artefact.model_artefact import GRAPHSAGE, SUPERVISED, jsonable
from gnn.core.features import build_features, moves_money
from gnn.core.known_fraud import known_labels
from gnn.core.metrics import SplitMetrics, split_metrics_at
from gnn.core.tree_features import TREES_AGGREGATED, TreeInputs
from gnn.core.trees import TreeConfig
from gnn.evaluation.baselines import run_baselines
from gnn.serving.scoring import score_snapshot
from gnn.training.candidates import CandidateRun
from gnn.training.split import Split, Targets, targets, targets_and_splits, txn_split, user_split
from gnn.training.train import TrainConfig, train
from graph.errors import ValidationError
from graph.types import LabelTable, NodeType, Snapshot

__all__ = [
    "LABEL_FRACTIONS",
    "LabelReveal",
    "BudgetRow",
    "LabelBudget",
    "reveal_labels",
    "label_budget",
]

#: The fractions compared: none, 1 %, 10 % and all of the fraud labels.
LABEL_FRACTIONS: tuple[float, ...] = (0.0, 0.01, 0.1, 1.0)


@dataclass(frozen=True, slots=True)
class LabelReveal:
    """The labels one budget run may learn from.

    ``snapshot`` is the input with only the revealed training-part labels (``reveal_labels``);
    ``cases`` are the training-part accounts with a fraud verdict (int64 user positions,
    ascending), ``revealed`` and ``hidden`` split them.
    """

    fraction: float
    snapshot: Snapshot
    cases: np.ndarray
    revealed: np.ndarray
    hidden: np.ndarray


@dataclass(frozen=True, slots=True)
class BudgetRow:
    """One fraction: the mode the shipped training ended in, the fraud labels it had
    (``fraud_labels`` in train + validation, ``fraud_labels_train`` in the training split) and
    test-split quality of it and of ``trees_aggregated`` (``None``: not trainable or no fraud in
    the test split). ``from_main``: the models (``graphsage``, ``trees_aggregated``) taken from
    the main table's run because they would be trained on the same targets (``label_budget``).
    ``seconds`` (not reproducible) is the run's training and scoring time."""

    fraction: float
    mode: str
    fraud_labels: int
    fraud_labels_train: int
    epochs_run: int
    accounts: SplitMetrics | None
    transactions: SplitMetrics | None
    trees_accounts: SplitMetrics | None
    trees_transactions: SplitMetrics | None
    seconds: float
    from_main: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LabelBudget:
    """The label-fraction table. ``cases``: fraud cases in the training part (100 %);
    ``test_accounts`` / ``test_transactions``: test split sizes and frauds (all test labels);
    ``epochs`` / ``min_fraud_labels``: the training config of the runs."""

    seed: int
    min_fraud_labels: int
    epochs: int
    cases: int
    test_accounts: tuple[int, int]
    test_transactions: tuple[int, int]
    rows: tuple[BudgetRow, ...]

    def numbers(self) -> dict[str, object]:
        """Everything but timings, JSON-ready (floats that are not finite become ``None``)."""
        d = dataclasses.asdict(self)
        for row in d["rows"]:
            row.pop("seconds")
        return jsonable(d)  # type: ignore[return-value]


def _check_fraction(fraction: float) -> None:
    if isinstance(fraction, bool) or not 0.0 <= float(fraction) <= 1.0:
        raise ValidationError("fraction", fraction, "must be in [0, 1]")


def _part_mask(split: Split, n: int) -> np.ndarray:
    """True for the training part (train + validation rows) of a split over ``n`` rows."""
    mask = np.zeros(n, dtype=bool)
    mask[split.train] = True
    mask[split.val] = True
    return mask


def _keep(table: LabelTable, keep: np.ndarray) -> LabelTable:
    return LabelTable(index=table.index[keep], is_fraud=table.is_fraud[keep], ts=table.ts[keep], source=table.source[keep])


def _cases(snapshot: Snapshot, users: Split, txns: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training-part fraud cases, and the masks of training-part accounts and events."""
    n_user = snapshot.num_nodes(NodeType.USER)
    user_part = _part_mask(users, n_user)
    txn_part = _part_mask(txns, len(snapshot.transactions))
    ul, tl = snapshot.user_labels, snapshot.txn_labels
    fraud = np.zeros(n_user, dtype=bool)
    fraud[ul.index[ul.is_fraud.astype(bool)].astype(np.int64)] = True
    txn_fraud = tl.index[tl.is_fraud.astype(bool)].astype(np.int64)
    fraud[snapshot.transactions.user[txn_fraud].astype(np.int64)] = True
    return np.flatnonzero(fraud & user_part).astype(np.int64), user_part, txn_part


def _draw_order(n: int, seed: int) -> np.ndarray:
    """One seeded permutation per snapshot, so that smaller fractions reveal subsets of larger ones."""
    return np.random.default_rng(seed).permutation(n)


def _n_revealed(fraction: float, n_cases: int) -> int:
    if fraction <= 0.0 or n_cases == 0:
        return 0
    return min(n_cases, max(1, int(round(fraction * n_cases))))


def reveal_labels(
    snapshot: Snapshot, fraction: float, *, seed: int = 7, val_fraction: float = 0.2, test_fraction: float = 0.2
) -> LabelReveal:
    """The snapshot a team with ``fraction`` of the training part's fraud cases would train on:
    test-part labels and hidden cases' fraud verdicts removed.

    The *training part* is the accounts of the train and validation splits (``user_split``) and
    the events of the train and validation splits (``txn_split``); the *test part* is the rest,
    later in time. A *fraud case* is a training-part account with a fraud verdict, its own or
    one on one of its transactions. A seeded draw keeps ``round(fraction * cases)`` of them (at
    least one when ``fraction > 0``); the draws are nested (every case revealed at 1 % is
    revealed at 10 %). A hidden case loses all its fraud verdicts and becomes an unlabelled
    account; legit verdicts of the training part are kept. The test part's labels are the
    future at training time: ``train`` would never learn from them, but it counts every fraud
    label against ``min_fraud_labels``, so leaving them in would let labels it cannot learn
    from decide the mode.

    Raises:
        ValidationError: ``fraction`` outside [0, 1].
    """
    _check_fraction(fraction)
    users = user_split(snapshot, val_fraction, test_fraction)
    txns = txn_split(snapshot, val_fraction, test_fraction)
    cases, user_part, txn_part = _cases(snapshot, users, txns)
    order = _draw_order(cases.size, seed)
    revealed = np.sort(cases[order[: _n_revealed(fraction, cases.size)]])
    hidden = np.setdiff1d(cases, revealed)
    is_hidden = np.zeros(snapshot.num_nodes(NodeType.USER), dtype=bool)
    is_hidden[hidden] = True

    ul, tl = snapshot.user_labels, snapshot.txn_labels
    u_idx = ul.index.astype(np.int64)
    keep_u = user_part[u_idx] & ~(ul.is_fraud.astype(bool) & is_hidden[u_idx])
    t_idx = tl.index.astype(np.int64)
    t_user = snapshot.transactions.user[t_idx].astype(np.int64)
    keep_t = txn_part[t_idx] & user_part[t_user] & ~(tl.is_fraud.astype(bool) & is_hidden[t_user])
    reduced = dataclasses.replace(snapshot, user_labels=_keep(ul, keep_u), txn_labels=_keep(tl, keep_t))
    return LabelReveal(fraction=float(fraction), snapshot=reduced, cases=cases, revealed=revealed, hidden=hidden)


def _same(a: np.ndarray, b: np.ndarray, idx: np.ndarray) -> bool:
    return bool(np.array_equal(a[idx], b[idx]))


def _same_known(main: CandidateRun, snapshot: Snapshot, label_delay: float | None) -> bool:
    """Whether ``snapshot``'s verdicts give the known-fraud inputs ``main`` was made with."""
    if main.inputs is None or main.inputs.known is None:
        return False
    a, b = main.inputs.known.labels, known_labels(snapshot, label_delay)
    return all(
        np.array_equal(getattr(a, name), getattr(b, name)) for name in ("txn_rows", "txn_known_at", "user_known_at")
    ) and a.label_delay == b.label_delay


def _same_gnn_training(seen: Targets, main: Targets, users: Split, txns: Split) -> bool:
    """``gnn.training.train.train`` reads targets on the train and validation rows only (loss, class
    weights, early stopping, calibration) besides the fraud count that picks the mode, which the
    caller checks: equal targets there train the same model."""
    return (
        _same(seen.user, main.user, users.train)
        and _same(seen.user, main.user, users.val)
        and _same(seen.txn, main.txn, txns.train)
        and _same(seen.txn, main.txn, txns.val)
    )


def label_budget(
    snapshot: Snapshot,
    config: TrainConfig = TrainConfig(),
    fractions: Sequence[float] = LABEL_FRACTIONS,
    *,
    trees: TreeConfig = TreeConfig(),
    main: CandidateRun | None = None,
) -> LabelBudget:
    """Train and measure once per fraction of revealed fraud labels (``reveal_labels``).

    Each run is the shipped ``gnn.training.train.train``, scored with ``score_snapshot`` and
    measured on the *same* test split against *every* revealed label of the test part
    (``gnn.training.split.targets`` of the full snapshot); ``trees_aggregated`` is fitted on the
    same revealed labels where it can be (at least one positive in its training rows).
    ``config`` is the training config of every run (its seed also seeds the draw); pass fewer
    ``epochs`` to make the table cheaper. Runs are independent: each fraction trains from scratch,
    except that with ``main`` (``run_baselines`` on this ``snapshot`` with this ``config`` and
    ``trees``) features and tree inputs are built once (labels never enter them), and a model
    whose training targets equal the main run's (the rows it learns from and validates on) is
    taken from it: the same inputs, seed and config give the same model
    (``BudgetRow.from_main`` lists it).

    Raises:
        ValidationError: a fraction outside [0, 1].
        ModelError: the snapshot has no users.
    """
    for f in fractions:
        _check_fraction(f)
    full, users, txns = targets_and_splits(snapshot, config)
    t = snapshot.transactions
    money = moves_money(t.event)
    txn_fit = txns.train[money[txns.train]]
    features = main.features if main is not None and main.features is not None else build_features(snapshot)
    inputs: TreeInputs | None = None
    if main is not None and main.inputs is not None and main.inputs.account_agg is not None:
        inputs = main.inputs
    main_gnn = None
    if main is not None and main.artefact is not None and main.artefact.mode == SUPERVISED and any(
        s.name == GRAPHSAGE for s in main.scores
    ):
        main_gnn = main.get(GRAPHSAGE)
    main_trees = main.get(TREES_AGGREGATED) if main is not None and any(s.name == TREES_AGGREGATED for s in main.scores) else None
    rows: list[BudgetRow] = []
    n_cases = 0
    for f in fractions:
        started = time.perf_counter()
        reveal = reveal_labels(
            snapshot, f, seed=config.seed, val_fraction=config.val_fraction, test_fraction=config.test_fraction
        )
        n_cases = int(reveal.cases.size)
        seen = targets(reveal.snapshot)
        from_main: list[str] = []
        supervised = int(seen.user.sum()) >= config.min_fraud_labels and bool(seen.user[users.train].any())
        # The known-fraud inputs read every revealed label, the test part's included: a main-run
        # model is reused only when the revealed labels are the ones the main run was made with.
        same_labels = main is not None and _same_known(main, reveal.snapshot, config.label_delay)
        if (
            main_gnn is not None
            and main is not None
            and supervised
            and (same_labels or not config.known_fraud_inputs)
            and _same_gnn_training(seen, main.targets, users, txns)
        ):
            assert main.artefact is not None
            mode, epochs_run = main.artefact.mode, main.artefact.metrics.epochs_run
            account, txn = main_gnn.account, main_gnn.txn
            from_main.append(GRAPHSAGE)
        else:
            artefact = train(reveal.snapshot, config, features=features)
            # Scored with the revealed labels only: hidden verdicts must not reach the
            # known-fraud inputs (the graph is the same, so the rows line up).
            scored = score_snapshot(artefact, reveal.snapshot, device=config.device)
            mode, epochs_run = artefact.mode, artefact.metrics.epochs_run
            account, txn = scored.account_scores.astype(np.float64), scored.txn_scores.astype(np.float64)
        trees_acc = trees_txn = None
        if seen.user[users.train].any():
            if (
                main_trees is not None
                and main is not None
                and same_labels
                and _same(seen.user, main.targets.user, users.train)
                and _same(seen.txn, main.targets.txn, txn_fit)
            ):
                tree = main_trees
                from_main.append(TREES_AGGREGATED)
            else:
                run = run_baselines(
                    reveal.snapshot, config, trees=trees, names=(TREES_AGGREGATED,), features=features, inputs=inputs
                )
                inputs = run.inputs
                tree = run.get(TREES_AGGREGATED)
            trees_acc = split_metrics_at(tree.account, full.user, users.test)
            if seen.txn[txn_fit].any():
                trees_txn = split_metrics_at(tree.txn, full.txn, txns.test)
        rows.append(
            BudgetRow(
                fraction=float(f),
                mode=mode,
                fraud_labels=int(seen.user.sum()),
                fraud_labels_train=int(seen.user[users.train].sum()),
                epochs_run=epochs_run,
                accounts=split_metrics_at(account, full.user, users.test),
                transactions=split_metrics_at(txn, full.txn, txns.test),
                trees_accounts=trees_acc,
                trees_transactions=trees_txn,
                seconds=time.perf_counter() - started,
                from_main=tuple(from_main),
            )
        )
    return LabelBudget(
        seed=config.seed,
        min_fraud_labels=config.min_fraud_labels,
        epochs=config.epochs,
        cases=n_cases,
        test_accounts=(int(users.test.size), int(full.user[users.test].sum())),
        test_transactions=(int(txns.test.size), int(full.txn[txns.test].sum())),
        rows=tuple(rows),
    )
