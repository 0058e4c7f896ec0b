"""Pick the shipped model: GraphSAGE, or trees beside it, whichever wins on validation AUPRC.

``train_and_select`` trains GraphSAGE, fits the tree ``CANDIDATES`` on the same time-ordered
split with the same targets and seed, and ships the winner by ``RULE``: the highest validation
AUPRC of accounts *plus* transactions, so one model ships for both entities (the transaction
trees stack on their own family's account scores, and tiers, rings and reasons then come from
one scorer). When the validation split cannot tell the candidates apart, the same rule runs on
cross-validation (``gnn.training.cross_validation``). GraphSAGE stays the core: it is always
trained, always in the artefact, and the hybrid reads its embeddings.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

import numpy as np

from gnn.artefact.lineage import CandidateScore, Selection
from gnn.artefact.model_artefact import GRAPHSAGE, SUPERVISED, ModelArtefact, make_version
from gnn.core.features import build_features
from gnn.core.metrics import auprc_at, split_metrics, split_metrics_at
from gnn.core.thresholds import ReviewQueue
from gnn.core.timing import StageTime, Stopwatch
from gnn.core.tree_features import HYBRID, TREES_AGGREGATED, TREES_KNOWN_FRAUD
from gnn.core.trees import TreeConfig
from gnn.training.candidates import CandidateRun, fit_candidates
from gnn.training.cross_validation import cross_validate
from gnn.training.train import TrainConfig, calibrate_split, train
from graph.errors import ValidationError
from graph.types import Snapshot

__all__ = [
    "CANDIDATES",
    "MIN_VALIDATION_FRAUDS",
    "RULE",
    "TIE",
    "select",
    "select_by_cross_validation",
    "ship",
    "train_and_select",
    "validation_warning",
]

log = logging.getLogger(__name__)

#: The candidates, in tie-breaking order (GraphSAGE first). The strongest generic baseline is one
#: of them, so that the graph models ship only where they beat it on validation.
CANDIDATES: tuple[str, ...] = (GRAPHSAGE, TREES_AGGREGATED, HYBRID, TREES_KNOWN_FRAUD)
#: A later candidate must beat the best so far by more than this (sum of two AUPRCs).
TIE = 1e-9
#: Fewer validation frauds than this cannot rank candidates (an entity's split is then noise).
MIN_VALIDATION_FRAUDS = 10
#: The end of every warning about a pick the data cannot support.
_NOISE = (
    "{name} was picked on noise; treat its held-out numbers as unproven and get more labels or a longer period"
)
#: The selection rule, as recorded: the quantity GraphSAGE's early stopping maximises, so a model
#: cannot win on accounts while being poor on transactions.
RULE = (
    "highest validation AUPRC of accounts + validation AUPRC of transactions (a split without fraud "
    "counts 0); ties go to the earlier candidate in " + ", ".join(CANDIDATES)
)


def select(run: CandidateRun, candidates: Sequence[str] = CANDIDATES) -> Selection:
    """Score each candidate of ``run`` on its validation split and name the winner (``RULE``).

    Raises:
        ValidationError: ``candidates`` is empty or names one that ``run`` lacks.
    """
    if not candidates:
        raise ValidationError("candidates", candidates, "name at least one candidate")
    missing = [c for c in candidates if c not in {s.name for s in run.scores}]
    if missing:
        raise ValidationError("candidates", missing, "not in this baseline run")
    y, users, txns = run.targets, run.users, run.txns
    scored = tuple(
        CandidateScore(
            name=c,
            accounts_val_auprc=auprc_at(run.get(c).account, y.user, users.val),
            transactions_val_auprc=auprc_at(run.get(c).txn, y.txn, txns.val),
        )
        for c in candidates
    )
    best = _winner(scored)
    warning = validation_warning(run, best.name)
    if warning:
        warning += ": " + _NOISE.format(name=best.name)
    return Selection(candidates=scored, winner=best.name, rule=RULE, warning=warning)


def validation_warning(run: CandidateRun, winner: str) -> str:
    """Why the validation split cannot tell the candidates apart, or "" when it can: for
    accounts and for transactions, fewer than ``MIN_VALIDATION_FRAUDS`` frauds, or the winner's
    AUROC interval there reaching chance (0.5). Silent when at least one entity has signal."""
    y, won = run.targets, run.get(winner)
    reasons = _no_signal(
        (("accounts", won.account[run.users.val], y.user[run.users.val]),
         ("transactions", won.txn[run.txns.val], y.txn[run.txns.val]))  # fmt: skip
    )
    if not reasons:
        return ""
    return f"the validation split cannot tell the candidates apart ({reasons})"


def _no_signal(entities: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> str:
    """"" when some entity's ``(name, scores, labels)`` has at least ``MIN_VALIDATION_FRAUDS``
    frauds and an AUROC interval above chance; else the reasons, joined."""
    parts = []
    for name, scores, labels in entities:
        n_fraud = int(labels.sum())
        if n_fraud < MIN_VALIDATION_FRAUDS:
            parts.append(f"{name}: {n_fraud} frauds (fewer than {MIN_VALIDATION_FRAUDS})")
            continue
        m = split_metrics(scores, labels)
        if m is None or m.auroc_ci.low <= 0.5:
            ci = "n/a" if m is None else f"{m.auroc:.3f} {m.auroc_ci}"
            parts.append(f"{name}: AUROC {ci} from {n_fraud} frauds includes chance (0.5)")
        else:
            return ""
    return "; ".join(parts)


def _winner(scored: Sequence[CandidateScore]) -> CandidateScore:
    best = scored[0]
    for c in scored[1:]:
        if c.total > best.total + TIE:
            best = c
    return best


def select_by_cross_validation(
    snapshot: Snapshot,
    run: CandidateRun,
    config: TrainConfig,
    validation: Selection,
    *,
    trees: TreeConfig = TreeConfig(),
    candidates: Sequence[str] = CANDIDATES,
) -> Selection:
    """The selection when ``validation`` (from ``select``) warns: the same rule on pooled
    out-of-fold AUPRCs of a cross-validation over accounts grouped by connected component
    (``gnn.training.cross_validation``). The warning keeps the validation split's reasons and says how
    the fallback went; it still says "picked on noise" when the folds cannot tell either."""
    cv = cross_validate(snapshot, config, candidates, trees=trees, features=run.features)
    best = _winner(cv.candidates)
    how = (
        f"{cv.n_folds}-fold cross-validation over accounts grouped into {cv.n_groups:,} connected components "
        f"({int(cv.account_labels.sum())} fraud accounts, {int(cv.txn_labels.sum())} fraud transactions out of fold)"
    )
    reasons = _no_signal(
        (("accounts", cv.account_scores[best.name], cv.account_labels),
         ("transactions", cv.txn_scores[best.name], cv.txn_labels))  # fmt: skip
    )
    if not reasons:
        outcome = f"selected {best.name} on {how} instead"
    else:
        outcome = f"{how} cannot tell them apart either ({reasons}): " + _NOISE.format(name=best.name)
    rule = RULE.replace("validation AUPRC", "pooled out-of-fold AUPRC", 2) + f", on {how}"
    reason = validation.warning.removesuffix(": " + _NOISE.format(name=validation.winner))
    return Selection(candidates=cv.candidates, winner=best.name, rule=rule, warning=f"{reason}; {outcome}")


def train_and_select(
    snapshot: Snapshot,
    config: TrainConfig = TrainConfig(),
    *,
    trees: TreeConfig = TreeConfig(),
    candidates: Sequence[str] = CANDIDATES,
    progress: bool = False,
) -> ModelArtefact:
    """Train GraphSAGE and the tree ``candidates`` on ``snapshot`` and return the winner's artefact
    (not saved), its ``selection`` filled in. ``candidates`` must include ``"graphsage"``; by
    default the others are ``trees_aggregated`` (baseline 3, the GADBench bar), ``hybrid``
    (baseline 5) and ``trees_known_fraud`` (the strongest generic baseline).

    When ``validation_warning`` finds the validation split cannot tell the candidates apart (too
    few frauds, or no signal), the rule is applied to pooled out-of-fold AUPRCs of a
    cross-validation over accounts grouped by connected component, and the selection's warning
    says so. With too few fraud labels ``train`` returns the unsupervised artefact; nothing is
    selected then (no trees are fitted) and that artefact is returned.

    Raises:
        ValidationError: an unknown candidate, or ``"graphsage"`` left out.
        ModelError: the snapshot has no users.
        ConfigError: ``config.device`` names a device this machine lacks.
    """
    unknown = [c for c in candidates if c not in CANDIDATES]
    if unknown or GRAPHSAGE not in candidates:
        raise ValidationError("candidates", list(candidates), f"must include 'graphsage' and be some of {CANDIDATES}")
    started = time.perf_counter()
    watch = Stopwatch()
    # One feature build for GraphSAGE and the trees (labels never enter features).
    features = build_features(snapshot)
    watch.lap("features")
    graphsage = train(snapshot, config, features=features, progress=progress)
    if graphsage.mode != SUPERVISED:  # too few labels: the unsupervised score, nothing to choose between
        return dataclasses.replace(graphsage, metrics=dataclasses.replace(
            graphsage.metrics, seconds=time.perf_counter() - started, stages=(*watch.stages, *graphsage.metrics.stages)
        ))  # fmt: skip
    run = fit_candidates(snapshot, config, trees=trees, names=tuple(candidates), artefact=graphsage, features=features)
    selection = select(run, candidates)
    stages: list[StageTime] = [*watch.stages, *graphsage.metrics.stages, *run.stages]
    if selection.warning:
        log.warning("%s; selecting on cross-validation instead", selection.warning)
        watch.restart()
        selection = select_by_cross_validation(snapshot, run, config, selection, trees=trees, candidates=candidates)
        watch.lap("cross-validation")
        stages.append(watch.stages[-1])
    for c in selection.candidates:
        log.info(
            "candidate %-16s validation AUPRC accounts %.3f transactions %.3f",
            c.name,
            c.accounts_val_auprc,
            c.transactions_val_auprc,
        )
    log.info("selected %s (%s)", selection.winner, selection.rule)
    if selection.warning:
        log.warning("%s", selection.warning)
    return ship(graphsage, run, selection, config, seconds=time.perf_counter() - started, stages=tuple(stages))


def ship(
    graphsage: ModelArtefact,
    run: CandidateRun,
    selection: Selection,
    config: TrainConfig,
    *,
    seconds: float | None = None,
    stages: tuple[StageTime, ...] | None = None,
) -> ModelArtefact:
    """The artefact that ships ``selection.winner``: ``graphsage`` (the GraphSAGE artefact ``run`` was
    made with) plus, for a tree winner, its fitted trees, thresholds calibrated on its validation
    scores and its metrics (validation and test). Every candidate's validation AUPRCs, the
    winner and the rule go into ``ModelArtefact.selection``. ``seconds`` / ``stages``: the whole
    training time and where it went, to record (default: unchanged).

    Raises:
        ValidationError: the winner is not in ``run`` (a tree family that was not fitted).
    """
    metrics = graphsage.metrics
    if seconds is not None:
        metrics = dataclasses.replace(metrics, seconds=seconds)
    if stages is not None:
        metrics = dataclasses.replace(metrics, stages=stages)
    if selection.winner == GRAPHSAGE:
        return dataclasses.replace(graphsage, selection=selection, metrics=metrics)
    if selection.winner not in run.models:
        raise ValidationError("selection.winner", selection.winner, f"no fitted trees of that name ({sorted(run.models)})")
    won = run.get(selection.winner)
    fitted = run.models[selection.winner]
    y, users, txns = run.targets, run.users, run.txns
    created = time.time()
    account_thresholds = calibrate_split(won.account, y.user, users.val, config)
    return dataclasses.replace(
        graphsage,
        version=make_version(created, SUPERVISED, {**graphsage.state_dict, **fitted.tensors()}),
        created_at=created,
        account_thresholds=account_thresholds,
        transaction_thresholds=calibrate_split(won.txn, y.txn, txns.val, config),
        metrics=dataclasses.replace(
            metrics,
            account_queue=ReviewQueue.of(won.account, account_thresholds),
            accounts_val=split_metrics_at(won.account, y.user, users.val),
            accounts_test=split_metrics_at(won.account, y.user, users.test),
            transactions_val=split_metrics_at(won.txn, y.txn, txns.val),
            transactions_test=split_metrics_at(won.txn, y.txn, txns.test),
        ),
        scorer=selection.winner,
        trees=fitted,
        selection=selection,
    )
