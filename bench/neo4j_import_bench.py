"""Benchmark: filling an empty Neo4j from one events file, by the offline importer
(``ringwatch neo4j import``) and by ``ringwatch ingest`` over Bolt, in one run on one server.

Target (DESIGN §7, issue "bulk backfill"): the import at >= 10x the Bolt path and >= 100,000
events/s. Both read the same file through the same loader (read, validate, dedupe, quarantine):
the Bolt path into ``Neo4jGraphStore`` (after a warm-up load, deleted, so the JIT is warm), the
import into the importer's files and then ``neo4j-admin database import full``. Printed per path:
seconds and events/s; for the import also the importer's own time, the server's downtime (stop,
import, start) and the importer's peak memory (the JVM's maximum RSS, from ``wait4``). The
import's events/s is given without the server restart (files + importer + schema) and end to end.

Starts its own Neo4j (``scripts/neo4j.sh``, instance ``.neo4j/bench-import``, Bolt 27697, HTTP
27484; each replaceable from the environment) and stops it by PID at the end; the import restarts
it in between, as the command does.

    python bench/neo4j_import_bench.py [--users 10000] [--seed 7] [--warmup 20000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.store_bench import make_events  # noqa: E402
from graph.neo4j_store import Neo4jGraphStore  # noqa: E402
from graph.types import EdgeType, NodeType  # noqa: E402
from ingestion.loader import load_events  # noqa: E402
from synthetic.generator import SyntheticConfig, generate  # noqa: E402
from ringwatch import neo4j_import  # noqa: E402
from ringwatch.settings import Settings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BENCH_ENV = {
    name: os.environ.get(name, default)
    for name, default in {
        "NEO4J_INSTANCE_DIR": str(REPO / ".neo4j" / "bench-import"),
        "NEO4J_BOLT_PORT": "27697",
        "NEO4J_HTTP_PORT": "27484",
        "NEO4J_PASSWORD": "ringwatch-bench",
        "NEO4J_HEAP_INIT": "2g",
        "NEO4J_HEAP_MAX": "2g",
    }.items()
}
_IMPORTER_PEAK = re.compile(r"Peak memory usage: ([0-9.]+\s*\w+)")


def _script(verb: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REPO / "scripts" / "neo4j.sh"), verb], capture_output=True, text=True,
                          check=False, timeout=900)  # fmt: skip


def _counts(store: Neo4jGraphStore) -> tuple[int, ...]:
    s = store.stats()
    return (
        *(s.nodes[t.value] for t in (NodeType.USER, NodeType.DEVICE, NodeType.IP, NodeType.MERCHANT)),
        *(s.edges[t.value] for t in (EdgeType.TRANSACTED, EdgeType.USED_DEVICE, EdgeType.USED_IP, EdgeType.SEEN_AT)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000, help="accounts for `ringwatch generate` (~20 events each)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=20_000, help="events loaded over Bolt and deleted first, not timed")
    parser.add_argument("--bolt-port", help=f"Bolt port of the bench server (default {BENCH_ENV['NEO4J_BOLT_PORT']})")
    parser.add_argument("--http-port", help=f"HTTP port of the bench server (default {BENCH_ENV['NEO4J_HTTP_PORT']})")
    parser.add_argument("--instance-dir", help="conf, data and logs of the bench server (default .neo4j/bench-import)")
    args = parser.parse_args()
    for name, value in (("NEO4J_BOLT_PORT", args.bolt_port), ("NEO4J_HTTP_PORT", args.http_port),
                        ("NEO4J_INSTANCE_DIR", args.instance_dir)):  # fmt: skip
        if value:
            BENCH_ENV[name] = value

    load_at_start = os.getloadavg()[0]
    os.environ.update(BENCH_ENV)  # ringwatch.local_neo4j drives the same instance
    done = _script("start")
    if done.returncode != 0:
        sys.exit(f"could not start the bench Neo4j:\n{done.stdout}\n{done.stderr}")
    print(done.stdout.strip().splitlines()[-1])
    uri, password = f"bolt://127.0.0.1:{BENCH_ENV['NEO4J_BOLT_PORT']}", BENCH_ENV["NEO4J_PASSWORD"]
    try:
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            events_file = generate(SyntheticConfig(users=args.users, seed=args.seed), tmp / "data").events
            settings = Settings(home=tmp / "home", neo4j_uri=uri, neo4j_password=password)

            with Neo4jGraphStore(uri, "neo4j", password) as store:
                store.delete_all()
                if args.warmup:
                    store.upsert_events(make_events(args.warmup, seed=99))
                    store.delete_all()
                t0 = time.perf_counter()
                bolt = load_events(events_file, store, quarantine_dir=tmp / "q-bolt")
                bolt_s = time.perf_counter() - t0
                bolt_counts = _counts(store)
                store.delete_all()

            cpu = time.process_time()
            out = neo4j_import.import_local(settings, [events_file], tmp / "files")
            import_cpu = time.process_time() - cpu
            assert out.admin is not None
            with Neo4jGraphStore(uri, "neo4j", password) as store:
                import_counts = _counts(store)
    finally:
        stopped = _script("stop")
        print(stopped.stdout.strip())

    if import_counts != bolt_counts:
        sys.exit(f"the two loads differ: (users, devices, ips, merchants, TRANSACTED, USED_DEVICE, USED_IP, "
                 f"SEEN_AT) bolt {bolt_counts} import {import_counts}")  # fmt: skip
    n = out.load.read
    restart = out.downtime_seconds - out.admin.seconds
    no_restart = out.seconds - restart
    reported = _IMPORTER_PEAK.search(out.admin.output)
    rows = [
        ("Bolt (ringwatch ingest)", bolt_s, n / bolt_s),
        ("import, without the server restart", no_restart, n / no_restart),
        ("import, end to end", out.seconds, n / out.seconds),
    ]
    print(f"\n{n:,} events ({bolt.loaded:,} loaded, {bolt.quarantined:,} quarantined), "
          f"{bolt_counts[0]:,} users, {sum(bolt_counts[4:]):,} relationships; same graph from both paths")  # fmt: skip
    print(f"{'path':<38} {'seconds':>9} {'events/s':>11} {'x Bolt':>7}")
    for name, seconds, rate in rows:
        print(f"{name:<38} {seconds:>9.2f} {rate:>11,.0f} {rate / rows[0][2]:>7.1f}")
    print(f"\nimport stages: files (read, validate, write) {out.load.seconds:.2f} s, neo4j-admin {out.admin.seconds:.2f} s, "
          f"server stop + start {restart:.2f} s, constraints and indexes {out.schema_seconds:.2f} s")  # fmt: skip
    print(f"CPU seconds: ringwatch's own process {import_cpu:.2f} s (files, driver), neo4j-admin {out.admin.cpu_seconds:.2f} s "
          f"({n / out.admin.seconds:,.0f} events/s by the importer alone); "
          f"load average {load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print(f"importer peak memory: {out.admin.peak_rss_bytes / 2**20:,.0f} MiB RSS "
          f"(the importer's own report: {reported.group(1) if reported else 'n/a'})")  # fmt: skip


if __name__ == "__main__":
    main()
