"""The main job, one function per CLI step, shared by the command line, the demo and the tests.

Each step takes ``Settings`` and returns a typed result; nothing here prints except through the
``log`` callable, so tests can run the pipeline silently.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gnn.artefact.lineage import Promotion
from gnn.core.timing import StageTime, Stopwatch
from gnn.evaluation.truth_report import TruthReport, compare_with_truth
from graph.errors import ModelError
from graph.factory import open_store
from graph.rings import RingConfig
from graph.store import GraphStore
from graph.types import NodeType, Ring, Snapshot
from ingestion.loader import LabelLoadSummary, LoadSummary, load_events, load_labels
from ingestion.mapping import ColumnMapping
from ingestion.readers import DEFAULT_ENCODING
from ringwatch.settings import Settings
from synthetic.generator import GeneratedDataset, SyntheticConfig, generate
from synthetic.truth import PlantedTruth, load_truth

if TYPE_CHECKING:  # the model steps import torch themselves, so ingest and label start without it
    from gnn.artefact.model_artefact import ModelArtefact
    from gnn.evaluation.evaluate import EvaluationReport
    from gnn.serving.scoring import ScoreResult
    from gnn.training.train import TrainConfig

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def store_for(settings: Settings) -> GraphStore:
    """Open the configured store: Neo4j when ``NEO4J_URI`` is set, else the embedded SQLite file."""
    settings.ensure_dirs()
    return open_store(
        settings.store_path,
        neo4j_uri=settings.neo4j_uri,
        neo4j_user=settings.neo4j_user,
        neo4j_password=settings.neo4j_password,
    )


# -- steps ------------------------------------------------------------------------------------


def step_generate(
    settings: Settings, users: int, seed: int, *, labels: str = "all", progress: bool = False
) -> GeneratedDataset:
    settings.ensure_dirs()
    return generate(SyntheticConfig(users=users, seed=seed, labels=labels), settings.data_dir, progress=progress)


def step_ingest(
    settings: Settings,
    sources: Sequence[Path],
    *,
    mapping: Path | None = None,
    batch_size: int = 50_000,
    progress: bool = False,
    encoding: str = DEFAULT_ENCODING,
) -> LoadSummary:
    column_mapping = ColumnMapping.from_file(mapping) if mapping else None
    with store_for(settings) as store:
        return load_events(
            list(sources),
            store,
            mapping=column_mapping,
            quarantine_dir=settings.quarantine_dir,
            batch_size=batch_size,
            progress=progress,
            encoding=encoding,
        )


def step_label(
    settings: Settings, source: Path, *, progress: bool = False, encoding: str = DEFAULT_ENCODING
) -> LabelLoadSummary:
    with store_for(settings) as store:
        return load_labels(source, store, quarantine_dir=settings.quarantine_dir, progress=progress, encoding=encoding)


@dataclass(frozen=True, slots=True)
class TrainOutcome:
    """The trained artefact (its ``selection`` and ``promotion`` filled in) and where it was
    saved; ``promoted``: it is now ``CURRENT`` (otherwise it was kept back, see the reason).
    ``stages``: where the time went, from reading the snapshot to saving the artefact."""

    artefact: ModelArtefact
    path: Path
    stages: tuple[StageTime, ...] = ()

    @property
    def promotion(self) -> Promotion:
        assert self.artefact.promotion is not None  # step_train always sets it
        return self.artefact.promotion

    @property
    def promoted(self) -> bool:
        return self.promotion.promoted


def _current_model(settings: Settings) -> tuple[ModelArtefact | None, str | None]:
    """The current artefact, or ``None`` and why not when there is one that cannot be read."""
    from gnn.artefact.model_artefact import CURRENT, ModelArtefact

    if not (settings.models_dir / CURRENT).is_file():
        return None, None
    try:
        return ModelArtefact.load(settings.models_dir), None
    except ModelError as e:
        return None, str(e)


def step_train(
    settings: Settings,
    config: TrainConfig,
    *,
    progress: bool = False,
    force: bool = False,
    candidates: Sequence[str] | None = None,
) -> TrainOutcome:
    """Train GraphSAGE and the tree candidates, ship the winner on validation AUPRC
    (``gnn.training.selection``), and make it current only if it is not worse than the current model on
    the same held-out data (``gnn.training.promotion``) or ``force`` is set. A model kept back is still
    saved (not current); the reason is in ``TrainOutcome.promotion`` and the artefact's metadata.
    ``candidates``: the models selection may ship (default ``gnn.training.selection.CANDIDATES``).
    """
    from gnn.training.promotion import decide
    from gnn.training.selection import CANDIDATES, train_and_select

    watch = Stopwatch()
    with store_for(settings) as store:
        snapshot = store.snapshot()
    watch.lap("snapshot")
    artefact = train_and_select(snapshot, config, progress=progress, candidates=CANDIDATES if candidates is None else candidates)
    watch.stages.extend(artefact.metrics.stages)
    watch.restart()
    current, current_error = _current_model(settings)
    promotion = decide(artefact, current, snapshot, config, force=force, current_error=current_error)
    artefact = dataclasses.replace(artefact, promotion=promotion)
    watch.lap("promotion check")
    path = artefact.save(settings.models_dir, make_current=promotion.promoted)
    watch.lap("save")
    return TrainOutcome(artefact=artefact, path=path, stages=tuple(watch.stages))


@dataclass(frozen=True, slots=True)
class ScoreOutcome:
    snapshot: Snapshot
    result: ScoreResult
    rings: list[Ring]
    exported: tuple[Path, ...]


def step_score(
    settings: Settings,
    *,
    out: Path | None = None,
    ring_config: RingConfig = RingConfig(),
    model_version: str | None = None,
) -> ScoreOutcome:
    """Score every account and transaction with the current model, find rings, write back."""
    from gnn.artefact.model_artefact import ModelArtefact
    from gnn.serving.writeback import score_and_write_back

    artefact = ModelArtefact.load(settings.models_dir, model_version)
    with store_for(settings) as store:
        snapshot = store.snapshot()
        run = score_and_write_back(artefact, snapshot, store=store, ring_config=ring_config)
    exported = export_scores(run.result, snapshot, out) if out else ()
    return ScoreOutcome(snapshot=snapshot, result=run.result, rings=run.rings, exported=exported)


def export_scores(result: ScoreResult, snapshot: Snapshot, out: Path) -> tuple[Path, Path]:
    """Write account scores to ``out`` and transaction scores beside it (``*.transactions.csv``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    txn_out = out.with_name(out.stem + ".transactions" + (out.suffix or ".csv"))
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "risk_score", "risk_tier", "model_version", "mode"])
        for uid, s, t in zip(snapshot.nodes[NodeType.USER], result.account_scores, result.account_tiers, strict=True):
            w.writerow([uid, f"{float(s):.6f}", t.value, result.model_version, result.mode])
    with txn_out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["txn_id", "user_id", "risk_score", "risk_tier", "model_version"])
        users = snapshot.nodes[NodeType.USER]
        t = snapshot.transactions
        for tid, u, s, tier in zip(t.txn_id, t.user, result.txn_scores, result.txn_tiers, strict=True):
            w.writerow([tid, users[u], f"{float(s):.6f}", tier.value, result.model_version])
    return out, txn_out


# -- the demo ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoOutcome:
    dataset: GeneratedDataset
    ingest: LoadSummary
    labels: LabelLoadSummary
    train: TrainOutcome
    score: ScoreOutcome
    truth: TruthReport
    report_path: Path
    seconds: float


def run_demo(
    settings: Settings,
    *,
    users: int = 5000,
    seed: int = 7,
    train_config: TrainConfig | None = None,
    candidates: Sequence[str] | None = None,
    progress: bool = False,
    log: Log = _quiet,
) -> DemoOutcome:
    """generate → ingest → label → train → score → rings → report, on the configured store.
    ``candidates``: as for ``step_train``."""
    from gnn.training.train import TrainConfig

    started = time.perf_counter()
    log(f"ringwatch demo: home {settings.home}, store {'neo4j ' + settings.neo4j_uri if settings.neo4j_uri else 'sqlite (embedded)'}")
    log(f"[1/5] generating {users} users (seed {seed})")
    dataset = step_generate(settings, users, seed, progress=progress)
    log(f"      {dataset.n_events} events, {dataset.n_fraud_users} fraud users in {dataset.rings} planted rings")
    log("[2/5] ingesting events and labels")
    with store_for(settings) as store:
        held = store.stats().nodes.get(NodeType.USER.value, 0)
    if held:
        # Not an error: re-running the same demo is a no-op load. Other data would mix in.
        log(
            f"      note: the store already holds {held:,} accounts: the demo's events are added to them, and"
            " any whose txn_id is already stored is skipped as a duplicate (use a fresh --home for a clean run)"
        )
    ingest = step_ingest(settings, [dataset.events], progress=progress)
    log("      " + ingest.render().replace("\n", "\n      "))
    labels = step_label(settings, dataset.labels, progress=progress)
    log(f"      labels: read {labels.read}, loaded {labels.loaded}, quarantined {labels.quarantined}")
    log("[3/5] training GraphSAGE and the tree candidates, selecting on validation AUPRC")
    trained = step_train(settings, train_config or TrainConfig(seed=seed), progress=progress, candidates=candidates)
    a = trained.artefact
    log(f"      model {a.version} ({a.mode}, scorer {a.shipped}) on {a.device_trained_on}")
    log(f"      {'promoted' if trained.promoted else 'NOT promoted'}: {trained.promotion.reason}")
    log("[4/5] scoring accounts and transactions, detecting rings")
    scored = step_score(settings, out=settings.reports_dir / "scores.csv")
    log("[5/5] comparing with planted truth")
    truth_users, truth_txns = load_truth(settings.data_dir)
    truth = compare_with_truth(
        scored.snapshot, scored.result.account_scores, scored.result.txn_scores, scored.rings, truth_users, truth_txns
    )
    seconds = time.perf_counter() - started
    text = render_report(settings, dataset, ingest, trained, scored, truth, seconds)
    report_path = settings.reports_dir / "demo-report.txt"
    report_path.write_text(text)
    log(text)
    return DemoOutcome(dataset, ingest, labels, trained, scored, truth, report_path, seconds)


def render_report(
    settings: Settings,
    dataset: GeneratedDataset,
    ingest: LoadSummary,
    trained: TrainOutcome,
    scored: ScoreOutcome,
    truth: TruthReport,
    seconds: float,
    top: int = 5,
) -> str:
    a = trained.artefact
    m = a.metrics
    lines = ["", "=" * 78, "ringwatch demo report", "=" * 78]
    lines.append(
        f"data: {dataset.n_users} users, {dataset.n_events} events, training seed {m.seed}; "
        f"ingested {ingest.loaded} at {ingest.events_per_second:,.0f} events/s"
    )
    lines.append(
        f"model: {a.version}  mode {a.mode}  scorer {a.shipped}  trained on {a.device_trained_on}  "
        f"epochs {m.epochs_run}  train {m.seconds:.1f} s"
    )
    lines.extend(render_selection(a))
    lines.append("held-out (later-in-time) split, against revealed labels:")
    for name, sm in (("accounts", m.accounts_test), ("transactions", m.transactions_test)):
        if sm is None:
            lines.append(f"  {name:<13} n/a (too few labels)")
        else:
            lines.append(f"  {name:<13} {sm.describe()}")
    th = a.account_thresholds
    tiers = [t.value for t in scored.result.account_tiers]
    lines.append(
        f"tiers (accounts): medium >= {th.medium:.3f}, high >= {th.high:.3f}: "
        f"high {tiers.count('high')}, medium {tiers.count('medium')}, low {tiers.count('low')}"
    )
    lines.append(truth.render())
    lines.append(f"top {min(top, len(scored.rings))} of {len(scored.rings)} rings:")
    for ring in scored.rings[:top]:
        shown = ", ".join(ring.members[:8]) + (f", … (+{ring.size - 8})" if ring.size > 8 else "")
        lines.append(f"  {ring.ring_id}  {ring.tier.value:<6} score {ring.score:.3f}  size {ring.size}")
        lines.append(f"    members: {shown}")
        shared = [f"devices {', '.join(ring.shared_devices[:5])}" if ring.shared_devices else "",
                  f"IPs {', '.join(ring.shared_ips[:5])}" if ring.shared_ips else "",
                  f"merchants {', '.join(ring.shared_merchants[:5])}" if ring.shared_merchants else ""]
        lines.append("    shared: " + ("; ".join(s for s in shared if s) or "none"))
    lines.append("artefacts:")
    lines.append(f"  store        {settings.store_path if not settings.neo4j_uri else settings.neo4j_uri}")
    lines.append(f"  model        {trained.path}")
    lines.append(f"  scores       {', '.join(str(p) for p in scored.exported)}")
    lines.append(f"  quarantine   {settings.quarantine_dir}")
    lines.append(f"  report       {settings.reports_dir / 'demo-report.txt'}")
    lines.append(f"total time {seconds:.1f} s")
    return "\n".join(lines)


def render_selection(artefact: ModelArtefact) -> list[str]:
    """The selection and promotion of ``artefact`` as report lines (none if not recorded)."""
    lines: list[str] = []
    sel = artefact.selection
    if sel is not None:
        basis = "pooled out-of-fold AUPRC" if "out-of-fold" in sel.rule else "validation AUPRC"
        lines.append(f"candidates ({basis}, accounts / transactions):")
        for c in sel.candidates:
            mark = "  <- shipped" if c.name == sel.winner else ""
            lines.append(
                f"  {c.name:<17} {c.accounts_val_auprc:.3f} / {c.transactions_val_auprc:.3f}  sum {c.total:.3f}{mark}"
            )
        lines.append(f"  rule: {sel.rule}")
        if sel.warning:
            lines.append(f"  WARNING: {sel.warning}")
    if artefact.promotion is not None:
        p = artefact.promotion
        lines.append(f"{'promoted' if p.promoted else 'NOT promoted (kept back)'}: {p.reason}")
    return lines


# -- evaluation -------------------------------------------------------------------------------


def step_evaluate(
    settings: Settings,
    *,
    out: Path | None = None,
    seed: int = 7,
    config: TrainConfig | None = None,
) -> EvaluationReport:
    """Every baseline on the stored graph, one report in ``out`` (default HOME/reports/evaluation).

    The planted truth is added when HOME/data holds the synthetic truth files (``ringwatch demo``
    or ``generate`` wrote them); otherwise the report has the label-based sections only.
    """
    from gnn.evaluation.evaluate import evaluate
    from gnn.training.train import TrainConfig

    with store_for(settings) as store:
        snapshot = store.snapshot()
    truth = None
    if (settings.data_dir / "truth_users.csv").is_file() and (settings.data_dir / "truth_transactions.csv").is_file():
        truth_users, truth_txns = load_truth(settings.data_dir)
        truth = PlantedTruth.from_frames(snapshot, truth_users, truth_txns)
    return evaluate(
        snapshot,
        config or TrainConfig(seed=seed),
        out or settings.reports_dir / "evaluation",
        truth,
    )
