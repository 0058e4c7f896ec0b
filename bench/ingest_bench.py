"""Benchmark: the whole ingestion path into the embedded SQLite store (DESIGN §7: >= 200,000
events/s).

Writes a synthetic events CSV of ``--events`` rows (not timed; in a child process, so its memory
does not count in this process's peak RSS), then times ``ingestion.loader.load_events`` exactly
as ``ringwatch ingest`` runs it: the CSV read, column mapping, validation, in-load dedupe,
quarantine file and store upserts, into a fresh ``SQLiteGraphStore`` file. The file is shaped
like real traffic: ~85% payments, refunds, logins and signups (no merchant or amount), ~3%
without a device, ~5% IPv6 addresses, ~0.5% identical repeats and ~0.2% bad rows (bad IP,
negative amount, bad timestamp, missing user) that go to quarantine.

Printed per pass (a first load, then a re-load of the same file, all duplicates): rows, seconds,
rows/s end to end, the split between the store's upsert calls and everything before them (read,
map, validate, dedupe, quarantine), CPU seconds (the machine may be shared) and peak RSS. A
read-only pass over the CSV shows the reader's own share.

    python bench/ingest_bench.py [--events 1000000] [--batch 50000] [--path DIR] [--profile N]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing
import pstats
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from graph.sqlite_store import SQLiteGraphStore  # noqa: E402
from graph.store import GraphStore  # noqa: E402
from ingestion.loader import LoadSummary, load_events  # noqa: E402
from ingestion.readers import read_chunks  # noqa: E402
from synthetic.generator import EVENT_COLUMNS, write_plain_csv  # noqa: E402

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z


def write_events_csv(path: Path, n: int, seed: int = 7) -> None:
    """``n`` rows of canonical events CSV over n/10 users, n/12 devices, n/12 IPs and n/100
    merchants, in time order, with planted repeats and bad rows (see the module docstring)."""
    rng = np.random.default_rng(seed)
    base = int(n * 0.995)
    users = rng.integers(0, max(1, n // 10), base)
    devices = rng.integers(0, max(1, n // 12), base)
    ips = rng.integers(0, max(1, n // 12), base)
    merchants = rng.integers(0, max(1, n // 100), base)
    kind = rng.choice(np.array(["payment", "refund", "login", "signup"], dtype=object), base, p=[0.85, 0.02, 0.10, 0.03])
    pays = (kind == "payment") | (kind == "refund")
    amount = np.round(rng.lognormal(3.0, 1.0, base), 2)
    ts = (T0 + np.sort(rng.integers(0, 90 * 86_400, base))).astype("datetime64[s]")
    ts_text = np.char.add(np.datetime_as_string(ts, unit="s"), "Z").astype(object)

    def ids(prefix: str, values: np.ndarray, width: int) -> np.ndarray:
        return np.char.add(prefix, np.char.zfill(values.astype(str), width)).astype(object)

    ip4 = np.char.add(
        np.char.add(np.char.add("10.", (ips >> 16 & 255).astype(str)), np.char.add(".", (ips >> 8 & 255).astype(str))),
        np.char.add(".", (ips & 255).astype(str)),
    ).astype(object)
    ip6 = np.char.add(np.char.add("2a02:c7f:", np.char.mod("%x:", ips >> 16)), np.char.mod("%x::1", ips & 0xFFFF)).astype(object)
    columns: dict[str, np.ndarray] = {
        "txn_id": ids("t", np.arange(base), 9),
        "ts": ts_text,
        "user_id": ids("u", users, 7),
        "device_id": np.where(rng.random(base) < 0.03, "", ids("d", devices, 7)),
        "ip": np.where(ips % 20 == 0, ip6, ip4),
        "merchant_id": np.where(pays, ids("m", merchants, 5), ""),
        "amount": np.where(pays, np.char.mod("%.2f", amount).astype(object), ""),
        "currency": np.where(pays, rng.choice(np.array(["USD", "EUR", "GBP"], dtype=object), base), ""),
        "event": kind,
        "status": rng.choice(np.array(["approved", "approved", "approved", "declined"], dtype=object), base),
    }
    # Bad rows: each planted row gets one problem the validator names.
    bad = np.flatnonzero(rng.random(base) < 0.002)
    problem = rng.integers(0, 4, len(bad))
    columns["ip"][bad[problem == 0]] = "999.1.1.1"
    columns["amount"][bad[(problem == 1) & pays[bad]]] = "-5.00"
    columns["ts"][bad[problem == 2]] = "not-a-date"
    columns["user_id"][bad[problem == 3]] = ""
    # Identical repeats, right after the original row (a retried delivery).
    repeats = np.ones(base, dtype=np.int64)
    repeats[rng.choice(base, n - base, replace=False)] = 2
    order = np.repeat(np.arange(base), repeats)
    write_plain_csv(path, EVENT_COLUMNS, [columns[c][order] for c in EVENT_COLUMNS])


class _Timed:
    """Wraps a store's upsert methods on the instance to sum the seconds spent inside them."""

    def __init__(self, store: GraphStore) -> None:
        self.seconds = 0.0
        self.calls = 0
        for name in ("upsert_events", "upsert_batch"):
            method = getattr(store, name, None)
            if method is not None:
                setattr(store, name, self._wrap(method))

    def _wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1

        return timed


def _rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _load_pass(label: str, csv: Path, store: GraphStore, quarantine: Path, batch: int,
               profile: cProfile.Profile | None) -> LoadSummary:
    timer = _Timed(store)
    wall, cpu = time.perf_counter(), time.process_time()
    if profile is not None:
        profile.enable()
    summary = load_events(csv, store, quarantine_dir=quarantine, batch_size=batch)
    if profile is not None:
        profile.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rest = wall - timer.seconds
    print(
        f"{label}: {summary.read:,} rows in {wall:.2f} s = {summary.read / wall:,.0f} events/s end to end"
        f" (CPU {cpu:.2f} s = {summary.read / cpu:,.0f} per CPU-second)\n"
        f"    read+map+validate+dedupe+quarantine {rest:6.2f} s ({summary.read / rest:,.0f} rows/s)\n"
        f"    store upserts ({timer.calls} calls)    {timer.seconds:6.2f} s"
        f" ({summary.read / timer.seconds if timer.seconds else 0:,.0f} rows/s)\n"
        f"    loaded {summary.loaded:,}, duplicates {summary.duplicates:,}, quarantined {summary.quarantined:,}"
        f" {dict(summary.quarantined_by_reason)}\n"
        f"    RSS now {_rss_mib():,.0f} MiB, peak so far {_peak_rss_mib():,.0f} MiB"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000, help="rows per chunk and upsert (the CLI's default)")
    parser.add_argument("--path", type=Path, default=None, help="folder for the CSV and the store (default: a temp dir)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="cProfile the first load and print its top N functions by own time")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.path) as tmp:
        csv = Path(tmp) / "events.csv"
        started = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(target=write_events_csv, args=(csv, args.events))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"writing the CSV failed (exit code {child.exitcode})")
        print(
            f"wrote {args.events:,} rows ({csv.stat().st_size / 2**20:,.0f} MiB) in {time.perf_counter() - started:.1f} s"
            f" (not timed); RSS before loading {_rss_mib():,.0f} MiB"
        )

        wall = time.perf_counter()
        rows = sum(c.rows_read for c in read_chunks(csv, chunk_rows=args.batch))
        wall = time.perf_counter() - wall
        print(f"CSV read only: {rows:,} rows in {wall:.2f} s = {rows / wall:,.0f} rows/s")

        profile = cProfile.Profile() if args.profile else None
        store = SQLiteGraphStore(Path(tmp) / "bench.sqlite")
        try:
            quarantine = Path(tmp) / "quarantine"
            first = _load_pass("first load", csv, store, quarantine, args.batch, profile)
            again = _load_pass("re-load (all duplicates)", csv, store, quarantine, args.batch, None)
            if again.loaded != 0 or again.duplicates != first.loaded + first.duplicates:
                raise SystemExit("re-load was not a no-op")
        finally:
            store.close()
        if profile is not None:
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.profile)
            print(out.getvalue())


if __name__ == "__main__":
    main()
