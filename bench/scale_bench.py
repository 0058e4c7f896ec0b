"""Benchmark: GraphSAGE training and scoring at 100k, 1M and 5M synthetic transactions
(DESIGN §7: an epoch over 1M transactions in under 10 s on the CPU; target: peak RSS < 8 GB
at 5M).

Per size, in a child process of its own (so each size's peak RSS is its own): the synthetic
generator (``synthetic.generator``) writes its CSVs, which are read straight into a ``Snapshot``
(no store: loading millions of events through a store is what ``ingest_bench`` measures), and
then, not timed with the training:

* full batch: one training epoch (forward, backward, step over the whole graph) timed alone,
  then ``gnn.training.train.train`` end to end (features, early stopping on validation AUPRC with
  validation by full-batch inference each epoch, calibration) with ``--epochs``/``--patience``;
* mini-batch (``TrainConfig.batch_size``, neighbour sampling, ``gnn.training.minibatch``): the same;
* with ``--nproc N`` (N > 1): mini-batch end to end on N data-parallel ranks
  (``gnn.training.distributed``), with the peak RSS of rank 0 and of the biggest other rank;
* scoring: ``gnn.serving.scoring.score_snapshot`` of the whole snapshot with the full-batch model
  (features + inference), as accounts + transactions scored per second;
* quality: held-out (latest-in-time test split) AUPRC for accounts and transactions.

Peak RSS is sampled every 20 ms per phase (``psutil``), and ``ru_maxrss`` is the child's peak
over everything, data generation included. CPU seconds are printed next to wall time because
the machine may be shared. ``--profile`` prints the top torch operators of one full-batch
epoch (``torch.profiler``). ``gnn.core.device.pick_device`` picks CUDA when present.

    python bench/scale_bench.py [--txns 100000,1000000,5000000] [--epochs 30] [--patience 6]
                                [--batch-size 8192] [--fanout 15,10] [--skip-full-above N] [--nproc 1,2]
                                [--profile] [--json PATH] [--from-json A.json,B.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from gnn.core.device import pick_device  # noqa: E402
from gnn.core.features import Normalisation, build_features  # noqa: E402
from gnn.core.model import ModelConfig, RingSAGE, build_graph_input  # noqa: E402
from gnn.evaluation.leakage import snapshot_from_frames  # noqa: E402
from gnn.serving.scoring import score_snapshot  # noqa: E402
from gnn.training.minibatch import MiniBatchEpochs  # noqa: E402
from gnn.training.split import targets, txn_split, user_split  # noqa: E402
from gnn.training.train import TrainConfig, train  # noqa: E402
from graph.types import NodeType, Snapshot  # noqa: E402
from synthetic.generator import SyntheticConfig, generate  # noqa: E402

#: The generator makes about 19 events per account (measured at 5,000 and 50,000 accounts).
EVENTS_PER_USER = 19.0
GB = 1024**3


# -- the snapshot, straight from the generator's files --------------------------------------------


def _seconds(text: pd.Series) -> pd.Series:
    """ISO-8601 text to UTC epoch seconds whatever unit pandas parses into (pandas 3 parses to
    microseconds: ``astype("int64") / 1e9`` would squeeze the timeline 1,000x)."""
    return (pd.to_datetime(text, utc=True, format="ISO8601") - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)


def snapshot_from_csv(events_csv: Path, labels_csv: Path) -> Snapshot:
    """A ``Snapshot`` of the generator's events and labels, built the way the stores build one
    (``gnn.evaluation.leakage.snapshot_from_frames``: vectorised for millions of rows)."""
    key_cols = ("txn_id", "user_id", "device_id", "ip", "merchant_id")
    ev = pd.read_csv(events_csv, dtype={c: str for c in (*key_cols, "currency", "event", "status")}, engine="pyarrow")
    ev["ts"] = _seconds(ev["ts"])
    labels = pd.read_csv(labels_csv, dtype=str)
    labels["ts"] = _seconds(labels["ts"])
    return snapshot_from_frames(ev, labels, taken_at=time.time())


# -- measuring --------------------------------------------------------------------------------


class PeakRSS:
    """Samples this process's RSS every ``interval`` seconds; ``phase()`` gives a phase's peak."""

    def __init__(self, interval: float = 0.02) -> None:
        self._proc = psutil.Process()
        self._cmdline = self._proc.cmdline()
        self._interval = interval
        self._peak = 0
        self._child_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self._proc.memory_info().rss)
            for child in self._proc.children(recursive=True):  # data-parallel ranks
                with contextlib.suppress(psutil.Error):
                    # A child caught between fork and exec still shows this process's pages.
                    if child.cmdline() != self._cmdline:
                        self._child_peak = max(self._child_peak, child.memory_info().rss)
            time.sleep(self._interval)

    @contextmanager
    def phase(self, out: dict[str, float]) -> Iterator[None]:
        """Record ``peak_rss_gb``, ``wall_s`` and ``cpu_s`` of the block into ``out`` (and
        ``peak_rss_gb_other_rank``: the biggest child process's peak, when there was one)."""
        self._peak = self._proc.memory_info().rss
        self._child_peak = 0
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        out["wall_s"] = time.perf_counter() - wall
        out["cpu_s"] = time.process_time() - cpu
        self._peak = max(self._peak, self._proc.memory_info().rss)
        out["peak_rss_gb"] = self._peak / GB
        if self._child_peak:
            out["peak_rss_gb_other_rank"] = self._child_peak / GB

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class SizeResult:
    """Everything measured at one size (see the module docstring)."""

    target_txns: int
    users: int = 0
    txns: int = 0
    nodes: dict[str, int] = field(default_factory=dict)
    edges: int = 0
    device: str = ""
    phases: dict[str, dict[str, float]] = field(default_factory=dict)
    quality: dict[str, dict[str, float]] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    max_rss_gb: float = 0.0
    profile: str = ""


def _graph_and_model(snap: Snapshot, config: TrainConfig, device: torch.device) -> tuple[Any, RingSAGE, dict[str, Any]]:
    """The graph tensors, a fresh model and the training targets, as ``gnn.training.train`` builds them."""
    feats = build_features(snap)
    norm = Normalisation.fit(feats)
    g = build_graph_input(snap, norm.apply(feats)).to(device)
    y = targets(snap)
    users = user_split(snap, config.val_fraction, config.test_fraction)
    txns = txn_split(snap, config.val_fraction, config.test_fraction)
    model = RingSAGE(
        ModelConfig(
            in_dims={b: int(feats.block(b).shape[1]) for b in ("user", "device", "ip", "merchant")},
            txn_dim=int(feats.txn.shape[1]),
            hidden=config.hidden,
            layers=config.layers,
            dropout=config.dropout,
            user_feature_drop=config.user_feature_drop,
        )
    ).to(device)
    n_pos_u, n_pos_t = max(int(y.user[users.train].sum()), 1), max(int(y.txn[txns.train].sum()), 1)
    ctx = {
        "yu": torch.from_numpy(y.user.astype(np.float32)).to(device),
        "yt": torch.from_numpy(y.txn.astype(np.float32)).to(device),
        "tr_u": users.train,
        "tr_t": txns.train,
        "pwu": torch.tensor((users.train.size - n_pos_u) / n_pos_u, device=device),
        "pwt": torch.tensor((txns.train.size - n_pos_t) / n_pos_t, device=device),
    }
    return g, model, ctx


def _full_epoch(model: RingSAGE, opt: torch.optim.Optimizer, g: Any, ctx: dict[str, Any], device: torch.device) -> None:
    """One full-batch training epoch, the body of ``gnn.training.train``'s loop."""
    tr_u = torch.from_numpy(ctx["tr_u"]).to(device)
    tr_t = torch.from_numpy(ctx["tr_t"]).to(device)
    model.train()
    opt.zero_grad(set_to_none=True)
    user_logits, txn_logits, _ = model(g, tr_t)
    loss = F.binary_cross_entropy_with_logits(user_logits[tr_u], ctx["yu"][tr_u], pos_weight=ctx["pwu"])
    loss = loss + F.binary_cross_entropy_with_logits(txn_logits, ctx["yt"][tr_t], pos_weight=ctx["pwt"])
    loss.backward()
    opt.step()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_epochs(run: Callable[[], None], device: torch.device, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``repeats`` calls of ``run`` (after one warm-up call)."""
    run()
    _sync(device)
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        run()
        _sync(device)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return float(np.median(walls)), float(np.median(cpus))


def _quality(metrics: Any) -> dict[str, float]:
    """Held-out AUPRC per split with its 95 % bootstrap interval and the frauds behind it."""
    out: dict[str, float] = {}
    for key, m in (("account_auprc_test", metrics.accounts_test), ("txn_auprc_test", metrics.transactions_test),
                   ("account_auprc_val", metrics.accounts_val), ("txn_auprc_val", metrics.transactions_val)):  # fmt: skip
        out[key] = float(m.auprc) if m is not None else math.nan
        out[key + "_low"] = float(m.auprc_ci.low) if m is not None else math.nan
        out[key + "_high"] = float(m.auprc_ci.high) if m is not None else math.nan
        out[key + "_frauds"] = float(m.n_fraud) if m is not None else 0.0
    return out


def _ap_cell(q: dict[str, float], key: str) -> str:
    """``AUPRC [low, high] (frauds)``; results saved before the intervals were kept show the point only."""
    if key + "_low" not in q or math.isnan(q[key]):
        return _fmt(q[key], ".3f")
    return f"{q[key]:.3f} [{q[key + '_low']:.3f}, {q[key + '_high']:.3f}] ({int(q[key + '_frauds']):,})"


def _record(res: SizeResult, name: str, ph: dict[str, float]) -> None:
    """Keep a phase's numbers and print them at once (stderr), so a run stopped later still
    shows how far it got."""
    res.phases[name] = ph
    shown = ", ".join(f"{k} {v:.2f}" for k, v in ph.items())
    load = "/".join(f"{x:.1f}" for x in psutil.getloadavg())
    print(f"[scale_bench] {res.target_txns:,}: {name}: {shown} (load {load})", file=sys.stderr, flush=True)


def run_size(target_txns: int, args: argparse.Namespace, workdir: Path) -> SizeResult:
    """Measure one size (in the current process)."""
    res = SizeResult(target_txns=target_txns)
    if args.threads:
        torch.set_num_threads(args.threads)
    res.notes.append(
        f"torch threads {torch.get_num_threads()}; load average at start {'/'.join(f'{x:.1f}' for x in psutil.getloadavg())}"
        f" on {psutil.cpu_count()} cores"
    )
    res.notes.append(
        f"settings: epochs <= {args.epochs} (mini {args.mini_epochs or args.epochs}), patience {args.patience}, "
        f"batch {args.batch_size}, fan-out {args.fanout}, timed full epochs {args.repeats}, seed {args.seed}"
    )
    device = pick_device(None)
    res.device = str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})"
    fanout = tuple(int(k) for k in args.fanout.split(","))
    rss = PeakRSS()
    try:
        users = max(100, int(round(target_txns / EVENTS_PER_USER)))
        with rss.phase(ph := {}):
            ds = generate(SyntheticConfig(users=users, seed=args.seed), workdir)
            snap = snapshot_from_csv(ds.events, ds.labels)
        _record(res, "data (generate + snapshot)", ph)
        res.users, res.txns = snap.num_nodes(NodeType.USER), len(snap.transactions)
        res.nodes = {t.value: snap.num_nodes(t) for t in (NodeType.USER, NodeType.DEVICE, NodeType.IP, NodeType.MERCHANT)}
        base = TrainConfig(seed=args.seed, epochs=args.epochs, patience=args.patience)
        full_ok = res.txns <= args.skip_full_above
        modes = (["full"] if full_ok else []) + ["mini"]
        if not full_ok:
            res.notes.append(f"full batch skipped (> {args.skip_full_above:,} transactions, --skip-full-above)")
        artefact = None
        for mode in modes:
            cfg = base if mode == "full" else TrainConfig(
                seed=args.seed,
                epochs=args.mini_epochs or args.epochs,
                patience=args.patience,
                batch_size=args.batch_size,
                fanout=fanout,
            )
            # One epoch timed alone (fresh model, warm-up epoch first).
            with rss.phase(ph := {}):
                torch.manual_seed(args.seed)
                g, model, ctx = _graph_and_model(snap, cfg, device)
                res.edges = sum(int(g.data[r].edge_index.shape[1]) for r in g.data.edge_types)
                opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
                if mode == "full":
                    wall, cpu = _time_epochs(lambda: _full_epoch(model, opt, g, ctx, device), device, args.repeats)
                else:
                    mini = MiniBatchEpochs(
                        g, user_train=ctx["tr_u"], txn_train=ctx["tr_t"], y_user=ctx["yu"], y_txn=ctx["yt"],
                        pos_weight_user=ctx["pwu"], pos_weight_txn=ctx["pwt"], batch_size=cfg.batch_size or 1,
                        fanout=fanout, seed=args.seed, device=device,
                    )  # fmt: skip
                    nb = mini.batches_per_epoch
                    if args.mini_time_batches and args.mini_time_batches < nb:
                        # A few batches timed, the epoch extrapolated (a full pass is long at 5M).
                        k = args.mini_time_batches
                        wall, cpu = _time_epochs(lambda: mini.run_epoch(model, opt, max_batches=k), device, 1)
                        wall, cpu = wall * nb / k, cpu * nb / k
                        ph["extrapolated_from_batches"] = k
                    else:
                        wall, cpu = _time_epochs(lambda: mini.run_epoch(model, opt), device, 1)
                    ph["batches"] = nb
                ph["epoch_wall_s"], ph["epoch_cpu_s"] = wall, cpu
                if args.profile and mode == "full":
                    res.profile = _profile(lambda: _full_epoch(model, opt, g, ctx, device))
                del g, model, opt, ctx
            _record(res, f"{mode}: epoch", ph)
            if mode == "mini" and res.txns > args.skip_mini_train_above:
                res.notes.append(f"mini-batch end-to-end training skipped (> {args.skip_mini_train_above:,} transactions)")
                continue
            # End to end, as `ringwatch train` runs it.
            with rss.phase(ph := {}):
                art = train(snap, cfg)
            ph["per_epoch_s"] = ph["wall_s"] / max(art.metrics.epochs_run, 1)
            _record(res, f"{mode}: train end to end", ph)
            res.epochs[mode] = art.metrics.epochs_run
            res.quality[mode] = _quality(art.metrics)
            if artefact is None:
                artefact = art
        for n in (int(k) for k in args.nproc.split(",") if int(k) > 1):
            # Data parallel, end to end: rank 0 is this process, the other ranks its children.
            cfg = TrainConfig(seed=args.seed, epochs=args.mini_epochs or args.epochs, patience=args.patience,
                              batch_size=args.batch_size, fanout=fanout, nproc=n)  # fmt: skip
            with rss.phase(ph := {}):
                art = train(snap, cfg)
            ph["per_epoch_s"] = ph["wall_s"] / max(art.metrics.epochs_run, 1)
            _record(res, f"mini x{n}: train end to end", ph)
            res.epochs[f"mini x{n}"] = art.metrics.epochs_run
            res.quality[f"mini x{n}"] = _quality(art.metrics)
            if artefact is None:  # no 1-process run end to end: score with this one
                artefact = art
        assert artefact is not None
        with rss.phase(ph := {}):
            score_snapshot(artefact, snap)
        ph["entities_per_s"] = (res.users + res.txns) / ph["wall_s"]
        _record(res, "scoring (features + inference)", ph)
    finally:
        rss.close()
    res.max_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB
    return res


def _profile(run: Callable[[], None]) -> str:
    """The top operators of one epoch by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        run()
    return str(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=40))


# -- printing ---------------------------------------------------------------------------------


def _fmt(x: float, spec: str = ".2f") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def print_report(results: list[SizeResult], args: argparse.Namespace) -> None:
    print(f"\nscale benchmark (seed {args.seed}, epochs <= {args.epochs} full / {args.mini_epochs or args.epochs} mini, patience {args.patience}, "
          f"mini-batch {args.batch_size} seeds, fan-out {args.fanout}; device {results[0].device if results else '?'})")  # fmt: skip
    head = (
        "| txns | users | mode | epoch s (CPU s) | train end-to-end s (epochs) | peak RSS GB train | "
        "AUPRC acc test [95 % CI] (frauds) | AUPRC txn test [95 % CI] (frauds) |"
    )
    print(head)
    print("|---" * 8 + "|")
    for r in results:
        for mode in ("full", "mini"):
            ep = r.phases.get(f"{mode}: epoch")
            e2e = r.phases.get(f"{mode}: train end to end")
            if ep is None:
                print(f"| {r.txns:,} | {r.users:,} | {mode} | not run | | | | |")
                continue
            extra = f", {int(ep['batches'])} batches" if "batches" in ep else ""
            if "extrapolated_from_batches" in ep:
                extra += f", extrapolated from {int(ep['extrapolated_from_batches'])}"
            epoch = f"{_fmt(ep['epoch_wall_s'])} ({_fmt(ep['epoch_cpu_s'])}{extra})"
            if e2e is None:
                print(f"| {r.txns:,} | {r.users:,} | {mode} | {epoch} | not run | {_fmt(ep['peak_rss_gb'])} | — | — |")
                continue
            q = r.quality[mode]
            print(
                f"| {r.txns:,} | {r.users:,} | {mode} | {epoch} | "
                f"{_fmt(e2e['wall_s'], '.1f')} ({r.epochs[mode]}) | {_fmt(max(ep['peak_rss_gb'], e2e['peak_rss_gb']))} | "
                f"{_ap_cell(q, 'account_auprc_test')} | {_ap_cell(q, 'txn_auprc_test')} |"
            )
    ranks = [(r, k) for r in results for k in r.phases if k.startswith("mini x")]
    if ranks:
        print("\n| txns | ranks | train end-to-end s (epochs) | s per epoch incl. validation | CPU s rank 0 | "
              "peak RSS GB rank 0 | peak RSS GB other rank | AUPRC acc test [95 % CI] (frauds) | AUPRC txn test [95 % CI] (frauds) |")  # fmt: skip
        print("|---" * 9 + "|")
        for r, k in ranks:
            ph, mode = r.phases[k], k.split(":")[0]
            q = r.quality[mode]
            print(
                f"| {r.txns:,} | {mode[6:]} | {_fmt(ph['wall_s'], '.1f')} ({r.epochs[mode]}) | {_fmt(ph['per_epoch_s'])} | "
                f"{_fmt(ph['cpu_s'], '.1f')} | {_fmt(ph['peak_rss_gb'])} | {_fmt(ph.get('peak_rss_gb_other_rank', math.nan))} | "
                f"{_ap_cell(q, 'account_auprc_test')} | {_ap_cell(q, 'txn_auprc_test')} |"
            )
    print("\n| txns | nodes (user/device/ip/merchant) | message edges | data s | scoring s | scored/s | "
          "scoring peak RSS GB | max RSS GB (whole run) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        d, s = r.phases["data (generate + snapshot)"], r.phases["scoring (features + inference)"]
        n = "/".join(f"{v:,}" for v in r.nodes.values())
        print(
            f"| {r.txns:,} | {n} | {r.edges:,} | {_fmt(d['wall_s'], '.1f')} | {_fmt(s['wall_s'])} | "
            f"{_fmt(s['entities_per_s'], ',.0f')} | {_fmt(s['peak_rss_gb'])} | {_fmt(r.max_rss_gb)} |"
        )
    for r in results:
        for note in r.notes:
            print(f"note ({r.txns:,} txns): {note}")
        if r.profile:
            print(f"\ntorch.profiler, one full-batch epoch at {r.txns:,} transactions:\n{r.profile}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txns", default="100000,1000000,5000000", help="comma-separated target transaction counts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=30, help="maximum epochs of the end-to-end runs")
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--fanout", default="15,10")
    parser.add_argument("--mini-epochs", type=int, default=0, help="maximum epochs of the mini-batch run (0: --epochs)")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default, one per core)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed full-batch epochs (median)")
    parser.add_argument("--skip-full-above", type=int, default=10**12, help="no full-batch run above this many txns")
    parser.add_argument(
        "--skip-mini-train-above", type=int, default=10**12, help="no mini-batch end-to-end run above this many txns"
    )
    parser.add_argument(
        "--mini-time-batches", type=int, default=0, help="time this many mini-batches and extrapolate the epoch (0: all)"
    )
    parser.add_argument("--nproc", default="1", help="comma-separated rank counts; each > 1 adds a data-parallel mini-batch run")
    parser.add_argument("--profile", action="store_true", help="torch.profiler table of one full-batch epoch")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument(
        "--from-json", default="", help="comma-separated --json files of earlier runs: print their table, run nothing"
    )
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child: one size
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one is not None:  # child process: measure one size, write JSON
        with tempfile.TemporaryDirectory(prefix="ringwatch-scale-") as tmp:
            res = run_size(args.one, args, Path(tmp))
        args.out.write_text(json.dumps(asdict(res)))
        return

    if args.from_json:
        loaded = [SizeResult(**d) for f in args.from_json.split(",") for d in json.loads(Path(f).read_text())]
        print_report(sorted(loaded, key=lambda r: r.txns), args)
        return

    results: list[SizeResult] = []
    for n in (int(float(x)) for x in args.txns.split(",")):
        with tempfile.TemporaryDirectory(prefix="ringwatch-scale-") as tmp:
            out = Path(tmp) / "result.json"
            cmd = [sys.executable, __file__, "--one", str(n), "--out", str(out)]
            flags = ("seed", "epochs", "mini_epochs", "patience", "batch_size", "fanout", "repeats", "skip_full_above", "threads",
                     "skip_mini_train_above", "mini_time_batches", "nproc")
            for flag in flags:
                cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
            if args.profile:
                cmd.append("--profile")
            print(f"[scale_bench] {n:,} transactions ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            subprocess.run(cmd, check=True)
            r = SizeResult(**json.loads(out.read_text()))
            print(f"[scale_bench] {n:,} done in {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
            results.append(r)
        if args.json:  # after each size, so that a long run interrupted later keeps what it measured
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    print_report(results, args)


if __name__ == "__main__":
    main()
