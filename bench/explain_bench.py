"""Benchmark: reasons per score (``gnn.serving.explain``) and inductive scoring (``gnn.serving.inductive``).

On the demo-sized synthetic graph (``synthetic.generator``, 5,000 users by default), loaded into
the embedded store as the demo does: trains a model (or loads ``--models DIR``), scores the
snapshot, builds an ``Explainer`` and an ``InductiveScorer`` once, then times one call at a time:

* account and transaction explanations (API target: <= 2 ms per score);
* ``score_account`` (a known account from the scorer's cached layers; also prints the largest
  difference to batch scoring over the timed accounts);
* ``score_event`` for unseen checkout events: a new user on a planted ring device, a new user on
  a fresh device, an event of a known user; merchants drawn like real traffic (popular merchants
  often), so busy merchants are in the sample;
* ``score_event`` then ``add_events`` for each new event: what the API does per checkout.

Prints mean, p50, p99 wall milliseconds per call and CPU milliseconds per call (the machine may be
shared: the load average is printed too), the surrogates' fidelity (R² vs the model's logit,
in-sample and held-out) and the build times. Torch runs single-threaded (``--threads``), as a
request handler would.

    python bench/explain_bench.py [--users 5000] [--seed 7] [--calls 2000] [--models DIR] [--home DIR]
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from gnn.artefact.model_artefact import ModelArtefact
from gnn.core.features import build_features
from gnn.serving.explain import Explainer, SurrogateConfig
from gnn.serving.inductive import InductiveScorer
from gnn.serving.scoring import score_snapshot
from gnn.training.train import TrainConfig, train
from graph.types import Event, EventKind, NodeType, Snapshot
from ringwatch.pipeline import step_generate, step_ingest, step_label, store_for
from ringwatch.settings import Settings


def _timed(fn: Callable[[object], object], args: Sequence[object]) -> tuple[np.ndarray, float]:
    """Wall milliseconds per call, and CPU milliseconds per call over all of them."""
    walls = np.empty(len(args))
    cpu0 = time.process_time()
    for i, a in enumerate(args):
        t0 = time.perf_counter()
        fn(a)
        walls[i] = (time.perf_counter() - t0) * 1000.0
    return walls, (time.process_time() - cpu0) * 1000.0 / max(len(args), 1)


def _line(name: str, walls: np.ndarray, cpu_ms: float) -> str:
    return (
        f"  {name:<34} n={walls.size:<5} mean {walls.mean():7.3f} ms  p50 {np.percentile(walls, 50):7.3f} ms"
        f"  p99 {np.percentile(walls, 99):7.3f} ms  cpu {cpu_ms:7.3f} ms/call"
    )


def _load(home: Path, users: int, seed: int) -> tuple[Snapshot, Path]:
    settings = Settings(home=home)
    if not settings.store_path.exists():
        ds = step_generate(settings, users, seed)
        step_ingest(settings, [ds.events])
        step_label(settings, ds.labels)
    with store_for(settings) as store:
        return store.snapshot(), settings.data_dir


def _ring_devices(data_dir: Path) -> list[str]:
    with open(data_dir / "truth_identifiers.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    return sorted(r[1] for r in rows if r[2] in ("farm_device", "emulator_device", "mule_device"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--calls", type=int, default=2000, help="timed calls per explanation kind")
    ap.add_argument("--events", type=int, default=300, help="timed calls per inductive kind")
    ap.add_argument("--epochs", type=int, default=60, help="training epochs when no --models is given")
    ap.add_argument("--models", type=Path, default=None, help="load the artefact from here instead of training")
    ap.add_argument("--home", type=Path, default=None, help="ringwatch home to reuse (default: a temp dir)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    home = args.home or Path(tempfile.mkdtemp(prefix="explain-bench-"))
    print(f"load average at start: {' '.join(f'{v:.1f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")

    t0 = time.perf_counter()
    snap, data_dir = _load(home, args.users, args.seed)
    n_users, n_txn = snap.num_nodes(NodeType.USER), len(snap.transactions)
    print(f"graph: {n_users} users, {n_txn} transactions, seed {args.seed} ({time.perf_counter() - t0:.1f} s to load)")
    if args.models is not None:
        artefact = ModelArtefact.load(args.models)
        print(f"model: {artefact.version} loaded from {args.models}")
    else:
        t0 = time.perf_counter()
        artefact = train(snap, TrainConfig(device="cpu", epochs=args.epochs, seed=args.seed))
        artefact.save(home / "models")
        print(f"model: {artefact.version} trained in {time.perf_counter() - t0:.1f} s")

    features = build_features(snap)
    t0 = time.perf_counter()
    scores = score_snapshot(artefact, snap, device="cpu")
    print(f"batch scoring: {time.perf_counter() - t0:.2f} s")

    # -- explanations ----------------------------------------------------------------------
    t0 = time.perf_counter()
    explainer = Explainer.build(artefact, snap, scores=scores, features=features, config=SurrogateConfig(seed=args.seed))
    build_s = time.perf_counter() - t0
    hold_a, hold_t = explainer.holdout_fidelity()
    print(f"\nExplainer.build: {build_s:.2f} s (surrogates fitted, every account's and transaction's reasons prepared)")
    print("surrogate fidelity, R² vs the model's logit:")
    print(f"  accounts      in-sample {explainer.fidelity_accounts:.3f}  held-out (20 %) {hold_a:.3f}")
    print(f"  transactions  in-sample {explainer.fidelity_transactions:.3f}  held-out (20 %) {hold_t:.3f}")
    rng = np.random.default_rng(args.seed)
    users = snap.nodes[NodeType.USER]
    txn_ids = snap.transactions.txn_id
    acc_sample = users[rng.integers(0, n_users, args.calls)].tolist()
    txn_sample = txn_ids[rng.integers(0, n_txn, args.calls)].tolist()
    explainer.account(acc_sample[0])  # warm
    print("per explanation (one call at a time):")
    print(_line("account explanation", *_timed(explainer.account, acc_sample)))
    print(_line("transaction explanation", *_timed(explainer.transaction, txn_sample)))
    worst = int(np.argmax(scores.account_scores))
    print(f"  e.g. {users[worst]} ({scores.account_scores[worst]:.2f}):")
    for r in explainer.account(str(users[worst])).reasons:
        print(f"    - {r.text}  [{r.kind.value}, {r.contribution:+.2f}]")

    # -- inductive scoring ----------------------------------------------------------------
    t0 = time.perf_counter()
    scorer = InductiveScorer.build(artefact, snap, features=features)
    gc.freeze()  # as the API does after loading its view: no full collections over it mid-call
    print(f"\nInductiveScorer.build: {time.perf_counter() - t0:.2f} s  ({scorer.layers} layers)")
    pos = rng.integers(0, n_users, args.events)
    acc_ids = users[pos].tolist()
    scorer.score_account(acc_ids[0])
    walls, cpu = _timed(scorer.score_account, acc_ids)
    print(_line("score_account (known)", walls, cpu))
    diff = max(abs(scorer.score_account(u).score - float(scores.account_scores[p])) for u, p in zip(acc_ids[:200], pos[:200]))
    print(f"  max |inductive - batch| over 200 accounts: {diff:.2e}")

    t = snap.transactions
    money = t.merchant >= 0
    merchants = snap.nodes[NodeType.MERCHANT][t.merchant[money][rng.integers(0, int(money.sum()), args.events)]].tolist()
    ring_devs = _ring_devices(data_dir) or [str(snap.nodes[NodeType.DEVICE][0])]
    when = float(t.ts.max()) + 60.0
    amounts = np.round(np.exp(rng.normal(3.6, 0.8, args.events)), 2)

    def events(kind: str) -> list[Event]:
        out = []
        for i in range(args.events):
            if kind == "ring":
                user, device = f"new-user-{i}", ring_devs[i % len(ring_devs)]
            elif kind == "fresh":
                user, device = f"new-user-{i}", f"new-device-{i}"
            else:
                user = acc_ids[i]
                device = None
            out.append(Event(txn_id=f"bench-{kind}-{i}", ts=when, user_id=user, device_id=device, ip=f"198.51.100.{i % 250}",
                             merchant_id=merchants[i], amount=float(amounts[i]), event=EventKind.PAYMENT, status="approved"))  # fmt: skip
        return out

    results = {}
    for kind, title in (("ring", "score_event: new user, ring device"), ("fresh", "score_event: new user, new device"),
                        ("known", "score_event: known user")):  # fmt: skip
        evs = events(kind)
        scorer.score_event(evs[0])
        walls, cpu = _timed(scorer.score_event, evs)
        print(_line(title, walls, cpu))
        results[kind] = [scorer.score_event(e) for e in evs[:100]]
    ring_scores = np.array([r.account_score for r in results["ring"]])
    fresh_scores = np.array([r.account_score for r in results["fresh"]])
    print(f"  new user on a ring device: median account score {np.median(ring_scores):.3f} "
          f"(MEDIUM threshold {artefact.account_thresholds.medium:.3f}, {np.mean(ring_scores >= artefact.account_thresholds.medium):.0%} at or above);"
          f" on a new device: median {np.median(fresh_scores):.3f}")  # fmt: skip
    # What the API does per checkout: score the event, then fold it into the graph.
    evs = events("fresh")
    folded = InductiveScorer.build(artefact, snap, features=features)

    def score_and_add(e: Event) -> None:
        folded.score_event(e)
        folded.add_events([e])

    walls, cpu = _timed(score_and_add, evs)
    print(_line("score_event + add_events", walls, cpu))
    print(f"load average at end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
