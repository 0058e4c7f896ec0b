"""``ringwatch evaluate``: every baseline on the same time-ordered split, one report.

``evaluate`` runs ``gnn.evaluation.baselines.run_baselines`` and measures accounts and
transactions on the validation and the held-out test split: ranking metrics against the
revealed labels, precision and recall at the calibrated tier thresholds and, with a synthetic
dataset's planted truth, the same against the truth plus the graph-only slice and ring
recovery. It adds the few-labels table (``gnn.evaluation.label_budget``), picks the winner by
the rule ``ringwatch train`` ships with (``_selection``) and sets it against the strongest
simple baseline (``_comparisons``). ``gnn.evaluation.report`` renders ``report.md`` and the
plots; ``evaluation.json`` holds the same numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gnn.artefact.lineage import Selection
from gnn.artefact.model_artefact import GRAPHSAGE, jsonable
from gnn.core.features import build_features
from gnn.core.metrics import Comparison, SplitMetrics, auroc, paired_auprc_difference, split_metrics, split_metrics_at
from gnn.core.thresholds import Thresholds
from gnn.core.tree_features import TREES_KNOWN_FRAUD
from gnn.core.trees import TreeConfig
from gnn.evaluation.baselines import BASELINE_TITLES, BASELINES, run_baselines
from gnn.evaluation.label_budget import LABEL_FRACTIONS, LabelBudget, label_budget
from gnn.evaluation.leakage import LeakageAudit, audit_leakage
from gnn.evaluation.report import render_markdown, write_plots
from gnn.training.candidates import CandidateRun, CandidateScores
from gnn.training.selection import CANDIDATES, select, select_by_cross_validation
from gnn.training.train import TrainConfig, calibrate_split
from graph.errors import ModelError, ValidationError
from graph.rings import RingConfig, detect_rings
from graph.types import EVENT_KINDS, EventKind, NodeType, Snapshot
from synthetic.ring_recovery import RingRecovery, ring_recovery
from synthetic.truth import PlantedTruth

__all__ = [
    "TierMetrics",
    "EntityEvaluation",
    "BaselineEvaluation",
    "EvaluationReport",
    "ScenarioCatch",
    "evaluate",
    "REPORT_FILE",
    "PLOT_FILES",
]

REPORT_FILE = "report.md"
JSON_FILE = "evaluation.json"
PLOT_FILES: tuple[str, ...] = ("pr_curves.png", "score_distributions.png", "calibration.png", "tier_confusion.png")


@dataclass(frozen=True, slots=True)
class ScenarioCatch:
    """How one baseline ranks the held-out (validation + test) payments of one planted fraud
    scenario: AUROC against the truly legitimate held-out payments, and the share flagged at the
    medium tier or above (``caught``)."""

    scenario: str
    n_fraud: int
    auroc: float
    caught: float


@dataclass(frozen=True, slots=True)
class TierMetrics:
    """Flagging everything at or above one tier threshold, on the test split."""

    tier: str
    threshold: float
    flagged: int
    precision: float  # nan when nothing is flagged
    recall: float  # nan without frauds


@dataclass(frozen=True, slots=True)
class EntityEvaluation:
    """One baseline on one entity kind (``accounts`` or ``transactions``)."""

    val: SplitMetrics | None
    test: SplitMetrics | None
    thresholds: Thresholds
    tiers: tuple[TierMetrics, ...]
    test_vs_truth: SplitMetrics | None = None


@dataclass(frozen=True, slots=True)
class BaselineEvaluation:
    """Everything measured for one baseline. ``graph_only``: AUPRC etc. on the graph-only slice
    (needs truth); ``rings``: detected rings against planted ones (needs truth)."""

    name: str
    title: str
    accounts: EntityEvaluation
    transactions: EntityEvaluation
    graph_only: SplitMetrics | None
    rings: RingRecovery | None
    seconds: float
    scenarios: tuple[ScenarioCatch, ...] = ()


@dataclass(frozen=True)
class EvaluationReport:
    """The result of ``evaluate``. ``numbers()`` is everything that must be reproducible."""

    seed: int
    n_users: int
    n_transactions: int
    split_users: tuple[int, int, int]  # train, val, test sizes
    split_txns: tuple[int, int, int]
    baselines: tuple[BaselineEvaluation, ...]
    selection: Selection  # the winner by training's rule (``gnn.training.selection``) and what it compared
    graph_only_size: tuple[int, int] | None  # (graph-only frauds, legitimate) in the test split
    leakage: LeakageAudit
    out_dir: Path
    report_path: Path
    plots: tuple[Path, ...]
    seconds: float
    label_budget: LabelBudget | None = None  # None: not asked for (``label_fractions=()``)
    comparisons: tuple[Comparison, ...] = ()  # the winner against the strongest simple baseline, test split
    truth_comparisons: tuple[Comparison, ...] = ()  # the same pairs scored against the planted truth
    validation_comparisons: tuple[Comparison, ...] = ()  # the same pairs on the validation split, labels

    @property
    def winner(self) -> str:
        """The baseline that wins by training's selection rule: what ``ringwatch train`` ships."""
        return self.selection.winner

    def get(self, name: str) -> BaselineEvaluation:
        """One baseline's evaluation. Raises ``ModelError`` if it was not run."""
        for b in self.baselines:
            if b.name == name:
                return b
        raise ModelError(f"baseline {name!r} not in this report")

    def numbers(self) -> dict[str, object]:
        """Every metric, threshold and size (no timings, no paths), JSON-ready."""
        d = {
            "seed": self.seed,
            "n_users": self.n_users,
            "n_transactions": self.n_transactions,
            "split_users": list(self.split_users),
            "split_txns": list(self.split_txns),
            "selection": self.selection.to_dict(),
            "graph_only_size": None if self.graph_only_size is None else list(self.graph_only_size),
            "leakage": dataclasses.asdict(self.leakage),
            "label_budget": None if self.label_budget is None else self.label_budget.numbers(),
            "comparisons": [dataclasses.asdict(c) | {"verdict": c.verdict} for c in self.comparisons],
            "truth_comparisons": [dataclasses.asdict(c) | {"verdict": c.verdict} for c in self.truth_comparisons],
            "validation_comparisons": [
                dataclasses.asdict(c) | {"verdict": c.verdict} for c in self.validation_comparisons
            ],
            "baselines": [],
        }
        for b in self.baselines:
            bd = dataclasses.asdict(b)
            bd.pop("seconds")
            d["baselines"].append(bd)  # type: ignore[union-attr]
        return jsonable(d)  # type: ignore[return-value]


# -- measuring ----------------------------------------------------------------------------------


def _tiers(scores: np.ndarray, y: np.ndarray, th: Thresholds) -> tuple[TierMetrics, ...]:
    out = []
    n_pos = int(y.sum())
    for tier, thr in (("medium", th.medium), ("high", th.high)):
        flag = scores >= thr
        tp = int((flag & y).sum())
        n = int(flag.sum())
        out.append(
            TierMetrics(
                tier=tier,
                threshold=float(thr),
                flagged=n,
                precision=tp / n if n else math.nan,
                recall=tp / n_pos if n_pos else math.nan,
            )
        )
    return tuple(out)


def _entity(
    scores: np.ndarray, y: np.ndarray, val: np.ndarray, test: np.ndarray, config: TrainConfig, truth: np.ndarray | None
) -> EntityEvaluation:
    th = calibrate_split(scores, y, val, config)
    return EntityEvaluation(
        val=split_metrics_at(scores, y, val),
        test=split_metrics_at(scores, y, test),
        thresholds=th,
        tiers=_tiers(scores[test], y[test].astype(bool), th),
        test_vs_truth=None if truth is None else split_metrics_at(scores, truth, test),
    )


def _selection(run: CandidateRun, snapshot: Snapshot, config: TrainConfig, trees: TreeConfig) -> Selection:
    """Training's selection (``gnn.training.selection.select``) among the candidates that were run, with
    training's cross-validation fallback when validation cannot tell them apart; with none of
    them, the same rule among every baseline run (report order breaks ties). The rule: the
    highest validation AUPRC of accounts *plus* transactions, one model for both, so the winner
    is the model ``ringwatch train`` would ship on this snapshot with this config."""
    run_names = [s.name for s in run.scores]
    candidates = [c for c in CANDIDATES if c in run_names]
    if candidates:
        sel = select(run, candidates)
        if sel.warning:
            sel = select_by_cross_validation(snapshot, run, config, sel, trees=trees, candidates=candidates)
        return sel
    sel = select(run, run_names)
    return dataclasses.replace(sel, rule=sel.rule.replace(", ".join(CANDIDATES), ", ".join(run_names)))


def _comparisons(
    run: CandidateRun, winner: str, truth: PlantedTruth | None = None, *, validation: bool = False
) -> tuple[Comparison, ...]:
    """The winner (GraphSAGE when the strongest simple baseline wins) against that baseline on
    the test split (``validation``: the validation split, where selection decided), accounts and
    transactions, measured against the labels, or against the planted ``truth`` when given; none
    when either model was not run. The AUPRC difference comes with a paired bootstrap interval
    (``paired_auprc_difference``), so "beats the baseline" is claimed only when the whole interval
    is above 0."""
    scores = {s.name: s for s in run.scores}
    model = GRAPHSAGE if winner == TREES_KNOWN_FRAUD else winner
    if model not in scores or TREES_KNOWN_FRAUD not in scores:
        return ()
    m, b = scores[model], scores[TREES_KNOWN_FRAUD]
    user_y, txn_y = (run.targets.user, run.targets.txn) if truth is None else (truth.user_is_fraud, truth.txn_is_fraud)
    out = []
    for entity, a_scores, b_scores, target, idx in (
        ("accounts", m.account, b.account, user_y, run.users.val if validation else run.users.test),
        ("transactions", m.txn, b.txn, txn_y, run.txns.val if validation else run.txns.test),
    ):
        t = target[idx].astype(bool)
        if not t.any():
            continue
        diff, iv = paired_auprc_difference(a_scores[idx], b_scores[idx], t)
        out.append(Comparison(entity, model, TREES_KNOWN_FRAUD, diff, iv, int(idx.size), int(t.sum())))
    return tuple(out)


def evaluate(
    snapshot: Snapshot,
    config: TrainConfig = TrainConfig(),
    out_dir: Path = Path("evaluation"),
    truth: PlantedTruth | None = None,
    *,
    trees: TreeConfig = TreeConfig(),
    ring_config: RingConfig = RingConfig(),
    baselines: Sequence[str] = BASELINES,
    label_fractions: Sequence[float] = LABEL_FRACTIONS,
    label_budget_epochs: int | None = None,
) -> EvaluationReport:
    """Run every baseline on ``snapshot`` and write ``out_dir/report.md``, ``evaluation.json``
    and the PNG plots (``PLOT_FILES``). ``config`` sets the split, the seed and GraphSAGE's
    training; ``truth`` (synthetic data only) adds the truth, graph-only and ring sections.
    ``baselines`` picks a subset (default all; the winner is chosen among those run).
    ``label_fractions``: the few-labels table's fractions (``()`` leaves the table out); its runs
    train with ``config``, capped at ``label_budget_epochs`` epochs when given.

    Measured per baseline: AUPRC, AUROC and Recall@K (K = frauds in the split) against the
    revealed labels (``gnn.training.split.targets``: positive-unlabelled, so lower bounds);
    precision and recall at each tier threshold, calibrated on validation
    (``gnn.training.train.calibrate_split``); with ``truth``, the ranking metrics against the
    truth, the graph-only slice (late ring members whose own behaviour is ordinary, against
    truly legitimate test accounts) and ring precision / recall / purity
    (``synthetic.ring_recovery``). The features and tree inputs are built once and shared by
    every baseline and few-labels run; GraphSAGE is trained once and the hybrid reads its
    embeddings. The same snapshot, config and truth give the same numbers (timings aside) on
    the CPU.

    Raises:
        ModelError: the snapshot has no users; ``out_dir`` is not writable.
        ValidationError: ``truth`` is not aligned with ``snapshot``.
    """
    started = time.perf_counter()
    n_user = snapshot.num_nodes(NodeType.USER)
    n_txn = len(snapshot.transactions)
    if truth is not None and (truth.user_is_fraud.shape[0] != n_user or truth.txn_is_fraud.shape[0] != n_txn):
        raise ValidationError("truth", "shape", "truth arrays must align with the snapshot (PlantedTruth.from_frames)")
    features = build_features(snapshot)  # once: every baseline and few-labels run shares it
    run = run_baselines(snapshot, config, trees=trees, names=baselines, features=features)
    y = run.targets
    users, txns = run.users, run.txns

    slice_idx: np.ndarray | None = None
    if truth is not None:
        test = users.test
        keep = truth.user_graph_only[test] | ~truth.user_is_fraud[test]
        slice_idx = test[keep]
        if not truth.user_graph_only[slice_idx].any():
            slice_idx = None

    held_out = np.concatenate([txns.val, txns.test])
    evals: list[BaselineEvaluation] = []
    for s in run.scores:
        acc = _entity(s.account, y.user, users.val, users.test, config, None if truth is None else truth.user_is_fraud)
        txe = _entity(s.txn, y.txn, txns.val, txns.test, config, None if truth is None else truth.txn_is_fraud)
        graph_only = None
        rings = None
        if truth is not None:
            if slice_idx is not None:
                graph_only = split_metrics(s.account[slice_idx], truth.user_graph_only[slice_idx])
            rings = _rings(snapshot, s, acc.thresholds, truth, ring_config)
        scenarios = () if truth is None else _scenarios(snapshot, s.txn, txe.thresholds, truth, held_out)
        evals.append(BaselineEvaluation(s.name, BASELINE_TITLES[s.name], acc, txe, graph_only, rings, s.seconds, scenarios))

    t = snapshot.transactions
    cut_ts = float(t.ts[txns.val[0]]) if txns.val.size else float(np.median(t.ts)) if n_txn else 0.0
    leakage = audit_leakage(snapshot, cut_ts)
    budget = None
    if label_fractions:
        budget_config = config if label_budget_epochs is None else dataclasses.replace(config, epochs=label_budget_epochs)
        # The main run's models are only the same models under the same training config.
        budget = label_budget(
            snapshot, budget_config, label_fractions, trees=trees, main=run if budget_config == config else None
        )

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"cannot create the evaluation folder {out_dir}: {e}") from e
    selection = _selection(run, snapshot, config, trees)
    report = EvaluationReport(
        seed=config.seed,
        n_users=n_user,
        n_transactions=n_txn,
        split_users=(users.train.size, users.val.size, users.test.size),
        split_txns=(txns.train.size, txns.val.size, txns.test.size),
        baselines=tuple(evals),
        selection=selection,
        graph_only_size=None
        if slice_idx is None or truth is None
        else (int(truth.user_graph_only[slice_idx].sum()), int((~truth.user_graph_only[slice_idx]).sum())),
        leakage=leakage,
        out_dir=out_dir,
        report_path=out_dir / REPORT_FILE,
        plots=tuple(out_dir / p for p in PLOT_FILES),
        seconds=0.0,
        label_budget=budget,
        comparisons=_comparisons(run, selection.winner),
        truth_comparisons=() if truth is None else _comparisons(run, selection.winner, truth),
        validation_comparisons=_comparisons(run, selection.winner, validation=True),
    )
    write_plots(report, run)
    report = dataclasses.replace(report, seconds=time.perf_counter() - started)
    (out_dir / JSON_FILE).write_text(json.dumps(report.numbers(), indent=1, sort_keys=True) + "\n")
    report.report_path.write_text(render_markdown(report, run, main_epochs=config.epochs))
    return report


def _scenarios(
    snapshot: Snapshot, scores: np.ndarray, th: Thresholds, truth: PlantedTruth, held_out: np.ndarray
) -> tuple[ScenarioCatch, ...]:
    """Per planted scenario with held-out payments: AUROC against the truly legitimate held-out
    payments and the share at or above the medium threshold."""
    pay = snapshot.transactions.event[held_out] == EVENT_KINDS.index(EventKind.PAYMENT.value)
    idx = held_out[pay]
    legit = idx[~truth.txn_is_fraud[idx]]
    out = []
    for name in sorted(set(truth.txn_scenario[idx].tolist()) - {""}):
        fraud = idx[truth.txn_scenario[idx] == name]
        both = np.concatenate([fraud, legit])
        y = np.zeros(both.size, dtype=bool)
        y[: fraud.size] = True
        out.append(
            ScenarioCatch(
                scenario=name,
                n_fraud=int(fraud.size),
                auroc=auroc(scores[both], y) if legit.size else math.nan,
                caught=float((scores[fraud] >= th.medium).mean()),
            )
        )
    return tuple(out)


def _rings(
    snapshot: Snapshot, s: CandidateScores, th: Thresholds, truth: PlantedTruth, ring_config: RingConfig
) -> RingRecovery:
    rings = detect_rings(snapshot, s.account, medium=th.medium, high=th.high, config=ring_config)
    users = snapshot.nodes[NodeType.USER]
    in_ring = truth.user_ring != ""
    planted_of = dict(zip(users[in_ring].tolist(), truth.user_ring[in_ring].tolist(), strict=True))
    kind_of = dict(zip(truth.user_ring[in_ring].tolist(), truth.user_ring_kind[in_ring].tolist(), strict=True))
    return ring_recovery(rings, planted_of, kind_of, set(users[truth.user_is_fraud].tolist()))
