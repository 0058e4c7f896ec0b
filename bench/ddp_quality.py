"""Benchmark: held-out quality of data-parallel training against one process, with intervals.

On one synthetic graph (``synthetic.generator``, read as ``bench/scale_bench.py`` reads it) it
trains GraphSAGE mini-batch with ``gnn.training.train.train`` once per entry of ``--nproc``
(same seed, same batch size, same early stopping) and prints, per run, the test AUPRC of
accounts and transactions with its 95 % bootstrap interval and the number of frauds behind it
(``gnn.core.metrics.split_metrics``), and, against the first entry, the paired AUPRC difference
and its 95 % interval (``paired_auprc_difference``: the same resamples score both models, so
this interval, not two overlapping ones, says whether they differ). An entry ``N@S`` trains N
ranks with training seed S instead (the graph stays the same): ``1,2,1@8`` also shows how far
another seed moves one process, the noise that 2 ranks are measured against.

    python bench/ddp_quality.py [--txns 200000] [--nproc 1,2] [--batch-size 16384]
                                [--epochs 40] [--patience 6] [--seed 7]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from bench.scale_bench import EVENTS_PER_USER, snapshot_from_csv  # noqa: E402
from gnn.core.metrics import SplitMetrics, paired_auprc_difference, split_metrics  # noqa: E402
from gnn.serving.scoring import score_snapshot  # noqa: E402
from gnn.training.split import targets, txn_split, user_split  # noqa: E402
from gnn.training.train import TrainConfig, train  # noqa: E402
from synthetic.generator import SyntheticConfig, generate  # noqa: E402


@dataclass(frozen=True, slots=True)
class Run:
    """One training run's test scores and metrics."""

    nproc: int
    seed: int
    epochs_run: int
    wall_s: float
    cpu_s: float
    account_scores: np.ndarray
    txn_scores: np.ndarray
    accounts: SplitMetrics | None
    transactions: SplitMetrics | None


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in psutil.getloadavg())


def _cell(m: SplitMetrics | None) -> str:
    if m is None:
        return "no fraud"
    return f"{m.auprc:.3f} [{m.auprc_ci.low:.3f}, {m.auprc_ci.high:.3f}] ({m.n_fraud:,} of {m.n:,})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--txns", type=int, default=200_000)
    p.add_argument("--nproc", default="1,2", help="comma-separated rank counts, N or N@SEED; the first is the baseline")
    p.add_argument("--batch-size", type=int, default=16_384)
    p.add_argument("--fanout", default="15,10")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--patience", type=int, default=6)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="ddp-quality-") as tmp:
        t0 = time.perf_counter()
        ds = generate(SyntheticConfig(users=max(100, round(args.txns / EVENTS_PER_USER)), seed=args.seed), Path(tmp))
        snap = snapshot_from_csv(ds.events, ds.labels)
        print(f"graph: {len(snap.transactions):,} transactions, generated in {time.perf_counter() - t0:.1f} s (load {_load()})", flush=True)
    base = TrainConfig()
    y = targets(snap)
    users = user_split(snap, base.val_fraction, base.test_fraction)
    txns = txn_split(snap, base.val_fraction, base.test_fraction)
    runs: list[Run] = []
    for entry in args.nproc.split(","):
        n, _, seed_text = entry.partition("@")
        n, seed = int(n), int(seed_text or args.seed)
        cfg = TrainConfig(
            seed=seed, epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
            fanout=tuple(int(k) for k in args.fanout.split(",")), nproc=n,
        )  # fmt: skip
        load_before = _load()
        w0, c0 = time.perf_counter(), time.process_time()
        ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        art = train(snap, cfg)
        ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter() - w0
        cpu = time.process_time() - c0 + (ch1.ru_utime - ch0.ru_utime) + (ch1.ru_stime - ch0.ru_stime)
        scored = score_snapshot(art, snap)
        a, t = scored.account_scores[users.test], scored.txn_scores[txns.test]
        runs.append(Run(n, seed, art.metrics.epochs_run, wall, cpu, a, t,
                        split_metrics(a, y.user[users.test]), split_metrics(t, y.txn[txns.test])))  # fmt: skip
        print(f"ranks {n} seed {seed}: {art.metrics.epochs_run} epochs, train {wall:.1f} s wall, {cpu:.1f} s CPU all ranks "
              f"(load {load_before} before, {_load()} after)", flush=True)  # fmt: skip

    print(f"\ntest AUPRC [95 % interval] (frauds of rows); batch {args.batch_size}, epochs <= {args.epochs}, "
          f"patience {args.patience}, graph seed {args.seed}")  # fmt: skip
    print("| ranks | training seed | epochs | accounts | transactions |")
    print("|---|---|---|---|---|")
    for r in runs:
        print(f"| {r.nproc} | {r.seed} | {r.epochs_run} | {_cell(r.accounts)} | {_cell(r.transactions)} |")
    first = runs[0]
    if len(runs) > 1:
        print(f"\npaired AUPRC difference against {first.nproc} rank(s), seed {first.seed} [95 % interval]")
        print("| ranks | training seed | accounts | transactions |")
        print("|---|---|---|---|")
        for r in runs[1:]:
            cells = []
            for mine, theirs, yy in ((r.account_scores, first.account_scores, y.user[users.test]),
                                     (r.txn_scores, first.txn_scores, y.txn[txns.test])):  # fmt: skip
                d, ci = paired_auprc_difference(mine, theirs, yy)
                cells.append(f"{d:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]")
            print(f"| {r.nproc} | {r.seed} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
