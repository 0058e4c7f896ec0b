"""The risk service behind the HTTP routes: one worker's view, its checkout scoring, and the
threads that keep it fresh and recorded.

``RiskService`` (``start`` in the app's lifespan, ``stop`` at shutdown) owns, per API worker
process:

* the ``ServingModel`` served now (``api.reload``): replaced as a whole (one reference
  assignment), so a request sees one view or the other, never half of each. A ``Reloader``
  thread builds new ones.
* freshness without reloads (``api.tail``): a scored checkout event is added to the scorer's
  graph at once (``InductiveScorer.add_events``) and to ``RecentEvents``, and a ``Tailer`` thread
  reads the events the other workers journaled, which the scorer folds in when a request first
  touches their user, device or IP (``InductiveScorer.defer_events``).
* the event journal of this worker (``api.journal``): the event is on disk before the answer; a
  ``JournalLoader`` thread moves it into the store, and journal slots left by a dead worker are
  drained by the live ones.
* a ``StoreProbe`` thread for ``/readyz`` (``api.probe``), alerts (``api.alerts``) and metrics.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from api.alerts import Alert, AlertConfig, AlertKind, AlertSender
from api.index import AccountView, IdentifierFacts, ScoringIndex
from api.journal import EventJournal, GroupCommit, JournalLoader, JournalSlots
from api.metrics import ServiceMetrics
from api.probe import StoreProbe
from api.reload import Reloader, ServingModel, load_serving_model
from api.results import CheckoutResult, Readiness
from api.stages import Stage
from api.tail import RecentEvents, Tailer
from gnn.serving.inductive import InductiveScorer
from gnn.serving.reasons import first_seen, identifier_shared, rescored, ring_alert, ring_linked
from graph.errors import ConflictError, ModelError
from graph.store import GraphStore, check_walk
from graph.types import (
    EdgeType,
    Event,
    Label,
    NodeType,
    Ring,
    Subgraph,
    SubgraphEdge,
    SubgraphNode,
    Tier,
)

log = logging.getLogger(__name__)

#: Answers kept for idempotent retries: a repeated request with the same content gets the same answer.
RETRY_ANSWERS = 10_000


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
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._probe = StoreProbe(config.store_factory, config.probe_interval)
        self._reloader: Reloader | None = None
        self._tailer: Tailer | None = None
        self._slots: JournalSlots | None = None
        self.journal: EventJournal | None = None
        self._loader: JournalLoader | None = None
        self._writer: GroupCommit | None = None
        self._alerts: AlertSender | None = None
        self.reloads = 0

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Load the first view (blocking), open the journal (replaying what an earlier process
        left) and start the background threads."""
        loop = asyncio.get_running_loop()
        if self.config.alerts is not None:
            self._alerts = AlertSender(self.config.alerts)
            self._alerts.start()
        with self.config.store_factory() as store:
            self.store_backend = store.backend
            self.model = load_serving_model(store, self.config.models_dir)
        gc.freeze()  # see _install()
        self._reloader = Reloader(
            self.config.store_factory,
            self.config.models_dir,
            reload_interval=self.config.reload_interval,
            refresh_interval=self.config.refresh_interval,
            install=self._install,
            serving=lambda: self.model,
            loop=loop,
        )
        self._reloader.loaded()
        self._announce_rings(None, self.model)
        if self.config.journal_dir is not None:
            self._slots = JournalSlots(self.config.journal_dir)
            self.journal = EventJournal(self._slots.claim(), fsync=self.config.fsync)
            self._writer = GroupCommit(self.journal, stages=self.metrics.stages)
            self._loader = JournalLoader(
                self.journal,
                self.config.store_factory,
                slots=self._slots,
                interval=self.config.load_interval,
                stages=self.metrics.stages,
            )
            self._loader.start()
        self._tailer = Tailer(
            self._slots, self.journal, self._recent, self._scorer, loop, self.config.tail_interval,
            stages=self.metrics.stages,
        )
        if self.journal is not None:
            self._tailer.read(include_own=True)  # what this slot (a replay) and the others hold
            self._tailer.apply()
        for name, run in (("reload", self._reloader.run), ("probe", self._probe.run), ("tail", self._tailer.run)):
            t = threading.Thread(target=run, args=(self._stop,), name=f"ringwatch-{name}", daemon=True)
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
            texts = (base.reasons if base is not None else ()) + (rescored(known),)
            return AccountView(
                user_id=user_id,
                score=fresh.score,
                tier=fresh.tier,
                ring_id=base.ring_id if base is not None else None,
                model_version=model.model_version,
                mode=model.mode,
                reasons=texts[:4] if base is None else tuple(texts[:3]) + texts[-1:],
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
        stages = self.metrics.stages
        self._in_flight.setdefault(event.txn_id, event)
        t0 = time.thread_time_ns()
        try:
            if self._writer is not None:
                written = self._writer.submit(event)
                if written.done():  # appended inline (``GroupCommit``)
                    written.result()
                    stages.add(Stage.JOURNAL, time.thread_time_ns() - t0)
                else:
                    waiting = time.thread_time_ns()
                    stages.add(Stage.JOURNAL, waiting - t0)
                    await asyncio.wrap_future(written)
                    stages.add(Stage.AWAITED, time.thread_time_ns() - waiting)
        finally:
            if self._in_flight.get(event.txn_id) is event:
                del self._in_flight[event.txn_id]
        model = self.view()  # after the wait: a swap may have happened meanwhile
        result = self._score(model, event)
        t2 = time.thread_time_ns()
        if model.scorer is not None:
            model.scorer.add_events([event])
        self._recent.add([event])
        t3 = time.thread_time_ns()
        stages.add(Stage.FOLD_OWN, t3 - t2)
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
        stages.scored += 1
        stages.add(Stage.BOOKKEEPING, time.thread_time_ns() - t3)
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
        """The event's scores, decision and reasons (CPU: ``Stage.SCORE`` for the scorer,
        ``Stage.REASONS`` for the facts, reasons and result around it)."""
        stages = self.metrics.stages
        start = time.thread_time_ns()
        index = model.index
        facts = [
            f
            for f in (
                index.identifier(NodeType.DEVICE, event.device_id, excluding=event.user_id) if event.device_id else None,
                index.identifier(NodeType.IP, event.ip, excluding=event.user_id) if event.ip else None,
            )
            if f is not None
        ]
        known = index.account(event.user_id) if index.has_account(event.user_id) else None
        ring_id = known.ring_id if known is not None else None
        if ring_id is None:
            ring_id = next((f.ring.ring_id for f in facts if f.ring is not None), None)
        t0 = time.thread_time_ns()
        if model.scorer is not None:
            late, late_ns = model.scorer.late_folds, model.scorer.late_fold_ns
            es = model.scorer.score_event(event)
            stages.late += model.scorer.late_folds - late
            stages.add(Stage.FOLD_LATE, model.scorer.late_fold_ns - late_ns)
            account_score, account_tier = es.account_score, es.account_tier
            txn_score, txn_tier = es.txn_score, es.txn_tier
            new = es.new
            how = "inductive"
        else:
            account_score, account_tier, new = self._identifier_score(index, event, facts)
            txn_score, txn_tier = account_score, account_tier
            how = "identifiers"
        t1 = time.thread_time_ns()
        stages.add(Stage.SCORE, t1 - t0)
        # The decision follows the riskier of the account (as it stands with this event) and
        # the payment itself; ``score`` is the score behind that tier.
        if account_tier.rank > txn_tier.rank or (account_tier is txn_tier and account_score >= txn_score):
            score, tier = account_score, account_tier
        else:
            score, tier = txn_score, txn_tier
        result = CheckoutResult(
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
        stages.add(Stage.REASONS, time.thread_time_ns() - t1 + t0 - start)
        return result

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

    # -- new views, ring alerts -----------------------------------------------------------------

    def _install(self, fresh: ServingModel) -> None:
        """Swap in a view the reloader built (on the event loop)."""
        if fresh.scorer is not None:
            fresh.scorer.defer_events(self._recent.events())  # what arrived since; the snapshot's are skipped
        old, self.model = self.model, fresh
        self.reloads += 1
        # The view holds millions of long-lived objects (ids, strings): without this, each full
        # collection walks them all, a long pause in the middle of a request. Acyclic garbage
        # of the old view is still freed by reference counting.
        gc.freeze()
        self._announce_rings(old, fresh)

    def _scorer(self) -> InductiveScorer | None:
        """The inductive scorer of the view served now, if any (the tailer folds events into it)."""
        model = self.model
        return model.scorer if model is not None else None

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
            reasons=(ring_alert(ring),),
            ring_id=ring.ring_id,
            ring_size=ring.size,
        )
        ok = self._alerts.raise_alert(alert)
        self.metrics.alerts.labels(kind=AlertKind.HIGH_RING.value, outcome="queued" if ok else "deduplicated").inc()

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
        health = self._probe.health
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
            events_since_snapshot=(
                model.scorer.added_events + model.scorer.deferred_events
                if model is not None and model.scorer is not None
                else 0
            ),
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
    for f in facts:  # counts of the accounts other than the event's own (``excluding``)
        if f.accounts <= 0:
            continue
        text = identifier_shared(f.node_type, f.key, f.accounts, fraud=f.fraud, high=f.high)
        risky = bool(f.fraud or f.high)
        found.append(((80.0 if risky else 30.0) + (2.0 if f.node_type is NodeType.DEVICE else 1.0), text))
    if ring_id is not None:
        ring = index.find_ring(ring_id)
        if ring is not None:
            found.append((85.0 + ring.tier.rank, ring_linked(ring)))
    if new:
        found.append((40.0, first_seen(new)))
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
