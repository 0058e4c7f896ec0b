"""``ringwatch evaluate``: every baseline on the same time-ordered split, one report.

``evaluate`` runs ``gnn.evaluation.baselines.run_baselines`` and measures, for accounts and transactions,
on the validation and the held-out test split (later in time than training):

* AUPRC, AUROC and Recall@K (K = frauds in the split), against the revealed labels
  (``gnn.training.split.targets``: positive-unlabelled, so these are lower bounds);
* precision and recall at each tier threshold, thresholds calibrated on validation with
  ``gnn.training.train.calibrate_split``;
* with the planted truth of a synthetic dataset (``PlantedTruth``): the same ranking metrics
  against the truth, the *graph-only slice* (late ring members whose own behaviour is ordinary,
  against truly legitimate test accounts), and ring precision / recall / purity
  (``graph.ring_recovery``) of rings detected from each baseline's scores.

``label_budget`` (``gnn.evaluation.label_budget``) adds the few-labels table: the shipped training with 0 %,
1 %, 10 % and 100 % of the training part's fraud labels revealed, on the same test split.

The winner is picked by the rule ``ringwatch train`` ships with (``gnn.training.selection.select``,
``gnn.training.selection.RULE``): among the selection candidates that were run (GraphSAGE, trees on
aggregates, hybrid), the highest validation AUPRC of accounts *plus* transactions, one model for
both; it is the model ``ringwatch train`` would ship on this snapshot with this config. (With no
candidate run, the same rule picks among the baselines that were.) ``report.md`` holds the
tables, ``evaluation.json`` the same numbers, and four PNG plots the curves. The same snapshot,
config and truth give the same numbers (timings aside), on the CPU.

``comparisons`` set the winner (GraphSAGE when the winner is the baseline itself) against the
strongest simple baseline, trees on tabular, sharing and known-fraud-neighbour features: the
test AUPRC difference with a paired bootstrap interval (``gnn.evaluation.metrics.paired_auprc_difference``),
so "beats the baseline" is claimed only when the whole interval is above 0.

Cost: the features and the trees' neighbour aggregates are built once and shared by every
baseline and by the few-labels runs; GraphSAGE is trained once for the main table and the hybrid
reads its embeddings; a few-labels row whose revealed labels give the main run's training
targets takes the main run's models (``gnn.evaluation.label_budget``).
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
import pandas as pd

from gnn.artefact.lineage import CandidateScore, Selection
from gnn.artefact.model_artefact import GRAPHSAGE, jsonable
from gnn.core.features import build_features
from gnn.core.tree_features import GRAPH_USER_FEATURES, TREES_KNOWN_FRAUD
from gnn.core.trees import TreeConfig
from gnn.evaluation.baselines import BASELINE_TITLES, BASELINES, run_baselines
from gnn.evaluation.label_budget import LABEL_FRACTIONS, LabelBudget, label_budget, render_label_budget
from gnn.evaluation.leakage import WHOLE_HISTORY, LeakageAudit, audit_leakage
from gnn.evaluation.metrics import (
    Comparison,
    SplitMetrics,
    auroc,
    paired_auprc_difference,
    split_metrics,
    split_metrics_at,
)
from gnn.training.calibrate import Thresholds, tier_codes
from gnn.training.candidates import CandidateRun, CandidateScores
from gnn.training.selection import CANDIDATES, TIE, select, select_by_cross_validation
from gnn.training.train import TrainConfig, calibrate_split
from graph.errors import ModelError, ValidationError
from graph.ring_recovery import RingRecovery, ring_recovery
from graph.rings import RingConfig, detect_rings
from graph.types import EVENT_KINDS, EventKind, NodeType, Snapshot

__all__ = [
    "PlantedTruth",
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
#: Baselines whose scores are probabilities (the rules' are squashed counts): calibration plot.
_PROBABILISTIC = ("trees_own", "trees_known_fraud", "trees_aggregated", "graphsage", "hybrid")
_GRAPH_MODELS = ("trees_aggregated", "graphsage", "hybrid")


@dataclass(frozen=True, slots=True)
class PlantedTruth:
    """Planted truth aligned with a snapshot: ``user_*`` arrays [N_user] in
    ``snapshot.nodes[USER]`` order, ``txn_is_fraud`` [T] in transaction order.
    ``user_graph_only`` marks fraud accounts whose own behaviour is ordinary (only the graph
    reveals them); ``user_ring`` / ``user_ring_kind`` are "" outside planted rings;
    ``txn_scenario`` names how each fraudulent transaction came about ("" for legitimate ones and
    when the truth file has no ``scenario`` column)."""

    user_is_fraud: np.ndarray
    user_ring: np.ndarray
    user_ring_kind: np.ndarray
    user_graph_only: np.ndarray
    txn_is_fraud: np.ndarray
    txn_scenario: np.ndarray

    @classmethod
    def from_frames(cls, snapshot: Snapshot, users: pd.DataFrame, txns: pd.DataFrame) -> PlantedTruth:
        """From ``truth_users.csv`` / ``truth_transactions.csv`` frames (``ingestion.synthetic``).
        Accounts or transactions missing from the truth count as legitimate; a truth file without
        ``graph_only`` marks nobody.

        Raises:
            ValidationError: a required column is missing.
        """
        for frame, cols in ((users, ("user_id", "is_fraud", "ring_id", "ring_kind")), (txns, ("txn_id", "is_fraud"))):
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise ValidationError("truth", missing, "truth file lacks these columns")
        keys = pd.Index(snapshot.nodes[NodeType.USER], dtype=object)
        u = users.set_index(users["user_id"].astype(str))
        u = u[~u.index.duplicated(keep="last")].reindex(keys)

        def col(name: str, default: object) -> pd.Series:
            return u[name] if name in u.columns else pd.Series(default, index=keys)

        t = txns.set_index(txns["txn_id"].astype(str))
        t = t[~t.index.duplicated(keep="last")].reindex(pd.Index(snapshot.transactions.txn_id, dtype=object))
        return cls(
            user_is_fraud=col("is_fraud", 0).fillna(0).astype(int).to_numpy() == 1,
            user_ring=col("ring_id", "").fillna("").astype(str).to_numpy(dtype=object),
            user_ring_kind=col("ring_kind", "").fillna("").astype(str).to_numpy(dtype=object),
            user_graph_only=col("graph_only", 0).fillna(0).astype(int).to_numpy() == 1,
            txn_is_fraud=t["is_fraud"].fillna(0).astype(int).to_numpy() == 1,
            txn_scenario=(t["scenario"] if "scenario" in t.columns else pd.Series("", index=t.index))
            .fillna("")
            .astype(str)
            .to_numpy(dtype=object),
        )


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
    them, the same rule among every baseline run (report order breaks ties)."""
    run_names = [s.name for s in run.scores]
    candidates = [c for c in CANDIDATES if c in run_names]
    if candidates:
        sel = select(run, candidates)
        if sel.warning:
            sel = select_by_cross_validation(snapshot, run, config, sel, trees=trees, candidates=candidates)
        return sel
    sel = select(run, run_names)
    return dataclasses.replace(sel, rule=sel.rule.replace(", ".join(CANDIDATES), ", ".join(run_names)))


def _comparisons(run: CandidateRun, winner: str) -> tuple[Comparison, ...]:
    """The winner (GraphSAGE when the strongest simple baseline wins) against that baseline on
    the test split, accounts and transactions; none when either was not run."""
    scores = {s.name: s for s in run.scores}
    model = GRAPHSAGE if winner == TREES_KNOWN_FRAUD else winner
    if model not in scores or TREES_KNOWN_FRAUD not in scores:
        return ()
    m, b, y = scores[model], scores[TREES_KNOWN_FRAUD], run.targets
    out = []
    for entity, a_scores, b_scores, target, idx in (
        ("accounts", m.account, b.account, y.user, run.users.test),
        ("transactions", m.txn, b.txn, y.txn, run.txns.test),
    ):
        t = target[idx].astype(bool)
        if not t.any():
            continue
        diff, iv = paired_auprc_difference(a_scores[idx], b_scores[idx], t)
        out.append(Comparison(entity, model, TREES_KNOWN_FRAUD, diff, iv, int(idx.size), int(t.sum())))
    return tuple(out)


def _val_sum(b: BaselineEvaluation) -> CandidateScore:
    """A baseline's validation AUPRCs as training's selection scores them."""

    def ap(m: SplitMetrics | None) -> float:
        return m.auprc if m is not None else math.nan

    return CandidateScore(b.name, ap(b.accounts.val), ap(b.transactions.val))


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
    )
    _plots(report, run, config)
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


# -- plots --------------------------------------------------------------------------------------


def _plots(report: EvaluationReport, run: CandidateRun, config: TrainConfig) -> None:
    """Write the four PNGs (matplotlib, Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve

    y = run.targets
    parts = (
        ("accounts", run.users.test, y.user, lambda s: s.account),
        ("transactions", run.txns.test, y.txn, lambda s: s.txn),
    )
    seed = report.seed

    def caption(name: str, idx: np.ndarray, yy: np.ndarray) -> str:
        return f"{name}: test split n={idx.size:,}, fraud={int(yy[idx].sum())}, seed {seed}"

    # PR curves.
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, (name, idx, yy, get) in zip(axes, parts, strict=True):
        base = yy[idx].mean() if idx.size else 0.0
        for s in run.scores:
            if idx.size and yy[idx].any():
                p, r, _ = precision_recall_curve(yy[idx], get(s)[idx])
                ap = getattr(report.get(s.name), name).test
                ax.step(r, p, where="post", label=f"{BASELINE_TITLES[s.name]} (AP {ap.auprc:.3f})" if ap else BASELINE_TITLES[s.name])
        ax.axhline(base, color="grey", ls=":", lw=1, label=f"base rate {base:.3f}")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title("PR curve, " + caption(name, idx, yy), fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle("Precision-recall on the held-out (later-in-time) test split, revealed labels")
    fig.tight_layout()
    fig.savefig(report.plots[0], dpi=90)
    plt.close(fig)

    # Score distributions by class.
    fig, axes = plt.subplots(len(run.scores), 2, figsize=(11, 2.1 * len(run.scores)), squeeze=False)
    bins = np.linspace(0.0, 1.0, 41)
    for i, s in enumerate(run.scores):
        for j, (name, idx, yy, get) in enumerate(parts):
            ax = axes[i, j]
            sc, lab = get(s)[idx], yy[idx].astype(bool)
            ax.hist(sc[~lab], bins=bins, density=True, alpha=0.6, color="tab:blue", label=f"legit/unlabelled (n={int((~lab).sum()):,})")
            ax.hist(sc[lab], bins=bins, density=True, alpha=0.6, color="tab:red", label=f"fraud (n={int(lab.sum()):,})")
            ax.set_yscale("log")
            ax.set_title(f"{BASELINE_TITLES[s.name]} - {name}", fontsize=8)
            ax.set_xlabel("score")
            ax.set_ylabel("density (log)")
            ax.legend(fontsize=6)
    fig.suptitle(f"Score distributions by class, test split, seed {seed}")
    fig.tight_layout()
    fig.savefig(report.plots[1], dpi=80)
    plt.close(fig)

    # Calibration (reliability) curves.
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    for ax, (name, idx, yy, get) in zip(axes, parts, strict=True):
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="perfectly calibrated")
        for s in run.scores:
            if s.name not in _PROBABILISTIC or not (idx.size and yy[idx].any()):
                continue
            frac, mean = calibration_curve(yy[idx], np.clip(get(s)[idx], 0, 1), n_bins=10, strategy="quantile")
            ax.plot(mean, frac, marker="o", ms=3, label=BASELINE_TITLES[s.name])
        ax.set_xlabel("mean predicted probability (quantile bins)")
        ax.set_ylabel("observed fraud share")
        ax.set_title("Reliability, " + caption(name, idx, yy), fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Calibration of the trained models (rules give squashed counts, not probabilities)")
    fig.tight_layout()
    fig.savefig(report.plots[2], dpi=90)
    plt.close(fig)

    # Tier confusion of the winner (one model for both entities, as training ships).
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    winner = report.winner
    for ax, (name, idx, yy, get) in zip(axes, parts, strict=True):
        ev = getattr(report.get(winner), name)
        codes = tier_codes(get(run.get(winner))[idx], ev.thresholds)
        lab = yy[idx].astype(bool)
        mat = np.array([[int(((codes == c) & (lab == cls)).sum()) for c in range(3)] for cls in (False, True)])
        shade = np.log1p(mat)
        ax.imshow(shade, cmap="Blues")
        for r in range(2):
            for c in range(3):
                dark = shade[r, c] > 0.6 * shade.max()
                ax.text(c, r, f"{mat[r, c]:,}", ha="center", va="center", fontsize=11, color="white" if dark else "black")
        ax.set_xticks(range(3), ["low", "medium", "high"])
        ax.set_yticks(range(2), ["legit/unlabelled", "fraud"])
        ax.set_xlabel("tier (thresholds calibrated on validation)")
        ax.set_ylabel("label")
        ax.set_title(f"{name}: winner {winner}\n" + caption(name, idx, yy), fontsize=9)
    fig.suptitle(f"Tier confusion matrix of the selected model ({winner}), test split")
    fig.tight_layout()
    fig.savefig(report.plots[3], dpi=90)
    plt.close(fig)


# -- markdown -----------------------------------------------------------------------------------


def _f(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _sm(m: SplitMetrics | None) -> tuple[str, str, str]:
    """AUPRC and AUROC with their 95 % intervals, and Recall@K."""
    if m is None:
        return ("n/a", "n/a", "n/a")
    return (f"{_f(m.auprc)} {m.auprc_ci}", f"{_f(m.auroc)} {m.auroc_ci}", _f(m.recall_at_k))


def _size(m: SplitMetrics | None, n: int) -> str:
    return f"n={n:,}, no fraud" if m is None else f"n={m.n:,}, fraud={m.n_fraud} (K={m.k})"


def _render_comparisons(comparisons: Sequence[Comparison], seed: int) -> list[str]:
    if not comparisons:
        return []
    c0 = comparisons[0]
    lines = [
        "",
        f"## {BASELINE_TITLES[c0.model]} against the strongest simple baseline ({BASELINE_TITLES[c0.baseline]})",
        "",
        "Test AUPRC difference with its 95 % paired bootstrap interval: both models scored on the same "
        "resamples. A model beats the other only when the whole interval is on one side of 0; two "
        f"overlapping intervals in the main table do not decide it. Seed {seed}.",
        "",
        "| entity | frauds | difference | 95 % interval | verdict |",
        "|---|---|---|---|---|",
    ]
    for c in comparisons:
        lines.append(f"| {c.entity} | {c.n_fraud:,} of {c.n:,} | {c.difference:+.3f} | {c.interval} | {c.verdict} |")
    return lines


def render_markdown(report: EvaluationReport, run: CandidateRun, *, main_epochs: int | None = None) -> str:
    """The report as Markdown (tables, then the plots). ``main_epochs``: GraphSAGE's epoch cap in
    the main table, so the few-labels section can say when its runs had fewer."""
    seed = report.seed
    b0 = report.baselines[0]
    sel = report.selection
    candidates = {c.name for c in sel.candidates}
    su, st = report.split_users, report.split_txns
    y = run.targets
    lines = [
        "# ringwatch evaluation",
        "",
        f"Data: {report.n_users:,} accounts, {report.n_transactions:,} events; labelled fraud accounts "
        f"{int(y.user.sum())}, fraud transactions (targets) {int(y.txn.sum())}. Seed {seed}. "
        f"Time-ordered split: accounts by first event train/val/test = {su[0]:,}/{su[1]:,}/{su[2]:,}, "
        f"events by time {st[0]:,}/{st[1]:,}/{st[2]:,}. Same data + seed give the same numbers "
        f"(`evaluation.json`); run time {report.seconds:.1f} s.",
        "",
        "Targets are the revealed labels (`gnn.training.split.targets`): unlabelled accounts count as legitimate "
        "(positive-unlabelled), so label-based numbers are lower bounds.",
        "",
        "Labels: " + (run.inputs.known.labels.describe() if run.inputs is not None and run.inputs.known is not None else "n/a") + ".",
        "",
        (
            "**Transaction targets: the store holds no transaction verdict, so every payment of a fraud account "
            "counts as a fraudulent transaction.**"
            if y.txn_from_accounts
            else "Transaction targets: the transactions with a fraud verdict (chargebacks), and only those."
        ),
        "",
        "## Main table: held-out test split (later in time), revealed labels",
        "",
        f"Accounts: {_size(b0.accounts.test, su[2])}; transactions: {_size(b0.transactions.test, st[2])}; seed {seed}.",
        "",
        "| baseline | acc AUPRC | acc AUROC | acc Recall@K | txn AUPRC | txn AUROC | txn Recall@K | fit+score s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for b in report.baselines:
        a, t = _sm(b.accounts.test), _sm(b.transactions.test)
        lines.append(f"| {b.title} | {' | '.join(a)} | {' | '.join(t)} | {b.seconds:.1f} |")
    lines += _render_comparisons(report.comparisons, seed)
    lines += [
        "",
        "## Validation split and the winner",
        "",
        f"Accounts: {_size(b0.accounts.val, su[1])}; transactions: {_size(b0.transactions.val, st[1])}; seed {seed}. "
        f"The winner is picked by the rule `ringwatch train` ships with (`gnn.training.selection`): {sel.rule}. "
        "One model is chosen for both accounts and transactions.",
        "",
        "| baseline | acc AUPRC (val) | txn AUPRC (val) | sum | selection candidate |",
        "|---|---|---|---|---|",
    ]
    for b in report.baselines:
        cand = "yes" if b.name in candidates else "no"
        win = " **(winner)**" if b.name == sel.winner else ""
        lines.append(
            f"| {b.title} | {_sm(b.accounts.val)[0]} | {_sm(b.transactions.val)[0]} | {_val_sum(b).total:.3f}{win} | {cand} |"
        )
    best = max(report.baselines, key=lambda b: _val_sum(b).total)  # first of equals: report order
    lines += [
        "",
        f"Winner: **{sel.winner}** (sum {sel.get(sel.winner).total:.3f}): `ringwatch train` with this config on "
        f"this snapshot would ship {BASELINE_TITLES[sel.winner]}."
        + (
            f" Not a candidate, {best.title} has a higher sum ({_val_sum(best).total:.3f}); training does not ship it."
            if best.name not in candidates and _val_sum(best).total > sel.get(sel.winner).total + TIE
            else ""
        ),
        *(["", f"**Warning:** {sel.warning}."] if sel.warning else []),
        *(
            ["", "Pooled out-of-fold AUPRC, accounts / transactions: "
             + "; ".join(f"{c.name} {c.accounts_val_auprc:.3f} / {c.transactions_val_auprc:.3f}" for c in sel.candidates)
             + "."]
            if "out-of-fold" in sel.rule
            else []
        ),  # fmt: skip
        "",
        "## Tiers: thresholds calibrated on validation, precision and recall on test",
        "",
        f"Flagging everything at or above the tier's threshold (medium = medium or high). Test split sizes as above; seed {seed}.",
        "",
        "| baseline | entity | medium thr | flagged | precision | recall | high thr | flagged | precision | recall |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in report.baselines:
        for name, ev in (("accounts", b.accounts), ("transactions", b.transactions)):
            cells = []
            for tm in ev.tiers:
                cells += [f"{tm.threshold:.3f}", f"{tm.flagged:,}", _f(tm.precision), _f(tm.recall)]
            lines.append(f"| {b.title} | {name} | {' | '.join(cells)} |")

    if any(b.accounts.test_vs_truth is not None for b in report.baselines):
        tt = b0.accounts.test_vs_truth
        tx = b0.transactions.test_vs_truth
        lines += [
            "",
            "## Against the planted truth (synthetic data), test split",
            "",
            f"Accounts: {_size(tt, su[2])}; transactions: {_size(tx, st[2])}; seed {seed}. "
            "Every planted fraud counts, revealed or not.",
            "",
            "| baseline | acc AUPRC | acc AUROC | acc Recall@K | txn AUPRC | txn AUROC | txn Recall@K |",
            "|---|---|---|---|---|---|---|",
        ]
        for b in report.baselines:
            lines.append(f"| {b.title} | {' | '.join(_sm(b.accounts.test_vs_truth))} | {' | '.join(_sm(b.transactions.test_vs_truth))} |")

    lines += ["", "## Graph-only slice", ""]
    if report.graph_only_size is None:
        lines.append("Not measured: no planted truth given, or no graph-only account in the test split.")
    else:
        n_pos, n_neg = report.graph_only_size
        own = report.get("trees_own").graph_only if any(b.name == "trees_own" for b in report.baselines) else None
        lines += [
            f"Test-split accounts that are late ring members whose own behaviour is ordinary (truth column "
            f"`graph_only`; {n_pos} of them) against the truly legitimate test accounts ({n_neg:,}); other frauds left out. "
            f"Seed {seed}.",
            "",
            "| baseline | AUPRC | AUROC | Recall@K | AUPRC vs baseline 2 |",
            "|---|---|---|---|---|",
        ]
        for b in report.baselines:
            diff = "" if own is None or b.graph_only is None else f"{b.graph_only.auprc - own.auprc:+.3f}"
            lines.append(f"| {b.title} | {' | '.join(_sm(b.graph_only))} | {diff} |")
        if own is not None:
            best = max(
                (b for b in report.baselines if b.name in _GRAPH_MODELS and b.graph_only is not None),
                key=lambda b: b.graph_only.auprc,  # type: ignore[union-attr]
                default=None,
            )
            if best is not None and best.graph_only is not None:
                verdict = "beats" if best.graph_only.auprc > own.auprc else "does NOT beat"
                lines += [
                    "",
                    f"Best graph model on the slice: {best.title}, AUPRC {best.graph_only.auprc:.3f}, which {verdict} "
                    f"baseline 2 (no graph features, AUPRC {own.auprc:.3f}); with only {n_pos} positives this is a small sample.",
                ]

    if any(b.rings is not None for b in report.baselines):
        kinds = sorted({k.kind for b in report.baselines if b.rings is not None for k in b.rings.by_kind})
        lines += [
            "",
            "## Rings against planted rings",
            "",
            f"Rings from `graph.rings.detect_rings` on each baseline's account scores over the whole graph "
            f"({report.n_users:,} accounts), tier thresholds as above; seed {seed}. Precision: share of detected "
            "members truly fraud; recall: share of planted ring members in some detected ring; purity: mean share "
            "of the dominant planted ring per detected ring.",
            "",
            "| baseline | detected | precision | recall | purity | planted recovered |" + "".join(f" {k} |" for k in kinds),
            "|---|---|---|---|---|---|" + "---|" * len(kinds),
        ]
        for b in report.baselines:
            r = b.rings
            if r is not None:
                per_kind = {k.kind: f"{k.recovered}/{k.planted}" for k in r.by_kind}
                lines.append(
                    f"| {b.title} | {r.detected} | {_f(r.member_precision)} | {_f(r.member_recall)} | {_f(r.purity)} | {r.recovered}/{r.planted} |"
                    + "".join(f" {per_kind.get(k, 'n/a')} |" for k in kinds)
                )

    names = sorted({c.scenario for b in report.baselines for c in b.scenarios})
    if names:
        n_of = {c.scenario: c.n_fraud for b in report.baselines for c in b.scenarios}
        lines += [
            "",
            "## Planted fraud scenarios, held-out payments",
            "",
            "Per scenario of the generator (truth column `scenario`): its fraudulent payments in the validation "
            "and test splits against the truly legitimate payments there. Cells: AUROC / share flagged at the "
            f"medium tier or above. Seed {seed}.",
            "",
            "| baseline | " + " | ".join(f"{n} ({n_of[n]} payments)" for n in names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for b in report.baselines:
            by = {c.scenario: c for c in b.scenarios}
            cells = [f"{_f(by[n].auroc)} / {_f(by[n].caught)}" if n in by else "n/a" for n in names]
            lines.append(f"| {b.title} | {' | '.join(cells)} |")

    if report.label_budget is not None:
        lines += ["", *render_label_budget(report.label_budget, main_epochs=main_epochs)]
        lines.pop()  # the section ends with a blank line; the next one starts with one

    lk = report.leakage
    whole = "; ".join(f"{k} ({'all' if v == ('all',) else len(v)})" for k, v in WHOLE_HISTORY.items())
    changed = {k: v for k, v in lk.user_features_changed.items() if v}
    lines += [
        "",
        "## Leakage audit",
        "",
        f"Cut at the train/validation boundary of the event split: {lk.n_txn_before:,} of {lk.n_txn_total:,} events "
        f"are before it. All events from the cut on were dropped, features recomputed, and compared for the events before it.",
        "",
        f"- Point-in-time transaction features ({len(lk.point_in_time)}: {', '.join(lk.point_in_time)}): "
        + ("**identical** on the truncated and the full snapshot, so none of them looks into the future."
           if lk.ok else f"**LEAK**: {', '.join(lk.leaking)} changed when later events were added."),
        f"- Whole-history aggregates: {whole}. "
        f"Of the {lk.n_users_before:,} accounts active before the cut, later events changed: "
        + (", ".join(f"{k} {v:,}" for k, v in changed.items()) or "nothing")
        + ".",
        "- Conclusion: labels never enter features and the split is by time, so no label leaks. Account scores read "
        "the account's and its neighbours' whole history up to the snapshot, which is the past at scoring time. "
        "Transaction scores of baselines 2, 3, 5 and GraphSAGE's edge head also read account-level whole-history "
        "features, so a transaction is judged with its account's later behaviour: fine for rescoring after the fact "
        "(investigation), optimistic for a decision at checkout time. Training accounts' features include events "
        "of the validation/test period (structure, never labels). "
        f"Graph feature columns dropped for baseline 2: {', '.join(GRAPH_USER_FEATURES)}.",
        "",
        "## Plots",
        "",
    ]
    titles = {
        "pr_curves.png": "Precision-recall curves, test split",
        "score_distributions.png": "Score distributions by class, test split",
        "calibration.png": "Reliability curves of the trained models, test split",
        "tier_confusion.png": "Tier confusion matrix of the selected model, test split",
    }
    for p in report.plots:
        lines += [f"![{titles[p.name]}]({p.name})", ""]
    lines += [
        "## Baselines",
        "",
        *[f"- {BASELINE_TITLES[n]}" + ("" if any(b.name == n for b in report.baselines) else " (not run)") for n in BASELINES],
        "",
        "Definitions: `gnn/evaluation/baselines.py` (module docstring). Trees: scikit-learn HistGradientBoostingClassifier, "
        f"balanced class weights, feature bins from unweighted quantiles (as scikit-learn <= 1.5 did; `gnn.core.trees`), seed {seed}.",
        "",
    ]
    return "\n".join(lines)
