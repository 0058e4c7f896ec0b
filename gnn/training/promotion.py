"""Promote a new model only if it is not worse than the current one on the same held-out data.

``decide`` scores the new artefact and the current one on the *same* snapshot, with the same
time-ordered split and targets (``gnn.training.train``), and compares their test AUPRC for accounts and
for transactions. Rule: the new model is promoted when, for each of the two whose test split
holds fraud, its AUPRC is at least the current one's minus ``TOLERANCE`` (0.01: with a few dozen
held-out frauds, one fraud moving a few ranks shifts AUPRC by about that much, and a retrain
should not be blocked by that noise). Otherwise it is kept back, and the reason names both
numbers. ``force=True`` promotes anyway and says so.

Always promoted: the first model (no current one), and a model replacing one that cannot score
this graph (unreadable, or trained on other features); the reason says which. When no test split
holds fraud there is nothing to compare and the new model is promoted.

The current model may have seen some of today's test accounts as training rows of an earlier,
smaller snapshot, which flatters it: the comparison is conservative, never in the new model's
favour.
"""

from __future__ import annotations

import logging
import math

from gnn.artefact.lineage import Promotion
from gnn.artefact.model_artefact import ModelArtefact
from gnn.core.metrics import auprc_at
from gnn.serving.scoring import score_snapshot
from gnn.training.split import targets_and_splits
from gnn.training.train import TrainConfig
from graph.errors import ModelError, ValidationError
from graph.types import Snapshot

__all__ = ["TOLERANCE", "decide"]

log = logging.getLogger(__name__)

#: How much lower (absolute AUPRC) the new model's test AUPRC may be and still be promoted.
TOLERANCE = 0.01


def decide(
    new: ModelArtefact,
    current: ModelArtefact | None,
    snapshot: Snapshot,
    config: TrainConfig = TrainConfig(),
    *,
    force: bool = False,
    tolerance: float = TOLERANCE,
    current_error: str | None = None,
) -> Promotion:
    """Compare ``new`` with ``current`` on the test split of ``snapshot`` (split fractions from
    ``config``) and decide (see the module docstring). ``current_error``: why the current model
    could not be loaded, when it could not (then ``current`` is ``None``).

    Raises:
        ValidationError: ``tolerance`` < 0.
        ModelError: ``new`` cannot score ``snapshot``.
    """
    if not tolerance >= 0:
        raise ValidationError("tolerance", tolerance, "must be >= 0")
    y, users, txns = targets_and_splits(snapshot, config)
    ns = score_snapshot(new, snapshot, device=config.device)
    new_acc = auprc_at(ns.account_scores, y.user, users.test)
    new_txn = auprc_at(ns.txn_scores, y.txn, txns.test)

    def outcome(promoted: bool, reason: str, against: str | None, cur_acc: float, cur_txn: float) -> Promotion:
        p = Promotion(
            promoted=promoted or force,
            forced=force and not promoted,
            reason=reason if promoted or not force else f"promoted by --force although {reason}",
            against=against,
            tolerance=tolerance,
            new_accounts_test_auprc=new_acc,
            new_transactions_test_auprc=new_txn,
            current_accounts_test_auprc=cur_acc,
            current_transactions_test_auprc=cur_txn,
        )
        (log.info if p.promoted else log.warning)("model %s: %s", new.version, p.reason)
        return p

    if current is None:
        if current_error is not None:
            reason = f"the current model could not be read ({current_error}); replaced"
            return outcome(True, reason, None, math.nan, math.nan)
        return outcome(True, "first model: no current model to compare with", None, math.nan, math.nan)
    try:
        cs = score_snapshot(current, snapshot, device=config.device)
    except ModelError as e:
        reason = f"the current model {current.version} cannot score this graph ({e}); replaced"
        return outcome(True, reason, None, math.nan, math.nan)
    cur_acc = auprc_at(cs.account_scores, y.user, users.test)
    cur_txn = auprc_at(cs.txn_scores, y.txn, txns.test)

    both = (("accounts", new_acc, cur_acc), ("transactions", new_txn, cur_txn))
    pairs = [(name, n, c) for name, n, c in both if math.isfinite(n) and math.isfinite(c)]
    if not pairs:
        return outcome(True, "no fraud in the held-out split: nothing to compare on", current.version, cur_acc, cur_txn)
    numbers = "; ".join(f"{name} AUPRC {n:.3f} vs {c:.3f}" for name, n, c in pairs)
    worse = [name for name, n, c in pairs if n < c - tolerance]
    if worse:
        reason = (
            f"kept back: worse than the current model {current.version} on the held-out split "
            f"({', '.join(worse)} lower by more than {tolerance:g}): {numbers} (new vs current)"
        )
        return outcome(False, reason, current.version, cur_acc, cur_txn)
    reason = f"not worse than the current model {current.version} on the held-out split: {numbers} (new vs current)"
    return outcome(True, reason, current.version, cur_acc, cur_txn)
