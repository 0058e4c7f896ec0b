"""Benchmark: events/s into the embedded SQLite store (DESIGN §7 target: >= 200,000 events/s).

Builds synthetic ``Event`` objects with numpy-generated ids (not timed), then times
``upsert_events`` in batches of 50,000 into a fresh store file, as ingestion calls it. Also
prints a second (all-duplicate) pass, a ``snapshot()`` of the result and the first
``neighbourhood()`` (which rebuilds the adjacency indexes the bulk load dropped). CPU seconds
are printed next to wall time because the machine may be shared.

    python bench/store_bench.py [--events 200000] [--batch 50000] [--path DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from graph.sqlite_store import SQLiteGraphStore
from graph.types import Event, EventKind, NodeType


def make_events(n: int, seed: int = 7) -> list[Event]:
    """``n`` events over n/10 users, n/12 devices, n/12 IPs and n/100 merchants, in time order;
    ~5% signups/logins without a merchant, ~3% without a device."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, max(1, n // 10), n)
    devices = rng.integers(0, max(1, n // 12), n)
    ips = rng.integers(0, max(1, n // 12), n)
    merchants = rng.integers(0, max(1, n // 100), n)
    amounts = np.round(rng.lognormal(3.0, 1.0, n), 2)
    ts = 1.7e9 + np.sort(rng.uniform(0, 30 * 86400, n))
    kind = rng.random(n)
    no_device = rng.random(n) < 0.03
    events = []
    for i in range(n):
        payment = kind[i] >= 0.05
        events.append(
            Event(
                txn_id=f"t{i:09d}",
                ts=float(ts[i]),
                user_id=f"u{users[i]:07d}",
                device_id=None if no_device[i] else f"d{devices[i]:07d}",
                ip=f"10.{ips[i] >> 16 & 255}.{ips[i] >> 8 & 255}.{ips[i] & 255}",
                merchant_id=f"m{merchants[i]:05d}" if payment else None,
                amount=float(amounts[i]) if payment else None,
                currency="EUR" if payment else None,
                event=EventKind.PAYMENT if payment else EventKind.LOGIN,
                status="approved",
            )
        )
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--path", type=Path, default=None, help="folder for the store file (default: a temp dir)")
    args = parser.parse_args()

    events = make_events(args.events)
    with tempfile.TemporaryDirectory(dir=args.path) as tmp:
        store = SQLiteGraphStore(Path(tmp) / "bench.sqlite")
        try:
            for label in ("first load", "re-load (all duplicates)"):
                wall, cpu = time.perf_counter(), time.process_time()
                inserted = duplicates = 0
                for i in range(0, len(events), args.batch):
                    result = store.upsert_events(events[i : i + args.batch])
                    inserted += result.inserted
                    duplicates += result.duplicates
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                print(
                    f"upsert {label}: {len(events):,} events in {wall:.2f} s = {len(events) / wall:,.0f} events/s"
                    f" (CPU {cpu:.2f} s = {len(events) / cpu:,.0f} events per CPU-second;"
                    f" inserted {inserted:,}, duplicates {duplicates:,})"
                )
            wall, cpu = time.perf_counter(), time.process_time()
            snap = store.snapshot()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(
                f"snapshot: {len(snap.transactions):,} transactions, {snap.num_nodes(NodeType.USER):,} users"
                f" in {wall:.2f} s (CPU {cpu:.2f} s)"
            )
            wall = time.perf_counter()
            store.neighbourhood(NodeType.USER, str(snap.nodes[NodeType.USER][0]), hops=2)
            print(f"first neighbourhood (rebuilds the adjacency indexes): {time.perf_counter() - wall:.2f} s")
        finally:
            store.close()


if __name__ == "__main__":
    main()
