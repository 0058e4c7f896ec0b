"""Benchmark: events/s into Neo4j through ``Neo4jGraphStore`` vs a naive row-at-a-time loader.

Targets (DESIGN §7): >= 20,000 events/s batched, and >= 20x the naive loader. The naive loader
sends one auto-commit query per event (MERGE the nodes, CREATE the edge, MERGE the links: the
same graph shape) on the first ``--naive-events`` events, into an emptied database. Then the
snapshot export rate (rows/s: transactions + link rows + node keys). ``--warmup`` events are
loaded and deleted before timing, so a fresh JVM's JIT work is not counted. Server CPU seconds
are printed beside wall time because the machine may be shared.

Starts its own Neo4j (``scripts/neo4j.sh``, instance ``.neo4j/bench``, Bolt 27687, HTTP 27474,
2 GiB heap: see ``BENCH_ENV``, whose values the environment can replace) and stops it by PID at
the end, unless ``NEO4J_URI`` (+ ``NEO4J_USER``, ``NEO4J_PASSWORD``) names a server to use
instead; the bench deletes everything in that database.

    python bench/neo4j_bench.py [--events 200000] [--batch 10000] [--naive-events 5000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import LiteralString

from neo4j import GraphDatabase

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.store_bench import make_events  # noqa: E402
from graph.neo4j_store import Neo4jGraphStore  # noqa: E402
from graph.types import Event, NodeType  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# The bench server's settings; each can be replaced from the environment (e.g. another instance
# dir and ports while a second bench runs). Heap: 2 GiB with a 1 GiB young generation, so a
# 10,000-event transaction's short-lived objects die young (with scripts/neo4j.sh's small test
# default, 1 GiB, G1 ran about twice as many young collections during the load).
BENCH_ENV = {
    name: os.environ.get(name, default)
    for name, default in {
        "NEO4J_INSTANCE_DIR": str(REPO / ".neo4j" / "bench"),
        "NEO4J_BOLT_PORT": "27687",
        "NEO4J_HTTP_PORT": "27474",
        "NEO4J_PASSWORD": "ringwatch-bench",
        "NEO4J_HEAP_INIT": "2g",
        "NEO4J_HEAP_MAX": "2g",
        "NEO4J_JAVA_OPTS": "-Xmn1g",
    }.items()
}

# The naive loader: one statement per event, auto-commit, same nodes, edges and link counts.
NAIVE_EVENT: LiteralString = (
    "MERGE (u:User {user_id: $user_id})"
    " FOREACH (_ IN CASE WHEN $merchant_id IS NULL THEN [] ELSE [1] END |"
    "  MERGE (m:Merchant {merchant_id: $merchant_id})"
    "  CREATE (u)-[:TRANSACTED {txn_id: $txn_id, ts: $ts, amount: $amount, currency: $currency,"
    "   event: $event, status: $status, device_id: $device_id, ip: $ip}]->(m))"
    " FOREACH (_ IN CASE WHEN $merchant_id IS NULL THEN [1] ELSE [] END |"
    "  CREATE (u)-[:ACTED {txn_id: $txn_id, ts: $ts, event: $event, status: $status,"
    "   device_id: $device_id, ip: $ip}]->(u))"
    " FOREACH (_ IN CASE WHEN $device_id IS NULL THEN [] ELSE [1] END |"
    "  MERGE (d:Device {device_id: $device_id})"
    "  MERGE (u)-[l:USED_DEVICE]->(d) ON CREATE SET l.first_seen = $ts, l.last_seen = $ts, l.count = 1"
    "   ON MATCH SET l.last_seen = $ts, l.count = l.count + 1)"
    " FOREACH (_ IN CASE WHEN $ip IS NULL THEN [] ELSE [1] END |"
    "  MERGE (i:IP {ip: $ip})"
    "  MERGE (u)-[l:USED_IP]->(i) ON CREATE SET l.first_seen = $ts, l.last_seen = $ts, l.count = 1"
    "   ON MATCH SET l.last_seen = $ts, l.count = l.count + 1)"
    " FOREACH (_ IN CASE WHEN $device_id IS NULL OR $ip IS NULL THEN [] ELSE [1] END |"
    "  MERGE (d:Device {device_id: $device_id}) MERGE (i:IP {ip: $ip})"
    "  MERGE (d)-[l:SEEN_AT]->(i) ON CREATE SET l.first_seen = $ts, l.last_seen = $ts, l.count = 1"
    "   ON MATCH SET l.last_seen = $ts, l.count = l.count + 1)"
)


def _script(verb: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "neo4j.sh"), verb],
        env={**os.environ, **BENCH_ENV},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def server_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) the server process has used, or NaN when unknown: on a
    shared machine, events per server-CPU-second says more than events per wall second."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def naive_load(uri: str, user: str, password: str, events: list[Event]) -> float:
    """Seconds to load ``events`` one auto-commit query each."""
    with GraphDatabase.driver(uri, auth=(user, password)) as driver, driver.session() as session:
        t0 = time.perf_counter()
        for e in events:
            session.run(
                NAIVE_EVENT,
                txn_id=e.txn_id,
                ts=e.ts,
                user_id=e.user_id,
                merchant_id=e.merchant_id,
                device_id=e.device_id,
                ip=e.ip,
                amount=e.amount,
                currency=e.currency,
                event=e.event.value,
                status=e.status,
            ).consume()
        return time.perf_counter() - t0


def generator_events(users: int, seed: int = 7) -> list[Event]:
    """The synthetic generator's events (ringwatch generate): realistic reuse of devices and IPs,
    unlike ``make_events``, where nearly every user-device and user-IP pair is new."""
    import tempfile

    import pandas as pd

    from graph.types import EventKind
    from synthetic.generator import SyntheticConfig, generate

    with tempfile.TemporaryDirectory() as tmp:
        ds = generate(SyntheticConfig(users=users, seed=seed), Path(tmp))
        df = pd.read_csv(ds.events, dtype=str, keep_default_na=False)
    ts = (pd.to_datetime(df["ts"], utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return [
        Event(
            txn_id=r.txn_id,
            ts=float(t),
            user_id=r.user_id,
            device_id=r.device_id or None,
            ip=r.ip or None,
            merchant_id=r.merchant_id or None,
            amount=float(r.amount) if r.amount else None,
            currency=r.currency or None,
            event=EventKind(r.event or "payment"),
            status=r.status or None,
        )
        for r, t in zip(df.itertuples(index=False), ts, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--data",
        choices=["random", "generator"],
        default="random",
        help="random: every event a new user-device/IP pair (worst case); generator: `ringwatch generate` data",
    )
    parser.add_argument("--users", type=int, default=10_000, help="with --data generator: accounts to generate")
    parser.add_argument("--batch", type=int, default=10_000, help="events per upsert_events call and transaction")
    parser.add_argument("--naive-events", type=int, default=5_000)
    parser.add_argument("--page", type=int, default=20_000, help="snapshot page size")
    parser.add_argument(
        "--warmup", type=int, default=30_000, help="events loaded and deleted first (JIT, caches), not timed"
    )
    args = parser.parse_args()

    uri = os.environ.get("NEO4J_URI")
    user = os.environ.get("NEO4J_USER", "neo4j")
    password = os.environ.get("NEO4J_PASSWORD", "")
    started = False
    if not uri:
        done = _script("start")
        if done.returncode != 0:
            sys.exit(f"could not start the bench Neo4j:\n{done.stdout}\n{done.stderr}")
        print(done.stdout.strip())
        uri, user, password = f"bolt://127.0.0.1:{BENCH_ENV['NEO4J_BOLT_PORT']}", "neo4j", BENCH_ENV["NEO4J_PASSWORD"]
        started = True
    pid_file = Path(BENCH_ENV["NEO4J_INSTANCE_DIR"]) / "neo4j.pid"
    pid = int(pid_file.read_text()) if started and pid_file.exists() else None
    try:
        events = make_events(args.events) if args.data == "random" else generator_events(args.users)
        print(f"data: {args.data}, {len(events):,} events")
        store = Neo4jGraphStore(uri, user, password, batch_size=args.batch, page_size=args.page)
        try:
            store.delete_all()
            if args.warmup:  # a fresh JVM compiles the query engine: time a warm server
                warm = make_events(args.warmup, seed=99)
                for i in range(0, len(warm), args.batch):
                    store.upsert_events(warm[i : i + args.batch])
                store.delete_all()
            wall, cpu, scpu = time.perf_counter(), time.process_time(), server_cpu(pid)
            inserted = 0
            for i in range(0, len(events), args.batch):
                inserted += store.upsert_events(events[i : i + args.batch]).inserted
            wall, cpu, scpu = time.perf_counter() - wall, time.process_time() - cpu, server_cpu(pid) - scpu
            batched_rate = len(events) / wall
            print(
                f"batched upsert: {len(events):,} events in {wall:.2f} s = {batched_rate:,.0f} events/s"
                f" (batch {args.batch:,}; client CPU {cpu:.2f} s; server CPU {scpu:.2f} s ="
                f" {len(events) / scpu:,.0f} events per server-CPU-second; inserted {inserted:,})"
            )
            wall = time.perf_counter()
            again = sum(store.upsert_events(events[i : i + args.batch]).duplicates for i in range(0, len(events), args.batch))
            wall = time.perf_counter() - wall
            print(f"re-load (all duplicates): {again:,} in {wall:.2f} s = {len(events) / wall:,.0f} events/s")

            wall, cpu = time.perf_counter(), time.process_time()
            snap = store.snapshot()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rows = (
                len(snap.transactions)
                + len(snap.user_device)
                + len(snap.user_ip)
                + len(snap.device_ip)
                + sum(snap.num_nodes(t) for t in (NodeType.USER, NodeType.DEVICE, NodeType.IP, NodeType.MERCHANT))
            )
            print(
                f"snapshot: {rows:,} rows ({len(snap.transactions):,} transactions) in {wall:.2f} s"
                f" = {rows / wall:,.0f} rows/s (client CPU {cpu:.2f} s; page {args.page:,})"
            )

            store.delete_all()
            naive = events[: args.naive_events]
            scpu = server_cpu(pid)
            naive_wall = naive_load(uri, user, password, naive)
            scpu = server_cpu(pid) - scpu
            naive_rate = len(naive) / naive_wall
            print(
                f"naive row-at-a-time: {len(naive):,} events in {naive_wall:.2f} s = {naive_rate:,.0f} events/s"
                f" (server CPU {scpu:.2f} s = {len(naive) / scpu:,.0f} events per server-CPU-second)"
            )
            print(f"batched / naive: {batched_rate / naive_rate:,.1f}x")
            store.delete_all()
        finally:
            store.close()
    finally:
        if started:
            print(_script("stop").stdout.strip())


if __name__ == "__main__":
    main()
