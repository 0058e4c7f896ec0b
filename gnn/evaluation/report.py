"""The evaluation report: ``report.md`` (``render_markdown``, one function per section) and its four
PNG plots (``write_plots``), from an ``EvaluationReport`` and the run it measured.

Rendering only: every number comes from ``gnn.evaluation.evaluate`` (and its few-labels table
from ``gnn.evaluation.label_budget``); nothing here measures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from gnn.artefact.lineage import CandidateScore
from gnn.core.metrics import NO_CLEAR_DIFFERENCE, Comparison, SplitMetrics
from gnn.core.thresholds import tier_codes
from gnn.core.tree_features import GRAPH_USER_FEATURES
from gnn.evaluation.baselines import BASELINE_TITLES, BASELINES
from gnn.evaluation.leakage import WHOLE_HISTORY
from gnn.training.candidates import CandidateRun, CandidateScores
from gnn.training.selection import TIE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gnn.evaluation.evaluate import BaselineEvaluation, EvaluationReport
    from gnn.evaluation.label_budget import LabelBudget

__all__ = ["render_markdown", "render_label_budget", "write_plots"]

#: Baselines whose scores are probabilities (the rules' are squashed counts): calibration plot.
_PROBABILISTIC = ("trees_own", "trees_known_fraud", "trees_aggregated", "graphsage", "hybrid")
_GRAPH_MODELS = ("trees_aggregated", "graphsage", "hybrid")
_PLOT_TITLES = {
    "pr_curves.png": "Precision-recall curves, test split",
    "score_distributions.png": "Score distributions by class, test split",
    "calibration.png": "Reliability curves of the trained models, test split",
    "tier_confusion.png": "Tier confusion matrix of the selected model, test split",
}


# -- plots --------------------------------------------------------------------------------------

#: (entity, test rows, targets, the entity's scores of one baseline)
_Part = tuple[str, np.ndarray, np.ndarray, Callable[[CandidateScores], np.ndarray]]


def write_plots(report: EvaluationReport, run: CandidateRun) -> None:
    """Write the four PNGs of ``report.plots`` (matplotlib, Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = run.targets
    parts: tuple[_Part, _Part] = (
        ("accounts", run.users.test, y.user, lambda s: s.account),
        ("transactions", run.txns.test, y.txn, lambda s: s.txn),
    )
    for draw, path in zip((_pr_curves, _score_distributions, _calibration, _tier_confusion), report.plots, strict=True):
        fig, dpi = draw(report, run, parts)
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
        plt.close(fig)


def _caption(name: str, idx: np.ndarray, yy: np.ndarray, seed: int) -> str:
    return f"{name}: test split n={idx.size:,}, fraud={int(yy[idx].sum())}, seed {seed}"


def _pr_curves(report: EvaluationReport, run: CandidateRun, parts: Sequence[_Part]) -> tuple[Figure, int]:
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, (name, idx, yy, get) in zip(axes, parts, strict=True):
        base = yy[idx].mean() if idx.size else 0.0
        for s in run.scores:
            if idx.size and yy[idx].any():
                p, r, _ = precision_recall_curve(yy[idx], get(s)[idx])
                ap = getattr(report.get(s.name), name).test
                title = BASELINE_TITLES[s.name]
                ax.step(r, p, where="post", label=f"{title} (AP {ap.auprc:.3f})" if ap else title)
        ax.axhline(base, color="grey", ls=":", lw=1, label=f"base rate {base:.3f}")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title("PR curve, " + _caption(name, idx, yy, report.seed), fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle("Precision-recall on the held-out (later-in-time) test split, revealed labels")
    return fig, 90


def _score_distributions(report: EvaluationReport, run: CandidateRun, parts: Sequence[_Part]) -> tuple[Figure, int]:
    import matplotlib.pyplot as plt

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
    fig.suptitle(f"Score distributions by class, test split, seed {report.seed}")
    return fig, 80


def _calibration(report: EvaluationReport, run: CandidateRun, parts: Sequence[_Part]) -> tuple[Figure, int]:
    """Reliability curves of the baselines whose scores are probabilities."""
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

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
        ax.set_title("Reliability, " + _caption(name, idx, yy, report.seed), fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Calibration of the trained models (rules give squashed counts, not probabilities)")
    return fig, 90


def _tier_confusion(report: EvaluationReport, run: CandidateRun, parts: Sequence[_Part]) -> tuple[Figure, int]:
    """Tier confusion of the winner (one model for both entities, as training ships)."""
    import matplotlib.pyplot as plt

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
        ax.set_title(f"{name}: winner {winner}\n" + _caption(name, idx, yy, report.seed), fontsize=9)
    fig.suptitle(f"Tier confusion matrix of the selected model ({winner}), test split")
    return fig, 90


# -- markdown -----------------------------------------------------------------------------------


def render_markdown(report: EvaluationReport, run: CandidateRun, *, main_epochs: int | None = None) -> str:
    """The report as Markdown (tables, then the plots). ``main_epochs``: GraphSAGE's epoch cap in
    the main table, so the few-labels section can say when its runs had fewer."""
    sections = (
        _header(report, run),
        _main_table(report),
        _render_comparisons(report.comparisons, report.truth_comparisons, report.seed),
        _validation_and_winner(report),
        _tiers(report),
        _against_truth(report),
        _graph_only(report),
        _rings(report),
        _scenarios(report),
        [] if report.label_budget is None else _few_labels(report.label_budget, main_epochs),
        _leakage(report),
        _plots(report),
        _baselines(report),
    )
    return "\n".join(line for section in sections for line in section)


def _f(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _sm(m: SplitMetrics | None) -> tuple[str, str, str]:
    """AUPRC and AUROC with their 95 % intervals, and Recall@K."""
    if m is None:
        return ("n/a", "n/a", "n/a")
    return (f"{_f(m.auprc)} {m.auprc_ci}", f"{_f(m.auroc)} {m.auroc_ci}", _f(m.recall_at_k))


def _size(m: SplitMetrics | None, n: int) -> str:
    return f"n={n:,}, no fraud" if m is None else f"n={m.n:,}, fraud={m.n_fraud} (K={m.k})"


def _val_sum(b: BaselineEvaluation) -> CandidateScore:
    """A baseline's validation AUPRCs as training's selection scores them."""

    def ap(m: SplitMetrics | None) -> float:
        return m.auprc if m is not None else math.nan

    return CandidateScore(b.name, ap(b.accounts.val), ap(b.transactions.val))


def _header(report: EvaluationReport, run: CandidateRun) -> list[str]:
    su, st = report.split_users, report.split_txns
    y = run.targets
    return [
        "# ringwatch evaluation",
        "",
        f"Data: {report.n_users:,} accounts, {report.n_transactions:,} events; labelled fraud accounts "
        f"{int(y.user.sum())}, fraud transactions (targets) {int(y.txn.sum())}. Seed {report.seed}. "
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
    ]


def _main_table(report: EvaluationReport) -> list[str]:
    b0 = report.baselines[0]
    lines = [
        "",
        "## Main table: held-out test split (later in time), revealed labels",
        "",
        f"Accounts: {_size(b0.accounts.test, report.split_users[2])}; "
        f"transactions: {_size(b0.transactions.test, report.split_txns[2])}; seed {report.seed}.",
        "",
        "| baseline | acc AUPRC | acc AUROC | acc Recall@K | txn AUPRC | txn AUROC | txn Recall@K | fit+score s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for b in report.baselines:
        a, t = _sm(b.accounts.test), _sm(b.transactions.test)
        lines.append(f"| {b.title} | {' | '.join(a)} | {' | '.join(t)} | {b.seconds:.1f} |")
    return lines


def _render_comparisons(comparisons: Sequence[Comparison], truth: Sequence[Comparison], seed: int) -> list[str]:
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
        "| measured against | entity | frauds | difference | 95 % interval | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for against, rows in (("labels", comparisons), ("planted truth", truth)):
        for c in rows:
            lines.append(
                f"| {against} | {c.entity} | {c.n_fraud:,} of {c.n:,} | {c.difference:+.3f} | {c.interval} | {c.verdict} |"
            )
    labelled = {c.entity: c.n_fraud for c in comparisons}
    counts = [f"{labelled[c.entity]:,} {c.entity} labelled fraud against {c.n_fraud:,} truly fraudulent" for c in truth if c.entity in labelled]
    if counts:
        lines += [
            "",
            f"The test split holds {' and '.join(counts)}. Against the labels, a fraud without a verdict "
            "counts as legitimate, so a model that finds it is penalised there.",
        ]
    return lines


def _pick_noise(report: EvaluationReport) -> list[str]:
    """The validation AUPRC differences selection decided on, with their paired intervals: a
    pick that none of them supports is a coin flip, whatever the sums say."""
    rows = report.validation_comparisons
    if not rows:
        return []
    c0 = rows[0]
    parts = [f"{c.entity} {c.difference:+.3f} {c.interval} ({c.n_fraud:,} frauds, {c.verdict})" for c in rows]
    line = f"{BASELINE_TITLES[c0.model]} − {BASELINE_TITLES[c0.baseline]} on validation: " + "; ".join(parts) + "."
    if all(c.verdict == NO_CLEAR_DIFFERENCE for c in rows):
        line += (
            " Neither interval excludes 0, so validation cannot tell the two apart and the pick between them"
            " rests on noise; compare them on the test split above."
        )
    return ["", line]


def _validation_and_winner(report: EvaluationReport) -> list[str]:
    b0 = report.baselines[0]
    sel = report.selection
    candidates = {c.name for c in sel.candidates}
    lines = [
        "",
        "## Validation split and the winner",
        "",
        f"Accounts: {_size(b0.accounts.val, report.split_users[1])}; "
        f"transactions: {_size(b0.transactions.val, report.split_txns[1])}; seed {report.seed}. "
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
        *_pick_noise(report),
        *(["", f"**Warning:** {sel.warning}."] if sel.warning else []),
        *(
            ["", "Pooled out-of-fold AUPRC, accounts / transactions: "
             + "; ".join(f"{c.name} {c.accounts_val_auprc:.3f} / {c.transactions_val_auprc:.3f}" for c in sel.candidates)
             + "."]
            if "out-of-fold" in sel.rule
            else []
        ),  # fmt: skip
    ]
    return lines


def _tiers(report: EvaluationReport) -> list[str]:
    lines = [
        "",
        "## Tiers: thresholds calibrated on validation, precision and recall on test",
        "",
        f"Flagging everything at or above the tier's threshold (medium = medium or high). Test split sizes as above; seed {report.seed}.",
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
    return lines


def _against_truth(report: EvaluationReport) -> list[str]:
    if not any(b.accounts.test_vs_truth is not None for b in report.baselines):
        return []
    b0 = report.baselines[0]
    tt = b0.accounts.test_vs_truth
    tx = b0.transactions.test_vs_truth
    lines = [
        "",
        "## Against the planted truth (synthetic data), test split",
        "",
        f"Accounts: {_size(tt, report.split_users[2])}; transactions: {_size(tx, report.split_txns[2])}; seed {report.seed}. "
        "Every planted fraud counts, revealed or not.",
        "",
        "| baseline | acc AUPRC | acc AUROC | acc Recall@K | txn AUPRC | txn AUROC | txn Recall@K |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in report.baselines:
        lines.append(f"| {b.title} | {' | '.join(_sm(b.accounts.test_vs_truth))} | {' | '.join(_sm(b.transactions.test_vs_truth))} |")
    return lines


def _graph_only(report: EvaluationReport) -> list[str]:
    lines = ["", "## Graph-only slice", ""]
    if report.graph_only_size is None:
        lines.append("Not measured: no planted truth given, or no graph-only account in the test split.")
        return lines
    n_pos, n_neg = report.graph_only_size
    own = report.get("trees_own").graph_only if any(b.name == "trees_own" for b in report.baselines) else None
    lines += [
        f"Test-split accounts that are late ring members whose own behaviour is ordinary (truth column "
        f"`graph_only`; {n_pos} of them) against the truly legitimate test accounts ({n_neg:,}); other frauds left out. "
        f"Seed {report.seed}.",
        "",
        "| baseline | AUPRC | AUROC | Recall@K | AUPRC vs baseline 2 |",
        "|---|---|---|---|---|",
    ]
    for b in report.baselines:
        diff = "" if own is None or b.graph_only is None else f"{b.graph_only.auprc - own.auprc:+.3f}"
        lines.append(f"| {b.title} | {' | '.join(_sm(b.graph_only))} | {diff} |")
    if own is None:
        return lines
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
    return lines


def _rings(report: EvaluationReport) -> list[str]:
    if not any(b.rings is not None for b in report.baselines):
        return []
    kinds = sorted({k.kind for b in report.baselines if b.rings is not None for k in b.rings.by_kind})
    lines = [
        "",
        "## Rings against planted rings",
        "",
        f"Rings from `graph.rings.detect_rings` on each baseline's account scores over the whole graph "
        f"({report.n_users:,} accounts), tier thresholds as above; seed {report.seed}. Precision: share of detected "
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
    return lines


def _scenarios(report: EvaluationReport) -> list[str]:
    names = sorted({c.scenario for b in report.baselines for c in b.scenarios})
    if not names:
        return []
    n_of = {c.scenario: c.n_fraud for b in report.baselines for c in b.scenarios}
    lines = [
        "",
        "## Planted fraud scenarios, held-out payments",
        "",
        "Per scenario of the generator (truth column `scenario`): its fraudulent payments in the validation "
        "and test splits against the truly legitimate payments there. Cells: AUROC / share flagged at the "
        f"medium tier or above. Seed {report.seed}.",
        "",
        "| baseline | " + " | ".join(f"{n} ({n_of[n]} payments)" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for b in report.baselines:
        by = {c.scenario: c for c in b.scenarios}
        cells = [f"{_f(by[n].auroc)} / {_f(by[n].caught)}" if n in by else "n/a" for n in names]
        lines.append(f"| {b.title} | {' | '.join(cells)} |")
    return lines


def _few_labels(budget: LabelBudget, main_epochs: int | None) -> list[str]:
    # The section ends with a blank line; the next one starts with one.
    return ["", *render_label_budget(budget, main_epochs=main_epochs)[:-1]]


def _leakage(report: EvaluationReport) -> list[str]:
    lk = report.leakage
    whole = "; ".join(f"{k} ({'all' if v == ('all',) else len(v)})" for k, v in WHOLE_HISTORY.items())
    changed = {k: v for k, v in lk.user_features_changed.items() if v}
    return [
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
    ]


def _plots(report: EvaluationReport) -> list[str]:
    lines = ["", "## Plots", ""]
    for p in report.plots:
        lines += [f"![{_PLOT_TITLES[p.name]}]({p.name})", ""]
    return lines


def _baselines(report: EvaluationReport) -> list[str]:
    return [
        "## Baselines",
        "",
        *[f"- {BASELINE_TITLES[n]}" + ("" if any(b.name == n for b in report.baselines) else " (not run)") for n in BASELINES],
        "",
        "Definitions: `gnn/evaluation/baselines.py` (module docstring). Trees: scikit-learn HistGradientBoostingClassifier, "
        f"balanced class weights, feature bins from unweighted quantiles (as scikit-learn <= 1.5 did; `gnn.core.trees`), seed {report.seed}.",
        "",
    ]


def _cells(m: SplitMetrics | None) -> list[str]:
    return ["n/a"] * 3 if m is None else [_f(m.auprc), _f(m.auroc), _f(m.recall_at_k)]


def _pct(f: float) -> str:
    return f"{100.0 * f:g} %"


def render_label_budget(budget: LabelBudget, main_epochs: int | None = None) -> list[str]:
    """The report section as Markdown lines. ``main_epochs``: the main table's epoch cap, to say
    when the fraction runs used fewer."""
    (n_acc, k_acc), (n_txn, k_txn) = budget.test_accounts, budget.test_transactions
    fewer = (
        f" The runs train at most {budget.epochs} epochs (the main table: {main_epochs}) to keep "
        "`ringwatch evaluate` within the demo's time budget."
        if main_epochs is not None and budget.epochs < main_epochs
        else ""
    )
    shares = [_pct(r.fraction) for r in budget.rows]
    title = " and ".join([", ".join(shares[:-1]), shares[-1]] if len(shares) > 1 else shares or ["none"])
    lines = [
        f"## Few labels: {title} of the fraud labels revealed",
        "",
        f"A seeded draw (seed {budget.seed}, nested: what 1 % reveals, 10 % reveals too) keeps that share of the "
        f"{budget.cases} fraud cases of the training part (train + validation accounts with a fraud verdict, their "
        "own or on one of their transactions); a hidden case loses its fraud verdicts and counts as unlabelled. "
        "Each run is the shipped training (`gnn.training.train.train`) on the revealed labels only: the test part's labels "
        "are the future at training time, withheld from the run and used, all of them, to measure. Every row is "
        f"measured on the same later-in-time test split: accounts n={n_acc:,}, fraud={k_acc}; transactions "
        f"n={n_txn:,}, fraud={k_txn}; seed {budget.seed}.{fewer}",
        "",
        "| fraud labels revealed | mode | fraud labels used (train) | epochs | acc AUPRC | acc AUROC | acc Recall@K "
        "| txn AUPRC | txn AUROC | txn Recall@K | trees+agg acc AUPRC | trees+agg acc AUROC | trees+agg acc Recall@K "
        "| trees+agg txn AUPRC |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in budget.rows:
        cells = [
            _pct(r.fraction),
            r.mode,
            f"{r.fraud_labels} ({r.fraud_labels_train})",
            str(r.epochs_run),
            *_cells(r.accounts),
            *_cells(r.transactions),
            *_cells(r.trees_accounts),
            _cells(r.trees_transactions)[0],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Base rates (AUPRC of a random score): accounts {k_acc / max(n_acc, 1):.3f}, transactions "
        f"{k_txn / max(n_txn, 1):.3f}. trees+agg is baseline 3 (trees on neighbour aggregates) fitted on the same "
        "revealed labels; n/a where its training rows hold no fraud.",
        "",
    ]
    reused = [f"{_pct(r.fraction)}: {', '.join(r.from_main)}" for r in budget.rows if r.from_main]
    if reused:
        lines += [
            "Taken from the main table's run, not fitted again, because the revealed labels give exactly the "
            "training targets (train and validation rows) that run had, so the same seed and config give the same "
            f"model: {'; '.join(reused)}.",
            "",
        ]
    lines += [
        f"**Threshold.** With fewer than `min_fraud_labels` = {budget.min_fraud_labels} fraud accounts (or none in "
        "the training split), `ringwatch train` trains no GraphSAGE and ships the unsupervised graph anomaly score "
        "(`gnn.core.anomaly`); the artefact, the scores and the API then say `mode: unsupervised`. Why the default 20: "
        "the time-ordered 60/20/20 split leaves about 12 of them to learn from and 4 to pick the epoch (early "
        "stopping on validation AUPRC) and calibrate the tiers on. With fewer, a supervised model learns one or two "
        "rings' look and its validation AUPRC rests on one or two accounts, while the anomaly score needs no labels "
        "and ranks the planted patterns (devices and IPs shared by a few accounts, bursts of tiny night payments) "
        "from day one. Compare the rows above: the unsupervised rows against the trees fitted on the same few labels.",
        "",
    ]
    return lines
