"""The serving view and its reloads.

``load_serving_model`` builds one ``ServingModel`` from the store and the model artefacts: the
snapshot, the scores of the current model, the ``ScoringIndex`` over both, an ``InductiveScorer``
for unseen events and an ``Explainer`` for reasons. When the store holds no scores of the current
artefact yet, the snapshot is scored in memory with it (nothing is written back: ``ringwatch
score`` writes). A ``Reloader`` rebuilds the view in a background thread when
``models_dir/CURRENT`` names another artefact, or every ``refresh_interval`` seconds, and hands
it to the event loop, where the service swaps it in whole.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from api.index import ScoringIndex
from gnn.artefact.model_artefact import CURRENT, ModelArtefact, read_current_version
from gnn.serving.explain import Explainer
from gnn.serving.inductive import InductiveScorer
from gnn.serving.scoring import ScoreResult
from gnn.serving.writeback import score_and_write_back
from graph.errors import ModelError, RingwatchError, ValidationError
from graph.store import GraphStore
from graph.types import NodeType, ScoreWriteback, Snapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServingModel:
    """One consistent view of graph, scores and model; replaced as a whole."""

    index: ScoringIndex
    scorer: InductiveScorer | None
    artefact: ModelArtefact | None
    artifact_version: str | None  # what models_dir/CURRENT named when this was built
    scored_in_memory: bool  # the store had no scores of this artefact: scored at load time
    loaded_at: float
    scorer_note: str | None = None  # why there is no inductive scorer
    explainer: Explainer | None = None  # reasons from the model (gnn.serving.explain); None: the index's facts

    @property
    def model_version(self) -> str | None:
        return self.index.model_version

    @property
    def mode(self) -> str | None:
        return self.index.mode


# -- building a serving view ------------------------------------------------------------------


def load_serving_model(store: GraphStore, models_dir: Path | None) -> ServingModel:
    """Snapshot + scores + artefact -> a ``ServingModel``.

    The artefact is the one ``models_dir/CURRENT`` names (else the one that made the stored
    scores). When the stored scores are another model's (a model was promoted since the last
    ``ringwatch score``), the snapshot is scored here with the current one, rings included.

    Raises:
        StoreError: the store cannot be read.
    """
    snapshot = store.snapshot()
    stored = store.last_scores()
    current = _current_version(models_dir)
    version = current or (stored.model_version if stored is not None else None)
    artefact = _load_artefact(models_dir, version)
    scores, in_memory = stored, False
    if artefact is not None and (stored is None or stored.model_version != artefact.version):
        try:
            scores, in_memory = _score_in_memory(artefact, snapshot), True
        except (RingwatchError, RuntimeError, ValueError, KeyError) as e:
            log.warning("model %s cannot score this graph, serving the stored scores: %s", artefact.version, e)
            artefact = _load_artefact(models_dir, stored.model_version) if stored is not None else None
    mode = artefact.mode if artefact is not None and scores is not None and scores.model_version == artefact.version else None
    index = ScoringIndex.build(snapshot, scores, mode=mode)
    scorer, note = _inductive_scorer(artefact, snapshot, scores)
    explainer = _explainer(artefact, snapshot, scores) if mode is not None else None
    return ServingModel(
        index=index,
        scorer=scorer,
        artefact=artefact,
        artifact_version=current_line(models_dir),
        scored_in_memory=in_memory,
        loaded_at=time.time(),
        scorer_note=note,
        explainer=explainer,
    )


def _current_version(models_dir: Path | None) -> str | None:
    """The version ``models_dir/CURRENT`` names; None (with a warning) when it names no model."""
    if models_dir is None:
        return None
    try:
        return read_current_version(models_dir)
    except ModelError as e:
        log.warning("%s; serving the stored scores' model", e)
        return None


def current_line(models_dir: Path | None) -> str | None:
    """``CURRENT``'s first line as written (reported by /healthz and /readyz)."""
    if models_dir is None:
        return None
    try:
        lines = (Path(models_dir) / CURRENT).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return lines[0].strip() or None if lines else None


def _load_artefact(models_dir: Path | None, version: str | None) -> ModelArtefact | None:
    if models_dir is None or version is None:
        return None
    try:
        return ModelArtefact.load(Path(models_dir), version)
    except (ModelError, ValidationError) as e:
        log.warning("model %s cannot be loaded, serving the stored scores: %s", version, e)
        return None


def _score_in_memory(artefact: ModelArtefact, snapshot: Snapshot) -> ScoreWriteback | None:
    if snapshot.num_nodes(NodeType.USER) == 0:
        return None
    return score_and_write_back(artefact, snapshot, device="cpu").writeback


def _explainer(artefact: ModelArtefact | None, snapshot: Snapshot, scores: ScoreWriteback | None) -> Explainer | None:
    """The reasons of the served scores (surrogate contributions + risky neighbours), or None
    (with a warning) when they cannot be built: the index's fact-based reasons are served then."""
    if artefact is None or scores is None or snapshot.num_nodes(NodeType.USER) == 0:
        return None
    users = snapshot.nodes[NodeType.USER].tolist()
    txns = snapshot.transactions.txn_id.tolist()
    acc = {s.key: s for s in scores.accounts}
    txn = {s.key: s for s in scores.transactions}
    if any(u not in acc for u in users) or any(t not in txn for t in txns):
        log.warning("some accounts or transactions have no score yet: serving fact-based reasons until the next scoring run")
        return None
    result = ScoreResult(
        account_scores=np.array([acc[u].score for u in users], dtype=np.float64),
        account_tiers=[acc[u].tier for u in users],
        txn_scores=np.array([txn[t].score for t in txns], dtype=np.float64),
        txn_tiers=[txn[t].tier for t in txns],
        embeddings=np.zeros((len(users), 0), dtype=np.float32),
        mode=artefact.mode,
        model_version=scores.model_version,
        scorer=artefact.shipped,
    )
    try:
        return Explainer.build(artefact, snapshot, scores=result)
    except (RingwatchError, ValueError) as e:
        log.warning("reasons fall back to the graph's facts: %s", e)
        return None


def _inductive_scorer(
    artefact: ModelArtefact | None, snapshot: Snapshot, scores: ScoreWriteback | None
) -> tuple[InductiveScorer | None, str | None]:
    if artefact is None:
        return None, "no model artefact: unseen events are scored from their identifiers"
    if scores is None or scores.model_version != artefact.version:
        return None, f"the served scores are not model {artefact.version}'s"
    if snapshot.num_nodes(NodeType.USER) == 0:
        return None, "the store holds no accounts yet"
    try:
        return InductiveScorer.build(artefact, snapshot), None
    except (RingwatchError, RuntimeError, ValueError, KeyError) as e:
        return None, f"{e}; unseen events are scored from their identifiers"


class Reloader:
    """Rebuilds the serving view off the event loop and hands it over to be swapped in.

    ``run`` is the body of the reload thread: every ``reload_interval`` seconds it reads
    ``models_dir/CURRENT``, and reloads when the line changed or ``refresh_interval`` seconds
    (0: never) passed since the last load. ``reload`` builds the view here, then calls
    ``install(view)`` on the event loop and waits for it.

    Args:
        store_factory: opens the store connection a reload reads through (closed after it).
        models_dir: the model artefacts, as for ``load_serving_model``.
        install: swaps a new view in; runs on the event loop.
        serving: the view served now (named in the log when a reload fails).
        loop: the event loop the service runs on.
        clock: monotonic seconds for the refresh interval (tests pass a fake one).
    """

    def __init__(
        self,
        store_factory: Callable[[], GraphStore],
        models_dir: Path | None,
        *,
        reload_interval: float,
        refresh_interval: float,
        install: Callable[[ServingModel], None],
        serving: Callable[[], ServingModel | None],
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._store_factory = store_factory
        self._models_dir = models_dir
        self._reload_interval = reload_interval
        self._refresh_interval = refresh_interval
        self._install = install
        self._serving = serving
        self._loop = loop
        self._reloading = threading.Lock()
        self._last_refresh = 0.0

    def loaded(self) -> None:
        """Note that a view was just loaded (the first one, at start): the refresh clock restarts."""
        self._last_refresh = self._clock()

    def refresh_due(self) -> bool:
        """Whether ``refresh_interval`` seconds passed since the last load: what the served view
        may lack (``InductiveScorer.defer_events``) is at most that old, plus one reload."""
        return self._refresh_interval > 0 and self._clock() - self._last_refresh >= self._refresh_interval

    def run(self, stop: threading.Event) -> None:
        seen = current_line(self._models_dir)
        while not stop.wait(self._reload_interval):
            current = current_line(self._models_dir)
            if current != seen or self.refresh_due():
                if self.reload():
                    seen = current

    def reload(self) -> bool:
        """Build a new view from the store and the current artefact and hand it to the event
        loop to swap in. Returns False (and keeps serving the old view) when it fails."""
        with self._reloading:
            started = time.monotonic()
            try:
                with self._store_factory() as store:
                    fresh = load_serving_model(store, self._models_dir)
            except RingwatchError as e:
                old = self._serving()
                log.warning("reload failed, still serving model %s: %s", old.model_version if old else None, e)
                return False
            self._last_refresh = self._clock()
            done = threading.Event()

            def swap() -> None:
                try:
                    self._install(fresh)
                finally:
                    done.set()

            self._loop.call_soon_threadsafe(swap)
            done.wait(60.0)
            log.info("serving model %s (%s) after a %.1f s reload", fresh.model_version, fresh.mode, time.monotonic() - started)
            return True
