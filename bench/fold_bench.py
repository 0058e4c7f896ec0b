"""Benchmark: what folding other replicas' checkout events costs one replica, in process.

Loads a home's serving view (``--home``, else ``ringwatch demo`` in a temp dir) and feeds it
``--events`` unseen checkout events drawn like ``bench/api_bench.py``'s (a third each: a new
account on a known device, a new account on a new device, a known account on its own device),
from ``--replicas`` simulated replicas: this one scores every ``replicas``-th event (score_event,
then add_events) and receives the others as another replica's journal lines (decoded, then
``defer_events``, or with ``--eager`` ``add_events``). Prints the thread CPU µs per event of each
step, how many received events a request here touched (folded late), and what 10,000 checkouts/s
would cost each replica.

    python bench/fold_bench.py [--home DIR] [--events 6000] [--replicas 2,8] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.journal import _decode, _encode  # noqa: E402  # the journal's own line format
from api.reload import load_serving_model  # noqa: E402
from graph.types import Event, NodeType  # noqa: E402
from ringwatch.pipeline import store_for  # noqa: E402
from ringwatch.settings import Settings  # noqa: E402

FLEET_RATE = 10_000.0  # checkouts/s across the fleet


def _events(snapshot, n: int, rng: random.Random) -> list[Event]:  # type: ignore[no-untyped-def]
    t = snapshot.transactions
    users, devices = snapshot.nodes[NodeType.USER], snapshot.nodes[NodeType.DEVICE]
    ips, merchants = snapshot.nodes[NodeType.IP], snapshot.nodes[NodeType.MERCHANT]
    rows = [i for i in range(len(t)) if t.user[i] >= 0 and t.device[i] >= 0]
    now = float(t.ts.max()) + 60.0
    out = []
    for i in range(n):
        ip = f"10.{rng.randrange(200, 256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        if i % 3 == 0:
            user, device = f"fb-u{i}", str(devices[rng.randrange(len(devices))])
        elif i % 3 == 1:
            user, device = f"fb-u{i}", f"fb-d{i}"
        else:
            r = rows[rng.randrange(len(rows))]
            user, device = str(users[t.user[r]]), str(devices[t.device[r]])
            ip = str(ips[t.ip[r]]) if t.ip[r] >= 0 else None
        m = t.merchant[rows[rng.randrange(len(rows))]]
        out.append(Event(txn_id=f"fb-t{i}", ts=now + i * 0.01, user_id=user, device_id=device, ip=ip,
                         merchant_id=str(merchants[m]) if m >= 0 else "fb-m", amount=round(rng.lognormvariate(3.5, 1.0), 2),
                         currency="USD"))  # fmt: skip
    return out


def run(home: Path, n: int, replicas: int, eager: bool, seed: int) -> dict[str, float]:
    with store_for(Settings.load(str(home))) as store:
        model = load_serving_model(store, Settings.load(str(home)).models_dir)
    scorer = model.scorer
    assert scorer is not None, "no inductive scorer in this home"
    events = _events(_snapshot(home), n, random.Random(seed))
    ns = {"score": 0, "fold_own": 0, "decode": 0, "receive": 0}
    mine = theirs = 0
    late0, late_ns0 = scorer.late_folds, scorer.late_fold_ns
    for i, e in enumerate(events):
        if i % replicas == 0:
            t0 = time.thread_time_ns()
            scorer.score_event(e)
            t1 = time.thread_time_ns()
            scorer.add_events([e])
            ns["score"] += t1 - t0
            ns["fold_own"] += time.thread_time_ns() - t1
            mine += 1
        else:
            line = _encode(e)
            t0 = time.thread_time_ns()
            got = _decode(line)
            t1 = time.thread_time_ns()
            if eager:
                scorer.add_events([got])
            else:
                scorer.defer_events([got])
            ns["decode"] += t1 - t0
            ns["receive"] += time.thread_time_ns() - t1
            theirs += 1
    late, late_ns = scorer.late_folds - late0, scorer.late_fold_ns - late_ns0
    return {
        "mine": mine, "theirs": theirs, "late": late,
        "score_us": (ns["score"] - late_ns) / mine / 1e3, "late_us_per_mine": late_ns / mine / 1e3,
        "fold_own_us": ns["fold_own"] / mine / 1e3, "decode_us": ns["decode"] / theirs / 1e3,
        "receive_us": ns["receive"] / theirs / 1e3, "late_us_each": late_ns / late / 1e3 if late else 0.0,
    }  # fmt: skip


def _snapshot(home: Path):  # type: ignore[no-untyped-def]
    with store_for(Settings.load(str(home))) as store:
        return store.snapshot()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", type=Path)
    p.add_argument("--events", type=int, default=6000)
    p.add_argument("--replicas", default="2,8")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    home = args.home
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="rw-foldbench-")) / "home"
        subprocess.run([str(Path(sys.executable).parent / "ringwatch"), "--home", str(home), "--no-progress", "demo"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    print(f"fold benchmark: {home}, {args.events} events, load average {os.getloadavg()[0]:.2f}")
    print(f"  {'K':>3} {'fold':<6}{'score µs':>9}{'own fold':>9}{'decode':>8}{'receive':>8}{'late %':>8}"
          f"{'late µs':>9}   per replica at {FLEET_RATE:,.0f}/s: cores for scoring, for others' events")  # fmt: skip
    for k in [int(x) for x in args.replicas.split(",")]:
        for eager in (True, False):
            r = run(home, args.events, k, eager, args.seed)
            own_rate, other_rate = FLEET_RATE / k, FLEET_RATE * (k - 1) / k
            scoring = own_rate * (r["score_us"] + r["fold_own_us"]) / 1e6
            others = other_rate * (r["decode_us"] + r["receive_us"]) / 1e6 + own_rate * r["late_us_per_mine"] / 1e6
            print(f"  {k:>3} {'eager' if eager else 'defer':<6}{r['score_us']:9.0f}{r['fold_own_us']:9.0f}"
                  f"{r['decode_us']:8.0f}{r['receive_us']:8.0f}{r['late'] / max(r['theirs'], 1):8.1%}"
                  f"{r['late_us_each']:9.0f}   {scoring:5.2f} + {others:5.2f} cores")  # fmt: skip
    print(f"  load average after {os.getloadavg()[0]:.2f}")
    print(json.dumps({"note": "µs are thread CPU per event; late = received events a request here folded in"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
