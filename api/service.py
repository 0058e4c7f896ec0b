"""The risk service behind the HTTP routes: what is served, how it stays fresh, what it records.

``RiskService`` owns, per API worker process:

* a ``ServingModel``: one consistent view (the store's snapshot, the scores of the current model,
  the ``ScoringIndex`` over both, and an ``InductiveScorer`` for unseen events). It is replaced
  as a whole (one reference assignment), so a request sees one model or the other, never half of
  each. A reload is built in a background thread when ``models_dir/CURRENT`` names another
  artefact, or every ``refresh_interval`` seconds (to pick up other replicas' events, new scoring
  runs and verdicts from the store); when the store holds no scores of that artefact yet, the
  snapshot is scored in memory with it (nothing is written back: ``ringwatch score`` writes).
* freshness without reloads: a scored checkout event is added to the scorer's graph at once
  (``InductiveScorer.add_events``), and a tailer adds the events the other workers journaled
  (``Freshness``), so every worker sees every event within ``tail_interval`` seconds.
* the event journal of this worker (``api.journal``): the event is on disk before the answer;
  a ``JournalLoader`` thread moves it into the store, and journal slots left by a dead worker are
  drained by the live ones.
* a store probe (``StoreProbe``) for ``/readyz``, alerts (``api.alerts``) and metrics.
* a steady heap: once a second the objects that folded events left behind are moved out of the
  garbage collector's reach (``gc.freeze``), so that no full collection walks them on the event
  loop (``_settle_heap``).

Threads: request handlers run on the event loop thread and are the only ones that touch the
scorer; reloads are built elsewhere and handed to the loop (``loop.call_soon_threadsafe``) to be
swapped in, after the events added since are applied to the new scorer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from api.alerts import Alert, AlertConfig, AlertKind, AlertSender
from api.index import AccountView, IdentifierFacts, ScoringIndex
from api.journal import EventJournal, GroupCommit, JournalLoader, JournalSlots
from api.metrics import ServiceMetrics
from gnn.artefact.model_artefact import CURRENT, ModelArtefact, read_current_version
from gnn.serving.explain import Explainer
from gnn.serving.inductive import InductiveScorer
from gnn.serving.scoring import ScoreResult, score_snapshot, to_writeback
from graph.errors import ConflictError, ModelError, RingwatchError, ValidationError
from graph.rings import detect_rings
from graph.store import GraphStore, check_walk
from graph.types import (
    Decision,
    EdgeType,
    Event,
    Label,
    NodeType,
    Ring,
    ScoreWriteback,
    Snapshot,
    Subgraph,
    SubgraphEdge,
    SubgraphNode,
    Tier,
)

log = logging.getLogger(__name__)

#: The most events kept in memory for re-applying to a reloaded scorer.
RECENT_EVENTS = 200_000
#: Answers kept for idempotent retries: a repeated request with the same content gets the same answer.
RETRY_ANSWERS = 10_000


class RecentEvents:
    """Events received or tailed since the snapshot, by ``txn_id`` (the first one wins), oldest
    first, at most ``cap``: re-applied to a reloaded scorer, and the reference for a reused ``txn_id``."""

    def __init__(self, cap: int = RECENT_EVENTS) -> None:
        self._cap = cap
        self._by_id: OrderedDict[str, Event] = OrderedDict()
        self._by_user: dict[str, list[Event]] = {}

    def add(self, events: Iterable[Event]) -> None:
        for event in events:
            if event.txn_id not in self._by_id:
                self._by_id[event.txn_id] = event
                self._by_user.setdefault(event.user_id, []).append(event)
        while len(self._by_id) > self._cap:
            _, old = self._by_id.popitem(last=False)
            mine = self._by_user[old.user_id]
            mine.remove(old)
            if not mine:
                del self._by_user[old.user_id]

    def get(self, txn_id: str) -> Event | None:
        return self._by_id.get(txn_id)

    def of_user(self, user_id: str) -> list[Event]:
        return list(self._by_user.get(user_id, ()))

    def events(self) -> list[Event]:
        return list(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)
#: Other workers' events folded in per event-loop turn.
TAIL_CHUNK = 2


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """How a worker serves.

    Attributes:
        store_factory: opens a graph store; each background thread opens its own.
        models_dir: the model artefacts (``CURRENT`` names the current one); None serves the
            stored scores only, with no inductive scoring of unseen events.
        journal_dir: where the event journals live (one slot per live worker); None: events
            are scored but not recorded (tests of reads only).
        alerts: the webhook for high-tier decisions and new high-tier rings; None: no alerts.
        reload_interval: seconds between checks of ``models_dir/CURRENT``.
        refresh_interval: seconds between full reloads from the store (0: never).
        tail_interval: seconds between reads of the other workers' journals.
        load_interval: seconds between moves of this worker's journal into the store. Every
            move is a store transaction, which the workers take in turn on the embedded store,
            so moving more often raises the checkout calls' p99 (``bench/api_bench.py``).
        probe_interval: seconds between store reachability checks.
    """

    store_factory: Callable[[], GraphStore]
    models_dir: Path | None = None
    journal_dir: Path | None = None
    alerts: AlertConfig | None = None
    reload_interval: float = 2.0
    refresh_interval: float = 300.0
    tail_interval: float = 1.0
    load_interval: float = 2.0
    probe_interval: float = 2.0
    fsync: bool = True


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


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    """The answer to one checkout event (see ``RiskService.score``)."""

    txn_id: str
    user_id: str
    score: float
    tier: Tier
    decision: Decision
    account_score: float
    account_tier: Tier
    transaction_score: float
    transaction_tier: Tier
    reasons: tuple[str, ...]
    ring_id: str | None
    new_entities: tuple[str, ...]
    model_version: str | None
    mode: str | None
    scoring: str  # "inductive" (GraphSAGE on the neighbourhood) or "identifiers" (fallback)


@dataclass(frozen=True, slots=True)
class StoreHealth:
    reachable: bool | None  # None: not checked yet
    checked_at: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Readiness:
    """What ``/readyz`` reports. ``status``: ready, degraded (serving from memory, the store is
    unreachable or the journal cannot drain) or not_ready (no model view loaded)."""

    status: str
    model_loaded: bool
    model_version: str | None
    mode: str | None
    artifact_version: str | None
    inductive: bool
    snapshot_age_seconds: float | None
    store: StoreHealth
    journal_depth: int
    journal_error: str | None
    events_since_snapshot: int
    reasons: tuple[str, ...]


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
        artifact_version=_current_line(models_dir),
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


def _current_line(models_dir: Path | None) -> str | None:
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
    result = score_snapshot(artefact, snapshot, device="cpu")
    thr = artefact.account_thresholds
    rings = detect_rings(snapshot, result.account_scores, medium=thr.medium, high=thr.high)
    return to_writeback(result, snapshot, rings, scored_at=time.time())


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


# -- the service ------------------------------------------------------------------------------


class RiskService:
    """One worker's service (see the module docstring). ``start`` in the app's lifespan, on the
    event loop; ``stop`` at shutdown."""

    def __init__(self, config: ServiceConfig, metrics: ServiceMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.model: ServingModel | None = None
        self.store_backend = ""  # the store's backend name (sqlite, neo4j), known after start()
        self._recent = RecentEvents()
        self._answers: OrderedDict[str, tuple[Event, CheckoutResult]] = OrderedDict()
        self._in_flight: dict[str, Event] = {}  # journal writes not answered yet
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._reloading = threading.Lock()
        self._store_health = StoreHealth(None, None, None)
        self._slots: JournalSlots | None = None
        self.journal: EventJournal | None = None
        self._loader: JournalLoader | None = None
        self._writer: GroupCommit | None = None
        self._alerts: AlertSender | None = None
        self._tail_offsets: dict[Path, int] = {}
        self._pending_tail: list[Event] = []
        self._tail_lock = threading.Lock()
        self._last_refresh = 0.0
        self.reloads = 0

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Load the first view (blocking), open the journal (replaying what an earlier process
        left) and start the background threads."""
        self._loop = asyncio.get_running_loop()
        if self.config.alerts is not None:
            self._alerts = AlertSender(self.config.alerts)
            self._alerts.start()
        with self.config.store_factory() as store:
            self.store_backend = store.backend
            self.model = load_serving_model(store, self.config.models_dir)
        gc.freeze()  # see swap() in reload()
        self._last_refresh = time.monotonic()
        self._announce_rings(None, self.model)
        if self.config.journal_dir is not None:
            self._slots = JournalSlots(self.config.journal_dir)
            self.journal = EventJournal(self._slots.claim(), fsync=self.config.fsync)
            self._writer = GroupCommit(self.journal)
            self._loader = JournalLoader(
                self.journal, self.config.store_factory, slots=self._slots, interval=self.config.load_interval
            )
            self._loader.start()
            self._tail_once(include_own=True)  # what this slot (a replay) and the others hold
            self._apply_tailed()
        for name, target in (("reload", self._reload_loop), ("probe", self._probe_loop), ("tail", self._tail_loop)):
            t = threading.Thread(target=target, name=f"ringwatch-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5.0)
        if self._writer is not None:
            self._writer.stop()
        if self._loader is not None:
            self._loader.stop()
        if self.journal is not None:
            self.journal.close()
        if self._slots is not None:
            self._slots.release()
        if self._alerts is not None:
            self._alerts.stop()
        gc.unfreeze()  # what start() and reloads froze is collectable again

    # -- reads ---------------------------------------------------------------------------------

    def view(self) -> ServingModel:
        """The current view.

        Raises:
            ModelError: nothing is loaded yet.
        """
        model = self.model
        if model is None:
            raise ModelError("the service is still loading its model")
        return model

    def account(self, user_id: str) -> AccountView:
        """An account's risk: the batch score, or, when events arrived for it since the snapshot
        (or it is new since), its score from the neighbourhood as it stands now.

        Raises:
            NotFoundError: neither the snapshot nor a later event knows the account.
        """
        model = self.view()
        scorer = model.scorer
        known = model.index.has_account(user_id)
        if scorer is not None and scorer.touched_since_snapshot(user_id):
            fresh = scorer.score_account(user_id)
            base = model.index.account(user_id) if known else None
            if base is not None and model.explainer is not None:
                base = dataclasses.replace(base, reasons=model.explainer.account(user_id).texts)
            reasons = (base.reasons if base is not None else ()) + (
                f"scored on its latest events (after the {'snapshot' if known else 'account first appeared'})",
            )
            return AccountView(
                user_id=user_id,
                score=fresh.score,
                tier=fresh.tier,
                ring_id=base.ring_id if base is not None else None,
                model_version=model.model_version,
                mode=model.mode,
                reasons=reasons[:4] if base is None else tuple(reasons[:3]) + reasons[-1:],
                devices=base.devices if base is not None else (),
                ips=base.ips if base is not None else (),
            )
        view = model.index.account(user_id)
        if model.explainer is not None:
            view = dataclasses.replace(view, reasons=model.explainer.account(user_id).texts)
        return view

    def subgraph(self, user_id: str, hops: int, limit: int = 500, *, min_tier: Tier | None = None) -> Subgraph:
        """``ScoringIndex.subgraph`` with what this worker folded in since the snapshot: an
        account's newer events add their devices, IPs and merchants (and, past one hop, what
        the snapshot holds around those), and an account that is new since exists here too.

        Raises:
            ValidationError: ``hops`` outside 1..3 or ``limit`` < 1.
            NotFoundError: neither the snapshot nor a later event knows the account.
        """
        model = self.view()
        index = model.index
        newer = self._recent.of_user(user_id)
        if not newer:
            return index.subgraph(user_id, hops, limit, min_tier=min_tier)
        if index.has_account(user_id):
            base = index.subgraph(user_id, hops, limit, min_tier=min_tier)
        else:
            check_walk(hops, limit)
            view = self.account(user_id)
            center = SubgraphNode(NodeType.USER, user_id, view.score, view.tier, view.ring_id)
            base = Subgraph(center=(NodeType.USER, user_id), hops=hops, nodes=(center,), edges=())
        return _with_events(base, newer, index, limit, min_tier)

    # -- scoring a checkout event --------------------------------------------------------------

    async def score(self, event: Event) -> CheckoutResult:
        """Journal the event (durably: the answer waits for the disk; the event loop waits too
        only while the disk syncs fast, see ``GroupCommit``), score it, add it to the in-memory
        graph, count the decision and raise an alert when it is high tier. The loader moves
        journaled events to the store on its own tick.

        A ``txn_id`` seen before (since the snapshot, in it, or in flight) with the same content
        is an idempotent retry: the same answer while it is among the last ``RETRY_ANSWERS``,
        else a fresh score of the event as the graph holds it. With other content it is refused.

        Raises:
            ConflictError: the ``txn_id`` was received before with other content (nothing is
                journaled or folded in).
            StoreError: the journal write failed (the event must not be acknowledged).
            ModelError: no view is loaded yet.
        """
        earlier = self._earlier(self.view(), event)
        if earlier is not None:
            return earlier
        self._in_flight.setdefault(event.txn_id, event)
        try:
            if self._writer is not None:
                written = self._writer.submit(event)
                if written.done():  # appended inline (``GroupCommit``)
                    written.result()
                else:
                    await asyncio.wrap_future(written)
        finally:
            if self._in_flight.get(event.txn_id) is event:
                del self._in_flight[event.txn_id]
        model = self.view()  # after the wait: a swap may have happened meanwhile
        result = self._score(model, event)
        if model.scorer is not None:
            model.scorer.add_events([event])
        self._recent.add([event])
        self._answers[event.txn_id] = (event, result)
        if len(self._answers) > RETRY_ANSWERS:
            self._answers.popitem(last=False)
        self.metrics.decisions.labels(tier=result.tier.value, decision=result.decision.value).inc()
        if result.tier is Tier.HIGH and self._alerts is not None:
            ok = self._alerts.raise_alert(
                Alert(
                    kind=AlertKind.HIGH_DECISION,
                    created_at=time.time(),
                    score=result.score,
                    tier=result.tier.value,
                    model_version=result.model_version,
                    reasons=result.reasons,
                    user_id=result.user_id,
                    txn_id=result.txn_id,
                    ring_id=result.ring_id,
                )
            )
            self.metrics.alerts.labels(kind=AlertKind.HIGH_DECISION.value, outcome="queued" if ok else "deduplicated").inc()
        return result

    def _earlier(self, model: ServingModel, event: Event) -> CheckoutResult | None:
        """The answer kept for a retry of ``event``, None to score it.

        Raises:
            ConflictError: its ``txn_id`` came before with other content.
        """
        answered = self._answers.get(event.txn_id)
        before = (
            answered[0]
            if answered is not None
            else self._in_flight.get(event.txn_id) or self._recent.get(event.txn_id) or model.index.event(event.txn_id)
        )
        if before is None:
            return None
        if before != event:
            differs = before.differences(event, "this request", at_most=3)
            raise ConflictError("txn_id", event.txn_id, f"already received with other content: {differs}")
        return answered[1] if answered is not None else None

    def _score(self, model: ServingModel, event: Event) -> CheckoutResult:
        index = model.index
        facts = [
            f
            for f in (
                index.identifier(NodeType.DEVICE, event.device_id) if event.device_id else None,
                index.identifier(NodeType.IP, event.ip) if event.ip else None,
            )
            if f is not None
        ]
        known = index.account(event.user_id) if index.has_account(event.user_id) else None
        ring_id = known.ring_id if known is not None else None
        if ring_id is None:
            ring_id = next((f.ring.ring_id for f in facts if f.ring is not None), None)
        if model.scorer is not None:
            es = model.scorer.score_event(event)
            account_score, account_tier = es.account_score, es.account_tier
            txn_score, txn_tier = es.txn_score, es.txn_tier
            new = es.new
            how = "inductive"
        else:
            account_score, account_tier, new = self._identifier_score(index, event, facts)
            txn_score, txn_tier = account_score, account_tier
            how = "identifiers"
        # The decision follows the riskier of the account (as it stands with this event) and
        # the payment itself; ``score`` is the score behind that tier.
        if account_tier.rank > txn_tier.rank or (account_tier is txn_tier and account_score >= txn_score):
            score, tier = account_score, account_tier
        else:
            score, tier = txn_score, txn_tier
        return CheckoutResult(
            txn_id=event.txn_id,
            user_id=event.user_id,
            score=score,
            tier=tier,
            decision=tier.decision,
            account_score=account_score,
            account_tier=account_tier,
            transaction_score=txn_score,
            transaction_tier=txn_tier,
            reasons=_event_reasons(index, facts, new, ring_id, known),
            ring_id=ring_id,
            new_entities=tuple(new),
            model_version=model.model_version,
            mode=model.mode,
            scoring=how,
        )

    @staticmethod
    def _identifier_score(
        index: ScoringIndex, event: Event, facts: list[IdentifierFacts]
    ) -> tuple[float, Tier, tuple[str, ...]]:
        """Fallback without an inductive scorer: a known account's batch score, else the
        riskiest account on the event's device or IP (tier capped at medium: sharing an
        identifier is a reason to review, not proof), else low."""
        new = tuple(
            name
            for name, present in (
                ("user", index.has_account(event.user_id)),
                ("device", event.device_id is None or any(f.node_type is NodeType.DEVICE for f in facts)),
                ("ip", event.ip is None or any(f.node_type is NodeType.IP for f in facts)),
            )
            if not present
        )
        if index.has_account(event.user_id):
            view = index.account(event.user_id)
            if view.score is not None and view.tier is not None:
                return view.score, view.tier, new
        if any(f.fraud > 0 or f.high > 0 for f in facts):
            return 0.5, Tier.MEDIUM, new
        return 0.0, Tier.LOW, new

    # -- background: reloads -------------------------------------------------------------------

    def _reload_loop(self) -> None:
        seen = _current_line(self.config.models_dir)
        while not self._stop.wait(self.config.reload_interval):
            current = _current_line(self.config.models_dir)
            due = self.config.refresh_interval > 0 and time.monotonic() - self._last_refresh >= self.config.refresh_interval
            if current != seen or due:
                if self.reload():
                    seen = current

    def reload(self) -> bool:
        """Build a new view from the store and the current artefact and hand it to the event
        loop to swap in. Returns False (and keeps serving the old view) when it fails."""
        with self._reloading:
            started = time.monotonic()
            try:
                with self.config.store_factory() as store:
                    fresh = load_serving_model(store, self.config.models_dir)
            except RingwatchError as e:
                log.warning("reload failed, still serving model %s: %s", self.model.model_version if self.model else None, e)
                return False
            self._last_refresh = time.monotonic()
            done = threading.Event()
            assert self._loop is not None

            def swap() -> None:
                try:
                    if fresh.scorer is not None:
                        fresh.scorer.add_events(self._recent.events())  # what arrived since; the snapshot's are skipped
                    old, self.model = self.model, fresh
                    self.reloads += 1
                    # The view holds millions of long-lived objects (ids, strings): without
                    # this, each full collection walks them all, a long pause in the middle of
                    # a request. Acyclic garbage of the old view is still freed by reference
                    # counting.
                    gc.freeze()
                    self._announce_rings(old, fresh)
                finally:
                    done.set()

            self._loop.call_soon_threadsafe(swap)
            done.wait(60.0)
            log.info("serving model %s (%s) after a %.1f s reload", fresh.model_version, fresh.mode, time.monotonic() - started)
            return True

    def _announce_rings(self, old: ServingModel | None, new: ServingModel) -> None:
        """Alert on high-tier rings the previous view did not have (all of them at start)."""
        if self._alerts is None and self.config.alerts is None:
            return
        before = {r.ring_id for r in old.index.rings()} if old is not None else set()
        for ring in new.index.rings(min_tier=Tier.HIGH):
            if ring.ring_id not in before:
                self._ring_alert(ring, new.model_version)

    def _ring_alert(self, ring: Ring, model_version: str | None) -> None:
        if self._alerts is None:
            return
        alert = Alert(
            kind=AlertKind.HIGH_RING,
            created_at=time.time(),
            score=ring.score,
            tier=ring.tier.value,
            model_version=model_version,
            reasons=(f"{ring.size} accounts sharing {len(ring.shared_devices)} devices and {len(ring.shared_ips)} IPs",),
            ring_id=ring.ring_id,
            ring_size=ring.size,
        )
        ok = self._alerts.raise_alert(alert)
        self.metrics.alerts.labels(kind=AlertKind.HIGH_RING.value, outcome="queued" if ok else "deduplicated").inc()

    # -- background: other workers' events -----------------------------------------------------

    def _tail_loop(self) -> None:
        while not self._stop.wait(self.config.tail_interval):
            with self._tail_lock:
                busy = bool(self._pending_tail)  # the loop is still folding in the last read
            if not busy and self._tail_once() and self._loop is not None:
                self._loop.call_soon_threadsafe(self._apply_tailed)
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._settle_heap)

    def _settle_heap(self) -> None:
        """Collect the young generations, then move what survived into the GC's permanent
        generation (``gc.freeze``, which costs no walk of the heap).

        Every folded event leaves long-lived objects (the event, its entries in the scorer's
        delta). Left to the GC, they pile up in the old generation, and each automatic full
        collection walks all of them on the event loop: pauses that grow with every event until
        the next reload (``bench/api_bench.py`` shows them in its p99 per window). Frozen, they
        are never walked again; they are still freed by
        reference counting when dropped (a reload drops the old scorer). Only reference cycles
        that are alive at the moment of the freeze (requests in flight) are never collected."""
        gc.collect(1)
        gc.freeze()

    def _tail_once(self, *, include_own: bool = False) -> bool:
        """Read events the other workers appended to their journals since the last read (and
        at start this worker's own, which a replay is about to load into the store). Events
        the snapshot holds already are skipped by ``add_events``."""
        if self._slots is None or self.journal is None:
            return False
        found: list[Event] = []
        for path in self._slots.event_files():
            if path.parent == self.journal.directory and not include_own:
                continue
            start = self._tail_offsets.get(path, 0)
            events, end = EventJournal.read_file(path, start)
            self._tail_offsets[path] = end
            found.extend(events)
        if not found:
            return False
        with self._tail_lock:
            self._pending_tail.extend(found)
        return True

    def _apply_tailed(self) -> None:
        """Fold in tailed events a chunk at a time, yielding the event loop between chunks, so
        that a request waits behind at most one chunk, not the whole backlog."""
        with self._tail_lock:
            events, self._pending_tail = self._pending_tail[:TAIL_CHUNK], self._pending_tail[TAIL_CHUNK:]
            more = bool(self._pending_tail)
        if events:
            self._recent.add(events)
            model = self.model
            if model is not None and model.scorer is not None:
                model.scorer.add_events(events)
        if more and self._loop is not None:
            self._loop.call_soon(self._apply_tailed)

    # -- background: store reachability ---------------------------------------------------------

    def _probe_loop(self) -> None:
        store: GraphStore | None = None
        while True:
            try:
                if store is None:
                    store = self.config.store_factory()
                store.ping()
                self._store_health = StoreHealth(True, time.time(), None)
            except RingwatchError as e:
                self._store_health = StoreHealth(False, time.time(), str(e))
                if store is not None:
                    _close_quietly(store)
                    store = None
            if self._stop.wait(self.config.probe_interval):
                break
        if store is not None:
            _close_quietly(store)

    # -- verdicts, readiness ----------------------------------------------------------------------

    def add_labels(self, labels: list[Label]) -> int:
        """Store investigators' verdicts for the next training run (through a fresh store
        connection: verdicts are rare and must not wait behind the loop).

        Raises:
            StoreError: the store cannot take them now (nothing was stored; send them again).
        """
        with self.config.store_factory() as store:
            return store.upsert_labels(labels)

    def readiness(self) -> Readiness:
        model = self.model
        health = self._store_health
        js = self.journal.status() if self.journal is not None else None
        reasons: list[str] = []
        if model is None:
            status = "not_ready"
            reasons.append("no model view loaded yet")
        else:
            status = "ready"
            if health.reachable is False:
                status = "degraded"
                reasons.append(f"store unreachable: {health.error}; scoring from memory, events journaled")
            if js is not None and js.last_error:
                status = "degraded"
                reasons.append(f"journal cannot drain: {js.last_error}")
            if model.scorer is None and model.scorer_note:
                reasons.append(model.scorer_note)
        age = time.time() - model.index.snapshot_taken_at if model is not None else None
        return Readiness(
            status=status,
            model_loaded=model is not None and model.model_version is not None,
            model_version=model.model_version if model is not None else None,
            mode=model.mode if model is not None else None,
            artifact_version=model.artifact_version if model is not None else None,
            inductive=model is not None and model.scorer is not None,
            snapshot_age_seconds=age if age is None or math.isfinite(age) else None,
            store=health,
            journal_depth=js.depth if js is not None else 0,
            journal_error=js.last_error if js is not None else None,
            events_since_snapshot=model.scorer.added_events if model is not None and model.scorer is not None else 0,
            reasons=tuple(reasons),
        )


def _event_reasons(
    index: ScoringIndex,
    facts: list[IdentifierFacts],
    new: tuple[str, ...] | list[str],
    ring_id: str | None,
    known: AccountView | None,
) -> tuple[str, ...]:
    """Short facts behind an event's score, most telling first: the event's device / IP and the
    risky accounts on them, the ring, what is new, the account's own reasons."""
    found: list[tuple[float, str]] = []
    for f in facts:
        others = f.accounts - int(known is not None)
        noun = "device" if f.node_type is NodeType.DEVICE else "IP"
        if others <= 0:
            continue
        text = f"{noun} {f.key} is shared by {others} other account{'s' if others != 1 else ''}"
        risky = []
        if f.fraud:
            risky.append(f"{f.fraud} confirmed fraud")
        if f.high:
            risky.append(f"{f.high} high risk")
        if risky:
            text += ": " + ", ".join(risky)
        found.append(((80.0 if risky else 30.0) + (2.0 if f.node_type is NodeType.DEVICE else 1.0), text))
    if ring_id is not None:
        ring = index.find_ring(ring_id)
        if ring is not None:
            found.append((85.0 + ring.tier.rank, f"linked to ring {ring.ring_id} ({ring.size} accounts, {ring.tier.value} tier)"))
    if new:
        names = {"user": "account", "device": "device", "ip": "IP", "merchant": "merchant"}
        found.append((40.0, "first time seen: " + ", ".join(names.get(n, n) for n in new)))
    if known is not None:
        for i, text in enumerate(known.reasons):
            found.append((50.0 - i, text))
    found.sort(key=lambda item: -item[0])
    out: list[str] = []
    for _, text in found:
        if text not in out:
            out.append(text)
    return tuple(out[:4])


def _with_events(base: Subgraph, events: list[Event], index: ScoringIndex, limit: int, min_tier: Tier | None) -> Subgraph:
    """``base`` (an account's subgraph) plus the account's ``events`` since the snapshot: their
    identifiers one hop out with the edges to them, and the snapshot around each identifier the
    snapshot holds, ``base.hops - 1`` further; at most ``limit`` nodes."""
    user = base.center
    nodes = {(n.node_type, n.key): n for n in base.nodes}
    edges = {(e.edge_type, e.source, e.target, e.txn_id): e for e in base.edges}
    truncated = base.truncated

    def add_node(node: SubgraphNode) -> bool:
        nonlocal truncated
        if (node.node_type, node.key) in nodes:
            return True
        if len(nodes) >= limit:
            truncated = True
            return False
        nodes[(node.node_type, node.key)] = node
        return True

    def add_edge(edge: SubgraphEdge) -> None:
        if edge.source in nodes and edge.target in nodes:
            edges.setdefault((edge.edge_type, edge.source, edge.target, edge.txn_id), edge)

    found: list[tuple[NodeType, str]] = []
    for event in events:
        device = (NodeType.DEVICE, event.device_id) if event.device_id else None
        ip = (NodeType.IP, event.ip) if event.ip else None
        merchant = (NodeType.MERCHANT, event.merchant_id) if event.merchant_id else None
        for ident in (device, ip, merchant):
            if ident is not None and add_node(SubgraphNode(*ident)):
                found.append(ident)
        if device is not None:
            add_edge(SubgraphEdge(EdgeType.USED_DEVICE, user, device))
        if ip is not None:
            add_edge(SubgraphEdge(EdgeType.USED_IP, user, ip))
        if device is not None and ip is not None:
            add_edge(SubgraphEdge(EdgeType.SEEN_AT, device, ip))
        if merchant is not None:
            add_edge(SubgraphEdge(EdgeType.TRANSACTED, user, merchant, event.txn_id))
    if base.hops > 1:
        for node_type, key in dict.fromkeys(found):
            around = index.identifier_subgraph(node_type, key, base.hops - 1, limit, min_tier=min_tier)
            if around is None:
                continue
            truncated |= around.truncated
            for node in around.nodes:
                add_node(node)
            for edge in around.edges:
                add_edge(edge)
    return Subgraph(center=user, hops=base.hops, nodes=tuple(nodes.values()), edges=tuple(edges.values()), truncated=truncated)


def _close_quietly(store: GraphStore) -> None:
    try:
        store.close()
    except RingwatchError as e:
        log.warning("closing a store connection: %s", e)
