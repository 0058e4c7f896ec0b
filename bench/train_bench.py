"""Benchmark: `ringwatch train` on a hub-shaped graph against the demo, per event, in one run.

Two datasets, each ingested once into its own SQLite home:

* ``demo``: the default generator (``synthetic.generator``, 5,000 users, about 95k events);
* ``hub``: ``synthetic.hub_shaped`` (30,000 users, one signup and one purchase each, three
  merchants that carry every payment, 70 % of users labelled).

Each repeat trains both (``pipeline.step_train``: snapshot, features, GraphSAGE, every tree
candidate, selection, promotion check, save), demo then hub, in this process, with the models
folder emptied first so that every run does the same work. It prints per run the seconds, the
milliseconds per event and where the time went, then the median ratio hub / demo per event
(target: at most 1.5), and the review queue the shipped model's account tiers give.

``--hog N`` runs N busy-looping processes for the whole benchmark (a machine shared with other
work); the timings then show how much training slows when it loses the CPU.

    python bench/train_bench.py [--repeat 3] [--hog 0] [--hub-users 30000] [--demo-users 5000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from gnn.core.timing import describe_stages  # noqa: E402
from gnn.training.train import TrainConfig  # noqa: E402
from ringwatch import pipeline  # noqa: E402
from ringwatch.settings import Settings  # noqa: E402
from synthetic.generator import SyntheticConfig, generate  # noqa: E402
from synthetic.hub_shaped import HubConfig, generate_hub  # noqa: E402

HUB_TARGET = 1.5  # hub / demo training time per event


def _home(root: Path, name: str, events: Path, labels: Path) -> tuple[Settings, int]:
    settings = Settings.load(root / name)
    settings.ensure_dirs()
    loaded = pipeline.step_ingest(settings, [events]).loaded
    pipeline.step_label(settings, labels)
    return settings, loaded


def _hogs(n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hog", type=int, default=0, metavar="N", help="busy-looping processes beside training")
    ap.add_argument("--hub-users", type=int, default=30_000)
    ap.add_argument("--demo-users", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if args.repeat < 1 or args.hog < 0:
        ap.error("--repeat must be >= 1 and --hog >= 0")

    root = Path(tempfile.mkdtemp(prefix="ringwatch-train-bench-"))
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; hog processes {args.hog}")
        demo = generate(SyntheticConfig(users=args.demo_users, seed=args.seed), root / "demo-data")
        hub = generate_hub(HubConfig(users=args.hub_users, seed=args.seed), root / "hub-data")
        homes = {
            "demo": _home(root, "demo", demo.events, demo.labels),
            "hub": _home(root, "hub", hub.events, hub.labels),
        }
        for name, (_, events) in homes.items():
            print(f"{name}: {events:,} events")
        hogs = _hogs(args.hog)
        per_event: dict[str, list[float]] = {name: [] for name in homes}
        outcomes: dict[str, pipeline.TrainOutcome] = {}
        for r in range(args.repeat):
            for name, (settings, events) in homes.items():
                shutil.rmtree(settings.models_dir, ignore_errors=True)
                started, cpu = time.perf_counter(), time.process_time()
                out = pipeline.step_train(settings, TrainConfig(seed=args.seed))
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
                per_event[name].append(1000.0 * seconds / events)
                outcomes[name] = out
                print(
                    f"run {r + 1} {name:<4} {seconds:6.1f} s  {per_event[name][-1]:.3f} ms/event  "
                    f"CPU {cpu:.1f} s  load {os.getloadavg()[0]:.1f}  shipped {out.artefact.shipped}"
                )
                print(f"    {describe_stages(out.stages)}")
        ratios = [h / d for h, d in zip(per_event["hub"], per_event["demo"], strict=True)]
        print(
            f"hub / demo per event: median {statistics.median(ratios):.2f} "
            f"(runs {', '.join(f'{x:.2f}' for x in ratios)}), target <= {HUB_TARGET}"
        )
        for name, out in outcomes.items():
            queue = out.artefact.metrics.account_queue
            if queue is not None:
                print(f"review queue {name}: {queue.describe()}")
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
