"""One scoring run: score a snapshot, find its rings, build the write-back, and write it.

``score_and_write_back`` is what ``ringwatch score`` runs against the store, and what the API
runs in memory when the store holds no scores of the current model yet (it passes no store: the
API never writes scores, ``ringwatch score`` does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from gnn.artefact.model_artefact import ModelArtefact
from gnn.serving.scoring import ScoreResult, score_snapshot, to_writeback
from graph.rings import RingConfig, detect_rings
from graph.store import GraphStore
from graph.types import Ring, ScoreWriteback, Snapshot


@dataclass(frozen=True, slots=True)
class ScoringRun:
    """The scores of one snapshot (``result``), its rings (highest score first) and the
    write-back record that pairs both with their keys (``GraphStore.write_scores``)."""

    result: ScoreResult
    rings: list[Ring]
    writeback: ScoreWriteback


def score_and_write_back(
    artefact: ModelArtefact,
    snapshot: Snapshot,
    *,
    store: GraphStore | None = None,
    device: str | None = None,
    ring_config: RingConfig = RingConfig(),
    clock: Callable[[], float] = time.time,
) -> ScoringRun:
    """Score every account and transaction of ``snapshot`` with ``artefact``, detect rings at
    the artefact's account thresholds, and write scores and rings to ``store`` when one is given.

    Args:
        artefact: the model that scores.
        snapshot: the graph to score.
        store: where the write-back goes (replacing earlier scores and rings); None: nowhere.
        device: where the network runs (``gnn.core.device.pick_device``: CUDA when present).
        ring_config: ring detection knobs.
        clock: gives ``scored_at`` (UTC epoch seconds).

    Raises:
        ModelError: the artefact cannot score this snapshot (``score_snapshot``).
        StoreError: the store refused the write-back.
    """
    result = score_snapshot(artefact, snapshot, device=device)
    thresholds = artefact.account_thresholds
    rings = detect_rings(
        snapshot, result.account_scores, medium=thresholds.medium, high=thresholds.high, config=ring_config
    )
    writeback = to_writeback(result, snapshot, rings, scored_at=clock())
    if store is not None:
        store.write_scores(writeback)
    return ScoringRun(result=result, rings=rings, writeback=writeback)
